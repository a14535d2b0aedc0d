//! `prescient bench` against the real daemon: the report's shape, and every
//! request sent counted once as granted, denied or an error, over
//! prescient's Acquire and over its Envoy face (`--protocol envoy`).

mod common;

use std::process::{Command, Output};

use common::Daemon;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prescient"))
        .arg("bench")
        .args(args)
        .output()
        .expect("prescient runs")
}

fn report(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn count(r: &serde_json::Value, key: &str) -> u64 {
    r[key].as_u64().unwrap_or_else(|| panic!("{key} in {r}"))
}

#[test]
fn a_counted_run_reports_every_request_once_with_percentiles() {
    let d = Daemon::start_embedded();
    let target = d.grpc.to_string();
    let r = report(&bench(&[
        "--target",
        &target,
        "--requests",
        "3000",
        "--connections",
        "2",
        "--streams",
        "8",
        "--tenants",
        "checkout,search",
        "--json",
    ]));
    assert_eq!(count(&r, "requests"), 3000, "{r}");
    assert_eq!(count(&r, "errors"), 0, "{r}");
    assert_eq!(count(&r, "granted") + count(&r, "denied"), 3000, "{r}");
    assert!(count(&r, "granted") > 0, "{r}");
    let (p50, p99, p999, max) = (
        count(&r, "p50_us"),
        count(&r, "p99_us"),
        count(&r, "p999_us"),
        count(&r, "max_us"),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max, "{r}");
    assert!(r["requests_per_second"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["seconds"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn a_timed_run_stops_and_counts_what_it_sent() {
    let d = Daemon::start_embedded();
    let target = d.grpc.to_string();
    let out = bench(&["--target", &target, "--duration", "300ms", "--json"]);
    let r = report(&out);
    let sent = count(&r, "requests");
    assert!(sent > 0, "{r}");
    assert_eq!(
        count(&r, "granted") + count(&r, "denied") + count(&r, "errors"),
        sent
    );
    // Text mode says the same things in words.
    let out = bench(&["--target", &target, "--requests", "50"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("requests 50 (granted ") && text.contains("p99.9"),
        "{text}"
    );
}

#[test]
fn another_machine_or_a_bound_too_far_is_refused_naming_the_flag() {
    for (args, message) in [
        (
            &["--target", "192.0.2.1:50051"][..],
            "--target: \"192.0.2.1:50051\" is 192.0.2.1, not a loopback address",
        ),
        (
            &["--target", "127.0.0.1:1", "--connections", "100000"][..],
            "--connections: 100000 is not within 1..=256",
        ),
    ] {
        let out = bench(args);
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(message), "{err}");
    }
}

/// Envoy's face: acme's bucket holds 100 tokens and beta's 50, each refilled
/// at 1 token/s, and every ShouldRateLimit asks 10 hits. Bronze borrows
/// nothing, so until 10 s have passed (a refill of 10, one more grant)
/// acme is granted exactly 10 calls and beta 5.
const ENVOY_POLICY: &str = r#"
resources:
  api: { kind: rate, capacity: 1000 }
tenants:
  acme: { qos: bronze, limits: { api: { guaranteed: 1, burst: 100 } } }
  beta: { qos: bronze, limits: { api: { guaranteed: 1, burst: 50 } } }
envoy:
  domains:
    prescient:
      - { resource: api, tenant_key: tenant }
"#;

#[test]
fn an_envoy_run_counts_ok_as_granted_and_over_limit_as_denied() {
    let d = Daemon::start(ENVOY_POLICY, &[]);
    let target = d.grpc.to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--target",
            &target,
            "--protocol",
            "envoy",
            "--requests",
            "60",
            "--connections",
            "2",
            "--streams",
            "4",
            "--tenants",
            "acme,beta",
            "--amount",
            "10",
            "--json",
        ];
        args.extend_from_slice(extra);
        report(&bench(&args))
    };
    // A domain the policy does not list limits nothing, and takes nothing.
    let r = run(&["--domain", "elsewhere"]);
    assert_eq!(
        (
            count(&r, "granted"),
            count(&r, "denied"),
            count(&r, "errors")
        ),
        (60, 0, 0),
        "{r}"
    );
    // The default domain, `prescient`: each tenant's bucket decides.
    let r = run(&[]);
    assert!(
        r["seconds"].as_f64().unwrap() < 10.0,
        "too slow to count: {r}"
    );
    assert_eq!(
        (
            count(&r, "granted"),
            count(&r, "denied"),
            count(&r, "errors")
        ),
        (10 + 5, 60 - 15, 0),
        "{r}"
    );
    // An Acquire run against the same daemon finds the buckets as Envoy
    // left them (the same core): every call denied (30 tokens would take
    // half a minute to refill).
    let r = report(&bench(&[
        "--target",
        &target,
        "--requests",
        "10",
        "--tenants",
        "acme,beta",
        "--resource",
        "api",
        "--amount",
        "30",
        "--json",
    ]));
    assert_eq!((count(&r, "granted"), count(&r, "denied")), (0, 10), "{r}");
}

#[test]
fn an_envoy_amount_beyond_hits_addend_is_refused_naming_the_flag() {
    let out = bench(&[
        "--target",
        "127.0.0.1:1",
        "--protocol",
        "envoy",
        "--amount",
        "4294967296",
    ]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--amount: 4294967296 is more than --protocol envoy sends"),
        "{err}"
    );
}
