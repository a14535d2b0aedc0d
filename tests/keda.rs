//! KEDA's external-scaler protocol against the real daemon, through a
//! client generated from KEDA's own proto (vendored under
//! `proto/vendor/externalscaler`, compiled by build.rs with tonic's codec,
//! not ours). The predicted burst comes from a history snapshot the test
//! writes with the library's own recorder: two cycles of a 10-minute
//! pattern, so the planner's seasonal model forecasts the next burst.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::requests::acquire;
use common::{Daemon, eventually};
use prescient::planner::history::{History, Sample};
use prescient::planner::snapshot::{self, SeriesRef};
use tonic::Code;
use tonic::transport::Channel;

/// The client tonic generates from KEDA's file.
mod externalscaler {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/keda_client/externalscaler.rs"));
}
use externalscaler::external_scaler_client::ExternalScalerClient;
use externalscaler::{GetMetricsRequest, ScaledObjectRef};

/// `rising` and `falling` have a reserve with a 10-minute season (their
/// history comes from the snapshot); `fresh` has none; `defaults` lets a
/// tenant the daemon has not seen exist.
const POLICY: &str = r#"
resources:
  api: { kind: rate, capacity: 1000 }
tenants:
  rising:
    qos: gold
    limits: { api: { guaranteed: 10, reserve: { horizon: 30s, max: 500, seasons: [10m] } } }
  falling:
    qos: gold
    limits: { api: { guaranteed: 10, reserve: { horizon: 30s, max: 500, seasons: [10m] } } }
  fresh:
    qos: gold
    limits: { api: { guaranteed: 100 } }
defaults:
  qos: bronze
  limits: { api: { guaranteed: 5 } }
"#;

/// Demand of a burst minute (per second); quiet minutes ask nothing.
const BURST: f64 = 200.0;
/// Ticks of the minute in progress already recorded: with 1 s ticks the
/// daemon's minute 20 ends 30 s after it starts.
const INTO_MINUTE: usize = 30;

/// A series' history at 1 s ticks: minutes 0 to 19, then `INTO_MINUTE`
/// ticks of minute 20; minute `m` is a burst when `m % 10 == phase`.
fn periodic(phase: usize) -> History {
    let mut h = History::default();
    for tick in 0..(20 * 60 + INTO_MINUTE) {
        let burst = (tick / 60) % 10 == phase;
        let demand = if burst { BURST } else { 0.0 };
        h.record(
            Sample {
                demand,
                granted: demand,
                arrivals: demand / 10.0,
                hold: None,
            },
            60,
        );
    }
    h
}

/// A daemon whose `rising` bursts next minute (minute 21) and whose
/// `falling` bursts in the minute in progress (20).
fn daemon_with_history() -> (Daemon, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let (rising, falling) = (periodic(1), periodic(0));
    let series = [
        SeriesRef {
            tenant: "rising",
            resource: "api",
            history: &rising,
        },
        SeriesRef {
            tenant: "falling",
            resource: "api",
            history: &falling,
        },
    ];
    snapshot::save(state.path(), &series).unwrap();
    let d = Daemon::start(
        POLICY,
        &[
            ("PRESCIENT_STATE_DIR", state.path().to_str().unwrap()),
            ("PRESCIENT_TICK", "1s"),
        ],
    );
    (d, state)
}

fn object(pairs: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: "worker".into(),
        namespace: "shop".into(),
        scaler_metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    }
}

/// A trigger as a ScaledObject spells it (KEDA adds `scalerAddress`).
fn trigger(tenant: &str, lead: &str, extra: &[(&str, &str)]) -> ScaledObjectRef {
    let mut pairs = vec![
        ("scalerAddress", "prescient.prescient.svc:50051"),
        ("tenant", tenant),
        ("resource", "api"),
        ("leadTime", lead),
        ("replicaCapacity", "50"),
    ];
    pairs.extend_from_slice(extra);
    object(&pairs)
}

