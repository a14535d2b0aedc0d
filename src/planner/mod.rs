//! The planner: every tick it folds the core's demand counters into each
//! (tenant, resource) history, forecasts demand, and resizes the reserve
//! pools (DESIGN §2, §6). Data flow: tick → [`history`] → [`model`] (refits,
//! off the tick) → [`forecast`] (online) → [`sizing`] → pool sizes.
//!
//! The planner takes `now` as an argument like everything in the core, so
//! the daemon drives it from a thread on the system clock and tests (and the
//! simulator) drive the very same code tick by tick on a manual clock.

pub mod backtest;
mod export;
pub mod forecast;
pub mod history;
pub mod model;
mod refit;
pub mod ring;
mod series;
pub mod sizing;
pub mod snapshot;
mod tally;
mod tick;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::admission::Admission;
use crate::metrics::Metrics;
use crate::policy::{EventSpec, Policy};
use forecast::{Accuracy, Band};
use history::History;
use refit::Worker;
use series::Series;
pub use tick::TickReport;

/// How the planner runs.
#[derive(Debug, Clone)]
pub struct PlannerConfig {
    pub tick: Duration,
    /// A series is refit at least this often (once it has the history).
    pub refit_every: Duration,
    /// Share of one core refits may use, on average.
    pub refit_budget: f64,
    /// Early refit when the forecast's bias exceeds this share of the level.
    pub refit_threshold: f64,
    /// Minutes of forecast published per series (GetForecast points).
    pub published_minutes: usize,
    /// DESIGN §2's risk factor: a reserve whose forecast band is wider
    /// than its mean is shrunk by `mean ÷ width`.
    pub shrink_wide_bands: bool,
    /// Share of each reserve kept back from borrowers; 0 lends all its
    /// owner has not drawn (the measured best: docs/simulation.md).
    pub lend_hold_back: f64,
    /// A tenant that may borrow holds a reserve only this long after a
    /// denial: otherwise the shared pool serves it, and a reserve would
    /// only hold capacity from others.
    pub reserve_after_denial: Duration,
    /// Fit on the tick's own thread (tests, simulator: deterministic, each
    /// fit charged to the budget at a nominal cost, never a measured one)
    /// or on a worker thread (the daemon: a slow fit never delays a tick,
    /// and the budget is charged what fits really cost).
    pub inline_refits: bool,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            refit_every: Duration::from_secs(60),
            refit_budget: 0.75,
            refit_threshold: 0.25,
            published_minutes: 15,
            shrink_wide_bands: true,
            lend_hold_back: 0.0,
            reserve_after_denial: Duration::from_secs(600),
            inline_refits: false,
        }
    }
}

/// One point of a published forecast: the band of the demand rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: SystemTime,
    pub band: Band,
}

/// The published forecast of one (tenant, resource).
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastView {
    pub tenant: Arc<str>,
    pub resource: Arc<str>,
    /// Reserve in force (tokens/s or units).
    pub reserve: u64,
    /// Demand observed in the last tick (per second).
    pub demand: f64,
    pub model: &'static str,
    pub seasons: Vec<usize>,
    pub points: Vec<Point>,
    pub accuracy: Accuracy,
}

/// Everything the planner published at one tick.
#[derive(Debug, Clone, Default)]
pub struct Forecasts {
    pub tick: u64,
    pub at: Option<SystemTime>,
    pub series: BTreeMap<(Arc<str>, Arc<str>), ForecastView>,
}

impl Forecasts {
    pub fn get(&self, tenant: &str, resource: &str) -> Option<&ForecastView> {
        self.series.get(&(Arc::from(tenant), Arc::from(resource)))
    }
}

/// One instance's wants for one resource, as it tells the others: per
/// tenant, `[want, used]` per second (units for concurrency): the
/// forecast's upper bound over the tenant's horizon, and the demand it saw
/// last tick.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wants {
    #[serde(rename = "t")]
    pub tenants: BTreeMap<String, [f64; 2]>,
    /// Set by a daemon that is stopping: the others leave it out of their
    /// targets at once instead of when its lease expires.
    #[serde(rename = "l", default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
}

