//! The wait queue: Acquires with `max_wait` that could not be granted at
//! once, one queue per resource, ordered by QoS class, then request
//! priority, then arrival. Plain data and a wake-up signal; the dispatcher
//! (`dispatch.rs`) serves it.
//!
//! Waiters are indexed per tenant, so a dispatch round walks the waiting
//! tenants' best waiters (their heads) in rank order instead of re-sorting
//! and re-deciding every waiter: a tenant's later waiters draw on the same
//! pools and wait behind its first. Deadlines have an index of their own.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};

use super::api::Decision;
use super::error::AdmissionError;
use super::tenant::Tenant;
use crate::clock::Nanos;

pub type Reply = oneshot::Sender<Result<Decision, AdmissionError>>;

/// Queue order, best first: class rank (higher first), request priority
/// (higher first), arrival (the last field, unique per queue).
type Rank = (Reverse<u32>, Reverse<i32>, u64);

/// One parked Acquire.
pub struct Waiter {
    rank: Rank,
    /// The tenant id it was queued under (its index key; `tenant` may be
    /// replaced by the same tenant under a newer policy).
    queued_as: u64,
    pub tenant: Arc<Tenant>,
    pub amount: u64,
    pub lease: bool,
    pub deadline: Nanos,
    pub reply: Reply,
}

impl Waiter {
    /// Its arrival number: unique in its queue.
    pub fn seq(&self) -> u64 {
        self.rank.2
    }
}

/// A place in the walk over waiting tenants' heads (see
/// [`Waiting::head_after`]).
#[derive(Debug, Clone, Copy)]
pub struct Cursor((Rank, u64));

/// The waiters of one queue and their indexes.
#[derive(Default)]
pub struct Waiting {
    by_seq: HashMap<u64, Waiter>,
    /// Per tenant id, its waiters' ranks; the first is its head.
    by_tenant: HashMap<u64, BTreeSet<Rank>>,
    /// Every waiting tenant's head, best first.
    heads: BTreeSet<(Rank, u64)>,
    deadlines: BTreeSet<(Nanos, u64)>,
}

impl Waiting {
    fn insert(&mut self, w: Waiter) {
        let tenant = w.queued_as;
        let ranks = self.by_tenant.entry(tenant).or_default();
        let old_head = ranks.first().copied();
        ranks.insert(w.rank);
        if old_head.is_none_or(|h| w.rank < h) {
            if let Some(h) = old_head {
                self.heads.remove(&(h, tenant));
            }
            self.heads.insert((w.rank, tenant));
        }
        self.deadlines.insert((w.deadline, w.seq()));
        self.by_seq.insert(w.seq(), w);
    }

    /// Takes a waiter out of the queue.
    pub fn remove(&mut self, seq: u64) -> Option<Waiter> {
        let w = self.by_seq.remove(&seq)?;
        let tenant = w.queued_as;
        if let Some(ranks) = self.by_tenant.get_mut(&tenant) {
            if ranks.first() == Some(&w.rank) {
                self.heads.remove(&(w.rank, tenant));
                ranks.remove(&w.rank);
                if let Some(next) = ranks.first() {
                    self.heads.insert((*next, tenant));
                }
            } else {
                ranks.remove(&w.rank);
            }
            if ranks.is_empty() {
                self.by_tenant.remove(&tenant);
            }
        }
        self.deadlines.remove(&(w.deadline, seq));
        Some(w)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Waiter> {
        self.by_seq.get_mut(&seq)
    }

    /// The best waiting tenant's head ranked after `after` (from the best
    /// when `None`), as a cursor for the next call and the waiter's seq.
    /// Walking with it visits every tenant's head in rank order; a tenant
    /// whose head was removed meanwhile shows its next waiter in its own
    /// place, always after the cursor.
    pub fn head_after(&self, after: Option<Cursor>) -> Option<(Cursor, u64)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, |c| Excluded(c.0));
        self.heads
            .range((from, Unbounded))
            .next()
            .map(|&head| (Cursor(head), head.0.2))
    }

    /// Waiters whose deadline is at or before `now`, earliest first.
    pub fn expired(&self, now: Nanos) -> Vec<u64> {
        self.deadlines
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, seq)| seq)
            .collect()
    }

    pub fn earliest_deadline(&self) -> Option<Nanos> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Every waiter, in no particular order; the queue is left empty.
    pub fn take_all(&mut self) -> Vec<Waiter> {
        let all = std::mem::take(&mut self.by_seq);
        *self = Self::default();
        all.into_values().collect()
    }
}

/// A resource's queue of waiters.
#[derive(Default)]
pub struct WaitQueue {
    waiting: Mutex<Waiting>,
    /// Set when the dispatcher stops: later waiters are answered at once.
    closed: AtomicBool,
    /// `waiting.len()`, readable without the lock.
    len: AtomicUsize,
    seq: AtomicU64,
    notify: Notify,
}

impl std::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WaitQueue({} waiting)", self.len())
    }
}

/// The queue's contents, locked; [`Drop`] publishes the new length.
pub struct Locked<'a> {
    guard: MutexGuard<'a, Waiting>,
    len: &'a AtomicUsize,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Waiting;
    fn deref(&self) -> &Waiting {
        &self.guard
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Waiting {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.len.store(self.guard.len(), Ordering::Relaxed);
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
            rank: (Reverse(tenant.rank), Reverse(priority), seq),
            queued_as: tenant.id,
            tenant,
            amount,
            lease,
            deadline,
            reply,
        };
        let mut waiting = self.lock();
        if self.closed.load(Ordering::Relaxed) {
            let _ = waiter.reply.send(Err(AdmissionError::Unavailable));
            return;
        }
        waiting.insert(waiter);
        drop(waiting);
        self.notify.notify_one();
    }

    /// The waiters, for the dispatcher.
    pub fn lock(&self) -> Locked<'_> {
        Locked {
            guard: self.waiting.lock().unwrap_or_else(|p| p.into_inner()),
            len: &self.len,
        }
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

    /// Stops taking waiters; returns those still parked.
    pub fn close(&self) -> Vec<Waiter> {
        let mut waiting = self.lock();
        self.closed.store(true, Ordering::Relaxed);
        waiting.take_all()
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }
}
