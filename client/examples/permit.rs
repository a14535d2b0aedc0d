//! The client crate against a running daemon (default 127.0.0.1:50051, or
//! the address given as the first argument), on the example policy that
//! `prescient serve` embeds: a slot held and released, an estimate settled
//! by a report, a denial, and a wait.
//!
//! ```text
//! cargo run --release -- serve                          # terminal 1
//! cargo run -p prescient-client --example permit        # terminal 2
//! ```
//!
//! `tests/docs.rs` runs [`run`] against a real daemon and compares what it
//! prints with the README.

use std::fmt::Write as _;
use std::time::Duration;

use prescient_client::{Client, Demand, Outcome};

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
    let client = Client::connect(format!("http://{addr}")).await?;
    let mut out = String::new();

    // A concurrency resource: the permit holds a worker slot's lease until
    // released (or dropped).
    let slot = client
        .acquire(Demand::new("checkout", "worker_slots", 1))
        .await?;
    writeln!(
        out,
        "worker_slots x1: granted, lease {}",
        slot.lease_id().unwrap_or("-")
    )?;
    writeln!(out, "released {} unit(s)", slot.release().await?.units)?;

    // An estimate (e.g. LLM tokens): acquire 500, report the 120 used, and
    // the daemon refunds the rest.
    let queries = client
        .acquire(Demand::new("checkout", "db_queries", 500).estimate())
        .await?;
    writeln!(
        out,
        "db_queries x500 (estimate): granted, {} left",
        queries.remaining()
    )?;
    queries.report(120, Outcome::Success).await?;
    writeln!(out, "reported 120 used: the other 380 refunded")?;

    // A tenant from `defaults` (10 tokens/s): the second 10 are denied with
    // retry_after, unless the caller waits for them.
    let ten = || Demand::new("newcomer", "db_queries", 10);
    let _first = client.acquire(ten()).await?;
    match client.acquire(ten()).await {
        Err(e) if e.is_denied() => writeln!(
            out,
            "newcomer x10 again: denied, retry after {} ms",
            e.retry_after().unwrap_or_default().as_millis()
        )?,
        other => writeln!(out, "newcomer x10 again: {other:?}")?,
    }
    let _waited = client
        .acquire(ten().max_wait(Duration::from_secs(5)))
        .await?;
    writeln!(out, "newcomer x10, waiting up to 5 s: granted")?;
    Ok(out)
}
