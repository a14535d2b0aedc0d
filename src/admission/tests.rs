use std::sync::Arc;
use std::time::Duration;

use super::*;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, ManualClock, NANOS_PER_SEC};
use crate::policy::Policy;

const POLICY: &str = r#"
resources:
  db:
    kind: rate
    capacity: 1000
    emergency: 0.1
  slots:
    kind: concurrency
    capacity: 10
    emergency: 0.1
    lease_ttl: 30s
tenants:
  plat:
    qos: platinum
    limits:
      db: { guaranteed: 100, reserve: { max: 200 } }
      slots: { guaranteed: 2, reserve: { max: 2 } }
  bronze:
    qos: bronze
    limits:
      db: { guaranteed: 50 }
      slots: { guaranteed: 1 }
  silver:
    qos: silver
    limits:
      db: { guaranteed: 50 }
"#;

fn core_with(yaml: &str, clock: Arc<dyn Clock>) -> Admission {
    let policy = Policy::load_str(yaml, "test").unwrap();
    Admission::new(&policy, AdmissionConfig::default(), clock)
}

fn core() -> (Admission, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NANOS_PER_SEC));
    (core_with(POLICY, clock.clone()), clock)
}

fn req<'a>(tenant: &'a str, resource: &'a str, amount: u64) -> AcquireRequest<'a> {
    AcquireRequest {
        tenant,
        resource,
        amount,
        ..Default::default()
    }
}

