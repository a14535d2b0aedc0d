//! Per (tenant, resource) demand history in fixed memory (DESIGN §6), in
//! tiers sized by what reads them: the forecaster fits on the last
//! [`MAX_FIT_MINUTES`] of per-minute demand and the reserve sizing reads the
//! last hour of hold times, so
//!
//! | tier | samples | span at a 1 s tick | bytes |
//! |---|---:|---:|---:|
//! | per tick: demand, granted, arrivals | 600 × 3 | 10 minutes | 7,200 |
//! | per minute: demand | 5,760 | 4 days (all a fit reads) | 23,040 |
//! | per minute: arrivals, hold time | 1,440 × 2 | 1 day | 11,520 |
//! | per quarter hour: demand | 1,344 | 14 days (two weekly cycles) | 5,376 |
//!
//! 47,136 bytes of samples, under 48 KB with the struct ([`MAX_BYTES`],
//! held by a test). Each tier is a [`Ring`], which grows as data arrives up
//! to its bound, so a young or idle series costs little.
//!
//! [`MAX_FIT_MINUTES`]: super::model::MAX_FIT_MINUTES

use serde::{Deserialize, Serialize};

use super::ring::Ring;

mod check;
pub mod v2;

/// Samples kept per tick (ten minutes at 1 s): nothing fits on them, they
/// show the last minutes at full resolution.
pub const TICKS_KEPT: usize = 600;
/// Minutes of demand kept: exactly what a fit reads, so the forecast sees
/// the same series it did when 14 days of minutes were kept.
pub const MINUTES_KEPT: usize = super::model::MAX_FIT_MINUTES;
/// Minutes of arrivals and hold times kept (one day; the reserve sizing
/// reads the last hour).
pub const DETAIL_MINUTES_KEPT: usize = 1_440;
/// Minutes per sample of the coarse tier.
pub const QUARTER: u32 = 15;
/// Quarter hours of demand kept (14 days: two cycles of a weekly season).
pub const QUARTERS_KEPT: usize = 14 * 24 * 60 / QUARTER as usize;
/// Most bytes a series holds at its bound, samples and struct.
pub const MAX_BYTES: usize = 48_000;
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
    /// Mean demand per quarter hour.
    pub quarter_demand: Ring,
    /// Partial minute: sums and how many ticks.
    pub(super) acc_demand: f64,
    pub(super) acc_arrivals: f64,
    pub(super) acc_ticks: u32,
    pub(super) acc_hold: f64,
    pub(super) acc_holds: u32,
    /// Partial quarter hour: sum of its minutes' demand, and how many.
    pub(super) acc_quarter: f64,
    pub(super) acc_minutes: u32,
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
            minute_arrivals: Ring::new(DETAIL_MINUTES_KEPT),
            minute_hold: Ring::new(DETAIL_MINUTES_KEPT),
            quarter_demand: Ring::new(QUARTERS_KEPT),
            acc_demand: 0.0,
            acc_arrivals: 0.0,
            acc_ticks: 0,
            acc_hold: 0.0,
            acc_holds: 0,
            acc_quarter: 0.0,
            acc_minutes: 0,
            ticks: 0,
        }
    }
}

