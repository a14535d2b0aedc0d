//! Model choice by backtest (DESIGN §6): a scoring refit fits every
//! candidate the history allows on the history minus its last minutes,
//! forecasts those minutes, and keeps the candidate with the lowest error
//! scaled by the naive one (MASE), over [`ORIGINS`] rolling origins. The
//! choice is then kept, refitting only it, for [`RESCORE_MINUTES`] (or
//! until the forecast drifts): scoring fits each expensive candidate
//! (AutoETS, MSTL) once per origin, several times a plain refit's cost
//! (docs/performance.md, `fit_choice`). A kept refit also fixes the
//! damping of the candidate's AAN trend to the one its scoring refit
//! chose, instead of fitting both and keeping the better.
//!
//! Candidates are tried simplest first and a later one must beat the best
//! so far by [`MARGIN`]: on a near tie the cheaper, less over-fitted model
//! wins. Nothing here reads a clock, so replays choose alike.

use super::model::{self, MIN_CYCLES, MIN_MINUTES, ModelKind, Projection};

/// Rolling origins scored: each holds out the minutes just before the
/// previous one's. With [`MARGIN`], chosen on 15 seeds of 600 minutes
/// (the unit tests' shapes, a season of 60 declared): with 2 origins and a
/// 5% margin, flat noise got a seasonal model on 2 seeds and a random walk
/// on 3; with 4 and 10%, flat noise on none and a random walk on 2 (an
/// MSTL whose season is small); seasonal series got one on all 15 both ways.
pub const ORIGINS: usize = 4;
/// Share by which a more complex candidate must beat the best simpler one.
pub const MARGIN: f64 = 0.1;
/// Minutes a choice is kept (refitting only the chosen model) before the
/// candidates are scored again. 30, not 10: scoring costs 4-9 fits, and
/// amortised over 10 minutes a 4-day hourly series took 7.3 ms a minute
/// (8,200 series per core-minute, under the 10,000 the planner promises);
/// over 30, 5.4 ms (`cargo bench --bench planner -- fit_choice`).
pub const RESCORE_MINUTES: u64 = 30;
/// Smoothing of the EWMA candidate, per minute.
const EWMA_ALPHA: f64 = 0.3;

/// A model the planner can fit: its kind and the seasons (minutes) it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub kind: ModelKind,
    pub seasons: Vec<usize>,
}

/// A backtest's outcome: the candidate kept, its error (MASE, mean over
/// the origins; below 1 beats "same as last minute"), and whether the AAN
/// trend of its fit on the whole history is damped (AutoETS, MSTL). Kept
/// refits fit that damping alone, re-estimating the parameters and the
/// state but not searching the two variants again (`None`: search).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub candidate: Candidate,
    pub error: f64,
    pub damped: Option<bool>,
}

impl Candidate {
    fn new(kind: ModelKind, seasons: Vec<usize>) -> Self {
        Self { kind, seasons }
    }

    /// Whether `n` minutes of history are enough for this candidate: one
    /// cycle for seasonal naive, [`MIN_MINUTES`] for AutoETS,
    /// [`MIN_CYCLES`] cycles of every season for MSTL.
    pub fn supports(&self, n: usize) -> bool {
        match self.kind {
            ModelKind::Ewma => n >= 1,
            ModelKind::SeasonalNaive => matches!(self.seasons[..], [p] if p >= 2 && n >= p),
            ModelKind::Ets => n >= MIN_MINUTES,
            ModelKind::Mstl => {
                !self.seasons.is_empty()
                    && self.seasons.iter().all(|&p| p >= 2 && n >= MIN_CYCLES * p)
            }
        }
    }

    /// The mean of each of the `steps` minutes after `y` (finite, ≥ 0);
    /// `None` if `y` cannot support the candidate or its fit failed.
    pub fn forecast(&self, y: &[f64], steps: usize) -> Option<Vec<f64>> {
        self.fit(y, steps, None).map(|p| p.means)
    }

