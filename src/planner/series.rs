//! The series table: one (tenant, resource) series per allotment, with
//! its history and forecaster; series follow their tenants across
//! reloads.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::backtest::Choice;
use super::forecast::{Band, Forecaster};
use super::history::History;
use super::{Planner, export};
use crate::admission::Tenant;
use crate::policy::Policy;

pub(super) struct Series {
    /// Unique for the planner's lifetime.
    pub(super) key: u64,
    /// Bumped when a reload changes the seasons: a fit started before is
    /// for the old ones and is dropped.
    pub(super) fit_generation: u32,
    pub(super) tenant: Arc<Tenant>,
    pub(super) resource: usize,
    pub(super) history: History,
    pub(super) forecaster: Forecaster,
    /// Seasons from the policy, minutes.
    pub(super) seasons: Vec<usize>,
    pub(super) horizon: Duration,
    pub(super) last_fit: Option<u64>,
    /// The model the last backtest chose, refit alone until
    /// `scored_at + RESCORE_MINUTES` (or a drift).
    pub(super) kept: Option<Choice>,
    /// Minute of the last scoring refit.
    pub(super) scored_at: Option<u64>,
    pub(super) fitting: bool,
    pub(super) last_demand: f64,
    /// The last tick in which this tenant was denied (ticks since start).
    pub(super) denied_at: Option<u64>,
    /// The band forecast for the coming tick.
    pub(super) next: Band,
    /// Tenant label for metrics (bounded cardinality).
    pub(super) label: String,
}

impl Planner {
    /// Adds series for tenants that appeared (listed, or from defaults),
    /// in tenant id order: the registry's tables iterate in a random
    /// order, and a series' place decides its refit turn and its phase, so
    /// that order would make two replays of one trace differ.
    pub(super) fn sync_series(&mut self) {
        let registry = self.core.registry();
        let mut new: Vec<(Arc<Tenant>, usize)> = Vec::new();
        for tenant in registry.tenants() {
            for r in registry.live() {
                if self.known.insert((tenant.id, r.id)) {
                    new.push((tenant.clone(), r.id));
                }
            }
        }
        new.sort_by_key(|(t, r)| (t.id, *r));
        for (tenant, resource) in new {
            let r = &registry.resources[resource];
            let allotment = &tenant.allotments[resource];
            let name = &r.name;
            let history = self
                .restored
                .remove(&(tenant.name.to_string(), name.to_string()))
                .unwrap_or_default();
            let (quantile, seasons, horizon) = reserve_settings(allotment);
            let mut forecaster = Forecaster::new(quantile);
            forecaster.stagger(self.series.len());
            // A restored history is forecast from at once.
            forecaster.warm(&history.tick_demand.tail(history.tick_demand.len()));
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
                kept: None,
                scored_at: None,
                fitting: false,
                last_demand: 0.0,
                denied_at: None,
                next: Band::default(),
                label: self
                    .metrics
                    .as_ref()
                    .map_or_else(String::new, |m| m.tenant_label(&tenant.name)),
            });
            self.next_key += 1;
        }
    }

    /// Puts a new policy in force, between ticks: the daemon's reloads come
    /// here, so a reload never races the sizing of reserves. The core swaps
    /// its registry (see [`crate::admission::Admission::reload`]); series
    /// follow their tenants by name, keeping their history and taking the
    /// new reserve settings; series of tenants and resources the policy
    /// dropped end.
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
                s.kept = None;
                s.scored_at = None;
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
