//! Demand counters: what the core saw since the planner's last fold, kept
//! per allotment on atomics so counting costs Acquire one add.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::pool::Tier;

/// Demand as the core saw it since the last fold: one atomic add per
/// Acquire on the grant path (requests and tokens packed in one word, in
/// the word of the tier that completed the payment; a split grant adds the
/// other tiers' tokens too), one on denial. The planner folds (swaps to
/// zero) every tick, so a word holds one tick's worth: up to 2^24 requests
/// and 2^40 tokens.
#[derive(Debug, Default)]
pub struct Counters {
    /// Per tier: `requests completed here << 40 | tokens paid`.
    granted: [AtomicU64; 4],
    /// `requests << 40 | tokens` denied.
    denied: AtomicU64,
    /// Work reported done (Release, Report): hold time and size, summed.
    hold_ns: AtomicU64,
    holds: AtomicU64,
    used: AtomicU64,
}

const TOKEN_BITS: u32 = 40;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;

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
        self.asked - self.denied
    }
}

impl Counters {
    /// Counts a grant: `last` is the tier that completed the payment, and
    /// paid `got` of it; a split grant adds the other tiers' tokens too.
    #[inline]
    pub fn record_grant(&self, split: &crate::pool::Split, last: Tier, got: u64) {
        let k = last as usize;
        self.granted[k].fetch_add((1 << TOKEN_BITS) | got.min(TOKEN_MASK), Ordering::Relaxed);
        if split.total() != got {
            self.record_split(split, last);
        }
    }

    #[cold]
    fn record_split(&self, split: &crate::pool::Split, last: Tier) {
        for (k, tier) in Tier::ALL.into_iter().enumerate() {
            let tokens = split.get(tier).min(TOKEN_MASK);
            if tier != last && tokens > 0 {
                self.granted[k].fetch_add(tokens, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    pub fn record_denial(&self, amount: u64) {
        self.denied.fetch_add(
            (1 << TOKEN_BITS) | amount.min(TOKEN_MASK),
            Ordering::Relaxed,
        );
    }

    /// Records finished work: how long it held the resource, how much it
    /// used (off the hot path: Release and Report).
    pub fn record_work(&self, hold: Option<u64>, used: Option<u64>) {
        if let Some(ns) = hold {
            self.hold_ns.fetch_add(ns, Ordering::Relaxed);
            self.holds.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = used {
            self.used.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Takes what was counted since the last fold.
    pub fn fold(&self) -> Demand {
        let d = self.denied.swap(0, Ordering::Relaxed);
        let holds = self.holds.swap(0, Ordering::Relaxed);
        let hold_ns = self.hold_ns.swap(0, Ordering::Relaxed);
        let mut demand = Demand {
            requests: d >> TOKEN_BITS,
            asked: d & TOKEN_MASK,
            denials: d >> TOKEN_BITS,
            denied: d & TOKEN_MASK,
            by_tier: [0; 4],
            hold: (holds > 0).then(|| hold_ns / holds),
            used: self.used.swap(0, Ordering::Relaxed),
        };
        for (k, word) in self.granted.iter().enumerate() {
            let g = word.swap(0, Ordering::Relaxed);
            demand.requests += g >> TOKEN_BITS;
            demand.by_tier[k] = g & TOKEN_MASK;
            demand.asked += g & TOKEN_MASK;
        }
        demand
    }
}
