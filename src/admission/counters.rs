//! Demand counters: what the core saw since the planner's last fold, kept
//! per allotment on atomics so counting costs Acquire one CAS.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::pool::Tier;

/// Demand as the core saw it since the last fold. A grant costs one CAS
/// (a request and its tokens, in the tally of the tier that completed the
/// payment; a split grant adds the other tiers' tokens too), and so does a
/// denial. No count carries into another, and none is lost, however late
/// the fold (see [`Tally`]); caller-supplied sums (hold times, sizes)
/// saturate.
#[derive(Debug, Default)]
pub struct Counters {
    /// Per tier: requests whose payment this tier completed, and tokens
    /// paid.
    grants: [Tally; 4],
    /// Denied requests and their tokens.
    denials: Tally,
    /// Work reported done (Release, Report): hold time and size, summed.
    hold_ns: AtomicU64,
    holds: AtomicU64,
    used: AtomicU64,
}

/// Bits of a [`Tally`]'s packed word that count tokens; the rest count
/// requests.
const TOKEN_BITS: u32 = 40;
/// The most tokens the packed word holds (2^40 - 1, about 10^12).
const MAX_TOKENS: u64 = (1 << TOKEN_BITS) - 1;
/// The most requests it holds (2^24 - 1, about 1.6 × 10^7).
const MAX_REQUESTS: u64 = u64::MAX >> TOKEN_BITS;

/// Requests and their tokens since the last fold, packed in one word so
/// one CAS counts both. An add that would take either field past its
/// maximum moves the word (with the add) into two wide words instead, in
/// the same CAS loop: the CAS that empties the word is the one that read
/// its fields, so nothing is counted twice, lost, or carried from one
/// field into the other. The wide words saturate.
#[derive(Debug, Default)]
struct Tally {
    packed: AtomicU64,
    requests: AtomicU64,
    tokens: AtomicU64,
}

impl Tally {
    /// Counts `requests` (0 or 1) asking `tokens`.
    #[inline]
    fn add(&self, requests: u64, tokens: u64) {
        let mut seen = self.packed.load(Ordering::Relaxed);
        loop {
            let (r, t) = (seen >> TOKEN_BITS, seen & MAX_TOKENS);
            let fits = requests <= MAX_REQUESTS - r && tokens <= MAX_TOKENS - t;
            let next = if fits {
                seen + (requests << TOKEN_BITS) + tokens
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
                Ok(_) => return self.spill(r + requests, t.saturating_add(tokens)),
                Err(actual) => seen = actual,
            }
        }
    }

    /// Adds what the packed word could not hold to the wide words.
    #[cold]
    fn spill(&self, requests: u64, tokens: u64) {
        saturating_add(&self.requests, requests);
        saturating_add(&self.tokens, tokens);
    }

    /// Takes (requests, tokens) counted since the last take.
    fn take(&self) -> (u64, u64) {
        let packed = self.packed.swap(0, Ordering::Relaxed);
        let requests = self.requests.swap(0, Ordering::Relaxed);
        let tokens = self.tokens.swap(0, Ordering::Relaxed);
        (
            requests.saturating_add(packed >> TOKEN_BITS),
            tokens.saturating_add(packed & MAX_TOKENS),
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
            saturating_add(&self.hold_ns, ns);
            self.holds.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = used {
            saturating_add(&self.used, n);
        }
    }

    /// Takes what was counted since the last fold.
    pub fn fold(&self) -> Demand {
        let (denials, denied) = self.denials.take();
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
        c.record_grant(&split(MAX_TOKENS - 1), Tier::Guaranteed, MAX_TOKENS - 1);
        c.record_grant(&split(10), Tier::Guaranteed, 10);
        c.record_grant(&split(3), Tier::Guaranteed, 3);
        let d = c.fold();
        assert_eq!(d.requests, 3);
        assert_eq!(d.by_tier[g], MAX_TOKENS + 12);
        // Requests: the field full, as after 2^24 - 1 grants in one fold.
        c.grants[g]
            .packed
            .store((MAX_REQUESTS << TOKEN_BITS) | 5, Ordering::Relaxed);
        c.record_grant(&split(7), Tier::Guaranteed, 7);
        c.record_grant(&split(1), Tier::Guaranteed, 1);
        let d = c.fold();
        assert_eq!(d.requests, MAX_REQUESTS + 2);
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
    fn reported_work_saturates_instead_of_wrapping() {
        let c = Counters::default();
        c.record_work(Some(u64::MAX), Some(u64::MAX));
        c.record_work(Some(u64::MAX), Some(u64::MAX));
        let d = c.fold();
        assert_eq!(d.used, u64::MAX);
        assert_eq!(d.hold, Some(u64::MAX / 2));
    }
}
