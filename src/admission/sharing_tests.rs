//! A share in force: pools scaled to it, the rest shared, reloads and
//! reserves kept within it, and grants bounded by it.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::admission::{AcquireRequest, AdmissionConfig, Decision, Resource};
use crate::clock::{Clock, ManualClock, NANOS_PER_SEC};
use crate::policy::Policy;

const POLICY: &str = "resources:\n  db: { kind: rate, capacity: 1000, emergency: 0.1 }\n  \
    slots: { kind: concurrency, capacity: 10 }\n\
    tenants:\n  a: { qos: platinum, limits: { db: { guaranteed: 300, reserve: { quantile: 0.9, horizon: 10s } }, slots: { guaranteed: 6 } } }\n  \
    b: { qos: silver, limits: { db: { guaranteed: 200 } } }\n";

fn core_on(yaml: &str) -> (Arc<Admission>, Arc<ManualClock>) {
    let policy = Policy::load_str(yaml, "test").unwrap();
    let clock = Arc::new(ManualClock::new(NANOS_PER_SEC));
    let core = Arc::new(Admission::new(
        &policy,
        AdmissionConfig::default(),
        clock.clone(),
    ));
    (core, clock)
}

fn share(capacity: u64, emergency: u64, parts: &[(&str, f64)]) -> Share {
    Share {
        capacity,
        emergency,
        parts: parts.iter().map(|(t, p)| (Arc::from(*t), *p)).collect(),
    }
}

fn guaranteed(core: &Admission, tenant: &str, resource: &str) -> f64 {
    let registry = core.registry();
    let r = registry.resource(resource).unwrap();
    let t = registry.existing_tenant(tenant).unwrap();
    t.allotments[r.id].holdings.guaranteed.size()
}

/// Σ of every pool's rate (or units) of `r`.
fn pools(core: &Admission, r: &Resource) -> f64 {
    let registry = core.registry();
    let own: f64 = registry
        .tenants()
        .iter()
        .map(|t| {
            let h = &t.allotments[r.id].holdings;
            h.guaranteed.size() + h.reserve.size()
        })
        .sum();
    own + r.shared.size() + r.emergency.size()
}

fn acquire(core: &Admission, tenant: &str, resource: &str, amount: u64) -> u64 {
    let req = AcquireRequest {
        tenant,
        resource,
        amount,
        ..Default::default()
    };
    match core.try_acquire(&req, core.clock().now()).unwrap() {
        Decision::Granted(_) => amount,
        Decision::Denied(_) => 0,
    }
}

#[test]
fn a_share_scales_guarantees_and_the_shared_pool_takes_the_rest() {
    let (core, clock) = core_on(POLICY);
    let now = clock.now();
    let applied = core
        .apply_share("db", Some(share(400, 40, &[("a", 0.5), ("b", 0.25)])), now)
        .unwrap();
    assert_eq!(applied.capacity, 400);
    assert_eq!(applied.guaranteed, 150 + 50);
    assert_eq!(guaranteed(&core, "a", "db"), 150.0);
    assert_eq!(guaranteed(&core, "b", "db"), 50.0);
    let registry = core.registry();
    let db = registry.resource("db").unwrap();
    assert_eq!(db.capacity(), 400);
    assert_eq!(db.emergency.size(), 40.0);
    assert_eq!(db.shared.size(), 400.0 - 40.0 - 200.0);
    // The policy still judges what one Acquire may ask for.
    assert_eq!(db.policy_capacity(), (1000, 100));
    // Without a share the daemon holds the whole policy again.
    core.apply_share("db", None, now).unwrap();
    assert_eq!(guaranteed(&core, "a", "db"), 300.0);
    assert_eq!(guaranteed(&core, "b", "db"), 200.0);
    assert_eq!(db.capacity(), 1000);
    assert_eq!(db.shared.size(), 1000.0 - 100.0 - 500.0);
}

#[test]
fn guarantees_a_share_cannot_hold_are_scaled_down_together() {
    let (core, clock) = core_on(POLICY);
    core.apply_share(
        "db",
        Some(share(110, 10, &[("a", 1.0), ("b", 1.0)])),
        clock.now(),
    )
    .unwrap();
    // 100 of room for 500 of guarantees: each keeps a fifth.
    assert_eq!(guaranteed(&core, "a", "db"), 60.0);
    assert_eq!(guaranteed(&core, "b", "db"), 40.0);
    let registry = core.registry();
    let db = registry.resource("db").unwrap();
    assert!(pools(&core, db) <= 110.0);
}

