//! An allotment: what one tenant has of one resource, its reserve and
//! guaranteed pools, the tiers it may draw from, and its demand counters.
//! The pools and counters are [`Holdings`], shared by every version of the
//! tenant a policy reload makes, so a reload keeps their state and leases
//! granted before it give back to the same pools.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::counters::Counters;
use super::qos::Qos;
use crate::clock::Nanos;
use crate::policy::{Kind, LimitSpec};
use crate::pool::{Bucket, Pool, Tier, Units};

/// The state of an allotment, kept across policy reloads.
#[derive(Debug)]
pub struct Holdings {
    pub reserve: Pool,
    pub guaranteed: Pool,
    pub counters: Counters,
    /// Tokens of the reserve a borrower may not take (its owner may).
    pub lend_keep: AtomicU64,
    /// Set when a reload dropped the tenant or the resource: the pools
    /// only drain from then on, and nothing resizes them again.
    retired: AtomicBool,
}

impl Holdings {
    /// Pools for `limit`: a rate bucket starts full at start, empty when a
    /// reload adds it (`empty_at`), so adding and removing a tenant never
    /// mints a bucketful of tokens.
    pub(super) fn new(kind: Kind, limit: &LimitSpec, empty_at: Option<Nanos>) -> Self {
        let g = limit.guaranteed;
        let bucket = || match empty_at {
            Some(now) => Bucket::new_empty(g as f64, limit.depth(), now),
            None => Bucket::new(g as f64, limit.depth()),
        };
        let (reserve, guaranteed) = match kind {
            Kind::Rate => (Pool::Rate(Bucket::new(0.0, 0)), Pool::Rate(bucket())),
            Kind::Concurrency => (
                Pool::Concurrency(Units::new(0)),
                Pool::Concurrency(Units::new(g)),
            ),
        };
        Self {
            reserve,
            guaranteed,
            counters: Counters::default(),
            lend_keep: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        }
    }

    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Resizes the guaranteed pool to `limit` if it differs (a reload);
    /// tokens held are kept up to the new depth, units held stay held.
    pub(super) fn fit(&self, kind: Kind, limit: &LimitSpec, now: Nanos) {
        let depth = guaranteed_depth(kind, limit);
        if self.guaranteed.size() != limit.guaranteed as f64 || self.guaranteed.depth() != depth {
            self.guaranteed.resize(limit.guaranteed as f64, depth, now);
        }
    }
}

/// The depth of the guaranteed pool `limit` gives: a rate bucket's burst,
/// or the units of a concurrency pool.
pub(super) fn guaranteed_depth(kind: Kind, limit: &LimitSpec) -> u64 {
    match kind {
        Kind::Rate => limit.depth(),
        Kind::Concurrency => limit.guaranteed,
    }
}

/// What one tenant has of one resource under the policy in force: its
/// pools, its limits, and what follows from them.
#[derive(Debug, Clone)]
pub struct Allotment {
    pub holdings: Arc<Holdings>,
    pub limit: LimitSpec,
    /// The most one Acquire could ever be granted (larger is INVALID_ARGUMENT).
    pub max_grant: u64,
    /// The tiers this allotment draws from, in Acquire order: reserve only
    /// if the policy gives it one, shared and emergency as the QoS class
    /// allows. Precomputed so the hot path skips pools it can never use.
    tiers: [Tier; 4],
    /// How many of `tiers` are used, and how many are the tenant's own
    /// (reserve, guaranteed: always a prefix).
    tier_count: u8,
    own_count: u8,
}

impl Allotment {
    /// The reserve's cap: `reserve.max`, else all of `room` (the
    /// resource's capacity outside emergency, here) that this allotment's
    /// guaranteed pool does not hold.
    pub fn max_reserve(&self, room: u64) -> u64 {
        match &self.limit.reserve {
            None => 0,
            Some(spec) => spec
                .max
                .unwrap_or(room.saturating_sub(self.guaranteed_here())),
        }
    }

    /// The guarantee in force here: the policy's, or this daemon's part of
    /// it when a share is in force.
    pub fn guaranteed_here(&self) -> u64 {
        self.holdings.guaranteed.size() as u64
    }

    /// The tiers to draw from: all the class allows, or only its own.
    #[inline]
    pub fn tiers(&self, own_only: bool) -> &[Tier] {
        let n = if own_only {
            self.own_count
        } else {
            self.tier_count
        };
        &self.tiers[..n as usize]
    }

    /// An allotment on `holdings` (new ones, or those of the tenant under
    /// the previous policy) for `limit` and class `qos`; `max_grant` is the
    /// most one Acquire could be granted (see `Resource::allotment`).
    pub(super) fn new(holdings: Arc<Holdings>, limit: LimitSpec, qos: Qos, max_grant: u64) -> Self {
        let mut tiers = [Tier::Guaranteed; 4];
        let mut n = 0;
        let wanted = [
            (Tier::Guaranteed, true),
            (Tier::Reserve, limit.reserve.is_some()),
            (Tier::Shared, qos.borrow),
            (Tier::Emergency, qos.emergency),
        ];
        let mut own_count = 0;
        for (tier, on) in wanted {
            if on {
                tiers[n] = tier;
                n += 1;
                if matches!(tier, Tier::Reserve | Tier::Guaranteed) {
                    own_count = n;
                }
            }
        }
        Self {
            holdings,
            limit,
            max_grant,
            tiers,
            tier_count: n as u8,
            own_count: own_count as u8,
        }
    }
}
