//! Resident memory of N series' histories at their bound (default 20,000:
//! 10,000 tenants × 2 resources), as the kernel sees it:
//!
//! ```text
//! cargo run --example history_rss            # or: -- 2000
//! ```
//!
//! Every history grows in place, all together, one sample each per round,
//! as the planner's tick grows them (one tick a minute here, so the
//! coarsest tier fills in 20,160 rounds rather than 14 days of ticks).
//! Prints `VmRSS` of `/proc/self/status` before and after, and what
//! `History::memory()` counts.

use prescient::planner::history::{History, QUARTER, QUARTERS_KEPT, Sample};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a count of series"))
        .unwrap_or(20_000);
    let before = rss_kib();
    let mut histories = vec![History::default(); n];
    let rounds = QUARTERS_KEPT * QUARTER as usize;
    for round in 0..rounds {
        let v = (round % 1440) as f64;
        for (i, h) in histories.iter_mut().enumerate() {
            let d = v + i as f64;
            h.record(
                Sample {
                    demand: d,
                    granted: d,
                    arrivals: d / 10.0,
                    hold: Some(0.1),
                },
                1,
            );
        }
    }
    let after = rss_kib();
    let counted: usize = histories.iter().map(History::memory).sum();
    let grown = (after - before) * 1024;
    println!(
        "{n} series at the bound: VmRSS {before} KiB -> {after} KiB, grew {:.1} MB \
         ({} B per series); History::memory() counts {:.1} MB ({} B per series)",
        grown as f64 / 1e6,
        grown as usize / n,
        counted as f64 / 1e6,
        counted / n,
    );
}
