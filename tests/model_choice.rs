//! Model choice by backtest through the real daemon: a restored history
//! with a strong 10-minute cycle is forecast by a seasonal model, and the
//! choice and its backtest error reach GetForecast and `/metrics`.

mod common;

use std::time::{Duration, Instant};

use common::Daemon;

const POLICY: &str = r#"
resources:
  api: { kind: rate, capacity: 1000 }
tenants:
  web:
    qos: gold
    limits:
      api: { guaranteed: 20, reserve: { quantile: 0.9, horizon: 30s, seasons: [10m] } }
"#;

/// Two hours of per-second ticks for web/api: a 10-minute cycle between
/// 10/s and 90/s with a little noise, written by the library's own writer.
fn seasonal_snapshot(dir: &std::path::Path) {
    let mut seed = 11u64;
    common::snapshot::save_web_api(dir, 120 * 60, 60, |t| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let phase = 2.0 * std::f64::consts::PI * (t as f64 / 600.0);
        50.0 + 40.0 * phase.sin() + (seed % 5) as f64
    });
}

#[tokio::test]
async fn a_seasonal_history_is_forecast_by_the_seasonal_model_its_backtest_chose() {
    let state = tempfile::tempdir().unwrap();
    seasonal_snapshot(state.path());
    let d = Daemon::start(
        POLICY,
        &[("PRESCIENT_STATE_DIR", state.path().to_str().unwrap())],
    );
    let mut c = d.client().await;
    // The first refit runs on the worker thread after the first tick:
    // poll until its model is published.
    let deadline = Instant::now() + Duration::from_secs(60);
    let f = loop {
        let f = c
            .get_forecast(prescient::proto::GetForecastRequest {
                tenant: "web".into(),
                resource: "api".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if f.model != "ewma" || Instant::now() > deadline {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        ["mstl", "seasonal_naive"].contains(&f.model.as_str()),
        "a seasonal model: {}",
        f.model
    );
    let chosen = format!(
        "prescient_forecast_model_choices_total{{model=\"{}\"}}",
        f.model
    );
    assert_eq!(d.metric(&chosen), Some(1.0), "one scoring refit so far");
    let error = d
        .metric(r#"prescient_forecast_backtest_error_ratio{tenant="web",resource="api"}"#)
        .expect("the chosen model's backtest error");
    // A cycle of ±40 against noise of 0-4: far better than "same as last
    // minute".
    assert!((0.0..0.5).contains(&error), "backtest MASE {error}");
}
