//! The compiled policy: resources and tenants interned once at load, so the
//! hot path does one sharded-map lookup by tenant name and indexes the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use foldhash::fast::RandomState;

use super::AdmissionError;
pub use super::allotment::Allotment;
use super::allotment::allotment;
pub use super::counters::{Counters, Demand};
use super::waiters::WaitQueue;
use crate::clock::{NANOS_PER_SEC, Nanos, duration_to_nanos};
use crate::policy::{Kind, LimitSpec, Policy, QosSpec, TenantSpec};
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
