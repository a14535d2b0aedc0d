//! The daemon's service faces over real gRPC and HTTP: health and
//! reflection, the admin port, the embedded defaults, SIGTERM, forecasts
//! (GetForecast, WatchForecast, history across a restart), metrics and the
//! per-connection stream limit.

mod common;

use std::time::Duration;

use common::answers::{code, denied, granted};
use common::policies::WEB_AND_BATCH as POLICY;
use common::requests::acquire;
use common::{Daemon, eventually};
use tonic::Code;

#[tokio::test]
async fn health_is_serving_and_reflection_lists_the_service() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

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
    let names = common::reflection::services(channel).await;
    for service in ["prescient.v1.Admission", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == service), "{service}: {names:?}");
    }
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
