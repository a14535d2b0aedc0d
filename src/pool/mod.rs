//! Pools: sources of tokens for one resource (DESIGN §2). A [`Pool`] is a
//! token bucket for `kind: rate` or a unit counter for `kind: concurrency`;
//! the four [`Tier`]s are reserve, guaranteed, shared and emergency. Pools
//! know nothing of tenants or requests: admission composes them.

mod bucket;
#[cfg(all(test, loom))]
mod loom;
mod sync;
mod units;
mod word;

pub use bucket::Bucket;
pub use units::Units;

use crate::clock::Nanos;

/// The four tiers, in the order Acquire draws from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Reserve = 0,
    Guaranteed = 1,
    Shared = 2,
    Emergency = 3,
}

impl Tier {
    pub const ALL: [Tier; 4] = [
        Tier::Reserve,
        Tier::Guaranteed,
        Tier::Shared,
        Tier::Emergency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Reserve => "reserve",
            Tier::Guaranteed => "guaranteed",
            Tier::Shared => "shared",
            Tier::Emergency => "emergency",
        }
    }
}

/// How much each tier paid (or should get back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    pub reserve: u64,
    pub guaranteed: u64,
    pub shared: u64,
    pub emergency: u64,
}

impl Split {
    pub fn total(&self) -> u64 {
        self.reserve + self.guaranteed + self.shared + self.emergency
    }

    pub fn get(&self, tier: Tier) -> u64 {
        match tier {
            Tier::Reserve => self.reserve,
            Tier::Guaranteed => self.guaranteed,
            Tier::Shared => self.shared,
            Tier::Emergency => self.emergency,
        }
    }

    pub fn set(&mut self, tier: Tier, n: u64) {
        match tier {
            Tier::Reserve => self.reserve = n,
            Tier::Guaranteed => self.guaranteed = n,
            Tier::Shared => self.shared = n,
            Tier::Emergency => self.emergency = n,
        }
    }
}

/// A bucket at one instant ([`Bucket::outlook`]), every figure from the
/// same state and parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlook {
    /// Tokens that could be taken now.
    pub available: u64,
    /// Tokens held (fractional, negative when in debt).
    pub fill: f64,
    /// The refill rate actually applied, tokens/s.
    pub rate: f64,
    /// Depth in tokens.
    pub depth: u64,
}

/// One pool of either kind.
#[derive(Debug)]
pub enum Pool {
    Rate(Bucket),
    Concurrency(Units),
}

impl Pool {
    /// Takes up to `want`; returns (taken, available before the take).
    #[inline]
    pub fn take_up_to(&self, want: u64, now: Nanos) -> (u64, u64) {
        match self {
            Pool::Rate(b) => b.take_up_to(want, now),
            Pool::Concurrency(u) => u.take_up_to(want),
        }
    }

    #[inline]
    pub fn put_back(&self, n: u64, now: Nanos) {
        if n == 0 {
            return;
        }
        match self {
            Pool::Rate(b) => b.put_back(n, now),
            Pool::Concurrency(u) => u.put_back(n),
        }
    }

    #[inline]
    pub fn available(&self, now: Nanos) -> u64 {
        match self {
            Pool::Rate(b) => b.available(now),
            Pool::Concurrency(u) => u.available(),
        }
    }

    /// Tokens owed (a bucket a Report charged beyond empty); 0 for a counter.
    pub fn debt(&self, now: Nanos) -> u64 {
        match self {
            Pool::Rate(b) => b.debt(now),
            Pool::Concurrency(_) => 0,
        }
    }

    /// Size of the pool: tokens/s for a bucket, units for a counter.
    pub fn size(&self) -> f64 {
        match self {
            Pool::Rate(b) => b.rate(),
            Pool::Concurrency(u) => u.limit() as f64,
        }
    }

    /// Units taken beyond the limit (a counter resized below what is in
    /// use); always 0 for a bucket.
    pub fn held_beyond_limit(&self) -> u64 {
        match self {
            Pool::Rate(_) => 0,
            Pool::Concurrency(u) => u.held().saturating_sub(u.limit()),
        }
    }

    /// Depth: a bucket's in tokens, a counter's limit in units.
    pub fn depth(&self) -> u64 {
        match self {
            Pool::Rate(b) => b.depth(),
            Pool::Concurrency(u) => u.limit(),
        }
    }

    /// Resizes: a bucket to `size` tokens/s with `depth` tokens, a counter
    /// to `size` units (depth unused).
    pub fn resize(&self, size: f64, depth: u64, now: Nanos) {
        match self {
            Pool::Rate(b) => b.set_rate(size, depth, now),
            Pool::Concurrency(u) => u.set_limit(size.max(0.0) as u64),
        }
    }
}
