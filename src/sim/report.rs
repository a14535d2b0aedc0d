//! What a simulation reports, per mode and per tenant, as a text table or
//! as one JSON object. The JSON is a contract for scripts (DESIGN §7):
//!
//! ```json
//! {"instances": 1,
//!  "modes": {"predictive": {
//!     "total":   {"requests": 0, "granted": 0, "denied": 0, "tokens_asked": 0,
//!                 "tokens_granted": 0, "tokens_denied": 0, "denial_rate": 0.0,
//!                 "invalid": 0},
//!     "tenants": {"checkout": {"...": "same keys as total",
//!                              "coverage": 0.95, "mase": 0.8}},
//!     "capacity_violations": 0,
//!     "utilization": {"db_queries": 0.0},
//!     "pools": {"db_queries": {"reserve": 0.0, "guaranteed": 0.0,
//!                              "shared": 0.0, "emergency": 0.0}},
//!     "single_daemon_denied": 0,
//!     "whole_requests_denied": 0},
//!   "reactive": {"...": "same shape"},
//!   "oracle":   {"...": "same shape"}},
//!  "trace": {"rows": 0, "seconds": 0.0, "tenants": 0, "resources": 0},
//!  "summary": {"tokens_denied": {"predictive": 0, "reactive": 0, "oracle": 0},
//!              "predictive_vs_reactive": 0.0}}
//! ```
//!
//! `denial_rate` is denied requests over requests; `invalid` counts rows the
//! core refused as bad input (an amount the tenant could never get), which
//! also count as denied. `utilization` is tokens granted over `capacity ×
//! duration` (rate) or the mean units held over capacity (concurrency);
//! `pools` is the share of granted tokens each tier paid. In predictive
//! mode `total` and each tenant also carry `coverage` and `mase`: the
//! planner's own scores of the forecasts it used, every tick of the replay,
//! pooled over the tenant's resources and daemons (absent in the other
//! modes, and for a tenant never scored).
//! `predictive_vs_reactive` is absent (never `null`) unless both modes ran
//! and reactive denied some tokens. `instances` is the number of simulated
//! daemons; `single_daemon_denied` is the tokens the same mode denied on
//! one daemon (the cost of distribution is the difference).
//! `whole_requests_denied` (oracle only) is what the oracle's pools deny
//! granting each request whole or not at all, greedily in trace order: not
//! a bound, but the gap between it and the oracle is the part no
//! all-or-nothing admission takes by admitting requests in part. Keys may
//! be added; these stay.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use super::Daemons;
use super::capacity::{rate_violations, slack};
use super::split::Split;
use super::trace::Trace;
use crate::admission::Registry;
use crate::clock::Nanos;
use crate::policy::{Kind, Policy};
use crate::pool::Tier;

/// Counts for one tenant, or for all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub granted: u64,
    pub denied: u64,
    pub tokens_asked: u64,
    pub tokens_granted: u64,
    pub tokens_denied: u64,
    pub denial_rate: f64,
    pub invalid: u64,
    /// Predictive only: share of ticks whose demand fell inside the band
    /// forecast for them, over the whole replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// Predictive only: mean absolute scaled error of those forecasts' means
    /// (below 1 beats "same as last tick").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mase: Option<f64>,
}

impl Stats {
    fn add(&mut self, amount: u64, granted: bool, invalid: bool) {
        self.requests += 1;
        self.tokens_asked += amount;
        if granted {
            self.granted += 1;
            self.tokens_granted += amount;
        } else {
            self.denied += 1;
            self.tokens_denied += amount;
        }
        if invalid {
            self.invalid += 1;
        }
        self.denial_rate = self.denied as f64 / self.requests as f64;
    }
}

/// Share of granted tokens each tier paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Pools {
    pub reserve: f64,
    pub guaranteed: f64,
    pub shared: f64,
    pub emergency: f64,
}

/// One mode's results.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub total: Stats,
    pub tenants: BTreeMap<String, Stats>,
    pub capacity_violations: u64,
    pub utilization: BTreeMap<String, f64>,
    pub pools: BTreeMap<String, Pools>,
    /// Tokens the same mode denied on one daemon: with `--instances 1`,
    /// `total.tokens_denied` itself. Set by [`super::run_compared`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_daemon_denied: Option<u64>,
    /// Oracle only: tokens denied when the oracle's pools grant only whole
    /// requests, each in trace order if it fits. Not a bound (another
    /// choice of whole requests can do better); the part of the gap to the
    /// bound that is requests granted in part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole_requests_denied: Option<u64>,
    #[serde(skip)]
    tenant_names: Vec<String>,
    #[serde(skip)]
    resource_names: Vec<String>,
    #[serde(skip)]
    by_tier: Vec<[u64; 4]>,
    /// Per resource (trace order), tokens granted in each tick.
    #[serde(skip)]
    per_tick: Vec<Vec<u64>>,
    #[serde(skip)]
    tick_secs: f64,
    #[serde(skip)]
    policy: Policy,
}

