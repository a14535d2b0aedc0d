//! The planner: every tick it folds the core's demand counters into each
//! (tenant, resource) history, forecasts demand, and resizes the reserve
//! pools (DESIGN §2, §6). Data flow: tick → [`history`] → [`model`] (refits,
//! off the tick) → [`forecast`] (online) → [`sizing`] → pool sizes.
//!
//! The planner takes `now` as an argument like everything in the core, so
//! the daemon drives it from a thread on the system clock and tests (and the
//! simulator) drive the very same code tick by tick on a manual clock.

mod export;
pub mod forecast;
pub mod history;
pub mod model;
mod refit;
pub mod ring;
pub mod sizing;
pub mod snapshot;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::admission::{Admission, Tenant};
use crate::clock::{NANOS_PER_SEC, Nanos};
use crate::metrics::Metrics;
use crate::policy::{EventSpec, Kind, Policy};
use export::count;
use forecast::{Accuracy, Band, Forecaster};
use history::{History, Sample};
use refit::Worker;

/// Ticks ahead a reserve is raised to what they need: a new reserve fills
/// within one tick (its depth is one second of its rate), so two ticks of
/// lead have it full when the burst arrives.
const LEAD_TICKS: u32 = 2;

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
    /// Fit on the tick's own thread (tests, simulator: deterministic) or on
    /// a worker thread (the daemon: a slow fit never delays a tick).
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

/// What one tick did.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickReport {
    pub series: usize,
    pub refits_started: usize,
    pub refits_applied: usize,
    pub elapsed: Duration,
}

struct Series {
    /// Unique for the planner's lifetime.
    key: u64,
    /// Bumped when a reload changes the seasons: a fit started before is
    /// for the old ones and is dropped.
    fit_generation: u32,
    tenant: Arc<Tenant>,
    resource: usize,
    history: History,
    forecaster: Forecaster,
    /// Seasons from the policy, minutes.
    seasons: Vec<usize>,
    horizon: Duration,
    last_fit: Option<u64>,
    fitting: bool,
    last_demand: f64,
    /// The band forecast for the coming tick.
    next: Band,
    /// Tenant label for metrics (bounded cardinality).
    label: String,
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
    /// Bands from outside instead of forecasts (the simulator's oracle).
    oracle: Option<Oracle>,
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

/// A source of known-future demand bands: `(tenant, resource, now,
/// horizon)` → the band of the demand rate over `[now, now + horizon)`.
pub type Oracle = Box<dyn FnMut(&str, &str, Nanos, Duration) -> Band + Send>;

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
            fit_cost: 0.005,
            credit: 0.0,
            published,
            config,
            restored: Default::default(),
            oracle: None,
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

