//! Per (tenant, resource) demand history in fixed memory (DESIGN §6): one
//! sample per tick for the last hour, one per minute for the last 14 days.
//! Each is a [`Ring`], which grows as data arrives up to its bound, so a
//! young or idle series costs little.
//!
//! Memory per series at its bound, with a 1 s tick: per tick 3,600 samples ×
//! 3 × f32 (demand, granted, arrivals) = 43 KB; per minute 20,160 × 3 × f32
//! (demand, arrivals, hold time) = 242 KB; 285 KB in all. 1,000 series ≈
//! 280 MB at the bound (a series only grows to it over 14 days).

use serde::{Deserialize, Serialize};

use super::ring::{Invalid, Ring, check_rate};

/// Samples kept per tick (one hour at 1 s).
pub const TICKS_KEPT: usize = 3_600;
/// Samples kept per minute (14 days).
pub const MINUTES_KEPT: usize = 14 * 24 * 60;
/// Most ticks a history read from outside may claim: thousands of years at
/// 1 ms ticks, far from where tick arithmetic could overflow.
pub const MAX_TICKS: u64 = 1 << 48;

/// One tick's observations of a series, as rates (per second).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Tokens (or units) asked per second, denied included.
    pub demand: f64,
    pub granted: f64,
    /// Acquires per second.
    pub arrivals: f64,
    /// Mean hold time (s) of the work that finished this tick, if any.
    pub hold: Option<f64>,
}

/// The history of one (tenant, resource).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub tick_demand: Ring,
    pub tick_granted: Ring,
    pub tick_arrivals: Ring,
    pub minute_demand: Ring,
    pub minute_arrivals: Ring,
    /// Mean hold time (s) per minute; 0 for a minute with none finished.
    pub minute_hold: Ring,
    /// Partial minute: sums and how many ticks.
    acc_demand: f64,
    acc_arrivals: f64,
    acc_ticks: u32,
    acc_hold: f64,
    acc_holds: u32,
    /// Ticks recorded in all.
    pub ticks: u64,
}

impl Default for History {
    fn default() -> Self {
        Self {
            tick_demand: Ring::new(TICKS_KEPT),
            tick_granted: Ring::new(TICKS_KEPT),
            tick_arrivals: Ring::new(TICKS_KEPT),
            minute_demand: Ring::new(MINUTES_KEPT),
            minute_arrivals: Ring::new(MINUTES_KEPT),
            minute_hold: Ring::new(MINUTES_KEPT),
            acc_demand: 0.0,
            acc_arrivals: 0.0,
            acc_ticks: 0,
            acc_hold: 0.0,
            acc_holds: 0,
            ticks: 0,
        }
    }
}

impl History {
    /// Records one tick; every `ticks_per_minute` ticks, closes a minute
    /// (the mean rate over it). Returns whether a minute was closed.
    pub fn record(&mut self, s: Sample, ticks_per_minute: u32) -> bool {
        self.tick_demand.push(s.demand as f32);
        self.tick_granted.push(s.granted as f32);
        self.tick_arrivals.push(s.arrivals as f32);
        self.ticks += 1;
        self.acc_demand += s.demand;
        self.acc_arrivals += s.arrivals;
        self.acc_ticks += 1;
        if let Some(h) = s.hold {
            self.acc_hold += h;
            self.acc_holds += 1;
        }
        if self.acc_ticks >= ticks_per_minute.max(1) {
            let n = self.acc_ticks as f64;
            self.minute_demand.push((self.acc_demand / n) as f32);
            self.minute_arrivals.push((self.acc_arrivals / n) as f32);
            let hold = if self.acc_holds > 0 {
                self.acc_hold / self.acc_holds as f64
            } else {
                0.0
            };
            self.minute_hold.push(hold as f32);
            self.acc_demand = 0.0;
            self.acc_arrivals = 0.0;
            self.acc_ticks = 0;
            self.acc_hold = 0.0;
            self.acc_holds = 0;
            return true;
        }
        false
    }

    /// The mean hold time (s) of the last hour's minutes that saw work
    /// finish; `None` if none did.
    pub fn recent_hold(&self) -> Option<f64> {
        let recent: Vec<f64> = self
            .minute_hold
            .tail(60)
            .into_iter()
            .filter(|h| *h > 0.0)
            .collect();
        (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64)
    }

    /// Checks a history read from outside: every ring within its bound,
    /// rings recorded together of one length, counters consistent with the
    /// ticks recorded and far from overflow, every sample a rate.
    pub fn check(&self) -> Result<(), Invalid> {
        let tick_rings = [
            ("tick_demand", &self.tick_demand),
            ("tick_granted", &self.tick_granted),
            ("tick_arrivals", &self.tick_arrivals),
        ];
        let minute_rings = [
            ("minute_demand", &self.minute_demand),
            ("minute_arrivals", &self.minute_arrivals),
            ("minute_hold", &self.minute_hold),
        ];
        for (rings, cap) in [(tick_rings, TICKS_KEPT), (minute_rings, MINUTES_KEPT)] {
            let (first, lead) = rings[0];
            for (name, ring) in rings {
                ring.check(name, cap)?;
                if (ring.len(), ring.head()) != (lead.len(), lead.head()) {
                    return Err(Invalid::new(
                        name,
                        format!(
                            "{} samples at head {}, but {first} has {} at head {}: \
                             rings recorded together must match",
                            ring.len(),
                            ring.head(),
                            lead.len(),
                            lead.head()
                        ),
                    ));
                }
            }
        }
        if self.ticks > MAX_TICKS {
            return Err(Invalid::new(
                "ticks",
                format!("{} is more than {MAX_TICKS}", self.ticks),
            ));
        }
        for (name, len) in [
            ("tick_demand", self.tick_demand.len()),
            ("minute_demand", self.minute_demand.len()),
        ] {
            if len as u64 > self.ticks {
                return Err(Invalid::new(
                    "ticks",
                    format!("{}, fewer than the {len} samples of {name}", self.ticks),
                ));
            }
        }
        if self.acc_ticks as u64 > self.ticks {
            return Err(Invalid::new(
                "acc_ticks",
                format!(
                    "{} ticks into the minute, more than the {} recorded",
                    self.acc_ticks, self.ticks
                ),
            ));
        }
        if self.acc_ticks == u32::MAX {
            return Err(Invalid::new(
                "acc_ticks",
                "at its counter's limit: the next tick would overflow",
            ));
        }
        if self.acc_holds > self.acc_ticks {
            return Err(Invalid::new(
                "acc_holds",
                format!(
                    "{} holds in the minute, more than its {} ticks",
                    self.acc_holds, self.acc_ticks
                ),
            ));
        }
        check_rate(|| "acc_demand".into(), self.acc_demand)?;
        check_rate(|| "acc_arrivals".into(), self.acc_arrivals)?;
        check_rate(|| "acc_hold".into(), self.acc_hold)
    }

