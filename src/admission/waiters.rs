//! Waiters: Acquires with `max_wait` that could not be granted at once. One
//! queue per resource, ordered by QoS class, then request priority, then
//! arrival; one dispatcher task per resource serves it when tokens appear
//! (a release, a refund, a resize, or the refill time it computed), so a
//! waiter costs no thread and nothing polls.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Notify, oneshot};

use super::registry::Tenant;
use super::{AdmissionError, Decision};
use crate::clock::Nanos;

pub type Reply = oneshot::Sender<Result<Decision, AdmissionError>>;

/// One parked Acquire.
pub struct Waiter {
    rank: (u32, i32, Reverse<u64>),
    pub tenant: Arc<Tenant>,
    pub amount: u64,
    pub lease: bool,
    pub deadline: Nanos,
    pub reply: Reply,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.rank.cmp(&other.rank)
    }
}

/// A resource's queue of waiters.
#[derive(Default)]
pub struct WaitQueue {
    heap: std::sync::Mutex<BinaryHeap<Waiter>>,
    /// Set when the dispatcher stops: later waiters are answered at once.
    closed: std::sync::atomic::AtomicBool,
    len: AtomicUsize,
    seq: AtomicU64,
    notify: Notify,
}

impl std::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WaitQueue({} waiting)", self.len())
    }
}

impl WaitQueue {
    /// Parks a waiter; the dispatcher looks at it right away.
    pub fn push(
        &self,
        tenant: Arc<Tenant>,
        priority: i32,
        amount: u64,
        lease: bool,
        deadline: Nanos,
        reply: Reply,
    ) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let waiter = Waiter {
            rank: (tenant.rank, priority, Reverse(seq)),
            tenant,
            amount,
            lease,
            deadline,
            reply,
        };
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        if self.closed.load(Ordering::Relaxed) {
            let _ = waiter.reply.send(Err(AdmissionError::Unavailable));
            return;
        }
        heap.push(waiter);
        self.len.store(heap.len(), Ordering::Relaxed);
        drop(heap);
        self.notify.notify_one();
    }

    /// Tells the dispatcher that tokens may have appeared; free when nobody
    /// waits.
    #[inline]
    pub fn wake(&self) {
        if self.len.load(Ordering::Relaxed) > 0 {
            self.notify.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All waiters, best first.
    pub(super) fn drain(&self) -> Vec<Waiter> {
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        let all = std::mem::take(&mut *heap).into_sorted_vec();
        self.len.store(0, Ordering::Relaxed);
        all.into_iter().rev().collect()
    }

    /// Stops taking waiters; returns those still parked.
    pub(super) fn close(&self) -> Vec<Waiter> {
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, Ordering::Relaxed);
        self.len.store(0, Ordering::Relaxed);
        std::mem::take(&mut *heap).into_vec()
    }

    /// Puts back the waiters still waiting.
    pub(super) fn restore(&self, waiters: Vec<Waiter>) {
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        heap.extend(waiters);
        self.len.store(heap.len(), Ordering::Relaxed);
    }

    pub(super) async fn notified(&self) {
        self.notify.notified().await
    }
}

impl super::Admission {
    /// Serves one resource's waiters until `cancel`: each round tries every
    /// waiter best first, answers the granted and the expired, and sleeps
    /// until woken or until the earliest refill or deadline it computed.
    pub(super) async fn dispatch(
        self: Arc<Self>,
        resource: usize,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        use super::take::Scope;
        // A resource's object outlives every reload, and so does its queue.
        let r = self.resource(resource);
        let queue = &r.waiters;
        loop {
            let now = self.clock.now();
            let registry = self.registry.load_full();
            let r = &*r;
            let mut next: Option<Nanos> = None;
            let mut keep = Vec::new();
            // Once a borrowing waiter is blocked, those ranked below it may
            // only use their own pools: shared tokens go to the best first.
            let mut scope = Scope::All;
            // A resource the policy dropped grants nothing more.
            let dropped = registry
                .resource(&r.name)
                .is_none_or(|live| live.id != r.id);
            for mut w in queue.drain() {
                if w.reply.is_closed() {
                    continue; // the caller went away
                }
                if dropped {
                    let _ = w.reply.send(Err(AdmissionError::NotFound(format!(
                        "resource: {:?} was removed by a policy reload",
                        r.name
                    ))));
                    continue;
                }
                // Served under the policy in force: a reload may have
                // changed the tenant's limits, or removed it.
                match registry.tenant(&w.tenant.name, now) {
                    Ok(t) if !Arc::ptr_eq(&t, &w.tenant) => w.tenant = Arc::clone(&t),
                    Ok(_) => {}
                    Err(e) => {
                        let _ = w.reply.send(Err(e));
                        continue;
                    }
                }
                let decision = self.decide(&w.tenant, r, w.amount, w.lease, scope, now);
                match decision {
                    Ok(granted @ Decision::Granted(_)) => {
                        self.count(&w.tenant, r, w.amount, &granted);
                        if let Err(Ok(Decision::Granted(grant))) = w.reply.send(Ok(granted)) {
                            self.undo(r, &w.tenant, &grant, now);
                        }
                    }
                    Ok(Decision::Denied(denial)) if now >= w.deadline => {
                        let denied = Decision::Denied(denial);
                        self.count(&w.tenant, r, w.amount, &denied);
                        let _ = w.reply.send(Ok(denied));
                    }
                    Ok(Decision::Denied(denial)) => {
                        if w.tenant.qos.borrow {
                            scope = Scope::Own;
                        }
                        let retry =
                            now.saturating_add(crate::clock::duration_to_nanos(denial.retry_after));
                        let wake = retry.min(w.deadline);
                        next = Some(next.map_or(wake, |n| n.min(wake)));
                        keep.push(w);
                    }
                    Err(e) => {
                        let _ = w.reply.send(Err(e));
                    }
                }
            }
            queue.restore(keep);
            drop(registry);
            let sleep =
                next.map(|at| std::time::Duration::from_nanos(at.saturating_sub(now).max(100_000)));
            tokio::select! {
                _ = cancel.cancelled() => {
                    for w in queue.close() {
                        let _ = w.reply.send(Err(AdmissionError::Unavailable));
                    }
                    return;
                }
                _ = queue.notified() => {}
                _ = async {
                    match sleep {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    /// Gives back a grant nobody received (the waiter went away).
    fn undo(&self, r: &super::Resource, tenant: &Tenant, grant: &super::Grant, now: Nanos) {
        match grant.lease {
            Some(id) => {
                let _ = self.end_lease(&self.registry.load(), id, now);
                if r.kind == crate::policy::Kind::Rate {
                    super::take::give_back(r, &tenant.allotments[r.id], &grant.split, now);
                }
            }
            None => super::take::give_back(r, &tenant.allotments[r.id], &grant.split, now),
        }
    }
}
