//! Policy reload (DESIGN §7): a new validated policy is put in force without
//! a restart. The core builds the next registry from the one in force,
//! keeping every pool's state by name, and swaps it in; leases and waiters
//! carry over, tenants the policy drops drain.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::facade::Admission;
use super::registry::{Registry, guaranteed_totals, local_guaranteed};
use super::resource::Resource;
use super::tenant::Tenant;
use crate::clock::Nanos;
use crate::policy::{Kind, Policy, PolicyError, Problem};
use crate::policy::{LimitSpec, TenantSpec};

/// What a reload changed, by name (for the log line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub tenants_added: Vec<String>,
    pub tenants_removed: Vec<String>,
    pub resources_added: Vec<String>,
    pub resources_removed: Vec<String>,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "tenants added: {}; removed: {}; resources added: {}; removed: {}",
            list(&self.tenants_added),
            list(&self.tenants_removed),
            list(&self.resources_added),
            list(&self.resources_removed)
        )
    }
}

impl Admission {
    /// Puts `policy` (validated; `origin` names it in errors) in force.
    ///
    /// Buckets and counters of every tenant × resource the new policy
    /// keeps carry over, resized to the new limits; leases and waiters are
    /// kept (waiters are served under the new limits). A tenant the policy
    /// no longer lists loses its pools at once, and its leases give back
    /// as they end; a resource it no longer names is refused to new
    /// Acquires the same way. A resource cannot change its kind: that
    /// reload is refused and the policy in force stays.
    pub fn reload(
        self: &Arc<Self>,
        policy: &Policy,
        origin: &str,
    ) -> Result<Reloaded, PolicyError> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.registry.load_full();
        check_kinds(&old, policy, origin)?;
        let now = self.clock.now();
        let next = {
            let _creating = old.hold_creations();
            let next = Arc::new(old.reloaded(policy, self.config.max_default_tenants, now));
            self.registry.store(next.clone());
            old.replaced_by(next.clone());
            next
        };
        if let Some(background) = &mut *self.background.lock().unwrap_or_else(|p| p.into_inner()) {
            background.dispatch_new(self);
        }
        for r in next.resources.iter() {
            r.waiters.wake();
        }
        Ok(diff(&old, &next))
    }
}

