//! Reload scenarios on the core, each one a case found by a reader or a
//! review: what a reload keeps, drains, refuses and never mints.

use std::time::Duration;

use super::*;
use crate::admission::tests::park;
use crate::admission::{AcquireRequest, AdmissionConfig, AdmissionError, Decision, Grant};
use crate::clock::{Clock, ManualClock, NANOS_PER_SEC, SystemClock};
use crate::pool::Pool;

fn policy(yaml: &str) -> Policy {
    Policy::load_str(yaml, "test").unwrap()
}

fn core(yaml: &str, clock: Arc<dyn Clock>) -> Arc<Admission> {
    Arc::new(Admission::new(
        &policy(yaml),
        AdmissionConfig::default(),
        clock,
    ))
}

/// A core on a manual clock, at 1 s.
fn manual_on(p: &Policy) -> (Arc<Admission>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NANOS_PER_SEC));
    let core = Arc::new(Admission::new(p, AdmissionConfig::default(), clock.clone()));
    (core, clock)
}

fn manual(yaml: &str) -> (Arc<Admission>, Arc<ManualClock>) {
    manual_on(&policy(yaml))
}

fn acquire(core: &Admission, tenant: &str, resource: &str, amount: u64) -> Option<Grant> {
    let req = AcquireRequest {
        tenant,
        resource,
        amount,
        ..Default::default()
    };
    match core.try_acquire(&req, core.clock().now()).unwrap() {
        Decision::Granted(g) => Some(g),
        Decision::Denied(_) => None,
    }
}

const RATE: &str = "resources: { db: { kind: rate, capacity: 1000 } }\n";

#[test]
fn unchanged_buckets_keep_their_state_and_changed_ones_take_the_new_limits() {
    let (core, clock) = manual(&format!(
        "{RATE}tenants: {{ a: {{ limits: {{ db: {{ guaranteed: 100 }} }} }}, b: {{ limits: {{ db: {{ guaranteed: 100 }} }} }} }}"
    ));
    assert!(acquire(&core, "a", "db", 100).is_some());
    assert!(acquire(&core, "b", "db", 100).is_some());
    let next = policy(&format!(
        "{RATE}tenants: {{ a: {{ limits: {{ db: {{ guaranteed: 100 }} }} }}, b: {{ limits: {{ db: {{ guaranteed: 300 }} }} }}, c: {{ limits: {{ db: {{ guaranteed: 10 }} }} }} }}"
    ));
    let changes = core.reload(&next, "next").unwrap();
    assert_eq!(changes.tenants_added, ["c"]);
    // Emptied buckets stay empty: a reload hands out nothing.
    assert!(acquire(&core, "a", "db", 1).is_none());
    assert!(acquire(&core, "b", "db", 1).is_none());
    assert!(
        acquire(&core, "c", "db", 1).is_none(),
        "a tenant a reload adds starts empty: adding and removing it mints nothing"
    );
    clock.advance(Duration::from_millis(500));
    // Half a second at the new rates: a 50, b 150 (149 and a
    // fraction: bucket arithmetic rounds against the caller), c 5.
    assert!(acquire(&core, "c", "db", 5).is_some());
    assert!(acquire(&core, "a", "db", 50).is_some());
    assert!(acquire(&core, "a", "db", 1).is_none());
    assert!(acquire(&core, "b", "db", 149).is_some());
    assert!(acquire(&core, "b", "db", 2).is_none());
    // Shared shrank by the new guarantees: 1000 − 100 − 300 − 10.
    assert_eq!(core.registry().resource("db").unwrap().shared.size(), 590.0);
}

#[test]
fn a_removed_tenant_drains_and_its_guarantee_goes_to_shared() {
    let yaml = "resources: { slots: { kind: concurrency, capacity: 4 } }\n\
                tenants: { a: { limits: { slots: { guaranteed: 2 } } }, g: { qos: gold } }\n";
    let (core, _) = manual(yaml);
    let lease = acquire(&core, "a", "slots", 2).unwrap().lease.unwrap();
    assert!(acquire(&core, "g", "slots", 2).is_some());
    let next = policy(
        "resources: { slots: { kind: concurrency, capacity: 4 } }\ntenants: { g: { qos: gold } }\n",
    );
    let changes = core.reload(&next, "next").unwrap();
    assert_eq!(changes.tenants_removed, ["a"]);
    let err = core
        .try_acquire(
            &AcquireRequest {
                tenant: "a",
                resource: "slots",
                amount: 1,
                ..Default::default()
            },
            core.clock().now(),
        )
        .unwrap_err();
    assert!(matches!(err, AdmissionError::NotFound(_)), "{err:?}");
    // a's units still count against capacity until released.
    assert!(acquire(&core, "g", "slots", 1).is_none());
    let released = core.release(&lease.to_string()).unwrap();
    assert_eq!(released.units, 2);
    // The whole capacity is shared once the planner's tick settles.
    core.registry().settle(core.clock().now());
    assert!(acquire(&core, "g", "slots", 2).is_some());
    assert_eq!(core.registry().resource("slots").unwrap().held(), 4);
}

