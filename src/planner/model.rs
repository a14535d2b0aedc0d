//! Fitting a model off the tick on the per-minute series (DESIGN §6).
//! Once the history can hold out a backtest, the model is chosen by one
//! ([`super::backtest`]): seasonal naive, AutoETS, MSTL on the declared and
//! on the detected seasons, and EWMA are scored and the best kept. Before
//! that, the ladder by history length: EWMA until there are ten minutes of
//! history, seasonal-naive while a season is known but fewer than three
//! cycles are in, AutoETS without seasons, then MSTL (seasons configured or
//! detected) with an additive ETS trend. Every step falls back to the one
//! below on any error, so short, constant, gappy or NaN-prone series never
//! fail a tick.
//!
//! A fit is expensive (FORECASTING.md: ~0.7 ms for MSTL on 360 points, 8×
//! that in debug builds), so its output is cached as a run of per-minute
//! means and the forecaster corrects it online between refits.

use std::sync::OnceLock;

use augurs::ets::{AutoETS, FittedAutoETS};
use augurs::mstl::{FittedTrendModel, MSTLModel, TrendModel};
use augurs::seasons::{Detector, PeriodogramDetector};
use augurs::{Fit, Predict};

use super::backtest::{self, Choice};

/// Which model produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Ewma,
    SeasonalNaive,
    Ets,
    Mstl,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Ewma => "ewma",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::Ets => "autoets",
            ModelKind::Mstl => "mstl",
        }
    }
}

/// Fewest minutes before anything but EWMA is fitted.
pub const MIN_MINUTES: usize = 10;
/// Cycles of a season needed before MSTL uses it (fewer over-fit).
pub const MIN_CYCLES: usize = 3;
/// Longest history a fit looks at: cost grows with it.
pub const MAX_FIT_MINUTES: usize = 4 * 1440;
/// Cycles of the longest season an MSTL fit looks at (more adds cost, not
/// accuracy), and minutes an ETS fit looks at (a trend model needs recent
/// history only).
const FIT_CYCLES: usize = 4;
const ETS_MINUTES: usize = 360;
/// Season lengths (minutes) detected periods snap to: hour, day, week.
const KNOWN_SEASONS: [usize; 3] = [60, 1440, 10_080];

/// A fitted model's forecast: the mean rate of each minute after the last
/// minute it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub kind: ModelKind,
    /// Seasons (minutes) the model used.
    pub seasons: Vec<usize>,
    pub means: Vec<f64>,
    /// The model's backtest error (MASE), if a backtest chose it.
    pub error: Option<f64>,
    /// Whether this fit scored the candidates (else it refit a kept
    /// choice, or the history was too short and the ladder chose).
    pub scored: bool,
    /// Whether the fit's AAN trend (AutoETS, or MSTL's trend) is damped,
    /// as its search chose; `None` for models without one.
    pub damped: Option<bool>,
}

/// What to fit: the per-minute demand (oldest first), seasons from the
/// policy (minutes; empty: detect), and how many minutes to forecast.
#[derive(Debug, Clone)]
pub struct FitJob {
    pub series: Vec<f64>,
    pub seasons: Vec<usize>,
    pub steps: usize,
    /// A choice to refit without scoring again (ignored if the history no
    /// longer supports it).
    pub keep: Option<Choice>,
}

/// Fits the best model the history allows. `None`: stay on EWMA.
pub fn fit(job: &FitJob) -> Option<Fitted> {
    let start = job.series.len().saturating_sub(MAX_FIT_MINUTES);
    let y: Vec<f64> = job.series[start..]
        .iter()
        .map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 })
        .collect();
    if y.len() < MIN_MINUTES {
        return None;
    }
    if let Some(kept) = &job.keep
        && let Some(trend) = kept.candidate.fit(&y, job.steps, kept.damped)
    {
        return Some(Fitted {
            kind: kept.candidate.kind,
            seasons: kept.candidate.seasons.clone(),
            means: trend.means,
            error: Some(kept.error),
            scored: false,
            damped: trend.damped,
        });
    }
    if let Some((choice, means)) = backtest::choose(&y, &job.seasons, job.steps) {
        return Some(Fitted {
            kind: choice.candidate.kind,
            seasons: choice.candidate.seasons,
            means,
            error: Some(choice.error),
            scored: true,
            damped: choice.damped,
        });
    }
    ladder(&y, &job.seasons, job.steps)
}

