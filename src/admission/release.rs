//! Release and the lease life cycle: a lease ends by Release, by a
//! settling Report, or by its TTL (the reaper); its units go back to the
//! pools that paid them, and finished work feeds the history.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::api::Released;
use super::error::AdmissionError;
use super::facade::{Admission, allotment, parse_lease};
use super::lease::{self, LeaseId};
use super::registry::Registry;
use super::resource::Resource;
use super::take;
use super::tenant::Tenant;
use crate::clock::{Nanos, duration_to_nanos};
use crate::policy::Kind;

impl Admission {
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
        let registry = self.registry.current();
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
    pub(super) fn observe_work(
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
    pub(super) fn end_lease(
        &self,
        registry: &Registry,
        id: LeaseId,
        now: Nanos,
    ) -> Option<lease::Lease> {
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
}
