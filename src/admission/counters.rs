//! Demand counters: what the core saw since the planner's last fold, kept
//! per allotment on atomics so counting costs Acquire one CAS.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::pool::Tier;

/// Demand as the core saw it since the last fold. A grant costs one CAS
/// (a request and its tokens, in the tally of the tier that completed the
/// payment; a split grant adds the other tiers' tokens too), and so do a
/// denial and a hold time. No count carries into another, and none is
/// lost, however late the fold (see [`Tally`]); sums saturate.
#[derive(Debug, Default)]
pub struct Counters {
    /// Per tier: requests whose payment this tier completed, and tokens
    /// paid.
    grants: [Tally; 4],
    /// Denied requests and their tokens.
    denials: Tally,
    /// Work reported done (Release, Report): how many had a hold time,
    /// and their hold times (ns) summed.
    holds: Tally,
    /// Sizes reported (tokens or units used), summed.
    used: AtomicU64,
}

/// Bits of a [`Tally`]'s packed word that hold the sum; the rest hold
/// the count.
const SUM_BITS: u32 = 40;
/// The largest sum the packed word holds (2^40 - 1: about 10^12 tokens,
/// or 18 minutes of hold time).
const MAX_SUM: u64 = (1 << SUM_BITS) - 1;
/// The largest count it holds (2^24 - 1, about 1.6 × 10^7).
const MAX_COUNT: u64 = u64::MAX >> SUM_BITS;

/// A count and a sum since the last fold (requests and their tokens, or
/// holds and their nanoseconds), packed in one word so one CAS adds to
/// both. An add that would take either field past its maximum moves the
/// word (with the add) into two wide words instead, in the same CAS loop:
/// the CAS that empties the word is the one that read its fields, so
/// nothing is counted twice, lost, or carried from one field into the
/// other. The wide words saturate.
#[derive(Debug, Default)]
struct Tally {
    packed: AtomicU64,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Tally {
    /// Adds `count` (0 or 1) and `sum`.
    #[inline]
    fn add(&self, count: u64, sum: u64) {
        let mut seen = self.packed.load(Ordering::Relaxed);
        loop {
            let (c, s) = (seen >> SUM_BITS, seen & MAX_SUM);
            let fits = count <= MAX_COUNT - c && sum <= MAX_SUM - s;
            let next = if fits {
                seen + (count << SUM_BITS) + sum
            } else {
                0
            };
            match self.packed.compare_exchange_weak(
                seen,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) if fits => return,
                Ok(_) => return self.spill(c + count, s.saturating_add(sum)),
                Err(actual) => seen = actual,
            }
        }
    }

    /// Adds what the packed word could not hold to the wide words.
    #[cold]
    fn spill(&self, count: u64, sum: u64) {
        saturating_add(&self.count, count);
        saturating_add(&self.sum, sum);
    }

    /// Takes (count, sum) added since the last take.
    fn take(&self) -> (u64, u64) {
        let packed = self.packed.swap(0, Ordering::Relaxed);
        let count = self.count.swap(0, Ordering::Relaxed);
        let sum = self.sum.swap(0, Ordering::Relaxed);
        (
            count.saturating_add(packed >> SUM_BITS),
            sum.saturating_add(packed & MAX_SUM),
        )
    }
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
        self.grants[last as usize].add(1, got);
        if split.total() != got {
            self.record_split(split, last);
        }
    }

    #[cold]
    fn record_split(&self, split: &crate::pool::Split, last: Tier) {
        for (k, tier) in Tier::ALL.into_iter().enumerate() {
            let tokens = split.get(tier);
            if tier != last && tokens > 0 {
                self.grants[k].add(0, tokens);
            }
        }
    }

    #[inline]
    pub fn record_denial(&self, amount: u64) {
        self.denials.add(1, amount);
    }

    /// Records finished work: how long it held the resource, how much it
    /// used (off the hot path: Release and Report).
    pub fn record_work(&self, hold: Option<u64>, used: Option<u64>) {
        if let Some(ns) = hold {
            self.holds.add(1, ns);
        }
        if let Some(n) = used {
            saturating_add(&self.used, n);
        }
    }

    /// Takes what was counted since the last fold.
    pub fn fold(&self) -> Demand {
        let (denials, denied) = self.denials.take();
        let (holds, hold_ns) = self.holds.take();
        let mut demand = Demand {
            requests: denials,
            asked: denied,
            denials,
            denied,
            by_tier: [0; 4],
            hold: (holds > 0).then(|| hold_ns / holds),
            used: self.used.swap(0, Ordering::Relaxed),
        };
        for (k, tally) in self.grants.iter().enumerate() {
            let (requests, paid) = tally.take();
            demand.requests = demand.requests.saturating_add(requests);
            demand.by_tier[k] = paid;
            demand.asked = demand.asked.saturating_add(paid);
        }
        demand
    }
}

/// Adds `n`, stopping at `u64::MAX` (off the hot path).
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
    fn a_full_tally_spills_instead_of_carrying() {
        let c = Counters::default();
        let g = Tier::Guaranteed as usize;
        // Tokens: one short of the packed field's maximum, then 10 more.
        let split = |n| Split {
            guaranteed: n,
            ..Split::default()
        };
        c.record_grant(&split(MAX_SUM - 1), Tier::Guaranteed, MAX_SUM - 1);
        c.record_grant(&split(10), Tier::Guaranteed, 10);
        c.record_grant(&split(3), Tier::Guaranteed, 3);
        let d = c.fold();
        assert_eq!(d.requests, 3);
        assert_eq!(d.by_tier[g], MAX_SUM + 12);
        // Requests: the field full, as after 2^24 - 1 grants in one fold.
        c.grants[g]
            .packed
            .store((MAX_COUNT << SUM_BITS) | 5, Ordering::Relaxed);
        c.record_grant(&split(7), Tier::Guaranteed, 7);
        c.record_grant(&split(1), Tier::Guaranteed, 1);
        let d = c.fold();
        assert_eq!(d.requests, MAX_COUNT + 2);
        assert_eq!(d.by_tier[g], 13);
        assert_eq!(d.asked, 13);
        assert_eq!(c.fold(), Demand::default());
    }

    #[test]
    fn racing_counts_and_folds_lose_nothing() {
        let c = Counters::default();
        let (threads, rounds) = (4, 20_000u64);
        let split = Split {
            shared: 3,
            guaranteed: 2,
            ..Split::default()
        };
        let mut folded = Demand::default();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..rounds {
                        c.record_grant(&split, Tier::Shared, 3);
                        c.record_denial(7);
                    }
                });
            }
            for _ in 0..100 {
                let d = c.fold();
                folded.requests += d.requests;
                folded.denied += d.denied;
                folded.by_tier[1] += d.by_tier[1];
                folded.by_tier[2] += d.by_tier[2];
            }
        });
        let d = c.fold();
        let n = threads * rounds;
        assert_eq!(folded.requests + d.requests, 2 * n);
        assert_eq!(folded.denied + d.denied, 7 * n);
        assert_eq!(folded.by_tier[1] + d.by_tier[1], 2 * n);
        assert_eq!(folded.by_tier[2] + d.by_tier[2], 3 * n);
    }

    #[test]
    fn hold_times_past_the_packed_sum_average_exactly() {
        // Three holds of 10 minutes: 30 minutes, past the packed word's 18.
        let c = Counters::default();
        let ten_minutes = 600 * 1_000_000_000;
        for _ in 0..3 {
            c.record_work(Some(ten_minutes), None);
        }
        assert_eq!(c.fold().hold, Some(ten_minutes));
        assert_eq!(c.fold().hold, None);
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
