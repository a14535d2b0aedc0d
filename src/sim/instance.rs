//! One simulated daemon: its own admission core (and planner, in the
//! predictive mode) on the run's virtual clock. With more than
//! one, it is also a member of the cluster: after each tick it exchanges
//! with the lease store the daemons share, the way the daemon's planner
//! thread does with Redis (DESIGN §9), through the same `cluster` code.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Mode;
use super::trace::Trace;
use crate::admission::{Admission, AdmissionConfig};
use crate::clock::{ManualClock, Nanos};
use crate::cluster;
use crate::cluster::member::{Member, MemberConfig, OnStoreLoss};
use crate::cluster::store::{MemoryStore, Reply};
use crate::planner::{Forecasts, Planner, PlannerConfig, Wants};
use crate::policy::{Kind, Policy};

/// Ticks a lease lives without a renewal: long enough that one late
/// exchange never loses it, short enough that a dead daemon's share moves
/// on within seconds.
pub const LEASE_TTL_TICKS: u32 = 3;

/// One daemon of the run.
pub(super) struct Instance {
    pub core: Arc<Admission>,
    pub planner: Option<Planner>,
    pub forecasts: Option<tokio::sync::watch::Receiver<Arc<Forecasts>>>,
    /// Its lease on every resource; none when it is the only daemon (it
    /// owns all of every capacity, as a daemon without `cluster` does).
    member: Option<Member>,
    /// Per resource, the capacity its lease puts in force, as of its last
    /// exchange (read after every daemon's exchange: kept, not rebuilt).
    in_force: Vec<(String, u64)>,
    /// Concurrency leases of this tick (released at its end).
    pub leases: Vec<String>,
    /// This tick, per tenant and resource (trace order): tokens asked and
    /// denied here.
    pub asked: Vec<Vec<u64>>,
    pub denied: Vec<Vec<u64>>,
    tick_secs: f64,
}

impl Instance {
    /// Daemon `k` of `n` in `mode`. Its share starts at `1/n` of every
    /// capacity.
    pub(super) fn new(
        (k, n): (usize, usize),
        policy: &Policy,
        trace: &Trace,
        mode: Mode,
        config: &PlannerConfig,
        clock: Arc<ManualClock>,
    ) -> Self {
        let core = Arc::new(Admission::new(policy, AdmissionConfig::default(), clock));
        let config = PlannerConfig {
            inline_refits: true,
            ..config.clone()
        };
        let tick = config.tick;
        let planner =
            (mode == Mode::Predictive).then(|| Planner::new(core.clone(), policy, config));
        let member = (n > 1).then(|| {
            let (member, applies) = Member::new(
                MemberConfig {
                    id: Arc::from(format!("sim-{k}/0")),
                    lease_ttl: tick * LEASE_TTL_TICKS,
                    on_store_loss: OnStoreLoss::Hold,
                    safe_share: 1.0 / n as f64,
                },
                policy,
            );
            cluster::put_in_force(&core, applies, core.clock().now());
            member
        });
        let zeros = vec![vec![0; trace.resources.len()]; trace.tenants.len()];
        let in_force = member.as_ref().map_or_else(Vec::new, in_force);
        Self {
            forecasts: planner.as_ref().map(Planner::subscribe),
            core,
            planner,
            member,
            in_force,
            leases: Vec::new(),
            asked: zeros.clone(),
            denied: zeros,
            tick_secs: tick.as_secs_f64(),
        }
    }

    /// The tick boundary at `at`: this tick's concurrency units come back,
    /// the planner ticks, and in a cluster the lease is renewed.
    pub(super) fn end_tick(&mut self, at: Nanos, store: &mut MemoryStore, trace: &Trace) {
        for lease in self.leases.drain(..) {
            let _ = self.core.release(&lease);
        }
        if let Some(p) = self.planner.as_mut() {
            p.tick(at);
        }
        self.exchange(at, store, trace);
    }

    /// One exchange with the lease store at `at` (nothing when alone):
    /// shares lowered, asked for, and the grants put in force. The store
    /// answers at once, so an exchange never stays pending.
    pub(super) fn exchange(&mut self, at: Nanos, store: &mut MemoryStore, trace: &Trace) {
        if self.member.is_none() {
            return;
        }
        let wants = match self.planner.as_mut() {
            Some(p) => p.wants(at),
            None => self.observed(trace),
        };
        let Some(member) = self.member.as_mut() else {
            return;
        };
        let asks = cluster::begin(member, &wants, &self.core, at);
        let now_ms = at / 1_000_000;
        let replies: Vec<Reply> = asks.iter().map(|a| store.exchange(a, now_ms)).collect();
        let Ok(()) = cluster::finish(
            member,
            &self.core,
            &asks,
            Ok::<_, std::convert::Infallible>(replies),
            at,
            at,
        );
        self.in_force = in_force(member);
    }

    /// Without a planner (reactive), wants are what the tick asked here:
    /// `[used, used]` per tenant, per second (units for concurrency).
    fn observed(&self, trace: &Trace) -> BTreeMap<String, Wants> {
        let registry = self.core.registry();
        let mut out: BTreeMap<String, Wants> = registry
            .live()
            .iter()
            .map(|r| (r.name.to_string(), Wants::default()))
            .collect();
        for (t, per) in self.asked.iter().enumerate() {
            for (r, &asked) in per.iter().enumerate() {
                let name = &trace.resources[r];
                let (Some(wants), Some(res)) = (out.get_mut(name), registry.resource(name)) else {
                    continue;
                };
                if asked == 0 {
                    continue;
                }
                let used = match res.kind {
                    Kind::Rate => asked as f64 / self.tick_secs,
                    Kind::Concurrency => asked as f64,
                };
                wants.tenants.insert(trace.tenants[t].clone(), [used, used]);
            }
        }
        out
    }

    /// The capacity its lease on `resource` puts in force here; `None`
    /// when it is the only daemon.
    pub(super) fn lease_capacity(&self, resource: &str) -> Option<u64> {
        self.in_force
            .iter()
            .find(|(name, _)| name == resource)
            .map(|(_, c)| *c)
    }
}

/// What `member`'s leases put in force, per resource.
fn in_force(member: &Member) -> Vec<(String, u64)> {
    member
        .leases()
        .into_iter()
        .map(|l| (l.resource, l.in_force))
        .collect()
}
