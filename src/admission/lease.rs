//! Leases: what a grant holds until Release (concurrency) or Report (rate
//! grants asked with `lease`). A lease remembers the pools that paid, so
//! units go back exactly where they came from, and its TTL, so a caller that
//! dies does not leak capacity. A released lease leaves a tombstone for a
//! while, which makes Release idempotent.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use foldhash::fast::RandomState as FastState;

use super::tenant::Tenant;
use crate::clock::Nanos;
use crate::pool::Split;

/// An opaque lease handle, printed as 16 hex digits. Ids are a keyed PRF
/// (SipHash-1-3 under a random 128-bit key per daemon) of a counter: seeing
/// any number of ids tells nothing of the next one, and one caller cannot
/// forge another's lease. A collision with a live id is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub u64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for LeaseId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 16 {
            return Err(());
        }
        u64::from_str_radix(s, 16).map(LeaseId).map_err(|_| ())
    }
}

/// A held grant.
#[derive(Debug, Clone)]
pub struct Lease {
    pub tenant: Arc<Tenant>,
    pub resource: usize,
    pub split: Split,
    pub acquired_at: Nanos,
    pub expires_at: Nanos,
}

#[derive(Debug, Clone)]
pub enum Entry {
    Held(Lease),
    /// Released, settled or reclaimed; forgotten at `forget_at`.
    Gone {
        lease: Lease,
        forget_at: Nanos,
    },
}

/// The lease table: a sharded map, bounded.
pub struct Leases {
    table: DashMap<u64, Entry, FastState>,
    next: AtomicU64,
    /// The PRF's key (std's `RandomState` is SipHash-1-3 with random keys).
    key: RandomState,
    held: AtomicU64,
    tombstones: AtomicU64,
    /// Most leases held at once, and most tombstones kept.
    pub max: usize,
}

impl Leases {
    pub fn new(max: usize) -> Self {
        Self {
            table: DashMap::with_hasher(FastState::default()),
            next: AtomicU64::new(1),
            key: RandomState::new(),
            held: AtomicU64::new(0),
            tombstones: AtomicU64::new(0),
            max,
        }
    }

    /// A candidate id: the PRF of a fresh counter value.
    fn next_id(&self) -> LeaseId {
        LeaseId(self.key.hash_one(self.next.fetch_add(1, Ordering::Relaxed)))
    }

    /// Held leases have reached the bound (tombstones do not count).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.held.load(Ordering::Relaxed) >= self.max as u64
    }

    pub fn insert(&self, lease: Lease) -> LeaseId {
        loop {
            let id = self.next_id();
            // A PRF may repeat an id (about once in 2^32 per live lease):
            // never hand out one that is still in the table.
            if let dashmap::Entry::Vacant(slot) = self.table.entry(id.0) {
                slot.insert(Entry::Held(lease));
                self.held.fetch_add(1, Ordering::Relaxed);
                return id;
            }
        }
    }

    pub fn get(&self, id: LeaseId) -> Option<Entry> {
        self.table.get(&id.0).map(|e| e.clone())
    }

    /// Ends a held lease: returns it, leaving a tombstone until `forget_at`.
    /// `None` if unknown or already gone.
    pub fn end(&self, id: LeaseId, forget_at: Nanos) -> Option<Lease> {
        let mut entry = self.table.get_mut(&id.0)?;
        let Entry::Held(lease) = &*entry else {
            return None;
        };
        let lease = lease.clone();
        self.held.fetch_sub(1, Ordering::Relaxed);
        if self.tombstones.load(Ordering::Relaxed) >= self.max as u64 {
            // Memory stays bounded: past `max` tombstones, a released id is
            // forgotten at once (a second Release then reads NOT_FOUND).
            drop(entry);
            self.table.remove(&id.0);
            return Some(lease);
        }
        *entry = Entry::Gone {
            lease: lease.clone(),
            forget_at,
        };
        self.tombstones.fetch_add(1, Ordering::Relaxed);
        Some(lease)
    }

    /// Held leases whose TTL has passed.
    pub fn expired(&self, now: Nanos) -> Vec<LeaseId> {
        self.table
            .iter()
            .filter(|e| matches!(e.value(), Entry::Held(l) if l.expires_at <= now))
            .map(|e| LeaseId(*e.key()))
            .collect()
    }

    /// Drops tombstones whose time has come.
    pub fn forget(&self, now: Nanos) {
        self.table.retain(|_, e| {
            let keep = !matches!(e, Entry::Gone { forget_at, .. } if *forget_at <= now);
            if !keep {
                self.tombstones.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
    }

    /// Leases currently held.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        let policy = crate::policy::Policy::load_str(
            "resources: { s: { kind: concurrency, capacity: 1 } }\ntenants: { t: {} }\n",
            "t",
        )
        .unwrap();
        let registry = super::super::Registry::new(&policy, 0);
        Lease {
            tenant: registry.existing_tenant("t").unwrap(),
            resource: 0,
            split: Split::default(),
            acquired_at: 0,
            expires_at: 10,
        }
    }

    #[test]
    fn released_leases_do_not_count_against_the_bound() {
        let leases = Leases::new(2);
        for _ in 0..10 {
            assert!(!leases.is_full());
            let id = leases.insert(lease());
            assert!(leases.end(id, 100).is_some());
        }
        let a = leases.insert(lease());
        leases.insert(lease());
        assert!(leases.is_full());
        leases.end(a, 100);
        assert!(!leases.is_full());
        leases.forget(100);
        assert_eq!(
            leases.table.len(),
            1,
            "tombstones beyond the bound were not kept"
        );
    }

    #[test]
    fn lease_ids_are_keyed_per_daemon_and_skip_live_ones() {
        // The same counter under two keys: unrelated ids (the old mix was a
        // public permutation, invertible from one id).
        let (a, b) = (Leases::new(10), Leases::new(10));
        let ids = |l: &Leases| (0..8).map(|_| l.next_id()).collect::<Vec<_>>();
        assert_ne!(ids(&a), ids(&b));
        let leases = Leases::new(1_000);
        let live: std::collections::HashSet<_> =
            (0..1_000).map(|_| leases.insert(lease())).collect();
        assert_eq!(live.len(), 1_000);
        assert_eq!(leases.held(), 1_000);
    }

    #[test]
    fn lease_ids_round_trip_and_do_not_repeat() {
        let leases = Leases::new(10);
        let a = leases.next_id();
        let b = leases.next_id();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<LeaseId>(), Ok(a));
        assert!("xyz".parse::<LeaseId>().is_err());
    }
}