/// A resource keeps its kind for the daemon's lifetime: its pools, gate
/// and leases are of that kind.
fn check_kinds(old: &Registry, policy: &Policy, origin: &str) -> Result<(), PolicyError> {
    let problems: Vec<Problem> = old
        .resources
        .iter()
        .filter_map(|r| {
            let spec = policy.resources.get(&*r.name)?;
            (spec.kind != r.kind).then(|| Problem {
                path: format!("resources.{}.kind", r.name),
                reason: format!(
                    "cannot change from {} to {} while the daemon runs \
                     (restart it, or give the resource a new name)",
                    kind_name(r.kind),
                    kind_name(spec.kind)
                ),
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PolicyError {
            origin: origin.to_owned(),
            problems,
        })
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Rate => "rate",
        Kind::Concurrency => "concurrency",
    }
}

fn diff(old: &Registry, next: &Registry) -> Reloaded {
    let names = |r: &Registry| -> std::collections::BTreeSet<String> {
        r.tenants()
            .iter()
            .filter(|t| !t.from_defaults)
            .map(|t| t.name.to_string())
            .collect()
    };
    let resources = |r: &Registry| -> std::collections::BTreeSet<String> {
        r.resource_names().map(str::to_owned).collect()
    };
    let (t0, t1) = (names(old), names(next));
    let (r0, r1) = (resources(old), resources(next));
    Reloaded {
        tenants_added: t1.difference(&t0).cloned().collect(),
        tenants_removed: t0.difference(&t1).cloned().collect(),
        resources_added: r1.difference(&r0).cloned().collect(),
        resources_removed: r0.difference(&r1).cloned().collect(),
    }
}

/// Most names [`Registry::departed`] remembers.
const MAX_DEPARTED: usize = 100_000;

impl Registry {
    /// The registry that puts `policy` in force after this one: pools the
    /// policy makes smaller shrink first, then the next registry is built
    /// on the kept state, and what the cuts left held is recounted.
    fn reloaded(&self, policy: &Policy, max_default_tenants: usize, now: Nanos) -> Registry {
        let carried = self.carried(policy, max_default_tenants);
        let guaranteed = guaranteed_totals(policy, carried.len());
        self.shrink_for(policy, &carried, &guaranteed, now);
        let mut next = Registry::build(policy, max_default_tenants, Some(self), &carried, now);
        // Tenants that left: if one comes back from defaults, it starts
        // empty like any a reload adds.
        let mut departed = self.departed.clone();
        for t in self.tenants() {
            if next.existing_tenant(&t.name).is_none() && departed.len() < MAX_DEPARTED {
                departed.insert(t.name.clone());
            }
        }
        departed.retain(|name| next.existing_tenant(name).is_none());
        next.departed = departed;
        // Pools grown back since the cuts hold nothing beyond them now.
        for r in next.live() {
            let _sizing = r.lock_sizing();
            if r.recount_excess() {
                r.resize_shared(now);
            }
        }
        next
    }

    /// Tenants a reload to `policy` keeps as tenants from its defaults:
    /// those it does not list (created from defaults, or listed before),
    /// while it has defaults, oldest first, as many as the new guarantees
    /// leave room for. They keep their id, pools and history.
    fn carried(&self, policy: &Policy, max_default_tenants: usize) -> Vec<Arc<Tenant>> {
        let Some(defaults) = &policy.defaults else {
            return Vec::new();
        };
        let mut room = max_default_tenants;
        for (name, spec) in &policy.resources {
            let g = defaults.limits.get(name).map_or(0, |l| l.guaranteed);
            if g == 0 {
                continue;
            }
            let free = spec.room().saturating_sub(policy.guaranteed_on(name));
            room = room.min((free / g) as usize);
        }
        let mut carried: Vec<Arc<Tenant>> = self
            .tenants()
            .into_iter()
            .filter(|t| !policy.tenants.contains_key(&*t.name))
            .collect();
        carried.sort_by_key(|t| t.id);
        carried.truncate(room);
        carried
    }

    /// Before a reload to `policy`: shrinks every pool the new policy makes
    /// smaller, so what grows after finds the room. Guarantees cut shrink;
    /// tenants or resources dropped lose their pools and are retired (their
    /// leases still give back); reserves are cut to their new cap, or all
    /// to 0 on a resource whose new guarantees (and units still held beyond
    /// cuts) leave them no room; the planner sizes them again next tick.
    /// Concurrency units held beyond a pool's new limit stay out of the
    /// shared pool until they come back (see [`Resource::settle`]).
    fn shrink_for(
        &self,
        policy: &Policy,
        carried: &[Arc<Tenant>],
        guaranteed: &HashMap<&str, u64>,
        now: Nanos,
    ) {
        let carried_tenants = carried;
        let carried: HashSet<u64> = carried.iter().map(|t| t.id).collect();
        // Each tenant with its spec under `policy` (None: dropped), looked
        // up once.
        let tenants: Vec<(Arc<Tenant>, Option<&TenantSpec>)> = self
            .tenants()
            .into_iter()
            .map(|t| {
                let spec = match policy.tenants.get(&*t.name) {
                    Some(spec) => Some(spec),
                    None if carried.contains(&t.id) => policy.defaults.as_ref(),
                    None => None,
                };
                (t, spec)
            })
            .collect();
        // What a tenant has of a resource `policy` still names; None: the
        // tenant is dropped (or its pools were retired before).
        let limit_of = |(before, spec): &(Arc<Tenant>, Option<&TenantSpec>),
                        r: &Resource|
         -> Option<LimitSpec> {
            if before.allotments[r.id].holdings.is_retired() {
                return None;
            }
            Some(
                spec.as_ref()?
                    .limits
                    .get(&*r.name)
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        // One resource at a time, under its sizing lock once per pass.
        for r in self.resources.iter() {
            let _sizing = r.lock_sizing();
            let rspec = policy.resources.get(&*r.name);
            // 1. Guarantees: those cut shrink now (a larger depth keeps the
            // tokens held: no new ones); dropped pools retire.
            for entry in &tenants {
                let a = &entry.0.allotments[r.id];
                // What the pool holds here (a share may hold only part).
                let here = rspec
                    .and_then(|_| limit_of(entry, r))
                    .map(|l| r.localize(&entry.0.name, &l));
                match here {
                    Some(l) if l.guaranteed as f64 <= a.holdings.guaranteed.size() => {
                        a.holdings.fit(r.kind, &l, now);
                    }
                    Some(_) => {}
                    None => {
                        a.holdings.retire();
                        a.holdings.guaranteed.resize(0.0, 0, now);
                        r.set_reserve_size(&a.holdings.reserve, 0, now);
                    }
                }
                r.watch_drain(&a.holdings);
            }
            r.recount_excess();
            // 2. Reserves, now that what is held beyond the cuts is known:
            // cut to their new cap, or all to 0 if there is no room.
            let Some(spec) = rspec else {
                continue;
            };
            let (capacity, emergency) = r.local_capacity(spec.capacity, spec.emergency_units());
            let room = capacity.saturating_sub(emergency);
            let crowded = local_guaranteed(r, policy, carried_tenants)
                .unwrap_or(guaranteed[&*r.name])
                + r.reserve_total.load(Ordering::Relaxed)
                + r.excess.load(Ordering::Relaxed)
                > room;
            for entry in &tenants {
                let Some(l) = limit_of(entry, r) else {
                    continue;
                };
                let held_here = r.localize(&entry.0.name, &l).guaranteed;
                let cap = match &l.reserve {
                    _ if crowded => 0,
                    None => 0,
                    Some(res) => res.max.unwrap_or(room.saturating_sub(held_here)),
                };
                let a = &entry.0.allotments[r.id];
                if (a.holdings.reserve.size() as u64) > cap {
                    r.set_reserve_size(&a.holdings.reserve, cap, now);
                    r.watch_drain(&a.holdings);
                }
            }
            r.recount_excess();
        }
    }
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
