//! The compiled policy: resources and tenants interned once at load, so the
//! hot path does one sharded-map lookup by tenant name and indexes the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use foldhash::fast::RandomState;

use super::AdmissionError;
use super::waiters::WaitQueue;
use crate::clock::{NANOS_PER_SEC, Nanos, duration_to_nanos};
use crate::policy::{Kind, LimitSpec, Policy, QosSpec, TenantSpec};
use crate::pool::{Bucket, Pool, Tier, Units};

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
/// planner does to the tiers.
#[derive(Debug)]
pub struct Resource {
    pub id: usize,
    pub name: Arc<str>,
    pub kind: Kind,
    pub capacity: u64,
    pub emergency_units: u64,
    pub lease_ttl: Nanos,
    pub shared: Pool,
    pub emergency: Pool,
    pub gate: Option<Units>,
    /// Σ guaranteed of every tenant, listed or created from defaults.
    guaranteed_total: AtomicU64,
    /// Σ reserve sizes.
    reserve_total: AtomicU64,
    /// Mean hold time of concurrency leases (ns), learned from Release and
    /// Report; feeds `retry_after` for concurrency resources.
    hold_ewma: AtomicU64,
    pub waiters: WaitQueue,
    /// Serialises pool resizing (planner, defaults); never on the hot path.
    sizing: std::sync::Mutex<()>,
}

impl Resource {
    fn new(id: usize, name: &str, spec: &crate::policy::ResourceSpec, guaranteed: u64) -> Self {
        let shared = spec.capacity - spec.emergency_units() - guaranteed;
        let emergency = spec.emergency_units();
        let (shared, emergency, gate) = match spec.kind {
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
            capacity: spec.capacity,
            emergency_units: spec.emergency_units(),
            lease_ttl: ttl,
            shared,
            emergency,
            gate,
            guaranteed_total: AtomicU64::new(guaranteed),
            reserve_total: AtomicU64::new(0),
            hold_ewma: AtomicU64::new(ttl.min(NANOS_PER_SEC)),
            waiters: WaitQueue::default(),
            sizing: std::sync::Mutex::new(()),
        }
    }

    /// What is left for the shared pool: `C − Σg − Σr − emergency`.
    fn unallocated(&self) -> u64 {
        (self.capacity - self.emergency_units)
            .saturating_sub(self.guaranteed_total.load(Ordering::Relaxed))
            .saturating_sub(self.reserve_total.load(Ordering::Relaxed))
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

    /// What reserves may share: `C − Σg − emergency`.
    pub fn reservable(&self) -> u64 {
        (self.capacity - self.emergency_units)
            .saturating_sub(self.guaranteed_total.load(Ordering::Relaxed))
    }

    /// Units held at once, across all tiers (concurrency only).
    pub fn held(&self) -> u64 {
        self.gate.as_ref().map_or(0, Units::held)
    }
}

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

/// Resources and tenants of the policy in force.
pub struct Registry {
    pub resources: Box<[Resource]>,
    resource_ids: std::collections::HashMap<Arc<str>, usize, RandomState>,
    /// Tenants the policy lists: read-only after load, so the hot path's
    /// lookup takes no lock.
    listed: std::collections::HashMap<Arc<str>, Arc<Tenant>, RandomState>,
    /// Tenants created from `defaults` on first use.
    created: DashMap<Arc<str>, Arc<Tenant>, RandomState>,
    defaults: Option<(TenantSpec, Qos)>,
    max_default_tenants: usize,
    default_tenants: AtomicUsize,
    next_tenant_id: AtomicU64,
    qos: std::collections::BTreeMap<String, QosSpec>,
}

impl Registry {
    /// Builds pools for a validated policy.
    pub fn new(policy: &Policy, max_default_tenants: usize) -> Self {
        let qos = policy.qos_classes();
        let resources: Box<[Resource]> = policy
            .resources
            .iter()
            .enumerate()
            .map(|(id, (name, spec))| {
                let g: u64 = policy
                    .tenants
                    .values()
                    .filter_map(|t| t.limits.get(name))
                    .map(|l| l.guaranteed)
                    .sum();
                Resource::new(id, name, spec, g)
            })
            .collect();
        let resource_ids = resources.iter().map(|r| (r.name.clone(), r.id)).collect();
        let defaults = policy
            .defaults
            .as_ref()
            .map(|d| (d.clone(), Qos::from(qos[&d.qos])));
        let mut registry = Self {
            resources,
            resource_ids,
            listed: Default::default(),
            created: DashMap::with_hasher(RandomState::default()),
            defaults,
            max_default_tenants,
            default_tenants: AtomicUsize::new(0),
            next_tenant_id: AtomicU64::new(0),
            qos,
        };
        let listed = policy
            .tenants
            .iter()
            .map(|(name, spec)| {
                let tenant = registry.build_tenant(name, spec, false);
                (tenant.name.clone(), Arc::new(tenant))
            })
            .collect();
        registry.listed = listed;
        registry
    }

