//! Envoy's rate-limit service on the real daemon, called by a client built
//! from Envoy's own generated code (PyPI `xds-protos`, in the virtualenv
//! `scripts/install-python-test-deps` makes): `tests/envoy/client.py`.
//! Buckets refill at 1 token/s, so every exact figure below is read from a
//! bucket no refill can change (full, or taken in the same call).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use common::{Daemon, eventually};
use serde_json::{Value, json};

/// acme: 1/s, burst 5; beta: 1/s, burst 3, charged for `generic_key:
/// batch`; anyone else (a header value, a client address) from defaults.
/// Bronze: no borrowing, so what is left is the tenant's own bucket.
const POLICY: &str = r#"
resources:
  api: { kind: rate, capacity: 100 }
tenants:
  acme: { qos: bronze, limits: { api: { guaranteed: 1, burst: 5 } } }
  beta: { qos: bronze, limits: { api: { guaranteed: 1, burst: 3 } } }
defaults: { qos: bronze, limits: { api: { guaranteed: 1, burst: 3 } } }
envoy:
  response_headers: true
  domains:
    edge:
      - { resource: api, tenant_key: tenant }
      - { resource: api, tenant: beta, match: { generic_key: batch } }
      - { resource: api, tenant_key: remote_address }
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's python, installed by the project's script if missing.
fn python() -> PathBuf {
    static INSTALL: Once = Once::new();
    let python = root().join(".tools/pyenvoy/bin/python");
    INSTALL.call_once(|| {
        if !python.exists() {
            let status = Command::new(root().join("scripts/install-python-test-deps"))
                .status()
                .expect("run scripts/install-python-test-deps");
            assert!(status.success(), "scripts/install-python-test-deps failed");
        }
    });
    python
}

/// Runs `calls` (see client.py) against the daemon, in order, from one
/// client process; one JSON answer per call.
fn rls(d: &Daemon, calls: Value) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(root().join("tests/envoy/client.py"))
        .arg(d.grpc.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the python client");
    serde_json::to_writer(child.stdin.take().unwrap(), &calls).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One call of one descriptor.
fn call(domain: &str, entries: &[(&str, &str)], hits: u32) -> Value {
    json!({"domain": domain, "hits_addend": hits, "descriptors": [{"entries": entries}]})
}

fn reset_seconds(status: &Value) -> f64 {
    let s = status["duration_until_reset"].as_str().unwrap();
    s.strip_suffix('s').unwrap().parse().unwrap()
}

fn header<'a>(answer: &'a Value, key: &str) -> Option<&'a str> {
    answer["response_headers_to_add"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["key"] == key)
        .map(|h| h["value"].as_str().unwrap())
}

#[tokio::test]
async fn a_descriptor_is_charged_its_hits_and_told_its_limit_remaining_and_reset() {
    let d = Daemon::start(POLICY, &[]);
    let answers = rls(
        &d,
        json!([
            call("edge", &[("tenant", "acme")], 2),
            call("edge", &[("tenant", "acme")], 2),
            // 0 means 1, on a fresh tenant from defaults (3 tokens).
            call("edge", &[("tenant", "carol")], 0),
            // acme has 1 (2 if a token came back meanwhile): 4 is over.
            call("edge", &[("tenant", "acme")], 4),
        ]),
    );
    let first = &answers[0];
    assert_eq!(first["overall_code"], "OK", "{first}");
    let s = &first["statuses"][0];
    assert_eq!(s["code"], "OK");
    assert_eq!(
        s["current_limit"],
        json!({"name": "api", "requests_per_unit": 1, "unit": "SECOND"})
    );
    assert_eq!(s["limit_remaining"], 3, "5 - 2: {s}");
    // 2 tokens short of a full bucket at 1/s.
    let reset = reset_seconds(s);
    assert!(reset > 1.0 && reset <= 2.0, "{s}");
    let second = &answers[1]["statuses"][0];
    let left = second["limit_remaining"].as_u64().unwrap();
    assert!(left < 3, "remaining decreases: {second}");
    assert_eq!(
        answers[2]["statuses"][0]["limit_remaining"], 2,
        "{}",
        answers[2]
    );

    let over = &answers[3];
    assert_eq!(over["overall_code"], "OVER_LIMIT", "{over}");
    let s = &over["statuses"][0];
    assert_eq!(s["code"], "OVER_LIMIT");
    assert!(s["limit_remaining"].as_u64().unwrap() < 4, "{s}");
    // The wait until 4 tokens are there: at most 4 s at 1/s.
    let reset = reset_seconds(s);
    assert!(reset > 0.0 && reset <= 4.0, "{s}");
    assert_eq!(header(over, "x-ratelimit-limit"), Some("1, 1;w=1"));
    assert_eq!(
        header(over, "x-ratelimit-remaining").map(|v| v.parse::<u64>().unwrap()),
        s["limit_remaining"].as_u64()
    );
}

