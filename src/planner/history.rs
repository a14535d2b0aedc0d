//! Per (tenant, resource) demand history in fixed memory (DESIGN §6): one
//! sample per tick for the last hour, one per minute for the last 14 days.
//! Ring buffers grow as data arrives, up to their bound, so a young or idle
//! series costs little.
//!
//! Memory per series at its bound, with a 1 s tick: per tick 3,600 samples ×
//! 3 × f32 (demand, granted, arrivals) = 43 KB; per minute 20,160 × 3 × f32
//! (demand, arrivals, hold time) = 242 KB; 285 KB in all. 1,000 series ≈
//! 280 MB at the bound (a series only grows to it over 14 days).

use serde::{Deserialize, Serialize};

/// Samples kept per tick (one hour at 1 s).
pub const TICKS_KEPT: usize = 3_600;
/// Samples kept per minute (14 days).
pub const MINUTES_KEPT: usize = 14 * 24 * 60;

/// A bounded ring of samples, oldest first when read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ring {
    buf: Vec<f32>,
    /// Next write position once the ring is full.
    head: usize,
    cap: usize,
}

impl Ring {
    pub fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            head: 0,
            cap,
        }
    }

    pub fn push(&mut self, v: f32) {
        if self.buf.len() < self.cap {
            if self.buf.len() == self.buf.capacity() {
                // Grow by doubling, but never past the bound: a full ring
                // holds exactly `cap` samples, no slack.
                let extra = self.buf.len().max(64).min(self.cap - self.buf.len());
                self.buf.reserve_exact(extra);
            }
            self.buf.push(v);
        } else {
            self.buf[self.head] = v;
            self.head = (self.head + 1) % self.cap;
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The last `n` samples (fewer if there are not that many), oldest
    /// first, as f64 for the models.
    pub fn tail(&self, n: usize) -> Vec<f64> {
        let n = n.min(self.buf.len());
        let (newer, older) = self.buf.split_at(self.head);
        older
            .iter()
            .chain(newer)
            .skip(self.buf.len() - n)
            .map(|&v| v as f64)
            .collect()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<f32> {
        if self.buf.is_empty() {
            None
        } else if self.buf.len() < self.cap || self.head == 0 {
            self.buf.last().copied()
        } else {
            Some(self.buf[self.head - 1])
        }
    }
}

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
        .map(|r| r.buf.capacity())
        .sum::<usize>()
            + std::mem::size_of::<Self>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_newest_cap_samples_in_order() {
        let mut r = Ring::new(3);
        for v in 1..=5 {
            r.push(v as f32);
        }
        assert_eq!(r.tail(10), [3.0, 4.0, 5.0]);
        assert_eq!(r.tail(2), [4.0, 5.0]);
        assert_eq!(r.last(), Some(5.0));
        assert_eq!(r.len(), 3);
    }

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
    fn memory_is_bounded() {
        let mut h = History::default();
        for _ in 0..(TICKS_KEPT * 2) {
            h.record(Sample::default(), 1);
        }
        assert_eq!(h.tick_demand.len(), TICKS_KEPT);
        assert!(h.memory() < 300 * 1024, "{}", h.memory());
    }
}
