//! Demand counters: what the core saw since the planner's last fold, kept
//! per allotment on atomics so counting costs Acquire one add.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::pool::Tier;

/// Demand as the core saw it since the last fold: on the grant path two
/// atomic adds per Acquire (a request and its tokens, in the words of the
/// tier that completed the payment; a split grant adds the other tiers'
/// tokens too), two on denial. Every count has a 64-bit word of its own, so
/// a late fold cannot carry one field into another; caller-supplied sums
/// (hold times, sizes) saturate.
#[derive(Debug, Default)]
pub struct Counters {
    /// Per tier: requests whose payment this tier completed.
    completed: [AtomicU64; 4],
    /// Per tier: tokens paid.
    paid: [AtomicU64; 4],
    denials: AtomicU64,
    /// Tokens denied.
    denied: AtomicU64,
    /// Work reported done (Release, Report): hold time and size, summed.
    hold_ns: AtomicU64,
    holds: AtomicU64,
    used: AtomicU64,
}

/// One fold of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// Acquires, granted and denied.
    pub requests: u64,
    /// Tokens asked, denied included.
    pub asked: u64,
    pub denials: u64,
    /// Tokens denied.
    pub denied: u64,
    /// Tokens granted, per tier (in [`Tier::ALL`] order).
    pub by_tier: [u64; 4],
    /// Mean hold time of the work finished since the last fold (ns), if any.
    pub hold: Option<u64>,
    /// Tokens or units reported used.
    pub used: u64,
}

impl Demand {
    pub fn granted(&self) -> u64 {
        self.asked.saturating_sub(self.denied)
    }
}

impl Counters {
    /// Counts a grant: `last` is the tier that completed the payment, and
    /// paid `got` of it; a split grant adds the other tiers' tokens too.
    #[inline]
    pub fn record_grant(&self, split: &crate::pool::Split, last: Tier, got: u64) {
        let k = last as usize;
        self.completed[k].fetch_add(1, Ordering::Relaxed);
        self.paid[k].fetch_add(got, Ordering::Relaxed);
        if split.total() != got {
            self.record_split(split, last);
        }
    }

    #[cold]
    fn record_split(&self, split: &crate::pool::Split, last: Tier) {
        for (k, tier) in Tier::ALL.into_iter().enumerate() {
            let tokens = split.get(tier);
            if tier != last && tokens > 0 {
                self.paid[k].fetch_add(tokens, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    pub fn record_denial(&self, amount: u64) {
        self.denials.fetch_add(1, Ordering::Relaxed);
        self.denied.fetch_add(amount, Ordering::Relaxed);
    }

    /// Records finished work: how long it held the resource, how much it
    /// used (off the hot path: Release and Report).
    pub fn record_work(&self, hold: Option<u64>, used: Option<u64>) {
        if let Some(ns) = hold {
            saturating_add(&self.hold_ns, ns);
            self.holds.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = used {
            saturating_add(&self.used, n);
        }
    }

    /// Takes what was counted since the last fold.
    pub fn fold(&self) -> Demand {
        let denials = self.denials.swap(0, Ordering::Relaxed);
        let denied = self.denied.swap(0, Ordering::Relaxed);
        let holds = self.holds.swap(0, Ordering::Relaxed);
        let hold_ns = self.hold_ns.swap(0, Ordering::Relaxed);
        let mut demand = Demand {
            requests: denials,
            asked: denied,
            denials,
            denied,
            by_tier: [0; 4],
            hold: (holds > 0).then(|| hold_ns / holds),
            used: self.used.swap(0, Ordering::Relaxed),
        };
        for k in 0..Tier::ALL.len() {
            let paid = self.paid[k].swap(0, Ordering::Relaxed);
            demand.requests += self.completed[k].swap(0, Ordering::Relaxed);
            demand.by_tier[k] = paid;
            demand.asked = demand.asked.saturating_add(paid);
        }
        demand
    }
}

/// Adds a caller-supplied amount, stopping at `u64::MAX` (off the hot path).
fn saturating_add(word: &AtomicU64, n: u64) {
    let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_add(n))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::Split;

    #[test]
    fn a_late_fold_keeps_every_field_apart() {
        // The old packed word (requests << 40 | tokens) carried tokens into
        // requests past 2^40 tokens in one fold.
        let c = Counters::default();
        let big = 1u64 << 41;
        let split = Split {
            guaranteed: big,
            ..Split::default()
        };
        c.record_grant(&split, Tier::Guaranteed, big);
        c.record_grant(&split, Tier::Guaranteed, big);
        c.record_denial(big);
        let d = c.fold();
        assert_eq!(d.requests, 3);
        assert_eq!(d.denials, 1);
        assert_eq!(d.by_tier[Tier::Guaranteed as usize], 2 * big);
        assert_eq!(d.denied, big);
        assert_eq!(d.asked, 3 * big);
        assert_eq!(c.fold(), Demand::default(), "a fold empties the counters");
    }

    #[test]
    fn reported_work_saturates_instead_of_wrapping() {
        let c = Counters::default();
        c.record_work(Some(u64::MAX), Some(u64::MAX));
        c.record_work(Some(u64::MAX), Some(u64::MAX));
        let d = c.fold();
        assert_eq!(d.used, u64::MAX);
        assert_eq!(d.hold, Some(u64::MAX / 2));
    }
}
