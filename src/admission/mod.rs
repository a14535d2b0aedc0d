//! Admission: Acquire, Release and Report over the pools (DESIGN §3-4).
//! The core of the daemon; it knows policies, pools and time, and nothing of
//! gRPC. Every call takes `now` from the injected [`Clock`].

mod allotment;
mod counters;
mod error;
mod lease;
mod registry;
mod reload;
mod report;
mod requests;
mod take;
mod waiters;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use allotment::Holdings;
pub use error::AdmissionError;
pub use lease::{LeaseId, Leases};
pub use registry::{Allotment, Counters, Demand, Qos, Registry, Resource, Tenant, TenantRef};
pub use reload::Reloaded;
pub use report::{Outcome, ReportEntry, ReportSummary};
pub use take::{Scope, seconds_to_gather};

use crate::clock::{Clock, Nanos, duration_to_nanos};
use crate::policy::{Kind, Policy};
use crate::pool::Split;
use requests::RequestLog;
use take::Take;

/// Bounds and windows of the admission core (daemon settings).
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// How long a `request_id` is remembered.
    pub idempotency_window: Duration,
    /// Most `request_id`s remembered at once.
    pub max_request_ids: usize,
    /// Most leases (held and recently released) at once.
    pub max_leases: usize,
    /// Most waiters per resource; beyond it an Acquire is denied at once.
    pub max_waiters: usize,
    /// Most tenants created from the policy's `defaults`.
    pub max_default_tenants: usize,
    /// How long a released lease id is remembered (Release stays idempotent).
    pub lease_tombstone: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            idempotency_window: Duration::from_secs(300),
            max_request_ids: 1_000_000,
            max_leases: 1_000_000,
            max_waiters: 10_000,
            max_default_tenants: 10_000,
            lease_tombstone: Duration::from_secs(600),
        }
    }
}

/// One Acquire, as the core sees it (borrowed: the hot path copies nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct AcquireRequest<'a> {
    pub tenant: &'a str,
    pub resource: &'a str,
    pub amount: u64,
    pub priority: i32,
    pub max_wait: Duration,
    pub request_id: Option<&'a str>,
    /// Rate resources: keep a lease so Report can settle the grant.
    pub lease: bool,
}

/// The answer to an Acquire.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Granted(Grant),
    Denied(Denial),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub split: Split,
    pub lease: Option<LeaseId>,
    pub remaining: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub retry_after: Duration,
    pub remaining: u64,
}

/// The answer to a Release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub units: u64,
    pub already: bool,
}

/// The admission core of one daemon.
pub struct Admission {
    clock: Arc<dyn Clock>,
    /// The policy in force; a reload swaps it whole. Reading it costs the
    /// hot path one `ArcSwap::load` (a few ns, no lock).
    registry: ArcSwap<Registry>,
    /// Serialises reloads.
    reloading: Mutex<()>,
    /// Where dispatchers of resources a reload adds are started.
    background: Mutex<Option<Background>>,
    leases: Leases,
    requests: RequestLog,
    config: AdmissionConfig,
    closed: AtomicBool,
    reclaimed: std::sync::atomic::AtomicU64,
}

impl Admission {
    /// Builds the pools of a validated policy.
    pub fn new(policy: &Policy, config: AdmissionConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            registry: ArcSwap::from_pointee(Registry::new(policy, config.max_default_tenants)),
            reloading: Mutex::new(()),
            background: Mutex::new(None),
            leases: Leases::new(config.max_leases),
            requests: RequestLog::new(config.idempotency_window, config.max_request_ids),
            clock,
            config,
            closed: AtomicBool::new(false),
            reclaimed: Default::default(),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The policy in force now (a later reload does not change it).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    #[inline(always)]
    fn resolve<'r>(
        registry: &'r Registry,
        tenant: &str,
        resource: &str,
        now: Nanos,
    ) -> Result<(TenantRef<'r>, &'r Resource), AdmissionError> {
        let Some(r) = registry.resource(resource) else {
            let known: Vec<_> = registry.resource_names().collect();
            return Err(AdmissionError::NotFound(format!(
                "resource: unknown resource {:?}; known: {}",
                crate::echo::Echo(resource),
                known.join(", ")
            )));
        };
        if tenant.is_empty() {
            return Err(AdmissionError::InvalidArgument(
                "tenant: must not be empty".into(),
            ));
        }
        Ok((registry.tenant(tenant, now)?, r))
    }

