//! The gRPC port's settings: limits per connection and over all of them,
//! shutdown, and how request work is laid out over threads.

use std::time::Duration;

use serde::Deserialize;

/// Limits of the gRPC port: per connection, over all connections, and at
/// shutdown.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrpcSettings {
    /// Calls one connection may have open at once (HTTP/2
    /// SETTINGS_MAX_CONCURRENT_STREAMS); 0: no limit.
    pub max_concurrent_streams: u32,
    /// HTTP/2 ping interval on each connection; 0s: no pings.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// A connection whose ping is not answered in this time is closed.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Connections open at once; a new one beyond it is closed at once.
    /// Lowered at start to what the file-descriptor limit leaves room for.
    pub max_connections: usize,
    /// A connection with no call open for this long is closed; 0s: never.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// WatchForecast streams open at once over all connections; beyond it
    /// RESOURCE_EXHAUSTED.
    pub max_watch_streams: usize,
    /// On shutdown, how long calls in flight may take before the
    /// connections still open are closed.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How request work is spread over threads (`daemon::workers`).
    pub runtime: RuntimeLayout,
    /// Request worker threads; 0: one per core this process may run on.
    pub workers: usize,
}

/// Most request workers `grpc.workers` may ask for.
pub const MAX_WORKERS: usize = 1024;

/// `grpc.runtime`: where gRPC calls run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeLayout {
    /// One tokio multi-thread runtime (work stealing) for everything.
    MultiThread,
    /// One current-thread runtime per worker thread, each accepting on its
    /// own `SO_REUSEPORT` listener; background work on a runtime of its own.
    PerCore,
}

impl<'de> Deserialize<'de> for RuntimeLayout {
    /// By hand, so a wrong value is told the two right ones.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "multi_thread" => Ok(Self::MultiThread),
            "per_core" => Ok(Self::PerCore),
            other => Err(serde::de::Error::custom(format!(
                "`{other}` is no runtime layout: multi_thread or per_core"
            ))),
        }
    }
}

impl std::fmt::Display for RuntimeLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MultiThread => "multi_thread",
            Self::PerCore => "per_core",
        })
    }
}

impl GrpcSettings {
    /// The gRPC server with the per-connection settings applied.
    pub fn server(&self) -> tonic::transport::Server {
        let g = self;
        let on = |d: Duration| (!d.is_zero()).then_some(d);
        tonic::transport::Server::builder()
            .max_concurrent_streams(
                (g.max_concurrent_streams > 0).then_some(g.max_concurrent_streams),
            )
            .http2_keepalive_interval(on(g.keepalive_interval))
            .http2_keepalive_timeout(on(g.keepalive_timeout))
    }

    /// Request worker threads: `workers`, or with 0 the cores this process
    /// may run on (its CPU affinity, so `taskset -c 0` means one).
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub(super) fn check(&self) -> Result<(), config::ConfigError> {
        let bad = |key: &str, why: &str| Err(config::ConfigError::Message(format!("{key}: {why}")));
        if self.max_connections == 0 {
            return bad("grpc.max_connections", "must be > 0");
        }
        if self.max_watch_streams == 0 {
            return bad(
                "grpc.max_watch_streams",
                "must be > 0 (WatchForecast is part of the API)",
            );
        }
        if self.workers > MAX_WORKERS {
            return bad("grpc.workers", "must be at most 1024 (0: one per core)");
        }
        Ok(())
    }
}
