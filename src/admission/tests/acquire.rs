//! Acquire without waiting: how a grant is paid across the tiers, what
//! is refused, tenants made from defaults, and the demand it counts.

use super::*;

#[test]
fn bronze_gets_its_bucket_and_then_a_retry_after_from_the_refill_rate() {
    let (core, clock) = core();
    let now = clock.now();
    let g = granted(core.try_acquire(&req("bronze", "db", 50), now));
    assert_eq!(g.split.guaranteed, 50);
    assert_eq!(
        g.remaining, 0,
        "bronze may not borrow: its bucket is all it has"
    );
    let d = denied(core.try_acquire(&req("bronze", "db", 10), now));
    // 10 tokens at 50/s: 200 ms.
    assert_eq!(d.retry_after, Duration::from_millis(200));
    clock.advance(Duration::from_millis(200));
    granted(core.try_acquire(&req("bronze", "db", 10), clock.now()));
}

#[test]
fn a_grant_is_paid_reserve_first_then_guaranteed_then_shared() {
    let (core, clock) = core();
    assert_eq!(core.set_reserve("plat", "db", 150).unwrap(), 150);
    // A new reserve starts empty; let it fill (intervals round up, so a
    // hair over one second).
    clock.advance(Duration::from_millis(1001));
    let g = granted(core.try_acquire(&req("plat", "db", 400), clock.now()));
    assert_eq!(
        (
            g.split.reserve,
            g.split.guaranteed,
            g.split.shared,
            g.split.emergency
        ),
        (150, 100, 150, 0)
    );
}

#[test]
fn a_denied_split_takes_nothing_from_any_pool() {
    let (core, clock) = core();
    let now = clock.now();
    // silver: guaranteed 50 + shared 700 (1000 - 100 emergency - 200 guaranteed).
    let before = granted(core.try_acquire(&req("silver", "db", 1), now)).remaining;
    assert_eq!(before, 749);
    denied(core.try_acquire(&req("silver", "db", 750), now));
    let after = granted(core.try_acquire(&req("silver", "db", 1), now)).remaining;
    assert_eq!(after, 748, "the failed attempt returned every partial take");
}

#[test]
fn emergency_is_only_for_classes_with_access_and_only_last() {
    let (core, clock) = core();
    let now = clock.now();
    let g = granted(core.try_acquire(&req("plat", "db", 900), now));
    assert_eq!(
        (g.split.guaranteed, g.split.shared, g.split.emergency),
        (100, 700, 100)
    );
    // silver may borrow but has no emergency access; shared is empty now.
    let d = denied(core.try_acquire(&req("silver", "db", 51), now));
    assert_eq!(d.remaining, 50);
}

#[test]
fn impossible_amounts_and_unknown_names_are_errors_naming_the_field() {
    let (core, clock) = core();
    let now = clock.now();
    let err = |r| core.try_acquire(&r, now).unwrap_err();
    match err(req("bronze", "db", 51)) {
        AdmissionError::AmountOverMax(m) => assert!(m.starts_with("amount: 51 exceeds"), "{m}"),
        e => panic!("{e:?}"),
    }
    match err(req("bronze", "db", 0)) {
        AdmissionError::InvalidArgument(m) => assert!(m.starts_with("amount:"), "{m}"),
        e => panic!("{e:?}"),
    }
    match err(req("bronze", "gpu", 1)) {
        AdmissionError::NotFound(m) => assert!(m.starts_with("resource: unknown"), "{m}"),
        e => panic!("{e:?}"),
    }
    match err(req("nobody", "db", 1)) {
        AdmissionError::NotFound(m) => assert!(m.starts_with("tenant: unknown"), "{m}"),
        e => panic!("{e:?}"),
    }
    match err(req("", "db", 1)) {
        AdmissionError::InvalidArgument(m) => assert!(m.starts_with("tenant:"), "{m}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn defaults_create_tenants_by_carving_their_guarantee_out_of_shared() {
    let yaml =
        format!("{POLICY}defaults:\n  qos: bronze\n  limits:\n    db: {{ guaranteed: 300 }}\n");
    let clock = Arc::new(ManualClock::new(NANOS_PER_SEC));
    let core = core_with(&yaml, clock.clone());
    let now = clock.now();
    let shared_before = core.resource_named("db").unwrap().shared.size();
    assert_eq!(shared_before, 700.0);
    granted(core.try_acquire(&req("new1", "db", 300), now));
    granted(core.try_acquire(&req("new2", "db", 300), now));
    assert_eq!(core.resource_named("db").unwrap().shared.size(), 100.0);
    match core.try_acquire(&req("new3", "db", 1), now) {
        Err(AdmissionError::ResourceExhausted(m)) => {
            assert!(m.contains("cannot guarantee 300 of db"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        core.registry().existing_tenant("new3").is_none(),
        "nothing half-made"
    );
}

#[test]
fn held_units_never_exceed_capacity_even_when_a_reserve_shrinks() {
    let (core, clock) = core();
    let now = clock.now();
    core.set_reserve("plat", "slots", 2).unwrap();
    // plat: reserve 2 + guaranteed 2 + shared 4 + emergency 1 = 9; bronze
    // is guaranteed the tenth.
    let leases: Vec<_> = (0..9)
        .map(|_| {
            granted(core.try_acquire(&req("plat", "slots", 1), now))
                .lease
                .unwrap()
        })
        .collect();
    denied(core.try_acquire(&req("plat", "slots", 1), now));
    // The reserve cannot shrink below its units in use, so shared cannot
    // hand them out twice, and bronze keeps its guaranteed unit.
    assert_eq!(core.set_reserve("plat", "slots", 0).unwrap(), 2);
    denied(core.try_acquire(&req("plat", "slots", 1), now));
    granted(core.try_acquire(&req("bronze", "slots", 1), now));
    let registry = core.registry();
    let slots = registry.resource("slots").unwrap();
    assert_eq!(slots.held(), 10);
    for l in leases {
        core.release(&l.to_string()).unwrap();
    }
    assert_eq!(core.set_reserve("plat", "slots", 0).unwrap(), 0);
    assert_eq!(slots.shared.size(), 6.0);
}

#[test]
fn demand_counters_fold_requests_tokens_and_tiers_once() {
    let (core, clock) = core();
    core.set_reserve("plat", "db", 100).unwrap();
    clock.advance(Duration::from_millis(1001));
    let now = clock.now();
    granted(core.try_acquire(&req("plat", "db", 150), now)); // guaranteed 100 + reserve 50
    granted(core.try_acquire(&req("plat", "db", 10), now)); // reserve
    let t = core.registry().existing_tenant("plat").unwrap();
    let db = core.resource_named("db").unwrap();
    let d = t.allotments[db.id].holdings.counters.fold();
    assert_eq!((d.requests, d.asked, d.denials, d.denied), (2, 160, 0, 0));
    assert_eq!(d.by_tier, [60, 100, 0, 0]);
    assert_eq!(
        t.allotments[db.id].holdings.counters.fold(),
        Demand::default(),
        "a fold resets"
    );
    granted(core.try_acquire(&req("bronze", "db", 50), now));
    denied(core.try_acquire(&req("bronze", "db", 5), now));
    let b = core.registry().existing_tenant("bronze").unwrap();
    let d = b.allotments[db.id].holdings.counters.fold();
    assert_eq!(
        (d.requests, d.asked, d.denials, d.denied, d.granted()),
        (2, 55, 1, 5, 50)
    );
}