#[tokio::test]
async fn one_descriptor_over_limit_makes_the_request_over_limit_and_the_others_stay_charged() {
    let d = Daemon::start(POLICY, &[]);
    let both = json!({"domain": "edge", "descriptors": [
        {"entries": [["tenant", "acme"]]},
        {"entries": [["generic_key", "batch"]], "hits_addend": 3},
        {"entries": [["user", "nobody"]]},
    ]});
    let answers = rls(
        &d,
        json!([
            call("edge", &[("generic_key", "batch")], 3),
            both,
            call("edge", &[("tenant", "acme")], 1),
        ]),
    );
    assert_eq!(
        answers[0]["statuses"][0]["limit_remaining"], 0,
        "beta is empty"
    );
    let a = &answers[1];
    assert_eq!(a["overall_code"], "OVER_LIMIT", "{a}");
    let codes: Vec<_> = a["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["code"])
        .collect();
    assert_eq!(codes, ["OK", "OVER_LIMIT", "OK"], "{a}");
    assert_eq!(a["statuses"][0]["limit_remaining"], 4, "{a}");
    // The descriptor no rule matches: OK, and no limit.
    assert_eq!(a["statuses"][2]["current_limit"], Value::Null, "{a}");
    // The headers follow the most constrained descriptor (beta's).
    assert_eq!(header(a, "x-ratelimit-remaining"), Some("0"), "{a}");
    // acme's token stayed taken although the request was over limit.
    let after = answers[2]["statuses"][0]["limit_remaining"]
        .as_u64()
        .unwrap();
    assert!(
        after <= 3,
        "5 - 1 - 1 (+1 if refilled meanwhile): {}",
        answers[2]
    );
}

#[tokio::test]
async fn unknown_domains_and_unmatched_descriptors_are_ok_and_bad_input_is_refused() {
    let d = Daemon::start(POLICY, &[]);
    let answers = rls(
        &d,
        json!([
            call("other", &[("tenant", "acme")], 1),
            call("edge", &[("remote_address", "10.0.0.7")], 1),
            call("", &[("tenant", "acme")], 1),
            {"domain": "edge", "descriptors": []},
            call("edge", &[("tenant", "not a name")], 1),
            call("edge", &[("tenant", "acme")], 6),
        ]),
    );
    let unknown = &answers[0];
    assert_eq!(unknown["overall_code"], "OK", "{unknown}");
    assert_eq!(unknown["statuses"][0]["code"], "OK");
    assert_eq!(unknown["statuses"][0]["current_limit"], Value::Null);
    assert_eq!(unknown["response_headers_to_add"], json!([]));
    // A client address as the tenant, created from defaults (3 tokens).
    let by_address = &answers[1]["statuses"][0];
    assert_eq!(by_address["limit_remaining"], 2, "{by_address}");
    let refused = |i: usize, code: &str, words: &[&str]| {
        let e = &answers[i]["error"];
        assert_eq!(e["code"], code, "{}", answers[i]);
        for w in words {
            assert!(e["details"].as_str().unwrap().contains(w), "{w}: {e}");
        }
    };
    refused(2, "INVALID_ARGUMENT", &["domain", "must not be empty"]);
    refused(3, "INVALID_ARGUMENT", &["descriptors", "0 descriptors"]);
    refused(
        4,
        "INVALID_ARGUMENT",
        &["descriptors[0]", "tenant", "not a name"],
    );
    // More than acme could ever be granted at once (its burst, 5): over
    // limit, not an error (Envoy lets a request through on an error).
    let never = &answers[5];
    assert_eq!(never["overall_code"], "OVER_LIMIT", "{never}");
    assert_eq!(never["statuses"][0]["limit_remaining"], 0, "{never}");
    // None of the refused calls took anything.
    let after = rls(&d, json!([call("edge", &[("tenant", "acme")], 5)]));
    assert_eq!(after[0]["statuses"][0]["code"], "OK", "{}", after[0]);
}

#[tokio::test]
async fn rules_reload_live_and_an_invalid_edit_keeps_the_last_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).unwrap();
    let d = Daemon::start_at(&path, &[]);
    let nightly = || call("edge", &[("generic_key", "nightly")], 1);
    let limited = |a: &Value| a["statuses"][0]["current_limit"] != Value::Null;
    assert!(!limited(&rls(&d, json!([nightly()]))[0]));

    std::fs::write(&path, POLICY.replace("batch", "nightly")).unwrap();
    let reloads = |result: &str, n: f64| {
        let series = format!("prescient_policy_reloads_total{{result=\"{result}\"}}");
        let d = &d;
        eventually(Duration::from_secs(20), "the reload", move || {
            let series = series.clone();
            async move { (d.metric(&series) == Some(n)).then_some(()) }
        })
    };
    reloads("ok", 1.0).await;
    assert!(
        limited(&rls(&d, json!([nightly()]))[0]),
        "the new rule is in force"
    );

    // A rule naming a resource the policy lacks: refused, with its path.
    let broken = POLICY.replace(
        "{ resource: api, tenant: beta",
        "{ resource: nope, tenant: beta",
    );
    std::fs::write(&path, broken).unwrap();
    reloads("error", 1.0).await;
    assert!(
        d.logged(&[
            "invalid policy",
            "envoy.domains.edge[1].resource",
            "unknown resource"
        ]),
        "{:?}",
        d.log.lock().unwrap()
    );
    assert!(
        limited(&rls(&d, json!([nightly()]))[0]),
        "the last good rules stay"
    );
}

#[tokio::test]
async fn reflection_lists_the_rate_limit_service() {
    let d = Daemon::start(POLICY, &[]);
    let names = common::reflection::services(d.channel().await).await;
    for service in [
        "envoy.service.ratelimit.v3.RateLimitService",
        "prescient.v1.Admission",
    ] {
        assert!(names.iter().any(|n| n == service), "{service}: {names:?}");
    }
}
