//! One mode's replay: every row an Acquire on the daemon the split sends
//! it to, at its timestamp on the virtual clock; at every tick boundary
//! each daemon in turn ticks and renews its lease, and the tick's points
//! are recorded. Grants are summed over the daemons and checked against
//! each resource's one capacity.

use std::sync::Arc;

use super::instance::Instance;
use super::trace::{Row, Trace};
use super::{
    AheadLine, Daemons, LeaseLine, Line, Mode, ModeReport, Outcome, Timeline, busiest_resources,
};
use crate::admission::{AcquireRequest, Decision};
use crate::clock::{Clock, ManualClock, Nanos, duration_to_nanos};
use crate::cluster::store::MemoryStore;
use crate::planner::PlannerConfig;
use crate::planner::forecast::{Band, Tally};
use crate::policy::Policy;
use crate::pool::Tier;

/// The state of one mode's replay between ticks.
pub(super) struct Replay<'a> {
    trace: &'a Trace,
    mode: Mode,
    tick: Nanos,
    clock: Arc<ManualClock>,
    instances: Vec<Instance>,
    /// The daemon each row goes to.
    route: Vec<u32>,
    /// The lease store the daemons share (untouched by a daemon alone).
    store: MemoryStore,
    /// Every resource of the policy with its capacity `C`.
    capacities: Vec<(String, u64)>,
    report: ModeReport,
    timeline: Timeline,
    /// (tenant, resource) of each timeline line.
    lines: Vec<(usize, usize)>,
    /// This tick, per resource (trace order): tokens granted by all.
    granted: Vec<u64>,
    /// The pre-warm view's lead time, when it is recorded.
    lead: Option<std::time::Duration>,
}