impl ModeReport {
    pub fn new(trace: &Trace, policy: &Policy) -> Self {
        Self {
            total: Stats::default(),
            tenants: BTreeMap::new(),
            capacity_violations: 0,
            utilization: BTreeMap::new(),
            pools: BTreeMap::new(),
            single_daemon_denied: None,
            whole_requests_denied: None,
            tenant_names: trace.tenants.clone(),
            resource_names: trace.resources.clone(),
            by_tier: vec![[0; 4]; trace.resources.len()],
            per_tick: vec![Vec::new(); trace.resources.len()],
            tick_secs: 1.0,
            policy: policy.clone(),
        }
    }

    pub(super) fn granted(
        &mut self,
        tenant: usize,
        resource: usize,
        amount: u64,
        by_tier: [u64; 4],
    ) {
        self.count(tenant, amount, true, false);
        for (sum, n) in self.by_tier[resource].iter_mut().zip(by_tier) {
            *sum += n;
        }
    }

    pub(super) fn denied(&mut self, tenant: usize, amount: u64, invalid: bool) {
        self.count(tenant, amount, false, invalid);
    }

    pub(super) fn violation(&mut self) {
        self.capacity_violations += 1;
    }

    fn count(&mut self, tenant: usize, amount: u64, granted: bool, invalid: bool) {
        self.total.add(amount, granted, invalid);
        self.tenants
            .entry(self.tenant_names[tenant].clone())
            .or_default()
            .add(amount, granted, invalid);
    }

    pub(super) fn end_tick(&mut self, granted: &[u64], tick_secs: f64) {
        self.tick_secs = tick_secs;
        for (series, g) in self.per_tick.iter_mut().zip(granted) {
            series.push(*g);
        }
    }

    /// The oracle's grants of resource `r`: whole tokens per tick, and
    /// per tier ([`Tier::ALL`] order).
    pub(super) fn add_ticks(&mut self, r: usize, per_tick: &[u64], by_tier: [u64; 4]) {
        self.per_tick[r].extend_from_slice(per_tick);
        for (sum, n) in self.by_tier[r].iter_mut().zip(by_tier) {
            *sum += n;
        }
    }

    /// Capacity check and utilization, once the run is over, against each
    /// resource's global capacity; `registries` are every daemon's.
    pub(super) fn finish(&mut self, registries: &[Arc<Registry>], end: Nanos) {
        let tick_secs = self.tick_secs;
        self.finish_with(&|name| slack(registries, name), end, tick_secs);
    }

    /// [`finish`](Self::finish) with what the pools of each resource can
    /// hold at once (`slack`) given by name.
    pub(super) fn finish_with(&mut self, slack: &dyn Fn(&str) -> f64, end: Nanos, tick_secs: f64) {
        self.tick_secs = tick_secs;
        let seconds = (end as f64 / 1e9).max(self.tick_secs);
        for (r, name) in self.resource_names.iter().enumerate() {
            let Some(spec) = self.policy.resources.get(name) else {
                continue;
            };
            let c = spec.capacity as f64;
            let granted: u64 = self.per_tick[r].iter().sum();
            if spec.kind == Kind::Rate {
                self.capacity_violations +=
                    rate_violations(&self.per_tick[r], c, self.tick_secs, slack(name));
                self.utilization
                    .insert(name.clone(), granted as f64 / (c * seconds));
            } else {
                // Units are held for one tick each.
                self.utilization.insert(
                    name.clone(),
                    granted as f64 / (c * self.per_tick[r].len().max(1) as f64),
                );
            }
            let t = self.by_tier[r];
            let all = t.iter().sum::<u64>().max(1) as f64;
            let share = |tier: Tier| {
                let k = Tier::ALL.iter().position(|x| *x == tier).unwrap_or(0);
                t[k] as f64 / all
            };
            self.pools.insert(
                name.clone(),
                Pools {
                    reserve: share(Tier::Reserve),
                    guaranteed: share(Tier::Guaranteed),
                    shared: share(Tier::Shared),
                    emergency: share(Tier::Emergency),
                },
            );
        }
    }
}

