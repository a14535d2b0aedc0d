//! The planner on a virtual clock: demand is generated tick by tick, the
//! same core and planner run, nothing sleeps.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::admission::{AcquireRequest, AdmissionConfig, Decision};
use crate::clock::{Clock, ManualClock};

/// `shop` bursts for 2 minutes of every 10; `bulk` wants all of shared,
/// always. Both gold (they borrow).
fn policy(reserve: bool) -> String {
    let reserve = if reserve {
        ", reserve: { quantile: 0.95, horizon: 2m, seasons: [10m] }"
    } else {
        ""
    };
    format!(
        "resources:\n  api: {{ kind: rate, capacity: 1000 }}\n\
         tenants:\n  shop: {{ qos: gold, limits: {{ api: {{ guaranteed: 50{reserve} }} }} }}\n  \
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
                ..PlannerConfig::default()
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

/// Runs the two-tenant scenario for `minutes`; returns shop's denied tokens
/// during bursts after the first 40 minutes, and the reserve each second.
fn run(reserve: bool, minutes: u64) -> (u64, Vec<u64>) {
    let mut sim = Sim::new(&policy(reserve), SystemTime::UNIX_EPOCH);
    let mut denied = 0;
    let mut reserves = Vec::new();
    for t in 0..minutes * 60 {
        // bulk asks first each second: the worst case for shop.
        sim.ask("bulk", 2000);
        let d = sim.ask("shop", shop_demand(t));
        if t >= 40 * 60 && shop_demand(t) > 20 {
            denied += d;
        }
        reserves.push(sim.reserve("shop"));
        sim.tick();
    }
    (denied, reserves)
}

#[test]
fn the_reserve_rises_before_the_predicted_burst_and_the_burst_is_admitted() {
    let (predictive, reserves) = run(true, 60);
    let (reactive, _) = run(false, 60);
    // Bursts start at minute 8 of every 10. The reserve in force during the
    // first second of the one at 48 min was set by the tick before it, from
    // the forecast alone: no burst demand had been seen yet. Mid-quiet,
    // the reserve is lent to the shared pool.
    let quiet = reserves[(44 * 60) as usize];
    let first_second = reserves[(48 * 60) as usize];
    assert!(
        first_second >= 300,
        "reserve as the burst starts: {first_second}"
    );
    assert!(
        quiet < first_second / 4,
        "quiet {quiet} vs burst {first_second}"
    );
    eprintln!(
        "reserve quiet {quiet}, at burst start {first_second}; denied in bursts: predictive {predictive}, reactive {reactive}"
    );
    assert!(
        predictive * 2 < reactive,
        "denied during bursts: predictive {predictive}, reactive {reactive}"
    );
}

#[test]
fn forecasts_are_published_with_model_points_and_accuracy() {
    let mut sim = Sim::new(&policy(true), SystemTime::UNIX_EPOCH);
    let watch = sim.planner.subscribe();
    sim.shop_alone(45);
    let forecasts = watch.borrow().clone();
    let view = forecasts.get("shop", "api").unwrap();
    assert_eq!(view.model, "mstl");
    assert_eq!(view.seasons, [10]);
    assert_eq!(view.points.len(), 15);
    // Minute 45 now: the burst at 48-49 is in the points.
    let peak = view.points.iter().map(|p| p.band.mean).fold(0.0, f64::max);
    let low = view
        .points
        .iter()
        .map(|p| p.band.mean)
        .fold(f64::MAX, f64::min);
    assert!(peak > 300.0 && low < 60.0, "{:?}", view.points);
    assert!(view.accuracy.samples > 100);
    assert!(
        forecasts.get("bulk", "api").is_some(),
        "every series is forecast"
    );
}

#[test]
fn a_reload_keeps_the_history_of_kept_series_and_ends_the_dropped_ones() {
    let mut sim = Sim::new(&policy(true), SystemTime::UNIX_EPOCH);
    let watch = sim.planner.subscribe();
    sim.shop_alone(35);
    // bulk leaves, fresh arrives; shop's reserve gets a tighter quantile.
    let next = "resources:\n  api: { kind: rate, capacity: 1000 }\n\
                tenants:\n  shop: { qos: gold, limits: { api: { guaranteed: 50, \
                reserve: { quantile: 0.8, horizon: 2m, seasons: [10m] } } } }\n  \
                fresh: { limits: { api: { guaranteed: 10 } } }\n";
    let next = Policy::load_str(next, "next").unwrap();
    let changes = sim.planner.reload(&next, "next").unwrap();
    assert_eq!(changes.tenants_removed, ["bulk"]);
    assert_eq!(changes.tenants_added, ["fresh"]);
    sim.ask("shop", shop_demand(35 * 60));
    sim.tick();
    let forecasts = watch.borrow().clone();
    let shop = forecasts.get("shop", "api").unwrap();
    assert_eq!(
        shop.model, "mstl",
        "shop's history and fit survived the reload"
    );
    assert!(forecasts.get("bulk", "api").is_none());
    assert_eq!(forecasts.get("fresh", "api").unwrap().model, "ewma");
}

#[test]
fn a_dropped_resource_has_no_series_after_a_reload() {
    let two = "resources:\n  api: { kind: rate, capacity: 1000 }\n  \
               db: { kind: rate, capacity: 100 }\n\
               tenants:\n  shop: { limits: { api: { guaranteed: 50 }, db: { guaranteed: 5, reserve: {} } } }\n";
    let mut sim = Sim::new(two, SystemTime::UNIX_EPOCH);
    let watch = sim.planner.subscribe();
    sim.tick();
    assert!(watch.borrow().get("shop", "db").is_some());
    let one = "resources:\n  api: { kind: rate, capacity: 1000 }\n\
               tenants:\n  shop: { limits: { api: { guaranteed: 50 } } }\n";
    let changes = sim
        .planner
        .reload(&Policy::load_str(one, "one").unwrap(), "one")
        .unwrap();
    assert_eq!(changes.resources_removed, ["db"]);
    sim.tick();
    sim.tick();
    let forecasts = watch.borrow().clone();
    assert!(
        forecasts.get("shop", "db").is_none(),
        "{:?}",
        forecasts.series.keys()
    );
    assert!(forecasts.get("shop", "api").is_some());
}

#[test]
fn a_tick_gives_shared_the_units_a_dropped_tenant_returned() {
    let with_a = "resources:\n  slots: { kind: concurrency, capacity: 4 }\n\
                  tenants:\n  a: { limits: { slots: { guaranteed: 2 } } }\n  s: { qos: gold }\n";
    let mut sim = Sim::new(with_a, SystemTime::UNIX_EPOCH);
    let req = AcquireRequest {
        tenant: "a",
        resource: "slots",
        amount: 2,
        ..Default::default()
    };
    let Ok(Decision::Granted(g)) = sim.core.try_acquire(&req, sim.clock.now()) else {
        panic!("a is guaranteed 2");
    };
    let without = "resources:\n  slots: { kind: concurrency, capacity: 4 }\n\
                   tenants:\n  s: { qos: gold }\n";
    sim.planner
        .reload(&Policy::load_str(without, "without").unwrap(), "without")
        .unwrap();
    let slots = sim.core.resource_named("slots").unwrap();
    assert_eq!(slots.shared.size(), 2.0, "a's 2 are still out");
    sim.core.release(&g.lease.unwrap().to_string()).unwrap();
    sim.tick();
    assert_eq!(slots.shared.size(), 4.0, "the tick handed them to shared");
    assert_eq!(slots.allocation(), (0, 0, 0));
}

#[test]
fn interval_coverage_on_seasonal_data_is_near_the_quantile() {
    let yaml = "resources:\n  api: { kind: rate, capacity: 100000 }\n\
                tenants:\n  t: { qos: gold, limits: { api: { guaranteed: 10, \
                reserve: { quantile: 0.95, horizon: 30s, seasons: [10m] } } } }\n";
    let mut sim = Sim::new(yaml, SystemTime::UNIX_EPOCH);
    let watch = sim.planner.subscribe();
    let mut seed = 12345u64;
    for t in 0..90 * 60u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let cycle = (2.0 * std::f64::consts::PI * t as f64 / 600.0).sin();
        let noise = (seed % 1000) as f64 / 1000.0 - 0.5;
        let demand = (1000.0 + 500.0 * cycle + 300.0 * noise) as u64 / 10 * 10;
        sim.ask("t", demand);
        sim.tick();
    }
    let accuracy = watch.borrow().get("t", "api").unwrap().accuracy;
    assert!(
        (0.85..=0.99).contains(&accuracy.coverage),
        "coverage {accuracy:?}"
    );
    assert!(
        accuracy.mase < 1.0,
        "beats the naive forecast: {accuracy:?}"
    );
}

#[test]
fn an_event_window_raises_the_reserve() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(30 * 60);
    let yaml = format!(
        "{}events:\n  - {{ name: sale, tenants: [shop], start: {}, end: {}, multiplier: 10 }}\n",
        "resources:\n  api: { kind: rate, capacity: 1000 }\n\
         tenants:\n  shop: { qos: gold, limits: { api: { guaranteed: 50, reserve: { horizon: 1m } } } }\n",
        humantime::format_rfc3339(start),
        humantime::format_rfc3339(start + Duration::from_secs(600)),
    );
    let mut sim = Sim::new(&yaml, SystemTime::UNIX_EPOCH);
    let (mut before, mut during, mut after) = (0, 0, 0);
    for t in 0..45 * 60 {
        sim.ask("shop", 30);
        sim.tick();
        match t {
            1500 => before = sim.reserve("shop"),
            2100 => during = sim.reserve("shop"),
            2640 => after = sim.reserve("shop"),
            _ => {}
        }
    }
    assert_eq!(after, 0, "the sale is over");
    assert_eq!(before, 0, "30/s fits in the guarantee of 50");
    assert!(during >= 200, "10 × 30/s during the sale: reserve {during}");
}

