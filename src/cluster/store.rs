//! The lease store's protocol: what a daemon sends for one resource each
//! tick ([`Ask`]) and what it gets back ([`Reply`]). [`MemoryStore`] runs the
//! allocation in process (the simulator, tests); `redis.rs` runs the same
//! allocation as one server-side script call per resource.

use std::sync::Arc;
use std::time::Duration;

/// One instance's call for one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The resource (its keys carry it as a hash tag).
    pub resource: Arc<str>,
    /// This daemon process: `<instance_id>/<nonce>`, unique per process.
    pub member: Arc<str>,
    /// The resource's global capacity `C`.
    pub capacity: u64,
    /// The share this instance would like (see `plan`).
    pub target: u64,
    /// The share this instance enforces right now (after lowering).
    pub in_force: u64,
    /// Lease time to live.
    pub ttl: Duration,
    /// This instance's wants, opaque to the store, returned to the others.
    pub wants: String,
}

/// The store's answer to one [`Ask`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The share granted: at most `target`, and at most `C` less the
    /// unexpired leases of the others.
    pub grant: u64,
    /// The store's clock (ms) when it decided; the lease expires at
    /// `now_ms + ttl`.
    pub now_ms: u64,
    /// Every live instance's wants (this one's included), by member.
    pub wants: Vec<(String, String)>,
    /// Σ of the other live instances' leases.
    pub others: u64,
}
