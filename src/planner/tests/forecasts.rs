//! Published forecasts: their model, points and accuracy, refits on the
//! worker thread, and a restart that restores them.

use super::*;

#[test]
fn forecasts_are_published_with_model_points_and_accuracy() {
    let mut sim = Sim::new(&policy(true), SystemTime::UNIX_EPOCH);
    let watch = sim.planner.subscribe();
    sim.shop_alone(45);
    let forecasts = watch.borrow().clone();
    let view = forecasts.get("shop", "api").unwrap();
    // An exact 10-minute cycle: a seasonal model wins the backtest.
    assert!(["mstl", "seasonal_naive"].contains(&view.model), "{view:?}");
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
        after.model, before.model,
        "refit from the restored history at once"
    );
    assert_ne!(after.model, "ewma");
    assert_eq!(after.seasons, before.seasons);
    for (a, b) in after.points.iter().zip(&before.points) {
        assert!((a.band.mean - b.band.mean).abs() < 40.0, "{a:?} vs {b:?}");
    }
}