    /// Bytes this series holds now (allocated, not just used).
    pub fn memory(&self) -> usize {
        4 * [
            &self.tick_demand,
            &self.tick_granted,
            &self.tick_arrivals,
            &self.minute_demand,
            &self.minute_arrivals,
            &self.minute_hold,
        ]
        .iter()
        .map(|r| r.allocated())
        .sum::<usize>()
            + std::mem::size_of::<Self>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_the_mean_rate_of_their_ticks() {
        let mut h = History::default();
        for i in 0..120 {
            let closed = h.record(
                Sample {
                    demand: if i < 60 { 10.0 } else { 20.0 },
                    granted: 0.0,
                    arrivals: 1.0,
                    hold: (i % 60 == 0).then_some(2.0),
                },
                60,
            );
            assert_eq!(closed, i % 60 == 59);
        }
        assert_eq!(h.minute_demand.tail(5), [10.0, 20.0]);
        assert_eq!(h.minute_hold.tail(5), [2.0, 2.0]);
        assert_eq!(h.recent_hold(), Some(2.0));
        assert_eq!(h.tick_demand.len(), 120);
    }

    fn recorded(ticks: usize) -> History {
        let mut h = History::default();
        for i in 0..ticks {
            h.record(
                Sample {
                    demand: i as f64,
                    granted: 1.0,
                    arrivals: 2.0,
                    hold: (i % 2 == 0).then_some(0.5),
                },
                60,
            );
        }
        h
    }

    #[test]
    fn histories_as_recorded_pass_the_check() {
        for ticks in [0, 1, 59, 60, 61, TICKS_KEPT, TICKS_KEPT + 7] {
            assert_eq!(recorded(ticks).check(), Ok(()), "{ticks}");
        }
    }

    #[test]
    fn each_broken_field_is_named() {
        type Edit = fn(&mut History);
        let cases: [(Edit, &str, &str); 14] = [
            (
                |h| h.tick_demand = Ring::new(0),
                "tick_demand.cap",
                "0, but",
            ),
            (
                |h| h.minute_hold = Ring::new(TICKS_KEPT),
                "minute_hold.cap",
                "3600, but this ring keeps 20160",
            ),
            (
                |h| h.tick_granted = Ring::new(TICKS_KEPT),
                "tick_granted",
                "0 samples at head 0, but tick_demand has 70",
            ),
            (
                |h| h.minute_arrivals = Ring::new(MINUTES_KEPT),
                "minute_arrivals",
                "0 samples",
            ),
            (
                |h| h.ticks = MAX_TICKS + 1,
                "ticks",
                "281474976710657 is more",
            ),
            (
                |h| h.ticks = 3,
                "ticks",
                "3, fewer than the 70 samples of tick_demand",
            ),
            (
                |h| h.acc_ticks = 71,
                "acc_ticks",
                "71 ticks into the minute",
            ),
            (
                |h| (h.ticks, h.acc_ticks) = (u32::MAX as u64, u32::MAX),
                "acc_ticks",
                "at its counter's limit",
            ),
            (
                |h| h.acc_holds = 11,
                "acc_holds",
                "11 holds in the minute, more than its 10",
            ),
            (|h| h.acc_demand = f64::NAN, "acc_demand", "NaN is not"),
            (|h| h.acc_arrivals = -1.0, "acc_arrivals", "-1 is not"),
            (|h| h.acc_hold = f64::INFINITY, "acc_hold", "inf is not"),
            (
                |h| {
                    h.tick_demand = Ring::new(TICKS_KEPT);
                    h.tick_demand.push(f32::NAN);
                },
                "tick_demand.buf[0]",
                "NaN is not",
            ),
            (
                |h| {
                    h.minute_demand = Ring::new(MINUTES_KEPT);
                    h.minute_demand.push(-2.0);
                },
                "minute_demand.buf[0]",
                "-2 is not",
            ),
        ];
        for (edit, field, reason) in cases {
            let mut h = recorded(70);
            edit(&mut h);
            let e = h.check().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.reason.starts_with(reason), "{e}");
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut h = History::default();
        for _ in 0..(TICKS_KEPT * 2) {
            h.record(Sample::default(), 1);
        }
        assert_eq!(h.tick_demand.len(), TICKS_KEPT);
        assert!(h.memory() < 300 * 1024, "{}", h.memory());
    }
}
