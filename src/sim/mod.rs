//! `prescient simulate`: replays a trace through the same admission core and
//! planner as the daemon, on a virtual clock, tick by tick (DESIGN §7), in
//! three modes:
//!
//! * **predictive**: the daemon's behaviour, reserves sized from forecasts;
//! * **reactive**: no reserves, buckets and the shared pool only (what a
//!   plain rate limiter does);
//! * **oracle**: reserves sized from the trace's true demand over each
//!   tenant's horizon, the bound no forecast can beat.
//!
//! Data flow: [`trace`] → [`run`] (per mode) → [`report`] (tables, JSON) and
//! [`plot`] (SVG).

pub mod plot;
pub mod report;
pub mod trace;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::admission::{AcquireRequest, Admission, AdmissionConfig, Decision};
use crate::clock::{Clock, ManualClock, Nanos, duration_to_nanos};
use crate::planner::forecast::Band;
use crate::planner::{Planner, PlannerConfig};
use crate::policy::Policy;
use crate::pool::Tier;
pub use report::{ModeReport, Report, Stats};
pub use trace::{Trace, TraceError};

/// A way of sizing reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    Predictive,
    Reactive,
    Oracle,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Predictive, Mode::Reactive, Mode::Oracle];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Predictive => "predictive",
            Mode::Reactive => "reactive",
            Mode::Oracle => "oracle",
        }
    }
}

/// One tenant's line through time (its busiest resource), per tick.
#[derive(Debug, Clone, Default)]
pub struct Line {
    pub tenant: String,
    pub resource: String,
    pub demand: Vec<f32>,
    pub denied: Vec<f32>,
    pub reserve: Vec<f32>,
    /// The forecast band for the tick (predictive only).
    pub band: Vec<Band>,
}

/// What one mode did, tick by tick, for the plot.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub tick_secs: f64,
    pub lines: Vec<Line>,
}

/// The result of one mode.
pub struct Outcome {
    pub mode: Mode,
    pub report: ModeReport,
    pub timeline: Timeline,
}

/// Per-tick demand rates of every (tenant, resource) of the trace: what the
/// oracle knows.
struct Demand {
    tick: Nanos,
    rates: HashMap<(String, String), Vec<f64>>,
}

impl Demand {
    fn of(trace: &Trace, tick: Nanos) -> Self {
        let ticks = (trace.rows.last().map_or(0, |r| r.at) / tick + 1) as usize;
        let mut rates: HashMap<(String, String), Vec<f64>> = HashMap::new();
        let per_sec = 1e9 / tick as f64;
        for row in &trace.rows {
            let key = (
                trace.tenants[row.tenant as usize].clone(),
                trace.resources[row.resource as usize].clone(),
            );
            rates.entry(key).or_insert_with(|| vec![0.0; ticks])[(row.at / tick) as usize] +=
                row.amount as f64 * per_sec;
        }
        Self { tick, rates }
    }

    /// The highest demand rate over `[now, now + horizon)`.
    fn band(&self, tenant: &str, resource: &str, now: Nanos, horizon: Duration) -> Band {
        let Some(rates) = self.rates.get(&(tenant.to_owned(), resource.to_owned())) else {
            return Band::default();
        };
        let from = (now / self.tick) as usize;
        let to = ((now + duration_to_nanos(horizon)) / self.tick) as usize;
        let peak = rates
            .iter()
            .skip(from)
            .take(to.saturating_sub(from).max(1))
            .fold(0.0, |m: f64, r| m.max(*r));
        Band {
            mean: peak,
            lower: peak,
            upper: peak,
        }
    }
}

/// Replays `trace` under `policy` in `mode`. `progress` is called with the
/// rows done so far, now and then.
pub fn run(
    policy: &Policy,
    trace: &Trace,
    mode: Mode,
    planner_config: &PlannerConfig,
    progress: &mut dyn FnMut(u64),
) -> Outcome {
    let tick = duration_to_nanos(planner_config.tick).max(1);
    let clock = Arc::new(ManualClock::with_wall_epoch(0, trace.start));
    let core = Arc::new(Admission::new(
        policy,
        AdmissionConfig::default(),
        clock.clone(),
    ));
    let config = PlannerConfig {
        inline_refits: true,
        ..planner_config.clone()
    };
    let planner = match mode {
        Mode::Reactive => None,
        Mode::Predictive => Some(Planner::new(core.clone(), policy, config)),
        Mode::Oracle => {
            let demand = Demand::of(trace, tick);
            Some(
                Planner::new(core.clone(), policy, config).with_oracle(Box::new(
                    move |tenant, resource, now, horizon| {
                        demand.band(tenant, resource, now, horizon)
                    },
                )),
            )
        }
    };
    let forecasts = planner.as_ref().map(Planner::subscribe);
    let lines = busiest_resources(trace);
    let mut replay = Replay {
        trace,
        mode,
        timeline: Timeline {
            tick_secs: tick as f64 / 1e9,
            lines: lines
                .iter()
                .map(|&(t, r)| Line {
                    tenant: trace.tenants[t].clone(),
                    resource: trace.resources[r].clone(),
                    ..Line::default()
                })
                .collect(),
        },
        lines,
        report: ModeReport::new(trace, policy),
        asked: vec![vec![0; trace.resources.len()]; trace.tenants.len()],
        denied: vec![vec![0; trace.resources.len()]; trace.tenants.len()],
        granted: vec![0; trace.resources.len()],
        leases: Vec::new(),
        clock,
        core,
        planner,
        forecasts,
    };
    let mut next = tick;
    for (i, row) in trace.rows.iter().enumerate() {
        while row.at >= next {
            replay.end_tick(next);
            next += tick;
        }
        replay.acquire(row);
        if i % 4096 == 4095 {
            progress(4096);
        }
    }
    replay.end_tick(next);
    progress(trace.rows.len() as u64 % 4096);
    replay
        .report
        .finish(&replay.core.registry(), replay.clock.now());
    Outcome {
        mode,
        report: replay.report,
        timeline: replay.timeline,
    }
}

