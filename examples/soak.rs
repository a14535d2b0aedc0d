//! A soak: mixed load against a running daemon on the embedded example
//! policy for a while, printing the daemon's resident memory as it goes,
//! so one can see it flatten once the idempotency and tombstone windows
//! are full. Loopback only, bounded by `--minutes`.
//!
//! ```text
//! PRESCIENT_ADMISSION__IDEMPOTENCY_WINDOW=1m PRESCIENT_ADMISSION__LEASE_TOMBSTONE=2m \
//!   target/release/prescient serve &
//! cargo run --release --example soak -- --pid $! --minutes 10
//! ```
//!
//! Each of 8 workers loops: an Acquire with a fresh `request_id` and a
//! lease on `db_queries`, its Report (used a little more or less than
//! acquired), a `worker_slots` Acquire and its Release, and every tenth
//! round a Release of the same lease again (idempotent) and an Acquire from
//! one of 50 guest tenants (created from `defaults` on first use). The set
//! of tenants is fixed, so what grows is only what the windows hold (and
//! the planner's history, which fills its rings over an hour).

use std::time::{Duration, Instant};

use prescient::proto::admission_client::AdmissionClient;
use prescient::proto::{AcquireRequest, ReleaseRequest, ReportEntry, ReportRequest};

const WORKERS: usize = 8;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The daemon's resident set size in KiB, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn worker(
    mut c: AdmissionClient<tonic::transport::Channel>,
    id: usize,
    until: Instant,
) -> u64 {
    let mut rounds = 0u64;
    while Instant::now() < until {
        rounds += 1;
        let tenant = if rounds.is_multiple_of(2) {
            "checkout"
        } else {
            "search"
        };
        let granted = c
            .acquire(AcquireRequest {
                tenant: tenant.into(),
                resource: "db_queries".into(),
                amount: 5,
                lease: true,
                request_id: format!("soak-{id}-{rounds}"),
                ..Default::default()
            })
            .await;
        if let Ok(r) = granted {
            let lease_id = r.into_inner().lease_id;
            if !lease_id.is_empty() {
                let used = if rounds.is_multiple_of(3) { 7 } else { 3 };
                let entry = ReportEntry {
                    lease_id,
                    used,
                    ..Default::default()
                };
                let _ = c
                    .report(ReportRequest {
                        entries: vec![entry],
                    })
                    .await;
            }
        }
        if let Ok(r) = c
            .acquire(AcquireRequest {
                tenant: "checkout".into(),
                resource: "worker_slots".into(),
                amount: 1,
                ..Default::default()
            })
            .await
        {
            let lease_id = r.into_inner().lease_id;
            if !lease_id.is_empty() {
                let release = ReleaseRequest { lease_id };
                let _ = c.release(release.clone()).await;
                if rounds.is_multiple_of(10) {
                    let _ = c.release(release).await;
                }
            }
        }
        if rounds.is_multiple_of(10) {
            let _ = c
                .acquire(AcquireRequest {
                    tenant: format!("guest-{}", (rounds / 10) % 50),
                    resource: "db_queries".into(),
                    amount: 1,
                    ..Default::default()
                })
                .await;
        }
    }
    rounds
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:50051".into());
    let pid: u32 = arg("--pid").ok_or("--pid PID of the daemon")?.parse()?;
    let minutes: u64 = arg("--minutes").map_or(Ok(10), |m| m.parse())?;
    let every = Duration::from_secs(arg("--every").map_or(Ok(30), |s| s.parse())?);
    let start = Instant::now();
    let until = start + Duration::from_secs(60 * minutes);
    let client = AdmissionClient::connect(format!("http://{addr}")).await?;
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| tokio::spawn(worker(client.clone(), id, until)))
        .collect();
    println!("elapsed_s\trss_kib");
    while Instant::now() < until {
        println!(
            "{}\t{}",
            start.elapsed().as_secs(),
            rss_kib(pid).map_or("?".into(), |k| k.to_string())
        );
        tokio::time::sleep(every.min(until.saturating_duration_since(Instant::now()))).await;
    }
    let mut rounds = 0;
    for w in workers {
        rounds += w.await?;
    }
    println!(
        "{}\t{}\t# end: {rounds} rounds",
        start.elapsed().as_secs(),
        rss_kib(pid).map_or("?".into(), |k| k.to_string())
    );
    Ok(())
}