/// The next push of an activity stream.
async fn next(s: &mut tonic::Streaming<externalscaler::IsActiveResponse>) -> bool {
    tokio::time::timeout(Duration::from_secs(120), s.message())
        .await
        .expect("a push within two minutes")
        .unwrap()
        .expect("the stream is open")
        .result
}

async fn scaler(d: &Daemon) -> ExternalScalerClient<Channel> {
    ExternalScalerClient::new(d.channel().await)
}

/// GetMetrics' one value (the float; the integer is its ceiling).
async fn metric(c: &mut ExternalScalerClient<Channel>, object: ScaledObjectRef) -> f64 {
    let r = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(object),
            metric_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.metric_values.len(), 1, "{r:?}");
    let v = &r.metric_values[0];
    assert_eq!(v.metric_value, v.metric_value_float.ceil() as i64, "{v:?}");
    v.metric_value_float
}

async fn is_active(c: &mut ExternalScalerClient<Channel>, object: ScaledObjectRef) -> bool {
    c.is_active(object).await.unwrap().into_inner().result
}

#[tokio::test]
async fn the_metric_covers_a_predicted_burst_before_it_arrives_and_streams_say_when() {
    let (d, _state) = daemon_with_history();
    let mut c = scaler(&d).await;
    // Opened before the burst comes within `rising`'s lead time (about
    // 20 s from the start).
    let lead = "10s";
    let mut rising = c
        .stream_is_active(trigger("rising", lead, &[]))
        .await
        .unwrap()
        .into_inner();
    let mut falling = c
        .stream_is_active(trigger("falling", lead, &[]))
        .await
        .unwrap()
        .into_inner();

    // Once the seasonal model is fitted: a lead time that reaches next
    // minute sees `rising`'s burst while nothing is asked of it yet, and
    // sizes replicas for it.
    let ahead = eventually(Duration::from_secs(60), "the seasonal forecast", || {
        let mut c = c.clone();
        async move {
            let v = metric(&mut c, trigger("rising", "2m", &[])).await;
            (v >= BURST).then_some(v)
        }
    })
    .await;
    // The minute in progress is quiet: far below the burst (its band is
    // not zero: the restored ticks the forecast starts from hold a burst),
    // and a fraction of the replicas the burst ahead needs.
    let now = metric(&mut c, trigger("rising", "1s", &[])).await;
    assert!(now < BURST / 2.0, "the minute in progress is quiet: {now}");
    let replicas = |v: f64| prescient::prewarm::replicas(v, 50.0);
    assert!(
        replicas(ahead) >= 4,
        "{ahead} per second needs at least 4 replicas of 50"
    );
    assert!(replicas(now) < replicas(ahead), "now {now}, ahead {ahead}");
    assert!(is_active(&mut c, trigger("rising", "2m", &[])).await);
    assert!(!is_active(&mut c, trigger("rising", "1s", &[])).await);
    let threshold = [("activationThreshold", "1000")];
    assert!(!is_active(&mut c, trigger("rising", "2m", &threshold)).await);
    // `falling`'s burst is the minute in progress.
    assert!(metric(&mut c, trigger("falling", "1s", &[])).await >= BURST);

    // StreamIsActive: `rising` starts inactive and is pushed `true` when
    // its burst comes within 10 s, ahead of the burst minute...
    assert!(!next(&mut rising).await, "inactive while the burst is far");
    assert!(next(&mut rising).await, "pushed when the burst comes near");
    let v = metric(&mut c, trigger("rising", lead, &[])).await;
    assert!(v >= BURST, "the metric agrees with the push: {v}");
    // ...and `falling`, active during its burst, is pushed `false` once
    // that minute has passed.
    let mut seen = vec![next(&mut falling).await];
    while !(seen.contains(&true) && seen.last() == Some(&false)) {
        seen.push(next(&mut falling).await);
        assert!(seen.len() <= 3, "{seen:?}");
    }
    assert!(!is_active(&mut c, trigger("falling", lead, &[])).await);
}

