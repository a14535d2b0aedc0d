//! A loan: tokens a borrower takes from other tenants' reserves once the
//! shared pool is empty (DESIGN §2: a reserve is a priority claim, not a
//! partition). The owner's first call is its draw order: its Acquire
//! draws on the reserve right after its guarantee, while a borrower
//! reaches it only after the shared pool is empty. A borrower takes
//! whatever the reserve holds then: tokens the owner has not drawn since
//! they refilled, which would otherwise overflow unused. Keeping part of
//! the reserve back for the owner (`planner.lend_hold_back`, a share of its
//! depth) protects the owner against a borrower that asks first, but was
//! measured to waste more than it saved, so it defaults to 0
//! (docs/simulation.md, "Work-conserving reserves"). Only rate
//! reserves lend: a lent unit of concurrency would have to come back to
//! the lender's pool on Release, and a grant's split does not say whose.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::{ArcSwap, Guard};

use super::allotment::{Allotment, Holdings};
use crate::clock::Nanos;
use crate::pool::Pool;

/// The holdings of one resource whose reserve is sized above zero: who may
/// lend. Replaced whole when the planner resizes a reserve (under the
/// resource's sizing lock), read lock-free by a take.
#[derive(Debug, Default)]
pub struct Lenders(ArcSwap<Vec<Arc<Holdings>>>);

impl Lenders {
    /// Keeps `h` listed while its reserve is above zero (`lends`), and
    /// drops any whose reserve a reload emptied since; the list is
    /// rebuilt only when it changes. The caller holds the sizing lock.
    pub(super) fn list(&self, h: &Arc<Holdings>, lends: bool) {
        let current = self.0.load();
        let listed = current.iter().any(|l| Arc::ptr_eq(l, h));
        let stale = current
            .iter()
            .any(|l| l.reserve.size() == 0.0 && !Arc::ptr_eq(l, h));
        if listed == lends && !stale {
            return;
        }
        let mut next: Vec<Arc<Holdings>> = current
            .iter()
            .filter(|l| !Arc::ptr_eq(l, h) && l.reserve.size() > 0.0)
            .cloned()
            .collect();
        if lends {
            next.push(h.clone());
        }
        self.0.store(Arc::new(next));
    }
}

/// Most reserves one take borrows from: the parts are kept on the stack
/// so a take that falls short can return each to its lender.
const MAX_LENDERS: usize = 4;

/// What one take borrowed, and from whom, until it is paid or undone.
pub(super) struct Loan {
    lenders: Guard<Arc<Vec<Arc<Holdings>>>>,
    parts: [(usize, u64); MAX_LENDERS],
    n: usize,
    pub total: u64,
}

impl Loan {
    /// Borrows up to `need` from the listed reserves other than
    /// `borrower`'s own, in list order; `None` if there was nothing to lend.
    /// Lock-free and allocation-free: one load of the list, one CAS per
    /// reserve that pays.
    #[inline]
    pub(super) fn borrow(
        lenders: &Lenders,
        borrower: &Allotment,
        need: u64,
        now: Nanos,
    ) -> Option<Loan> {
        let lenders = lenders.0.load();
        let mut loan = Loan {
            lenders,
            parts: [(0, 0); MAX_LENDERS],
            n: 0,
            total: 0,
        };
        for (i, h) in loan.lenders.iter().enumerate() {
            if loan.n == MAX_LENDERS || loan.total == need {
                break;
            }
            if Arc::ptr_eq(h, &borrower.holdings) {
                continue;
            }
            // Only rate reserves are listed (`Resource::set_reserve`).
            let Pool::Rate(bucket) = &h.reserve else {
                continue;
            };
            let keep = h.lend_keep.load(Ordering::Relaxed);
            let (got, _) = bucket.take_keeping(need - loan.total, keep, now);
            if got > 0 {
                loan.parts[loan.n] = (i, got);
                loan.n += 1;
                loan.total += got;
            }
        }
        (loan.total > 0).then_some(loan)
    }

    /// Returns every part to the reserve that lent it (the take fell short).
    pub(super) fn undo(self, now: Nanos) {
        for &(i, got) in &self.parts[..self.n] {
            self.lenders[i].reserve.put_back(got, now);
        }
    }
}
