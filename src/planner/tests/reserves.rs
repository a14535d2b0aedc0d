//! Reserves sized from forecasts: raised before a predicted burst,
//! for an event window, and for concurrency by Little's law.

use super::*;

/// Runs the two-tenant scenario for `minutes`; returns shop's denied tokens
/// during bursts after the first 40 minutes, and the reserve each second.
fn run(reserve: bool, minutes: u64) -> (u64, Vec<u64>) {
    let mut sim = Sim::new(&policy(reserve), SystemTime::UNIX_EPOCH);
    let mut denied = 0;
    let mut reserves = Vec::new();
    for t in 0..minutes * 60 {
        // shop asks first each second; bulk then takes everything else,
        // including what shop left in its reserve (lent: a reserve is a
        // priority claim, not a partition).
        let d = sim.ask("shop", shop_demand(t));
        sim.ask("bulk", 2000);
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
fn an_event_window_raises_the_reserve() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(30 * 60);
    let yaml = format!(
        "{}events:\n  - {{ name: sale, tenants: [shop], start: {}, end: {}, multiplier: 10 }}\n",
        "resources:\n  api: { kind: rate, capacity: 1000 }\n\
         qos:\n  vip: { weight: 4, borrow: false }\n\
         tenants:\n  shop: { qos: vip, limits: { api: { guaranteed: 50, reserve: { horizon: 1m } } } }\n",
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
fn a_concurrency_reserve_follows_littles_law() {
    // 10 units acquired per second, each held 2 s: about 20 held at once.
    let yaml = "resources:\n  gpu: { kind: concurrency, capacity: 100 }\n\
                qos:\n  vip: { weight: 4, borrow: false }\n\
                tenants:\n  t: { qos: vip, limits: { gpu: { guaranteed: 2, reserve: { horizon: 10s } } } }\n";
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

#[test]
fn a_borrower_holds_a_reserve_only_after_the_shared_pool_failed_it() {
    // shop may borrow: alone, the shared pool serves its 300/s and a
    // reserve would only hold capacity from others; once bulk takes all of
    // shared first and shop is denied, the forecast reserve comes.
    let yaml = "resources:\n  api: { kind: rate, capacity: 1000 }\n\
                tenants:\n  shop: { qos: gold, limits: { api: { guaranteed: 50, reserve: { horizon: 1m } } } }\n  \
                bulk: { qos: gold, limits: { api: { guaranteed: 50 } } }\n";
    let mut sim = Sim::new(yaml, SystemTime::UNIX_EPOCH);
    for _ in 0..15 * 60 {
        assert_eq!(sim.ask("shop", 300), 0, "the shared pool serves shop");
        sim.tick();
    }
    assert_eq!(sim.reserve("shop"), 0, "never denied: no reserve");
    let mut denied = 0;
    for _ in 0..60 {
        sim.ask("bulk", 2000);
        denied += sim.ask("shop", 300);
        sim.tick();
    }
    assert!(denied > 0, "bulk took shared first");
    assert!(
        sim.reserve("shop") >= 200,
        "reserve {}",
        sim.reserve("shop")
    );
}

#[test]
fn the_lending_rule_follows_the_planners_settings() {
    // The same scene with a hold-back of half and a two-minute memory: the
    // reserve keeps half its depth from borrowers, and is dropped two
    // minutes after the last denial (the default would keep it ten).
    let yaml = "resources:\n  api: { kind: rate, capacity: 1000 }\n\
                tenants:\n  shop: { qos: gold, limits: { api: { guaranteed: 50, reserve: { horizon: 1m } } } }\n  \
                bulk: { qos: gold, limits: { api: { guaranteed: 50 } } }\n";
    let config = PlannerConfig {
        lend_hold_back: 0.5,
        reserve_after_denial: Duration::from_secs(120),
        ..PlannerConfig::default()
    };
    let mut sim = Sim::with_config(yaml, SystemTime::UNIX_EPOCH, config);
    for _ in 0..15 * 60 {
        sim.ask("shop", 300);
        sim.tick();
    }
    for _ in 0..60 {
        sim.ask("bulk", 2000);
        sim.ask("shop", 300);
        sim.tick();
    }
    let size = sim.reserve("shop");
    assert!(size >= 200, "reserve {size}");
    let r = sim.core.resource_named("api").unwrap();
    let shop = sim.core.registry().existing_tenant("shop").unwrap();
    let keep = shop.allotments[r.id]
        .holdings
        .lend_keep
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(keep, size.div_ceil(2), "half the depth is kept back");
    for _ in 0..119 {
        assert_eq!(sim.ask("shop", 300), 0);
        sim.tick();
    }
    assert!(
        sim.reserve("shop") > 0,
        "still within two minutes of a denial"
    );
    for _ in 0..3 {
        sim.ask("shop", 300);
        sim.tick();
    }
    assert_eq!(sim.reserve("shop"), 0, "two minutes without a denial");
}