/// The model by history length alone, for histories too short to backtest.
fn ladder(y: &[f64], declared: &[usize], steps: usize) -> Option<Fitted> {
    let seasons = if declared.is_empty() {
        detect_seasons(y)
    } else {
        declared.to_vec()
    };
    let usable = usable_seasons(&seasons, y.len());
    if let Some(fit) = mstl_fit(y, &usable, steps, None) {
        return Some(Fitted {
            kind: ModelKind::Mstl,
            seasons: usable,
            means: fit.means,
            error: None,
            scored: false,
            damped: fit.damped,
        });
    }
    // A season with one or two cycles in: repeat the last cycle.
    if let Some(&p) = seasons.iter().filter(|&&p| p >= 2 && y.len() >= p).max() {
        return Some(Fitted {
            kind: ModelKind::SeasonalNaive,
            seasons: vec![p],
            means: seasonal_naive(y, p, steps),
            error: None,
            scored: false,
            damped: None,
        });
    }
    ets(y, steps, None).map(|fit| Fitted {
        kind: ModelKind::Ets,
        seasons: Vec::new(),
        means: fit.means,
        error: None,
        scored: false,
        damped: fit.damped,
    })
}

/// The seasons of `seasons` MSTL can fit on `n` minutes: at least
/// [`MIN_CYCLES`] cycles of each in.
pub(super) fn usable_seasons(seasons: &[usize], n: usize) -> Vec<usize> {
    seasons
        .iter()
        .copied()
        .filter(|&p| p >= 2 && n >= MIN_CYCLES * p)
        .collect()
}

/// The last cycle of period `p` (`y` holds at least one), repeated over
/// `steps` minutes.
pub(super) fn seasonal_naive(y: &[f64], p: usize, steps: usize) -> Vec<f64> {
    let cycle = &y[y.len() - p..];
    (0..steps).map(|i| cycle[i % p]).collect()
}

/// A fit's forecast: the mean of each minute after the history, and
/// whether its AAN trend is damped (`None`: the model has no such trend).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub means: Vec<f64>,
    pub damped: Option<bool>,
}

fn clean(forecast: Vec<f64>) -> Option<Vec<f64>> {
    forecast
        .iter()
        .all(|v| v.is_finite())
        .then(|| forecast.into_iter().map(|v| v.max(0.0)).collect())
}

/// The AAN trend models to search: both dampings (the lower AICc wins)
/// when `damped` is `None`, else that one alone. A kept refit passes the
/// damping its scoring refit chose: the damped fit optimises five
/// parameters, not four, and was most of a kept AutoETS refit's cost.
fn aan(damped: Option<bool>) -> Option<AutoETS> {
    let search = AutoETS::new(1, "AAN").ok()?;
    match damped {
        None => Some(search),
        Some(d) => search.damped(d).ok(),
    }
}

/// MSTL's trend model: AAN (additive error and trend) fitted on the last
/// `points` of the trend only ([`ETS_MINUTES`] of minutes, as many coarse
/// means as span them), with the damping fixed or searched as [`aan`]
/// says. The decomposition still sees every cycle; a trend forecast needs
/// recent history, and fitting it on four days instead costs 7× more (50
/// ms against 7 ms for seasons [1h, 1d]) for the same error
/// (benches/planner/fit.rs, `fit_alternative`).
#[derive(Debug)]
pub struct TailTrend {
    points: usize,
    damped: Option<bool>,
    /// The damping the last fit chose (MSTL keeps the fitted trend opaque).
    chose: OnceLock<bool>,
}

impl TailTrend {
    pub fn new(points: usize, damped: Option<bool>) -> Self {
        Self {
            points,
            damped,
            chose: OnceLock::new(),
        }
    }
}

impl TrendModel for TailTrend {
    fn name(&self) -> std::borrow::Cow<'_, str> {
        "AAN on the recent trend".into()
    }

    fn fit(
        &self,
        y: &[f64],
    ) -> Result<
        Box<dyn FittedTrendModel + Sync + Send>,
        Box<dyn std::error::Error + Send + Sync + 'static>,
    > {
        let search = aan(self.damped).ok_or("no AAN trend model")?;
        let fitted = search.fit(&y[y.len().saturating_sub(self.points)..])?;
        // Each fit builds its own TailTrend: set once.
        let _ = self.chose.set(fitted.model().damped());
        Ok(Box::new(TailTrendFitted(fitted)))
    }
}

/// A fitted [`TailTrend`]: augurs' own wrapper of a fitted AutoETS is
/// private, and [`TailTrend`] must read the damping before boxing it.
#[derive(Debug)]
struct TailTrendFitted(FittedAutoETS);

