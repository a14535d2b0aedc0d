//! Acquire, Release and Report over real gRPC: the `prescient` binary (or
//! the same server in-process, where a test must observe the core) on port
//! 0, driven with the tonic client generated from the proto.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::answers::{code, denied, granted};
use common::policies::WEB_AND_BATCH as POLICY;
use common::requests::{AcquireExt, acquire, release};
use common::{Daemon, eventually};
use prescient::proto::{Decision, ReportEntry, ReportRequest};
use tonic::Code;

#[tokio::test]
async fn acquire_pays_from_the_bucket_then_shared_then_denies_with_retry_after() {
    let d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    let r = granted(c.acquire(acquire("web", "api", 20)).await);
    assert_eq!(
        (
            r.from_reserve,
            r.from_guaranteed,
            r.from_shared,
            r.from_emergency
        ),
        (0, 20, 0, 0)
    );
    assert!(
        r.lease_id.is_empty(),
        "rate grants carry no lease unless asked"
    );
    // gold borrows: shared is 100 - 10 emergency - 30 guaranteed = 60.
    let r = granted(c.acquire(acquire("web", "api", 30)).await);
    assert!(r.from_shared >= 29, "{r:?}");
    let r = denied(c.acquire(acquire("web", "api", 50)).await);
    let retry = Duration::try_from(r.retry_after.unwrap()).unwrap();
    // 50 more at 20/s + 60/s: well under a second, never zero.
    assert!(
        retry > Duration::ZERO && retry < Duration::from_secs(1),
        "{retry:?}"
    );
    // bronze may not borrow: its bucket is all it has.
    let r = granted(c.acquire(acquire("batch", "api", 10)).await);
    assert_eq!((r.from_guaranteed, r.from_shared), (10, 0));
}

#[tokio::test]
async fn bad_input_gets_the_documented_codes_naming_the_field() {
    let d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    code(
        c.acquire(acquire("web", "api", 0)).await,
        Code::InvalidArgument,
        "amount",
    );
    code(
        c.acquire(acquire("web", "api", 1000)).await,
        Code::InvalidArgument,
        "amount",
    );
    code(
        c.acquire(acquire("batch", "gpu", 1)).await,
        Code::InvalidArgument,
        "amount",
    );
    code(
        c.acquire(acquire("", "api", 1)).await,
        Code::InvalidArgument,
        "tenant",
    );
    code(
        c.acquire(acquire("web", "disk", 1)).await,
        Code::NotFound,
        "resource",
    );
    code(
        c.acquire(acquire("nobody", "api", 1)).await,
        Code::NotFound,
        "tenant",
    );
    let mut r = acquire("web", "api", 1);
    r.max_wait = Some(prost_types::Duration {
        seconds: -1,
        nanos: 0,
    });
    code(c.acquire(r).await, Code::InvalidArgument, "max_wait");
    code(
        c.release(release("")).await,
        Code::InvalidArgument,
        "lease_id",
    );
    code(
        c.release(release("bogus")).await,
        Code::InvalidArgument,
        "lease_id",
    );
    code(
        c.release(release("0123456789abcdef")).await,
        Code::NotFound,
        "lease_id",
    );
}

#[tokio::test]
async fn tenants_from_defaults_are_bounded_by_resource_exhausted() {
    let policy =
        format!("{POLICY}defaults:\n  qos: bronze\n  limits:\n    api: {{ guaranteed: 1 }}\n");
    let d = Daemon::start(
        &policy,
        &[("PRESCIENT_ADMISSION__MAX_DEFAULT_TENANTS", "1")],
    );
    let mut c = d.client().await;
    let r = granted(c.acquire(acquire("newcomer", "api", 1)).await);
    assert_eq!(r.from_guaranteed, 1);
    code(
        c.acquire(acquire("another", "api", 1)).await,
        Code::ResourceExhausted,
        "tenant",
    );
    // The tenant already created is still served (granted or denied, not refused).
    c.acquire(acquire("newcomer", "api", 1)).await.unwrap();
}

