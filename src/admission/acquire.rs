//! Acquire (DESIGN §3): one call decides at once or parks the request in
//! the resource's queue, refuses everything once shutdown begins, and times
//! every decision it makes without waiting. The gRPC face only translates.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::api::{AcquireRequest, Decision, Grant};
use super::error::AdmissionError;
use super::facade::{Admission, allotment};
use super::lease::{Lease, LeaseId};
use super::resource::Resource;
use super::take::{self, Scope, Take};
use super::tenant::Tenant;
use crate::clock::{Nanos, duration_to_nanos};
use crate::policy::Kind;
use crate::pool::Split;

/// A decision still to come: an Acquire parked in its resource's queue, or
/// one whose `request_id` makes it wait for (or replay) an earlier attempt.
pub type Pending<'a> = Pin<Box<dyn Future<Output = Result<Decision, AdmissionError>> + Send + 'a>>;

/// What [`Admission::admit`] made of an Acquire.
pub enum Admit<'a> {
    /// Answered at once (the hot path: no future, no allocation).
    Decided(Result<Decision, AdmissionError>),
    /// To be answered when the returned future completes.
    Pending(Pending<'a>),
}

impl Admit<'_> {
    /// The decision, awaiting it if it is still to come.
    pub async fn decision(self) -> Result<Decision, AdmissionError> {
        match self {
            Admit::Decided(decision) => decision,
            Admit::Pending(decision) => decision.await,
        }
    }
}

impl Admission {
    /// Acquire: decided now, or parked until granted or its `max_wait` ends.
    /// The immediate path allocates nothing and awaits nothing; after
    /// [`close`](Admission::close) every Acquire gets UNAVAILABLE.
    #[inline]
    pub fn admit<'a>(&'a self, req: &'a AcquireRequest<'a>) -> Admit<'a> {
        if req.request_id.is_some_and(|id| !id.is_empty()) {
            if self.is_closed() {
                // Not even a replay of an earlier answer once closed.
                return Admit::Decided(Err(AdmissionError::Unavailable));
            }
            return Admit::Pending(Box::pin(self.acquire_once_by_id(req)));
        }
        self.admit_once(req)
    }

    /// [`admit`](Self::admit), awaited.
    pub async fn acquire(&self, req: &AcquireRequest<'_>) -> Result<Decision, AdmissionError> {
        self.admit(req).decision().await
    }

    /// Decides at once, never waits, never consults `request_id`, records
    /// no latency: what the simulator and the benchmarks drive at `now`.
    #[inline]
    pub fn try_acquire(
        &self,
        req: &AcquireRequest<'_>,
        now: Nanos,
    ) -> Result<Decision, AdmissionError> {
        let registry = self.registry.current();
        let (tenant, resource) = Self::resolve(&registry, req.tenant, req.resource, now)?;
        let decision = self.decide(&tenant, resource, req.amount, req.lease, Scope::All, now);
        // Counted where it lies: moving the decision out of its `Result`
        // and back in was a visible copy in the profile.
        if let Ok(decision) = &decision {
            self.count(&tenant, resource, req.amount, decision);
        }
        decision
    }

    /// The first attempt of a `request_id`: run once per id in its window;
    /// retries get the first attempt's answer.
    async fn acquire_once_by_id(
        &self,
        req: &AcquireRequest<'_>,
    ) -> Result<Decision, AdmissionError> {
        let id = req.request_id.unwrap_or_default();
        let now = self.clock.now();
        let slot = {
            let registry = self.registry.current();
            let (tenant, resource) = Self::resolve(&registry, req.tenant, req.resource, now)?;
            self.requests.slot(&tenant, id, resource, req.amount, now)?
        };
        slot.run(|| self.admit_once(req).decision()).await
    }

    /// One attempt: decide now (timed), or park in the queue; UNAVAILABLE
    /// once closed (checked here, so both paths of `admit` get it).
    #[inline]
    fn admit_once<'a>(&'a self, req: &AcquireRequest<'_>) -> Admit<'a> {
        if self.is_closed() {
            return Admit::Decided(Err(AdmissionError::Unavailable));
        }
        let now = self.clock.now();
        let registry = self.registry.current();
        let (tenant, resource) = match Self::resolve(&registry, req.tenant, req.resource, now) {
            Ok(found) => found,
            Err(e) => return Admit::Decided(Err(e)),
        };
        let decision = self.decide(&tenant, resource, req.amount, req.lease, Scope::All, now);
        self.latency
            .observe_ns(self.clock.now().saturating_sub(now));
        match decision {
            Ok(Decision::Denied(_))
                if !req.max_wait.is_zero() && resource.waiters.len() < self.config.max_waiters => {}
            Ok(decision) => {
                self.count(&tenant, resource, req.amount, &decision);
                return Admit::Decided(Ok(decision));
            }
            Err(e) => return Admit::Decided(Err(e)),
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
        // The dispatcher always answers; a dropped sender means it stopped.
        Admit::Pending(Box::pin(async move {
            answer.await.unwrap_or(Err(AdmissionError::Unavailable))
        }))
    }

    /// Validates, then takes from the pools; records a lease when one is due.
    #[inline]
    pub(super) fn decide(
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
            return Err(AdmissionError::AmountOverMax(format!(
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
            Take::Short(denial) => Decision::Denied(denial),
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
        self.leases.insert(Lease {
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
    pub(super) fn count(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        amount: u64,
        decision: &Decision,
    ) {
        if let Decision::Denied(_) = decision {
            allotment(tenant, resource)
                .holdings
                .counters
                .record_denial(amount);
        }
    }
}
