//! Targets: from every live instance's wants for a resource, the share each
//! instance should hold (DESIGN §9, step 2). Every daemon runs the same
//! arithmetic over the same wants (the store returns them all), so they
//! agree on who should hold what; the store's grant rule, not this, keeps
//! Σ leases ≤ C while shares move.
//!
//! * Each tenant's guarantee is split over the instances in proportion to
//!   where its demand is; [`EVEN`] of it is split evenly, so an instance
//!   that sees its first request of a tenant holds some of its guarantee
//!   already. With no demand anywhere it is split evenly.
//! * Reserves are water-filled by QoS weight over all (tenant, instance)
//!   wants within what the guarantees leave, as one daemon does (§2).
//! * The shared pool is split in proportion to demand no guarantee or
//!   reserve covers (of classes that may borrow), evenly if there is none;
//!   the emergency pool evenly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::admission::Share;
use crate::planner::Wants;
use crate::planner::sizing::water_fill;
use crate::policy::{Policy, TenantSpec};

/// The part of each guarantee split evenly over the instances.
pub const EVEN: f64 = 0.1;

/// What the policy says of one tenant on the resource.
#[derive(Debug, Clone, PartialEq)]
struct TenantTerms {
    guaranteed: f64,
    /// The reserve's cap; `None`: no reserve.
    reserve_max: Option<f64>,
    weight: u32,
    borrow: bool,
}

/// What the policy says of one resource, for planning.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    pub capacity: u64,
    pub emergency: u64,
    tenants: BTreeMap<String, TenantTerms>,
    /// Tenants not listed, if the policy has defaults.
    defaults: Option<TenantTerms>,
}

impl Terms {
    /// The terms of `resource` under `policy`; `None` if it has no such
    /// resource.
    pub fn of(policy: &Policy, resource: &str) -> Option<Terms> {
        let spec = policy.resources.get(resource)?;
        let qos = policy.qos_classes();
        let room = spec.room() as f64;
        let terms = |t: &TenantSpec| {
            // A validated policy names only classes it has.
            let (weight, borrow) = qos.get(&t.qos).map_or((1, false), |q| (q.weight, q.borrow));
            let limit = t.limits.get(resource).cloned().unwrap_or_default();
            let g = limit.guaranteed as f64;
            TenantTerms {
                guaranteed: g,
                reserve_max: limit
                    .reserve
                    .map(|r| r.max.map_or((room - g).max(0.0), |m| m as f64)),
                weight,
                borrow,
            }
        };
        Some(Terms {
            capacity: spec.capacity,
            emergency: spec.emergency_units(),
            tenants: policy
                .tenants
                .iter()
                .map(|(name, t)| (name.clone(), terms(t)))
                .collect(),
            defaults: policy.defaults.as_ref().map(terms),
        })
    }

    fn tenant(&self, name: &str) -> Option<&TenantTerms> {
        self.tenants.get(name).or(self.defaults.as_ref())
    }
}

/// The share one instance should hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    /// Capacity: its guarantees, reserves, shared and emergency parts.
    pub capacity: u64,
    pub emergency: f64,
    /// Per tenant, the part of its guarantee held there.
    pub parts: HashMap<Arc<str>, f64>,
}

impl Target {
    /// The share to enforce while holding `held` of this target's
    /// capacity: every part scaled down alike if `held` is less.
    pub fn share(&self, held: u64) -> Share {
        let scale = if self.capacity == 0 {
            0.0
        } else {
            (held as f64 / self.capacity as f64).min(1.0)
        };
        Share {
            capacity: held,
            emergency: (self.emergency * scale).floor() as u64,
            parts: self
                .parts
                .iter()
                .map(|(t, p)| (t.clone(), p * scale))
                .collect(),
        }
    }
}

/// The target of instance `me` among `instances` (each with its wants;
/// `me` is one of them). Σ of every instance's target capacity ≤ C.
pub fn plan(terms: &Terms, instances: &[(&str, &Wants)], me: &str) -> Target {
    let n = instances.len().max(1);
    let Some(mine) = instances.iter().position(|(m, _)| *m == me) else {
        return Target::default();
    };
    let room = terms.capacity.saturating_sub(terms.emergency) as f64;
    // Every tenant the policy lists, and those from defaults someone saw.
    let mut names: BTreeSet<&str> = terms.tenants.keys().map(String::as_str).collect();
    if terms.defaults.is_some() {
        for (_, w) in instances {
            names.extend(w.tenants.keys().map(String::as_str));
        }
    }
    let tenants: Vec<(&str, &TenantTerms)> = names
        .into_iter()
        .filter_map(|name| Some((name, terms.tenant(name)?)))
        .collect();
    // Guarantees, scaled down together if defaults overcommit the room.
    let g_total: f64 = tenants.iter().map(|(_, t)| t.guaranteed).sum();
    let g_scale = if g_total > room { room / g_total } else { 1.0 };

    let mut parts = HashMap::new();
    // (tenant, instance) → guarantee held there, and demand there.
    let mut held = vec![vec![0.0; n]; tenants.len()];
    let mut demand = vec![vec![0.0; n]; tenants.len()];
    for (i, (name, t)) in tenants.iter().enumerate() {
        for (k, (_, w)) in instances.iter().enumerate() {
            demand[i][k] = w.demand(name);
        }
        let total: f64 = demand[i].iter().sum();
        for k in 0..n {
            let part = if total > 0.0 {
                (1.0 - EVEN) * demand[i][k] / total + EVEN / n as f64
            } else {
                1.0 / n as f64
            };
            held[i][k] = t.guaranteed * g_scale * part;
            if k == mine {
                parts.insert(Arc::from(*name), part * g_scale);
            }
        }
    }
    let guaranteed: f64 = held.iter().flatten().sum();

    // Reserves: every (tenant, instance) want beyond the guarantee there.
    let mut wants = Vec::new();
    let mut who = Vec::new();
    for (i, (_, t)) in tenants.iter().enumerate() {
        if let Some(max) = t.reserve_max {
            for k in 0..n {
                wants.push(((demand[i][k] - held[i][k]).clamp(0.0, max), t.weight));
                who.push((i, k));
            }
        }
    }
    let fills = water_fill(&wants, (room - guaranteed).max(0.0));
    let mut reserved = vec![vec![0.0; n]; tenants.len()];
    for (&(i, k), fill) in who.iter().zip(&fills) {
        reserved[i][k] = *fill;
    }
    let reserved_total: f64 = fills.iter().sum();

    // Shared: in proportion to demand nothing above covers, of borrowers.
    let unmet: Vec<f64> = (0..n)
        .map(|k| {
            tenants
                .iter()
                .enumerate()
                .filter(|(_, (_, t))| t.borrow)
                .map(|(i, _)| (demand[i][k] - held[i][k] - reserved[i][k]).max(0.0))
                .sum()
        })
        .collect();
    let unmet_total: f64 = unmet.iter().sum();
    let shared = (room - guaranteed - reserved_total).max(0.0);
    let shared_mine = if unmet_total > 0.0 {
        shared * unmet[mine] / unmet_total
    } else {
        shared / n as f64
    };
    let emergency = terms.emergency as f64 / n as f64;
    let mine_total = held.iter().map(|h| h[mine]).sum::<f64>()
        + reserved.iter().map(|r| r[mine]).sum::<f64>()
        + shared_mine
        + emergency;
    Target {
        capacity: (mine_total.floor() as u64).min(terms.capacity),
        emergency,
        parts,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
