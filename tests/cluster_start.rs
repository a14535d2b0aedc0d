//! A daemon whose lease store cannot be reached when it starts: it starts
//! anyway, serves its safe share, says so, and takes its lease once Redis
//! is there (issue 12, item 1).

mod common;

use std::time::Duration;

use common::redis::{Redis, free_port};
use common::requests::acquire;
use common::{Daemon, answers, eventually};
use prescient::cluster::redis::RedisStore;
use prescient::cluster::store::Ask;

const POLICY: &str = "resources:\n  db: { kind: rate, capacity: 100 }\n\
    tenants:\n  a: { qos: gold, limits: { db: { guaranteed: 50 } } }\n";

const LEASE: &str = "prescient_cluster_lease_capacity{resource=\"db\"}";

#[tokio::test]
async fn a_store_unreachable_at_start_is_retried_and_the_safe_share_served_meanwhile() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let daemon = Daemon::start(
        POLICY,
        &[
            ("PRESCIENT_CLUSTER__REDIS_URL", &url),
            ("PRESCIENT_TICK", "100ms"),
            ("PRESCIENT_CLUSTER__LEASE_TTL", "500ms"),
            ("PRESCIENT_CLUSTER__STORE_TIMEOUT", "200ms"),
            ("PRESCIENT_CLUSTER__SAFE_SHARE", "0.3"),
        ],
    );
    // Up, ready, and retrying every tick.
    eventually(Duration::from_secs(10), "failed exchanges", || async {
        daemon
            .metric("prescient_cluster_store_errors_total")
            .filter(|&n| n >= 3.0)
    })
    .await;
    assert_eq!(daemon.http_get("/readyz").0, 200);
    assert!(daemon.logged(&["lease store unreachable"]));
    assert_eq!(daemon.metric(LEASE), Some(30.0), "the safe share");
    assert_eq!(
        daemon.metric("prescient_cluster_lease_valid{resource=\"db\"}"),
        Some(0.0)
    );
    // It admits within its safe share (30/s, and a second's depth), not
    // within the policy's 100.
    let mut client = daemon.client().await;
    answers::granted(client.acquire(acquire("a", "db", 30)).await);
    answers::denied(client.acquire(acquire("a", "db", 30)).await);

    // Redis comes up where the daemon looks: after the store's first ttl
    // (it came up empty), the lone daemon holds the whole capacity.
    let _redis = Redis::start_on(port);
    eventually(Duration::from_secs(10), "the whole capacity", || async {
        daemon.metric(LEASE).filter(|&c| c == 100.0)
    })
    .await;
    assert_eq!(
        daemon.metric("prescient_cluster_lease_valid{resource=\"db\"}"),
        Some(1.0)
    );
    assert_eq!(
        daemon.metric("prescient_cluster_instances{resource=\"db\"}"),
        Some(1.0)
    );
    assert!(daemon.logged(&["lease store answering again"]));
}

#[test]
fn a_malformed_redis_url_is_refused_at_start_naming_the_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prescient"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("PRESCIENT_CLUSTER__REDIS_URL", "http://not-redis")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster.redis_url"), "{err}");
}

#[tokio::test]
async fn a_daemon_that_stops_cleanly_hands_its_lease_back_before_it_expires() {
    let redis = Redis::start();
    let url = redis.url();
    // A fresh store grants nothing new for one TTL of whoever reaches it
    // first (docs/distributed.md, "Recovery"): open that window with a
    // short TTL, so the daemons' long one is not it.
    let store = RedisStore::new(&url, Duration::from_secs(5)).unwrap();
    store
        .exchange(&[Ask {
            resource: "db".into(),
            member: "opener/0".into(),
            capacity: 100,
            target: 0,
            in_force: 0,
            ttl: Duration::from_secs(1),
            wants: "{}".into(),
        }])
        .await
        .unwrap();
    // A TTL far longer than the test's deadlines: only a lease handed back
    // reaches the survivor in time.
    let env = [
        ("PRESCIENT_CLUSTER__REDIS_URL", url.as_str()),
        ("PRESCIENT_TICK", "100ms"),
        ("PRESCIENT_CLUSTER__LEASE_TTL", "60s"),
    ];
    let survivor = Daemon::start(POLICY, &env);
    let mut leaving = Daemon::start(POLICY, &env);
    for d in [&survivor, &leaving] {
        eventually(Duration::from_secs(20), "a share each", || async {
            d.metric(LEASE).filter(|&c| c > 0.0 && c < 100.0)
        })
        .await;
    }
    assert!(leaving.terminate().success());
    eventually(Duration::from_secs(20), "the whole capacity", || async {
        survivor.metric(LEASE).filter(|&c| c == 100.0)
    })
    .await;
    assert!(leaving.logged(&["leases handed back"]));
}
