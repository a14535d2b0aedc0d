//! Generates a synthetic trace for `prescient simulate` (DESIGN §7 CSV):
//! several tenants competing for one rate resource, `api`, with an
//! hour-long "daily-like" cycle and predictable bursts.
//!
//! * `checkout`: 150/s ± 50 on the cycle, plus a burst to +600/s for
//!   minutes 50-54 of every hour (the burst forecasting should see coming);
//! * `search`: 250/s ± 150 on the cycle, shifted a quarter, 10% noise;
//! * `batch`: a steady 500/s that borrows whatever shared capacity is left;
//! * `tenant-3` … : small background tenants (20/s ± 10).
//!
//! Deterministic (fixed seed). Usage:
//!
//! ```text
//! cargo run --release --example gen_trace -- [--hours 4] [--tenants 3] \
//!     [--rows-per-second 2] > trace.csv
//! ```
//!
//! `examples/sim/trace.csv` is `--hours 4 --tenants 3 --rows-per-second 1`;
//! the speed figure in docs/simulation.md uses `--hours 24 --tenants 10
//! --rows-per-second 1` (864,000 rows... see there).

use std::io::Write;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
        })
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let hours = arg("--hours", 4.0);
    let tenants = arg("--tenants", 3.0).max(3.0) as usize;
    let per_second = arg("--rows-per-second", 2.0).max(1.0) as u64;
    let seconds = (hours * 3600.0) as u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f64 / 10_000.0 - 0.5
    };
    let cycle =
        |t: u64, shift: f64| (2.0 * std::f64::consts::PI * (t as f64 + shift) / 3600.0).sin();
    let names: Vec<String> = ["checkout", "search", "batch"]
        .iter()
        .map(|s| s.to_string())
        .chain((3..tenants).map(|k| format!("tenant-{k}")))
        .collect();
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    writeln!(out, "timestamp,tenant,resource,amount")?;
    for t in 0..seconds {
        let minute_of_hour = (t / 60) % 60;
        for j in 0..per_second {
            for (k, name) in names.iter().enumerate() {
                let demand = match k {
                    0 => {
                        150.0
                            + 50.0 * cycle(t, 0.0)
                            + if (50..55).contains(&minute_of_hour) {
                                600.0
                            } else {
                                0.0
                            }
                    }
                    1 => (250.0 + 150.0 * cycle(t, 900.0)) * (1.0 + 0.2 * noise()),
                    2 => 500.0 * (1.0 + 0.1 * noise()),
                    _ => 20.0 + 10.0 * cycle(t, 300.0 * k as f64),
                };
                let amount = (demand / per_second as f64).round().max(1.0) as u64;
                // Spread the rows of a second; tenants interleave.
                let at = t as f64 + (j as f64 + k as f64 / names.len() as f64) / per_second as f64;
                writeln!(out, "{at:.3},{name},api,{amount}")?;
            }
        }
    }
    out.flush()
}
