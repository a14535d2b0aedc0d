//! What the benchmarks print beside criterion's timings: percentiles of
//! raw timings, and the figures of one `acquire_p99` run.

pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// One run's figures, ns: percentiles of single calls (each timed on its
/// own, timer included), the share of slow calls, and percentiles of the
/// mean call of batches of `BATCH` (finer than the timer's 10 ns steps).
#[derive(Clone, Copy)]
pub struct Run {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub over_100ns: f64,
    pub over_1us: f64,
    pub batch_p50: f64,
    pub batch_p99: f64,
}

/// The median over runs of one figure.
pub fn median_of(runs: &[Run], figure: impl Fn(&Run) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(figure).collect();
    v.sort_unstable_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn print_run(round: usize, refits: &str, r: &Run, fits: &str) {
    eprintln!(
        "acquire_p99: {round} | {refits} | {:.1} | {:.1} | {:.1} | {:.0} | {:.4}% | {:.5}% | {:.2} | {:.2} | {fits}",
        r.p50,
        r.p99,
        r.p999,
        r.max,
        100.0 * r.over_100ns,
        100.0 * r.over_1us,
        r.batch_p50,
        r.batch_p99
    );
}
