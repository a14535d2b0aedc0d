//! One Acquire end to end against a running daemon (default
//! 127.0.0.1:50051, or the address given as the first argument), on the
//! example policy that `prescient serve` embeds:
//!
//! ```text
//! cargo run --release -- serve            # terminal 1
//! cargo run --example acquire             # terminal 2
//! ```
//!
//! `tests/docs.rs` runs [`run`] against a real daemon and compares what it
//! prints with the README.

use std::fmt::Write as _;

use prescient::proto::admission_client::AdmissionClient;
use prescient::proto::{AcquireRequest, Decision, ReleaseRequest};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".into());
    print!("{}", run(&addr).await?);
    Ok(())
}

/// The example's calls against the daemon at `addr`; returns what it prints.
pub async fn run(addr: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut client = AdmissionClient::connect(format!("http://{addr}")).await?;
    let mut out = String::new();

    // A rate resource: 300 database queries for tenant "checkout".
    let r = client
        .acquire(AcquireRequest {
            tenant: "checkout".into(),
            resource: "db_queries".into(),
            amount: 300,
            ..Default::default()
        })
        .await?
        .into_inner();
    writeln!(
        out,
        "db_queries x300: {:?} (reserve {}, guaranteed {}, shared {}, emergency {}; {} left)",
        r.decision(),
        r.from_reserve,
        r.from_guaranteed,
        r.from_shared,
        r.from_emergency,
        r.remaining
    )?;

    // A concurrency resource: hold a worker slot, then give it back.
    let r = client
        .acquire(AcquireRequest {
            tenant: "checkout".into(),
            resource: "worker_slots".into(),
            amount: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    writeln!(
        out,
        "worker_slots x1: {:?}, lease {}",
        r.decision(),
        r.lease_id
    )?;
    if r.decision() == Decision::Granted {
        let released = client
            .release(ReleaseRequest {
                lease_id: r.lease_id,
            })
            .await?
            .into_inner();
        writeln!(out, "released {} unit(s)", released.released_units)?;
    }
    Ok(out)
}