#[test]
fn new_tenants_from_defaults_get_series_and_history_memory_is_counted() {
    let yaml = "resources:\n  api: { kind: rate, capacity: 1000 }\n\
                defaults: { qos: bronze, limits: { api: { guaranteed: 5 } } }\n";
    let mut sim = Sim::new(yaml, SystemTime::UNIX_EPOCH);
    sim.tick();
    assert_eq!(sim.planner.history_memory(), 0);
    sim.ask("late", 10);
    sim.tick();
    let watch = sim.planner.subscribe();
    assert!(watch.borrow().get("late", "api").is_some());
    assert!(sim.planner.history_memory() > 0);
}

#[test]
fn refits_on_the_worker_thread_are_applied_on_later_ticks() {
    let policy = Policy::load_str(&policy(true), "test").unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let core = Arc::new(Admission::new(
        &policy,
        AdmissionConfig::default(),
        clock.clone(),
    ));
    let mut planner = Planner::new(core.clone(), &policy, PlannerConfig::default());
    let mut applied = 0;
    let mut started = 0;
    let mut t = 0u64;
    // Poll with a deadline: the worker answers when it has fitted.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while applied == 0 {
        assert!(std::time::Instant::now() < deadline, "no refit came back");
        let req = AcquireRequest {
            tenant: "shop",
            resource: "api",
            amount: shop_demand(t).max(1),
            ..Default::default()
        };
        let _ = core.try_acquire(&req, clock.now());
        clock.advance(Duration::from_secs(1));
        let r = planner.tick(clock.now());
        started += r.refits_started;
        applied += r.refits_applied;
        t += 1;
        if t > 20 * 60 {
            std::thread::yield_now();
        }
    }
    assert!(started >= applied);
}

