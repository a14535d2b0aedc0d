//! The capacity invariant (DESIGN §2), as a property: for random policies and
//! random interleavings of Acquire, Release, Report, reserve resizes, TTL
//! reaps, planner ticks (which resize and spill reserves), policy reloads
//! (the same tenants with other limits and classes) and time steps on a
//! virtual clock,
//!
//! * rate: over every window `[t1, t2]`, tokens granted (net of Report
//!   refunds) never exceed `C·(t2 − t1)` plus what the pools can hold at
//!   once (Σ tenant bucket depths + the rest of `C`);
//! * concurrency: the units of the grants callers hold (not yet released
//!   or reaped) never exceed `C`, the core's count matches them, and once
//!   all are released every pool is empty.

use std::sync::Arc;
use std::time::Duration;

use prescient::admission::{AcquireRequest, Admission, AdmissionConfig, Decision, ReportEntry};
use prescient::clock::{Clock, ManualClock, NANOS_PER_SEC};
use prescient::planner::{Planner, PlannerConfig};
use prescient::policy::Policy;
use prescient::pool::Pool;
use proptest::prelude::*;

mod case;
mod op;

use case::{PolicyCase, TenantCase, policy_case};
use op::{Op, op};

/// A lease the model knows to be outstanding.
#[derive(Debug, Clone)]
struct HeldLease {
    id: String,
    rate: bool,
    amount: u64,
    acquired_at: u64,
}