#[tokio::test]
async fn leases_release_once_and_a_second_release_says_so() {
    let d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    let r = granted(c.acquire(acquire("web", "gpu", 1)).await);
    assert_eq!(r.from_guaranteed, 1);
    assert!(!r.lease_id.is_empty());
    denied(c.acquire(acquire("web", "gpu", 1)).await);
    let rel = c.release(release(&r.lease_id)).await.unwrap().into_inner();
    assert_eq!((rel.released_units, rel.already_released), (1, false));
    let rel = c.release(release(&r.lease_id)).await.unwrap().into_inner();
    assert_eq!((rel.released_units, rel.already_released), (0, true));
    granted(c.acquire(acquire("web", "gpu", 1)).await);
}

#[tokio::test]
async fn an_unreleased_lease_is_reclaimed_after_its_ttl() {
    let d = Daemon::start(POLICY, &[("PRESCIENT_ADMISSION__REAP_INTERVAL", "50ms")]);
    let mut c = d.client().await;
    let lost = granted(c.acquire(acquire("batch", "slots", 1)).await);
    denied(c.acquire(acquire("batch", "slots", 1)).await);
    // lease_ttl is 1s: the slot comes back without a Release.
    let again = eventually(Duration::from_secs(20), "TTL reclaim", || {
        let mut c = c.clone();
        async move {
            let r = c
                .acquire(acquire("batch", "slots", 1))
                .await
                .unwrap()
                .into_inner();
            (r.decision() == Decision::Granted).then_some(r)
        }
    })
    .await;
    assert_ne!(again.lease_id, lost.lease_id);
    let rel = c
        .release(release(&lost.lease_id))
        .await
        .unwrap()
        .into_inner();
    assert!(rel.already_released, "a reclaimed lease reads as released");
}

#[tokio::test]
async fn a_retry_with_the_same_request_id_returns_the_first_grant() {
    let d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    let mut r = acquire("web", "gpu", 1);
    r.request_id = "job-42".into();
    let first = granted(c.acquire(r.clone()).await);
    let retry = granted(c.acquire(r.clone()).await);
    assert_eq!(first, retry, "same grant, same lease");
    // Paid once: the unit is held once, so one release frees it.
    c.release(release(&first.lease_id)).await.unwrap();
    granted(c.acquire(acquire("web", "gpu", 1)).await);
    r.amount = 2;
    code(c.acquire(r).await, Code::InvalidArgument, "request_id");
}