fn granted(d: Result<Decision, AdmissionError>) -> Grant {
    match d {
        Ok(Decision::Granted(g)) => g,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn denied(d: Result<Decision, AdmissionError>) -> Denial {
    match d {
        Ok(Decision::Denied(d)) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

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
        AdmissionError::InvalidArgument(m) => assert!(m.starts_with("amount: 51 exceeds"), "{m}"),
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
fn concurrency_leases_release_once_and_return_units_to_their_pools() {
    let (core, clock) = core();
    let now = clock.now();
    let g = granted(core.try_acquire(&req("bronze", "slots", 1), now));
    let lease = g
        .lease
        .expect("concurrency grants carry a lease")
        .to_string();
    denied(core.try_acquire(&req("bronze", "slots", 1), now));
    assert_eq!(
        core.release(&lease).unwrap(),
        Released {
            units: 1,
            already: false
        }
    );
    assert_eq!(
        core.release(&lease).unwrap(),
        Released {
            units: 0,
            already: true
        }
    );
    granted(core.try_acquire(&req("bronze", "slots", 1), now));
    assert!(matches!(
        core.release("00000000deadbeef"),
        Err(AdmissionError::NotFound(m)) if m.starts_with("lease_id: unknown lease")
    ));
    assert!(matches!(
        core.release("not-a-lease"),
        Err(AdmissionError::InvalidArgument(m)) if m.starts_with("lease_id:")
    ));
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
fn leases_past_their_ttl_are_reclaimed_and_then_read_as_released() {
    let (core, clock) = core();
    let g = granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    assert_eq!(core.reap(clock.now()), 0);
    clock.advance(Duration::from_secs(31));
    assert_eq!(core.reap(clock.now()), 1);
    granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    let lease = g.lease.unwrap().to_string();
    assert!(core.release(&lease).unwrap().already);
}

#[test]
fn report_refunds_or_debits_a_rate_grant_once() {
    let (core, clock) = core();
    let now = clock.now();
    let mut r = req("bronze", "db", 40);
    r.lease = true;
    let g = granted(core.try_acquire(&r, now));
    let lease = g.lease.unwrap().to_string();
    let entry = |used| ReportEntry {
        tenant: "bronze",
        resource: "db",
        lease_id: Some(&lease),
        used,
        ..Default::default()
    };
    let s = core.report(&[entry(10)]);
    assert_eq!((s.accepted, s.rejected), (1, 0));
    assert_eq!(
        granted(core.try_acquire(&req("bronze", "db", 1), now)).remaining,
        39
    );
    let s = core.report(&[entry(10)]);
    assert_eq!(s.rejected, 1, "a grant is settled once");
    assert!(s.errors[0].1.contains("already settled"), "{:?}", s.errors);

    // Used more than acquired: the bucket goes into debt.
    clock.advance(Duration::from_secs(1));
    let now = clock.now();
    let g = granted(core.try_acquire(&r, now));
    let lease = g.lease.unwrap().to_string();
    let s = core.report(&[ReportEntry {
        tenant: "bronze",
        resource: "db",
        lease_id: Some(&lease),
        used: 140,
        ..Default::default()
    }]);
    assert_eq!(s.accepted, 1);
    let d = denied(core.try_acquire(&req("bronze", "db", 1), now));
    assert!(d.retry_after > Duration::from_secs(1), "{d:?}");
}

#[test]
fn bad_report_entries_are_rejected_one_by_one() {
    let (core, _clock) = core();
    let s = core.report(&[
        ReportEntry {
            tenant: "bronze",
            resource: "db",
            used: 3,
            ..Default::default()
        },
        ReportEntry {
            tenant: "ghost",
            resource: "db",
            ..Default::default()
        },
        ReportEntry {
            tenant: "bronze",
            resource: "db",
            lease_id: Some("zz"),
            ..Default::default()
        },
        ReportEntry {
            tenant: "bronze",
            resource: "db",
            lease_id: Some("00000000000000aa"),
            ..Default::default()
        },
    ]);
    assert_eq!((s.accepted, s.rejected), (1, 3));
    let idx: Vec<usize> = s.errors.iter().map(|e| e.0).collect();
    assert_eq!(idx, [1, 2, 3]);
    assert!(s.errors[0].1.starts_with("tenant:"));
    assert!(s.errors[1].1.starts_with("lease_id:"));
}

#[test]
fn report_of_another_tenants_lease_is_rejected() {
    let (core, clock) = core();
    let g = granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    let lease = g.lease.unwrap().to_string();
    let s = core.report(&[ReportEntry {
        tenant: "plat",
        resource: "slots",
        lease_id: Some(&lease),
        used: 1,
        ..Default::default()
    }]);
    assert_eq!(s.rejected, 1);
    assert!(
        s.errors[0].1.contains("belongs to tenant \"bronze\""),
        "{:?}",
        s.errors
    );
}

#[tokio::test]
async fn a_retry_with_the_same_request_id_does_not_pay_twice() {
    let (core, clock) = core();
    let mut r = req("bronze", "db", 30);
    r.request_id = Some("order-17");
    let first = granted(core.acquire(&r).await);
    let again = granted(core.acquire(&r).await);
    assert_eq!(first, again);
    assert_eq!(
        granted(core.try_acquire(&req("bronze", "db", 1), clock.now())).remaining,
        19
    );
    let mut other = r;
    other.amount = 31;
    assert!(matches!(
        core.acquire(&other).await,
        Err(AdmissionError::InvalidArgument(m)) if m.starts_with("request_id:")
    ));
    clock.advance(Duration::from_secs(301));
    core.reap(clock.now());
    granted(core.acquire(&r).await); // a new window: pays again
}

#[tokio::test]
async fn a_denied_request_id_is_not_remembered() {
    let (core, clock) = core();
    granted(core.try_acquire(&req("bronze", "db", 50), clock.now()));
    let mut r = req("bronze", "db", 10);
    r.request_id = Some("x");
    denied(core.acquire(&r).await);
    clock.advance(Duration::from_secs(1));
    granted(core.acquire(&r).await);
}

/// A core on a manual clock, with its dispatchers and reaper running on it.
fn running(yaml: &str) -> (Arc<Admission>, Arc<ManualClock>, CancellationToken) {
    let clock = Arc::new(ManualClock::new(NANOS_PER_SEC));
    let core = Arc::new(core_with(yaml, clock.clone()));
    let cancel = CancellationToken::new();
    core.spawn(cancel.clone(), Duration::from_secs(1));
    (core, clock, cancel)
}

/// Yields to the runtime (the dispatchers) until `done`; everything here is
/// in-process, so a bounded number of yields is plenty unless a bug.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// Parks an Acquire with `max_wait` in a task; returns once it is queued.
async fn park(
    core: &Arc<Admission>,
    tenant: &'static str,
    resource: &'static str,
    amount: u64,
    max_wait: Duration,
) -> tokio::task::JoinHandle<Result<Decision, AdmissionError>> {
    let queued = core.resource_named(resource).unwrap().waiters.len();
    let task = {
        let core = core.clone();
        tokio::spawn(async move {
            let mut r = req(tenant, resource, amount);
            r.max_wait = max_wait;
            core.acquire(&r).await
        })
    };
    let r = core.resource_named(resource).unwrap();
    until("the waiter to queue", || r.waiters.len() > queued).await;
    task
}

#[tokio::test]
async fn a_waiter_is_woken_by_a_release() {
    let (core, clock, _cancel) = running(POLICY);
    let g = granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    let waiter = park(&core, "bronze", "slots", 1, Duration::from_secs(60)).await;
    core.release(&g.lease.unwrap().to_string()).unwrap();
    let g2 = granted(waiter.await.unwrap());
    assert_eq!(g2.split.guaranteed, 1);
}

#[tokio::test]
async fn waiters_are_served_by_qos_class_then_priority_then_arrival() {
    let yaml = "resources: { slots: { kind: concurrency, capacity: 1 } }\n\
                tenants: { gold: { qos: gold }, silver: { qos: silver } }\n";
    let (core, clock, _cancel) = running(yaml);
    let first = granted(core.try_acquire(&req("silver", "slots", 1), clock.now()));
    let mut tasks = Vec::new();
    for (tenant, priority) in [("silver", 9), ("gold", 0), ("gold", 5), ("gold", 0)] {
        let core2 = core.clone();
        let queued = core.resource_named("slots").unwrap().waiters.len();
        tasks.push(tokio::spawn(async move {
            let mut r = req(tenant, "slots", 1);
            r.max_wait = Duration::from_secs(60);
            r.priority = priority;
            let g = granted(core2.acquire(&r).await);
            (tenant, priority, g.lease.unwrap())
        }));
        let slots = core.resource_named("slots").unwrap();
        until("the waiter to queue", || slots.waiters.len() > queued).await;
    }
    // One slot: each grant is released before the next, in queue order.
    let mut order = Vec::new();
    let mut held = first.lease.unwrap();
    let mut pending: Vec<_> = tasks;
    while !pending.is_empty() {
        core.release(&held.to_string()).unwrap();
        until("a grant", || pending.iter().any(|t| t.is_finished())).await;
        let i = pending.iter().position(|t| t.is_finished()).unwrap();
        let (tenant, priority, lease) = pending.remove(i).await.unwrap();
        order.push((tenant, priority));
        held = lease;
    }
    assert_eq!(
        order,
        [("gold", 5), ("gold", 0), ("gold", 0), ("silver", 9)]
    );
}

#[tokio::test]
async fn a_waiter_is_denied_at_its_deadline_and_not_before() {
    let (core, clock, _cancel) = running(POLICY);
    granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    let waiter = park(&core, "bronze", "slots", 1, Duration::from_millis(20)).await;
    clock.advance(Duration::from_millis(19));
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    assert!(!waiter.is_finished(), "answered before its deadline");
    clock.advance(Duration::from_millis(1));
    denied(waiter.await.unwrap());
}

#[tokio::test]
async fn a_rate_waiter_is_woken_by_the_refill() {
    let (core, clock, _cancel) = running(POLICY);
    granted(core.try_acquire(&req("bronze", "db", 50), clock.now()));
    let waiter = park(&core, "bronze", "db", 5, Duration::from_secs(30)).await;
    // bronze refills 50/s: 2.5 tokens after 50 ms, 5 after 100 ms.
    clock.advance(Duration::from_millis(50));
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    assert!(!waiter.is_finished(), "granted before 5 tokens refilled");
    clock.advance(Duration::from_millis(50));
    let g = granted(waiter.await.unwrap());
    assert_eq!(g.split.guaranteed, 5);
}

#[tokio::test]
async fn shutdown_refuses_every_acquire_and_answers_waiters_unavailable() {
    let (core, clock, cancel) = running(POLICY);
    granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    let waiter = park(&core, "bronze", "slots", 1, Duration::from_secs(60)).await;
    core.close();
    // Tokens are there, yet nothing more is granted.
    assert_eq!(
        core.acquire(&req("plat", "db", 1)).await,
        Err(AdmissionError::Unavailable)
    );
    cancel.cancel();
    assert_eq!(waiter.await.unwrap(), Err(AdmissionError::Unavailable));
}

#[tokio::test]
async fn a_round_decides_one_waiter_per_tenant_not_every_waiter() {
    // 1,000 waiters of one tenant and one of another: a release serves
    // the best and leaves the rest parked in order.
    let yaml = "resources: { slots: { kind: concurrency, capacity: 1 } }\n\
                tenants: { a: { qos: gold }, b: { qos: silver } }\n";
    let (core, clock, _cancel) = running(yaml);
    let first = granted(core.try_acquire(&req("a", "slots", 1), clock.now()));
    let mut waiters = Vec::new();
    for _ in 0..1_000 {
        waiters.push(park(&core, "a", "slots", 1, Duration::from_secs(60)).await);
    }
    let b = park(&core, "b", "slots", 1, Duration::from_secs(60)).await;
    core.release(&first.lease.unwrap().to_string()).unwrap();
    until("the first waiter's grant", || waiters[0].is_finished()).await;
    let slots = core.resource_named("slots").unwrap();
    assert_eq!(slots.waiters.len(), 1_000, "one served, 999 + b still wait");
    assert!(!b.is_finished());
    assert!(waiters[1..].iter().all(|w| !w.is_finished()));
}

#[test]
fn demand_counters_fold_requests_tokens_and_tiers_once() {
    let (core, clock) = core();
    core.set_reserve("plat", "db", 100).unwrap();
    clock.advance(Duration::from_millis(1001));
    let now = clock.now();
    granted(core.try_acquire(&req("plat", "db", 150), now)); // reserve 100 + guaranteed 50
    granted(core.try_acquire(&req("plat", "db", 10), now)); // guaranteed
    let t = core.registry().existing_tenant("plat").unwrap();
    let db = core.resource_named("db").unwrap();
    let d = t.allotments[db.id].holdings.counters.fold();
    assert_eq!((d.requests, d.asked, d.denials, d.denied), (2, 160, 0, 0));
    assert_eq!(d.by_tier, [100, 60, 0, 0]);
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
