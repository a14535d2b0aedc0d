//! Costs of the planner (DESIGN §6; issue 4, point 10):
//!
//! * `history_memory`: bytes of one series' history at its bound, as
//!   `History::memory()` reports them and as the allocator sees them.
//! * `acquire_p99`: latency of single `try_acquire` calls, each timed on its
//!   own, with no planner and while a second thread fits models without a
//!   pause (refits at full budget). Not a criterion measurement: 1,000,000
//!   calls per run, runs alternating, percentiles printed.
//! * `fit`: one `model::fit` (fit + predict) by model and history length,
//!   on synthetic per-minute demand: fits per second per core. Before it,
//!   a check (not a timing) of how often season detection finds a known
//!   60-minute cycle.
//! * `fit_alternative`: cheaper fits for hour + day seasons, straight on
//!   augurs, each with its forecast error (what the planner could run).
//! * `planner_tick`, `planner_tick_metrics`: one `Planner::tick` with 1,000
//!   and 10,000 series after some minutes of history, refits on the worker
//!   thread; without metrics (tests, simulator) and feeding `Metrics` as the
//!   daemon does.
//!
//! `cargo bench --bench planner`; results and how to read them are in
//! `docs/performance.md`. Run without `--bench` (e.g. `cargo test
//! --benches`), every group shrinks to a smoke test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::f64::consts::PI;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::seasons::{Detector, PeriodogramDetector};
use augurs::{Fit, Predict};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use prescient::admission::{AcquireRequest, Admission, AdmissionConfig, Decision};
use prescient::clock::{Clock, ManualClock, SystemClock};
use prescient::metrics::Metrics;
use prescient::planner::history::{History, MINUTES_KEPT, Sample, TICKS_KEPT};
use prescient::planner::model::{self, FitJob, MAX_FIT_MINUTES, MIN_CYCLES};
use prescient::planner::{Planner, PlannerConfig};
use prescient::policy::Policy;

/// Counts live heap bytes (requested sizes, i.e. `Vec` capacity, not
/// length) while `COUNTING` is on; off, it costs one relaxed load.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` with the counter on; returns its result and the growth of the
/// live heap (every thread's allocations count while it runs).
fn heap_growth<T>(f: impl FnOnce() -> T) -> (T, isize) {
    COUNTING.store(true, Ordering::SeqCst);
    let before = LIVE.load(Ordering::SeqCst);
    let out = f();
    let grown = LIVE.load(Ordering::SeqCst) - before;
    COUNTING.store(false, Ordering::SeqCst);
    (out, grown)
}

/// `cargo bench` passes `--bench`; without it (`cargo test --benches`)
/// every group runs a small smoke version.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Minutes forecast per fit, as the planner asks with its defaults
/// (`refit_every` 60 s, horizon 30 s): `(1 + 1 + 5) × 2`.
const STEPS: usize = 14;

/// xorshift64*: deterministic noise without a dependency.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f64 {
        2.0 * self.next_f64() - 1.0
    }
}

/// Per-minute demand with a 60-minute cycle (the "day" of a compressed
/// trace): level 100, swing ±40, a slight upward trend, ±10 uniform noise.
fn seasonal_series(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed | 1);
    (0..len)
        .map(|t| {
            let t = t as f64;
            100.0 + 40.0 * (2.0 * PI * t / 60.0).sin() + 0.002 * t + 10.0 * rng.signed()
        })
        .collect()
}

/// Per-minute demand with no cycle: level 100 with AR(1) noise.
fn flat_series(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed | 1);
    let mut x = 0.0;
    (0..len)
        .map(|_| {
            x = 0.7 * x + 10.0 * rng.signed();
            100.0 + x
        })
        .collect()
}

/// Per-minute demand with an hourly and a daily cycle (a real day): level
/// 100, ±40 over the hour, ±30 over the day, ±10 uniform noise.
fn daily_series(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed | 1);
    (0..len)
        .map(|t| {
            let t = t as f64;
            100.0
                + 40.0 * (2.0 * PI * t / 60.0).sin()
                + 30.0 * (2.0 * PI * t / 1440.0).sin()
                + 10.0 * rng.signed()
        })
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

