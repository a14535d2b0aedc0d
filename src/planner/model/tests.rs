use super::*;

fn seasonal(minutes: usize, period: usize) -> Vec<f64> {
    (0..minutes)
        .map(|t| 100.0 + 50.0 * (2.0 * std::f64::consts::PI * t as f64 / period as f64).sin())
        .collect()
}

#[test]
fn the_ladder_climbs_with_history() {
    let job = |n, seasons: Vec<usize>| FitJob {
        series: seasonal(n, 20),
        seasons,
        steps: 30,
        keep: None,
    };
    // Too short to hold out two 15-minute windows: the ladder decides.
    assert_eq!(fit(&job(5, vec![20])), None, "too short: EWMA");
    assert_eq!(
        fit(&job(30, vec![20])).unwrap().kind,
        ModelKind::SeasonalNaive
    );
    assert_eq!(fit(&job(30, vec![])).unwrap().kind, ModelKind::Ets);
    let mstl = ladder(&seasonal(100, 20), &[20], 30).unwrap();
    assert_eq!(mstl.kind, ModelKind::Mstl);
    assert_eq!(mstl.means.len(), 30);
    // It learned the cycle: the forecast 5 minutes on is the peak.
    let peak = seasonal(105, 20)[100..]
        .iter()
        .cloned()
        .fold(f64::MIN, f64::max);
    let got = mstl.means[..5].iter().cloned().fold(f64::MIN, f64::max);
    assert!((got - peak).abs() < 5.0, "{got} vs {peak}");
}

#[test]
fn daily_seasons_fit_on_coarse_means_and_forecast_every_minute() {
    // Three days of minutes: a daily cycle plus an hourly one.
    let y: Vec<f64> = (0..3 * 1440 + 20)
        .map(|t| {
            let t = t as f64;
            300.0
                + 100.0 * (2.0 * std::f64::consts::PI * t / 1440.0).sin()
                + 30.0 * (2.0 * std::f64::consts::PI * t / 60.0).sin()
        })
        .collect();
    let means = mstl_fit(&y[..3 * 1440], &[60, 1440], 20, None)
        .unwrap()
        .means;
    assert_eq!(means.len(), 20, "one mean per minute");
    let truth = &y[3 * 1440..3 * 1440 + 20];
    let mae = means
        .iter()
        .zip(truth)
        .map(|(m, t)| (m - t).abs())
        .sum::<f64>()
        / 20.0;
    assert!(mae < 15.0, "MAE {mae}: {means:?} vs {truth:?}");
}

#[test]
fn bad_series_never_panic_and_fall_back() {
    for series in [
        vec![0.0; 200],
        vec![7.0; 200],
        vec![f64::NAN; 200],
        (0..200)
            .map(|i| if i % 2 == 0 { f64::INFINITY } else { 1.0 })
            .collect(),
    ] {
        let fitted = fit(&FitJob {
            series,
            seasons: vec![20],
            steps: 10,
            keep: None,
        });
        if let Some(f) = fitted {
            assert!(f.means.iter().all(|v| v.is_finite() && *v >= 0.0), "{f:?}");
        }
    }
    assert!(detect_seasons(&[]).is_empty());
    assert!(detect_seasons(&[0.0; 1000]).is_empty());
}

#[test]
fn an_hourly_cycle_is_detected_and_snapped() {
    let y = seasonal(6 * 60, 60);
    assert_eq!(detect_seasons(&y), [60]);
}
