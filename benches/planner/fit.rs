//! `fit` and `fit_alternative`: the cost of one model fit by model and
//! history length, and cheaper fits for hour + day seasons.

use std::hint::black_box;
use std::time::Duration;

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::seasons::{Detector, PeriodogramDetector};
use augurs::{Fit, Predict};
use criterion::{BenchmarkId, Criterion};
use prescient::planner::model::{self, FitJob, MAX_FIT_MINUTES, MIN_CYCLES};

use crate::demand::{daily_series, flat_series, seasonal_series};
use crate::{STEPS, full_run};

/// Fit cost by model and length, through `model::fit` as the planner
/// calls it (its fit windows included). Cases: seasons from the policy
/// (`[60]`), seasons detected on a series with a 60-minute cycle, seasons
/// detected on one with none (AutoETS), and hour + day seasons on a series
/// that has both, at the longest history the planner fits.
pub fn fits(c: &mut Criterion) {
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
                keep: None,
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
    let fitted = MSTLModel::new(vec![60, 1440], model::TailTrend::new(360, None))
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
        keep: None,
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
pub fn fit_alternatives(c: &mut Criterion) {
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
