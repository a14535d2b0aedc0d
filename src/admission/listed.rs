//! The tenants a policy lists, by name: the hot path's one hash lookup.
//! Read-only once built, so a lookup takes no lock and clones no `Arc`;
//! names are compared inline ([`same_name`]), not through `memcmp`.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::tenant::Tenant;

/// Listed tenants, found by name.
pub(super) struct Listed {
    hasher: RandomState,
    table: HashTable<Arc<Tenant>>,
}

impl Listed {
    /// A table of `tenants`, whose names are unique (policy keys).
    pub fn new(tenants: impl ExactSizeIterator<Item = Arc<Tenant>>) -> Self {
        let hasher = RandomState::default();
        let mut table = HashTable::with_capacity(tenants.len());
        for t in tenants {
            let hash = hasher.hash_one(&*t.name);
            table.insert_unique(hash, t, |t| hasher.hash_one(&*t.name));
        }
        Self { hasher, table }
    }

    /// The listed tenant named `name`: one hash, inline name compares.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        let hash = self.hasher.hash_one(name);
        self.table.find(hash, |t| same_name(&t.name, name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.table.iter()
    }
}

/// Whether two names are equal, decided inline for names up to 16 bytes
/// (two overlapping word compares at most) and by `memcmp` beyond: a call
/// to it per name was ~7% of a rate decision.
#[inline(always)]
pub(super) fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    match n {
        0 => true,
        // First, middle and last byte cover every byte of 1 to 3.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => ends::<4>(a) == ends::<4>(b),
        8..=16 => ends::<8>(a) == ends::<8>(b),
        _ => a == b,
    }
}

/// The first and the last `N` bytes of `s` (overlapping when `s` is
/// shorter than `2N`); `s` has at least `N`.
#[inline(always)]
fn ends<const N: usize>(s: &[u8]) -> Option<(&[u8; N], &[u8; N])> {
    Some((s.first_chunk::<N>()?, s.last_chunk::<N>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_equal_exactly_when_their_bytes_are() {
        let names = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "abc",
            "abd",
            "xbc",
            "rate",
            "ratf",
            "sate",
            "slots",
            "splits",
            "tightly",
            "tightlz",
            "checkout",
            "checkouu",
            "dheckout",
            "0123456789abcdef",
            "0123456789abcdeg",
            "1123456789abcdef",
            "0123456789abcdefg",
            "0123456789abcdefh",
            "é",
            "ê",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
        // Every single-byte difference at every position, every length.
        for n in 1..=20 {
            let a: String = "q".repeat(n);
            for i in 0..n {
                let mut b = a.clone().into_bytes();
                b[i] = b'r';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_name(&a, &b), "{a:?} vs {b:?}");
                assert!(same_name(&b, &b.clone()));
            }
        }
    }
}
