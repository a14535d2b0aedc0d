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

use super::registry::Tenant;
use crate::clock::Nanos;
use crate::pool::Split;

/// An opaque lease handle. Printed as 16 hex digits; ids are a keyed
/// permutation of a counter, so they never repeat and are hard to guess.
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
    key: u64,
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
            key: RandomState::new().hash_one(0x7072_6573_6369_656e_u64),
            held: AtomicU64::new(0),
            tombstones: AtomicU64::new(0),
            max,
        }
    }

    /// A fresh, never-repeating id: a bijective mix of a counter.
    fn next_id(&self) -> LeaseId {
        let mut x = self.next.fetch_add(1, Ordering::Relaxed) ^ self.key;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        LeaseId(x ^ (x >> 31))
    }

    /// Held leases have reached the bound (tombstones do not count).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.held.load(Ordering::Relaxed) >= self.max as u64
    }

    pub fn insert(&self, lease: Lease) -> LeaseId {
        let id = self.next_id();
        self.held.fetch_add(1, Ordering::Relaxed);
        self.table.insert(id.0, Entry::Held(lease));
        id
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
    fn lease_ids_round_trip_and_do_not_repeat() {
        let leases = Leases::new(10);
        let a = leases.next_id();
        let b = leases.next_id();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<LeaseId>(), Ok(a));
        assert!("xyz".parse::<LeaseId>().is_err());
    }
}