/// A whole simulation: every mode that ran.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Simulated daemons sharing each capacity (`--instances`).
    pub instances: usize,
    /// How rows were dealt to them (the text says; the JSON does not).
    #[serde(skip)]
    pub split: Split,
    pub modes: BTreeMap<&'static str, ModeReport>,
    pub trace: TraceSummary,
    pub summary: Summary,
    /// The pre-warm view, with `--replica-capacity` and `--startup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prewarm: Option<super::prewarm::PrewarmReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    pub rows: usize,
    pub seconds: f64,
    pub tenants: usize,
    pub resources: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tokens_denied: BTreeMap<&'static str, u64>,
    /// Predictive's tokens denied over reactive's (lower is better). Absent
    /// from the JSON, not `null`, unless both ran and reactive denied some:
    /// scripts test for the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictive_vs_reactive: Option<f64>,
}

impl Report {
    pub fn new(
        trace: &Trace,
        daemons: &Daemons,
        modes: BTreeMap<&'static str, ModeReport>,
    ) -> Self {
        let tokens_denied: BTreeMap<_, _> = modes
            .iter()
            .map(|(k, m)| (*k, m.total.tokens_denied))
            .collect();
        let predictive_vs_reactive = match (
            tokens_denied.get("predictive"),
            tokens_denied.get("reactive"),
        ) {
            (Some(&p), Some(&r)) if r > 0 => Some(p as f64 / r as f64),
            _ => None,
        };
        Self {
            instances: daemons.instances,
            split: daemons.split,
            modes,
            trace: TraceSummary {
                rows: trace.rows.len(),
                seconds: trace.seconds(),
                tenants: trace.tenants.len(),
                resources: trace.resources.len(),
            },
            summary: Summary {
                tokens_denied,
                predictive_vs_reactive,
            },
            prewarm: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }

    /// Tables per mode and a summary line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "trace: {} rows, {:.0} s, {} tenants, {} resources",
            self.trace.rows, self.trace.seconds, self.trace.tenants, self.trace.resources
        );
        if self.instances > 1 {
            let _ = writeln!(
                out,
                "{} daemons sharing one lease store, rows split {}",
                self.instances, self.split
            );
        }
        for (mode, m) in &self.modes {
            let _ = writeln!(out, "\n{mode}");
            let _ = writeln!(
                out,
                "  {:<16} {:>9} {:>9} {:>9} {:>13} {:>13} {:>13} {:>7}",
                "tenant",
                "requests",
                "granted",
                "denied",
                "tokens_asked",
                "tokens_grant",
                "tokens_denied",
                "denied%"
            );
            let rows = m
                .tenants
                .iter()
                .map(|(k, v)| (k.as_str(), v))
                .chain([("total", &m.total)]);
            for (name, s) in rows {
                let _ = writeln!(
                    out,
                    "  {:<16} {:>9} {:>9} {:>9} {:>13} {:>13} {:>13} {:>6.2}%",
                    name,
                    s.requests,
                    s.granted,
                    s.denied,
                    s.tokens_asked,
                    s.tokens_granted,
                    s.tokens_denied,
                    s.denial_rate * 100.0
                );
            }
            let _ = writeln!(out, "  capacity violations: {}", m.capacity_violations);
            if self.instances > 1
                && let Some(single) = m.single_daemon_denied
            {
                let _ = writeln!(
                    out,
                    "  {}",
                    distribution_cost(m.total.tokens_denied, single)
                );
            }
            for (r, u) in &m.utilization {
                let p = m.pools.get(r).copied().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {r}: utilization {:.1}%; paid by reserve {:.1}%, guaranteed {:.1}%, shared {:.1}%, emergency {:.1}%",
                    u * 100.0,
                    p.reserve * 100.0,
                    p.guaranteed * 100.0,
                    p.shared * 100.0,
                    p.emergency * 100.0
                );
            }
        }
        let denied = &self.summary.tokens_denied;
        let mut line = String::from("\nsummary: tokens denied");
        for (mode, n) in denied {
            let _ = write!(line, " {mode} {n};");
        }
        if let Some(ratio) = self.summary.predictive_vs_reactive {
            let _ = write!(
                line,
                " predictive denied {:.1}% of what reactive denied",
                ratio * 100.0
            );
        }
        let prewarm = self.prewarm.as_ref().map(|p| p.to_text());
        out + &line + "\n" + prewarm.as_deref().unwrap_or("")
    }
}

/// How many more tokens the daemons denied than one daemon did.
fn distribution_cost(distributed: u64, single: u64) -> String {
    let tokens = format!("({distributed} tokens, one daemon {single})");
    if single == 0 {
        return if distributed == 0 {
            "distributed denied as much as one daemon (0 tokens)".into()
        } else {
            format!("distributed denied {distributed} tokens, one daemon none")
        };
    }
    let more = (distributed as f64 / single as f64 - 1.0) * 100.0;
    let (size, word) = if more >= 0.0 {
        (more, "more")
    } else {
        (-more, "fewer")
    };
    format!("distributed denied {size:.1}% {word} than one daemon {tokens}")
}
