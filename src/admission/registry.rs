//! The compiled policy: resources and tenants interned once at load, so the
//! hot path does one sharded-map lookup by tenant name and indexes the rest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use foldhash::fast::RandomState;

use super::AdmissionError;
pub use super::allotment::Allotment;
use super::allotment::{Holdings, allotment};
pub use super::counters::{Counters, Demand};
use super::waiters::WaitQueue;
use crate::clock::{NANOS_PER_SEC, Nanos, duration_to_nanos};
use crate::policy::{Kind, LimitSpec, Policy, QosSpec, ResourceSpec, TenantSpec};
use crate::pool::{Bucket, Pool, Units};

/// A QoS class, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Qos {
    pub weight: u32,
    pub borrow: bool,
    pub emergency: bool,
}

impl From<QosSpec> for Qos {
    fn from(q: QosSpec) -> Self {
        Self {
            weight: q.weight,
            borrow: q.borrow,
            emergency: q.emergency,
        }
    }
}

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
    capacity: AtomicU64,
    emergency_units: AtomicU64,
    lease_ttl: AtomicU64,
    pub shared: Pool,
    pub emergency: Pool,
    pub gate: Option<Units>,
    /// Σ guaranteed of every tenant, listed or created from defaults.
    guaranteed_total: AtomicU64,
    /// Σ reserve sizes.
    reserve_total: AtomicU64,
    /// Units held beyond the limits of concurrency pools a reload shrank
    /// (a dropped tenant's, a guarantee or reserve cut below what is in
    /// use): still taken, so kept out of the shared pool until they return.
    excess: AtomicU64,
    /// Those pools, until their units are back within their limits.
    draining: Mutex<Vec<Arc<Holdings>>>,
    /// Mean hold time of concurrency leases (ns), learned from Release and
    /// Report; feeds `retry_after` for concurrency resources.
    hold_ewma: AtomicU64,
    pub waiters: WaitQueue,
    /// Serialises pool resizing (planner, defaults, reload); never on the
    /// hot path.
    sizing: std::sync::Mutex<()>,
}

impl Resource {
    /// A resource with full pools, `guaranteed` (Σ over tenants) carved
    /// out of the shared one.
    fn new(id: usize, name: &str, spec: &ResourceSpec, guaranteed: u64) -> Self {
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
            sizing: std::sync::Mutex::new(()),
        }
    }

    fn lock_sizing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.sizing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Capacity: tokens/s (rate) or units held at once (concurrency).
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
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
    fn unallocated(&self) -> u64 {
        self.room()
            .saturating_sub(self.guaranteed_total.load(Ordering::Relaxed))
            .saturating_sub(self.reserve_total.load(Ordering::Relaxed))
            .saturating_sub(self.excess.load(Ordering::Relaxed))
    }

    /// Units `h` holds beyond its pools' limits (concurrency only).
    fn over_limit(h: &Holdings) -> u64 {
        h.reserve.held_beyond_limit() + h.guaranteed.held_beyond_limit()
    }

    /// Follows `h` if a reload left it holding more than its limits allow.
    /// The caller holds the sizing lock.
    fn watch_drain(&self, h: &Arc<Holdings>) {
        if Self::over_limit(h) > 0 {
            let mut draining = self.draining.lock().unwrap_or_else(|p| p.into_inner());
            if !draining.iter().any(|d| Arc::ptr_eq(d, h)) {
                draining.push(h.clone());
            }
        }
    }

    /// Recounts `excess`, forgetting pools back within their limits; true
    /// if it changed. The caller holds the sizing lock.
    fn recount_excess(&self) -> bool {
        let mut draining = self.draining.lock().unwrap_or_else(|p| p.into_inner());
        draining.retain(|h| Self::over_limit(h) > 0);
        // An emergency share cut below what is in use counts too.
        let excess = draining.iter().map(|h| Self::over_limit(h)).sum::<u64>()
            + self.emergency.held_beyond_limit();
        self.excess.swap(excess, Ordering::Relaxed) != excess
    }

    /// Gives the shared pool the units that came back to shrunk pools.
    fn settle(&self, now: Nanos) {
        if self.excess.load(Ordering::Relaxed) == 0 || self.kind == Kind::Rate {
            return;
        }
        let _sizing = self.lock_sizing();
        if self.recount_excess() {
            self.resize_shared(now);
            self.waiters.wake();
        }
    }

    fn resize_shared(&self, now: Nanos) {
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
    fn set_reserve_size(&self, reserve: &Pool, size: u64, now: Nanos) {
        let current = reserve.size() as u64;
        self.reserve_total.fetch_add(size, Ordering::Relaxed);
        self.reserve_total.fetch_sub(current, Ordering::Relaxed);
        reserve.resize(size as f64, size, now);
    }

    /// Puts a (re)loaded spec in force: capacity, emergency, lease TTL and
    /// the guarantees `guaranteed` (Σ over tenants); the shared pool takes
    /// what is left. Reserves were made to fit before.
    fn configure(&self, spec: &ResourceSpec, guaranteed: u64, now: Nanos) {
        let _sizing = self.lock_sizing();
        let emergency = spec.emergency_units();
        self.capacity.store(spec.capacity, Ordering::Relaxed);
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
            gate.set_limit(spec.capacity);
        }
        self.waiters.wake();
    }
}

