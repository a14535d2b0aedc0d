//! The daemon over real gRPC: the `prescient` binary (or the same server
//! in-process, where a test must observe the core) on port 0, driven with
//! the tonic client generated from the proto.

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
async fn health_is_serving_and_reflection_lists_the_service() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let d = Daemon::start(POLICY, &[]);
    let channel = d.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "prescient.v1.Admission"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("{resp:?}")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"prescient.v1.Admission"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test]
async fn admin_port_answers_healthz_and_readyz() {
    let d = Daemon::start(POLICY, &[]);
    assert_eq!(d.http_get("/healthz").0, 200);
    assert_eq!(d.http_get("/readyz"), (200, "ready\n".into()));
    assert_eq!(d.http_get("/nope").0, 404);
}

#[tokio::test]
async fn the_embedded_defaults_serve_the_example_policy() {
    let d = Daemon::start_embedded();
    let mut c = d.client().await;
    let r = granted(c.acquire(acquire("checkout", "db_queries", 100)).await);
    assert_eq!(r.from_guaranteed, 100);
    let r = granted(c.acquire(acquire("checkout", "worker_slots", 1)).await);
    assert!(!r.lease_id.is_empty());
}

#[tokio::test]
async fn sigterm_stops_the_daemon_cleanly_with_exit_zero() {
    let mut d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    granted(c.acquire(acquire("web", "gpu", 1)).await);
    let (status, d) = tokio::task::spawn_blocking(move || (d.terminate(), d))
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let log = d.log.lock().unwrap().join("\n");
    assert!(log.contains("prescient stopped"), "{log}");
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

#[tokio::test]
async fn get_forecast_answers_for_every_series_and_names_bad_fields() {
    use prescient::proto::GetForecastRequest;
    let d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    let get = |tenant: &str, resource: &str| GetForecastRequest {
        tenant: tenant.into(),
        resource: resource.into(),
    };
    let f = c
        .get_forecast(get("web", "api"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((f.tenant.as_str(), f.resource.as_str()), ("web", "api"));
    assert_eq!(f.model, "ewma", "a new series starts on the cheap model");
    assert_eq!(f.points.len(), 15);
    assert!(
        f.points
            .iter()
            .all(|p| p.time.is_some() && p.lower <= p.upper)
    );
    assert!(f.accuracy.is_some() && f.time.is_some());
    code(
        c.get_forecast(get("web", "disk")).await,
        Code::NotFound,
        "resource",
    );
    code(
        c.get_forecast(get("nobody", "api")).await,
        Code::NotFound,
        "tenant",
    );
    code(
        c.get_forecast(get("", "api")).await,
        Code::InvalidArgument,
        "tenant",
    );
}

#[tokio::test]
async fn watch_forecast_streams_each_tick_and_ends_at_shutdown() {
    use prescient::proto::WatchForecastRequest;
    let mut d = Daemon::start(POLICY, &[("PRESCIENT_TICK", "100ms")]);
    let mut c = d.client().await;
    code(
        c.watch_forecast(WatchForecastRequest {
            tenant: "nobody".into(),
        })
        .await,
        Code::NotFound,
        "tenant",
    );
    let mut stream = c
        .watch_forecast(WatchForecastRequest {
            tenant: "web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut resources = std::collections::BTreeSet::new();
    let every_resource = tokio::time::timeout(Duration::from_secs(30), async {
        while resources.len() < 3 {
            let m = stream
                .message()
                .await
                .unwrap()
                .expect("the stream ended before every resource was seen");
            assert_eq!(m.tenant, "web");
            resources.insert(m.resource);
        }
    });
    assert!(every_resource.await.is_ok(), "seen only {resources:?}");
    // An open stream does not hold up shutdown.
    let (status, _d) = tokio::task::spawn_blocking(move || (d.terminate(), d))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(_)) = stream.message().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended");
}

#[tokio::test]
async fn history_survives_a_restart_and_a_corrupt_snapshot_is_ignored() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    let mut d = Daemon::start(
        POLICY,
        &[("PRESCIENT_STATE_DIR", dir), ("PRESCIENT_TICK", "50ms")],
    );
    let mut c = d.client().await;
    granted(c.acquire(acquire("web", "api", 5)).await);
    let (status, _d) = tokio::task::spawn_blocking(move || (d.terminate(), d))
        .await
        .unwrap();
    assert!(status.success());
    let snapshot = state.path().join("history.snapshot");
    assert!(snapshot.exists(), "written on shutdown");
    // 2 tenants × 3 resources.

    let d = Daemon::start(POLICY, &[("PRESCIENT_STATE_DIR", dir)]);
    let log = d.log.lock().unwrap().join("\n");
    assert!(
        log.contains("history restored") && log.contains("series=6"),
        "{log}"
    );
    drop(d);

    std::fs::write(&snapshot, b"garbage").unwrap();
    let d = Daemon::start(POLICY, &[("PRESCIENT_STATE_DIR", dir)]);
    let log = d.log.lock().unwrap().join("\n");
    assert!(log.contains("history snapshot ignored"), "{log}");
    assert!(log.contains("not a prescient history snapshot"), "{log}");
}

#[tokio::test]
async fn metrics_are_scraped_from_the_admin_port() {
    let d = Daemon::start(POLICY, &[("PRESCIENT_TICK", "100ms")]);
    let mut c = d.client().await;
    granted(c.acquire(acquire("web", "api", 20)).await);
    granted(c.acquire(acquire("web", "gpu", 1)).await);
    denied(c.acquire(acquire("web", "gpu", 1)).await);
    let text = eventually(
        Duration::from_secs(20),
        "the tick that counts them",
        || async {
            let (status, body) = d.http_get("/metrics");
            assert_eq!(status, 200);
            // A scrape can fall between a tick's counters and its gauges:
            // wait for both.
            (body.contains(
                r#"prescient_acquisitions_total{tenant="web",resource="gpu",decision="denied"} 1"#,
            ) && body.contains("prescient_leases_active 1"))
            .then_some(body)
        },
    )
    .await;
    for line in [
        r#"prescient_acquisitions_total{tenant="web",resource="api",decision="granted"} 1"#,
        r#"prescient_granted_tokens_total{tenant="web",resource="api",pool="guaranteed"} 20"#,
        r#"prescient_acquire_latency_seconds_count 3"#,
        r#"prescient_leases_active 1"#,
        r#"prescient_pool_tokens{tenant="",resource="api",pool="shared"}"#,
        r#"prescient_reserve{tenant="web",resource="api"}"#,
        r#"prescient_forecast_upper{tenant="batch",resource="api"}"#,
        r#"prescient_forecast_coverage_ratio{"#,
        r#"prescient_tick_duration_seconds_count"#,
        r#"prescient_waiters{resource="gpu"} 0"#,
        "# EOF",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn one_connection_gets_at_most_max_concurrent_streams_calls_at_once() {
    use prescient::proto::WatchForecastRequest;
    let d = Daemon::start(POLICY, &[("PRESCIENT_GRPC__MAX_CONCURRENT_STREAMS", "1")]);
    let mut c = d.client().await;
    let stream = c
        .watch_forecast(WatchForecastRequest {
            tenant: "web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // The connection's one stream is taken: another call on it waits.
    let mut queued = {
        let mut c = c.clone();
        tokio::spawn(async move { c.acquire(acquire("web", "api", 1)).await })
    };
    // Another connection is not held up by it...
    let mut other = d.client().await;
    granted(other.acquire(acquire("web", "api", 1)).await);
    // ...while the first one's call is still queued.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut queued)
            .await
            .is_err(),
        "a second call ran on a connection limited to one stream"
    );
    drop(stream);
    granted(queued.await.unwrap());
}
