//! `prescient simulate`: replays a trace through the same admission core and
//! planner as the daemon, on a virtual clock, tick by tick (DESIGN §7), in
//! two modes, and computes the oracle:
//!
//! * **predictive**: the daemon's behaviour, reserves sized from forecasts;
//! * **reactive**: no reserves, buckets and the shared pool only (what a
//!   plain rate limiter does);
//! * **oracle**: not a replay but the bound: the most tokens any admission
//!   could grant within the pools' limits, knowing the whole trace
//!   ([`oracle`]); no mode denies fewer (`oracle_tests`).
//!
//! With `--instances N` the trace is dealt over N simulated daemons
//! ([`split`]), each its own core and planner (`instance`), sharing one
//! in-process lease store that runs the cluster's allocation
//! ([`crate::cluster::store::MemoryStore`]): the figures are summed over
//! them and checked against the one global capacity, and each mode also
//! runs on one daemon so the cost of distribution shows.
//!
//! Data flow: [`trace`] (and `spread`) → [`split`] → [`run`] (per mode: `replay` of
//! each row on its `instance`, `capacity` checks; the oracle's bound) → [`report`]
//! (tables, JSON) and [`plot`] (SVG).

mod capacity;
mod instance;
mod oracle;
pub mod plot;
pub mod prewarm;
mod replay;
pub mod report;
pub mod split;
mod spread;
pub mod suite;
pub mod trace;

use crate::planner::PlannerConfig;
use crate::planner::forecast::Band;
use crate::policy::Policy;
pub use instance::LEASE_TTL_TICKS;
pub use report::{ModeReport, Report, Stats};
pub use split::{Column, MAX_INSTANCES, Split, SplitError};
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

/// One (tenant, resource), per tick, for the pre-warm view ([`prewarm`]):
/// the demand, and the demand ahead over the start-up delay as the
/// planner forecast it at the tick's end (summed over the daemons).
#[derive(Debug, Clone, Default)]
pub struct AheadLine {
    pub tenant: String,
    pub resource: String,
    pub demand: Vec<f32>,
    pub ahead: Vec<f32>,
}

/// One simulated daemon's lease on one resource, per tick: the capacity
/// it put in force at the tick's end (with more than one daemon).
#[derive(Debug, Clone, Default)]
pub struct LeaseLine {
    pub instance: usize,
    pub resource: String,
    pub capacity: Vec<u64>,
}

/// What one mode did, tick by tick, for the plot and for tests. Lines
/// sum every daemon (demand, denials, reserves, forecast bands).
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub tick_secs: f64,
    pub lines: Vec<Line>,
    /// Per daemon and resource; empty with one daemon.
    pub leases: Vec<LeaseLine>,
    /// Every (tenant, resource) with the demand ahead; empty unless the
    /// replay was asked for the pre-warm view.
    pub ahead: Vec<AheadLine>,
}

/// How many daemons share each capacity, and which rows each one sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daemons {
    pub instances: usize,
    pub split: Split,
}

impl Default for Daemons {
    /// One daemon owning all of every capacity, as without `cluster`.
    fn default() -> Self {
        Self {
            instances: 1,
            split: Split::RoundRobin,
        }
    }
}

/// The result of one mode.
pub struct Outcome {
    pub mode: Mode,
    pub report: ModeReport,
    pub timeline: Timeline,
}

/// Replays `trace` under `policy` in `mode` on `daemons`. `progress` is
/// called with the rows done so far, now and then.
pub fn run(
    policy: &Policy,
    trace: &Trace,
    mode: Mode,
    planner_config: &PlannerConfig,
    daemons: &Daemons,
    progress: &mut dyn FnMut(u64),
) -> Outcome {
    if mode == Mode::Oracle {
        let tick = crate::clock::duration_to_nanos(planner_config.tick);
        progress(trace.rows.len() as u64);
        return oracle::run(policy, trace, tick);
    }
    replay::Replay::new(policy, trace, mode, planner_config, daemons).run(progress)
}

/// [`run`], and with more than one daemon the same mode again on one, so
/// the report can say what distribution cost
/// ([`ModeReport::single_daemon_denied`]).
pub fn run_compared(
    policy: &Policy,
    trace: &Trace,
    mode: Mode,
    planner_config: &PlannerConfig,
    daemons: &Daemons,
    progress: &mut dyn FnMut(u64),
) -> Outcome {
    let mut outcome = run(policy, trace, mode, planner_config, daemons, progress);
    record_single_daemon(
        &mut outcome,
        policy,
        trace,
        planner_config,
        daemons,
        progress,
    );
    outcome
}

/// [`run_compared`] in predictive mode, recording the demand ahead of every
/// series over `prewarm.startup`; with the pre-warm view computed from it.
pub fn run_prewarm(
    policy: &Policy,
    trace: &Trace,
    planner_config: &PlannerConfig,
    daemons: &Daemons,
    prewarm: &prewarm::Prewarm,
    progress: &mut dyn FnMut(u64),
) -> (Outcome, prewarm::PrewarmReport) {
    let mode = Mode::Predictive;
    let mut outcome = replay::Replay::new(policy, trace, mode, planner_config, daemons)
        .recording_ahead(prewarm.startup)
        .run(progress);
    record_single_daemon(
        &mut outcome,
        policy,
        trace,
        planner_config,
        daemons,
        progress,
    );
    let view = prewarm::report(&outcome.timeline.ahead, prewarm, outcome.timeline.tick_secs);
    (outcome, view)
}

/// Records in `outcome` what one daemon denied on the same trace (its own
/// total when there is one daemon), so distribution's cost is reported.
fn record_single_daemon(
    outcome: &mut Outcome,
    policy: &Policy,
    trace: &Trace,
    planner_config: &PlannerConfig,
    daemons: &Daemons,
    progress: &mut dyn FnMut(u64),
) {
    let single = if daemons.instances > 1 {
        let one = Daemons::default();
        run(policy, trace, outcome.mode, planner_config, &one, progress)
            .report
            .total
            .tokens_denied
    } else {
        outcome.report.total.tokens_denied
    };
    outcome.report.single_daemon_denied = Some(single);
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
mod oracle_tests;
#[cfg(test)]
mod tests;