/// A caller identity with its allotments, indexed by resource id.
#[derive(Debug)]
pub struct Tenant {
    /// Unique for the registry's lifetime (keys idempotency records).
    pub id: u64,
    pub name: Arc<str>,
    pub qos_name: Arc<str>,
    pub qos: Qos,
    /// Orders waiters between classes: higher weight first.
    pub rank: u32,
    pub allotments: Box<[Allotment]>,
    /// Created from `defaults` rather than listed.
    pub from_defaults: bool,
}

/// A tenant found by name: borrowed from the listed ones (no atomic
/// touched) or shared with the table of those created from defaults.
pub enum TenantRef<'a> {
    Listed(&'a Arc<Tenant>),
    Created(Arc<Tenant>),
}

impl std::ops::Deref for TenantRef<'_> {
    type Target = Arc<Tenant>;
    #[inline]
    fn deref(&self) -> &Arc<Tenant> {
        match self {
            TenantRef::Listed(t) => t,
            TenantRef::Created(t) => t,
        }
    }
}

/// Most names [`Registry::departed`] remembers.
const MAX_DEPARTED: usize = 100_000;

/// Resources and tenants of one policy. Immutable once built: a reload
/// builds the next one from it (keeping every pool's state by name) and the
/// core swaps it in whole.
pub struct Registry {
    /// Every resource a policy in force has had, at its id. Those the
    /// current policy dropped stay for the leases and waiters they hold,
    /// but are no longer found by name.
    pub resources: Box<[Arc<Resource>]>,
    /// The resources the policy names.
    live: Box<[Arc<Resource>]>,
    resource_ids: HashMap<Arc<str>, usize, RandomState>,
    /// Tenants the policy lists: read-only after load, so the hot path's
    /// lookup takes no lock.
    listed: HashMap<Arc<str>, Arc<Tenant>, RandomState>,
    /// Tenants created from `defaults` on first use.
    created: DashMap<Arc<str>, Arc<Tenant>, RandomState>,
    defaults: Option<(TenantSpec, Qos)>,
    max_default_tenants: usize,
    default_tenants: AtomicUsize,
    next_tenant_id: AtomicU64,
    qos: BTreeMap<String, QosSpec>,
    /// Creation from defaults and a reload exclude each other, so no tenant
    /// is created in a registry a reload has already copied.
    creating: Mutex<()>,
    /// The registry that replaced this one: late creations go there.
    successor: OnceLock<Arc<Registry>>,
    /// Names of tenants reloads removed (at most [`MAX_DEPARTED`]): one
    /// created again from defaults starts with empty buckets, so removing
    /// and re-adding a tenant never mints tokens.
    departed: HashSet<Arc<str>>,
}

impl Registry {
    /// Builds pools for a validated policy.
    pub fn new(policy: &Policy, max_default_tenants: usize) -> Self {
        Self::build(policy, max_default_tenants, None, 0)
    }