// ---------------------------------------------------------------- memory

/// One history filled to its bound at a 1 s tick (an hour of ticks, 14 days
/// of minutes), and the same history after a postcard round trip (what a
/// restored snapshot holds).
fn history_memory(_: &mut Criterion) {
    let ticks = if full_run() {
        MINUTES_KEPT as u64 * 60
    } else {
        TICKS_KEPT as u64 * 2
    };
    let (h, heap) = heap_growth(|| {
        let mut h = History::default();
        let mut rng = Rng(7);
        for _ in 0..ticks {
            let v = 100.0 + 10.0 * rng.signed();
            h.record(
                Sample {
                    demand: v,
                    granted: v,
                    arrivals: v / 10.0,
                    ..Default::default()
                },
                60,
            );
        }
        h
    });
    let reported = h.memory();
    let bytes = postcard::to_stdvec(&h).expect("a history serializes");
    let (restored, restored_heap) =
        heap_growth(|| postcard::from_bytes::<History>(&bytes).expect("a history deserializes"));
    assert_eq!(restored, h);
    eprintln!(
        "history_memory: at the bound ({} tick samples, {} minute samples): \
         History::memory() = {reported} B ({:.1} KiB); live heap + struct = {} B ({:.1} KiB); \
         restored from a snapshot: {} B ({:.1} KiB)",
        h.tick_demand.len(),
        h.minute_demand.len(),
        reported as f64 / 1024.0,
        heap as usize + std::mem::size_of::<History>(),
        (heap as usize + std::mem::size_of::<History>()) as f64 / 1024.0,
        restored_heap as usize + std::mem::size_of::<History>(),
        (restored_heap as usize + std::mem::size_of::<History>()) as f64 / 1024.0,
    );
}

// ----------------------------------------------------------- acquire p99

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
const BATCH: usize = 100;

/// One run's figures, ns: percentiles of single calls (each timed on its
/// own, timer included), the share of slow calls, and percentiles of the
/// mean call of batches of `BATCH` (finer than the timer's 10 ns steps).
#[derive(Clone, Copy)]
struct Run {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    over_100ns: f64,
    over_1us: f64,
    batch_p50: f64,
    batch_p99: f64,
}

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

/// The median over runs of one figure.
fn median_of(runs: &[Run], figure: impl Fn(&Run) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(figure).collect();
    v.sort_unstable_by(f64::total_cmp);
    v[v.len() / 2]
}