/// The state of one mode's replay between ticks.
struct Replay<'a> {
    trace: &'a Trace,
    mode: Mode,
    clock: Arc<ManualClock>,
    core: Arc<Admission>,
    planner: Option<Planner>,
    forecasts: Option<tokio::sync::watch::Receiver<Arc<crate::planner::Forecasts>>>,
    report: ModeReport,
    timeline: Timeline,
    /// (tenant, resource) of each timeline line.
    lines: Vec<(usize, usize)>,
    /// This tick, per tenant and resource: tokens asked and denied.
    asked: Vec<Vec<u64>>,
    denied: Vec<Vec<u64>>,
    /// This tick, per resource: tokens granted.
    granted: Vec<u64>,
    /// Concurrency leases of this tick (released at its end).
    leases: Vec<String>,
}

impl Replay<'_> {
    /// One row: one Acquire at its timestamp.
    fn acquire(&mut self, row: &trace::Row) {
        self.clock.set(row.at);
        let (t, r) = (row.tenant as usize, row.resource as usize);
        let req = AcquireRequest {
            tenant: &self.trace.tenants[t],
            resource: &self.trace.resources[r],
            amount: row.amount,
            ..Default::default()
        };
        self.asked[t][r] += row.amount;
        match self.core.try_acquire(&req, row.at) {
            Ok(Decision::Granted(g)) => {
                self.granted[r] += row.amount;
                let by_tier = Tier::ALL.map(|tier| g.split.get(tier));
                self.report.granted(t, r, row.amount, by_tier);
                if let Some(lease) = g.lease {
                    self.leases.push(lease.to_string());
                    let registry = self.core.registry();
                    let resource = registry.resource(req.resource);
                    if resource.is_some_and(|res| res.held() > res.capacity()) {
                        self.report.violation();
                    }
                }
            }
            Ok(Decision::Denied(_)) => {
                self.denied[t][r] += row.amount;
                self.report.denied(t, row.amount, false);
            }
            Err(_) => {
                // An amount the tenant could never be granted, or a tenant
                // the defaults cannot take: denied, and counted as invalid.
                self.denied[t][r] += row.amount;
                self.report.denied(t, row.amount, true);
            }
        }
    }

    /// The tick boundary at `at`: concurrency rows give their units back,
    /// the planner ticks, and the tick's line points are recorded.
    fn end_tick(&mut self, at: Nanos) {
        self.clock.set(at);
        for lease in self.leases.drain(..) {
            let _ = self.core.release(&lease);
        }
        if let Some(p) = self.planner.as_mut() {
            p.tick(at);
        }
        let snapshot = self.forecasts.as_ref().map(|f| f.borrow().clone());
        let per_sec = 1.0 / self.timeline.tick_secs;
        let registry = self.core.registry();
        for (line, &(t, r)) in self.timeline.lines.iter_mut().zip(&self.lines) {
            line.demand.push((self.asked[t][r] as f64 * per_sec) as f32);
            line.denied
                .push((self.denied[t][r] as f64 * per_sec) as f32);
            let reserve = registry
                .existing_tenant(&line.tenant)
                .zip(registry.resource(&line.resource))
                .map_or(0.0, |(tenant, res)| {
                    tenant.allotments[res.id].holdings.reserve.size()
                });
            line.reserve.push(reserve as f32);
            if self.mode == Mode::Predictive {
                let band = snapshot
                    .as_ref()
                    .and_then(|s| s.get(&line.tenant, &line.resource))
                    .and_then(|v| v.points.first())
                    .map_or(Band::default(), |p| p.band);
                line.band.push(band);
            }
        }
        self.report.end_tick(&self.granted, self.timeline.tick_secs);
        for row in self.asked.iter_mut().chain(self.denied.iter_mut()) {
            row.fill(0);
        }
        self.granted.fill(0);
    }
}

/// For each tenant, the resource it asks most of (its plot panel).
fn busiest_resources(trace: &Trace) -> Vec<(usize, usize)> {
    let mut totals = vec![vec![0u64; trace.resources.len()]; trace.tenants.len()];
    for row in &trace.rows {
        totals[row.tenant as usize][row.resource as usize] += row.amount;
    }
    totals
        .iter()
        .enumerate()
        .map(|(t, per)| {
            let r = (0..per.len()).max_by_key(|&r| per[r]).unwrap_or(0);
            (t, r)
        })
        .collect()
}

#[cfg(test)]
mod tests;
