//! The operator's policy: resources, QoS classes, tenants, defaults, events
//! (DESIGN §7). First in the data flow: YAML is parsed here with serde
//! (unknown keys are errors), then [`validate`](Policy::validate) checks every
//! rule and reports all problems at once, each with its path. Nothing
//! downstream sees a policy that did not pass.

mod diff;
mod envoy;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

pub use diff::{Changes, DefaultsChange, PolicyDiff};
pub use envoy::{EnvoyRule, EnvoySpec, Lookup};
pub use validate::{PolicyError, Problem, check_name};

/// A whole policy file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub resources: BTreeMap<String, ResourceSpec>,
    /// QoS classes; merged over the four built-in ones (platinum, gold,
    /// silver, bronze), so a policy only lists what it changes or adds.
    #[serde(default)]
    pub qos: BTreeMap<String, QosSpec>,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantSpec>,
    /// Applied to tenants not listed; without it they are NOT_FOUND.
    #[serde(default)]
    pub defaults: Option<TenantSpec>,
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// How Envoy's rate-limit descriptors name tenants and resources.
    #[serde(default)]
    pub envoy: Option<EnvoySpec>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Capacity is tokens per second.
    Rate,
    /// Capacity is units held at once.
    Concurrency,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    pub kind: Kind,
    pub capacity: u64,
    /// Fraction of capacity held for QoS classes with emergency access.
    #[serde(default)]
    pub emergency: f64,
    /// A lease not released by then is reclaimed. Concurrency leases and
    /// rate leases (kept for Report) alike.
    #[serde(default, with = "humantime_serde")]
    pub lease_ttl: Option<Duration>,
}

/// Lease TTL when a resource does not set `lease_ttl`.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

impl ResourceSpec {
    /// Units or tokens/s held for emergency access: `floor(capacity × emergency)`.
    pub fn emergency_units(&self) -> u64 {
        (self.capacity as f64 * self.emergency).floor() as u64
    }

    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL)
    }

    /// Capacity outside the emergency pool: what guarantees and reserves
    /// share.
    pub fn room(&self) -> u64 {
        self.capacity.saturating_sub(self.emergency_units())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QosSpec {
    /// Share when reserves must be water-filled; higher wins more.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// May draw from the shared pool.
    #[serde(default)]
    pub borrow: bool,
    /// May draw from the emergency pool when everything else is empty.
    #[serde(default)]
    pub emergency: bool,
}

fn default_weight() -> u32 {
    1
}

/// The built-in QoS classes (DESIGN §7).
pub fn builtin_qos() -> BTreeMap<String, QosSpec> {
    let class = |weight, borrow, emergency| QosSpec {
        weight,
        borrow,
        emergency,
    };
    BTreeMap::from([
        ("platinum".to_owned(), class(8, true, true)),
        ("gold".to_owned(), class(4, true, false)),
        ("silver".to_owned(), class(2, true, false)),
        ("bronze".to_owned(), class(1, false, false)),
    ])
}

/// QoS class of a tenant that names none.
pub const DEFAULT_QOS: &str = "bronze";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    #[serde(default = "default_qos")]
    pub qos: String,
    #[serde(default)]
    pub limits: BTreeMap<String, LimitSpec>,
}

fn default_qos() -> String {
    DEFAULT_QOS.to_owned()
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Rate: tokens/s of the standard bucket. Concurrency: units held.
    #[serde(default)]
    pub guaranteed: u64,
    /// Rate only: bucket depth in tokens (default: one second of guaranteed).
    #[serde(default)]
    pub burst: Option<u64>,
    /// The predictive pool; omit to disable.
    #[serde(default)]
    pub reserve: Option<ReserveSpec>,
}

impl LimitSpec {
    /// Depth of the guaranteed bucket in tokens.
    pub fn depth(&self) -> u64 {
        self.burst.unwrap_or(self.guaranteed)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReserveSpec {
    /// Upper quantile of the forecast the reserve covers.
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// How far ahead the reserve looks.
    #[serde(default = "default_horizon", with = "humantime_serde")]
    pub horizon: Duration,
    /// Cap on the reserve (tokens/s or units); default: what the resource
    /// has left after guarantees and emergency.
    #[serde(default)]
    pub max: Option<u64>,
    /// Seasons of the demand (e.g. `[1h, 1d]`); empty: detected from the
    /// history once there is enough of it.
    #[serde(default)]
    pub seasons: Vec<humantime_serde::Serde<Duration>>,
}

impl ReserveSpec {
    /// Season lengths in whole minutes (the forecasting resolution).
    pub fn season_minutes(&self) -> Vec<usize> {
        self.seasons
            .iter()
            .map(|d| (d.as_secs() / 60) as usize)
            .collect()
    }
}

fn default_quantile() -> f64 {
    0.95
}

fn default_horizon() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub name: String,
    pub tenants: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub start: SystemTime,
    #[serde(with = "humantime_serde")]
    pub end: SystemTime,
    pub multiplier: f64,
}

impl Policy {
    /// Parses YAML without validating it; `origin` names the source in errors.
    pub fn parse(yaml: &str, origin: &str) -> Result<Self, PolicyError> {
        serde_norway::from_str(yaml).map_err(|e| PolicyError::single(origin, "", e.to_string()))
    }

    /// Parses and validates: the only way the daemon takes a policy.
    pub fn load_str(yaml: &str, origin: &str) -> Result<Self, PolicyError> {
        let policy = Self::parse(yaml, origin)?;
        policy.validate(origin)?;
        Ok(policy)
    }

    pub fn load_file(path: &Path) -> Result<Self, PolicyError> {
        let origin = path.display().to_string();
        let yaml = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::single(&origin, "", format!("cannot read: {e}")))?;
        Self::load_str(&yaml, &origin)
    }

    /// Σ guaranteed of the listed tenants on `resource`.
    pub fn guaranteed_on(&self, resource: &str) -> u64 {
        self.tenants
            .values()
            .filter_map(|t| t.limits.get(resource))
            .map(|l| l.guaranteed)
            .sum()
    }

    /// Built-in classes overlaid with the policy's own.
    pub fn qos_classes(&self) -> BTreeMap<String, QosSpec> {
        let mut classes = builtin_qos();
        classes.extend(self.qos.iter().map(|(k, v)| (k.clone(), *v)));
        classes
    }

    /// One line for `prescient check`.
    pub fn summary(&self) -> String {
        format!(
            "{} resources, {} tenants, {} QoS classes, defaults {}, {} events",
            self.resources.len(),
            self.tenants.len(),
            self.qos_classes().len(),
            if self.defaults.is_some() { "on" } else { "off" },
            self.events.len()
        )
    }
}

/// The example policy shipped in `config/policies.yaml`, embedded so that
/// `prescient serve` runs with no files at all.
pub const EMBEDDED_POLICY: &str = include_str!("../../config/policies.yaml");

#[cfg(test)]
mod tests;
