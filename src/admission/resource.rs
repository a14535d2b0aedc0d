//! One resource: its capacity, its shared and emergency pools, the gate
//! that holds concurrency units under capacity, its waiter queue, and the
//! accounting that sizes its pools (Σ guarantees, Σ reserves, units held
//! beyond pools a reload shrank).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::allotment::{Allotment, Holdings, guaranteed_depth};
use super::loan::Lenders;
use super::qos::Qos;
use super::queue::WaitQueue;
use super::share::{Share, localized};
use crate::clock::{NANOS_PER_SEC, Nanos, duration_to_nanos};
use crate::policy::{Kind, LimitSpec, ResourceSpec};
use crate::pool::{Bucket, Pool, Tier, Units};

/// One resource: its shared-pool tiers, and for concurrency a gate that
/// holds the total so units held never exceed capacity, whatever the
/// planner does to the tiers. Created once per name and kept for the
/// daemon's lifetime: a policy reload reconfigures it in place, so its
/// pools, gate, waiters and leases carry over.
#[derive(Debug)]
pub struct Resource {
    pub id: usize,
    pub name: Arc<str>,
    pub kind: Kind,
    /// Capacity in force here: the policy's, or this daemon's share of it
    /// when many daemons share the resource (DESIGN §9, [`Share`]).
    pub(super) capacity: AtomicU64,
    pub(super) emergency_units: AtomicU64,
    /// The policy's capacity, emergency and Σ guarantees, whatever share
    /// is in force: what one Acquire may ask for is judged by them.
    policy_capacity: AtomicU64,
    policy_emergency: AtomicU64,
    policy_guaranteed: AtomicU64,
    /// This daemon's share, if it shares the resource with others.
    pub(super) share: Mutex<Option<Arc<Share>>>,
    lease_ttl: AtomicU64,
    pub shared: Pool,
    pub emergency: Pool,
    pub gate: Option<Units>,
    /// Σ guaranteed of every tenant, listed or created from defaults.
    pub(super) guaranteed_total: AtomicU64,
    /// Σ reserve sizes.
    pub(super) reserve_total: AtomicU64,
    /// Units held beyond the limits of concurrency pools a reload shrank
    /// (a dropped tenant's, a guarantee or reserve cut below what is in
    /// use): still taken, so kept out of the shared pool until they return.
    pub(super) excess: AtomicU64,
    /// Those pools, until their units are back within their limits.
    draining: Mutex<Vec<Arc<Holdings>>>,
    /// Mean hold time of concurrency leases (ns), learned from Release and
    /// Report; feeds `retry_after` for concurrency resources.
    hold_ewma: AtomicU64,
    pub waiters: WaitQueue,
    /// Holdings whose (rate) reserve is sized above zero: what borrowers
    /// may draw on once the shared pool is empty ([`super::loan`]).
    /// Replaced whole by `set_reserve`, read lock-free by a take.
    pub(super) lenders: Lenders,
    /// Serialises pool resizing (planner, defaults, reload); never on the
    /// hot path.
    sizing: std::sync::Mutex<()>,
}

impl Resource {
    /// A resource with full pools, `guaranteed` (Σ over tenants) carved
    /// out of the shared one.
    pub(super) fn new(id: usize, name: &str, spec: &ResourceSpec, guaranteed: u64) -> Self {
        let emergency = spec.emergency_units();
        let shared = spec.capacity - emergency - guaranteed;
        let (shared, emergency_pool, gate) = match spec.kind {
            Kind::Rate => (
                Pool::Rate(Bucket::new(shared as f64, shared)),
                Pool::Rate(Bucket::new(emergency as f64, emergency)),
                None,
            ),
            Kind::Concurrency => (
                Pool::Concurrency(Units::new(shared)),
                Pool::Concurrency(Units::new(emergency)),
                Some(Units::new(spec.capacity)),
            ),
        };
        let ttl = duration_to_nanos(spec.lease_ttl());
        Self {
            id,
            name: name.into(),
            kind: spec.kind,
            capacity: AtomicU64::new(spec.capacity),
            emergency_units: AtomicU64::new(emergency),
            policy_capacity: AtomicU64::new(spec.capacity),
            policy_emergency: AtomicU64::new(emergency),
            policy_guaranteed: AtomicU64::new(guaranteed),
            share: Mutex::new(None),
            lease_ttl: AtomicU64::new(ttl),
            shared,
            emergency: emergency_pool,
            gate,
            guaranteed_total: AtomicU64::new(guaranteed),
            reserve_total: AtomicU64::new(0),
            excess: AtomicU64::new(0),
            draining: Mutex::new(Vec::new()),
            hold_ewma: AtomicU64::new(ttl.min(NANOS_PER_SEC)),
            waiters: WaitQueue::default(),
            lenders: Lenders::default(),
            sizing: std::sync::Mutex::new(()),
        }
    }

