//! Work-conserving reserves (DESIGN §2): the owner pays from its guarantee,
//! then its reserve; what it leaves in the reserve is lent to borrowers
//! once the shared pool is empty, never to a class that may not borrow,
//! and never twice.

use proptest::prelude::*;

use super::*;
use crate::clock::Nanos;

/// `plat` (guaranteed 100) with a full reserve of 150/s: shared holds
/// 1000 − 100 emergency − 200 guaranteed − 150 = 550.
fn with_full_reserve() -> (Admission, Arc<ManualClock>) {
    let (core, clock) = core();
    assert_eq!(core.set_reserve("plat", "db", 150).unwrap(), 150);
    clock.advance(Duration::from_millis(1001));
    (core, clock)
}

#[test]
fn a_borrower_takes_what_a_reserve_holds_once_shared_is_empty() {
    let (core, clock) = with_full_reserve();
    let now = clock.now();
    let g = granted(core.try_acquire(&req("silver", "db", 750), now));
    // 50 guaranteed, 550 shared, 150 lent by plat's reserve (counted as
    // shared: opportunistic capacity, to the borrower).
    assert_eq!(
        (g.split.reserve, g.split.guaranteed, g.split.shared),
        (0, 50, 700)
    );
    denied(core.try_acquire(&req("silver", "db", 1), now));
    let g = granted(core.try_acquire(&req("plat", "db", 100), now));
    assert_eq!(g.split.guaranteed, 100);
    let r = core.resource_named("db").unwrap();
    let plat = core.registry().existing_tenant("plat").unwrap();
    assert_eq!(
        plat.allotments[r.id].holdings.reserve.available(now),
        0,
        "the reserve was lent out"
    );
}

#[test]
fn the_owner_pays_from_its_guarantee_first_so_its_reserve_stays_lendable() {
    let (core, clock) = with_full_reserve();
    let now = clock.now();
    let g = granted(core.try_acquire(&req("plat", "db", 80), now));
    assert_eq!((g.split.guaranteed, g.split.reserve), (80, 0));
    let g = granted(core.try_acquire(&req("silver", "db", 750), now));
    assert_eq!(g.split.shared, 700, "550 shared + all 150 of the reserve");
}

#[test]
fn a_borrower_that_asks_first_takes_what_the_owner_has_not_drawn() {
    // The owner's first call is its draw order, not a share held back:
    // what its reserve holds when a borrower finds shared empty is lent.
    let (core, clock) = with_full_reserve();
    let now = clock.now();
    granted(core.try_acquire(&req("silver", "db", 750), now));
    let g = granted(core.try_acquire(&req("plat", "db", 100), now));
    assert_eq!((g.split.guaranteed, g.split.reserve), (100, 0));
    // Half a second refills 75 into the reserve: the owner, asking
    // first, gets them.
    clock.advance(Duration::from_millis(500));
    let g = granted(core.try_acquire(&req("plat", "db", 120), clock.now()));
    assert_eq!((g.split.guaranteed, g.split.reserve), (50, 70));
}

#[test]
fn a_hold_back_is_kept_from_borrowers_but_not_from_the_owner() {
    // `planner.lend_hold_back`: 100 of the reserve's 150 stay for plat.
    let (core, clock) = with_full_reserve();
    let now = clock.now();
    let r = core.resource_named("db").unwrap();
    let plat = core.registry().existing_tenant("plat").unwrap();
    core.registry().keep_from_borrowers(&plat, &r, 100);
    denied(core.try_acquire(&req("silver", "db", 651), now));
    let g = granted(core.try_acquire(&req("silver", "db", 650), now));
    assert_eq!(g.split.shared, 600, "550 shared + the 50 not kept back");
    let g = granted(core.try_acquire(&req("plat", "db", 200), now));
    assert_eq!((g.split.guaranteed, g.split.reserve), (100, 100));
}

#[test]
fn a_class_that_may_not_borrow_takes_nothing_from_others_reserves() {
    let (core, clock) = with_full_reserve();
    let now = clock.now();
    granted(core.try_acquire(&req("bronze", "db", 50), now));
    denied(core.try_acquire(&req("bronze", "db", 1), now));
    let g = granted(core.try_acquire(&req("plat", "db", 250), now));
    assert_eq!(g.split.reserve, 150, "bronze left the reserve whole");
}

#[test]
fn a_denied_borrower_gives_back_what_it_borrowed() {
    let (core, clock) = with_full_reserve();
    let now = clock.now();
    granted(core.try_acquire(&req("silver", "db", 100), now));
    // 500 shared + 150 lent is all silver can still reach: one more is
    // denied ...
    denied(core.try_acquire(&req("silver", "db", 651), now));
    // ... and the reserve still holds all 150 for its owner.
    let g = granted(core.try_acquire(&req("plat", "db", 250), now));
    assert_eq!(g.split.reserve, 150);
}

#[test]
fn the_owner_draws_on_its_reserve_before_anyone_borrows() {
    let (core, clock) = with_full_reserve();
    let now = clock.now();
    let g = granted(core.try_acquire(&req("plat", "db", 220), now));
    assert_eq!((g.split.guaranteed, g.split.reserve), (100, 120));
    let g = granted(core.try_acquire(&req("silver", "db", 630), now));
    assert_eq!(g.split.shared, 580, "550 shared + the 30 plat left");
    denied(core.try_acquire(&req("silver", "db", 1), now));
}

/// Tokens every pool of `db` holds at `now`.
fn held(core: &Admission, now: Nanos) -> u64 {
    let r = core.resource_named("db").unwrap();
    let registry = core.registry();
    let own: u64 = ["plat", "bronze", "silver"]
        .iter()
        .map(|t| {
            let h = &registry.existing_tenant(t).unwrap().allotments[r.id].holdings;
            h.reserve.available(now) + h.guaranteed.available(now)
        })
        .sum();
    own + r.shared.available(now) + r.emergency.available(now)
}

proptest! {
    /// On a frozen clock (no refill), every token granted left exactly one
    /// pool: Σ granted equals what the pools lost, so a lent reserve token
    /// is never granted twice, and a denial takes nothing.
    #[test]
    fn every_granted_token_leaves_exactly_one_pool(
        reserve in 0..300u64,
        asks in prop::collection::vec((0..3usize, 1..400u64), 1..40),
    ) {
        let (core, clock) = core();
        core.set_reserve("plat", "db", reserve).unwrap();
        clock.advance(Duration::from_millis(1001));
        core.set_reserve("plat", "db", reserve).unwrap();
        let now = clock.now();
        let before = held(&core, now);
        let mut granted_total = 0;
        for (t, amount) in asks {
            let tenant = ["plat", "bronze", "silver"][t];
            let lost = held(&core, now);
            match core.try_acquire(&req(tenant, "db", amount), now) {
                Ok(Decision::Granted(g)) => {
                    prop_assert_eq!(g.split.total(), amount);
                    prop_assert_eq!(lost - held(&core, now), amount);
                    granted_total += amount;
                }
                _ => prop_assert_eq!(held(&core, now), lost, "a denial took nothing"),
            }
        }
        prop_assert_eq!(before - held(&core, now), granted_total);
    }
}
