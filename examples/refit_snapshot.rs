//! A state dir that keeps the refit worker busy (issue 15, "Acquire p99
//! with 10,000 series refitting"): a policy of N tenants × 2 rate resources
//! (`api`, `db`; each with `reserve: {}`, a guarantee, and capacity far
//! beyond any load, so every Acquire is granted) and a history snapshot, in
//! the daemon's own format, holding 3 days of per-minute demand with a
//! daily pattern for every one of the 2N series:
//!
//! ```text
//! cargo run --release --example refit_snapshot -- 10000 /tmp/refit
//! prescient serve --policy /tmp/refit/policy.yaml --state-dir /tmp/refit
//! ```
//!
//! The daemon restores them and every series is due a refit at once, then
//! every `planner.refit_every`. `-- N DIR --policy-only` writes the policy
//! alone: the same tenants with no history, so nothing is refit for the
//! first 10 minutes (the "idle" side of `benches/refit_p99.sh`).
//!
//! Histories are recorded at the default 1 s tick (60 ticks a minute, so a
//! restored series has the minutes it claims). A few distinct histories
//! are shared by all the series: a fit costs the same, and 10,000 tenants
//! generate in seconds.

use prescient::planner::history::{History, Sample};
use prescient::planner::snapshot::{SeriesRef, save};

/// Ticks per minute at the default `tick: 1s`.
const TICKS_PER_MINUTE: u32 = 60;
const DAYS: u64 = 3;
/// Distinct histories (phase and level differ).
const VARIANTS: usize = 16;
const RESOURCES: [&str; 2] = ["api", "db"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: refit_snapshot N DIR [--policy-only]";
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .filter(|&n| n > 0)
        .expect(usage);
    let dir = std::path::PathBuf::from(args.get(1).expect(usage));
    let policy_only = args.get(2).is_some_and(|a| a == "--policy-only");

    std::fs::create_dir_all(&dir).expect("create the state dir");
    std::fs::write(dir.join("policy.yaml"), policy(n)).expect("write the policy");
    if policy_only {
        println!("{n} tenants, no history, in {}", dir.display());
        return;
    }
    let names: Vec<String> = (0..n).map(tenant).collect();
    let variants: Vec<History> = (0..VARIANTS).map(history).collect();
    let series: Vec<SeriesRef<'_>> = (0..2 * n)
        .map(|i| SeriesRef {
            tenant: &names[i / 2],
            resource: RESOURCES[i % 2],
            history: &variants[i % VARIANTS],
        })
        .collect();
    let bytes = save(&dir, &series).expect("write the snapshot");
    println!(
        "{} series of {DAYS} days, {bytes} bytes, in {}",
        series.len(),
        dir.display()
    );
}

fn tenant(i: usize) -> String {
    format!("t{i}")
}

/// Every tenant gold (may borrow), 50,000/s guaranteed of each resource:
/// 10,000 tenants guarantee half the capacity, the rest is shared.
fn policy(n: usize) -> String {
    let mut p = String::from("resources:\n");
    for r in RESOURCES {
        p += &format!("  {r}: {{ kind: rate, capacity: 1000000000 }}\n");
    }
    p += "tenants:\n";
    for i in 0..n {
        p += &format!(
            "  {}: {{ qos: gold, limits: {{ api: {{ guaranteed: 50000, reserve: {{}} }}, \
             db: {{ guaranteed: 50000, reserve: {{}} }} }} }}\n",
            tenant(i)
        );
    }
    p
}

/// `DAYS` days of ticks: a daily sine, a smaller hourly one, and noise.
fn history(variant: usize) -> History {
    let mut h = History::default();
    let mut noise = 0x9e37_79b9_7f4a_7c15_u64 ^ variant as u64;
    let phase = variant as f64 / VARIANTS as f64;
    for t in 0..DAYS * 1440 * TICKS_PER_MINUTE as u64 {
        let minute = (t / TICKS_PER_MINUTE as u64) as f64;
        let day = std::f64::consts::TAU * (minute / 1440.0 + phase);
        let hour = std::f64::consts::TAU * minute / 60.0;
        // xorshift: cheap, deterministic, uniform in [0, 1).
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        let u = (noise >> 11) as f64 / (1u64 << 53) as f64;
        let d = 100.0 + 10.0 * variant as f64 + 60.0 * day.sin() + 10.0 * hour.sin() + 20.0 * u;
        let s = Sample {
            demand: d,
            granted: d,
            arrivals: d,
            hold: None,
        };
        h.record(s, TICKS_PER_MINUTE);
    }
    h
}
