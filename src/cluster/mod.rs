//! Many daemons, one capacity (DESIGN §9): each daemon enforces locally
//! from a lease, its share of every resource's capacity, kept in a store
//! all daemons share (Redis or Valkey; an in-memory one for the simulator).
//!
//! Data flow, once per tick and per resource: [`plan`] turns every live
//! instance's wants into this instance's target share; the daemon lowers its
//! pools to `min(in force, target)`, sends an [`store::Ask`], and the store
//! grants `min(target, C − Σ others' leases)`; the grant is put in force
//! (raised only now). The store's script holds the invariant (Σ leases ≤ C);
//! the targets only decide who gets what.

pub mod member;
pub mod plan;
pub mod redis;
pub mod store;

use crate::admission::Admission;
use crate::clock::Nanos;
use std::collections::BTreeMap;

use crate::planner::Wants;
use member::{Apply, Member};
use store::{Ask, Reply};

/// Puts `applies` in force on `core`.
pub fn put_in_force(core: &Admission, applies: Vec<Apply>, now: Nanos) {
    for (resource, share) in applies {
        if let Err(e) = core.apply_share(&resource, Some(share), now) {
            // A reload dropped the resource since the member last looked.
            tracing::debug!(%resource, error = %e, "share not applied");
        }
    }
}

/// An exchange's first half, after a tick at `now` with this daemon's
/// `wants` per resource (the planner's [`crate::planner::Planner::wants`]): leases past
/// their expiry fall back, shares are lowered to what this daemon asks to
/// keep, and the asks to send are returned (none while one is pending).
pub fn begin(
    member: &mut Member,
    wants: &BTreeMap<String, Wants>,
    core: &Admission,
    now: Nanos,
) -> Vec<Ask> {
    put_in_force(core, member.expire(now), now);
    let held = |name: &str| core.resource_named(name).map_or(0, |r| r.held());
    let (lowered, asks) = member.asks(wants, held);
    put_in_force(core, lowered, now);
    asks
}

/// An exchange's second half: the store's replies to `asks` (sent at
/// `sent_at`) put in force; on an error nothing changes (the leases run
/// out at their expiry).
pub fn finish<E: std::fmt::Display>(
    member: &mut Member,
    core: &Admission,
    asks: &[Ask],
    replies: Result<Vec<Reply>, E>,
    sent_at: Nanos,
    now: Nanos,
) -> Result<(), E> {
    member.answered();
    let replies = replies?;
    for (ask, reply) in asks.iter().zip(&replies) {
        if let Some(apply) = member.granted(&ask.resource, reply, sent_at) {
            put_in_force(core, vec![apply], now);
        }
    }
    Ok(())
}
