//! Pre-warming: the demand a workload must be ready for over the next lead
//! time (its replicas' start-up delay), read from the planner's published
//! forecast. The KEDA face serves it as a metric (`src/grpc/keda/`) and the
//! simulator's pre-warm view replays it (`src/sim/prewarm.rs`), so both
//! size replicas from the same number.

use std::time::{Duration, SystemTime};

use crate::planner::ForecastView;

/// The demand ahead of a series over a lead time, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ahead {
    /// To be ready for: the forecast's upper bound (what replicas are
    /// sized from).
    pub upper: f64,
    /// Expected: the forecast's mean (what says whether the workload
    /// should run at all; the upper bound never reaches zero, as the
    /// forecast keeps a floor of uncertainty).
    pub expected: f64,
}

/// The demand ahead over `[at, at + lead]`: the highest band of every
/// minute the lead time touches, each bound at least the demand seen in
/// the last tick. The observed rate is a floor, so a series whose model is
/// still the EWMA of its first minutes (cold start) reads as what it sees
/// now, and a burst the forecast missed still counts.
pub fn ahead(view: &ForecastView, at: SystemTime, lead: Duration) -> Ahead {
    let until = at + lead;
    let mut out = Ahead {
        upper: view.demand,
        expected: view.demand,
    };
    // Point 0 is the minute in progress; later points start on their
    // minute's boundary.
    for (k, p) in view.points.iter().enumerate() {
        if k == 0 || p.at <= until {
            out.upper = out.upper.max(p.band.upper);
            out.expected = out.expected.max(p.band.mean);
        }
    }
    let finite = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    Ahead {
        upper: finite(out.upper),
        expected: finite(out.expected),
    }
}

/// Replicas of `capacity` (per second each) that serve `demand`: the
/// ceiling, as Kubernetes' HPA computes it from an average-value target.
pub fn replicas(demand: f64, capacity: f64) -> u64 {
    if !(demand > 0.0 && capacity > 0.0) {
        return 0;
    }
    // Float noise (3.0000000001 replicas) must not add a pod.
    ((demand / capacity) - 1e-9).ceil().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::Point;
    use crate::planner::forecast::Band;

    fn view(demand: f64, uppers: &[f64], start: SystemTime) -> ForecastView {
        ForecastView {
            tenant: "web".into(),
            resource: "api".into(),
            reserve: 0,
            demand,
            model: "mstl",
            seasons: Vec::new(),
            // The minute in progress is 20 s from its end.
            points: uppers
                .iter()
                .enumerate()
                .map(|(k, &upper)| Point {
                    at: if k == 0 {
                        start
                    } else {
                        start + Duration::from_secs(20 + 60 * (k as u64 - 1))
                    },
                    band: Band {
                        mean: upper / 2.0,
                        lower: 0.0,
                        upper,
                    },
                })
                .collect(),
            accuracy: Default::default(),
        }
    }

    #[test]
    fn the_lead_time_takes_in_every_minute_it_touches() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let v = view(1.0, &[2.0, 100.0, 7.0, 300.0], t0);
        let over = |secs| ahead(&v, t0, Duration::from_secs(secs)).upper;
        assert_eq!(over(1), 2.0, "only the minute in progress");
        assert_eq!(over(19), 2.0);
        assert_eq!(over(20), 100.0, "the next minute starts at the lead's end");
        assert_eq!(over(80), 100.0);
        assert_eq!(over(140), 300.0);
        assert_eq!(
            over(86_400),
            300.0,
            "past the published points: all of them"
        );
        let mean = ahead(&v, t0, Duration::from_secs(20)).expected;
        assert_eq!(mean, 50.0, "the means over the same minutes");
    }

    #[test]
    fn the_observed_rate_is_a_floor() {
        let t0 = SystemTime::UNIX_EPOCH;
        let v = view(50.0, &[2.0, 10.0], t0);
        let a = ahead(&v, t0, Duration::from_secs(600));
        assert_eq!((a.upper, a.expected), (50.0, 50.0));
        let empty = view(3.0, &[], t0);
        let a = ahead(&empty, t0, Duration::from_secs(60));
        assert_eq!((a.upper, a.expected), (3.0, 3.0));
        let broken = view(f64::NAN, &[f64::INFINITY], t0);
        let a = ahead(&broken, t0, Duration::from_secs(60));
        assert_eq!((a.upper, a.expected), (0.0, 0.0));
    }

    #[test]
    fn replicas_are_the_ceiling_of_demand_over_capacity() {
        assert_eq!(replicas(0.0, 50.0), 0);
        assert_eq!(replicas(0.1, 50.0), 1);
        assert_eq!(replicas(50.0, 50.0), 1);
        assert_eq!(replicas(50.5, 50.0), 2);
        assert_eq!(replicas(0.3 * 10.0, 0.1 * 10.0), 3, "float noise");
        assert_eq!(replicas(f64::NAN, 50.0), 0);
        assert_eq!(replicas(10.0, 0.0), 0);
    }
}
