//! What the integration tests share: a real daemon (the `prescient`
//! binary started on port 0, its bound addresses read from its log, killed
//! on drop), bounded waits, and in submodules the request builders, the
//! checks on answers and the policies.

#![allow(dead_code)] // each test binary uses a different part

pub mod answers;
pub mod cluster;
pub mod load;
pub mod policies;
pub mod probe;
pub mod redis;
pub mod redis_cluster;
pub mod reflection;
pub mod requests;
pub mod snapshot;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use prescient::proto::admission_client::AdmissionClient;
use tonic::transport::Channel;

pub struct Daemon {
    pub child: Child,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts `prescient serve` on `policy` (YAML text) with extra env vars.
    pub fn start(policy: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, policy).unwrap();
        let mut cmd = serve_on_free_ports();
        cmd.arg("--policy").arg(&path).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, Some(dir))
    }

    /// Starts `prescient serve` on the policy file at `path` (the test owns
    /// it, to edit it) with extra env vars.
    pub fn start_at(path: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = serve_on_free_ports();
        cmd.arg("--policy").arg(path).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, None)
    }

    /// Starts the binary exactly as the README's quick start does: no
    /// policy, embedded defaults (ports still 0 so tests do not collide).
    pub fn start_embedded() -> Self {
        Self::spawn(serve_on_free_ports(), None)
    }

    /// Starts `cmd` (a `prescient serve` with stderr piped, which must
    /// listen on port 0 or free ports); the log may be text or JSON.
    pub fn start_command(cmd: Command) -> Self {
        Self::spawn(cmd, None)
    }

    fn spawn(mut cmd: Command, dir: Option<tempfile::TempDir>) -> Self {
        if let Some(layout) = layout_under_test()
            && !cmd.get_envs().any(|(k, _)| k == "PRESCIENT_GRPC__RUNTIME")
        {
            cmd.env("PRESCIENT_GRPC__RUNTIME", layout);
        }
        let mut child = cmd.spawn().expect("start prescient");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Kept before it is announced: whoever waits on "listening"
                // then finds it, and every line before it, in the log.
                let listening = line.contains("prescient listening").then(|| line.clone());
                lines.lock().unwrap().push(line);
                if let Some(line) = listening {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no 'listening' line; log: {:?}", log.lock().unwrap()));
        let field = |name: &str| -> SocketAddr {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                return json["fields"][name].as_str().expect(name).parse().unwrap();
            }
            let start = line.find(&format!("{name}=")).expect(name) + name.len() + 1;
            line[start..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        Self {
            grpc: field("grpc"),
            admin: field("admin"),
            child,
            log,
            _dir: dir,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> AdmissionClient<Channel> {
        AdmissionClient::new(self.channel().await)
    }

    /// A plain HTTP/1.0 GET on the admin port: (status, body). A daemon
    /// that stops answering fails the call after `ANSWER`.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.admin).unwrap();
        s.set_read_timeout(Some(ANSWER)).unwrap();
        s.set_write_timeout(Some(ANSWER)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status, body)
    }

    /// A metric's value from `/metrics` (the first sample whose line starts
    /// with `series`, labels included), if exported.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics");
        body.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Whether some log line contains every one of `parts`, waiting up to
    /// `ANSWER` for it: the daemon writes a line before the effect a test
    /// observes, but the thread reading its stderr may not have read it yet.
    pub fn logged(&self, parts: &[&str]) -> bool {
        let deadline = Instant::now() + ANSWER;
        loop {
            if self.logged_yet(parts) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether some line read so far contains every one of `parts` (for
    /// asserting that something was *not* logged).
    pub fn logged_yet(&self, parts: &[&str]) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| parts.iter().all(|p| line.contains(p)))
    }

    /// Sends `signal` (e.g. "HUP") to the daemon.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends SIGTERM and waits for the exit code, at most `EXIT`: a daemon
    /// that does not stop fails the test instead of hanging it.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        exited_within(&mut self.child, EXIT).unwrap_or_else(|| {
            panic!(
                "no exit within {EXIT:?} of SIGTERM; log: {:?}",
                self.log.lock().unwrap()
            )
        })
    }
}

/// `prescient serve` on port 0 for both ports, log on a pipe.
pub fn serve_on_free_ports() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prescient"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The runtime layout the daemons of this run use, from
/// `TEST_GRPC_RUNTIME` (`multi_thread` or `per_core`; `.ci/run` runs the
/// daemon tests under each): `None` leaves the configured default. Not a
/// `PRESCIENT_*` name, so the daemons do not see it as a stray setting.
pub fn layout_under_test() -> Option<String> {
    std::env::var("TEST_GRPC_RUNTIME")
        .ok()
        .filter(|v| !v.is_empty())
}

/// Longer than any answer takes on a loaded CI machine: a call or a read
/// waiting longer means the daemon stopped answering.
pub const ANSWER: Duration = Duration::from_secs(30);

/// Longer than a clean shutdown takes (streams ended, snapshot written).
pub const EXIT: Duration = Duration::from_secs(60);

/// The exit status of `child` once it exits, polled until `limit`; `None`
/// if it is still running then.
pub fn exited_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `probe` until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same server in-process (real gRPC on a real socket), for tests that
/// must observe the core: returns it and a connected client.
pub async fn start_in_process(
    policy: &str,
) -> (prescient::daemon::Running, AdmissionClient<Channel>) {
    use prescient::settings::{Overrides, Settings};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).unwrap();
    let mut settings = Settings::load(
        None,
        &Overrides {
            policy: Some(path),
            listen: Some("127.0.0.1:0".into()),
            admin_listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    if let Some(layout) = layout_under_test() {
        settings.grpc.runtime = match layout.as_str() {
            "per_core" => prescient::settings::RuntimeLayout::PerCore,
            "multi_thread" => prescient::settings::RuntimeLayout::MultiThread,
            other => panic!("TEST_GRPC_RUNTIME={other}: multi_thread or per_core"),
        };
    }
    let running =
        prescient::daemon::start(&settings, Arc::new(prescient::clock::SystemClock::new()))
            .await
            .unwrap();
    let channel = Channel::from_shared(format!("http://{}", running.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (running, AdmissionClient::new(channel))
}

impl Daemon {
    /// Like [`Daemon::start`], with the daemon's file-descriptor limit
    /// (soft and hard) set to `nofile`.
    pub fn start_with_fd_limit(policy: &str, env: &[(&str, &str)], nofile: u64) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, policy).unwrap();
        let mut cmd = serve_on_free_ports();
        cmd.arg("--policy").arg(&path).env("RUST_LOG", "info");
        cmd.envs(env.iter().copied());
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::spawn(cmd, Some(dir))
    }
}
