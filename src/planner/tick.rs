//! One tick: fold the demand counters into history, forecast, size the
//! reserves, publish.

use std::time::{Duration, Instant, SystemTime};

use super::export::count;
use super::forecast::Band;
use super::history::Sample;
use std::collections::BTreeMap;

use super::{Planner, Wants, sizing};
use crate::clock::{NANOS_PER_SEC, Nanos};
use crate::policy::Kind;

/// Ticks ahead a reserve is raised to what they need: a new reserve fills
/// within one tick (its depth is one second of its rate), so two ticks of
/// lead have it full when the burst arrives.
const LEAD_TICKS: u32 = 2;

/// What one tick did.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickReport {
    pub series: usize,
    pub refits_started: usize,
    pub refits_applied: usize,
    pub elapsed: Duration,
}

impl Planner {
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
            if d.granted() < d.asked {
                s.denied_at = Some(s.history.ticks);
            }
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
        report.refits_applied = self.collect_refits();
        report.refits_started = self.start_refits();

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
    fn band_over(&self, i: usize, wall: SystemTime, span: Duration) -> Band {
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
        let (tenant, resource) = (&s.tenant, s.resource);
        let registry = self.core.registry();
        band = band.scaled(self.event_multiplier(&tenant.name, wall, span));
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

    /// This daemon's wants per resource, for the instances it shares
    /// capacity with (DESIGN §9): per tenant, the forecast's upper bound
    /// over its horizon (the reserve's, else 30 s) and the demand of the
    /// last tick, both per second (units held for concurrency).
    pub fn wants(&mut self, now: Nanos) -> BTreeMap<String, Wants> {
        let wall = self.core.clock().wall(now);
        let registry = self.core.registry();
        let mut out: BTreeMap<String, Wants> = registry
            .live()
            .iter()
            .map(|r| (r.name.to_string(), Wants::default()))
            .collect();
        for i in 0..self.series.len() {
            let (horizon, resource) = (self.series[i].horizon, self.series[i].resource);
            let r = &registry.resources[resource];
            let Some(wants) = out.get_mut(&*r.name) else {
                continue; // a resource the policy dropped
            };
            let band = self.band_over(i, wall, horizon);
            let s = &self.series[i];
            let used = match r.kind {
                Kind::Rate => s.last_demand,
                Kind::Concurrency => {
                    let hold = s.history.recent_hold();
                    s.last_demand * hold.unwrap_or(r.hold_time() as f64 / NANOS_PER_SEC as f64)
                }
            };
            if band.upper > 0.0 || used > 0.0 {
                wants
                    .tenants
                    .insert(s.tenant.name.to_string(), [band.upper, used]);
            }
        }
        out
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
            let (g, horizon, weight) = (a.guaranteed_here() as f64, s.horizon, s.tenant.qos.weight);
            let mut max = a.max_reserve(self.core.registry().resources[resource].room()) as f64;
            if s.tenant.qos.borrow && !self.denied_lately(i) {
                // It borrows what it needs beyond its guarantee and nobody
                // denied it: a reserve would only hold capacity from others.
                max = 0.0;
            }
            let band = self.band_over(i, wall, horizon);
            let shrink = self.config.shrink_wide_bands;
            wants.push((sizing::reserve_wanted(band, g, max, shrink), weight));
            let band = self.band_over(i, wall, lead);
            near.push(sizing::reserve_wanted(band, g, max, shrink));
            who.push(i);
        }
        if wants.is_empty() {
            return;
        }
        let registry = self.core.registry();
        let r = &registry.resources[resource];
        let (sizes, who): (Vec<u64>, Vec<usize>) =
            sizing::water_fill(&wants, r.reservable() as f64)
                .into_iter()
                .zip(&near)
                .map(|(size, near)| size.min(*near).floor() as u64)
                .zip(who)
                .unzip();
        // Shrink first, so the growing ones find the room.
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.sort_by_key(|&k| {
            let s = &self.series[who[k]];
            sizes[k] > s.tenant.allotments[resource].holdings.reserve.size() as u64
        });
        let hold_back = self.config.lend_hold_back;
        for k in order {
            let tenant = &self.series[who[k]].tenant;
            let size = registry.set_reserve(tenant, r, sizes[k], now);
            // A reserve's depth is its size (one second of its rate).
            let keep = (hold_back * size as f64).ceil() as u64;
            registry.keep_from_borrowers(tenant, r, keep);
        }
    }

    /// Whether series `i` was denied within the last
    /// `reserve_after_denial`: a tenant that may borrow gets a reserve only
    /// while the shared pool has been failing it, kept that long so a
    /// reserve that works is not dropped the moment it stops the denials.
    /// (Remembering a whole season instead was measured: it kept reserves
    /// for borrowers the shared pool served anyway, and cost the others.)
    fn denied_lately(&self, i: usize) -> bool {
        let s = &self.series[i];
        let memory = (self.config.reserve_after_denial.as_secs_f64()
            / self.config.tick.as_secs_f64()) as u64;
        s.denied_at
            .is_some_and(|at| s.history.ticks.saturating_sub(at) <= memory)
    }
}