    /// Decides at once, never waits, never consults `request_id`: the hot
    /// path, and what the simulator drives.
    #[inline]
    pub fn try_acquire(
        &self,
        req: &AcquireRequest<'_>,
        now: Nanos,
    ) -> Result<Decision, AdmissionError> {
        let registry = self.registry.load();
        let (tenant, resource) = Self::resolve(&registry, req.tenant, req.resource, now)?;
        let decision = self.decide(&tenant, resource, req.amount, req.lease, Scope::All, now)?;
        self.count(&tenant, resource, req.amount, &decision);
        Ok(decision)
    }

    /// Acquire with everything: idempotent retries and waiting up to
    /// `max_wait` in the resource's queue.
    pub async fn acquire(&self, req: &AcquireRequest<'_>) -> Result<Decision, AdmissionError> {
        match req.request_id {
            Some(id) if !id.is_empty() => {
                let now = self.clock.now();
                let slot = {
                    let registry = self.registry.load();
                    let (tenant, resource) =
                        Self::resolve(&registry, req.tenant, req.resource, now)?;
                    self.requests.slot(&tenant, id, resource, req.amount, now)?
                };
                slot.run(|| self.acquire_once(req)).await
            }
            _ => self.acquire_once(req).await,
        }
    }

    async fn acquire_once(&self, req: &AcquireRequest<'_>) -> Result<Decision, AdmissionError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(AdmissionError::Unavailable);
        }
        let now = self.clock.now();
        let answer = {
            let registry = self.registry.load();
            let (tenant, resource) = Self::resolve(&registry, req.tenant, req.resource, now)?;
            let decision =
                self.decide(&tenant, resource, req.amount, req.lease, Scope::All, now)?;
            if matches!(decision, Decision::Granted(_))
                || req.max_wait.is_zero()
                || resource.waiters.len() >= self.config.max_waiters
            {
                self.count(&tenant, resource, req.amount, &decision);
                return Ok(decision);
            }
            let (reply, answer) = oneshot::channel();
            let deadline = now.saturating_add(duration_to_nanos(req.max_wait));
            resource.waiters.push(
                Arc::clone(&tenant),
                req.priority,
                req.amount,
                req.lease,
                deadline,
                reply,
            );
            answer
        };
        // The dispatcher always answers; a dropped sender means it stopped.
        answer.await.unwrap_or(Err(AdmissionError::Unavailable))
    }

    /// Validates, then takes from the pools; records a lease when one is due.
    #[inline]
    fn decide(
        &self,
        tenant: &Arc<Tenant>,
        resource: &Resource,
        amount: u64,
        want_lease: bool,
        scope: Scope,
        now: Nanos,
    ) -> Result<Decision, AdmissionError> {
        let allotment = allotment(tenant, resource);
        if amount == 0 {
            return Err(AdmissionError::InvalidArgument(
                "amount: must be > 0".into(),
            ));
        }
        if amount > allotment.max_grant {
            return Err(AdmissionError::InvalidArgument(format!(
                "amount: {amount} exceeds the most {} could ever grant tenant {:?} at once ({})",
                resource.name, tenant.name, allotment.max_grant
            )));
        }
        let leased = want_lease || resource.kind == Kind::Concurrency;
        if leased && self.leases.is_full() {
            return Err(AdmissionError::ResourceExhausted(format!(
                "lease_id: the lease table is full ({} leases)",
                self.leases.max
            )));
        }
        Ok(match take::take(resource, allotment, amount, scope, now) {
            Take::Paid { split, remaining } => {
                let lease = leased.then(|| self.lease(tenant, resource, split, now));
                Decision::Granted(Grant {
                    split,
                    lease,
                    remaining,
                })
            }
            Take::Short {
                retry_after,
                remaining,
            } => Decision::Denied(Denial {
                retry_after,
                remaining,
            }),
        })
    }

    /// Records a lease for a grant; out of line to keep the rate path small.
    #[cold]
    #[inline(never)]
    fn lease(
        &self,
        tenant: &Arc<Tenant>,
        resource: &Resource,
        split: Split,
        now: Nanos,
    ) -> LeaseId {
        self.leases.insert(lease::Lease {
            tenant: tenant.clone(),
            resource: resource.id,
            split,
            acquired_at: now,
            expires_at: now.saturating_add(resource.lease_ttl()),
        })
    }

    /// Counts a final denial in the tenant's demand counters (grants are
    /// counted where they are paid, in `take`).
    #[inline]
    fn count(&self, tenant: &Tenant, resource: &Resource, amount: u64, decision: &Decision) {
        if let Decision::Denied(_) = decision {
            allotment(tenant, resource)
                .holdings
                .counters
                .record_denial(amount);
        }
    }

    /// The tenant a lease (held or recently ended) belongs to.
    pub fn lease_tenant(&self, lease_id: &str) -> Option<Arc<str>> {
        let id = lease_id.parse().ok()?;
        match self.leases.get(id)? {
            lease::Entry::Held(l) | lease::Entry::Gone { lease: l, .. } => {
                Some(l.tenant.name.clone())
            }
        }
    }

    /// Returns a lease's units to the pools that paid them. Idempotent.
    pub fn release(&self, lease_id: &str) -> Result<Released, AdmissionError> {
        let id = parse_lease(lease_id, "lease_id")?;
        let now = self.clock.now();
        let registry = self.registry.load();
        if let Some(lease) = self.end_lease(&registry, id, now) {
            let resource = &registry.resources[lease.resource];
            self.observe_work(
                &lease.tenant,
                resource,
                Some(now.saturating_sub(lease.acquired_at)),
                None,
            );
            let units = match resource.kind {
                Kind::Concurrency => lease.split.total(),
                Kind::Rate => 0,
            };
            return Ok(Released {
                units,
                already: false,
            });
        }
        match self.leases.get(id) {
            Some(_) => Ok(Released {
                units: 0,
                already: true,
            }),
            None => Err(AdmissionError::NotFound(format!(
                "lease_id: unknown lease {lease_id:?} (never granted, or released more than {:?} ago)",
                self.config.lease_tombstone
            ))),
        }
    }

    /// Feeds finished work into the history: hold times (the mean per
    /// resource drives `retry_after` and Little's law) and sizes.
    fn observe_work(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        hold: Option<Nanos>,
        used: Option<u64>,
    ) {
        if resource.kind == Kind::Concurrency
            && let Some(ns) = hold
        {
            resource.observe_hold(ns);
        }
        allotment(tenant, resource)
            .holdings
            .counters
            .record_work(hold, used);
    }

    /// Ends a held lease: concurrency units go back to their pools and the
    /// resource's waiters are woken. `None` if it was not held.
    fn end_lease(&self, registry: &Registry, id: LeaseId, now: Nanos) -> Option<lease::Lease> {
        let forget_at = now.saturating_add(duration_to_nanos(self.config.lease_tombstone));
        let lease = self.leases.end(id, forget_at)?;
        let resource = &registry.resources[lease.resource];
        if resource.kind == Kind::Concurrency {
            take::give_back(
                resource,
                allotment(&lease.tenant, resource),
                &lease.split,
                now,
            );
            resource.waiters.wake();
        }
        Some(lease)
    }

    /// Reclaims leases past their TTL and forgets old tombstones and
    /// request ids. Returns the number of leases reclaimed.
    pub fn reap(&self, now: Nanos) -> usize {
        let expired = self.leases.expired(now);
        let registry = self.registry.load();
        let reclaimed = expired
            .into_iter()
            .filter(|id| self.end_lease(&registry, *id, now).is_some())
            .count();
        self.leases.forget(now);
        self.requests.forget(now);
        self.reclaimed
            .fetch_add(reclaimed as u64, Ordering::Relaxed);
        reclaimed
    }

    /// Leases reclaimed by TTL since start.
    pub fn reclaimed(&self) -> u64 {
        self.reclaimed.load(Ordering::Relaxed)
    }

    /// Sets a tenant's reserve on a resource; returns the size applied
    /// (clamped to its `reserve.max` and to what is unallocated).
    pub fn set_reserve(
        &self,
        tenant: &str,
        resource: &str,
        size: u64,
    ) -> Result<u64, AdmissionError> {
        let now = self.clock.now();
        let registry = self.registry.load_full();
        let (tenant, resource) = Self::resolve(&registry, tenant, resource, now)?;
        Ok(registry.set_reserve(&tenant, resource, size, now))
    }

    /// A resource the policy in force names.
    pub fn resource_named(&self, name: &str) -> Option<Arc<Resource>> {
        let registry = self.registry.load_full();
        let id = registry.resource(name)?.id;
        Some(registry.resources[id].clone())
    }

    /// A resource by id: ids are never reused, and a resource's object
    /// outlives every policy that drops it.
    fn resource(&self, id: usize) -> Arc<Resource> {
        self.registry.load_full().resources[id].clone()
    }

    /// Starts the background work: one waiter dispatcher per resource
    /// (and per resource a reload adds later) and the lease reaper. All
    /// stop on `cancel`; waiters are then answered UNAVAILABLE. Wait on the
    /// tracker (after `close`) to see them finish.
    pub fn spawn(self: &Arc<Self>, cancel: CancellationToken, reap_every: Duration) -> TaskTracker {
        let tracker = TaskTracker::new();
        {
            // Under the lock a reload takes to start its dispatchers, so
            // each resource gets exactly one whichever comes first.
            let mut slot = self.background.lock().unwrap_or_else(|p| p.into_inner());
            let background = slot.insert(Background {
                runtime: tokio::runtime::Handle::current(),
                cancel: cancel.clone(),
                tracker: tracker.clone(),
                dispatched: 0,
            });
            background.dispatch_new(self);
        }
        let me = self.clone();
        tracker.spawn(async move {
            let mut every = tokio::time::interval(reap_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = every.tick() => {
                        let reclaimed = me.reap(me.clock.now());
                        if reclaimed > 0 {
                            tracing::debug!(reclaimed, "leases reclaimed by TTL");
                        }
                    }
                }
            }
        });
        tracker
    }

    /// Refuses new waits from now on (shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Where background tasks run, kept so a reload can start more.