#[test]
fn units_a_dropped_tenant_still_holds_do_not_go_to_borrowers_before_guarantees() {
    let with_a = "resources: { slots: { kind: concurrency, capacity: 4 } }\n\
                  tenants: { a: { limits: { slots: { guaranteed: 2 } } }, \
                  b: { limits: { slots: { guaranteed: 1 } } }, s: { qos: gold } }\n";
    let (core, _) = manual(with_a);
    let lease = acquire(&core, "a", "slots", 2).unwrap().lease.unwrap();
    core.reload(
        &policy(
            "resources: { slots: { kind: concurrency, capacity: 4 } }\n\
             tenants: { b: { limits: { slots: { guaranteed: 1 } } }, s: { qos: gold } }\n",
        ),
        "next",
    )
    .unwrap();
    // Shared is what is neither guaranteed nor still held: 4 - 1 - 2.
    assert!(acquire(&core, "s", "slots", 1).is_some());
    assert!(
        acquire(&core, "s", "slots", 1).is_none(),
        "a's 2 are still out"
    );
    assert!(
        acquire(&core, "b", "slots", 1).is_some(),
        "b's guarantee holds"
    );
    // a's units come back: shared gets them at the next settle (tick).
    core.release(&lease.to_string()).unwrap();
    let registry = core.registry();
    registry.settle(core.clock().now());
    assert_eq!(registry.resource("slots").unwrap().shared.size(), 3.0);
    assert!(acquire(&core, "s", "slots", 2).is_some());
}

/// `slots` with `tenants` (YAML flow map entries).
fn slots(capacity: u64, emergency: f64, tenants: &str) -> Policy {
    policy(&format!(
        "resources: {{ slots: {{ kind: concurrency, capacity: {capacity}, emergency: {emergency} }} }}\n\
         tenants: {{ {tenants} }}\n"
    ))
}

#[test]
fn units_held_beyond_a_cut_guarantee_do_not_go_to_borrowers() {
    let with = |g| {
        format!(
            "a: {{ limits: {{ slots: {{ guaranteed: {g} }} }} }}, b: {{ limits: {{ slots: {{ guaranteed: 1 }} }} }}, s: {{ qos: gold }}"
        )
    };
    let (core, _) = manual_on(&slots(4, 0.0, &with(3)));
    assert!(acquire(&core, "a", "slots", 3).is_some());
    core.reload(&slots(4, 0.0, &with(1)), "cut").unwrap();
    // 4 = a's 1 + b's 1 + the 2 a holds beyond its new guarantee.
    assert!(
        acquire(&core, "s", "slots", 1).is_none(),
        "nothing is shared"
    );
    assert!(
        acquire(&core, "b", "slots", 1).is_some(),
        "b's guarantee holds"
    );
}

#[test]
fn units_held_beyond_a_cut_emergency_share_do_not_go_to_borrowers() {
    let tenants =
        "a: { limits: { slots: { guaranteed: 5 } } }, p: { qos: platinum }, s: { qos: gold }";
    let (core, _) = manual_on(&slots(10, 0.5, tenants));
    let g = acquire(&core, "p", "slots", 5).unwrap();
    assert_eq!(g.split.emergency, 5);
    core.reload(&slots(10, 0.0, tenants), "no emergency")
        .unwrap();
    assert!(
        acquire(&core, "s", "slots", 1).is_none(),
        "p's 5 are still out"
    );
    assert!(
        acquire(&core, "a", "slots", 5).is_some(),
        "a's guarantee holds"
    );
}

#[test]
fn a_removed_tenant_that_comes_back_from_defaults_starts_empty() {
    let defaults = "defaults: { limits: { db: { guaranteed: 100 } } }\n";
    let (core, _) = manual(&format!("{RATE}{defaults}"));
    assert!(
        acquire(&core, "x", "db", 100).is_some(),
        "created full at start"
    );
    core.reload(
        &policy(&format!("{RATE}tenants: {{ y: {{}} }}")),
        "no defaults",
    )
    .unwrap();
    core.reload(&policy(&format!("{RATE}{defaults}")), "defaults again")
        .unwrap();
    assert!(
        acquire(&core, "x", "db", 1).is_none(),
        "x comes back empty: leaving and returning mints nothing"
    );
    assert!(
        acquire(&core, "new", "db", 100).is_some(),
        "a new name starts full"
    );
}