fn print_run(round: usize, refits: &str, r: &Run, fits: &str) {
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

/// Acquire latency with no planner, then with a refit thread busy on the
/// other core; runs alternate so drift in the machine's load hits both
/// alike.
fn acquire_p99(_: &mut Criterion) {
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

// ------------------------------------------------------------------- fit

/// Fit cost by model and length, through `model::fit` as the planner
/// calls it (its fit windows included). Cases: seasons from the policy
/// (`[60]`), seasons detected on a series with a 60-minute cycle, seasons
/// detected on one with none (AutoETS), and hour + day seasons on a series
/// that has both, at the longest history the planner fits.
fn fits(c: &mut Criterion) {
    detection_check();
    let lengths = [60, 360, 1440, 3600, MAX_FIT_MINUTES];
    type Shape = fn(usize, u64) -> Vec<f64>;
    let cases: [(&str, Shape, Vec<usize>, &[usize]); 4] = [
        ("seasons_60", seasonal_series, vec![60], &lengths),
        ("detect_seasonal", seasonal_series, vec![], &lengths),
        ("detect_flat", flat_series, vec![], &lengths),
        (
            "seasons_60_1440",
            daily_series,
            vec![60, 1440],
            &[MAX_FIT_MINUTES],
        ),
    ];
    let mut g = c.benchmark_group("fit");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (label, shape, seasons, lens) in cases {
        for &len in lens {
            let job = FitJob {
                series: shape(len, len as u64),
                seasons: seasons.clone(),
                steps: STEPS,
            };
            match model::fit(&job) {
                Some(f) => eprintln!(
                    "fit: {label}/{len}: model {} seasons {:?}",
                    f.kind.as_str(),
                    f.seasons
                ),
                None => eprintln!("fit: {label}/{len}: no model (EWMA)"),
            }
            g.bench_with_input(BenchmarkId::new(label, len), &job, |b, job| {
                b.iter(|| black_box(model::fit(black_box(job))))
            });
        }
    }
    g.finish();
}

/// Not a timing: how often `model::detect_seasons` finds the 60-minute
/// cycle of `seasonal_series`, history lengths 6 h to 4 days in steps of an
/// hour, and how often augurs' detector finds it once the mean is taken
/// off the series (the detector does not centre the data: the zero
/// frequency leaks into its longest periods and can hide the real peak).
fn detection_check() {
    let lengths: Vec<usize> = (2 * MIN_CYCLES * 60..=MAX_FIT_MINUTES)
        .step_by(60)
        .collect();
    let mut missed = Vec::new();
    let mut missed_centred = Vec::new();
    for &len in &lengths {
        let y = seasonal_series(len, 5);
        if model::detect_seasons(&y) != [60] {
            missed.push(len);
        }
        let mean = y.iter().sum::<f64>() / len as f64;
        let centred: Vec<f64> = y.iter().map(|v| v - mean).collect();
        let found = PeriodogramDetector::builder()
            .max_period((len / MIN_CYCLES) as u32)
            .build()
            .detect(&centred);
        if !found.iter().any(|&p| p.abs_diff(60) <= 6) {
            missed_centred.push(len);
        }
    }
    eprintln!(
        "detect_seasons: the 60-minute cycle is missed at {} of {} history lengths \
         ({} to {} minutes, step 60): {missed:?}; with the series centred first: {} missed {missed_centred:?}",
        missed.len(),
        lengths.len(),
        lengths[0],
        lengths[lengths.len() - 1],
        missed_centred.len(),
    );
}

type Variant = fn(&[f64], usize) -> Vec<f64>;

/// MSTL + an AAN trend on the whole series (what `model::fit` ran before
/// its trend was fitted on the tail).
fn mstl_aan(y: &[f64], steps: usize) -> Vec<f64> {
    let trend = AutoETS::new(1, "AAN").expect("AAN is a valid spec");
    let fitted = MSTLModel::new(vec![60, 1440], trend.into_trend_model())
        .fit(y)
        .expect("MSTL fits");
    fitted.predict(steps, None).expect("MSTL predicts").point
}

fn mstl_tail_trend(y: &[f64], steps: usize) -> Vec<f64> {
    // The planner's own trend model (AAN on the last 360 minutes).
    let fitted = MSTLModel::new(vec![60, 1440], model::TailTrend)
        .fit(y)
        .expect("MSTL fits");
    fitted.predict(steps, None).expect("MSTL predicts").point
}

/// What the planner itself runs for seasons [1h, 1d].
fn planner_fit(y: &[f64], steps: usize) -> Vec<f64> {
    let job = FitJob {
        series: y.to_vec(),
        seasons: vec![60, 1440],
        steps,
    };
    model::fit(&job).expect("the planner fits").means
}

fn mstl_naive_trend(y: &[f64], steps: usize) -> Vec<f64> {
    let fitted = MSTLModel::naive(vec![60, 1440]).fit(y).expect("MSTL fits");
    fitted.predict(steps, None).expect("MSTL predicts").point
}

/// Cheaper fits for hour + day seasons on 4 days of minutes, straight on
/// augurs (what the planner could run instead), with their error over the
/// next `STEPS` minutes on 8 series (noise alone gives an MAE of 5.0).
fn fit_alternatives(c: &mut Criterion) {
    let variants: [(&str, Variant); 4] = [
        ("mstl_60_1440_aan_trend", mstl_aan),
        ("mstl_60_1440_aan_trend_last_360", mstl_tail_trend),
        ("mstl_60_1440_naive_trend", mstl_naive_trend),
        ("planner_fit_60_1440", planner_fit),
    ];
    let seeds = if full_run() { 8 } else { 1 };
    for (label, variant) in variants {
        let mut mae = 0.0;
        for seed in 1..=seeds {
            let full = daily_series(MAX_FIT_MINUTES + STEPS, seed);
            let (y, truth) = full.split_at(MAX_FIT_MINUTES);
            let forecast = variant(y, STEPS);
            mae += forecast
                .iter()
                .zip(truth)
                .map(|(f, t)| (f - t).abs())
                .sum::<f64>()
                / STEPS as f64;
        }
        eprintln!(
            "fit_alternative: {label}/{MAX_FIT_MINUTES}: MAE over the next {STEPS} minutes {:.2} ({seeds} series)",
            mae / seeds as f64
        );
    }
    let y = daily_series(MAX_FIT_MINUTES, MAX_FIT_MINUTES as u64);
    let mut g = c.benchmark_group("fit_alternative");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (label, variant) in variants {
        g.bench_with_input(BenchmarkId::new(label, MAX_FIT_MINUTES), &y, |b, y| {
            b.iter(|| black_box(variant(black_box(y), STEPS)))
        });
    }
    g.finish();
}

// ------------------------------------------------------------------ tick

/// N tenants on one rate resource, each with a reserve (default spec:
/// quantile 0.95, horizon 30 s, seasons detected), a core on a manual
/// clock, and a planner whose refits go to its worker thread.
struct Fleet {
    clock: Arc<ManualClock>,
    core: Arc<Admission>,
    planner: Planner,
    names: Vec<String>,
    second: u64,
    rng: Rng,
}

impl Fleet {
    /// `metrics`: feed a `Metrics` every tick, as the daemon does (tenant
    /// labels bounded at `max_tenants`); `None`: as tests and the simulator.
    fn new(n: usize, metrics: Option<usize>) -> Self {
        let names: Vec<String> = (0..n).map(|i| format!("t{i:05}")).collect();
        let mut yaml =
            String::from("resources:\n  api: { kind: rate, capacity: 1000000000000 }\ntenants:\n");
        for name in &names {
            yaml.push_str(&format!(
                "  {name}: {{ qos: gold, limits: {{ api: {{ guaranteed: 1, reserve: {{}} }} }} }}\n"
            ));
        }
        let policy = Policy::load_str(&yaml, "bench").expect("fleet policy is valid");
        let clock = Arc::new(ManualClock::new(0));
        let core = Arc::new(Admission::new(
            &policy,
            AdmissionConfig::default(),
            clock.clone(),
        ));
        let mut planner = Planner::new(
            core.clone(),
            &policy,
            PlannerConfig {
                inline_refits: false,
                ..PlannerConfig::default()
            },
        );
        if let Some(max_tenants) = metrics {
            planner = planner.with_metrics(Arc::new(Metrics::new(max_tenants)));
        }
        Self {
            clock,
            core,
            planner,
            names,
            second: 0,
            rng: Rng(3),
        }
    }

    /// One second of demand: each tenant asks once, an amount on a
    /// 60-minute cycle with its own phase, plus noise; then the clock moves.
    fn second(&mut self) {
        let now = self.clock.now();
        let minute = self.second as f64 / 60.0;
        for (i, name) in self.names.iter().enumerate() {
            let phase = i as f64 / self.names.len() as f64;
            let amount =
                20.0 + 10.0 * (2.0 * PI * (minute / 60.0 + phase)).sin() + 4.0 * self.rng.signed();
            let req = AcquireRequest {
                tenant: name,
                resource: "api",
                amount: amount.max(1.0) as u64,
                ..Default::default()
            };
            match self.core.try_acquire(&req, now) {
                Ok(Decision::Granted(_) | Decision::Denied(_)) => {}
                Err(e) => panic!("acquire failed: {e}"),
            }
        }
        self.clock.advance(Duration::from_secs(1));
        self.second += 1;
    }

    /// One timed tick.
    fn tick(&mut self) -> (Duration, prescient::planner::TickReport) {
        let now = self.clock.now();
        let start = Instant::now();
        let report = black_box(self.planner.tick(now));
        (start.elapsed(), report)
    }
}

/// A fleet of `n` series after `minutes` of demand and ticks, with what
/// the warm-up cost and what it left in memory printed.
fn warmed_fleet(label: &str, n: usize, minutes: u64, metrics: Option<usize>) -> Fleet {
    let started = Instant::now();
    let mut ticks = Vec::new();
    let mut refits = (0, 0);
    let (fleet, heap) = heap_growth(|| {
        let mut fleet = Fleet::new(n, metrics);
        for _ in 0..minutes * 60 {
            fleet.second();
            let (d, r) = fleet.tick();
            ticks.push(d.as_nanos() as u64);
            refits.0 += r.refits_started;
            refits.1 += r.refits_applied;
        }
        // What is held, not what is in flight: let the worker drain.
        thread::sleep(Duration::from_millis(200));
        fleet.second();
        fleet.tick();
        fleet
    });
    ticks.sort_unstable();
    eprintln!(
        "{label}: {n} series, warm-up {minutes} min ({} ticks) in {:.1} s: \
         tick p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; refits started {}, applied {}",
        ticks.len(),
        started.elapsed().as_secs_f64(),
        percentile(&ticks, 0.5) as f64 / 1e6,
        percentile(&ticks, 0.99) as f64 / 1e6,
        *ticks.last().expect("ticks ran") as f64 / 1e6,
        refits.0,
        refits.1
    );
    let history = fleet.planner.history_memory();
    eprintln!(
        "{label}: {n} series after warm-up: history_memory() {history} B = {} B/series; \
         heap grown by core + planner {heap} B = {} B/series",
        history / n,
        heap / n as isize
    );
    fleet
}

/// Tenant labels the daemon's metrics keep by default
/// (`metrics.max_tenants` in `config/prescient.yaml`).
const DAEMON_MAX_TENANTS: usize = 100;

/// One tick of the planner as tests and the simulator run it (no metrics),
/// and as the daemon runs it (metrics fed every tick).
fn planner_tick(c: &mut Criterion) {
    let sizes: &[(usize, u64)] = if full_run() {
        &[(1_000, 15), (10_000, 12)]
    } else {
        &[(100, 11)]
    };
    let configs: [(&str, Option<usize>); 2] = [
        ("planner_tick", None),
        ("planner_tick_metrics", Some(DAEMON_MAX_TENANTS)),
    ];
    for (label, metrics) in configs {
        let mut g = c.benchmark_group(label);
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(5));
        for &(n, warm_minutes) in sizes {
            // Built on first use, so a filter that skips this size skips
            // the warm-up too.
            let mut fleet: Option<Fleet> = None;
            let mut timed = Vec::new();
            let mut totals = (0, 0);
            g.bench_function(BenchmarkId::from_parameter(n), |b| {
                let fleet =
                    fleet.get_or_insert_with(|| warmed_fleet(label, n, warm_minutes, metrics));
                b.iter_custom(|iters| {
                    let mut sum = Duration::ZERO;
                    for _ in 0..iters {
                        fleet.second();
                        let (d, r) = fleet.tick();
                        assert_eq!(r.series, n);
                        sum += d;
                        timed.push(d.as_nanos() as u64);
                        totals.0 += r.refits_started;
                        totals.1 += r.refits_applied;
                    }
                    sum
                })
            });
            let Some(fleet) = fleet else { continue };
            timed.sort_unstable();
            eprintln!(
                "{label}: {n} series, {} timed ticks (minutes {}..{} of history): \
                 p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
                 refits started {}, applied {}",
                timed.len(),
                warm_minutes,
                fleet.second / 60,
                percentile(&timed, 0.5) as f64 / 1e6,
                percentile(&timed, 0.9) as f64 / 1e6,
                percentile(&timed, 0.99) as f64 / 1e6,
                *timed.last().expect("ticks ran") as f64 / 1e6,
                totals.0,
                totals.1
            );
        }
        g.finish();
    }
}

criterion_group!(
    benches,
    history_memory,
    acquire_p99,
    fits,
    fit_alternatives,
    planner_tick
);
criterion_main!(benches);
