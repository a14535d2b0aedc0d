//! Putting a [`Share`] in force, the way reserves are: pools resized under
//! the resource's sizing lock, shrinks before grows, so the pools never add
//! up to more than the larger of the capacities before and after, and
//! Acquire never waits on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::allotment::{Holdings, guaranteed_depth};
use super::error::AdmissionError;
use super::facade::{Admission, allotment};
use super::share::{Share, localized};
use crate::clock::Nanos;
use crate::policy::LimitSpec;

/// What putting a share in force did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Applied {
    /// Capacity in force after.
    pub capacity: u64,
    /// Σ guarantees held here after.
    pub guaranteed: u64,
    /// Σ reserves after (cut if the share left them no room).
    pub reserved: u64,
}

impl Admission {
    /// Puts `share` in force for `resource` (`None`: this daemon holds the
    /// whole policy again). Guarantees, emergency and reserves that shrink
    /// do so first, then the capacity and the shared pool follow, then what
    /// grows: the pools never add up to more than the larger of the two
    /// capacities. Guarantees are scaled down together if the share cannot
    /// hold them (reserves go first).
    pub fn apply_share(
        &self,
        resource: &str,
        share: Option<Share>,
        now: Nanos,
    ) -> Result<Applied, AdmissionError> {
        let registry = self.registry();
        let Some(r) = registry.resource(resource) else {
            return Err(AdmissionError::NotFound(format!(
                "resource: {resource:?} is not in the policy"
            )));
        };
        let (policy_capacity, policy_emergency) = r.policy_capacity();
        let tenants = registry.tenants();
        let _sizing = r.lock_sizing();
        // The limits each tenant holds here under the new share, scaled
        // down together if they would not fit.
        let share = share.map(|mut s| {
            s.capacity = s.capacity.min(policy_capacity);
            s.emergency = s.emergency.min(policy_emergency).min(s.capacity);
            let room = (s.capacity - s.emergency) as f64;
            let wanted: f64 = tenants
                .iter()
                .map(|t| allotment(t, r).limit.guaranteed as f64 * s.part(&t.name))
                .sum();
            if wanted > room {
                let scale = room / wanted;
                for part in s.parts.values_mut() {
                    *part *= scale;
                }
            }
            Arc::new(s)
        });
        *r.share.lock().unwrap_or_else(|p| p.into_inner()) = share.clone();
        let local: Vec<(Arc<Holdings>, LimitSpec)> = tenants
            .iter()
            .map(|t| {
                let a = allotment(t, r);
                let here = match &share {
                    Some(s) => localized(r.kind, &a.limit, s.part(&t.name)),
                    None => a.limit.clone(),
                };
                (a.holdings.clone(), here)
            })
            .filter(|(h, _)| !h.is_retired())
            .collect();
        let (capacity, emergency) = r.local_capacity(policy_capacity, policy_emergency);
        let guaranteed: u64 = local.iter().map(|(_, l)| l.guaranteed).sum();

        // 1. Shrink: guarantees, emergency, then reserves to what is left.
        for (h, l) in &local {
            let depth = guaranteed_depth(r.kind, l);
            if (l.guaranteed as f64) < h.guaranteed.size() || depth < h.guaranteed.depth() {
                let before = h.guaranteed.size() as u64;
                h.fit(r.kind, l, now);
                r.guaranteed_total
                    .fetch_sub(before.saturating_sub(l.guaranteed), Ordering::Relaxed);
                r.watch_drain(h);
            }
        }
        if (emergency as f64) < r.emergency.size() {
            r.emergency.resize(emergency as f64, emergency, now);
        }
        r.recount_excess();
        let room = capacity.saturating_sub(emergency);
        let reserved = r.reserve_total.load(Ordering::Relaxed);
        let excess = r.excess.load(Ordering::Relaxed);
        let fits = room.saturating_sub(guaranteed).saturating_sub(excess);
        if reserved > fits {
            // Cut every reserve by the same factor; the planner sizes them
            // again next tick within the new room.
            let keep = fits as f64 / reserved as f64;
            for (h, _) in &local {
                let size = h.reserve.size();
                if size > 0.0 {
                    r.set_reserve_size(&h.reserve, (size * keep).floor() as u64, now);
                    r.watch_drain(h);
                }
            }
            r.recount_excess();
        }

        // 2. The capacity, and the shared pool within it (it shrinks now if
        // the capacity does, and makes room for the guarantees that grow).
        r.capacity.store(capacity, Ordering::Relaxed);
        r.guaranteed_total.store(guaranteed, Ordering::Relaxed);
        r.emergency_units.store(emergency, Ordering::Relaxed);
        r.resize_shared(now);
        if let Some(gate) = &r.gate {
            gate.set_limit(capacity);
        }

        // 3. Grow: guarantees and emergency, into the room just made.
        for (h, l) in &local {
            let depth = guaranteed_depth(r.kind, l);
            if (l.guaranteed as f64) > h.guaranteed.size() || depth > h.guaranteed.depth() {
                h.fit(r.kind, l, now);
            }
        }
        if (emergency as f64) > r.emergency.size() {
            r.emergency.resize(emergency as f64, emergency, now);
        }
        r.waiters.wake();
        Ok(Applied {
            capacity,
            guaranteed,
            reserved: r.reserve_total.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
#[path = "sharing_tests.rs"]
mod tests;
