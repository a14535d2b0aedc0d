//! Waiting Acquires, with the dispatchers running on a manual clock: the
//! order they are served in, their deadlines, and shutdown.

use super::*;

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