#[test]
fn a_restart_restores_the_history_and_the_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::new(&policy(true), SystemTime::UNIX_EPOCH);
    sim.shop_alone(45);
    let before = sim
        .planner
        .subscribe()
        .borrow()
        .get("shop", "api")
        .unwrap()
        .clone();
    sim.planner.save(dir.path()).unwrap();

    // A new daemon: fresh core and planner on the same policy.
    let mut restarted = Sim::new(&policy(true), SystemTime::UNIX_EPOCH);
    let saved = snapshot::load(dir.path()).unwrap().unwrap();
    assert_eq!(restarted.planner.restore(saved), 2);
    restarted.clock.set(sim.clock.now());
    restarted.tick();
    let after = restarted
        .planner
        .subscribe()
        .borrow()
        .get("shop", "api")
        .unwrap()
        .clone();
    assert_eq!(
        after.model, "mstl",
        "refit from the restored history at once"
    );
    assert_eq!(after.seasons, before.seasons);
    for (a, b) in after.points.iter().zip(&before.points) {
        assert!((a.band.mean - b.band.mean).abs() < 40.0, "{a:?} vs {b:?}");
    }
}

#[test]
fn a_concurrency_reserve_follows_littles_law() {
    // 10 units acquired per second, each held 2 s: about 20 held at once.
    let yaml = "resources:\n  gpu: { kind: concurrency, capacity: 100 }\n\
                tenants:\n  t: { qos: gold, limits: { gpu: { guaranteed: 2, reserve: { horizon: 10s } } } }\n";
    let mut sim = Sim::new(yaml, SystemTime::UNIX_EPOCH);
    let mut held: std::collections::VecDeque<(u64, String)> = Default::default();
    for t in 0..600u64 {
        while held.front().is_some_and(|(at, _)| at + 2 <= t) {
            let (_, lease) = held.pop_front().unwrap();
            sim.core.release(&lease).unwrap();
        }
        for _ in 0..10 {
            let req = AcquireRequest {
                tenant: "t",
                resource: "gpu",
                amount: 1,
                ..Default::default()
            };
            if let Ok(Decision::Granted(g)) = sim.core.try_acquire(&req, sim.clock.now()) {
                held.push_back((t, g.lease.unwrap().to_string()));
            }
        }
        sim.tick();
    }
    let gpu = sim.core.resource_named("gpu").unwrap();
    let t = sim.core.registry().existing_tenant("t").unwrap();
    let reserve = t.allotments[gpu.id].holdings.reserve.size();
    assert!(
        (15.0..=40.0).contains(&reserve),
        "10/s × 2 s − 2 guaranteed ≈ 18: {reserve}"
    );
}
