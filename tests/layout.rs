//! `grpc.runtime`: the per-core layout binds one listener per worker on
//! the same port and every worker answers; the multi-thread layout binds
//! one; a value that names no layout stops the daemon naming the setting.
//! (Every other daemon test runs under both layouts: `.ci/run`.)

mod common;

use std::process::Command;

use common::answers::granted;
use common::requests::acquire;
use common::{ANSWER, Daemon, policies::WEB_AND_BATCH};

/// Sockets listening on `port` (IPv4, any process: the port was free).
fn listeners_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is ADDR:PORT in hex; state 0A is LISTEN.
            let local_port = fields[1].rsplit(':').next().unwrap();
            u16::from_str_radix(local_port, 16).unwrap() == port && fields[3] == "0A"
        })
        .count()
}

/// Threads of process `pid` whose name starts with `prefix`.
fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Acquires once on each of `n` new connections, each within `ANSWER`.
async fn every_connection_is_answered(d: &Daemon, n: usize) {
    for i in 0..n {
        let mut c = d.client().await;
        let answer = tokio::time::timeout(ANSWER, c.acquire(acquire("web", "api", 1)))
            .await
            .unwrap_or_else(|_| panic!("connection {i} was never answered"));
        granted(answer);
    }
}

#[tokio::test]
async fn per_core_binds_one_listener_per_worker_and_every_worker_answers() {
    let mut d = Daemon::start(
        WEB_AND_BATCH,
        &[
            ("PRESCIENT_GRPC__RUNTIME", "per_core"),
            ("PRESCIENT_GRPC__WORKERS", "3"),
        ],
    );
    assert!(d.logged(&["prescient listening", "runtime=per_core", "workers=3"]));
    assert_eq!(listeners_on(d.grpc.port()), 3, "one listener per worker");
    assert_eq!(threads_named(d.child.id(), "grpc-worker-"), 3);
    // The kernel hashes each new connection to one of the listeners: of 24,
    // some reach every worker (all but surely), and each must be answered.
    every_connection_is_answered(&d, 24).await;
    assert!(d.terminate().success());
}

#[tokio::test]
async fn multi_thread_binds_one_listener_for_its_workers() {
    let mut d = Daemon::start(
        WEB_AND_BATCH,
        &[
            ("PRESCIENT_GRPC__RUNTIME", "multi_thread"),
            ("PRESCIENT_GRPC__WORKERS", "2"),
        ],
    );
    assert!(d.logged(&["prescient listening", "runtime=multi_thread", "workers=2"]));
    assert_eq!(listeners_on(d.grpc.port()), 1);
    assert_eq!(threads_named(d.child.id(), "grpc-worker-"), 0);
    every_connection_is_answered(&d, 4).await;
    assert!(d.terminate().success());
}

/// `prescient serve` with `env`: its exit code and stderr, once it exits.
fn serve_refused(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = common::serve_on_free_ports();
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_runtime_that_names_no_layout_is_refused_naming_the_setting() {
    let (code, stderr) = serve_refused(&[("PRESCIENT_GRPC__RUNTIME", "thread_per_core")]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("PRESCIENT_GRPC__RUNTIME"), "{stderr}");
    assert!(
        stderr.contains("multi_thread") && stderr.contains("per_core"),
        "{stderr}"
    );
    let (code, stderr) = serve_refused(&[("PRESCIENT_GRPC__WORKERS", "5000")]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("grpc.workers: must be at most 1024"),
        "{stderr}"
    );
}

#[test]
fn every_bench_script_parses() {
    // benches/*.sh measure, so CI does not run them; they must still
    // parse on a fresh clone.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches");
    let mut scripts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    scripts.sort();
    assert!(
        scripts.len() >= 3,
        "compare.sh, refit_p99.sh, lib.sh: {scripts:?}"
    );
    for script in scripts {
        let out = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