#[test]
fn a_tenant_moved_from_the_list_to_defaults_keeps_its_bucket() {
    let defaults = "defaults: { limits: { db: { guaranteed: 10 } } }\n";
    let (core, _) = manual(&format!(
        "{RATE}{defaults}tenants: {{ x: {{ limits: {{ db: {{ guaranteed: 10 }} }} }} }}"
    ));
    assert!(acquire(&core, "x", "db", 10).is_some());
    let id = core.registry().existing_tenant("x").unwrap().id;
    core.reload(&policy(&format!("{RATE}{defaults}")), "next")
        .unwrap();
    let x = core
        .registry()
        .existing_tenant("x")
        .expect("kept, from defaults");
    assert!(x.from_defaults);
    assert_eq!(x.id, id);
    assert!(acquire(&core, "x", "db", 1).is_none(), "still empty");
}

#[test]
fn a_reserve_set_on_a_tenant_a_reload_dropped_changes_nothing() {
    let (core, _) = manual(&format!(
        "{RATE}tenants: {{ a: {{ limits: {{ db: {{ guaranteed: 100, reserve: {{}} }} }} }}, b: {{}} }}"
    ));
    let stale = core.registry();
    let a = stale.existing_tenant("a").unwrap();
    let db = stale.resource("db").unwrap();
    core.reload(&policy(&format!("{RATE}tenants: {{ b: {{}} }}")), "next")
        .unwrap();
    assert_eq!(stale.set_reserve(&a, db, 500, core.clock().now()), 0);
    assert_eq!(
        core.registry().resource("db").unwrap().shared.size(),
        1000.0
    );
}

#[test]
fn a_resource_dropped_and_added_back_gets_live_pools() {
    let with_db = "resources:\n  db: { kind: rate, capacity: 1000 }\n  \
                   slots: { kind: concurrency, capacity: 2 }\n\
                   tenants: { a: { limits: { db: { guaranteed: 10, reserve: {} } } } }\n";
    let without = "resources:\n  slots: { kind: concurrency, capacity: 2 }\ntenants: { a: {} }\n";
    let (core, clock) = manual(with_db);
    core.reload(&policy(without), "without").unwrap();
    core.reload(&policy(with_db), "with").unwrap();
    assert_eq!(
        core.set_reserve("a", "db", 100).unwrap(),
        100,
        "not retired"
    );
    clock.advance(Duration::from_secs(1));
    assert!(acquire(&core, "a", "db", 10).is_some());
}

#[test]
fn a_capacity_cut_below_what_is_held_grants_nothing_until_enough_comes_back() {
    let yaml = |c| {
        format!(
            "resources: {{ slots: {{ kind: concurrency, capacity: {c} }} }}\ntenants: {{ g: {{ qos: gold }} }}\n"
        )
    };
    let (core, _) = manual(&yaml(4));
    let leases: Vec<_> = (0..4)
        .map(|_| acquire(&core, "g", "slots", 1).unwrap().lease.unwrap())
        .collect();
    core.reload(&policy(&yaml(2)), "next").unwrap();
    assert_eq!(core.registry().resource("slots").unwrap().capacity(), 2);
    core.release(&leases[0].to_string()).unwrap();
    core.release(&leases[1].to_string()).unwrap();
    assert!(acquire(&core, "g", "slots", 1).is_none(), "2 held of 2");
    core.release(&leases[2].to_string()).unwrap();
    assert!(acquire(&core, "g", "slots", 1).is_some());
    assert!(acquire(&core, "g", "slots", 1).is_none());
}

#[test]
fn a_kind_change_is_refused_and_the_policy_in_force_stays() {
    let (core, _) = manual(&format!(
        "{RATE}tenants: {{ a: {{ limits: {{ db: {{ guaranteed: 10 }} }} }} }}"
    ));
    let before = core.registry();
    let next =
        policy("resources: { db: { kind: concurrency, capacity: 5 } }\ntenants: { a: {} }\n");
    let err = core.reload(&next, "edited.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "edited.yaml: resources.db.kind: cannot change from rate to concurrency while \
         the daemon runs (restart it, or give the resource a new name)"
    );
    assert!(Arc::ptr_eq(&before, &core.registry()));
    assert!(acquire(&core, "a", "db", 10).is_some());
}

