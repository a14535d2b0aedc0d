//! The Acquire decision itself (DESIGN §3): pay `amount` from the tiers in
//! order, all or nothing, and when that fails say when it will not.
//! Synchronous and allocation-free: one CAS per pool touched.

use std::time::Duration;

use super::registry::{Allotment, Resource, Tenant};
use crate::clock::{NANOS_PER_SEC, Nanos};
use crate::policy::Kind;
use crate::pool::{Pool, Split, Tier};

/// Which tiers a take may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything the tenant's QoS class allows.
    All,
    /// Reserve and guaranteed only: a waiter ranked below a blocked one
    /// must not take shared tokens the blocked one is waiting for.
    Own,
}

/// Outcome of one take.
pub enum Take {
    Paid {
        split: Split,
        remaining: u64,
    },
    Short {
        retry_after: Duration,
        remaining: u64,
    },
}

fn in_scope(tier: Tier, scope: Scope) -> bool {
    scope == Scope::All || matches!(tier, Tier::Reserve | Tier::Guaranteed)
}

/// Pays `amount` from the tenant's tiers, or takes nothing.
#[inline]
pub fn take(
    tenant: &Tenant,
    resource: &Resource,
    allotment: &Allotment,
    amount: u64,
    scope: Scope,
    now: Nanos,
) -> Take {
    if let Some(gate) = &resource.gate {
        let got = gate.take_up_to(amount);
        if got < amount {
            gate.put_back(got);
            return short(tenant, resource, allotment, amount, scope, now);
        }
    }
    let mut split = Split::default();
    let mut need = amount;
    for tier in tenant.tiers().filter(|t| in_scope(*t, scope)) {
        let got = allotment.pool(tier, resource).take_up_to(need, now);
        split.set(tier, got);
        need -= got;
        if need == 0 {
            return Take::Paid {
                split,
                remaining: remaining(tenant, resource, allotment, scope, now),
            };
        }
    }
    // Short: undo the partial takes (and the gate's whole amount).
    for tier in Tier::ALL {
        allotment
            .pool(tier, resource)
            .put_back(split.get(tier), now);
    }
    if let Some(gate) = &resource.gate {
        gate.put_back(amount);
    }
    short(tenant, resource, allotment, amount, scope, now)
}

/// Returns a grant's split to the pools that paid it, and to the gate.
pub fn give_back(resource: &Resource, allotment: &Allotment, split: &Split, now: Nanos) {
    for tier in Tier::ALL {
        allotment
            .pool(tier, resource)
            .put_back(split.get(tier), now);
    }
    if let Some(gate) = &resource.gate {
        gate.put_back(split.total());
    }
}

/// Tokens or units the tenant could take right now.
pub fn remaining(
    tenant: &Tenant,
    resource: &Resource,
    allotment: &Allotment,
    scope: Scope,
    now: Nanos,
) -> u64 {
    let sum: u64 = tenant
        .tiers()
        .filter(|t| in_scope(*t, scope))
        .map(|t| allotment.pool(t, resource).available(now))
        .sum();
    match &resource.gate {
        Some(gate) => sum.min(gate.available()),
        None => sum,
    }
}

#[cold]
fn short(
    tenant: &Tenant,
    resource: &Resource,
    allotment: &Allotment,
    amount: u64,
    scope: Scope,
    now: Nanos,
) -> Take {
    let remaining = remaining(tenant, resource, allotment, scope, now);
    let wait = match resource.kind {
        Kind::Rate => {
            let pools: Vec<(f64, f64, u64)> = tenant
                .tiers()
                .filter(|t| in_scope(*t, scope))
                .filter_map(|t| match allotment.pool(t, resource) {
                    Pool::Rate(b) => Some(b.outlook(now)),
                    Pool::Concurrency(_) => None,
                })
                .collect();
            // Not reachable at the current sizes: look again after the next
            // resize, one tick (1 s) away at most.
            seconds_to_gather(&pools, amount).unwrap_or(1.0)
        }
        Kind::Concurrency => {
            // Units come back as leases end: with `held` leases of mean hold
            // time H, one unit returns every H / held on average.
            let deficit = amount.saturating_sub(remaining).max(1);
            let held = resource.held().max(1);
            let hold = resource.hold_time() as f64 / NANOS_PER_SEC as f64;
            (hold * deficit as f64 / held as f64).max(0.001)
        }
    };
    Take::Short {
        retry_after: Duration::from_secs_f64(wait.min(3600.0)),
        remaining,
    }
}