impl History {
    /// Records one tick; every `ticks_per_minute` ticks, closes a minute
    /// (the mean rate over it). Returns whether a minute was closed.
    pub fn record(&mut self, s: Sample, ticks_per_minute: u32) -> bool {
        self.push_tick(s.demand as f32, s.granted as f32, s.arrivals as f32);
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
            let hold = if self.acc_holds > 0 {
                self.acc_hold / self.acc_holds as f64
            } else {
                0.0
            };
            self.push_minute(
                (self.acc_demand / n) as f32,
                (self.acc_arrivals / n) as f32,
                hold as f32,
            );
            self.acc_demand = 0.0;
            self.acc_arrivals = 0.0;
            self.acc_ticks = 0;
            self.acc_hold = 0.0;
            self.acc_holds = 0;
            return true;
        }
        false
    }

    pub(super) fn push_tick(&mut self, demand: f32, granted: f32, arrivals: f32) {
        self.tick_demand.push(demand);
        self.tick_granted.push(granted);
        self.tick_arrivals.push(arrivals);
    }

    /// Closes a minute; every [`QUARTER`] minutes, a quarter hour too.
    pub(super) fn push_minute(&mut self, demand: f32, arrivals: f32, hold: f32) {
        self.minute_demand.push(demand);
        self.minute_arrivals.push(arrivals);
        self.minute_hold.push(hold);
        self.acc_quarter += demand as f64;
        self.acc_minutes += 1;
        if self.acc_minutes >= QUARTER {
            self.quarter_demand
                .push((self.acc_quarter / QUARTER as f64) as f32);
            self.acc_quarter = 0.0;
            self.acc_minutes = 0;
        }
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

    /// Bytes this series holds now (allocated, not just used).
    pub fn memory(&self) -> usize {
        4 * self
            .rings()
            .iter()
            .map(|(_, r, _)| r.allocated())
            .sum::<usize>()
            + std::mem::size_of::<Self>()
    }

    /// Every ring, its name and its bound.
    pub(super) fn rings(&self) -> [(&'static str, &Ring, usize); 7] {
        [
            ("tick_demand", &self.tick_demand, TICKS_KEPT),
            ("tick_granted", &self.tick_granted, TICKS_KEPT),
            ("tick_arrivals", &self.tick_arrivals, TICKS_KEPT),
            ("minute_demand", &self.minute_demand, MINUTES_KEPT),
            (
                "minute_arrivals",
                &self.minute_arrivals,
                DETAIL_MINUTES_KEPT,
            ),
            ("minute_hold", &self.minute_hold, DETAIL_MINUTES_KEPT),
            ("quarter_demand", &self.quarter_demand, QUARTERS_KEPT),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::model::MAX_FIT_MINUTES;

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

    #[test]
    fn quarter_hours_are_the_mean_demand_of_their_minutes() {
        let mut h = History::default();
        for i in 0..31 {
            h.record(
                Sample {
                    demand: i as f64,
                    ..Sample::default()
                },
                1,
            );
        }
        // Minutes 0..=14 and 15..=29; minute 30 waits in the accumulator.
        assert_eq!(h.quarter_demand.tail(5), [7.0, 22.0]);
        assert_eq!((h.acc_minutes, h.acc_quarter), (1, 30.0));
    }

    pub(super) fn recorded(ticks: usize) -> History {
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

    /// The bound in bytes, from the ring bounds and f32 samples.
    const BOUND: usize = 4
        * (3 * TICKS_KEPT + MINUTES_KEPT + 2 * DETAIL_MINUTES_KEPT + QUARTERS_KEPT)
        + std::mem::size_of::<History>();

    #[test]
    fn a_series_at_its_bound_holds_at_most_48_kb() {
        const { assert!(BOUND <= MAX_BYTES) };
        // One tick a minute: the coarsest tier fills after 14 days' minutes.
        let mut h = History::default();
        for _ in 0..QUARTERS_KEPT * QUARTER as usize + 100 {
            h.record(Sample::default(), 1);
        }
        for (name, ring, cap) in h.rings() {
            assert_eq!((ring.len(), ring.allocated()), (cap, cap), "{name}");
        }
        // What the rings really allocated, not what they use.
        assert_eq!(h.memory(), BOUND);
        assert!(h.memory() <= MAX_BYTES, "{}", h.memory());
    }

    #[test]
    fn a_fit_reads_every_minute_it_read_before_the_tiers() {
        const { assert!(MINUTES_KEPT >= MAX_FIT_MINUTES) };
        let mut h = History::default();
        let minutes = MAX_FIT_MINUTES + 500;
        for i in 0..minutes {
            h.record(
                Sample {
                    demand: i as f64,
                    ..Sample::default()
                },
                1,
            );
        }
        let fit = h.minute_demand.tail(MAX_FIT_MINUTES);
        let newest: Vec<f64> = (minutes - MAX_FIT_MINUTES..minutes)
            .map(|i| i as f64)
            .collect();
        assert_eq!(fit, newest);
    }
}
