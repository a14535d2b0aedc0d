//! What the oracle mode knows: the trace's true demand rate per tick for
//! every (tenant, resource), as it reaches one daemon. Its reserves are
//! sized from the peak over each horizon: the bound no forecast beats.

use std::collections::HashMap;
use std::time::Duration;

use super::trace::{Row, Trace};
use crate::clock::{Nanos, duration_to_nanos};
use crate::planner::forecast::Band;

/// Per-tick demand rates, by (tenant, resource).
pub(super) struct Demand {
    tick: Nanos,
    rates: HashMap<(String, String), Vec<f64>>,
}

impl Demand {
    /// The demand of `rows` (some or all of `trace`'s), per `tick`.
    pub(super) fn of<'a>(trace: &Trace, rows: impl Iterator<Item = &'a Row>, tick: Nanos) -> Self {
        let ticks = (trace.rows.last().map_or(0, |r| r.at) / tick + 1) as usize;
        let mut rates: HashMap<(String, String), Vec<f64>> = HashMap::new();
        let per_sec = 1e9 / tick as f64;
        for row in rows {
            let key = (
                trace.tenants[row.tenant as usize].clone(),
                trace.resources[row.resource as usize].clone(),
            );
            rates.entry(key).or_insert_with(|| vec![0.0; ticks])[(row.at / tick) as usize] +=
                row.amount as f64 * per_sec;
        }
        Self { tick, rates }
    }

    /// The highest demand rate over `[now, now + horizon)`.
    pub(super) fn band(&self, tenant: &str, resource: &str, now: Nanos, horizon: Duration) -> Band {
        let Some(rates) = self.rates.get(&(tenant.to_owned(), resource.to_owned())) else {
            return Band::default();
        };
        let from = (now / self.tick) as usize;
        let to = ((now + duration_to_nanos(horizon)) / self.tick) as usize;
        let peak = rates
            .iter()
            .skip(from)
            .take(to.saturating_sub(from).max(1))
            .fold(0.0, |m: f64, r| m.max(*r));
        Band {
            mean: peak,
            lower: peak,
            upper: peak,
        }
    }
}