/// The least `t` (seconds) at which `Σ max(0, min(depth, fill + rate·t))
/// ≥ need` over the pools given as (fill, rate, depth), where a fill below
/// zero is debt; `None` if never.
pub fn seconds_to_gather(pools: &[(f64, f64, u64)], need: u64) -> Option<f64> {
    let need = need as f64;
    let mut value: f64 = pools.iter().map(|p| p.0.clamp(0.0, p.2 as f64)).sum();
    if value >= need {
        return Some(0.0);
    }
    // A pool in debt first refills to zero, contributing nothing; fold that
    // delay in by measuring every pool from the moment it starts to count.
    let mut filling: Vec<(f64, f64, f64)> = pools
        .iter()
        .filter(|p| p.1 > 0.0 && (p.2 as f64) > p.0)
        .map(|p| {
            let starts = (-p.0).max(0.0) / p.1;
            let full = (p.2 as f64 - p.0) / p.1;
            (starts, full, p.1)
        })
        .collect();
    if filling.iter().any(|f| f.0 > 0.0) {
        // Rare (debt): step through events in time order.
        return gather_with_debt(&filling, value, need);
    }
    let mut filling: Vec<(f64, f64)> = filling.drain(..).map(|f| (f.1, f.2)).collect();
    filling.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut slope: f64 = filling.iter().map(|f| f.1).sum();
    let mut t = 0.0;
    for (full_at, rate) in filling {
        let at_full = value + slope * (full_at - t);
        if at_full >= need {
            return Some(t + (need - value) / slope);
        }
        value = at_full;
        t = full_at;
        slope -= rate;
    }
    None
}

/// [`seconds_to_gather`] when some pools are in debt: each pool counts
/// from `starts` to `full` at its rate; find where the sum reaches `need`.
fn gather_with_debt(pools: &[(f64, f64, f64)], base: f64, need: f64) -> Option<f64> {
    let mut events: Vec<f64> = pools.iter().flat_map(|p| [p.0, p.1]).collect();
    events.sort_by(f64::total_cmp);
    let value_at = |t: f64| -> f64 {
        base + pools
            .iter()
            .map(|&(start, full, rate)| (t.min(full) - start).max(0.0) * rate)
            .sum::<f64>()
    };
    let mut prev = 0.0;
    for t in events {
        if value_at(t) >= need {
            // Linear between prev and t.
            let (v0, v1) = (value_at(prev), value_at(t));
            return Some(prev + (t - prev) * (need - v0) / (v1 - v0));
        }
        prev = t;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_time_follows_the_sum_of_rates_until_pools_fill() {
        // Two empty pools, 10/s (depth 10) and 5/s (depth 100): 15/s for
        // the first second, then 5/s.
        let pools = [(0.0, 10.0, 10), (0.0, 5.0, 100)];
        assert_eq!(seconds_to_gather(&pools, 15), Some(1.0));
        assert_eq!(seconds_to_gather(&pools, 20), Some(2.0));
        assert_eq!(seconds_to_gather(&pools, 110), Some(20.0));
        assert_eq!(seconds_to_gather(&pools, 111), None);
        assert_eq!(seconds_to_gather(&[(7.0, 1.0, 10)], 5), Some(0.0));
    }

    #[test]
    fn gather_time_waits_out_debt_first() {
        // 20 tokens of debt at 10/s: 2 s to zero, then 0.5 s for 5.
        assert_eq!(seconds_to_gather(&[(-20.0, 10.0, 10)], 5), Some(2.5));
        // Beside a healthy pool: both count from their own start; at 1 s
        // the second has 1, then both add 11/s: 3 at 1 + 2/11 s.
        let pools = [(-10.0, 10.0, 10), (0.0, 1.0, 10)];
        let t = seconds_to_gather(&pools, 3).unwrap();
        assert!((t - 13.0 / 11.0).abs() < 1e-9, "{t}");
    }
}
