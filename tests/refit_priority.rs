//! The refit worker yields to requests: the real daemon's `prescient-refit`
//! thread runs at nice 19 (`NICE` in `src/planner/refit.rs`), the request
//! workers at the process's own, and refits still complete.

mod common;

use std::time::Duration;

use common::Daemon;

const POLICY: &str = r#"
resources:
  api: { kind: rate, capacity: 1000 }
tenants:
  web:
    qos: gold
    limits:
      api: { guaranteed: 20, reserve: {} }
"#;

/// Nice values of the daemon's threads named `name` (field 19 of
/// `/proc/PID/task/TID/stat`, counted after the parenthesised name).
fn nice_of(pid: u32, name: &str) -> Vec<i32> {
    let mut nice = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue; // the thread ended
        };
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        // Fields from 3 (state) on: nice is field 19.
        nice.push(after_name.split(' ').nth(19 - 3).unwrap().parse().unwrap());
    }
    nice
}

#[tokio::test]
async fn the_refit_thread_runs_at_the_lowered_priority_and_refits_still_complete() {
    let state = tempfile::tempdir().unwrap();
    // An hour of a 10-minute cycle: due a refit at the first tick.
    common::snapshot::save_web_api(state.path(), 60 * 60, 60, |t| {
        50.0 + 40.0 * (2.0 * std::f64::consts::PI * t as f64 / 600.0).sin()
    });
    let d = Daemon::start(
        POLICY,
        &[("PRESCIENT_STATE_DIR", state.path().to_str().unwrap())],
    );
    let pid = d.child.id();
    let own = nice_of(pid, "prescient");
    assert_eq!(own.len(), 1, "the main thread: {own:?}");
    assert_eq!(
        nice_of(pid, "prescient-refit"),
        [19],
        "one refit thread, lowered"
    );
    // The request workers (either layout) keep the process's priority.
    let workers: Vec<i32> = ["grpc-worker-0", "tokio-rt-worker"]
        .iter()
        .flat_map(|name| nice_of(pid, name))
        .collect();
    assert!(!workers.is_empty(), "request workers found");
    assert!(workers.iter().all(|&n| n == own[0]), "workers {workers:?}");

    // Nothing else wants the CPU here: the lowered thread still refits.
    let refits = common::eventually(Duration::from_secs(60), "a refit", || async {
        d.metric("prescient_refit_duration_seconds_count")
            .filter(|&n| n >= 1.0)
    })
    .await;
    assert!(refits >= 1.0);
}
