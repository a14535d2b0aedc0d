//! The pre-warm view (`prescient simulate --replica-capacity N --startup
//! D`): for each (tenant, resource) of the trace, the replicas two
//! autoscalers would have run, tick by tick, and the demand each left
//! unserved. Both decide at the end of every tick and both wait `startup`
//! for a new replica (a replica no longer wanted goes at once); they differ
//! only in what they size from:
//!
//! * **reactive**: the demand just observed (an HPA on a request-rate
//!   metric);
//! * **forecast**: the demand ahead over a lead time equal to the start-up
//!   delay ([`crate::prewarm::ahead`], what the KEDA scaler serves), read
//!   from the predictive replay's own planner.
//!
//! Unserved demand at a tick is what exceeds `replicas × capacity` there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::AheadLine;
use crate::prewarm::replicas;

/// The flags of the view, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prewarm {
    /// What one replica serves, per second, in the resource's units.
    pub capacity: f64,
    /// How long a new replica takes to serve; also the forecast's lead.
    pub startup: Duration,
}

/// Longest `--startup` accepted.
pub const MAX_STARTUP: Duration = Duration::from_secs(3600);

impl Prewarm {
    /// Both flags or neither; the error names the flag.
    pub fn from_flags(
        capacity: Option<f64>,
        startup: Option<Duration>,
    ) -> Result<Option<Self>, String> {
        match (capacity, startup) {
            (None, None) => Ok(None),
            (Some(_), None) => Err("--startup: required with --replica-capacity".into()),
            (None, Some(_)) => Err("--replica-capacity: required with --startup".into()),
            (Some(c), Some(s)) => {
                if !(c.is_finite() && c > 0.0) {
                    return Err(format!("--replica-capacity: {c} must be a number above 0"));
                }
                if s > MAX_STARTUP {
                    return Err(format!(
                        "--startup: {} is more than {}",
                        humantime::format_duration(s),
                        humantime::format_duration(MAX_STARTUP)
                    ));
                }
                Ok(Some(Self {
                    capacity: c,
                    startup: s,
                }))
            }
        }
    }
}

/// One autoscaler's figures for one series (or all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Scaled {
    /// Demand above what its ready replicas serve, in tokens (units).
    pub unserved: f64,
    /// Σ ready replicas × seconds: what it cost.
    pub replica_seconds: f64,
    pub peak_replicas: u64,
}

impl Scaled {
    fn add(&mut self, o: &Scaled) {
        self.unserved += o.unserved;
        self.replica_seconds += o.replica_seconds;
        self.peak_replicas = self.peak_replicas.max(o.peak_replicas);
    }
}

/// Both autoscalers on one series (or all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Compared {
    pub tokens_asked: f64,
    pub reactive: Scaled,
    pub forecast: Scaled,
}

/// The view's figures: per `tenant/resource` and in total (peaks are the
/// highest of any series).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrewarmReport {
    pub replica_capacity: f64,
    pub startup_seconds: f64,
    pub series: BTreeMap<String, Compared>,
    pub total: Compared,
}

/// Replicas ready at each tick when `desired[k]` is decided at the end of
/// tick `k` and a new replica serves `delay` ticks after it is asked for:
/// those wanted at every decision from `i - 1 - delay` to `i - 1`.
fn ready(desired: &[u64], delay: usize) -> Vec<u64> {
    (0..desired.len())
        .map(|i| {
            if i == 0 {
                return 0;
            }
            let from = (i - 1).checked_sub(delay);
            match from {
                None => 0, // asked before the trace began: none yet
                Some(from) => desired[from..i].iter().copied().min().unwrap_or(0),
            }
        })
        .collect()
}

fn scaled(demand: &[f32], desired: &[u64], p: &Prewarm, tick_secs: f64) -> Scaled {
    let delay = (p.startup.as_secs_f64() / tick_secs).ceil() as usize;
    let mut out = Scaled::default();
    for (d, r) in demand.iter().zip(ready(desired, delay)) {
        out.unserved += (*d as f64 - r as f64 * p.capacity).max(0.0) * tick_secs;
        out.replica_seconds += r as f64 * tick_secs;
        out.peak_replicas = out.peak_replicas.max(r);
    }
    out
}

