//! The policy watcher's debounce (`reload.debounce`) on the real binary: a
//! save in steps is read once, whole; a busy neighbour in the directory
//! does not hold an edit back; a debounce too short to poll is refused.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, eventually};

/// `slots` holds 10; tenant `t` is guaranteed `g` of them.
fn policy(g: u64) -> String {
    format!(
        "resources:\n  slots: {{ kind: concurrency, capacity: 10 }}\n\
         tenants:\n  t: {{ qos: bronze, limits: {{ slots: {{ guaranteed: {g} }} }} }}\n"
    )
}

fn reloads(d: &Daemon, result: &str) -> Option<f64> {
    d.metric(&format!(
        "prescient_policy_reloads_total{{result=\"{result}\"}}"
    ))
}

/// A daemon on a policy file of its own, with `reload.debounce` set.
fn start(debounce: &str) -> (tempfile::TempDir, std::path::PathBuf, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy(2)).unwrap();
    let d = Daemon::start_at(&path, &[("PRESCIENT_RELOAD__DEBOUNCE", debounce)]);
    (dir, path, d)
}

#[tokio::test]
async fn a_save_in_steps_within_the_debounce_is_read_once_whole() {
    let (_dir, path, d) = start("2s");
    // A writer that takes two steps, the first leaving a file cut short
    // (not even YAML), 200 ms apart: the input's own timing, not a wait.
    std::fs::write(&path, "resources:\n  slots: { kind: concurr").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&path, policy(3)).unwrap();
    eventually(
        Duration::from_secs(20),
        "the edit to be in force",
        || async { (reloads(&d, "ok") == Some(1.0)).then_some(()) },
    )
    .await;
    assert_eq!(reloads(&d, "error"), Some(0.0), "the cut file was read");
}

/// A file beside the policy rewritten every 50 ms (a log, a state file)
/// until dropped.
struct Neighbour {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Neighbour {
    fn start(file: std::path::PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for i in 0u64.. {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                std::fs::write(&file, i.to_string()).unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test]
async fn a_busy_neighbour_does_not_hold_an_edit_back() {
    let (dir, path, d) = start("1s");
    let _neighbour = Neighbour::start(dir.path().join("busy.log"));
    std::fs::write(&path, policy(3)).unwrap();
    // Read about 1 s after the edit; 5 s is a generous bound, short of the
    // 10 s a quiet-period debounce would wait for the neighbour to stop.
    eventually(
        Duration::from_secs(5),
        "the edit to be in force",
        || async { (reloads(&d, "ok") == Some(1.0)).then_some(()) },
    )
    .await;
}

#[test]
fn serve_refuses_a_debounce_too_short_to_poll() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_prescient"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("PRESCIENT_RELOAD__DEBOUNCE", "0s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "still serving: {err}"
    );
    assert!(
        err.contains("reload.debounce: must be at least 10ms"),
        "{err}"
    );
}
