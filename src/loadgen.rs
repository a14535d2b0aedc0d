//! `prescient bench`: a load generator for the Acquire path of a daemon on
//! this machine (issue 15). Unary Acquire over N HTTP/2 connections × M
//! requests in flight on each, spread over several tenants, for a count or
//! a duration; latencies go into an `hdrhistogram`. Loopback only and
//! bounded in every dimension: it is a measuring tool, not a flood.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::transport::Endpoint;

use crate::proto::admission_client::AdmissionClient;
use crate::proto::{AcquireRequest, Decision};

/// Most connections, and most requests in flight on one.
pub const MAX_CONNECTIONS: usize = 256;
pub const MAX_STREAMS: usize = 256;
/// Most requests one run sends, and the longest it runs.
pub const MAX_REQUESTS: u64 = 100_000_000;
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);
/// Latencies above this are recorded at it (the histogram's range).
const MAX_LATENCY_US: u64 = 60_000_000;

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    Requests(u64),
    After(Duration),
}

/// What to send, where, how hard and for how long.
#[derive(Debug, Clone)]
pub struct Load {
    pub target: SocketAddr,
    pub connections: usize,
    pub streams: usize,
    pub tenants: Vec<String>,
    pub resource: String,
    pub amount: u64,
    pub stop: Stop,
}

/// Why a load cannot run: the flag and the reason.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("--target: {0}")]
    Target(String),
    #[error("--{0}: {1}")]
    Bound(&'static str, String),
    #[error("--target {0}: cannot connect: {1}")]
    Connect(SocketAddr, tonic::transport::Error),
}

/// What a run measured. `requests = granted + denied + errors`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub requests: u64,
    pub granted: u64,
    pub denied: u64,
    /// Calls answered with a gRPC error (an unknown tenant, a bad amount).
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Report {
    pub fn to_text(&self) -> String {
        format!(
            "requests {} (granted {}, denied {}, errors {}) in {:.2} s: {:.0} requests/s\n\
             latency p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs\n",
            self.requests,
            self.granted,
            self.denied,
            self.errors,
            self.seconds,
            self.requests_per_second,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us
        )
    }
}

/// Resolves `target` (`host:port`, an optional `http://`) to one loopback
/// address, or says why not: the generator never loads another machine.
pub fn loopback(target: &str) -> Result<SocketAddr, LoadError> {
    let hostport = target.strip_prefix("http://").unwrap_or(target);
    let addrs: Vec<SocketAddr> = hostport
        .to_socket_addrs()
        .map_err(|e| LoadError::Target(format!("{target:?} is not host:port: {e}")))?
        .collect();
    match addrs.iter().find(|a| !a.ip().is_loopback()) {
        Some(a) => Err(LoadError::Target(format!(
            "{target:?} is {}, not a loopback address: bench loads this machine only",
            a.ip()
        ))),
        None => addrs
            .first()
            .copied()
            .ok_or_else(|| LoadError::Target(format!("{target:?} resolves to no address"))),
    }
}

impl Load {
    /// Refuses a load outside the bounds, naming the flag.
    pub fn check(&self) -> Result<(), LoadError> {
        let within = |flag, v: usize, max: usize| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(LoadError::Bound(
                    flag,
                    format!("{v} is not within 1..={max}"),
                ))
            }
        };
        within("connections", self.connections, MAX_CONNECTIONS)?;
        within("streams", self.streams, MAX_STREAMS)?;
        if self.tenants.is_empty() || self.tenants.iter().any(String::is_empty) {
            return Err(LoadError::Bound("tenants", "names no tenant".into()));
        }
        match self.stop {
            Stop::Requests(n) if !(1..=MAX_REQUESTS).contains(&n) => Err(LoadError::Bound(
                "requests",
                format!("{n} is not within 1..={MAX_REQUESTS}"),
            )),
            Stop::After(d) if d.is_zero() || d > MAX_DURATION => Err(LoadError::Bound(
                "duration",
                format!("{d:?} is not within (0, {MAX_DURATION:?}]"),
            )),
            _ => Ok(()),
        }
    }

    /// Runs the load and measures it.
    pub async fn run(&self) -> Result<Report, LoadError> {
        self.check()?;
        let endpoint = Endpoint::from_shared(format!("http://{}", self.target))
            .map_err(|e| LoadError::Connect(self.target, e))?;
        // One endpoint connected N times: N HTTP/2 connections.
        let mut channels = Vec::with_capacity(self.connections);
        for _ in 0..self.connections {
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| LoadError::Connect(self.target, e))?;
            channels.push(channel);
        }
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = match self.stop {
            Stop::After(d) => Some(start + d),
            Stop::Requests(_) => None,
        };
        let limit = match self.stop {
            Stop::Requests(n) => n,
            Stop::After(_) => MAX_REQUESTS,
        };
        let mut tasks = Vec::with_capacity(self.connections * self.streams);
        for channel in &channels {
            for _ in 0..self.streams {
                let client = AdmissionClient::new(channel.clone());
                let (next, tenants) = (next.clone(), self.tenants.clone());
                let (resource, amount) = (self.resource.clone(), self.amount);
                tasks.push(tokio::spawn(async move {
                    stream(client, next, limit, deadline, tenants, resource, amount).await
                }));
            }
        }
        let mut total = Tally::default();
        for t in tasks {
            // A stream task only panics on a bug; its count is then lost.
            if let Ok(tally) = t.await {
                total.merge(tally);
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let h = &total.latency;
        Ok(Report {
            requests: total.granted + total.denied + total.errors,
            granted: total.granted,
            denied: total.denied,
            errors: total.errors,
            seconds,
            requests_per_second: (total.granted + total.denied + total.errors) as f64 / seconds,
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        })
    }
}

