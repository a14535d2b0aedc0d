//! This daemon as a member of a cluster: its lease on every resource, and
//! the steps of one exchange with the store (DESIGN §9). No I/O here: the
//! daemon's planner thread (or the simulator) calls [`Member::asks`] after
//! a tick, puts the lowered shares in force, sends the asks, and puts in
//! force what [`Member::granted`] returns; [`Member::expire`] runs every
//! tick for a store that stopped answering.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::plan::{Target, Terms, plan};
use super::store::{Ask, Reply};
use crate::admission::Share;
use crate::clock::{Nanos, duration_to_nanos};
use crate::planner::Wants;
use crate::policy::Policy;

/// What a daemon enforces once its lease expired with no word from the
/// store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreLoss {
    /// Keep the last lease: available, and safe while the store is down for
    /// every daemon alike (they all hold still).
    Hold,
    /// Fall to `safe_share` of each capacity: strict, safe under a
    /// partition if `safe_share × instances ≤ 1`.
    Safe,
}

/// How this daemon takes part.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberConfig {
    /// This process, unique among the live ones (`<instance>/<nonce>`).
    pub id: Arc<str>,
    pub lease_ttl: Duration,
    pub on_store_loss: OnStoreLoss,
    /// Share of each capacity held before the first lease, and after a
    /// lost one with `OnStoreLoss::Safe`.
    pub safe_share: f64,
}

/// A share to put in force on one resource.
pub type Apply = (String, Share);

/// The lease on one resource.
#[derive(Debug, Clone)]
struct Lease {
    terms: Terms,
    /// The target of the last ask: what grants are shares of.
    target: Target,
    /// Capacity enforced now.
    in_force: u64,
    /// When the lease runs out without a renewal (local clock: the time
    /// the ask that won it was sent, plus the TTL, so never after the
    /// store's own expiry).
    expires: Option<Nanos>,
    /// The other live instances' wants, as of the last reply.
    others: Vec<(String, Wants)>,
    /// Σ of their leases, as of the last reply.
    others_held: u64,
    /// Past `expires` with no renewal.
    lost: bool,
}

/// What one lease looks like now (metrics, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseView {
    pub resource: String,
    pub capacity: u64,
    pub in_force: u64,
    pub target: u64,
    pub others_held: u64,
    /// Live instances, this one included, as of the last reply.
    pub instances: usize,
    pub expires: Option<Nanos>,
    pub lost: bool,
}

/// This daemon's membership.
#[derive(Debug)]
pub struct Member {
    config: MemberConfig,
    leases: BTreeMap<String, Lease>,
    /// Asks sent and not yet answered: no second exchange may start (its
    /// `in_force` would not count a grant about to be put in force).
    pending: bool,
}

impl Member {
    /// A member holding the safe share of every resource of `policy`
    /// until its first grant; returns the shares to put in force.
    pub fn new(config: MemberConfig, policy: &Policy) -> (Self, Vec<Apply>) {
        let mut member = Self {
            config,
            leases: BTreeMap::new(),
            pending: false,
        };
        let applies = member.set_policy(policy);
        (member, applies)
    }

    pub fn id(&self) -> &Arc<str> {
        &self.config.id
    }

    /// Follows a policy reload: new resources start at the safe share,
    /// dropped ones are forgotten, and every share is put in force again
    /// (the reload put the policy's own sizes back).
    pub fn set_policy(&mut self, policy: &Policy) -> Vec<Apply> {
        self.leases
            .retain(|name, _| policy.resources.contains_key(name));
        for name in policy.resources.keys() {
            let Some(terms) = Terms::of(policy, name) else {
                continue;
            };
            match self.leases.get_mut(name) {
                Some(lease) => lease.terms = terms,
                None => {
                    let safe = self.safe(&terms);
                    let alone = Wants::default();
                    let target = plan(&terms, &[(&self.config.id, &alone)], &self.config.id);
                    self.leases.insert(
                        name.clone(),
                        Lease {
                            terms,
                            target,
                            in_force: safe,
                            expires: None,
                            others: Vec::new(),
                            others_held: 0,
                            lost: true,
                        },
                    );
                }
            }
        }
        self.shares()
    }

    /// Every share as it stands.
    pub fn shares(&self) -> Vec<Apply> {
        self.leases
            .iter()
            .map(|(name, l)| (name.clone(), l.target.share(l.in_force)))
            .collect()
    }

    fn safe(&self, terms: &Terms) -> u64 {
        (terms.capacity as f64 * self.config.safe_share.clamp(0.0, 1.0)).floor() as u64
    }