#[tokio::test]
async fn report_settles_a_rate_lease_and_rejects_bad_entries_one_by_one() {
    let d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    let g = granted(c.acquire(acquire("batch", "api", 10).leased()).await);
    assert!(!g.lease_id.is_empty(), "asked for a lease");
    denied(c.acquire(acquire("batch", "api", 5)).await);
    let entry = |tenant: &str, lease: &str, used| ReportEntry {
        tenant: tenant.into(),
        resource: "api".into(),
        lease_id: lease.into(),
        used,
        duration: Some(prost_types::Duration {
            seconds: 0,
            nanos: 5_000_000,
        }),
        outcome: prescient::proto::Outcome::Success as i32,
    };
    let resp = c
        .report(ReportRequest {
            entries: vec![
                entry("batch", &g.lease_id, 4),
                entry("ghost", "", 1),
                entry("batch", &g.lease_id, 4),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((resp.accepted, resp.rejected), (1, 2), "{resp:?}");
    assert!(resp.errors[0].starts_with("entries[1].tenant"), "{resp:?}");
    assert!(
        resp.errors[1].starts_with("entries[2].lease_id"),
        "{resp:?}"
    );
    // 6 of the 10 tokens came back.
    let r = granted(c.acquire(acquire("batch", "api", 5)).await);
    assert_eq!(r.from_guaranteed, 5);
}

#[tokio::test]
async fn shutdown_answers_parked_waiters_unavailable() {
    let (running, mut c) = common::start_in_process(POLICY).await;
    granted(c.acquire(acquire("web", "gpu", 1)).await);
    let wait = acquire("web", "gpu", 1).waiting(Duration::from_secs(600));
    let mut waiter_client = c.clone();
    let waiter = tokio::spawn(async move { waiter_client.acquire(wait).await });
    let gpu = running.core.resource_named("gpu").unwrap();
    eventually(Duration::from_secs(10), "the waiter to park", || async {
        (!gpu.waiters.is_empty()).then_some(())
    })
    .await;
    // What SIGTERM does in the binary.
    running.shutdown().await.unwrap();
    let answer = waiter.await.unwrap();
    assert_eq!(answer.unwrap_err().code(), Code::Unavailable);
}

#[tokio::test]
async fn a_waiter_is_woken_by_a_release_over_grpc() {
    let (running, mut c) = common::start_in_process(POLICY).await;
    let held = granted(c.acquire(acquire("web", "gpu", 1)).await);
    let wait = acquire("web", "gpu", 1).waiting(Duration::from_secs(60));
    let mut waiter_client = c.clone();
    let waiter = tokio::spawn(async move { waiter_client.acquire(wait).await });
    let gpu = running.core.resource_named("gpu").unwrap();
    eventually(Duration::from_secs(10), "the waiter to park", || async {
        (!gpu.waiters.is_empty()).then_some(())
    })
    .await;
    c.release(release(&held.lease_id)).await.unwrap();
    let r = granted(waiter.await.unwrap());
    assert_eq!(r.from_guaranteed, 1);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_clients_racing_never_hold_more_than_capacity() {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 50;
    let policy = "resources:\n  slots: { kind: concurrency, capacity: 3 }\n  \
                  api: { kind: rate, capacity: 1, emergency: 0 }\n\
                  tenants:\n  t: { qos: gold, limits: { api: { guaranteed: 1, burst: 40 } } }\n";
    let d = Daemon::start(policy, &[]);
    // Each round, every client asks for a slot at once and keeps what it
    // was granted until every client has its answer: nothing is released
    // within a round, so the grants of a round are units held together, as
    // the clients (not the daemon) count them.
    let answered = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let held: Arc<Vec<AtomicU64>> = Arc::new((0..ROUNDS).map(|_| AtomicU64::new(0)).collect());
    let api_granted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = d.client().await;
        let (answered, held, api_granted) = (answered.clone(), held.clone(), api_granted.clone());
        tasks.push(tokio::spawn(async move {
            for round in held.iter() {
                let r = c
                    .acquire(acquire("t", "slots", 1))
                    .await
                    .unwrap()
                    .into_inner();
                let lease = (r.decision() == Decision::Granted).then_some(r.lease_id);
                if lease.is_some() {
                    round.fetch_add(1, Ordering::SeqCst);
                }
                answered.wait().await;
                if let Some(lease) = lease {
                    c.release(release(&lease)).await.unwrap();
                }
                let r = c
                    .acquire(acquire("t", "api", 1))
                    .await
                    .unwrap()
                    .into_inner();
                if r.decision() == Decision::Granted {
                    api_granted.fetch_add(1, Ordering::SeqCst);
                }
                // Every unit is back before the next round asks.
                answered.wait().await;
            }
        }));
    }
    for t in tasks {
        // A client that failed leaves the others at the barrier: bounded.
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("the clients finished their rounds")
            .unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let held: Vec<u64> = held.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    // Never more than the capacity; and never fewer, since the units were
    // free and each one asked for is taken whole or not at all.
    assert!(
        held.iter().all(|&n| n == 3),
        "slots held together, round by round: {held:?}"
    );
    // Rate: the burst of 40 plus 1/s over the race, never more.
    let granted = api_granted.load(Ordering::SeqCst) as f64;
    assert!(
        granted <= 40.0 + elapsed.ceil() + 1.0,
        "{granted} in {elapsed:.2}s"
    );
    assert!(granted >= 40.0, "the burst was there to take: {granted}");
}
