//! The series table across reloads and new tenants: kept series keep
//! their history, dropped ones end, returned units reach shared.

use super::*;

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
    assert!(
        ["mstl", "seasonal_naive"].contains(&shop.model),
        "shop's history and fit survived the reload: {shop:?}"
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
