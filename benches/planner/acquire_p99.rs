//! `acquire_p99`: single `try_acquire` calls timed one by one, with and
//! without a thread fitting models beside them.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::Criterion;
use prescient::admission::{AcquireRequest, Admission, AdmissionConfig};
use prescient::clock::SystemClock;
use prescient::planner::model::{self, FitJob};
use prescient::policy::Policy;

use crate::demand::seasonal_series;
use crate::report::{Run, median_of, percentile, print_run};
use crate::{STEPS, full_run};

const P99_POLICY: &str = r#"
resources:
  rate: { kind: rate, capacity: 1000000000000 }
tenants:
  a:
    qos: gold
    limits:
      rate: { guaranteed: 100000000000 }
"#;

/// Calls per batch in the batched timing: a batch's mean has 1/BATCH of
/// the timer's granularity.
pub const BATCH: usize = 100;

/// `calls` single Acquires timed one by one, then `calls` more in batches.
/// Raw timer units (TSC cycles where quanta uses the TSC) are kept and
/// scaled by `ns` at the end: `delta_as_nanos` would round each call.
fn timed_acquires(core: &Admission, timer: &quanta::Clock, calls: usize, ns: f64) -> Run {
    let req = AcquireRequest {
        tenant: "a",
        resource: "rate",
        amount: 1,
        ..Default::default()
    };
    let mut single = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = timer.raw();
        let d = core.try_acquire(black_box(&req), core.clock().now());
        let end = timer.raw();
        black_box(d.is_ok());
        single.push(end.wrapping_sub(start));
    }
    let mut batched = Vec::with_capacity(calls / BATCH);
    for _ in 0..calls / BATCH {
        let start = timer.raw();
        for _ in 0..BATCH {
            black_box(
                core.try_acquire(black_box(&req), core.clock().now())
                    .is_ok(),
            );
        }
        batched.push(timer.raw().wrapping_sub(start));
    }
    single.sort_unstable();
    batched.sort_unstable();
    let slower = |limit: f64| {
        let raw = (limit / ns) as u64;
        single.iter().filter(|&&v| v > raw).count() as f64 / single.len() as f64
    };
    let per_call = ns / BATCH as f64;
    Run {
        p50: percentile(&single, 0.50) as f64 * ns,
        p99: percentile(&single, 0.99) as f64 * ns,
        p999: percentile(&single, 0.999) as f64 * ns,
        max: *single.last().expect("at least one call") as f64 * ns,
        over_100ns: slower(100.0),
        over_1us: slower(1000.0),
        batch_p50: percentile(&batched, 0.50) as f64 * per_call,
        batch_p99: percentile(&batched, 0.99) as f64 * per_call,
    }
}

/// A thread fitting MSTL on 1,440 minutes without a pause, until stopped;
/// returns the thread and its fit counter once the first fit is done.
fn refit_loop(stop: Arc<AtomicBool>) -> (thread::JoinHandle<()>, Arc<AtomicU64>) {
    let fits = Arc::new(AtomicU64::new(0));
    let counter = fits.clone();
    let job = FitJob {
        series: seasonal_series(1440, 11),
        seasons: vec![60],
        steps: STEPS,
        keep: None,
    };
    let handle = thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            black_box(model::fit(black_box(&job)));
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    while fits.load(Ordering::Relaxed) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    (handle, fits)
}

/// Acquire latency with no planner, then with a refit thread busy on the
/// other core; runs alternate so drift in the machine's load hits both
/// alike.
pub fn acquire_p99(_: &mut Criterion) {
    let (calls, rounds) = if full_run() {
        (1_000_000, 15)
    } else {
        (10_000, 1)
    };
    let policy = Policy::load_str(P99_POLICY, "bench").expect("bench policy is valid");
    let core = Admission::new(
        &policy,
        AdmissionConfig::default(),
        Arc::new(SystemClock::new()),
    );
    let timer = quanta::Clock::new();
    // Nanoseconds per raw unit, from a long interval.
    let ns = {
        let (s, t) = (timer.raw(), Instant::now());
        thread::sleep(Duration::from_millis(100));
        let (e, elapsed) = (timer.raw(), t.elapsed());
        elapsed.as_nanos() as f64 / e.wrapping_sub(s) as f64
    };
    // The floor and granularity: two timer reads with nothing between.
    let mut floor: Vec<u64> = (0..calls)
        .map(|_| {
            let s = timer.raw();
            timer.raw().wrapping_sub(s)
        })
        .collect();
    floor.sort_unstable();
    // Warm the path (tenant lookup, pools, branch predictors).
    black_box(timed_acquires(&core, &timer, calls / 10, ns).p50);

    eprintln!(
        "acquire_p99: {calls} single try_acquire per run + {calls} in batches of {BATCH}; \
         {ns:.3} ns per timer unit; timer floor p50 {:.1} ns, p99 {:.1} ns",
        percentile(&floor, 0.5) as f64 * ns,
        percentile(&floor, 0.99) as f64 * ns
    );
    eprintln!(
        "acquire_p99: round | refits | p50 | p99 | p99.9 | max (ns) | >100 ns | >1 us \
         | batch p50 | batch p99 (ns per call) | fits done"
    );
    let mut quiet = Vec::new();
    let mut busy = Vec::new();
    for round in 0..rounds {
        let r = timed_acquires(&core, &timer, calls, ns);
        print_run(round, "off", &r, "-");
        quiet.push(r);

        let stop = Arc::new(AtomicBool::new(false));
        let (handle, fits) = refit_loop(stop.clone());
        let before = fits.load(Ordering::Relaxed);
        let r = timed_acquires(&core, &timer, calls, ns);
        let done = fits.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        handle.join().expect("refit thread panicked");
        print_run(round, "on", &r, &done.to_string());
        busy.push(r);
    }
    type Figure = fn(&Run) -> f64;
    let figures: [(&str, Figure); 6] = [
        ("p50", |r| r.p50),
        ("p99", |r| r.p99),
        ("p99.9", |r| r.p999),
        ("share > 1 us (%)", |r| 100.0 * r.over_1us),
        ("batch p50", |r| r.batch_p50),
        ("batch p99", |r| r.batch_p99),
    ];
    for (name, f) in figures {
        let (q, b) = (median_of(&quiet, f), median_of(&busy, f));
        let worst = |runs: &[Run]| runs.iter().map(f).fold(f64::MIN, f64::max);
        eprintln!(
            "acquire_p99: median {name}: without refits {q:.3}, with refits {b:.3}: {:+.1}% \
             (worst run: {:.3} without, {:.3} with)",
            if q > 0.0 { 100.0 * (b - q) / q } else { 0.0 },
            worst(&quiet),
            worst(&busy)
        );
    }
    // Pairs: each run with refits against the run without just before it.
    let risen = quiet
        .iter()
        .zip(&busy)
        .filter(|(q, b)| b.p99 > 1.1 * q.p99)
        .count();
    eprintln!("acquire_p99: runs whose p99 rose by more than 10% with refits: {risen} of {rounds}");
}
