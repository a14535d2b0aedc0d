//! The compiled policy: resources and tenants interned once at load, so the
//! hot path does one sharded-map lookup by tenant name and indexes the rest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use foldhash::fast::RandomState;

use super::allotment::Holdings;
use super::error::AdmissionError;
use super::listed::{Listed, same_name};
use super::qos::Qos;
use super::resource::Resource;
use super::tenant::{Tenant, TenantRef};
use crate::clock::Nanos;
use crate::policy::{LimitSpec, Policy, QosSpec, TenantSpec};

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
    /// lookup takes no lock and calls no `memcmp`.
    listed: Listed,
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
    pub(super) departed: HashSet<Arc<str>>,
}

impl Registry {
    /// Builds pools for a validated policy.
    pub fn new(policy: &Policy, max_default_tenants: usize) -> Self {
        Self::build(policy, max_default_tenants, None, &[], 0)
    }

    /// The registry of `policy`. With `previous` (a reload, see
    /// `reload.rs`, which shrank the pools first), resources and tenants
    /// keep their state by name and `carried` are the tenants kept from
    /// its defaults; pools grow here, so the sum of pool rates never
    /// exceeds capacity.
    pub(super) fn build(
        policy: &Policy,
        max_default_tenants: usize,
        previous: Option<&Registry>,
        carried: &[Arc<Tenant>],
        now: Nanos,
    ) -> Self {
        let qos = policy.qos_classes();
        let defaults = policy
            .defaults
            .as_ref()
            .map(|d| (d.clone(), Qos::from(qos[&d.qos])));
        let guaranteed = guaranteed_totals(policy, carried.len());
        let mut resources = previous.map_or_else(Vec::new, |p| p.resources.to_vec());
        let mut live = Vec::new();
        for (name, spec) in &policy.resources {
            let g = guaranteed[name.as_str()];
            let r = match resources.iter().find(|r| *r.name == **name) {
                Some(r) => {
                    let here = local_guaranteed(r, policy, carried).unwrap_or(g);
                    r.configure(spec, g, here, now);
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
            listed: Listed::new(std::iter::empty()),
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
                Arc::new(tenant)
            })
            .collect::<Vec<_>>();
        registry.listed = Listed::new(listed.into_iter());
        if let Some((spec, _)) = &registry.defaults {
            for before in carried {
                let tenant =
                    registry.build_tenant(&before.name, spec, true, Some(before), true, now);
                registry
                    .created
                    .insert(tenant.name.clone(), Arc::new(tenant));
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
                        r.allotment(none.clone(), qos, fresh(r, &none))
                    });
                }
                let limit = spec.limits.get(&*r.name).cloned().unwrap_or_default();
                // Pools hold this daemon's part when a share is in force.
                let here = r.localize(name, &limit);
                let holdings = match kept {
                    // Retired pools only drain (a resource dropped, now back).
                    Some(a) if !a.holdings.is_retired() => {
                        a.holdings.fit(r.kind, &here, now);
                        a.holdings.clone()
                    }
                    _ => fresh(r, &here),
                };
                r.allotment(limit, qos, holdings)
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
            return self
                .live
                .iter()
                .find(|r| same_name(&r.name, name))
                .map(|r| &**r);
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
            .iter()
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
            let g = spec
                .limits
                .get(&*r.name)
                .map_or(0, |l| r.localize(name, l).guaranteed);
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

    /// Gives the shared pools the units that came back to pools a reload
    /// shrank (each planner tick).
    pub fn settle(&self, now: Nanos) {
        for r in self.resources.iter() {
            r.settle(now);
        }
    }

    /// Sets a tenant's reserve for a resource (see [`Resource::set_reserve`]).
    pub fn set_reserve(&self, tenant: &Tenant, resource: &Resource, size: u64, now: Nanos) -> u64 {
        resource.set_reserve(&tenant.allotments[resource.id], size, now)
    }

    /// Keeps `tokens` of a tenant's reserve back from borrowers
    /// (`planner.lend_hold_back`); its owner still draws them.
    pub fn keep_from_borrowers(&self, tenant: &Tenant, resource: &Resource, tokens: u64) {
        let holdings = &tenant.allotments[resource.id].holdings;
        holdings.lend_keep.store(tokens, Ordering::Relaxed);
    }

    pub fn lease_ttl(&self, resource: &Resource) -> Duration {
        Duration::from_nanos(resource.lease_ttl())
    }
}

/// Σ guaranteed held here for `r` when a share is in force: each listed
/// tenant's part, and each of `carried` (from defaults); `None` without a
/// share (the policy's total holds).
pub(super) fn local_guaranteed(
    r: &Resource,
    policy: &Policy,
    carried: &[Arc<Tenant>],
) -> Option<u64> {
    r.share()?;
    let limit_of = |spec: &TenantSpec| spec.limits.get(&*r.name).cloned().unwrap_or_default();
    let listed = policy
        .tenants
        .iter()
        .map(|(name, spec)| r.localize(name, &limit_of(spec)).guaranteed);
    let defaults = policy.defaults.as_ref().map(limit_of).unwrap_or_default();
    let carried = carried
        .iter()
        .map(|t| r.localize(&t.name, &defaults).guaranteed);
    Some(listed.chain(carried).sum())
}

/// Σ guaranteed per resource under `policy`: its listed tenants, and
/// `from_defaults` tenants at the defaults' guarantee.
pub(super) fn guaranteed_totals(policy: &Policy, from_defaults: usize) -> HashMap<&str, u64> {
    policy
        .resources
        .keys()
        .map(|name| {
            let listed = policy.guaranteed_on(name);
            let per_default = policy
                .defaults
                .as_ref()
                .and_then(|d| d.limits.get(name))
                .map_or(0, |l| l.guaranteed);
            (name.as_str(), listed + per_default * from_defaults as u64)
        })
        .collect()
}
