//! What the oracle mode knows: the trace's true demand rate per tick for
//! every (tenant, resource), as it reaches one daemon. Its reserves are
//! sized in hindsight for each tick alone: the tick's actual demand over
//! the guarantee, water-filled by the planner within what is left, with
//! no risk shrink (the band has no width) and no lending lag (the band of
//! every horizon is the coming tick's, so nothing is held for later).

use super::trace::{Row, Trace};
use crate::clock::Nanos;
use crate::planner::forecast::Band;
use std::collections::HashMap;

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

    /// The demand rate of the tick `[now, now + tick)`, whatever the
    /// horizon: sizing for the peak of a longer horizon (as the oracle
    /// once did) holds capacity for demand that has not come yet.
    pub(super) fn band(&self, tenant: &str, resource: &str, now: Nanos) -> Band {
        let Some(rates) = self.rates.get(&(tenant.to_owned(), resource.to_owned())) else {
            return Band::default();
        };
        let rate = rates
            .get((now / self.tick) as usize)
            .copied()
            .unwrap_or(0.0);
        Band {
            mean: rate,
            lower: rate,
            upper: rate,
        }
    }
}
