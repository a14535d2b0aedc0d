use super::*;

/// `shop` may not borrow; it bursts to 300/s for 2 minutes of every 10,
/// from a guarantee of 50/s. `other` asks a steady 100/s.
const POLICY: &str = "\
qos:
  protected: { weight: 4, borrow: false }
resources:
  api: { kind: rate, capacity: 1000 }
tenants:
  shop:
    qos: protected
    limits:
      api: { guaranteed: 50, reserve: { quantile: 0.95, horizon: 1m, seasons: [10m] } }
  other:
    qos: gold
    limits:
      api: { guaranteed: 100 }
";

fn trace(minutes: u64) -> Trace {
    let mut csv = String::from("timestamp,tenant,resource,amount\n");
    for t in 0..minutes * 60 {
        let shop = if (t / 60) % 10 >= 8 { 300 } else { 30 };
        for half in 0..2 {
            let at = t as f64 + half as f64 * 0.5;
            csv += &format!("{at},shop,api,{}\n{at},other,api,50\n", shop / 2);
        }
    }
    let policy = Policy::load_str(POLICY, "p").unwrap();
    Trace::read(csv.as_bytes(), "t.csv", &policy).unwrap()
}

fn all_modes(minutes: u64) -> Vec<Outcome> {
    let policy = Policy::load_str(POLICY, "p").unwrap();
    let trace = trace(minutes);
    Mode::ALL
        .iter()
        .map(|&m| {
            run(
                &policy,
                &trace,
                m,
                &PlannerConfig::default(),
                &Daemons::default(),
                &mut |_| {},
            )
        })
        .collect()
}

fn denied(outcomes: &[Outcome], mode: Mode) -> u64 {
    outcomes
        .iter()
        .find(|o| o.mode == mode)
        .unwrap()
        .report
        .total
        .tokens_denied
}

/// On this trace (one tenant's predictable bursts): predictive beats
/// reactive, and the oracle (the bound) denies no more than either.
#[test]
fn on_predictable_bursts_predictive_beats_reactive_within_the_bound() {
    let outcomes = all_modes(60);
    let (p, r, o) = (
        denied(&outcomes, Mode::Predictive),
        denied(&outcomes, Mode::Reactive),
        denied(&outcomes, Mode::Oracle),
    );
    eprintln!("tokens denied: predictive {p}, reactive {r}, oracle {o}");
    assert!(p < r, "predictive {p} should deny fewer than reactive {r}");
    assert!(o <= p, "oracle {o} should deny no more than predictive {p}");
    assert!(o <= r, "oracle {o} should deny no more than reactive {r}");
    for out in &outcomes {
        assert_eq!(out.report.capacity_violations, 0, "{:?}", out.mode);
        assert_eq!(out.report.total.requests, 60 * 60 * 4);
    }
}

#[test]
fn the_json_report_keeps_the_documented_keys() {
    let outcomes = all_modes(12);
    let trace = trace(12);
    let report = Report::new(
        &trace,
        &Daemons::default(),
        outcomes
            .into_iter()
            .map(|o| (o.mode.as_str(), o.report))
            .collect(),
    );
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    for mode in ["predictive", "reactive", "oracle"] {
        let m = &v["modes"][mode];
        for key in [
            "requests",
            "granted",
            "denied",
            "tokens_asked",
            "tokens_granted",
            "tokens_denied",
            "denial_rate",
        ] {
            assert!(m["total"][key].is_number(), "{mode}.total.{key}");
            assert!(
                m["tenants"]["shop"][key].is_number(),
                "{mode}.tenants.shop.{key}"
            );
        }
        assert_eq!(m["capacity_violations"], 0);
        assert!(m["utilization"]["api"].as_f64().unwrap() > 0.0);
        assert!(m["pools"]["api"]["guaranteed"].is_number());
    }
    assert_eq!(v["trace"]["rows"], 12 * 60 * 4);
    assert!(v["summary"]["predictive_vs_reactive"].is_number());
    let text = report.to_text();
    assert!(text.contains("summary: tokens denied"), "{text}");
}

#[test]
fn predictive_vs_reactive_is_absent_not_null_when_a_mode_is_missing() {
    let trace = trace(12);
    let reactive_only = all_modes(12)
        .into_iter()
        .filter(|o| o.mode == Mode::Reactive)
        .map(|o| (o.mode.as_str(), o.report))
        .collect();
    let v: serde_json::Value =
        serde_json::from_str(&Report::new(&trace, &Daemons::default(), reactive_only).to_json())
            .unwrap();
    let summary = v["summary"].as_object().unwrap();
    assert!(
        !summary.contains_key("predictive_vs_reactive"),
        "absent, not null: {summary:?}"
    );
    assert!(summary.contains_key("tokens_denied"));
}

#[test]
fn the_plot_is_well_formed_svg_with_a_panel_per_tenant_and_every_series() {
    let outcomes = all_modes(12);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plot.svg");
    plot::write(&path, &outcomes).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&svg);
    let mut elements = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(_) | quick_xml::events::Event::Empty(_)) => {
                elements += 1
            }
            Ok(_) => {}
            Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
        }
    }
    assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..100]);
    assert!(elements > 50);
    for text in [
        "shop / api",
        "other / api",
        "demand",
        "forecast mean",
        "forecast upper",
        "reserve",
        "denied (predictive)",
        "denied (reactive)",
    ] {
        assert!(svg.contains(text), "missing {text:?}");
    }
}

#[test]
fn forecast_driven_replicas_leave_less_demand_unserved_than_reactive_ones() {
    let policy = Policy::load_str(POLICY, "p").unwrap();
    // Six cycles of `shop`'s burst: the seasonal model has it from the
    // fourth on.
    let trace = trace(60);
    let p = prewarm::Prewarm {
        capacity: 50.0,
        startup: std::time::Duration::from_secs(60),
    };
    let (outcome, view) = run_prewarm(
        &policy,
        &trace,
        &PlannerConfig::default(),
        &Daemons::default(),
        &p,
        &mut |_| {},
    );
    assert_eq!(outcome.mode, Mode::Predictive);
    let shop = view.series["shop/api"];
    assert!(
        shop.reactive.unserved > 0.0,
        "a reactive autoscaler is late for every burst: {shop:?}"
    );
    assert!(
        shop.forecast.unserved < shop.reactive.unserved / 2.0,
        "the forecast-driven one is ready for most of them: {shop:?}"
    );
    // `other` is steady: both serve it once started.
    let other = view.series["other/api"];
    assert!(
        other.reactive.unserved <= other.tokens_asked * 0.05,
        "{other:?}"
    );
    assert_eq!(
        view.total.tokens_asked,
        shop.tokens_asked + other.tokens_asked
    );
    let mut report = Report::new(&trace, &Daemons::default(), Default::default());
    report.prewarm = Some(view);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["prewarm"]["series"]["shop/api"]["forecast"]["unserved"].is_number());
    assert!(
        report
            .to_text()
            .contains("pre-warm: replicas of 50 per second")
    );
}
