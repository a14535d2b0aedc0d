//! The capacity checks of a run: what was granted for a resource, summed
//! over every simulated daemon, against its one global capacity `C`; and
//! with many daemons, their leases against `C` (DESIGN §2, §9).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::admission::Registry;

/// What the pools of a resource can hold at once, over every daemon:
/// every tenant's bucket depth plus everything not guaranteed (reserves,
/// shared, emergency), from the policy (a daemon's share of it is less).
pub(super) fn slack(registries: &[Arc<Registry>], resource: &str) -> f64 {
    // Tenants by name: each daemon knows those it saw (defaults).
    let mut tenants: BTreeMap<Arc<str>, (u64, u64)> = BTreeMap::new();
    let mut capacity = 0;
    for registry in registries {
        let Some(r) = registry.resource(resource) else {
            continue;
        };
        capacity = r.policy_capacity().0;
        for t in registry.tenants() {
            let limit = &t.allotments[r.id].limit;
            tenants.insert(t.name.clone(), (limit.depth(), limit.guaranteed));
        }
    }
    let depths: u64 = tenants.values().map(|(d, _)| d).sum();
    let guaranteed: u64 = tenants.values().map(|(_, g)| g).sum();
    depths as f64 + capacity.saturating_sub(guaranteed) as f64
}

/// Windows of 1, 10 and 60 ticks, and the whole run, in which more was
/// granted than capacity allows: `C × window + slack`.
pub(super) fn rate_violations(per_tick: &[u64], capacity: f64, tick_secs: f64, slack: f64) -> u64 {
    let mut violations = 0;
    for window in [1, 10, 60, per_tick.len().max(1)] {
        if window > per_tick.len() {
            continue;
        }
        let mut sum: u64 = per_tick[..window].iter().sum();
        let bound = capacity * window as f64 * tick_secs + slack;
        for i in window..=per_tick.len() {
            if sum as f64 > bound {
                violations += 1;
            }
            if i < per_tick.len() {
                sum = sum + per_tick[i] - per_tick[i - window];
            }
        }
    }
    violations
}
