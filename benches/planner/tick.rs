//! `planner_tick`, `planner_tick_metrics`: one `Planner::tick` over a
//! fleet of series, without and with metrics.

use std::f64::consts::PI;
use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use prescient::admission::{AcquireRequest, Admission, AdmissionConfig, Decision};
use prescient::clock::{Clock, ManualClock};
use prescient::metrics::Metrics;
use prescient::planner::{Planner, PlannerConfig};
use prescient::policy::Policy;

use crate::demand::Rng;
use crate::full_run;
use crate::heap::heap_growth;
use crate::report::percentile;

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
pub fn planner_tick(c: &mut Criterion) {
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