    pub(super) fn lock_sizing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.sizing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The share in force, if any.
    pub fn share(&self) -> Option<Arc<Share>> {
        self.share.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Capacity and emergency in force under the policy's `capacity` and
    /// `emergency` and the share.
    pub(super) fn local_capacity(&self, capacity: u64, emergency: u64) -> (u64, u64) {
        match self.share() {
            None => (capacity, emergency),
            Some(s) => {
                let capacity = s.capacity.min(capacity);
                (capacity, s.emergency.min(emergency).min(capacity))
            }
        }
    }

    /// `limit` as held here: the policy's, or `tenant`'s part of its
    /// guarantee and burst under the share in force. A rate bucket keeps at
    /// least one second of its rate as depth.
    pub(super) fn localize(&self, tenant: &str, limit: &LimitSpec) -> LimitSpec {
        match self.share() {
            None => limit.clone(),
            Some(s) => localized(self.kind, limit, s.part(tenant)),
        }
    }

    /// Capacity: tokens/s (rate) or units held at once (concurrency).
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// The policy's capacity and emergency units, whatever share is in
    /// force here.
    pub fn policy_capacity(&self) -> (u64, u64) {
        (
            self.policy_capacity.load(Ordering::Relaxed),
            self.policy_emergency.load(Ordering::Relaxed),
        )
    }

    /// Held for QoS classes with emergency access.
    pub fn emergency_units(&self) -> u64 {
        self.emergency_units.load(Ordering::Relaxed)
    }

    pub fn lease_ttl(&self) -> Nanos {
        self.lease_ttl.load(Ordering::Relaxed)
    }

    /// Capacity outside the emergency pool: `C − emergency`.
    pub fn room(&self) -> u64 {
        self.capacity().saturating_sub(self.emergency_units())
    }

    /// What is left for the shared pool: `C − Σg − Σr − emergency`, less
    /// units still held beyond shrunk pools.
    pub(super) fn unallocated(&self) -> u64 {
        self.room()
            .saturating_sub(self.guaranteed_total.load(Ordering::Relaxed))
            .saturating_sub(self.reserve_total.load(Ordering::Relaxed))
            .saturating_sub(self.excess.load(Ordering::Relaxed))
    }

    /// Units `h` holds beyond its pools' limits (concurrency only).
    pub(super) fn over_limit(h: &Holdings) -> u64 {
        h.reserve.held_beyond_limit() + h.guaranteed.held_beyond_limit()
    }

    /// Follows `h` if a reload left it holding more than its limits allow.
    /// The caller holds the sizing lock.
    pub(super) fn watch_drain(&self, h: &Arc<Holdings>) {
        if Self::over_limit(h) > 0 {
            let mut draining = self.draining.lock().unwrap_or_else(|p| p.into_inner());
            if !draining.iter().any(|d| Arc::ptr_eq(d, h)) {
                draining.push(h.clone());
            }
        }
    }

    /// Recounts `excess`, forgetting pools back within their limits; true
    /// if it changed. The caller holds the sizing lock.
    pub(super) fn recount_excess(&self) -> bool {
        let mut draining = self.draining.lock().unwrap_or_else(|p| p.into_inner());
        draining.retain(|h| Self::over_limit(h) > 0);
        // An emergency share cut below what is in use counts too.
        let excess = draining.iter().map(|h| Self::over_limit(h)).sum::<u64>()
            + self.emergency.held_beyond_limit();
        self.excess.swap(excess, Ordering::Relaxed) != excess
    }

    /// Gives the shared pool the units that came back to shrunk pools.
    pub(super) fn settle(&self, now: Nanos) {
        if self.excess.load(Ordering::Relaxed) == 0 || self.kind == Kind::Rate {
            return;
        }
        let _sizing = self.lock_sizing();
        if self.recount_excess() {
            self.resize_shared(now);
            self.waiters.wake();
        }
    }

    pub(super) fn resize_shared(&self, now: Nanos) {
        let shared = self.unallocated();
        self.shared.resize(shared as f64, shared, now);
    }

    /// Mean hold time of a lease, in ns.
    pub fn hold_time(&self) -> Nanos {
        self.hold_ewma.load(Ordering::Relaxed)
    }

    /// Folds one observed hold time into the mean (EWMA, α = 1/8).
    pub fn observe_hold(&self, held: Nanos) {
        let _ = self
            .hold_ewma
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                Some(m - m / 8 + held / 8)
            });
    }

    /// Capacity no tenant is guaranteed: `C − Σg − emergency`.
    pub fn unguaranteed(&self) -> u64 {
        self.room()
            .saturating_sub(self.guaranteed_total.load(Ordering::Relaxed))
    }

    /// What reserves may share now: what no tenant is guaranteed, less
    /// units still held beyond pools a reload shrank.
    pub fn reservable(&self) -> u64 {
        self.room()
            .saturating_sub(self.guaranteed_total.load(Ordering::Relaxed))
            .saturating_sub(self.excess.load(Ordering::Relaxed))
    }

    /// Σ guarantees, Σ reserves, and units held beyond pools a reload
    /// shrank: with the shared and emergency limits, they add up to the
    /// capacity once settled (tests check it).
    pub fn allocation(&self) -> (u64, u64, u64) {
        (
            self.guaranteed_total.load(Ordering::Relaxed),
            self.reserve_total.load(Ordering::Relaxed),
            self.excess.load(Ordering::Relaxed),
        )
    }

    /// Units held at once, across all tiers (concurrency only).
    pub fn held(&self) -> u64 {
        self.gate.as_ref().map_or(0, Units::held)
    }

    /// Sets a reserve pool's size, keeping `reserve_total` in step; the
    /// caller holds the sizing lock and resizes the shared pool after.
    pub(super) fn set_reserve_size(&self, reserve: &Pool, size: u64, now: Nanos) {
        let current = reserve.size() as u64;
        self.reserve_total.fetch_add(size, Ordering::Relaxed);
        self.reserve_total.fetch_sub(current, Ordering::Relaxed);
        reserve.resize(size as f64, size, now);
    }

    /// Puts a (re)loaded spec in force: capacity, emergency, lease TTL and
    /// the guarantees (`policy_guaranteed`: Σ over tenants under the
    /// policy; `guaranteed`: Σ of the pools here, the same unless a share
    /// is in force); the shared pool takes what is left. Reserves were
    /// made to fit before.
    pub(super) fn configure(
        &self,
        spec: &ResourceSpec,
        policy_guaranteed: u64,
        guaranteed: u64,
        now: Nanos,
    ) {
        let _sizing = self.lock_sizing();
        let (capacity, emergency) = self.local_capacity(spec.capacity, spec.emergency_units());
        self.policy_capacity.store(spec.capacity, Ordering::Relaxed);
        self.policy_emergency
            .store(spec.emergency_units(), Ordering::Relaxed);
        self.policy_guaranteed
            .store(policy_guaranteed, Ordering::Relaxed);
        self.capacity.store(capacity, Ordering::Relaxed);
        self.emergency_units.store(emergency, Ordering::Relaxed);
        self.lease_ttl
            .store(duration_to_nanos(spec.lease_ttl()), Ordering::Relaxed);
        self.guaranteed_total.store(guaranteed, Ordering::Relaxed);
        // Shrink before grow, so the sum of rates never exceeds capacity.
        if (emergency as f64) < self.emergency.size() {
            self.emergency.resize(emergency as f64, emergency, now);
            self.resize_shared(now);
        } else {
            self.resize_shared(now);
            self.emergency.resize(emergency as f64, emergency, now);
        }
        if let Some(gate) = &self.gate {
            gate.set_limit(capacity);
        }
        self.waiters.wake();
    }

    /// The pool `tier` means for allotment `a` of this resource: its own
    /// reserve and guaranteed pools, or this resource's shared and
    /// emergency ones.
    #[inline]
    pub fn pool<'a>(&'a self, a: &'a Allotment, tier: Tier) -> &'a Pool {
        match tier {
            Tier::Reserve => &a.holdings.reserve,
            Tier::Guaranteed => &a.holdings.guaranteed,
            Tier::Shared => &self.shared,
            Tier::Emergency => &self.emergency,
        }
    }

    /// An allotment of this resource on `holdings` for `limit` and `qos`,
    /// with the most one Acquire could ever be granted: own pools full,
    /// plus what no one is guaranteed (as reserve, or as shared if the
    /// class borrows), plus emergency if the class has access.
    pub(super) fn allotment(
        &self,
        limit: LimitSpec,
        qos: Qos,
        holdings: Arc<Holdings>,
    ) -> Allotment {
        // Judged by the policy, not by a share in force here: a request
        // the whole capacity could grant is valid on every daemon.
        let g = limit.guaranteed;
        let policy_emergency = self.policy_emergency.load(Ordering::Relaxed);
        let room = self
            .policy_capacity
            .load(Ordering::Relaxed)
            .saturating_sub(policy_emergency);
        let max_reserve = match &limit.reserve {
            None => 0,
            Some(spec) => spec.max.unwrap_or(room - g.min(room)),
        };
        let unguaranteed = room.saturating_sub(self.policy_guaranteed.load(Ordering::Relaxed));
        let beyond_own = if qos.borrow {
            unguaranteed
        } else {
            max_reserve.min(unguaranteed)
        };
        let own = guaranteed_depth(self.kind, &limit);
        let emergency = if qos.emergency { policy_emergency } else { 0 };
        Allotment::new(holdings, limit, qos, own + beyond_own + emergency)
    }

    /// Sets allotment `a`'s reserve (tokens/s or units), clamped to its
    /// `reserve.max` and to what is unallocated; the shared pool shrinks or
    /// grows by the same amount. Returns the size applied.
    pub(super) fn set_reserve(&self, a: &Allotment, size: u64, now: Nanos) -> u64 {
        let _sizing = self.lock_sizing();
        let current = a.holdings.reserve.size() as u64;
        if a.holdings.is_retired() {
            // A reload dropped it after the caller looked it up.
            return current;
        }
        let room = self.unallocated() + current;
        let mut size = size.min(room).min(a.max_reserve(self.room()));
        if let Pool::Concurrency(units) = &a.holdings.reserve {
            // Units in use come back on Release; until then the reserve
            // keeps them, or shared would hand them out a second time.
            size = size.max(units.held().min(current));
        }
        if size == current {
            // Resizing to the same size would only round the buckets'
            // fractional tokens away, every tick.
            return size;
        }
        self.reserve_total.fetch_add(size, Ordering::Relaxed);
        self.reserve_total.fetch_sub(current, Ordering::Relaxed);
        // Shrink before grow, so the sum of rates never exceeds capacity;
        // the tokens the shrinking pool can no longer hold move to the
        // growing one (rate pools), so resizing every tick wastes nothing
        // and creates nothing.
        let (from, to) = if size < current {
            (&a.holdings.reserve, &self.shared)
        } else {
            (&self.shared, &a.holdings.reserve)
        };
        let held = from.available(now);
        if size < current {
            a.holdings.reserve.resize(size as f64, size, now);
            self.resize_shared(now);
        } else {
            self.resize_shared(now);
            a.holdings.reserve.resize(size as f64, size, now);
        }
        if self.kind == Kind::Rate {
            to.put_back(held.saturating_sub(from.available(now)), now);
            self.lenders.list(&a.holdings, size > 0);
        }
        self.waiters.wake();
        size
    }
}
