//! A real `redis-server` for the lease-store and multi-daemon tests: found
//! on PATH (installed by `scripts/install-redis` if missing), started on a
//! free loopback port with no persistence, answering PING before use, and
//! killed on drop. `stop`/`resume` freeze it (a hung Redis), `restart`
//! brings it back empty on the same port (a Redis that lost its data).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a starting redis-server may take to answer PING.
const START: Duration = Duration::from_secs(20);

pub struct Redis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a redis-server on a free loopback port.
    pub fn start() -> Self {
        // Another process may take the free port before redis-server binds
        // it: try a few.
        for _ in 0..5 {
            let port = free_port();
            if let Some(redis) = Self::try_start_on(port) {
                return redis;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts a redis-server on `port` (e.g. where a store already points).
    pub fn start_on(port: u16) -> Self {
        Self::try_start_on(port)
            .unwrap_or_else(|| panic!("redis-server did not start on port {port}"))
    }

    fn try_start_on(port: u16) -> Option<Self> {
        Self::try_start_with(port, &[])
    }

    /// Starts a redis-server on `port` with `args` added to the command
    /// line (e.g. a cluster node's), if it comes up.
    pub fn try_start_with(port: u16, args: &[String]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("redis.log");
        let child = Command::new(server())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(args)
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let mut redis = Self { child, port, dir };
        let deadline = Instant::now() + START;
        loop {
            if redis.pong() {
                return Some(redis);
            }
            if redis.child.try_wait().unwrap().is_some() {
                eprintln!("redis-server on port {port} exited: {}", redis.log());
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port}: no PONG within {START:?}; log: {}",
                redis.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws a stopped server (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the server and starts an empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        // The old process's dir goes when the new one replaces it.
        *self = Self::start_on(port);
    }

    /// True if the server answers PING now (within a second).
    pub fn pong(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let timeout = Some(Duration::from_secs(1));
        stream.set_read_timeout(timeout).unwrap();
        stream.set_write_timeout(timeout).unwrap();
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }

    /// The server's working directory (its cluster config file goes there).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        let status = unsafe { libc::kill(pid, signal) };
        assert_eq!(status, 0, "signal {signal} to redis-server");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The redis-server binary, installed by the project's script if missing.
pub fn server() -> &'static PathBuf {
    static SERVER: OnceLock<PathBuf> = OnceLock::new();
    SERVER.get_or_init(|| installed("redis-server"))
}

/// The redis-cli binary, installed by the project's script if missing.
pub fn cli() -> &'static PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| installed("redis-cli"))
}

/// `name` on PATH, after running `scripts/install-redis` if it is not.
fn installed(name: &str) -> PathBuf {
    if let Some(found) = on_path(name) {
        return found;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-redis");
    let status = Command::new(script).status();
    on_path(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed and {script} did not install it ({status:?}); run it as root"
        )
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A loopback port nothing listens on (now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