impl Wants {
    /// What `tenant` may need here: the larger of want and use.
    pub fn demand(&self, tenant: &str) -> f64 {
        self.tenants
            .get(tenant)
            .map_or(0.0, |[want, used]| want.max(*used).max(0.0))
    }
}

/// The planner of one daemon (or one simulation).
pub struct Planner {
    core: Arc<Admission>,
    config: PlannerConfig,
    events: Vec<EventSpec>,
    series: Vec<Series>,
    known: HashSet<(u64, usize)>,
    ticks_per_minute: u32,
    ticks: u64,
    worker: Option<Worker>,
    /// Mean cost of one fit (s), to keep refits within the budget.
    fit_cost: f64,
    /// Refit credit (s of CPU) accumulated from the budget.
    credit: f64,
    published: tokio::sync::watch::Sender<Arc<Forecasts>>,
    /// Restored histories waiting for their series to appear.
    restored: std::collections::HashMap<(String, String), History>,
    metrics: Option<Arc<Metrics>>,
    /// Leases reclaimed as of the last tick (the metric counts the rest).
    reclaimed: u64,
    /// Uncharged overuse as of the last tick (the metric counts the rest).
    uncharged: u64,
    /// Where each series is in `series`, by its key (refits in flight
    /// find their series after a reload removed others).
    by_key: std::collections::HashMap<u64, usize>,
    next_key: u64,
}

impl Planner {
    pub fn new(core: Arc<Admission>, policy: &Policy, config: PlannerConfig) -> Self {
        let tick = config.tick.max(Duration::from_millis(1));
        let ticks_per_minute = (60.0 / tick.as_secs_f64()).round().max(1.0) as u32;
        let worker = (!config.inline_refits).then(Worker::start);
        let (published, _) = tokio::sync::watch::channel(Arc::new(Forecasts::default()));
        Self {
            core,
            events: policy.events.clone(),
            series: Vec::new(),
            known: HashSet::new(),
            ticks_per_minute,
            ticks: 0,
            worker,
            fit_cost: refit::NOMINAL_FIT_COST,
            credit: 0.0,
            published,
            config,
            restored: Default::default(),
            metrics: None,
            reclaimed: 0,
            uncharged: 0,
            by_key: Default::default(),
            next_key: 0,
        }
    }

    /// Feeds `metrics` every tick (the daemon; tests and the simulator
    /// need none).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Takes saved histories; each is used when its series appears (now
    /// for listed tenants, on first use for tenants from defaults). Series
    /// the policy no longer has are dropped. Returns how many were taken.
    pub fn restore(&mut self, saved: Vec<snapshot::SavedSeries>) -> usize {
        let n = saved.len();
        self.restored = saved
            .into_iter()
            .map(|s| ((s.tenant, s.resource), s.history))
            .collect();
        self.sync_series();
        n
    }

    /// Writes every series' history to `dir` (atomically).
    pub fn save(&self, dir: &std::path::Path) -> std::io::Result<usize> {
        let registry = self.core.registry();
        let series: Vec<snapshot::SeriesRef<'_>> = self
            .series
            .iter()
            .map(|s| snapshot::SeriesRef {
                tenant: &s.tenant.name,
                resource: &registry.resources[s.resource].name,
                history: &s.history,
            })
            .collect();
        snapshot::save(dir, &series)
    }

    /// Forecasts as of the last tick; `changed()` fires every tick.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Forecasts>> {
        self.published.subscribe()
    }

    /// The clock of the core it plans for.
    pub fn clock(&self) -> Arc<dyn crate::clock::Clock> {
        self.core.clock().clone()
    }

    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Every series' forecast scores since it began: `(tenant, resource,
    /// tally)` in series order (the simulator's per-tenant accuracy).
    pub fn tallies(&self) -> impl Iterator<Item = (&str, usize, forecast::Tally)> {
        self.series
            .iter()
            .map(|s| (&*s.tenant.name, s.resource, s.forecaster.tally()))
    }

    /// Bytes of history held, all series.
    pub fn history_memory(&self) -> usize {
        self.series.iter().map(|s| s.history.memory()).sum()
    }
}

#[cfg(test)]
mod tests;