    /// The registry of `policy`. With `previous` (a reload), resources and
    /// tenants keep their state by name: pools are resized in place, those
    /// that shrink first, so the sum of pool rates never exceeds capacity.
    pub(super) fn build(
        policy: &Policy,
        max_default_tenants: usize,
        previous: Option<&Registry>,
        now: Nanos,
    ) -> Self {
        let qos = policy.qos_classes();
        let defaults = policy
            .defaults
            .as_ref()
            .map(|d| (d.clone(), Qos::from(qos[&d.qos])));
        let carried = previous.map_or_else(Vec::new, |p| p.carried(policy, max_default_tenants));
        // Σ guaranteed per resource: listed tenants and carried ones.
        let guaranteed: HashMap<&str, u64> = policy
            .resources
            .keys()
            .map(|name| {
                let listed = policy.guaranteed_on(name);
                let per_default = defaults
                    .as_ref()
                    .and_then(|(d, _)| d.limits.get(name))
                    .map_or(0, |l| l.guaranteed);
                (name.as_str(), listed + per_default * carried.len() as u64)
            })
            .collect();
        if let Some(p) = previous {
            p.shrink_for(policy, &carried, &guaranteed, now);
        }
        let mut resources = previous.map_or_else(Vec::new, |p| p.resources.to_vec());
        let mut live = Vec::new();
        for (name, spec) in &policy.resources {
            let g = guaranteed[name.as_str()];
            let r = match resources.iter().find(|r| *r.name == **name) {
                Some(r) => {
                    r.configure(spec, g, now);
                    r.clone()
                }
                None => {
                    let r = Arc::new(Resource::new(resources.len(), name, spec, g));
                    resources.push(r.clone());
                    r
                }
            };
            live.push(r);
        }
        let resource_ids = live.iter().map(|r| (r.name.clone(), r.id)).collect();
        let mut registry = Self {
            resources: resources.into(),
            live: live.into(),
            resource_ids,
            listed: Default::default(),
            created: DashMap::with_hasher(RandomState::default()),
            defaults,
            max_default_tenants,
            default_tenants: AtomicUsize::new(carried.len()),
            next_tenant_id: AtomicU64::new(
                previous.map_or(0, |p| p.next_tenant_id.load(Ordering::Relaxed)),
            ),
            qos,
            creating: Mutex::new(()),
            successor: OnceLock::new(),
            departed: HashSet::new(),
        };
        let listed = policy
            .tenants
            .iter()
            .map(|(name, spec)| {
                let before = previous.and_then(|p| p.existing_tenant(name));
                let reload = previous.is_some();
                let tenant =
                    registry.build_tenant(name, spec, false, before.as_deref(), reload, now);
                (tenant.name.clone(), Arc::new(tenant))
            })
            .collect();
        registry.listed = listed;
        if let Some((spec, _)) = &registry.defaults {
            for before in &carried {
                let tenant =
                    registry.build_tenant(&before.name, spec, true, Some(before), true, now);
                registry
                    .created
                    .insert(tenant.name.clone(), Arc::new(tenant));
            }
        }
        if let Some(p) = previous {
            // Tenants that left: if one comes back from defaults, it starts
            // empty like any a reload adds.
            let mut departed = p.departed.clone();
            for t in p.tenants() {
                if registry.existing_tenant(&t.name).is_none() && departed.len() < MAX_DEPARTED {
                    departed.insert(t.name.clone());
                }
            }
            departed.retain(|name| registry.existing_tenant(name).is_none());
            registry.departed = departed;
            // Pools grown back since the cuts hold nothing beyond them now.
            for r in registry.live.iter() {
                let _sizing = r.lock_sizing();
                if r.recount_excess() {
                    r.resize_shared(now);
                }
            }
        }
        registry
    }