    /// One exchange's first half: from this tick's `wants` (per resource)
    /// and the others' as last heard, each resource's target; the share
    /// lowered to `min(in force, target)`, to put in force *before* the
    /// asks are sent; and the asks. `held` gives the units in use on a
    /// resource (0 for rate): no lease is lowered, nor asks, below them,
    /// since capacity moves only once its holder has let go of it. Nothing
    /// while an exchange is pending (see [`Member::answered`]).
    pub fn asks(
        &mut self,
        wants: &BTreeMap<String, Wants>,
        held: impl Fn(&str) -> u64,
    ) -> (Vec<Apply>, Vec<Ask>) {
        if self.pending {
            return (Vec::new(), Vec::new());
        }
        self.pending = !self.leases.is_empty();
        let mut applies = Vec::new();
        let mut asks = Vec::new();
        let me = self.config.id.clone();
        for (name, lease) in &mut self.leases {
            let mine = wants.get(name).cloned().unwrap_or_default();
            let mut all: Vec<(&str, &Wants)> =
                lease.others.iter().map(|(m, w)| (m.as_str(), w)).collect();
            all.push((&me, &mine));
            lease.target = plan(&lease.terms, &all, &me);
            // Units still held stay under the lease until released: lower
            // to them, and the store keeps them from the others.
            let keep = lease
                .target
                .capacity
                .max(held(name).min(lease.terms.capacity));
            lease.in_force = lease.in_force.min(keep);
            applies.push((name.clone(), lease.target.share(lease.in_force)));
            asks.push(Ask {
                resource: Arc::from(name.as_str()),
                member: me.clone(),
                capacity: lease.terms.capacity,
                target: keep,
                in_force: lease.in_force,
                ttl: self.config.lease_ttl,
                wants: serde_json::to_string(&mine).unwrap_or_default(),
            });
        }
        (applies, asks)
    }

    /// One exchange's second half: the store's `reply` to the ask for
    /// `resource` sent at `sent_at`; returns the share to put in force.
    pub fn granted(&mut self, resource: &str, reply: &Reply, sent_at: Nanos) -> Option<Apply> {
        let me = self.config.id.clone();
        let ttl = duration_to_nanos(self.config.lease_ttl);
        let lease = self.leases.get_mut(resource)?;
        lease.in_force = reply.grant.min(lease.terms.capacity);
        lease.expires = Some(sent_at.saturating_add(ttl));
        lease.lost = false;
        lease.others_held = reply.others;
        lease.others = reply
            .wants
            .iter()
            .filter(|(m, _)| **m != *me)
            .filter_map(|(m, w)| match serde_json::from_str::<Wants>(w) {
                // A daemon that is stopping has handed its lease back.
                Ok(w) if w.leaving => None,
                Ok(w) => Some((m.clone(), w)),
                Err(e) => {
                    tracing::warn!(member = %m, error = %e, "unreadable wants in the lease store, ignored");
                    None
                }
            })
            .collect();
        Some((resource.to_string(), lease.target.share(lease.in_force)))
    }

    /// The exchange is over (its replies handed to [`Member::granted`], or
    /// it failed): the next tick may ask again.
    pub fn answered(&mut self) {
        self.pending = false;
    }

    /// Leases past their expiry with no renewal: with `Safe`, the shares
    /// that fall to the safe share. Newly lost leases are logged.
    pub fn expire(&mut self, now: Nanos) -> Vec<Apply> {
        let on_loss = self.config.on_store_loss;
        let safe_share = self.config.safe_share.clamp(0.0, 1.0);
        let mut applies = Vec::new();
        for (name, lease) in &mut self.leases {
            if lease.lost || lease.expires.is_none_or(|e| now < e) {
                continue;
            }
            lease.lost = true;
            tracing::warn!(resource = %name, ?on_loss, "lease expired without a word from the store");
            if on_loss == OnStoreLoss::Safe {
                let safe = (lease.terms.capacity as f64 * safe_share).floor() as u64;
                lease.in_force = lease.in_force.min(safe);
                applies.push((name.clone(), lease.target.share(lease.in_force)));
            }
        }
        applies
    }

    /// Every lease as it stands.
    pub fn leases(&self) -> Vec<LeaseView> {
        self.leases
            .iter()
            .map(|(name, l)| LeaseView {
                resource: name.clone(),
                capacity: l.terms.capacity,
                in_force: l.in_force,
                target: l.target.capacity,
                others_held: l.others_held,
                instances: l.others.len() + 1,
                expires: l.expires,
                lost: l.lost,
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "member_tests.rs"]
mod tests;