    /// [`Self::forecast`], with the trend damping fixed (`Some`) or searched
    /// (`None`), and the damping the fit used.
    pub fn fit(&self, y: &[f64], steps: usize, damped: Option<bool>) -> Option<Projection> {
        if !self.supports(y.len()) {
            return None;
        }
        let plain = |means| {
            Some(Projection {
                means,
                damped: None,
            })
        };
        match self.kind {
            ModelKind::Ewma => {
                let mut level = y[0];
                for v in &y[1..] {
                    level += EWMA_ALPHA * (v - level);
                }
                plain(vec![level; steps])
            }
            ModelKind::SeasonalNaive => plain(model::seasonal_naive(y, self.seasons[0], steps)),
            ModelKind::Ets => model::ets(y, steps, damped),
            ModelKind::Mstl => model::mstl_fit(y, &self.seasons, steps, damped),
        }
    }
}

/// Minutes held out at each origin: the minutes the planner reads of a fit
/// before its next refit (half the `steps` it asks for: refit interval,
/// horizon and a margin).
pub fn holdout(steps: usize) -> usize {
    (steps / 2).clamp(2, 30)
}

/// The candidates `n` minutes support, simplest first: EWMA, seasonal
/// naive per season, AutoETS, MSTL on the declared seasons, MSTL on the
/// detected ones (when they differ).
pub fn candidates(n: usize, declared: &[usize], detected: &[usize]) -> Vec<Candidate> {
    let mut seasons: Vec<usize> = declared.iter().chain(detected).copied().collect();
    seasons.sort_unstable();
    seasons.dedup();
    let mut out = vec![Candidate::new(ModelKind::Ewma, Vec::new())];
    out.extend(
        seasons
            .iter()
            .map(|&p| Candidate::new(ModelKind::SeasonalNaive, vec![p])),
    );
    out.push(Candidate::new(ModelKind::Ets, Vec::new()));
    for set in [declared, detected] {
        // The seasons with enough cycles in, as the ladder uses them.
        let mstl = Candidate::new(ModelKind::Mstl, model::usable_seasons(set, n));
        if !out.contains(&mstl) {
            out.push(mstl);
        }
    }
    out.retain(|c| c.supports(n));
    out
}

/// `c`'s MASE on `y` at [`ORIGINS`] origins `h` minutes apart: at each,
/// fit on what came before, forecast `h` minutes, and divide the mean
/// absolute error by the one-step naive error inside the fitted part.
/// `None` if any fit fails or the shortest fitted part cannot support `c`.
pub fn score(c: &Candidate, y: &[f64], h: usize) -> Option<f64> {
    let mut total = 0.0;
    for k in 0..ORIGINS {
        let origin = y.len().checked_sub((k + 1) * h)?;
        let (train, test) = (&y[..origin], &y[origin..origin + h]);
        let forecast = c.forecast(train, h)?;
        let mae = mean_abs(forecast.iter().zip(test).map(|(f, t)| f - t));
        let naive = mean_abs(train.windows(2).map(|w| w[1] - w[0]));
        total += if mae == 0.0 {
            0.0
        } else {
            mae / naive.max(1e-9)
        };
    }
    Some(total / ORIGINS as f64)
}

fn mean_abs(errors: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = errors.fold((0.0, 0usize), |(s, n), e| (s + e.abs(), n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Scores the candidates `y` (cleaned, oldest first) supports and returns
/// the best with its forecast of `steps` minutes after `y`. `None` when
/// `y` is too short to hold out [`ORIGINS`] windows and still fit (the
/// ladder decides then).
pub fn choose(y: &[f64], declared: &[usize], steps: usize) -> Option<(Choice, Vec<f64>)> {
    let h = holdout(steps);
    let shortest = y.len().checked_sub(ORIGINS * h)?;
    if shortest < MIN_MINUTES {
        return None;
    }
    let detected = model::detect_seasons(y);
    let mut best: Option<Choice> = None;
    for c in candidates(shortest, declared, &detected) {
        let Some(error) = score(&c, y, h) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|b| error < b.error * (1.0 - MARGIN))
        {
            best = Some(Choice {
                candidate: c,
                error,
                damped: None,
            });
        }
    }
    let mut best = best?;
    match best.candidate.fit(y, steps, None) {
        Some(fit) => {
            best.damped = fit.damped;
            Some((best, fit.means))
        }
        // Scored on less history but failed on all of it: EWMA never fails.
        None => {
            let ewma = Candidate::new(ModelKind::Ewma, Vec::new());
            let error = score(&ewma, y, h)?;
            let means = ewma.forecast(y, steps)?;
            Some((
                Choice {
                    candidate: ewma,
                    error,
                    damped: None,
                },
                means,
            ))
        }
    }
}

#[cfg(test)]
mod tests;
