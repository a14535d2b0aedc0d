//! A share: this daemon's part of a resource that many daemons enforce
//! together (DESIGN §9): the capacity and emergency pool held here, and per
//! tenant the part of its guarantee (and burst) held here. Reserves and the
//! shared pool are sized locally within it, as for a daemon alone. The
//! cluster's lease decides it each tick; `sharing.rs` puts it in force.

use std::collections::HashMap;
use std::sync::Arc;

use crate::policy::{Kind, LimitSpec};

/// This daemon's part of one resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Share {
    /// Capacity held here (tokens/s or units), at most the policy's.
    pub capacity: u64,
    /// Of which the emergency pool, at most the policy's.
    pub emergency: u64,
    /// Per tenant, the part (0..=1) of its guarantee held here; tenants not
    /// named hold none here until a share names them.
    pub parts: HashMap<Arc<str>, f64>,
}

impl Share {
    /// The part of `tenant`'s guarantee held here.
    pub fn part(&self, tenant: &str) -> f64 {
        self.parts
            .get(tenant)
            .copied()
            .unwrap_or(0.0)
            .clamp(0.0, 1.0)
    }
}

/// `limit` with `part` of its guarantee and burst; a rate bucket keeps at
/// least one second of its rate as depth.
pub(super) fn localized(kind: Kind, limit: &LimitSpec, part: f64) -> LimitSpec {
    let guaranteed = (limit.guaranteed as f64 * part).floor() as u64;
    let mut local = limit.clone();
    local.guaranteed = guaranteed;
    if kind == Kind::Rate {
        let depth = (limit.depth() as f64 * part).floor() as u64;
        local.burst = Some(depth.max(guaranteed));
    }
    local
}