fn check(case: &PolicyCase, ops: &[Op]) -> Result<(), TestCaseError> {
    let policy = Policy::load_str(&case.yaml(), "proptest").expect("generated policies are valid");
    let mut reloaded = case.reloaded.clone();
    if case.drop_last && reloaded.len() > 1 {
        reloaded.pop();
    }
    let other = PolicyCase {
        tenants: reloaded,
        ..case.clone()
    };
    let other = Policy::load_str(&other.yaml(), "proptest").expect("generated policies are valid");
    let mut in_force = 0;
    let clock = Arc::new(ManualClock::new(NANOS_PER_SEC));
    let core = Arc::new(Admission::new(
        &policy,
        AdmissionConfig::default(),
        clock.clone(),
    ));
    let mut planner = Planner::new(
        core.clone(),
        &policy,
        PlannerConfig {
            inline_refits: true,
            ..PlannerConfig::default()
        },
    );
    let tenants: Vec<String> = (0..case.tenants.len()).map(|i| format!("t{i}")).collect();
    let registry = core.registry();
    let api = registry.resource("api").unwrap();
    let slots = registry.resource("slots").unwrap();
    // slots sets lease_ttl: 10s; api keeps the default.
    let ttl = |rate: bool| if rate { 60 } else { 10 } * NANOS_PER_SEC;

    // (time, +granted / −refunded) for the rate resource.
    let mut rate_events: Vec<(u64, i64)> = Vec::new();
    let mut held: Vec<HeldLease> = Vec::new();

    for op in ops {
        let now = clock.now();
        match op {
            Op::Acquire {
                tenant,
                rate,
                amount,
                lease,
            } => {
                let tenant = &tenants[tenant % tenants.len()];
                let resource = if *rate { "api" } else { "slots" };
                let amount = if *rate { *amount } else { 1 + amount % 4 };
                let req = AcquireRequest {
                    tenant,
                    resource,
                    amount,
                    lease: *lease,
                    ..Default::default()
                };
                // Impossible amounts are INVALID_ARGUMENT; that is fine.
                if let Ok(Decision::Granted(g)) = core.try_acquire(&req, now) {
                    prop_assert_eq!(g.split.total(), amount);
                    if *rate {
                        rate_events.push((now, amount as i64));
                    }
                    if let Some(id) = g.lease {
                        held.push(HeldLease {
                            id: id.to_string(),
                            rate: *rate,
                            amount,
                            acquired_at: now,
                        });
                    }
                }
            }
            Op::Release { pick } if !held.is_empty() => {
                let l = held.remove(pick % held.len());
                let r = core.release(&l.id).unwrap();
                prop_assert!(!r.already, "the model holds it, so must the core");
                prop_assert_eq!(r.units, if l.rate { 0 } else { l.amount });
            }
            Op::Report { pick, used_pct } if !held.is_empty() => {
                let i = pick % held.len();
                if held[i].rate {
                    let l = held.remove(i);
                    let used = l.amount * used_pct / 100;
                    let s = core.report(&[ReportEntry {
                        tenant: "",
                        resource: "",
                        lease_id: Some(&l.id),
                        used,
                        ..Default::default()
                    }]);
                    prop_assert_eq!(s.accepted, 1, "{:?}", s.errors);
                    if used < l.amount {
                        rate_events.push((now, -((l.amount - used) as i64)));
                    }
                }
            }
            Op::Reserve { tenant, rate, size } => {
                let tenant = &tenants[tenant % tenants.len()];
                let resource = if *rate { "api" } else { "slots" };
                // NOT_FOUND when the policy in force dropped the tenant.
                let _ = core.set_reserve(tenant, resource, *size);
            }
            Op::Advance { ms } => clock.advance(Duration::from_millis(*ms)),
            Op::Plan => {
                planner.tick(now);
            }
            Op::Reload => {
                in_force = 1 - in_force;
                let next = [&policy, &other][in_force];
                planner.reload(next, "proptest").unwrap();
            }
            Op::Reap => {
                let reclaimed = core.reap(now);
                let before = held.len();
                held.retain(|l| l.acquired_at + ttl(l.rate) > now);
                prop_assert_eq!(reclaimed, before - held.len());
            }
            _ => {}
        }
        // Counted from the callers' side: the units of the grants they hold
        // (not yet released or reaped). The gate's own count could not
        // show an over-grant: it is what the gate bounds.
        let model_units: u64 = held.iter().filter(|l| !l.rate).map(|l| l.amount).sum();
        prop_assert!(
            model_units <= case.slot_capacity,
            "callers hold {} units of a capacity of {}",
            model_units,
            case.slot_capacity
        );
        prop_assert_eq!(
            slots.held(),
            model_units,
            "core and model disagree on units held"
        );
    }

    // Rate: every window. What the pools can hold at once is the larger of
    // the two policies' (a reload never adds tokens, only caps them).
    let c = api.capacity() as f64;
    let slack = [&policy, &other]
        .iter()
        .map(|p| {
            let depths: u64 = p.tenants.values().map(|t| t.limits["api"].depth()).sum();
            let guaranteed: u64 = p.tenants.values().map(|t| t.limits["api"].guaranteed).sum();
            depths as f64 + (api.capacity() - guaranteed) as f64
        })
        .fold(0.0, f64::max);
    for i in 0..rate_events.len() {
        let mut sum = 0i64;
        for j in i..rate_events.len() {
            sum += rate_events[j].1;
            let window = (rate_events[j].0 - rate_events[i].0) as f64 / NANOS_PER_SEC as f64;
            prop_assert!(
                sum as f64 <= c * window + slack,
                "granted {} in {:.3}s > {} x window + {}",
                sum,
                window,
                c,
                slack
            );
        }
    }

    // No leaks: release what is left; every pool is empty again.
    for l in held.drain(..) {
        core.release(&l.id).unwrap();
    }
    prop_assert_eq!(slots.held(), 0);
    for name in &tenants {
        // A tenant the policy in force dropped has no pools to look at;
        // the gate above still counts its units.
        let Some(t) = core.registry().existing_tenant(name) else {
            continue;
        };
        let a = &t.allotments[slots.id];
        for pool in [&a.holdings.reserve, &a.holdings.guaranteed] {
            if let Pool::Concurrency(u) = pool {
                prop_assert_eq!(u.held(), 0, "tenant {} leaked units", name);
            }
        }
    }
    for pool in [&slots.shared, &slots.emergency] {
        if let Pool::Concurrency(u) = pool {
            prop_assert_eq!(u.held(), 0);
        }
    }
    // Nothing is lost to accounting either: once a tick has settled what
    // came back, guarantees, reserves, shared and emergency add up to the
    // capacity again, whatever the reloads did.
    planner.tick(clock.now());
    for r in [api, slots] {
        let (g, reserves, held_back) = r.allocation();
        prop_assert_eq!(held_back, 0, "{} still holds units back", r.name);
        prop_assert_eq!(
            g + reserves + r.shared.size() as u64 + r.emergency.size() as u64,
            r.capacity(),
            "{}: guaranteed {} + reserves {} + shared {} + emergency {}",
            r.name,
            g,
            reserves,
            r.shared.size(),
            r.emergency.size()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if std::env::var_os("CI").is_some() { 512 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn capacity_is_never_exceeded_and_no_lease_leaks(
        case in policy_case(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        check(&case, &ops)?;
    }
}

#[test]
fn the_generator_makes_valid_policies_for_the_extremes() {
    for (shares, emergency) in [(0, 0), (59, 29)] {
        let case = PolicyCase {
            rate_capacity: 10,
            slot_capacity: 1,
            emergency_pct: emergency,
            tenants: vec![
                TenantCase {
                    qos: 0,
                    rate_share: shares,
                    burst_factor: 3,
                    slot_share: shares,
                    reserve: true
                };
                4
            ],
            reloaded: Vec::new(),
            drop_last: false,
        };
        Policy::load_str(&case.yaml(), "gen").unwrap();
    }
}