#[tokio::test]
async fn the_metric_spec_is_one_replicas_capacity_and_bad_metadata_names_its_key() {
    let d = Daemon::start(POLICY, &[("PRESCIENT_TICK", "200ms")]);
    let mut c = scaler(&d).await;
    let spec = c
        .get_metric_spec(trigger("fresh", "90s", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(spec.metric_specs.len(), 1, "{spec:?}");
    let s = &spec.metric_specs[0];
    assert_eq!(s.metric_name, "prescient-prewarm-fresh-api");
    assert_eq!((s.target_size, s.target_size_float), (50, 50.0));

    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[
                ("resource", "api"),
                ("leadTime", "1m"),
                ("replicaCapacity", "5"),
            ],
            "scalerMetadata.tenant: required",
        ),
        (
            &[
                ("tenant", "fresh"),
                ("resource", "disk"),
                ("leadTime", "1m"),
                ("replicaCapacity", "5"),
            ],
            "scalerMetadata.resource: unknown resource \"disk\"",
        ),
        (
            &[
                ("tenant", "fresh"),
                ("resource", "api"),
                ("leadTime", "soon"),
                ("replicaCapacity", "5"),
            ],
            "scalerMetadata.leadTime: \"soon\" is not a duration",
        ),
        (
            &[
                ("tenant", "fresh"),
                ("resource", "api"),
                ("leadTime", "1m"),
                ("replicaCapacity", "0"),
            ],
            "scalerMetadata.replicaCapacity: 0 must be above 0",
        ),
        (
            &[
                ("tenant", "fresh"),
                ("resource", "api"),
                ("leadTime", "1m"),
                ("replicaCapacity", "5"),
                ("lead", "1m"),
            ],
            "scalerMetadata.\"lead\": unknown key",
        ),
    ];
    for (pairs, want) in cases {
        let o = object(pairs);
        let answers = [
            c.get_metric_spec(o.clone()).await.map(|_| ()),
            c.is_active(o.clone()).await.map(|_| ()),
            c.stream_is_active(o.clone()).await.map(|_| ()),
            c.get_metrics(GetMetricsRequest {
                scaled_object_ref: Some(o),
                metric_name: String::new(),
            })
            .await
            .map(|_| ()),
        ];
        for answer in answers {
            let e = answer.expect_err(want);
            assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
            assert!(e.message().starts_with(want), "{want}: {e:?}");
        }
    }
    let e = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(trigger("fresh", "1m", &[])),
            metric_name: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("metricName:"), "{e:?}");
}

#[tokio::test]
async fn at_cold_start_the_metric_is_the_observed_rate() {
    let d = Daemon::start(POLICY, &[("PRESCIENT_TICK", "1s")]);
    let mut c = scaler(&d).await;
    // A tenant from defaults the daemon has not seen: nothing observed,
    // nothing forecast.
    assert_eq!(metric(&mut c, trigger("newcomer", "1m", &[])).await, 0.0);
    assert!(!is_active(&mut c, trigger("newcomer", "1m", &[])).await);
    // A series with no history yet: what it asks per second, once a tick
    // has folded it in.
    let r = d
        .client()
        .await
        .acquire(acquire("fresh", "api", 80))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), prescient::proto::Decision::Granted);
    let v = eventually(Duration::from_secs(30), "the tick that sees it", || {
        let mut c = c.clone();
        async move {
            let v = metric(&mut c, trigger("fresh", "1m", &[])).await;
            (v >= 80.0).then_some(v)
        }
    })
    .await;
    assert!(v < 1000.0, "{v}");
    assert!(is_active(&mut c, trigger("fresh", "1m", &[])).await);
}

#[tokio::test]
async fn reflection_and_health_list_the_external_scaler() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let d = Daemon::start(POLICY, &[]);
    let channel = d.channel().await;
    // Envoy's face too: a health check that names it finds it serving.
    for service in [
        "externalscaler.ExternalScaler",
        "envoy.service.ratelimit.v3.RateLimitService",
    ] {
        let r = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service}");
    }
    let names = common::reflection::services(channel).await;
    for service in ["externalscaler.ExternalScaler", "prescient.v1.Admission"] {
        assert!(names.iter().any(|n| n == service), "{service}: {names:?}");
    }
}