    /// A tenant's allotments under `spec`. `before`: the same tenant under
    /// the previous policy, whose pools it keeps (grown here if the new
    /// limits are larger; shrinks were made before).
    /// `start_empty`: new pools start with empty buckets (a reload adds
    /// them, or a tenant a reload removed comes back; see
    /// [`Holdings::new`]).
    fn build_tenant(
        &self,
        name: &str,
        spec: &TenantSpec,
        from_defaults: bool,
        before: Option<&Tenant>,
        start_empty: bool,
        now: Nanos,
    ) -> Tenant {
        let qos = Qos::from(self.qos[&spec.qos]);
        let fresh = |r: &Resource, limit: &LimitSpec| {
            Arc::new(Holdings::new(r.kind, limit, start_empty.then_some(now)))
        };
        let allotments = self
            .resources
            .iter()
            .map(|r| {
                let kept = before.and_then(|t| t.allotments.get(r.id));
                if !self.is_live(r) {
                    // Dropped by the policy: kept as it was for its leases.
                    return kept.cloned().unwrap_or_else(|| {
                        let none = LimitSpec::default();
                        allotment(r, none.clone(), qos, fresh(r, &none))
                    });
                }
                let limit = spec.limits.get(&*r.name).cloned().unwrap_or_default();
                let holdings = match kept {
                    // Retired pools only drain (a resource dropped, now back).
                    Some(a) if !a.holdings.is_retired() => {
                        a.holdings.fit(r.kind, &limit, now);
                        a.holdings.clone()
                    }
                    _ => fresh(r, &limit),
                };
                allotment(r, limit, qos, holdings)
            })
            .collect();
        Tenant {
            id: before.map_or_else(
                || self.next_tenant_id.fetch_add(1, Ordering::Relaxed),
                |t| t.id,
            ),
            name: name.into(),
            qos_name: spec.qos.as_str().into(),
            qos,
            rank: qos.weight,
            allotments,
            from_defaults,
        }
    }

    fn is_live(&self, r: &Resource) -> bool {
        self.resource_ids.get(&*r.name) == Some(&r.id)
    }

