//! Prometheus metrics (prometheus-client), served on the admin port's
//! `/metrics`. Nothing here is touched by the Acquire hot path except the
//! latency histogram, which is a fixed array of atomics (prometheus-client's
//! own histogram takes a lock). Everything else is fed once per tick by the
//! planner, from the demand counters it folds anyway, so recording a metric
//! costs Acquire nothing.
//!
//! Tenant label values are bounded: the first `max_tenants` tenants seen
//! keep their name, later ones are counted as `other`.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod cluster;
mod latency;

pub use cluster::ClusterMetrics;

pub use latency::LatencyHistogram;
use latency::LatencyShared;

/// The label value tenants beyond the bound share.
pub const OTHER: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Decided {
    pub tenant: String,
    pub resource: String,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Paid {
    pub tenant: String,
    pub resource: String,
    pub pool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Series {
    pub tenant: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Model {
    pub model: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OfResource {
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyInfo {
    pub sha256: String,
}

/// Every metric of a daemon.
pub struct Metrics {
    registry: Registry,
    pub acquisitions: Family<Decided, Counter>,
    pub asked: Family<Series, Counter>,
    pub tokens: Family<Paid, Counter>,
    pub acquire_latency: Arc<LatencyHistogram>,
    pub pool_tokens: Family<Paid, Gauge<f64, AtomicU64>>,
    /// Tokens a pool owes (a Report charged it beyond empty).
    pub pool_debt: Family<Paid, Gauge<f64, AtomicU64>>,
    /// Reported overuse that no pool of the reporting tenant could owe.
    pub report_uncharged: Counter,
    pub reserve: Family<Series, Gauge<f64, AtomicU64>>,
    pub forecast_mean: Family<Series, Gauge<f64, AtomicU64>>,
    pub forecast_upper: Family<Series, Gauge<f64, AtomicU64>>,
    pub forecast_coverage: Family<Series, Gauge<f64, AtomicU64>>,
    pub forecast_error: Family<Series, Gauge<f64, AtomicU64>>,
    /// The backtest error (MASE) of the model each series' last scoring
    /// refit chose.
    pub backtest_error: Family<Series, Gauge<f64, AtomicU64>>,
    /// Scoring refits by the model they chose (bounded: the model kinds).
    pub model_choices: Family<Model, Counter>,
    pub refit_seconds: Histogram,
    pub tick_seconds: Histogram,
    pub leases_active: Gauge,
    pub leases_reclaimed: Counter,
    pub waiters: Family<OfResource, Gauge>,
    pub reloads: Family<Outcome, Counter>,
    /// 1 when the last reload attempt put its policy in force, else 0.
    pub reload_ok: Gauge,
    /// When a policy last went into force (start or reload), Unix seconds.
    pub reload_time: Gauge<f64, AtomicU64>,
    /// The policy in force, by the SHA-256 of its file.
    pub policy_info: Family<PolicyInfo, Gauge>,
    pub connections: crate::connections::ConnectionMetrics,
    pub watches: crate::grpc::WatchMetrics,
    pub cluster: ClusterMetrics,
    max_tenants: usize,
    tenant_labels: Mutex<HashMap<String, String>>,
}

impl Metrics {
    pub fn new(max_tenants: usize) -> Self {
        let mut registry = Registry::with_prefix("prescient");
        let acquisitions = Family::<Decided, Counter>::default();
        registry.register(
            "acquisitions",
            "Acquire decisions, by tenant, resource and decision",
            acquisitions.clone(),
        );
        let asked = Family::<Series, Counter>::default();
        registry.register(
            "asked_tokens",
            "Tokens (or units) asked for, denied included: the demand forecasts follow",
            asked.clone(),
        );
        let tokens = Family::<Paid, Counter>::default();
        registry.register(
            "granted_tokens",
            "Tokens (or units) granted, by the pool that paid them",
            tokens.clone(),
        );
        let acquire_latency = Arc::new(LatencyHistogram::new());
        registry.register_with_unit(
            "acquire_latency",
            "Time the admission core took to decide an Acquire (waiting excluded)",
            prometheus_client::registry::Unit::Seconds,
            LatencyShared(acquire_latency.clone()),
        );
        let gauge = || Family::<Series, Gauge<f64, AtomicU64>>::default();
        let pool_tokens = Family::<Paid, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "pool_tokens",
            "Tokens (rate) or free units (concurrency) in each pool now; tenant is empty for shared and emergency",
            pool_tokens.clone(),
        );
        let pool_debt = Family::<Paid, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "pool_debt_tokens",
            "Tokens a rate pool owes because a Report used more than was acquired (the reporting tenant's guaranteed pool; bounded by admission.max_report_debt)",
            pool_debt.clone(),
        );
        let report_uncharged = Counter::default();
        registry.register(
            "report_uncharged_tokens",
            "Reported overuse not charged to any pool: beyond admission.max_report_debt, or by a tenant without a guaranteed rate",
            report_uncharged.clone(),
        );
        let reserve = gauge();
        registry.register(
            "reserve",
            "Reserve in force: tokens/s (rate) or units (concurrency)",
            reserve.clone(),
        );
        let forecast_mean = gauge();
        registry.register(
            "forecast_mean",
            "Forecast demand rate for the coming tick (per second)",
            forecast_mean.clone(),
        );
        let forecast_upper = gauge();
        registry.register(
            "forecast_upper",
            "Upper bound of the forecast band at the tenant's quantile (per second)",
            forecast_upper.clone(),
        );
        let forecast_coverage = gauge();
        registry.register(
            "forecast_coverage_ratio",
            "Share of the trailing ten minutes of ticks whose demand fell inside the forecast band",
            forecast_coverage.clone(),
        );
        let forecast_error = gauge();
        registry.register(
            "forecast_error_ratio",
            "Mean absolute scaled error of the forecast over the trailing ten minutes (below 1 beats naive)",
            forecast_error.clone(),
        );
        let backtest_error = gauge();
        registry.register(
            "forecast_backtest_error_ratio",
            "Backtest MASE of the model the last scoring refit chose (below 1 beats naive)",
            backtest_error.clone(),
        );
        let model_choices = Family::<Model, Counter>::default();
        registry.register(
            "forecast_model_choices",
            "Models chosen by backtest at scoring refits, by model",
            model_choices.clone(),
        );
        let refit_seconds = Histogram::new(exponential_buckets(1e-4, 2.0, 14));
        registry.register_with_unit(
            "refit_duration",
            "Time one model refit took",
            prometheus_client::registry::Unit::Seconds,
            refit_seconds.clone(),
        );
        let tick_seconds = Histogram::new(exponential_buckets(1e-5, 2.0, 18));
        registry.register_with_unit(
            "tick_duration",
            "Time one planner tick took (fold, forecast, size, publish)",
            prometheus_client::registry::Unit::Seconds,
            tick_seconds.clone(),
        );
        let leases_active = Gauge::default();
        registry.register("leases_active", "Leases held now", leases_active.clone());
        let leases_reclaimed = Counter::default();
        registry.register(
            "leases_reclaimed",
            "Leases reclaimed because their TTL passed without a Release",
            leases_reclaimed.clone(),
        );
        let waiters = Family::<OfResource, Gauge>::default();
        registry.register(
            "waiters",
            "Acquires waiting in a resource's queue",
            waiters.clone(),
        );
        let reloads = Family::<Outcome, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reloads, by result (ok; error: invalid file; refused: removes too much, see reload.max_removed_share)",
            reloads.clone(),
        );
        // Both series exist from the start, so `increase()` sees the first.
        for result in ["ok", "error", "refused"] {
            let _ = reloads.get_or_create(&Outcome { result });
        }
        let reload_ok = Gauge::default();
        registry.register(
            "policy_last_reload_successful",
            "1 if the last policy reload put its file in force, 0 if it was refused (the previous policy stays)",
            reload_ok.clone(),
        );
        reload_ok.set(1);
        let reload_time = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "policy_last_reload_success_timestamp",
            "When the policy in force was loaded (start or reload), Unix time",
            prometheus_client::registry::Unit::Seconds,
            reload_time.clone(),
        );
        let policy_info = Family::<PolicyInfo, Gauge>::default();
        registry.register(
            "policy_info",
            "The policy in force: 1, labelled with the SHA-256 of its file (compare with `sha256sum`)",
            policy_info.clone(),
        );
        let connections = crate::connections::ConnectionMetrics::default();
        connections.register(&mut registry);
        let watches = crate::grpc::WatchMetrics::default();
        watches.register(&mut registry);
        let cluster = ClusterMetrics::default();
        cluster.register(&mut registry);
        Self {
            registry,
            acquisitions,
            asked,
            tokens,
            acquire_latency,
            pool_tokens,
            pool_debt,
            report_uncharged,
            reserve,
            forecast_mean,
            forecast_upper,
            forecast_coverage,
            forecast_error,
            backtest_error,
            model_choices,
            refit_seconds,
            tick_seconds,
            leases_active,
            leases_reclaimed,
            waiters,
            reloads,
            reload_ok,
            reload_time,
            policy_info,
            connections,
            watches,
            cluster,
            max_tenants,
            tenant_labels: Mutex::new(HashMap::new()),
        }
    }

    /// The policy read from `text` went into force at `at` (start or
    /// reload).
    pub fn policy_in_force(&self, text: &str, at: std::time::SystemTime) {
        use sha2::Digest;
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.reload_time.set(secs);
        self.reload_ok.set(1);
        self.policy_info.clear();
        let sha256 = format!("{:x}", sha2::Sha256::digest(text.as_bytes()));
        self.policy_info
            .get_or_create(&PolicyInfo { sha256 })
            .set(1);
    }

    /// Counts a reload that put `text` in force. Gauges first: a scrape
    /// that sees the count sees them too.
    pub fn reloaded(&self, text: &str, at: std::time::SystemTime) {
        self.policy_in_force(text, at);
        self.reloads.get_or_create(&Outcome { result: "ok" }).inc();
    }

    /// Counts a reload that did not put its file in force (the policy in
    /// force stays): `error` for an invalid file, `refused` for a valid one
    /// the removal guard held back.
    pub fn reload_refused(&self, result: &'static str) {
        self.reload_ok.set(0);
        self.reloads.get_or_create(&Outcome { result }).inc();
    }

    /// The label value for a tenant: its name while under the bound, else
    /// `other`. Called by the planner, never on the hot path.
    pub fn tenant_label(&self, tenant: &str) -> String {
        let mut labels = self.tenant_labels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(label) = labels.get(tenant) {
            return label.clone();
        }
        let label = if labels.len() < self.max_tenants {
            tenant.to_owned()
        } else {
            OTHER.to_owned()
        };
        labels.insert(tenant.to_owned(), label.clone());
        label
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_labels_are_bounded() {
        let m = Metrics::new(2);
        assert_eq!(m.tenant_label("a"), "a");
        assert_eq!(m.tenant_label("b"), "b");
        assert_eq!(m.tenant_label("c"), OTHER);
        assert_eq!(m.tenant_label("a"), "a");
    }

    #[test]
    fn the_exposition_names_follow_prometheus_conventions() {
        let m = Metrics::new(10);
        m.acquisitions
            .get_or_create(&Decided {
                tenant: "t".into(),
                resource: "r".into(),
                decision: "granted",
            })
            .inc();
        m.reloads.get_or_create(&Outcome { result: "ok" }).inc();
        let text = m.encode();
        for name in [
            "prescient_acquisitions_total{tenant=\"t\",resource=\"r\",decision=\"granted\"} 1",
            "prescient_policy_reloads_total{result=\"ok\"} 1",
            "# TYPE prescient_tick_duration_seconds histogram",
            "# TYPE prescient_leases_reclaimed counter",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
