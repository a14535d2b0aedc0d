//! The planner on a virtual clock: demand is generated tick by tick, the
//! same core and planner run, nothing sleeps. This file holds the policy
//! and the simulation the test modules share.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::admission::{AcquireRequest, AdmissionConfig, Decision};
use crate::clock::{Clock, ManualClock};

mod forecasts;
mod reserves;
mod series;

/// `shop` bursts for 2 minutes of every 10; `bulk` wants all of shared,
/// always. shop's class may not borrow (a reserve is its only way past its
/// guarantee); bulk is gold (it borrows).
fn policy(reserve: bool) -> String {
    let reserve = if reserve {
        ", reserve: { quantile: 0.95, horizon: 2m, seasons: [10m] }"
    } else {
        ""
    };
    format!(
        "resources:\n  api: {{ kind: rate, capacity: 1000 }}\n\
         qos:\n  vip: {{ weight: 4, borrow: false }}\n\
         tenants:\n  shop: {{ qos: vip, limits: {{ api: {{ guaranteed: 50{reserve} }} }} }}\n  \
         bulk: {{ qos: gold, limits: {{ api: {{ guaranteed: 50 }} }} }}\n"
    )
}

fn shop_demand(t: u64) -> u64 {
    if (t / 60) % 10 >= 8 { 400 } else { 20 }
}

struct Sim {
    clock: Arc<ManualClock>,
    core: Arc<Admission>,
    planner: Planner,
}

impl Sim {
    fn new(yaml: &str, wall_epoch: SystemTime) -> Self {
        Self::with_config(yaml, wall_epoch, PlannerConfig::default())
    }

    fn with_config(yaml: &str, wall_epoch: SystemTime, config: PlannerConfig) -> Self {
        let policy = Policy::load_str(yaml, "test").unwrap();
        let clock = Arc::new(ManualClock::with_wall_epoch(0, wall_epoch));
        let core = Arc::new(Admission::new(
            &policy,
            AdmissionConfig::default(),
            clock.clone(),
        ));
        let planner = Planner::new(
            core.clone(),
            &policy,
            PlannerConfig {
                inline_refits: true,
                ..config
            },
        );
        Self {
            clock,
            core,
            planner,
        }
    }

    /// One second: `tenant` asks for `amount` in ten requests; returns the
    /// tokens denied.
    fn ask(&self, tenant: &str, amount: u64) -> u64 {
        let mut denied = 0;
        for _ in 0..10 {
            let part = amount / 10;
            if part == 0 {
                continue;
            }
            let req = AcquireRequest {
                tenant,
                resource: "api",
                amount: part,
                ..Default::default()
            };
            if let Ok(Decision::Denied(_)) = self.core.try_acquire(&req, self.clock.now()) {
                denied += part;
            }
        }
        denied
    }

    fn reserve(&self, tenant: &str) -> u64 {
        let r = self.core.resource_named("api").unwrap();
        let t = self.core.registry().existing_tenant(tenant).unwrap();
        t.allotments[r.id].holdings.reserve.size() as u64
    }

    fn tick(&mut self) {
        self.clock.advance(Duration::from_secs(1));
        self.planner.tick(self.clock.now());
    }

    /// shop's demand alone, second by second, for the first `minutes`.
    fn shop_alone(&mut self, minutes: u64) {
        for t in 0..minutes * 60 {
            self.ask("shop", shop_demand(t));
            self.tick();
        }
    }
}
