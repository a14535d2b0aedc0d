//! The binary under test as `tests/docs.rs` runs it: in a directory, with
//! a deadline, its output captured; `simulate` runs shared between tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Longest any one command may run (a debug build simulating four hours).
const COMMAND_DEADLINE: Duration = Duration::from_secs(600);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary under test with `args` in `dir`, no `PRESCIENT_*`
/// variables, and a deadline.
pub fn prescient_in(dir: &Path, args: &[&str]) -> Output {
    let out = tempfile::tempdir().unwrap();
    let (o, e) = (out.path().join("out"), out.path().join("err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prescient"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PRESCIENT_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("prescient {args:?} still running after {COMMAND_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read_to_string(o).unwrap(),
        stderr: std::fs::read_to_string(e).unwrap(),
    }
}

/// `simulate` runs are slow in a debug build and read only repository
/// files: each distinct one runs once per test binary.
pub fn simulate_once(args: &[String]) -> Arc<Output> {
    type Runs = Mutex<HashMap<Vec<String>, Arc<OnceLock<Arc<Output>>>>>;
    static RUNS: OnceLock<Runs> = OnceLock::new();
    let slot = RUNS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(args.to_vec())
        .or_default()
        .clone();
    slot.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        link_repo(dir.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Arc::new(prescient_in(dir.path(), &args))
    })
    .clone()
}

/// The JSON of the bundled simulation, all modes (docs/simulation.md).
pub fn simulate_json() -> serde_json::Value {
    let args = "simulate --policy examples/sim/policy.yaml --trace examples/sim/trace.csv --json";
    let args: Vec<String> = args.split(' ').map(str::to_owned).collect();
    let out = simulate_once(&args);
    assert!(out.status.success(), "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// A scratch directory that sees the repository's inputs, so relative
/// paths in the docs work and outputs (`--plot simulation.svg`) land here.
pub fn link_repo(dir: &Path) {
    for name in ["config", "examples", "deploy", "docs", "proto"] {
        std::os::unix::fs::symlink(repo().join(name), dir.join(name)).unwrap();
    }
}