    fn build_tenant(&self, name: &str, spec: &TenantSpec, from_defaults: bool) -> Tenant {
        let qos = Qos::from(self.qos[&spec.qos]);
        let allotments = self
            .resources
            .iter()
            .map(|r| {
                let limit = spec.limits.get(&*r.name).cloned().unwrap_or(LimitSpec {
                    guaranteed: 0,
                    burst: None,
                    reserve: None,
                });
                allotment(r, limit, qos)
            })
            .collect();
        Tenant {
            id: self.next_tenant_id.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            qos_name: spec.qos.as_str().into(),
            qos,
            rank: qos.weight,
            allotments,
            from_defaults,
        }
    }

    #[inline]
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        // A policy names a handful of resources: comparing names beats
        // hashing one.
        if self.resources.len() <= 8 {
            return self.resources.iter().find(|r| *r.name == *name);
        }
        self.resource_ids.get(name).map(|&i| &self.resources[i])
    }

    pub fn resource_names(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().map(|r| &*r.name)
    }

    /// A listed tenant, or one created from `defaults` on first use.
    #[inline]
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

    #[cold]
    fn create_from_defaults(&self, name: &str, now: Nanos) -> Result<Arc<Tenant>, AdmissionError> {
        let Some((spec, _)) = &self.defaults else {
            return Err(AdmissionError::NotFound(format!(
                "tenant: unknown tenant {name:?} and the policy has no defaults"
            )));
        };
        crate::policy::check_name(name)
            .map_err(|reason| AdmissionError::InvalidArgument(format!("tenant: {reason}")))?;
        if self.default_tenants.load(Ordering::Relaxed) >= self.max_default_tenants {
            return Err(AdmissionError::ResourceExhausted(format!(
                "tenant: {name:?} would exceed the {} tenants the daemon creates from defaults",
                self.max_default_tenants
            )));
        }
        match self.created.entry(name.into()) {
            dashmap::Entry::Occupied(e) => Ok(e.get().clone()),
            dashmap::Entry::Vacant(slot) => {
                // Carve the default guarantees out of the shared pools, all
                // or none, so Σ guaranteed never exceeds what is left.
                let mut carved: Vec<(&Resource, u64)> = Vec::new();
                for r in self.resources.iter() {
                    let g = spec.limits.get(&*r.name).map_or(0, |l| l.guaranteed);
                    if g == 0 {
                        continue;
                    }
                    let _guard = r.sizing.lock().unwrap_or_else(|p| p.into_inner());
                    if r.unallocated() < g {
                        drop(_guard);
                        for (r, g) in carved {
                            let _guard = r.sizing.lock().unwrap_or_else(|p| p.into_inner());
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
                let tenant = Arc::new(self.build_tenant(name, spec, true));
                self.default_tenants.fetch_add(1, Ordering::Relaxed);
                slot.insert(tenant.clone());
                Ok(tenant)
            }
        }
    }

    /// Sets a tenant's reserve for a resource (tokens/s or units), clamped
    /// to its `reserve.max` and to what is unallocated; the shared pool
    /// shrinks or grows by the same amount. Returns the size applied.
    pub fn set_reserve(&self, tenant: &Tenant, resource: &Resource, size: u64, now: Nanos) -> u64 {
        let a = &tenant.allotments[resource.id];
        let _guard = resource.sizing.lock().unwrap_or_else(|p| p.into_inner());
        let current = a.reserve.size() as u64;
        let room = resource.unallocated() + current;
        let mut size = size.min(room).min(a.max_reserve(resource));
        if let Pool::Concurrency(units) = &a.reserve {
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
            (&a.reserve, &resource.shared)
        } else {
            (&resource.shared, &a.reserve)
        };
        let held = from.available(now);
        if size < current {
            a.reserve.resize(size as f64, size, now);
            resource.resize_shared(now);
        } else {
            resource.resize_shared(now);
            a.reserve.resize(size as f64, size, now);
        }
        if resource.kind == Kind::Rate {
            to.put_back(held.saturating_sub(from.available(now)), now);
        }
        resource.waiters.wake();
        size
    }

    pub fn lease_ttl(&self, resource: &Resource) -> Duration {
        Duration::from_nanos(resource.lease_ttl)
    }
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

fn allotment(r: &Resource, limit: LimitSpec, qos: Qos) -> Allotment {
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
    let unguaranteed = room.saturating_sub(r.guaranteed_total.load(Ordering::Relaxed));
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
