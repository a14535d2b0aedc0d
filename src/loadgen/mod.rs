//! `prescient bench`: a load generator for the Acquire path of a daemon on
//! this machine (issue 15). Unary Acquire (or Envoy's ShouldRateLimit,
//! `protocol`) over N HTTP/2 connections × M requests in flight on each,
//! spread over several tenants, for a count or a duration; latencies go
//! into an `hdrhistogram` (`report`). Loopback only and bounded in every
//! dimension: it is a measuring tool, not a flood.

mod protocol;
mod report;

pub use protocol::Protocol;
pub use report::Report;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::Endpoint;

use protocol::{Caller, Outcome};
use report::Tally;

/// Most connections, and most requests in flight on one.
pub const MAX_CONNECTIONS: usize = 256;
pub const MAX_STREAMS: usize = 256;
/// Most requests one run sends, and the longest it runs.
pub const MAX_REQUESTS: u64 = 100_000_000;
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);

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
    pub protocol: Protocol,
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
        if let Protocol::Envoy { domain } = &self.protocol {
            if domain.is_empty() {
                return Err(LoadError::Bound("domain", "is empty".into()));
            }
            // Envoy's hits_addend is a u32.
            if u32::try_from(self.amount).is_err() {
                return Err(LoadError::Bound(
                    "amount",
                    format!(
                        "{} is more than --protocol envoy sends (hits_addend is a u32: at most {})",
                        self.amount,
                        u32::MAX
                    ),
                ));
            }
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
                let caller = Caller::new(&self.protocol, &self.resource, channel.clone());
                let (next, tenants, amount) = (next.clone(), self.tenants.clone(), self.amount);
                tasks.push(tokio::spawn(async move {
                    stream(caller, next, limit, deadline, tenants, amount).await
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
        Ok(total.into_report(start.elapsed().as_secs_f64()))
    }
}

/// One request in flight at a time, until the count or the deadline.
async fn stream(
    mut caller: Caller,
    next: Arc<AtomicU64>,
    limit: u64,
    deadline: Option<Instant>,
    tenants: Vec<String>,
    amount: u64,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= limit || deadline.is_some_and(|d| Instant::now() >= d) {
            return tally;
        }
        let sent = Instant::now();
        let outcome = caller
            .call(&tenants[i as usize % tenants.len()], amount)
            .await;
        tally.record(outcome, sent.elapsed());
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
            protocol: Protocol::Acquire,
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
            (
                Load {
                    protocol: Protocol::Envoy {
                        domain: String::new(),
                    },
                    ..ok.clone()
                },
                "--domain: is empty",
            ),
            (
                Load {
                    protocol: Protocol::Envoy { domain: "d".into() },
                    amount: 1 << 32,
                    ..ok.clone()
                },
                "--amount: 4294967296 is more than --protocol envoy sends \
                 (hits_addend is a u32: at most 4294967295)",
            ),
        ];
        let envoy = Load {
            protocol: Protocol::Envoy { domain: "d".into() },
            amount: u64::from(u32::MAX),
            ..ok.clone()
        };
        assert!(envoy.check().is_ok());
        for (load, message) in cases {
            assert_eq!(load.check().unwrap_err().to_string(), message);
        }
    }
}
