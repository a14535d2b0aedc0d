//! An allotment: what one tenant has of one resource, its reserve and
//! guaranteed pools, the tiers it may draw from, and its demand counters.

use super::counters::Counters;
use super::registry::{Qos, Resource};
use crate::policy::{Kind, LimitSpec};
use crate::pool::{Bucket, Pool, Tier, Units};

/// What one tenant has of one resource: its reserve and guaranteed pools.
#[derive(Debug)]
pub struct Allotment {
    pub reserve: Pool,
    pub guaranteed: Pool,
    pub limit: LimitSpec,
    /// The most one Acquire could ever be granted (larger is INVALID_ARGUMENT).
    pub max_grant: u64,
    pub counters: Counters,
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
    /// The reserve's cap: `reserve.max`, else all that is not guaranteed.
    pub fn max_reserve(&self, r: &Resource) -> u64 {
        match &self.limit.reserve {
            None => 0,
            Some(spec) => spec
                .max
                .unwrap_or(r.capacity - r.emergency_units - self.limit.guaranteed),
        }
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

    pub fn pool<'a>(&'a self, tier: Tier, r: &'a Resource) -> &'a Pool {
        match tier {
            Tier::Reserve => &self.reserve,
            Tier::Guaranteed => &self.guaranteed,
            Tier::Shared => &r.shared,
            Tier::Emergency => &r.emergency,
        }
    }
}

pub(super) fn allotment(r: &Resource, limit: LimitSpec, qos: Qos) -> Allotment {
    let g = limit.guaranteed;
    let (reserve, guaranteed) = match r.kind {
        Kind::Rate => (
            Pool::Rate(Bucket::new(0.0, 0)),
            Pool::Rate(Bucket::new(g as f64, limit.depth())),
        ),
        Kind::Concurrency => (
            Pool::Concurrency(Units::new(0)),
            Pool::Concurrency(Units::new(g)),
        ),
    };
    let room = r.capacity - r.emergency_units;
    let max_reserve = match &limit.reserve {
        None => 0,
        Some(spec) => spec.max.unwrap_or(room - g.min(room)),
    };
    // Best case for one request: own pools full, plus what no one is
    // guaranteed (as reserve, or as shared if the class borrows), plus
    // emergency if the class has access.
    let unguaranteed = r.reservable();
    let beyond_own = if qos.borrow {
        unguaranteed
    } else {
        max_reserve.min(unguaranteed)
    };
    let own = match r.kind {
        Kind::Rate => limit.depth(),
        Kind::Concurrency => g,
    };
    let max_grant = own + beyond_own + if qos.emergency { r.emergency_units } else { 0 };
    let mut tiers = [Tier::Guaranteed; 4];
    let mut n = 0;
    let wanted = [
        (Tier::Reserve, limit.reserve.is_some()),
        (Tier::Guaranteed, true),
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
    Allotment {
        reserve,
        guaranteed,
        limit,
        max_grant,
        counters: Counters::default(),
        tiers,
        tier_count: n as u8,
        own_count: own_count as u8,
    }
}