#[test]
fn tokens_granted_stay_within_the_share_however_tenants_race() {
    let (core, clock) = core_on(POLICY);
    core.apply_share(
        "db",
        Some(share(200, 20, &[("a", 0.4), ("b", 0.1)])),
        clock.now(),
    )
    .unwrap();
    let registry = core.registry();
    let db = registry.resource("db").unwrap();
    let depths: u64 = registry
        .tenants()
        .iter()
        .map(|t| t.allotments[db.id].holdings.guaranteed.depth())
        .sum::<u64>()
        + db.shared.depth()
        + db.emergency.depth();
    let mut granted = 0;
    for _ in 0..10_000 {
        clock.advance(std::time::Duration::from_millis(1));
        granted += acquire(&core, "a", "db", 3) + acquire(&core, "b", "db", 2);
    }
    // 10 s at 200/s, plus what the buckets held at the start.
    assert!(
        granted <= 200 * 10 + depths,
        "{granted} > {}",
        200 * 10 + depths
    );
    assert!(granted >= 200 * 10 * 9 / 10, "the share is used: {granted}");
}

#[test]
fn a_reload_keeps_the_share_in_force() {
    let (core, clock) = core_on(POLICY);
    core.apply_share(
        "db",
        Some(share(400, 40, &[("a", 0.5), ("b", 0.25)])),
        clock.now(),
    )
    .unwrap();
    let next = Policy::load_str(
        &POLICY.replace("guaranteed: 200", "guaranteed: 240"),
        "next",
    )
    .unwrap();
    core.reload(&next, "next").unwrap();
    assert_eq!(guaranteed(&core, "a", "db"), 150.0);
    assert_eq!(guaranteed(&core, "b", "db"), 60.0);
    let registry = core.registry();
    let db = registry.resource("db").unwrap();
    assert_eq!(db.capacity(), 400);
    assert!(pools(&core, db) <= 400.0);
}

#[test]
fn units_held_beyond_a_smaller_share_stay_out_until_released() {
    let (core, clock) = core_on(POLICY);
    let mut leases = Vec::new();
    for _ in 0..6 {
        let req = AcquireRequest {
            tenant: "a",
            resource: "slots",
            amount: 1,
            ..Default::default()
        };
        match core.try_acquire(&req, clock.now()).unwrap() {
            Decision::Granted(g) => leases.push(g.lease.unwrap()),
            Decision::Denied(_) => panic!("a's guarantee is free"),
        }
    }
    core.apply_share("slots", Some(share(4, 0, &[("a", 0.5)])), clock.now())
        .unwrap();
    let registry = core.registry();
    let slots = registry.resource("slots").unwrap();
    assert_eq!(slots.capacity(), 4);
    // Six held, four allowed: nothing more until two come back.
    assert_eq!(acquire(&core, "a", "slots", 1), 0);
    assert_eq!(acquire(&core, "b", "slots", 1), 0);
    for lease in leases.drain(..3) {
        core.release(&lease.to_string()).unwrap();
    }
    registry.settle(clock.now());
    assert_eq!(slots.held(), 3);
    assert_eq!(acquire(&core, "a", "slots", 1), 1);
    assert_eq!(acquire(&core, "a", "slots", 1), 0, "at the share's 4");
}

proptest! {
    /// Whatever shares, reserves and grants come in whatever order, the
    /// pools of a resource never add up to more than the capacity in force.
    #[test]
    fn pools_never_exceed_the_share_in_force(
        steps in proptest::collection::vec(
            (0u8..4, 0u64..=1000, 0.0f64..=1.0, 0.0f64..=1.0, 0u64..600), 1..40),
    ) {
        let (core, clock) = core_on(POLICY);
        for (op, capacity, pa, pb, n) in steps {
            clock.advance(std::time::Duration::from_millis(n));
            let now = clock.now();
            match op {
                0 => {
                    let s = share(capacity, capacity / 10, &[("a", pa), ("b", pb)]);
                    core.apply_share("db", Some(s), now).unwrap();
                }
                1 => {
                    core.set_reserve("a", "db", n).unwrap();
                }
                2 => { acquire(&core, "a", "db", n.max(1)); acquire(&core, "b", "db", 1); }
                _ => { core.apply_share("db", None, now).unwrap(); }
            }
            let registry = core.registry();
            let db = registry.resource("db").unwrap();
            let total = pools(&core, db);
            prop_assert!(total <= db.capacity() as f64 + 1e-6,
                "pools {total} > capacity {}", db.capacity());
            let (g, r, _) = db.allocation();
            prop_assert!(g + r + db.emergency_units() <= db.capacity());
        }
    }
}

#[test]
fn parts_are_clamped_and_unknown_tenants_hold_none() {
    let s = share(10, 0, &[("a", 2.0)]);
    assert_eq!(s.part("a"), 1.0);
    assert_eq!(s.part("nobody"), 0.0);
}
