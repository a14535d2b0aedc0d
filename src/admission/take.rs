//! The Acquire decision itself (DESIGN §3): pay `amount` from the tiers in
//! order, all or nothing, and when that fails say when it will not.
//! Synchronous and allocation-free: one CAS per pool touched.

use std::time::Duration;

use super::allotment::Allotment;
use super::api::Denial;
use super::loan::Loan;
use super::resource::Resource;
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
    Paid { split: Split, remaining: u64 },
    Short(Denial),
}

/// Pays `amount` from the tenant's tiers, or takes nothing. A payment is
/// counted in the allotment's demand counters here, where the tier that
/// completed it is known; denials are counted by the caller once final.
#[inline]
pub fn take(
    resource: &Resource,
    allotment: &Allotment,
    amount: u64,
    scope: Scope,
    now: Nanos,
) -> Take {
    if let Some(gate) = &resource.gate
        && !gate.take_exact(amount)
    {
        return Take::Short(denial(resource, allotment, amount, scope, now));
    }
    let mut split = Split::default();
    let mut need = amount;
    let mut loan = None;
    let mut tiers = allotment.tiers(scope == Scope::Own).iter().copied();
    while let Some(tier) = tiers.next() {
        let (got, available) = resource.pool(allotment, tier).take_up_to(need, now);
        split.set(tier, got);
        need -= got;
        if need > 0 && tier == Tier::Shared && resource.kind == Kind::Rate {
            // Shared is empty: borrow what other tenants' reserves hold
            // unused before emergency or a denial (DESIGN §2).
            loan = Loan::borrow(&resource.lenders, allotment, need, now);
            need -= loan.as_ref().map_or(0, |l| l.total);
        }
        if need == 0 {
            // Tiers before this one were emptied; add what this one and
            // the ones after still hold.
            let mut remaining = available - got;
            for later in tiers {
                remaining += resource.pool(allotment, later).available(now);
            }
            if let Some(gate) = &resource.gate {
                remaining = remaining.min(gate.available());
            }
            // Borrowed tokens are opportunistic capacity: shared, to the
            // borrower (a refund goes to the shared pool).
            let lent = loan.as_ref().map_or(0, |l| l.total);
            split.shared += lent;
            let paid = if tier == Tier::Shared {
                got + lent
            } else {
                got
            };
            allotment.holdings.counters.record_grant(&split, tier, paid);
            return Take::Paid { split, remaining };
        }
    }
    // Short: undo the partial takes (and the gate's whole amount).
    for tier in Tier::ALL {
        resource
            .pool(allotment, tier)
            .put_back(split.get(tier), now);
    }
    if let Some(loan) = loan {
        loan.undo(now);
    }
    if let Some(gate) = &resource.gate {
        gate.put_back(amount);
    }
    Take::Short(denial(resource, allotment, amount, scope, now))
}

/// Returns a grant's split to the pools that paid it, and to the gate.
pub fn give_back(resource: &Resource, allotment: &Allotment, split: &Split, now: Nanos) {
    for tier in Tier::ALL {
        resource
            .pool(allotment, tier)
            .put_back(split.get(tier), now);
    }
    if let Some(gate) = &resource.gate {
        gate.put_back(split.total());
    }
}

/// Tokens or units the tenant could take right now.
pub fn remaining(resource: &Resource, allotment: &Allotment, scope: Scope, now: Nanos) -> u64 {
    let sum: u64 = allotment
        .tiers(scope == Scope::Own)
        .iter()
        .map(|&t| resource.pool(allotment, t).available(now))
        .sum();
    match &resource.gate {
        Some(gate) => sum.min(gate.available()),
        None => sum,
    }
}

/// Why `amount` cannot be paid now, and when it might: what a denial
/// says (no pool is touched).
#[cold]
pub(super) fn denial(
    resource: &Resource,
    allotment: &Allotment,
    amount: u64,
    scope: Scope,
    now: Nanos,
) -> Denial {
    let (remaining, wait) = match resource.kind {
        Kind::Rate => {
            // One look per bucket gives both what it holds and how it fills.
            let mut pools = [(0.0, 0.0, 0); 4];
            let mut n = 0;
            let mut remaining = 0;
            for &t in allotment.tiers(scope == Scope::Own) {
                match resource.pool(allotment, t) {
                    Pool::Rate(b) => {
                        let o = b.outlook(now);
                        remaining += o.available;
                        pools[n] = (o.fill, o.rate, o.depth);
                        n += 1;
                    }
                    pool => remaining += pool.available(now),
                }
            }
            // Not reachable at the current sizes: look again after the next
            // resize, one tick (1 s) away at most.
            let wait = seconds_to_gather(&pools[..n], amount).unwrap_or(1.0);
            (remaining, wait)
        }
        Kind::Concurrency => {
            let remaining = remaining(resource, allotment, scope, now);
            // Units come back as leases end: with `held` leases of mean hold
            // time H, one unit returns every H / held on average.
            let deficit = amount.saturating_sub(remaining).max(1);
            let held = resource.held().max(1);
            let hold = resource.hold_time() as f64 / NANOS_PER_SEC as f64;
            (remaining, (hold * deficit as f64 / held as f64).max(0.001))
        }
    };
    Denial {
        retry_after: Duration::from_secs_f64(wait.min(3600.0)),
        remaining,
    }
}

/// Most pools one request draws from: the four tiers.
const MAX_POOLS: usize = 4;

/// The least `t` (seconds) at which `Σ max(0, min(depth, fill + rate·t))
/// ≥ need` over at most four pools given as (fill, rate, depth), where a
/// fill below zero is debt; `None` if never. Allocates nothing.
pub fn seconds_to_gather(pools: &[(f64, f64, u64)], need: u64) -> Option<f64> {
    assert!(pools.len() <= MAX_POOLS, "at most one pool per tier");
    let need = need as f64;
    let mut value: f64 = pools.iter().map(|p| p.0.clamp(0.0, p.2 as f64)).sum();
    if value >= need {
        return Some(0.0);
    }
    // A pool in debt first refills to zero, contributing nothing; fold that
    // delay in by measuring every pool from the moment it starts to count.
    // (starts counting, full, rate) per pool still filling.
    let mut buf = [(0.0, 0.0, 0.0); MAX_POOLS];
    let mut n = 0;
    for p in pools.iter().filter(|p| p.1 > 0.0 && (p.2 as f64) > p.0) {
        buf[n] = ((-p.0).max(0.0) / p.1, (p.2 as f64 - p.0) / p.1, p.1);
        n += 1;
    }
    let filling = &mut buf[..n];
    if filling.iter().any(|f| f.0 > 0.0) {
        // Rare (debt): step through events in time order.
        return gather_with_debt(filling, value, need);
    }
    filling.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut slope: f64 = filling.iter().map(|f| f.2).sum();
    let mut t = 0.0;
    for &mut (_, full_at, rate) in filling {
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
    let mut buf = [f64::INFINITY; 2 * MAX_POOLS];
    for (i, p) in pools.iter().enumerate() {
        buf[2 * i] = p.0;
        buf[2 * i + 1] = p.1;
    }
    let events = &mut buf[..2 * pools.len()];
    events.sort_by(f64::total_cmp);
    let value_at = |t: f64| -> f64 {
        base + pools
            .iter()
            .map(|&(start, full, rate)| (t.min(full) - start).max(0.0) * rate)
            .sum::<f64>()
    };
    let mut prev = 0.0;
    for &mut t in events {
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
