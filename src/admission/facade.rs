//! The `Admission` facade: the core of one daemon, its policy in force,
//! lease table, idempotency log and background work. Its calls live with
//! their nouns: `acquire.rs`, `release.rs`, `report.rs`, `dispatch.rs`,
//! `reload.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::allotment::Allotment;
use super::error::AdmissionError;
use super::in_force::InForce;
use super::lease::{LeaseId, Leases};
use super::registry::Registry;
use super::requests::RequestLog;
use super::resource::Resource;
use super::tenant::{Tenant, TenantRef};
use crate::clock::{Clock, Nanos};
use crate::metrics::LatencyHistogram;
use crate::policy::Policy;

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
    /// The most a Report's overuse may put a tenant's guaranteed bucket in
    /// debt, as refill time (60 s: a tenant at 1000/s owes at most 60,000).
    pub max_report_debt: Duration,
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
            max_report_debt: Duration::from_secs(60),
        }
    }
}

/// The admission core of one daemon.
pub struct Admission {
    pub(super) clock: Arc<dyn Clock>,
    /// The policy in force; a reload swaps it whole.
    pub(super) registry: InForce,
    /// Serialises reloads.
    pub(super) reloading: Mutex<()>,
    /// Where dispatchers of resources a reload adds are started.
    pub(super) background: Mutex<Option<Background>>,
    pub(super) leases: Leases,
    pub(super) requests: RequestLog,
    pub(super) config: AdmissionConfig,
    /// Set when shutdown begins: no grant after it.
    pub(super) closed: AtomicBool,
    pub(super) reclaimed: AtomicU64,
    /// Overuse Reports declared that no pool of the reporting tenant could
    /// owe (see `report.rs`).
    pub(super) uncharged: AtomicU64,
    /// Time to decide each Acquire answered without waiting.
    pub(super) latency: Arc<LatencyHistogram>,
}

impl Admission {
    /// Builds the pools of a validated policy.
    pub fn new(policy: &Policy, config: AdmissionConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            registry: InForce::new(Registry::new(policy, config.max_default_tenants)),
            reloading: Mutex::new(()),
            background: Mutex::new(None),
            leases: Leases::new(config.max_leases),
            requests: RequestLog::new(config.idempotency_window, config.max_request_ids),
            clock,
            config,
            closed: AtomicBool::new(false),
            reclaimed: Default::default(),
            uncharged: Default::default(),
            latency: Arc::default(),
        }
    }

    /// Records decision times into `latency` (the daemon's metric).
    pub fn with_latency(mut self, latency: Arc<LatencyHistogram>) -> Self {
        self.latency = latency;
        self
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
    pub(super) fn resolve<'r>(
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

    /// Reported overuse no pool of the reporting tenant could owe, since
    /// start (see `report.rs`).
    pub fn uncharged(&self) -> u64 {
        self.uncharged.load(Ordering::Relaxed)
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
    pub(super) fn resource(&self, id: usize) -> Arc<Resource> {
        self.registry.load_full().resources[id].clone()
    }

    /// Shutdown begins: from now on every Acquire, immediate or waiting,
    /// is answered UNAVAILABLE, and nothing more is granted.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Every tenant has an allotment for every resource (guaranteed 0 where the
/// policy lists none).
#[inline]
pub(super) fn allotment<'a>(tenant: &'a Tenant, resource: &Resource) -> &'a Allotment {
    &tenant.allotments[resource.id]
}

pub(super) fn parse_lease(s: &str, field: &str) -> Result<LeaseId, AdmissionError> {
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

/// Where background tasks run, kept so a reload can start more.
pub(super) struct Background {
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) cancel: CancellationToken,
    pub(super) tracker: TaskTracker,
    /// Resources (ids below this) that have their dispatcher.
    pub(super) dispatched: usize,
}
