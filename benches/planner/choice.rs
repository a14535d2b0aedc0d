//! `fit_choice`: what choosing a model by backtest costs. A scoring refit
//! (`keep: None`) fits every candidate at every origin and then the
//! winner; a kept refit (the next `RESCORE_MINUTES − 1` minutes) fits the
//! winner alone, with the trend damping the scoring refit chose. Prints
//! both, a kept refit that searches the damping again (as before it was
//! fixed), and the amortised cost per refit, as series kept fresh each
//! minute by one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use prescient::planner::backtest::{self, Candidate, Choice, RESCORE_MINUTES};
use prescient::planner::model::{self, FitJob};

use crate::demand::{daily_series, flat_series, seasonal_series};
use crate::{STEPS, full_run};

/// Mean seconds of one `model::fit(job)` over `runs` calls.
fn mean_cost(job: &FitJob, runs: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..runs {
        black_box(model::fit(black_box(job)));
    }
    started.elapsed().as_secs_f64() / runs as f64
}

/// Prints each candidate's backtest cost on `job` (as `backtest::choose`
/// scores them), so the expensive ones are named.
fn candidate_costs(label: &str, job: &FitJob, runs: u32) {
    let y = &job.series[job.series.len().saturating_sub(model::MAX_FIT_MINUTES)..];
    let h = backtest::holdout(job.steps);
    let Some(shortest) = y.len().checked_sub(backtest::ORIGINS * h) else {
        return;
    };
    let detected = model::detect_seasons(y);
    for c in backtest::candidates(shortest, &job.seasons, &detected) {
        let started = Instant::now();
        let mut error = None;
        for _ in 0..runs {
            error = black_box(backtest::score(black_box(&c), y, h));
        }
        let cost = started.elapsed().as_secs_f64() / runs as f64;
        eprintln!(
            "fit_choice: {label}/{}: scoring {} {:?}: {:.2} ms (MASE {:.3})",
            y.len(),
            c.kind.as_str(),
            c.seasons,
            cost * 1e3,
            error.unwrap_or(f64::NAN),
        );
    }
}

pub fn fit_choices(c: &mut Criterion) {
    type Shape = fn(usize, u64) -> Vec<f64>;
    let cases: [(&str, Shape, Vec<usize>, usize); 5] = [
        ("seasons_60", seasonal_series, vec![60], 1440),
        (
            "seasons_60",
            seasonal_series,
            vec![60],
            model::MAX_FIT_MINUTES,
        ),
        ("detect_seasonal", seasonal_series, vec![], 1440),
        ("detect_flat", flat_series, vec![], 1440),
        (
            "seasons_60_1440",
            daily_series,
            vec![60, 1440],
            model::MAX_FIT_MINUTES,
        ),
    ];
    let runs = if full_run() { 20 } else { 1 };
    let mut g = c.benchmark_group("fit_choice");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (label, shape, seasons, len) in cases {
        let scoring = FitJob {
            series: shape(len, len as u64),
            seasons,
            steps: STEPS,
            keep: None,
        };
        candidate_costs(label, &scoring, runs);
        let Some(chosen) = model::fit(&scoring) else {
            eprintln!("fit_choice: {label}/{len}: no model");
            continue;
        };
        let kept = FitJob {
            keep: Some(Choice {
                candidate: Candidate {
                    kind: chosen.kind,
                    seasons: chosen.seasons.clone(),
                },
                error: chosen.error.unwrap_or(0.0),
                damped: chosen.damped,
            }),
            ..scoring.clone()
        };
        // A kept refit as it was before it fixed the trend's damping:
        // searching both again, as the scoring refit does.
        let searching = FitJob {
            keep: kept.keep.clone().map(|k| Choice { damped: None, ..k }),
            ..kept.clone()
        };
        let scored_s = mean_cost(&scoring, runs);
        let (kept_s, searching_s) = (mean_cost(&kept, runs), mean_cost(&searching, runs));
        let r = RESCORE_MINUTES as f64;
        let amortised = |kept_s: f64| (scored_s + (r - 1.0) * kept_s) / r;
        eprintln!(
            "fit_choice: {label}/{len}: chose {} {:?} (backtest MASE {:.3}, damped {:?}); scoring \
             refit {:.2} ms, kept refit {:.2} ms (searching the damping {:.2} ms), amortised over \
             {RESCORE_MINUTES} min {:.2} ms = {:.0} series fresh each minute per core (searching \
             {:.2} ms = {:.0})",
            chosen.kind.as_str(),
            chosen.seasons,
            chosen.error.unwrap_or(f64::NAN),
            chosen.damped,
            scored_s * 1e3,
            kept_s * 1e3,
            searching_s * 1e3,
            amortised(kept_s) * 1e3,
            60.0 / amortised(kept_s),
            amortised(searching_s) * 1e3,
            60.0 / amortised(searching_s),
        );
        for (what, job) in [("scoring", &scoring), ("kept", &kept)] {
            g.bench_with_input(
                BenchmarkId::new(format!("{label}_{what}"), len),
                job,
                |b, job| b.iter(|| black_box(model::fit(black_box(job)))),
            );
        }
    }
    g.finish();
}