    /// Sizes reserves from known future demand instead of forecasts, and
    /// stops fitting (the simulator's oracle mode: the bound no forecast
    /// beats).
    pub fn with_oracle(mut self, oracle: Oracle) -> Self {
        self.oracle = Some(oracle);
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

    /// Bytes of history held, all series.
    pub fn history_memory(&self) -> usize {
        self.series.iter().map(|s| s.history.memory()).sum()
    }

    /// Adds series for tenants that appeared (listed, or from defaults).
    fn sync_series(&mut self) {
        let registry = self.core.registry();
        for tenant in registry.tenants() {
            for r in registry.live() {
                let (resource, allotment) = (r.id, &tenant.allotments[r.id]);
                if !self.known.insert((tenant.id, resource)) {
                    continue;
                }
                let name = &r.name;
                let history = self
                    .restored
                    .remove(&(tenant.name.to_string(), name.to_string()))
                    .unwrap_or_default();
                let (quantile, seasons, horizon) = reserve_settings(allotment);
                let mut forecaster = Forecaster::new(quantile);
                forecaster.stagger(self.series.len());
                self.by_key.insert(self.next_key, self.series.len());
                self.series.push(Series {
                    key: self.next_key,
                    fit_generation: 0,
                    tenant: tenant.clone(),
                    resource,
                    history,
                    forecaster,
                    seasons,
                    horizon,
                    last_fit: None,
                    fitting: false,
                    last_demand: 0.0,
                    next: Band::default(),
                    label: self
                        .metrics
                        .as_ref()
                        .map_or_else(String::new, |m| m.tenant_label(&tenant.name)),
                });
                self.next_key += 1;
            }
        }
    }

    /// Puts a new policy in force, between ticks: the daemon's reloads come
    /// here, so a reload never races the sizing of reserves. The core swaps
    /// its registry (see [`Admission::reload`]); series follow their
    /// tenants by name, keeping their history and taking the new reserve
    /// settings; series of tenants and resources the policy dropped end.
    pub fn reload(
        &mut self,
        policy: &Policy,
        origin: &str,
    ) -> Result<crate::admission::Reloaded, crate::policy::PolicyError> {
        let reloaded = self.core.reload(policy, origin)?;
        self.events = policy.events.clone();
        let registry = self.core.registry();
        let live: HashSet<usize> = registry.live().iter().map(|r| r.id).collect();
        let known = &mut self.known;
        let mut ended = Vec::new();
        self.series.retain_mut(|s| {
            // The same tenant (by id: one created afresh under the same
            // name is a new series).
            let current = live
                .contains(&s.resource)
                .then(|| registry.existing_tenant(&s.tenant.name))
                .flatten()
                .filter(|t| t.id == s.tenant.id);
            let Some(tenant) = current else {
                known.remove(&(s.tenant.id, s.resource));
                ended.push((s.label.clone(), registry.resources[s.resource].name.clone()));
                return false;
            };
            let (quantile, seasons, horizon) = reserve_settings(&tenant.allotments[s.resource]);
            if seasons != s.seasons {
                s.seasons = seasons;
                s.last_fit = None;
                s.fit_generation += 1;
                s.fitting = false;
            }
            s.forecaster.set_level(quantile);
            s.horizon = horizon;
            s.tenant = tenant;
            true
        });
        self.by_key = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
        self.sync_series();
        if let Some(m) = &self.metrics {
            export::forget(m, &ended, &reloaded.resources_removed);
        }
        Ok(reloaded)
    }

    /// One tick at `now`: fold, forecast, resize, publish.
    pub fn tick(&mut self, now: Nanos) -> TickReport {
        let started = Instant::now();
        let mut report = TickReport::default();
        self.core.registry().settle(now);
        self.sync_series();
        let tick_secs = self.config.tick.as_secs_f64();
        let tpm = self.ticks_per_minute;

        // 1. Fold the counters into history; score last tick's forecast.
        for s in &mut self.series {
            let d = s.tenant.allotments[s.resource].holdings.counters.fold();
            let sample = Sample {
                demand: d.asked as f64 / tick_secs,
                granted: d.granted() as f64 / tick_secs,
                arrivals: d.requests as f64 / tick_secs,
                hold: d.hold.map(|ns| ns as f64 / NANOS_PER_SEC as f64),
            };
            s.history.record(sample, tpm);
            let minute = (s.history.ticks - 1) / tpm as u64;
            s.forecaster.observe(sample.demand, minute);
            s.last_demand = sample.demand;
            if let Some(m) = &self.metrics {
                count(
                    m,
                    &s.label,
                    &self.core.registry().resources[s.resource].name,
                    &d,
                );
            }
        }

        // 2. Refits: collect what finished, start what is due.
        if self.oracle.is_none() {
            report.refits_applied = self.collect_refits();
            report.refits_started = self.start_refits();
        }

        // 3. Forecast (the band for the coming tick is scored against it
        // next tick), then size, resource by resource.
        for s in &mut self.series {
            s.next = s.forecaster.predict(s.history.ticks / tpm as u64);
        }
        let wall = self.core.clock().wall(now);
        for resource in 0..self.core.registry().resources.len() {
            self.size(resource, now, wall);
        }

        // 4. Publish.
        self.ticks += 1;
        self.publish(wall);
        report.series = self.series.len();
        report.elapsed = started.elapsed();
        if let Some(m) = self.metrics.clone() {
            self.gauges(&m, now);
            m.tick_seconds.observe(report.elapsed.as_secs_f64());
        }
        report
    }

    /// The event multiplier in force for a tenant over `[wall, wall + horizon)`.
    fn event_multiplier(&self, tenant: &str, wall: SystemTime, horizon: Duration) -> f64 {
        self.events
            .iter()
            .filter(|e| e.tenants.iter().any(|t| t == tenant))
            .filter(|e| e.start < wall + horizon && wall < e.end)
            .map(|e| e.multiplier)
            .fold(1.0, f64::max)
    }

    /// The band over `[next tick, next tick + span]`: the highest mean and
    /// bounds of the minutes it covers, scaled by events in force; for
    /// concurrency, in units (Little's law: arrivals/s × mean hold time).
    fn band_over(&mut self, i: usize, now: Nanos, wall: SystemTime, span: Duration) -> Band {
        let tpm = self.ticks_per_minute as u64;
        let s = &self.series[i];
        let first = s.history.ticks / tpm;
        let span_ticks = (span.as_secs_f64() / self.config.tick.as_secs_f64()).ceil() as u64;
        let last = (s.history.ticks + span_ticks) / tpm;
        let mut band = s.forecaster.band(first);
        for m in first + 1..=last {
            let b = s.forecaster.band(m);
            band.mean = band.mean.max(b.mean);
            band.upper = band.upper.max(b.upper);
            band.lower = band.lower.max(b.lower);
        }
        let (tenant, resource) = (s.tenant.clone(), s.resource);
        let registry = self.core.registry();
        if let Some(oracle) = &mut self.oracle {
            // Known demand already holds any event's effect.
            band = oracle(&tenant.name, &registry.resources[resource].name, now, span);
        } else {
            band = band.scaled(self.event_multiplier(&tenant.name, wall, span));
        }
        let r = &registry.resources[resource];
        if r.kind == Kind::Concurrency {
            // This tenant's own recent hold time, else the resource's.
            let hold = self.series[i]
                .history
                .recent_hold()
                .unwrap_or(r.hold_time() as f64 / NANOS_PER_SEC as f64);
            band = band.scaled(hold);
        }
        band
    }

    /// Sizes the reserves of one resource: wants over each horizon,
    /// water-filled, then lent to the shared pool down to what the next
    /// ticks need (see [`sizing`]).
    fn size(&mut self, resource: usize, now: Nanos, wall: SystemTime) {
        let lead = self.config.tick * LEAD_TICKS;
        let mut wants = Vec::new();
        let mut near = Vec::new();
        let mut who = Vec::new();
        for i in 0..self.series.len() {
            let s = &self.series[i];
            if s.resource != resource {
                continue;
            }
            let a = &s.tenant.allotments[resource];
            if a.limit.reserve.is_none() {
                continue;
            }
            let (g, horizon, weight) = (a.limit.guaranteed as f64, s.horizon, s.tenant.qos.weight);
            let max = a.max_reserve(self.core.registry().resources[resource].room()) as f64;
            let band = self.band_over(i, now, wall, horizon);
            wants.push((sizing::reserve_wanted(band, g, max), weight));
            let band = self.band_over(i, now, wall, lead);
            near.push(sizing::reserve_wanted(band, g, max));
            who.push(i);
        }
        if wants.is_empty() {
            return;
        }
        let registry = self.core.registry();
        let r = &registry.resources[resource];
        let sizes: Vec<u64> = sizing::water_fill(&wants, r.reservable() as f64)
            .into_iter()
            .zip(&near)
            .map(|(size, near)| size.min(*near).floor() as u64)
            .collect();
        // Shrink first, so the growing ones find the room.
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.sort_by_key(|&k| {
            let s = &self.series[who[k]];
            sizes[k] > s.tenant.allotments[resource].holdings.reserve.size() as u64
        });
        for k in order {
            registry.set_reserve(&self.series[who[k]].tenant, r, sizes[k], now);
        }
    }
}

/// A series' forecast settings from its allotment's `reserve`: quantile,
/// seasons (minutes) and horizon.
fn reserve_settings(a: &crate::admission::Allotment) -> (f64, Vec<usize>, Duration) {
    let spec = a.limit.reserve.as_ref();
    (
        spec.map_or(0.95, |r| r.quantile),
        spec.map(|r| r.season_minutes()).unwrap_or_default(),
        spec.map_or(Duration::from_secs(30), |r| r.horizon),
    )
}

#[cfg(test)]
mod tests;
