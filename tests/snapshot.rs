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

/// A snapshot of format 2 (before the history's tiers: an hour of ticks,
/// 14 days of minutes), as the previous release wrote it.
fn format_2_snapshot(minutes: usize) -> Vec<u8> {
    use prescient::planner::history::v2::HistoryV2;
    use prescient::planner::ring::Ring;
    let ring = |cap: usize, n: usize| {
        let mut r = Ring::new(cap);
        for i in 0..n {
            r.push(i as f32);
        }
        r
    };
    let (ticks, days) = (3_600, 14 * 1440);
    let history = HistoryV2 {
        tick_demand: ring(ticks, minutes),
        tick_granted: ring(ticks, minutes),
        tick_arrivals: ring(ticks, minutes),
        minute_demand: ring(days, minutes),
        minute_arrivals: ring(days, minutes),
        minute_hold: ring(days, minutes),
        acc_demand: 0.0,
        acc_arrivals: 0.0,
        acc_ticks: 0,
        acc_hold: 0.0,
        acc_holds: 0,
        ticks: minutes as u64,
    };
    let mut bytes = b"prescient-hist\0\0".to_vec();
    bytes.extend(2u32.to_le_bytes());
    bytes.extend(postcard::to_stdvec(&vec![("web", "api", history)]).unwrap());
    bytes
}

#[tokio::test]
async fn a_format_2_snapshot_is_upgraded_and_kept_by_the_daemon() {
    use prescient::planner::snapshot;
    let state = tempfile::tempdir().unwrap();
    let minutes = 6_000;
    std::fs::write(
        state.path().join("history.snapshot"),
        format_2_snapshot(minutes),
    )
    .unwrap();
    let mut d = Daemon::start(
        POLICY,
        &[
            ("PRESCIENT_STATE_DIR", state.path().to_str().unwrap()),
            ("PRESCIENT_TICK", "50ms"),
        ],
    );
    assert!(
        d.logged(&["history restored", "series=1"]),
        "{:?}",
        d.log.lock().unwrap()
    );
    let status = tokio::task::spawn_blocking(move || d.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    // Written back in today's format, the old minutes in it.
    let saved = snapshot::load(state.path()).unwrap().unwrap();
    let web = saved
        .iter()
        .find(|s| (s.tenant.as_str(), s.resource.as_str()) == ("web", "api"))
        .expect("the restored series is saved again");
    let kept = prescient::planner::history::MINUTES_KEPT;
    let minutes_seen = web.history.minute_demand.tail(kept);
    assert_eq!(minutes_seen.len(), kept);
    // The newest old minutes are there (the daemon may have closed a
    // minute of its own after them: 50 ms ticks).
    assert!(
        minutes_seen.contains(&((minutes - 1) as f64)),
        "{:?}",
        &minutes_seen[kept - 5..]
    );
    assert!(web.history.ticks >= minutes as u64);
}

/// A snapshot of `minutes` of steady `rate`/s for web/api, written by the
/// library's own writer, ticks of `tick`.
fn steady_snapshot(dir: &std::path::Path, minutes: u64, rate: f64, tick: std::time::Duration) {
    let tpm = (60.0 / tick.as_secs_f64()).round() as u32;
    snapshot::save_web_api(dir, minutes * tpm as u64, tpm, |_| rate);
}

/// After a restart, the forecast comes from the restored history at once,
/// whether it is shorter than a fit needs (3 minutes: the online forecast)
/// or long enough for one (20): before any new Acquire, `GetForecast`'s
/// mean is near the demand the history holds, not 0.
#[tokio::test]
async fn a_restored_history_is_forecast_from_before_any_new_demand() {
    // A long tick: the first one runs at start, and no second one (which
    // would see no demand and pull the forecast down) comes before the
    // forecast is read.
    let tick = std::time::Duration::from_secs(30);
    for minutes in [3, 20] {
        let state = tempfile::tempdir().unwrap();
        steady_snapshot(state.path(), minutes, 40.0, tick);
        let d = Daemon::start(
            POLICY,
            &[
                ("PRESCIENT_STATE_DIR", state.path().to_str().unwrap()),
                ("PRESCIENT_TICK", "30s"),
            ],
        );
        let mut c = d.client().await;
        let f = c
            .get_forecast(prescient::proto::GetForecastRequest {
                tenant: "web".into(),
                resource: "api".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let mean = f.points.first().expect("a forecast point").mean;
        // One tick has passed since the restart, with no demand in it:
        // the level drops by a tenth, its bias by a twentieth.
        assert!(
            (30.0..=44.0).contains(&mean),
            "{minutes} minutes restored: mean {mean}, model {}",
            f.model
        );
    }
}