/// One stream's counts and latencies (µs).
struct Tally {
    granted: u64,
    denied: u64,
    errors: u64,
    latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            granted: 0,
            denied: 0,
            errors: 0,
            // 3 significant digits over 1 µs ..= 60 s: bounds are constants.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.granted += other.granted;
        self.denied += other.denied;
        self.errors += other.errors;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

/// One request in flight at a time, until the count or the deadline.
async fn stream(
    mut client: AdmissionClient<tonic::transport::Channel>,
    next: Arc<AtomicU64>,
    limit: u64,
    deadline: Option<Instant>,
    tenants: Vec<String>,
    resource: String,
    amount: u64,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= limit || deadline.is_some_and(|d| Instant::now() >= d) {
            return tally;
        }
        let request = AcquireRequest {
            tenant: tenants[i as usize % tenants.len()].clone(),
            resource: resource.clone(),
            amount,
            ..Default::default()
        };
        let sent = Instant::now();
        let answer = client.acquire(request).await;
        let us = (sent.elapsed().as_micros() as u64).clamp(1, MAX_LATENCY_US);
        tally.latency.saturating_record(us);
        match answer.map(|r| r.into_inner().decision()) {
            Ok(Decision::Granted) => tally.granted += 1,
            Ok(_) => tally.denied += 1,
            Err(_) => tally.errors += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_loaded() {
        assert_eq!(loopback("127.0.0.1:50051").unwrap().port(), 50051);
        assert!(loopback("http://[::1]:7").unwrap().ip().is_loopback());
        let e = loopback("10.1.2.3:50051").unwrap_err().to_string();
        assert_eq!(
            e,
            "--target: \"10.1.2.3:50051\" is 10.1.2.3, not a loopback address: \
             bench loads this machine only"
        );
        let e = loopback("nowhere").unwrap_err().to_string();
        assert!(
            e.starts_with("--target: \"nowhere\" is not host:port"),
            "{e}"
        );
    }

    #[test]
    fn a_load_beyond_a_bound_is_refused_naming_the_flag() {
        let ok = Load {
            target: loopback("127.0.0.1:1").unwrap(),
            connections: 1,
            streams: 1,
            tenants: vec!["t".into()],
            resource: "r".into(),
            amount: 1,
            stop: Stop::Requests(1),
        };
        assert!(ok.check().is_ok());
        let cases = [
            (
                Load {
                    connections: 0,
                    ..ok.clone()
                },
                "--connections: 0 is not within 1..=256",
            ),
            (
                Load {
                    streams: 257,
                    ..ok.clone()
                },
                "--streams: 257 is not within 1..=256",
            ),
            (
                Load {
                    tenants: vec![],
                    ..ok.clone()
                },
                "--tenants: names no tenant",
            ),
            (
                Load {
                    stop: Stop::Requests(0),
                    ..ok.clone()
                },
                "--requests: 0 is not within 1..=100000000",
            ),
            (
                Load {
                    stop: Stop::After(Duration::ZERO),
                    ..ok.clone()
                },
                "--duration: 0ns is not within (0, 3600s]",
            ),
        ];
        for (load, message) in cases {
            assert_eq!(load.check().unwrap_err().to_string(), message);
        }
    }
}