#[test]
fn a_reserve_the_policy_drops_goes_back_to_shared() {
    let with = |reserve: &str| {
        format!("{RATE}tenants: {{ a: {{ limits: {{ db: {{ guaranteed: 100{reserve} }} }} }} }}")
    };
    let (core, _) = manual(&with(", reserve: { max: 300 }"));
    assert_eq!(core.set_reserve("a", "db", 300).unwrap(), 300);
    assert_eq!(core.registry().resource("db").unwrap().shared.size(), 600.0);
    core.reload(&policy(&with("")), "next").unwrap();
    let registry = core.registry();
    let a = registry.existing_tenant("a").unwrap();
    let db = registry.resource("db").unwrap();
    assert_eq!(a.allotments[db.id].holdings.reserve.size(), 0.0);
    assert_eq!(db.shared.size(), 900.0);
}

#[test]
fn tenants_from_defaults_carry_over_with_their_buckets() {
    let with = |listed: u64| {
        format!(
            "{RATE}defaults: {{ limits: {{ db: {{ guaranteed: 10 }} }} }}\ntenants: {{ l: {{ limits: {{ db: {{ guaranteed: {listed} }} }} }} }}"
        )
    };
    let (core, _) = manual(&with(100));
    assert!(acquire(&core, "x", "db", 10).is_some());
    let id = core.registry().existing_tenant("x").unwrap().id;
    core.reload(&policy(&with(200)), "next").unwrap();
    let x = core.registry().existing_tenant("x").expect("carried over");
    assert_eq!(x.id, id, "same tenant: same idempotency keys and history");
    assert!(
        acquire(&core, "x", "db", 1).is_none(),
        "its bucket is still empty"
    );
    // Σ guaranteed: listed 200 + x's 10.
    assert_eq!(core.registry().resource("db").unwrap().shared.size(), 790.0);
}

#[tokio::test]
async fn leases_and_waiters_carry_over_and_a_new_resource_gets_a_dispatcher() {
    let yaml = |extra: &str| {
        format!(
            "resources: {{ slots: {{ kind: concurrency, capacity: 1 }}{extra} }}\ntenants: {{ a: {{ qos: gold, limits: {{ slots: {{ guaranteed: 1 }} }} }} }}\n"
        )
    };
    let core = core(&yaml(""), Arc::new(SystemClock::new()));
    let cancel = tokio_util::sync::CancellationToken::new();
    let tasks = core.spawn(cancel.clone(), Duration::from_secs(1));
    let held = acquire(&core, "a", "slots", 1).unwrap().lease.unwrap();
    let waiter = park(&core, "a", "slots", 1, Duration::from_secs(60)).await;
    let slots = core.resource_named("slots").unwrap();
    core.reload(
        &policy(&yaml(", gpu: { kind: concurrency, capacity: 1 }")),
        "next",
    )
    .unwrap();
    core.release(&held.to_string()).unwrap();
    let Ok(Decision::Granted(g)) = waiter.await.unwrap() else {
        panic!("the waiter queued before the reload is served after it");
    };
    core.release(&g.lease.unwrap().to_string()).unwrap();
    assert_eq!(slots.held(), 0);
    let a = core.registry().existing_tenant("a").unwrap();
    if let Pool::Concurrency(u) = &a.allotments[slots.id].holdings.guaranteed {
        assert_eq!(u.held(), 0, "units came back to the pool that paid them");
    }
    // The new resource: a waiter there is woken by a release.
    let gpu_lease = acquire(&core, "a", "gpu", 1).unwrap().lease.unwrap();
    let waiter = park(&core, "a", "gpu", 1, Duration::from_secs(60)).await;
    core.release(&gpu_lease.to_string()).unwrap();
    let Ok(Decision::Granted(g)) = waiter.await.unwrap() else {
        panic!("the waiter on the new resource is served");
    };
    core.release(&g.lease.unwrap().to_string()).unwrap();
    // Dropped again: a waiter parked there is answered NOT_FOUND, as a
    // new Acquire would be.
    let gpu_lease = acquire(&core, "a", "gpu", 1).unwrap().lease.unwrap();
    let waiter = park(&core, "a", "gpu", 1, Duration::from_secs(60)).await;
    core.reload(&policy(&yaml("")), "again").unwrap();
    assert!(matches!(
        waiter.await.unwrap(),
        Err(AdmissionError::NotFound(_))
    ));
    assert_eq!(core.release(&gpu_lease.to_string()).unwrap().units, 1);
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}