    #[inline]
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        // A policy names a handful of resources: comparing names beats
        // hashing one.
        if self.live.len() <= 8 {
            return self.live.iter().find(|r| *r.name == *name).map(|r| &**r);
        }
        self.resource_ids.get(name).map(|&i| &*self.resources[i])
    }

    /// The resources the policy names, in name order.
    pub fn live(&self) -> &[Arc<Resource>] {
        &self.live
    }

    pub fn resource_names(&self) -> impl Iterator<Item = &str> {
        self.live.iter().map(|r| &*r.name)
    }

    /// A listed tenant, or one created from `defaults` on first use.
    #[inline(always)]
    pub fn tenant(&self, name: &str, now: Nanos) -> Result<TenantRef<'_>, AdmissionError> {
        if let Some(t) = self.listed.get(name) {
            return Ok(TenantRef::Listed(t));
        }
        if let Some(t) = self.created.get(name) {
            return Ok(TenantRef::Created(t.clone()));
        }
        self.create_from_defaults(name, now).map(TenantRef::Created)
    }

    /// A listed (or already created) tenant; never creates one.
    pub fn existing_tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.listed
            .get(name)
            .cloned()
            .or_else(|| self.created.get(name).map(|t| t.clone()))
    }

    /// Every tenant, listed and created.
    pub fn tenants(&self) -> Vec<Arc<Tenant>> {
        self.listed
            .values()
            .cloned()
            .chain(self.created.iter().map(|e| e.value().clone()))
            .collect()
    }

    /// Holds off creations from defaults while a reload copies this
    /// registry; `replaced_by` ends it.
    pub(super) fn hold_creations(&self) -> MutexGuard<'_, ()> {
        self.creating.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the registry that replaced this one.
    pub(super) fn replaced_by(&self, next: Arc<Registry>) {
        let _ = self.successor.set(next);
    }

    #[cold]
    fn create_from_defaults(&self, name: &str, now: Nanos) -> Result<Arc<Tenant>, AdmissionError> {
        let Some((spec, _)) = &self.defaults else {
            return Err(AdmissionError::NotFound(format!(
                "tenant: unknown tenant {:?} and the policy has no defaults",
                crate::echo::Echo(name)
            )));
        };
        crate::policy::check_name(name)
            .map_err(|reason| AdmissionError::InvalidArgument(format!("tenant: {reason}")))?;
        let _creating = self.hold_creations();
        if let Some(next) = self.successor.get() {
            // A reload replaced this registry while we looked it up.
            drop(_creating);
            return next.tenant(name, now).map(|t| Arc::clone(&t));
        }
        if let Some(t) = self.created.get(name) {
            return Ok(t.clone());
        }
        if self.default_tenants.load(Ordering::Relaxed) >= self.max_default_tenants {
            return Err(AdmissionError::ResourceExhausted(format!(
                "tenant: {name:?} would exceed the {} tenants the daemon creates from defaults",
                self.max_default_tenants
            )));
        }
        // Carve the default guarantees out of the shared pools, all or
        // none, so Σ guaranteed never exceeds what is left.
        let mut carved: Vec<(&Resource, u64)> = Vec::new();
        for r in self.live.iter() {
            let g = spec.limits.get(&*r.name).map_or(0, |l| l.guaranteed);
            if g == 0 {
                continue;
            }
            let sizing = r.lock_sizing();
            if r.unallocated() < g {
                drop(sizing);
                for (r, g) in carved {
                    let _sizing = r.lock_sizing();
                    r.guaranteed_total.fetch_sub(g, Ordering::Relaxed);
                    r.resize_shared(now);
                }
                return Err(AdmissionError::ResourceExhausted(format!(
                    "tenant: cannot guarantee {g} of {} to new tenant {name:?}: \
                     only {} is unallocated",
                    r.name,
                    r.unallocated()
                )));
            }
            r.guaranteed_total.fetch_add(g, Ordering::Relaxed);
            r.resize_shared(now);
            carved.push((r, g));
        }
        let returning = self.departed.contains(name);
        let tenant = Arc::new(self.build_tenant(name, spec, true, None, returning, now));
        self.default_tenants.fetch_add(1, Ordering::Relaxed);
        self.created.insert(tenant.name.clone(), tenant.clone());
        Ok(tenant)
    }

    /// Tenants a reload to `policy` keeps as tenants from its defaults:
    /// those it does not list (created from defaults, or listed before),
    /// while it has defaults, oldest first, as many as the new guarantees
    /// leave room for. They keep their id, pools and history.
    fn carried(&self, policy: &Policy, max_default_tenants: usize) -> Vec<Arc<Tenant>> {
        let Some(defaults) = &policy.defaults else {
            return Vec::new();
        };
        let mut room = max_default_tenants;
        for (name, spec) in &policy.resources {
            let g = defaults.limits.get(name).map_or(0, |l| l.guaranteed);
            if g == 0 {
                continue;
            }
            let free = spec.room().saturating_sub(policy.guaranteed_on(name));
            room = room.min((free / g) as usize);
        }
        let mut carried: Vec<Arc<Tenant>> = self
            .tenants()
            .into_iter()
            .filter(|t| !policy.tenants.contains_key(&*t.name))
            .collect();
        carried.sort_by_key(|t| t.id);
        carried.truncate(room);
        carried
    }

    /// Before a reload to `policy`: shrinks every pool the new policy makes
    /// smaller, so what grows after finds the room. Guarantees cut shrink;
    /// tenants or resources dropped lose their pools and are retired (their
    /// leases still give back); reserves are cut to their new cap, or all
    /// to 0 on a resource whose new guarantees (and units still held beyond
    /// cuts) leave them no room; the planner sizes them again next tick.
    /// Concurrency units held beyond a pool's new limit stay out of the
    /// shared pool until they come back (see [`Resource::settle`]).
    fn shrink_for(
        &self,
        policy: &Policy,
        carried: &[Arc<Tenant>],
        guaranteed: &HashMap<&str, u64>,
        now: Nanos,
    ) {
        let carried: HashSet<u64> = carried.iter().map(|t| t.id).collect();
        // Each tenant with its spec under `policy` (None: dropped), looked
        // up once.
        let tenants: Vec<(Arc<Tenant>, Option<&TenantSpec>)> = self
            .tenants()
            .into_iter()
            .map(|t| {
                let spec = match policy.tenants.get(&*t.name) {
                    Some(spec) => Some(spec),
                    None if carried.contains(&t.id) => policy.defaults.as_ref(),
                    None => None,
                };
                (t, spec)
            })
            .collect();
        // What a tenant has of a resource `policy` still names; None: the
        // tenant is dropped (or its pools were retired before).
        let limit_of = |(before, spec): &(Arc<Tenant>, Option<&TenantSpec>),
                        r: &Resource|
         -> Option<LimitSpec> {
            if before.allotments[r.id].holdings.is_retired() {
                return None;
            }
            Some(
                spec.as_ref()?
                    .limits
                    .get(&*r.name)
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        // One resource at a time, under its sizing lock once per pass.
        for r in self.resources.iter() {
            let _sizing = r.lock_sizing();
            let rspec = policy.resources.get(&*r.name);
            // 1. Guarantees: those cut shrink now (a larger depth keeps the
            // tokens held: no new ones); dropped pools retire.
            for entry in &tenants {
                let a = &entry.0.allotments[r.id];
                match rspec.and_then(|_| limit_of(entry, r)) {
                    Some(l) if l.guaranteed <= a.limit.guaranteed => {
                        a.holdings.fit(r.kind, &l, now);
                    }
                    Some(_) => {}
                    None => {
                        a.holdings.retire();
                        a.holdings.guaranteed.resize(0.0, 0, now);
                        r.set_reserve_size(&a.holdings.reserve, 0, now);
                    }
                }
                r.watch_drain(&a.holdings);
            }
            r.recount_excess();
            // 2. Reserves, now that what is held beyond the cuts is known:
            // cut to their new cap, or all to 0 if there is no room.
            let Some(spec) = rspec else {
                continue;
            };
            let crowded = guaranteed[&*r.name]
                + r.reserve_total.load(Ordering::Relaxed)
                + r.excess.load(Ordering::Relaxed)
                > spec.room();
            for entry in &tenants {
                let Some(l) = limit_of(entry, r) else {
                    continue;
                };
                let cap = match &l.reserve {
                    _ if crowded => 0,
                    None => 0,
                    Some(res) => res.max.unwrap_or(spec.room().saturating_sub(l.guaranteed)),
                };
                let a = &entry.0.allotments[r.id];
                if (a.holdings.reserve.size() as u64) > cap {
                    r.set_reserve_size(&a.holdings.reserve, cap, now);
                    r.watch_drain(&a.holdings);
                }
            }
            r.recount_excess();
        }
    }

    /// Gives the shared pools the units that came back to pools a reload
    /// shrank (each planner tick).
    pub fn settle(&self, now: Nanos) {
        for r in self.resources.iter() {
            r.settle(now);
        }
    }

    /// Sets a tenant's reserve for a resource (tokens/s or units), clamped
    /// to its `reserve.max` and to what is unallocated; the shared pool
    /// shrinks or grows by the same amount. Returns the size applied.
    pub fn set_reserve(&self, tenant: &Tenant, resource: &Resource, size: u64, now: Nanos) -> u64 {
        let a = &tenant.allotments[resource.id];
        let _sizing = resource.lock_sizing();
        let current = a.holdings.reserve.size() as u64;
        if a.holdings.is_retired() {
            // A reload dropped it after the caller looked it up.
            return current;
        }
        let room = resource.unallocated() + current;
        let mut size = size.min(room).min(a.max_reserve(resource));
        if let Pool::Concurrency(units) = &a.holdings.reserve {
            // Units in use come back on Release; until then the reserve
            // keeps them, or shared would hand them out a second time.
            size = size.max(units.held().min(current));
        }
        resource.reserve_total.fetch_add(size, Ordering::Relaxed);
        resource.reserve_total.fetch_sub(current, Ordering::Relaxed);
        // Shrink before grow, so the sum of rates never exceeds capacity;
        // the tokens the shrinking pool can no longer hold move to the
        // growing one (rate pools), so resizing every tick wastes nothing
        // and creates nothing.
        let (from, to) = if size < current {
            (&a.holdings.reserve, &resource.shared)
        } else {
            (&resource.shared, &a.holdings.reserve)
        };
        let held = from.available(now);
        if size < current {
            a.holdings.reserve.resize(size as f64, size, now);
            resource.resize_shared(now);
        } else {
            resource.resize_shared(now);
            a.holdings.reserve.resize(size as f64, size, now);
        }
        if resource.kind == Kind::Rate {
            to.put_back(held.saturating_sub(from.available(now)), now);
        }
        resource.waiters.wake();
        size
    }

    pub fn lease_ttl(&self, resource: &Resource) -> Duration {
        Duration::from_nanos(resource.lease_ttl())
    }
}