struct Background {
    runtime: tokio::runtime::Handle,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// Resources (ids below this) that have their dispatcher.
    dispatched: usize,
}

impl Background {
    /// Starts dispatchers for the resources that have none yet.
    fn dispatch_new(&mut self, core: &Arc<Admission>) {
        let count = core.registry.load().resources.len();
        for id in self.dispatched..count {
            self.tracker.spawn_on(
                core.clone().dispatch(id, self.cancel.clone()),
                &self.runtime,
            );
        }
        self.dispatched = self.dispatched.max(count);
    }
}

/// Every tenant has an allotment for every resource (guaranteed 0 where the
/// policy lists none).
#[inline]
fn allotment<'a>(tenant: &'a Tenant, resource: &Resource) -> &'a Allotment {
    &tenant.allotments[resource.id]
}

fn parse_lease(s: &str, field: &str) -> Result<LeaseId, AdmissionError> {
    if s.is_empty() {
        return Err(AdmissionError::InvalidArgument(format!(
            "{field}: must not be empty"
        )));
    }
    s.parse().map_err(|_| {
        AdmissionError::InvalidArgument(format!(
            "{field}: {:?} is not a lease id (16 hex digits)",
            crate::echo::Echo(s)
        ))
    })
}

#[cfg(test)]
mod tests;