/// The view over the lines a predictive replay recorded.
pub fn report(lines: &[AheadLine], p: &Prewarm, tick_secs: f64) -> PrewarmReport {
    let mut out = PrewarmReport {
        replica_capacity: p.capacity,
        startup_seconds: p.startup.as_secs_f64(),
        ..Default::default()
    };
    for line in lines {
        let sized = |signal: &[f32]| -> Vec<u64> {
            signal
                .iter()
                .map(|v| replicas(*v as f64, p.capacity))
                .collect()
        };
        let c = Compared {
            tokens_asked: line.demand.iter().map(|d| *d as f64 * tick_secs).sum(),
            reactive: scaled(&line.demand, &sized(&line.demand), p, tick_secs),
            forecast: scaled(&line.demand, &sized(&line.ahead), p, tick_secs),
        };
        out.total.tokens_asked += c.tokens_asked;
        out.total.reactive.add(&c.reactive);
        out.total.forecast.add(&c.forecast);
        out.series
            .insert(format!("{}/{}", line.tenant, line.resource), c);
    }
    out
}

impl PrewarmReport {
    /// One table: per series and in total, each autoscaler's unserved
    /// demand, replica-seconds and peak.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "\npre-warm: replicas of {} per second starting in {} s; reactive sizes from observed demand, forecast from the upper bound over the start-up delay\n",
            self.replica_capacity, self.startup_seconds
        );
        let _ = writeln!(
            out,
            "  {:<24} {:>12} {:>16} {:>16} {:>14} {:>14} {:>8} {:>8}",
            "tenant/resource",
            "tokens_asked",
            "unserved_react",
            "unserved_fcast",
            "replica_s_rea",
            "replica_s_fca",
            "peak_re",
            "peak_fc"
        );
        for (name, c) in self
            .series
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .chain([("total", &self.total)])
        {
            let _ = writeln!(
                out,
                "  {:<24} {:>12.0} {:>16.0} {:>16.0} {:>14.0} {:>14.0} {:>8} {:>8}",
                name,
                c.tokens_asked,
                c.reactive.unserved,
                c.forecast.unserved,
                c.reactive.replica_seconds,
                c.forecast.replica_seconds,
                c.reactive.peak_replicas,
                c.forecast.peak_replicas
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_serves_after_the_startup_and_goes_at_once() {
        // Decided at the end of each tick; two ticks to start.
        assert_eq!(ready(&[3, 3, 3, 3, 0, 0, 5], 2), [0, 0, 0, 3, 3, 0, 0]);
        assert_eq!(ready(&[1, 2, 3], 0), [0, 1, 2]);
    }

    #[test]
    fn unserved_demand_is_what_the_ready_replicas_cannot_take() {
        let p = Prewarm {
            capacity: 10.0,
            startup: Duration::from_secs(1),
        };
        // Demand 25/s from tick 2: reactive asks at the end of tick 2,
        // serves from tick 4; a forecast that saw it coming asked at 0.
        let demand = [0.0, 0.0, 25.0, 25.0, 25.0, 25.0];
        let line = AheadLine {
            tenant: "web".into(),
            resource: "api".into(),
            demand: demand.to_vec(),
            ahead: vec![25.0; 6],
        };
        let r = report(&[line], &p, 1.0);
        assert_eq!(r.total.tokens_asked, 100.0);
        assert_eq!(r.total.reactive.unserved, 50.0);
        assert_eq!(r.total.forecast.unserved, 0.0);
        assert_eq!(r.total.reactive.peak_replicas, 3);
        assert_eq!(r.total.forecast.replica_seconds, 3.0 * 4.0);
        assert!(r.to_text().contains("web/api"));
    }

    #[test]
    fn the_flags_come_together_and_are_checked() {
        let s = Some(Duration::from_secs(60));
        assert_eq!(Prewarm::from_flags(None, None), Ok(None));
        assert!(
            Prewarm::from_flags(Some(5.0), None)
                .unwrap_err()
                .starts_with("--startup:")
        );
        assert!(
            Prewarm::from_flags(None, s)
                .unwrap_err()
                .starts_with("--replica-capacity:")
        );
        assert!(
            Prewarm::from_flags(Some(0.0), s)
                .unwrap_err()
                .contains("above 0")
        );
        assert!(Prewarm::from_flags(Some(f64::NAN), s).is_err());
        let long = Some(Duration::from_secs(7200));
        assert!(
            Prewarm::from_flags(Some(5.0), long)
                .unwrap_err()
                .starts_with("--startup: 2h")
        );
        assert_eq!(
            Prewarm::from_flags(Some(5.0), s),
            Ok(Some(Prewarm {
                capacity: 5.0,
                startup: Duration::from_secs(60)
            }))
        );
    }
}
