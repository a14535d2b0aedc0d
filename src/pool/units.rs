//! Units held at once, for `kind: concurrency` pools: a counter and a limit,
//! each one atomic; one CAS on the counter decides a take.
//!
//! The limit is read beside the counter, not with it: a take racing a
//! resize may be decided on the old limit, which is the same as the take
//! landing just before the resize (a shrink below what is held is a state
//! the pool already allows: it then grants nothing until units return).

use super::sync::{AtomicU64, Ordering};

/// A concurrency pool. The limit may shrink below what is held (the planner
/// resized it); the pool then grants nothing until enough comes back.
#[derive(Debug)]
pub struct Units {
    held: AtomicU64,
    limit: AtomicU64,
}

impl Units {
    pub fn new(limit: u64) -> Self {
        Self {
            held: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
        }
    }

    #[inline]
    pub fn available(&self) -> u64 {
        self.limit
            .load(Ordering::Relaxed)
            .saturating_sub(self.held.load(Ordering::Relaxed))
    }

    /// Takes up to `want` units; returns how many were taken and how many
    /// were there.
    #[inline]
    pub fn take_up_to(&self, want: u64) -> (u64, u64) {
        self.take_where(want, |available| want.min(available))
    }

    /// Takes exactly `want` units or none: racing callers never see units
    /// another caller took only to put them back (the resource gate).
    #[inline]
    pub fn take_exact(&self, want: u64) -> bool {
        self.take_where(want, |available| if available >= want { want } else { 0 })
            .0
            == want
    }

    #[inline]
    fn take_where(&self, want: u64, amount: impl Fn(u64) -> u64) -> (u64, u64) {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let available = self.limit.load(Ordering::Relaxed).saturating_sub(held);
            let k = amount(available);
            if k == 0 || want == 0 {
                return (0, available);
            }
            match self.held.compare_exchange_weak(
                held,
                held + k,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (k, available),
                Err(actual) => held = actual,
            }
        }
    }

    /// Returns units taken earlier.
    pub fn put_back(&self, n: u64) {
        let before = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n))
            })
            .unwrap_or(0);
        debug_assert!(
            before >= n,
            "returned {n} units but only {before} were held"
        );
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_at_most_the_limit_and_gets_units_back() {
        let u = Units::new(4);
        assert_eq!(u.take_up_to(3), (3, 4));
        assert_eq!(u.take_up_to(3), (1, 1));
        assert_eq!(u.take_up_to(1), (0, 0));
        u.put_back(2);
        assert_eq!(u.available(), 2);
    }

    #[test]
    fn take_exact_takes_the_whole_amount_or_nothing() {
        let u = Units::new(4);
        assert!(u.take_exact(3));
        assert!(!u.take_exact(2), "1 left: nothing taken");
        assert_eq!(u.held(), 3);
        assert!(u.take_exact(1));
        assert!(!u.take_exact(1));
    }

    #[test]
    fn a_shrunk_limit_grants_nothing_until_units_return() {
        let u = Units::new(4);
        u.take_up_to(4);
        u.set_limit(2);
        assert_eq!(u.available(), 0);
        u.put_back(1);
        assert_eq!(u.take_up_to(5).0, 0, "3 held, limit 2");
        u.put_back(2);
        assert_eq!(u.take_up_to(5), (1, 1));
    }
}
