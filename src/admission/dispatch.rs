//! The dispatcher: one task per resource serves its wait queue when tokens
//! appear (a release, a refund, a resize, or the refill time it computed),
//! so a waiter costs no thread and nothing polls.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::api::{Decision, Grant};
use super::error::AdmissionError;
use super::facade::{Admission, Background};
use super::resource::Resource;
use super::take::{self, Scope};
use super::tenant::Tenant;
use crate::clock::{Nanos, duration_to_nanos};

impl Admission {
    /// Serves one resource's waiters until `cancel`: a round per wake-up
    /// ([`serve`](Self::serve)), then sleeps on the core's clock until woken
    /// or until the earliest refill or deadline the round computed.
    pub(super) async fn dispatch(self: Arc<Self>, resource: usize, cancel: CancellationToken) {
        // A resource's object outlives every reload, and so does its queue.
        let r = self.resource(resource);
        loop {
            let now = self.clock.now();
            let next = self.serve(&r, now);
            // Never spin: at least 100 µs between rounds a timer starts.
            let sleep = next.map(|at| self.clock.sleep_until(at.max(now + 100_000)));
            tokio::select! {
                _ = cancel.cancelled() => {
                    for w in r.waiters.close() {
                        let _ = w.reply.send(Err(AdmissionError::Unavailable));
                    }
                    return;
                }
                _ = r.waiters.notified() => {}
                _ = async {
                    match sleep {
                        Some(sleep) => sleep.await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    /// One dispatch round at `now`: answers the waiters past their
    /// deadline (denied), then walks the waiting tenants' best waiters in
    /// rank order (class, priority, arrival), granting each that fits; a
    /// tenant whose waiter is granted shows its next one in rank order.
    /// Once a borrowing tenant is blocked, tenants ranked below it may only
    /// use their own pools (shared tokens go to the best first). Returns
    /// when to look again (the earliest refill or deadline), if ever.
    ///
    /// A round decides one waiter per waiting tenant plus one per grant, not
    /// every waiter: a tenant's later waiters wait behind its first; and on
    /// a concurrency resource it stops once every unit is held.
    pub(super) fn serve(&self, r: &Resource, now: Nanos) -> Option<Nanos> {
        let registry = self.registry.load_full();
        let mut waiting = r.waiters.lock();
        // A resource the policy dropped grants nothing more.
        if registry
            .resource(&r.name)
            .is_none_or(|live| live.id != r.id)
        {
            for w in waiting.take_all() {
                let _ = w.reply.send(Err(AdmissionError::NotFound(format!(
                    "resource: {:?} was removed by a policy reload",
                    r.name
                ))));
            }
            return None;
        }
        for seq in waiting.expired(now) {
            let Some(w) = waiting.remove(seq) else {
                continue;
            };
            let allotment = &w.tenant.allotments[r.id];
            let denied = Decision::Denied(take::denial(r, allotment, w.amount, Scope::All, now));
            self.count(&w.tenant, r, w.amount, &denied);
            let _ = w.reply.send(Ok(denied));
        }
        let mut next = waiting.earliest_deadline();
        let mut scope = Scope::All;
        let mut cursor = None;
        while let Some((at, seq)) = waiting.head_after(cursor) {
            // A concurrency resource whose units are all held grants
            // nothing until a Release, which wakes the round again: no need
            // to look at every waiting tenant.
            if r.gate.as_ref().is_some_and(|gate| gate.available() == 0) {
                break;
            }
            cursor = Some(at);
            let Some(w) = waiting.get_mut(seq) else { break };
            if w.reply.is_closed() {
                waiting.remove(seq); // the caller went away
                continue;
            }
            // Served under the policy in force: a reload may have changed
            // the tenant's limits, or removed it.
            match registry.tenant(&w.tenant.name, now) {
                Ok(t) if !Arc::ptr_eq(&t, &w.tenant) => w.tenant = Arc::clone(&t),
                Ok(_) => {}
                Err(e) => {
                    if let Some(w) = waiting.remove(seq) {
                        let _ = w.reply.send(Err(e));
                    }
                    continue;
                }
            }
            match self.decide(&w.tenant, r, w.amount, w.lease, scope, now) {
                Ok(Decision::Denied(denial)) => {
                    // The tenant's later waiters stay behind this one.
                    if w.tenant.qos.borrow {
                        scope = Scope::Own;
                    }
                    let retry = now.saturating_add(duration_to_nanos(denial.retry_after));
                    next = Some(next.map_or(retry, |n| n.min(retry)));
                }
                decision => {
                    // Answered: the tenant's next waiter, if any, takes its
                    // own place in the walk, after this one.
                    let Some(w) = waiting.remove(seq) else {
                        continue;
                    };
                    if let Ok(granted @ Decision::Granted(_)) = decision {
                        self.count(&w.tenant, r, w.amount, &granted);
                        if let Err(Ok(Decision::Granted(grant))) = w.reply.send(Ok(granted)) {
                            self.undo(r, &w.tenant, &grant, now);
                        }
                    } else {
                        let _ = w.reply.send(decision);
                    }
                }
            }
        }
        next
    }

    /// Gives back a grant nobody received (the waiter went away).
    fn undo(&self, r: &Resource, tenant: &Tenant, grant: &Grant, now: Nanos) {
        match grant.lease {
            Some(id) => {
                let _ = self.end_lease(&self.registry.load(), id, now);
                if r.kind == crate::policy::Kind::Rate {
                    take::give_back(r, &tenant.allotments[r.id], &grant.split, now);
                }
            }
            None => take::give_back(r, &tenant.allotments[r.id], &grant.split, now),
        }
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
        let every = duration_to_nanos(reap_every).max(1);
        tracker.spawn(async move {
            loop {
                let at = me.clock.now().saturating_add(every);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = me.clock.sleep_until(at) => {
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
}

impl Background {
    /// Starts dispatchers for the resources that have none yet.
    pub(super) fn dispatch_new(&mut self, core: &Arc<Admission>) {
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
