//! Daemon settings through the `config` crate: the embedded
//! `config/prescient.yaml`, then `--config FILE`, then `PRESCIENT_*`
//! environment variables (see [`env`]), then flags. Parsed once at start
//! into typed structs; nothing else reads the environment.

pub mod env;
mod grpc;

pub use grpc::{GrpcSettings, RuntimeLayout};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, File, FileFormat};
use serde::Deserialize;

use crate::admission::AdmissionConfig;
use crate::planner::PlannerConfig;

/// The defaults, embedded so the binary runs with no files at all.
pub const EMBEDDED: &str = include_str!("../config/prescient.yaml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Empty: the embedded example policy.
    pub policy: PathBuf,
    pub state_dir: PathBuf,
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    pub planner: PlannerSettings,
    pub tls: TlsSettings,
    pub auth: AuthSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub admission: AdmissionSettings,
    pub reload: ReloadSettings,
    pub grpc: GrpcSettings,
    pub cluster: ClusterSettings,
    /// `PRESCIENT_*` variables that name no setting (Kubernetes service
    /// links, an app's own variables), ignored; the caller logs them once
    /// logging is up.
    #[serde(skip)]
    pub unused_env: Vec<String>,
}

/// Many daemons sharing one capacity through leases in Redis (DESIGN §9,
/// docs/distributed.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// `redis://[user:password@]host:port/db` (or `valkey://`, `unix://`;
    /// TLS is not built in yet), or with `redis_type: cluster` one or more
    /// nodes' URLs, comma-separated; empty: this daemon is alone and holds
    /// every capacity.
    pub redis_url: String,
    /// `single` (one server) or `cluster` (a Redis Cluster; `redis_url`
    /// lists one or more of its nodes, comma-separated).
    pub redis_type: crate::cluster::redis::RedisType,
    /// This daemon's name among the others; empty: `$POD_NAME`, else the
    /// host name.
    pub instance_id: String,
    /// A lease not renewed within this time is given to the others.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// What to enforce once a lease expired without the store: `hold` the
    /// last one, or fall to `safe_share`.
    pub on_store_loss: crate::cluster::member::OnStoreLoss,
    /// Share of each capacity held before the first lease (and after a
    /// lost one with `on_store_loss: safe`), in [0, 1].
    pub safe_share: f64,
    /// The longest one exchange with the store may take.
    #[serde(with = "humantime_serde")]
    pub store_timeout: Duration,
    /// Daemons share a resource's capacity only within one namespace: the
    /// prefix of its keys in Redis.
    pub namespace: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReloadSettings {
    /// Watch the policy file and put valid edits in force.
    pub watch: bool,
    /// Time after a change before the file is read; at least 10ms.
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// An edit that removes more than this share of the tenants or of the
    /// resources is refused unless forced (SIGHUP); 1: no guard.
    pub max_removed_share: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlannerSettings {
    #[serde(with = "humantime_serde")]
    pub refit_every: Duration,
    pub refit_budget: f64,
    pub refit_threshold: f64,
    pub published_minutes: usize,
    #[serde(with = "humantime_serde")]
    pub snapshot_every: Duration,
    pub shrink_wide_bands: bool,
    /// Share of a reserve kept back from borrowers (0: lend it all).
    pub lend_hold_back: f64,
    /// A tenant that may borrow holds a reserve only this long after a
    /// denial.
    #[serde(with = "humantime_serde")]
    pub reserve_after_denial: Duration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Set: mutual TLS, clients must present a certificate from this CA.
    pub client_ca_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Empty: authentication off.
    pub tokens_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub max_tenants: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSettings {
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    pub max_request_ids: usize,
    pub max_leases: usize,
    #[serde(with = "humantime_serde")]
    pub lease_tombstone: Duration,
    pub max_waiters: usize,
    pub max_default_tenants: usize,
    #[serde(with = "humantime_serde")]
    pub reap_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_report_debt: Duration,
}

impl Settings {
    /// The token table, if `auth.tokens_file` is set; `token_env` names are
    /// read from the environment here, where settings meet it.
    pub fn auth(&self) -> Result<Option<crate::auth::Auth>, String> {
        if self.auth.tokens_file.as_os_str().is_empty() {
            return Ok(None);
        }
        crate::auth::Auth::load(&self.auth.tokens_file, |var| std::env::var(var).ok()).map(Some)
    }

    /// How the policy file is watched.
    pub fn watch_config(&self) -> crate::watcher::WatchConfig {
        crate::watcher::WatchConfig {
            watch: self.reload.watch,
            debounce: self.reload.debounce,
            max_removed_share: self.reload.max_removed_share,
        }
    }

    /// This daemon's membership in a cluster, if `cluster.redis_url` is
    /// set. The instance name falls back to `$POD_NAME`, then the host
    /// name; a per-process nonce makes the member unique even when two
    /// processes share a name (a restart, a misconfiguration).
    pub fn cluster_member(&self) -> Option<crate::cluster::member::MemberConfig> {
        self.cluster_member_from(|var| std::env::var(var).ok())
    }

    /// [`cluster_member`](Self::cluster_member) with the environment given.
    pub fn cluster_member_from(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Option<crate::cluster::member::MemberConfig> {
        let c = &self.cluster;
        if c.redis_url.is_empty() {
            return None;
        }
        let name = [
            c.instance_id.clone(),
            env("POD_NAME").unwrap_or_default(),
            env("HOSTNAME").unwrap_or_default(),
        ]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| "prescient".into());
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        Some(crate::cluster::member::MemberConfig {
            id: format!("{name}/{nonce:x}").into(),
            lease_ttl: c.lease_ttl,
            on_store_loss: c.on_store_loss,
            safe_share: c.safe_share,
        })
    }

    /// The planner's configuration (the daemon fits on a worker thread).
    pub fn planner_config(&self) -> PlannerConfig {
        PlannerConfig {
            tick: self.tick,
            refit_every: self.planner.refit_every,
            refit_budget: self.planner.refit_budget,
            refit_threshold: self.planner.refit_threshold,
            published_minutes: self.planner.published_minutes,
            shrink_wide_bands: self.planner.shrink_wide_bands,
            lend_hold_back: self.planner.lend_hold_back,
            reserve_after_denial: self.planner.reserve_after_denial,
            inline_refits: false,
        }
    }
}

impl AdmissionSettings {
    pub fn to_config(&self) -> AdmissionConfig {
        AdmissionConfig {
            idempotency_window: self.idempotency_window,
            max_request_ids: self.max_request_ids,
            max_leases: self.max_leases,
            max_waiters: self.max_waiters,
            max_default_tenants: self.max_default_tenants,
            lease_tombstone: self.lease_tombstone,
            max_report_debt: self.max_report_debt,
        }
    }
}

/// Flag values that override everything else (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub policy: Option<PathBuf>,
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub log_format: Option<String>,
}

impl Settings {
    /// Layers the sources over the process environment; errors name the
    /// key and the source.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, config::ConfigError> {
        Self::load_from(file, overrides, std::env::vars_os())
    }

    /// [`load`](Self::load) with the environment given.
    pub fn load_from(
        file: Option<&Path>,
        overrides: &Overrides,
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<Self, config::ConfigError> {
        let env = env::SettingsEnv::sort(vars, EMBEDDED)?;
        let mut builder = Config::builder().add_source(File::from_str(EMBEDDED, FileFormat::Yaml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Yaml).required(true));
        }
        builder = builder.add_source(env.source());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let mut flagged = Vec::new();
        for (key, value) in [
            ("policy", path(&overrides.policy)),
            ("listen", overrides.listen.clone()),
            ("admin_listen", overrides.admin_listen.clone()),
            ("state_dir", path(&overrides.state_dir)),
            ("log.format", overrides.log_format.clone()),
        ] {
            if value.is_some() {
                flagged.push(key);
            }
            builder = builder.set_override_option(key, value)?;
        }
        let mut settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| env.blame(e, &flagged))?;
        settings.check()?;
        settings.unused_env = env.unused;
        Ok(settings)
    }

    fn check(&self) -> Result<(), config::ConfigError> {
        let bad = |key: &str, why: &str| Err(config::ConfigError::Message(format!("{key}: {why}")));
        if self.tick.is_zero() {
            return bad("tick", "must be > 0");
        }
        if self.admission.reap_interval.is_zero() {
            return bad("admission.reap_interval", "must be > 0");
        }
        if self.admission.max_leases == 0 {
            return bad("admission.max_leases", "must be > 0");
        }
        if !(self.planner.refit_budget > 0.0 && self.planner.refit_budget <= 1.0) {
            return bad("planner.refit_budget", "must be in (0, 1]");
        }
        if self.planner.refit_threshold.is_nan() || self.planner.refit_threshold <= 0.0 {
            return bad("planner.refit_threshold", "must be > 0");
        }
        if !(0.0..=1.0).contains(&self.planner.lend_hold_back) {
            return bad("planner.lend_hold_back", "must be in [0, 1]");
        }
        let set = |p: &PathBuf| !p.as_os_str().is_empty();
        if set(&self.tls.cert_file) != set(&self.tls.key_file) {
            return bad("tls", "cert_file and key_file go together");
        }
        if set(&self.tls.client_ca_file) && !set(&self.tls.cert_file) {
            return bad(
                "tls.client_ca_file",
                "needs cert_file and key_file (mutual TLS is TLS first)",
            );
        }
        if !(0.0..=1.0).contains(&self.reload.max_removed_share) {
            return bad("reload.max_removed_share", "must be in [0, 1]");
        }
        if self.reload.debounce < crate::watcher::MIN_DEBOUNCE {
            return bad("reload.debounce", "must be at least 10ms");
        }
        if self.planner.snapshot_every.is_zero() {
            return bad("planner.snapshot_every", "must be > 0");
        }
        if self.planner.refit_every < Duration::from_secs(60) {
            return bad("planner.refit_every", "must be at least 1m");
        }
        let c = &self.cluster;
        if !c.redis_url.is_empty() {
            if c.redis_type == crate::cluster::redis::RedisType::Single && c.redis_url.contains(',')
            {
                return bad(
                    "cluster.redis_url",
                    "lists several servers: set cluster.redis_type: cluster for a Redis Cluster",
                );
            }
            if c.lease_ttl < 2 * self.tick {
                return bad(
                    "cluster.lease_ttl",
                    "must be at least two ticks (a lease is renewed every tick)",
                );
            }
            if c.store_timeout.is_zero() || c.store_timeout >= c.lease_ttl {
                return bad("cluster.store_timeout", "must be > 0 and < lease_ttl");
            }
        }
        if c.namespace.is_empty() || c.namespace.contains(['{', '}']) {
            return bad("cluster.namespace", "must be non-empty, without '{' or '}'");
        }
        if !(0.0..=1.0).contains(&c.safe_share) {
            return bad("cluster.safe_share", "must be in [0, 1]");
        }
        self.grpc.check()
    }
}

#[cfg(test)]
mod tests;