impl<'a> Replay<'a> {
    pub(super) fn new(
        policy: &Policy,
        trace: &'a Trace,
        mode: Mode,
        config: &PlannerConfig,
        daemons: &Daemons,
    ) -> Self {
        let tick = duration_to_nanos(config.tick).max(1);
        let n = daemons.instances.max(1);
        let route = daemons.split.route(trace, n);
        let clock = Arc::new(ManualClock::with_wall_epoch(0, trace.start));
        let instances: Vec<Instance> = (0..n)
            .map(|k| Instance::new((k, n), policy, trace, mode, config, clock.clone()))
            .collect();
        let capacities: Vec<(String, u64)> = policy
            .resources
            .iter()
            .map(|(name, spec)| (name.clone(), spec.capacity))
            .collect();
        let lines = busiest_resources(trace);
        let leases = if n > 1 {
            (0..n)
                .flat_map(|k| {
                    capacities.iter().map(move |(name, _)| LeaseLine {
                        instance: k,
                        resource: name.clone(),
                        capacity: Vec::new(),
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut replay = Self {
            trace,
            mode,
            tick,
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
                leases,
                ahead: Vec::new(),
            },
            lines,
            report: ModeReport::new(trace, policy),
            granted: vec![0; trace.resources.len()],
            clock,
            instances,
            route,
            store: MemoryStore::new(),
            capacities,
            lead: None,
        };
        // A daemon asks for its first lease at once, not a tick later.
        for k in 0..replay.instances.len() {
            replay.instances[k].exchange(0, &mut replay.store, trace);
            replay.check_leases();
        }
        replay
    }

    /// Also records, every tick, each series' demand and the demand ahead
    /// over `lead` (predictive mode: the planner's forecast).
    pub(super) fn recording_ahead(mut self, lead: std::time::Duration) -> Self {
        self.lead = Some(lead);
        let trace = self.trace;
        self.timeline.ahead = (0..trace.tenants.len())
            .flat_map(|t| {
                (0..trace.resources.len()).map(move |r| AheadLine {
                    tenant: trace.tenants[t].clone(),
                    resource: trace.resources[r].clone(),
                    ..AheadLine::default()
                })
            })
            .collect();
        self
    }

    pub(super) fn run(mut self, progress: &mut dyn FnMut(u64)) -> Outcome {
        let trace = self.trace;
        let mut next = self.tick;
        for (i, row) in trace.rows.iter().enumerate() {
            while row.at >= next {
                self.end_tick(next);
                next += self.tick;
            }
            self.acquire(row, self.route[i] as usize);
            if i % 4096 == 4095 {
                progress(4096);
            }
        }
        self.end_tick(next);
        progress(trace.rows.len() as u64 % 4096);
        if self.mode == Mode::Predictive {
            self.score_forecasts();
        }
        let registries: Vec<_> = self.instances.iter().map(|d| d.core.registry()).collect();
        self.report.finish(&registries, self.clock.now());
        Outcome {
            mode: self.mode,
            report: self.report,
            timeline: self.timeline,
        }
    }

    /// One row: one Acquire at its timestamp, on daemon `k` (none for a
    /// quiet step: its time has passed, the ticks before it are done).
    fn acquire(&mut self, row: &Row, k: usize) {
        self.clock.set(row.at);
        if row.amount == 0 {
            return;
        }
        let (t, r) = (row.tenant as usize, row.resource as usize);
        let req = AcquireRequest {
            tenant: &self.trace.tenants[t],
            resource: &self.trace.resources[r],
            amount: row.amount,
            ..Default::default()
        };
        let daemon = &mut self.instances[k];
        daemon.asked[t][r] += row.amount;
        match daemon.core.try_acquire(&req, row.at) {
            Ok(Decision::Granted(g)) => {
                self.granted[r] += row.amount;
                let by_tier = Tier::ALL.map(|tier| g.split.get(tier));
                self.report.granted(t, r, row.amount, by_tier);
                if let Some(lease) = g.lease {
                    daemon.leases.push(lease.to_string());
                    if self.units_held(req.resource) > self.capacity(req.resource) {
                        self.report.violation();
                    }
                }
            }
            Ok(Decision::Denied(_)) => {
                daemon.denied[t][r] += row.amount;
                self.report.denied(t, row.amount, false);
            }
            Err(_) => {
                // An amount the tenant could never be granted, or a tenant
                // the defaults cannot take: denied, and counted as invalid.
                daemon.denied[t][r] += row.amount;
                self.report.denied(t, row.amount, true);
            }
        }
    }

    /// Each tenant's (and the total's) coverage and MASE: the planners'
    /// own scores, pooled over resources and daemons.
    fn score_forecasts(&mut self) {
        let mut total = Tally::default();
        let mut by_tenant: std::collections::BTreeMap<&str, Tally> = Default::default();
        for planner in self.instances.iter().filter_map(|d| d.planner.as_ref()) {
            for (tenant, _, tally) in planner.tallies() {
                by_tenant.entry(tenant).or_default().add(&tally);
                total.add(&tally);
            }
        }
        let stats = |s: &mut super::Stats, t: &Tally| {
            s.coverage = t.coverage();
            s.mase = t.mase();
        };
        for (tenant, tally) in &by_tenant {
            if let Some(s) = self.report.tenants.get_mut(*tenant) {
                stats(s, tally);
            }
        }
        stats(&mut self.report.total, &total);
    }

    /// Units of a concurrency resource held now, over every daemon.
    fn units_held(&self, resource: &str) -> u64 {
        self.instances
            .iter()
            .filter_map(|d| d.core.registry().resource(resource).map(|r| r.held()))
            .sum()
    }

    fn capacity(&self, resource: &str) -> u64 {
        self.capacities
            .iter()
            .find(|(name, _)| name == resource)
            .map_or(0, |(_, c)| *c)
    }

    /// Σ of the daemons' leases ≤ C for every resource, or a violation.
    fn check_leases(&mut self) {
        for (name, c) in &self.capacities {
            let held: u64 = self
                .instances
                .iter()
                .filter_map(|d| d.lease_capacity(name))
                .sum();
            if held > *c {
                self.report.violation();
            }
        }
    }

    /// The tick boundary at `at`: each daemon in turn gives back this
    /// tick's units, ticks its planner and renews its lease; then the
    /// tick's line points are recorded.
    fn end_tick(&mut self, at: Nanos) {
        self.clock.set(at);
        for k in 0..self.instances.len() {
            self.instances[k].end_tick(at, &mut self.store, self.trace);
            self.check_leases();
        }
        let per_sec = 1.0 / self.timeline.tick_secs;
        let snapshots: Vec<_> = self
            .instances
            .iter()
            .filter_map(|d| d.forecasts.as_ref().map(|f| f.borrow().clone()))
            .collect();
        for (line, &(t, r)) in self.timeline.lines.iter_mut().zip(&self.lines) {
            let (mut asked, mut denied, mut reserve) = (0, 0, 0.0);
            for d in &self.instances {
                asked += d.asked[t][r];
                denied += d.denied[t][r];
                let registry = d.core.registry();
                reserve += registry
                    .existing_tenant(&line.tenant)
                    .zip(registry.resource(&line.resource))
                    .map_or(0.0, |(tenant, res)| {
                        tenant.allotments[res.id].holdings.reserve.size()
                    });
            }
            line.demand.push((asked as f64 * per_sec) as f32);
            line.denied.push((denied as f64 * per_sec) as f32);
            line.reserve.push(reserve as f32);
            if self.mode == Mode::Predictive {
                let mut band = Band::default();
                for s in &snapshots {
                    if let Some(p) = s
                        .get(&line.tenant, &line.resource)
                        .and_then(|v| v.points.first())
                    {
                        band.mean += p.band.mean;
                        band.lower += p.band.lower;
                        band.upper += p.band.upper;
                    }
                }
                line.band.push(band);
            }
        }
        if let Some(lead) = self.lead {
            let resources = self.trace.resources.len();
            for (i, line) in self.timeline.ahead.iter_mut().enumerate() {
                let (t, r) = (i / resources, i % resources);
                let asked: u64 = self.instances.iter().map(|d| d.asked[t][r]).sum();
                let ahead: f64 = snapshots
                    .iter()
                    .filter_map(|s| {
                        let view = s.get(&line.tenant, &line.resource)?;
                        Some(crate::prewarm::ahead(view, s.at?, lead).upper)
                    })
                    .sum();
                line.demand.push((asked as f64 * per_sec) as f32);
                line.ahead.push(ahead as f32);
            }
        }
        for lease in &mut self.timeline.leases {
            let d = &self.instances[lease.instance];
            lease
                .capacity
                .push(d.lease_capacity(&lease.resource).unwrap_or(0));
        }
        self.report.end_tick(&self.granted, self.timeline.tick_secs);
        for d in &mut self.instances {
            for row in d.asked.iter_mut().chain(d.denied.iter_mut()) {
                row.fill(0);
            }
        }
        self.granted.fill(0);
    }
}
