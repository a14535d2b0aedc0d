//! History snapshots read back by the real daemon: a snapshot the daemon
//! wrote, with one field changed, must be refused with the field named, and
//! the daemon must serve with empty history instead of crash-looping.

mod common;

use common::requests::acquire;
use common::{Daemon, snapshot};
use prescient::proto::Decision;

/// A reserve on a concurrency resource (its hold time is in the
/// snapshot) and a short lease TTL: the shared policies have neither.
const POLICY: &str = r#"
resources:
  api: { kind: rate, capacity: 100 }
  slots: { kind: concurrency, capacity: 4, lease_ttl: 1s }
tenants:
  web:
    qos: gold
    limits:
      api: { guaranteed: 20 }
      # A reserve: its hold time is read from minute_hold every tick.
      slots: { guaranteed: 1, reserve: { quantile: 0.9, horizon: 10s, max: 2 } }
"#;

/// Runs the daemon on `state` until SIGTERM, which writes the snapshot;
/// returns its bytes.
async fn genuine_snapshot(state: &std::path::Path) -> Vec<u8> {
    let mut d = Daemon::start(
        POLICY,
        &[
            ("PRESCIENT_STATE_DIR", state.to_str().unwrap()),
            ("PRESCIENT_TICK", "50ms"),
        ],
    );
    let mut c = d.client().await;
    for resource in ["api", "slots"] {
        let r = c
            .acquire(acquire("web", resource, 1))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.decision(), Decision::Granted, "{r:?}");
    }
    let status = tokio::task::spawn_blocking(move || d.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    std::fs::read(state.join("history.snapshot")).expect("written on SIGTERM")
}

#[tokio::test]
async fn a_snapshot_with_a_broken_ring_is_refused_and_the_daemon_serves() {
    let state = tempfile::tempdir().unwrap();
    let genuine = genuine_snapshot(state.path()).await;

    // One ring field each: a capacity of 0 (remainder by zero on the first
    // tick) and a head far past the end (index out of bounds on the first
    // read of the ring).
    type Edit = fn(&mut snapshot::History);
    let edits: [(&str, Edit, &str); 2] = [
        ("api", |h| h.tick_demand.cap = 0, "tick_demand.cap: 0"),
        (
            "slots",
            |h| h.minute_hold.head = 1_000_000,
            "minute_hold.head: 1000000 is past the ring's end",
        ),
    ];
    for (resource, edit, reason) in edits {
        let mut snap = snapshot::read(&genuine);
        let series = snap
            .series
            .iter_mut()
            .find(|s| s.tenant == "web" && s.resource == resource)
            .expect("the series is in the snapshot");
        edit(&mut series.history);
        std::fs::write(
            state.path().join("history.snapshot"),
            snapshot::write(&snap),
        )
        .unwrap();

        let mut d = Daemon::start(
            POLICY,
            &[
                ("PRESCIENT_STATE_DIR", state.path().to_str().unwrap()),
                ("PRESCIENT_TICK", "50ms"),
            ],
        );
        let mut c = d.client().await;
        for resource in ["api", "slots"] {
            let r = c
                .acquire(acquire("web", resource, 1))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.decision(), Decision::Granted, "{r:?}");
        }
        let refused = format!("series \"web\"/\"{resource}\": {reason}");
        assert!(
            d.logged(&["history snapshot ignored", "invalid snapshot", &refused]),
            "{refused} not in {:?}",
            d.log.lock().unwrap()
        );
        assert!(d.child.try_wait().unwrap().is_none(), "still running");
    }
}