impl FittedTrendModel for TailTrendFitted {
    fn predict_inplace(
        &self,
        horizon: usize,
        level: Option<f64>,
        forecast: &mut augurs::Forecast,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.0.predict_inplace(horizon, level, forecast)?)
    }

    fn predict_in_sample_inplace(
        &self,
        level: Option<f64>,
        forecast: &mut augurs::Forecast,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.0.predict_in_sample_inplace(level, forecast)?)
    }

    fn training_data_size(&self) -> Option<usize> {
        Some(self.0.training_data_size())
    }
}

/// Seasons at least this long (minutes) are fitted on 3-minute means: a
/// daily cycle then has 480 points instead of 1,440, the fit costs 4.5 ms
/// instead of 7.2 ms for seasons [1h, 1d] over 4 days, and its error is no
/// worse (MAE 5.33 against 5.45 over the next 14 minutes, the averaging
/// removes noise; benches/planner/fit.rs `fit_alternative`). The forecast is
/// repeated back to minutes.
const COARSE_FROM: usize = 720;
const COARSE: usize = 3;

/// MSTL on `seasons` (none: `None`), over the last [`FIT_CYCLES`] cycles
/// of the longest, its trend's damping fixed or searched as [`aan`] says.
pub(super) fn mstl_fit(
    y: &[f64],
    seasons: &[usize],
    steps: usize,
    damped: Option<bool>,
) -> Option<Projection> {
    let longest = *seasons.iter().max()?;
    let y = &y[y.len().saturating_sub(FIT_CYCLES * longest)..];
    if longest < COARSE_FROM {
        return mstl(y, seasons, steps, TailTrend::new(ETS_MINUTES, damped));
    }
    // Whole buckets of COARSE minutes, ending at the newest minute.
    let y = &y[y.len() % COARSE..];
    let coarse: Vec<f64> = y
        .chunks(COARSE)
        .map(|c| c.iter().sum::<f64>() / COARSE as f64)
        .collect();
    let periods: Vec<usize> = seasons
        .iter()
        .map(|p| p / COARSE)
        .filter(|p| *p >= 2)
        .collect();
    // The trend over the same minutes as at full resolution: 360 coarse
    // points would span 18 hours, and the trend fit is most of the cost.
    let fit = mstl(
        &coarse,
        &periods,
        steps.div_ceil(COARSE),
        TailTrend::new(ETS_MINUTES / COARSE, damped),
    )?;
    Some(Projection {
        means: fit
            .means
            .iter()
            .flat_map(|m| std::iter::repeat_n(*m, COARSE))
            .take(steps)
            .collect(),
        damped: fit.damped,
    })
}

fn mstl(y: &[f64], seasons: &[usize], steps: usize, trend: TailTrend) -> Option<Projection> {
    let model = MSTLModel::new(seasons.to_vec(), trend);
    let fitted = model.fit(y).ok()?;
    let means = clean(fitted.predict(steps, None).ok()?.point)?;
    Some(Projection {
        means,
        damped: model.trend_model().chose.get().copied(),
    })
}

/// AutoETS `AAN` on the last [`ETS_MINUTES`] of `y`, its damping fixed or
/// searched as [`aan`] says.
pub(super) fn ets(y: &[f64], steps: usize, damped: Option<bool>) -> Option<Projection> {
    let y = &y[y.len().saturating_sub(ETS_MINUTES)..];
    let fitted = aan(damped)?.fit(y).ok()?;
    let chose = fitted.model().damped();
    Some(Projection {
        means: clean(fitted.predict(steps, None).ok()?.point)?,
        damped: Some(chose),
    })
}

/// Periodogram detection, snapped to known season lengths (detected periods
/// are FFT bins: a 60-step cycle comes back as 57 or 64).
pub fn detect_seasons(y: &[f64]) -> Vec<usize> {
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / y.len().max(1) as f64;
    // Empty, constant or all-zero series: the detector panics or invents
    // dozens of periods.
    if y.len() < 2 * MIN_CYCLES * KNOWN_SEASONS[0] || var <= f64::EPSILON {
        return Vec::new();
    }
    let detector = PeriodogramDetector::builder()
        .max_period((y.len() / MIN_CYCLES) as u32)
        .build();
    // The periodogram does not remove the mean itself; left in, it drowns
    // a plain cycle at a third of history lengths.
    let centred: Vec<f64> = y.iter().map(|v| v - mean).collect();
    let mut found: Vec<usize> = detector
        .detect(&centred)
        .into_iter()
        .filter_map(|p| {
            KNOWN_SEASONS
                .iter()
                .copied()
                .find(|&k| (p as f64 - k as f64).abs() <= 0.1 * k as f64)
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

#[cfg(test)]
mod tests;
