//! The command line as an operator meets it: `check` and `serve` errors.

use std::process::Command;

fn prescient(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prescient"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_example_policy_with_a_one_line_summary() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policies.yaml");
    let (code, out, _) = prescient(&["check", path], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("OK: 2 resources, 2 tenants"), "{out}");
}

#[test]
fn check_prints_every_reason_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "resources:\n  db: { kind: rate, capacity: 100 }\n\
         tenants:\n  a: { qos: gold, limits: { db: { guaranteed: 80 } } }\n  \
         b: { qos: tin, limits: { db: { guaranteed: 30 }, dv: { guaranteed: 1 } } }\n",
    )
    .unwrap();
    let (code, out, _) = prescient(&["check", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}");
    let file = path.display().to_string();
    for reason in [
        format!("{file}: tenants.b.qos: unknown QoS class \"tin\""),
        format!("{file}: tenants.b.limits.dv: unknown resource \"dv\""),
        format!(
            "{file}: resources.db: guaranteed total 110 (a 80, b 30) exceeds capacity 100 - emergency 0"
        ),
        format!("{file}: 3 problems"),
    ] {
        assert!(out.contains(&reason), "missing {reason:?} in:\n{out}");
    }
}

#[test]
fn check_of_a_missing_file_says_so() {
    let (code, out, _) = prescient(&["check", "/nonexistent/p.yaml"], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("/nonexistent/p.yaml: cannot read"), "{out}");
}

#[test]
fn serve_refuses_bad_settings_naming_the_key() {
    let (code, _, err) = prescient(&["serve"], &[("PRESCIENT_LISTEN", "not-an-address")]);
    assert_eq!(code, 1);
    assert!(err.contains("listen"), "{err}");
}

#[test]
fn serve_refuses_an_invalid_policy_with_its_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, "resources:\n  db: { kind: rate, capacity: 0 }\n").unwrap();
    let (code, _, err) = prescient(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--policy",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("resources.db.capacity: must be > 0"), "{err}");
}

#[test]
fn simulate_prints_tables_or_json_for_the_bundled_example() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let policy = format!("{dir}/examples/sim/policy.yaml");
    let trace = format!("{dir}/examples/sim/trace.csv");
    let (code, out, err) = prescient(
        &[
            "simulate", "--policy", &policy, "--trace", &trace, "--mode", "reactive", "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.is_empty(),
        "no progress bar when stderr is not a terminal: {err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["modes"]["reactive"]["capacity_violations"], 0);
    assert!(
        v["modes"].get("predictive").is_none(),
        "only the mode asked"
    );
}

#[test]
fn simulate_refuses_a_bad_trace_naming_the_line_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    std::fs::write(
        &trace,
        "timestamp,tenant,resource,amount\n1,checkout,api,5\n0.5,checkout,api,5\n",
    )
    .unwrap();
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sim/policy.yaml");
    let plot = dir.path().join("p.svg");
    let (code, out, err) = prescient(
        &[
            "simulate",
            "--policy",
            policy,
            "--trace",
            trace.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(out.is_empty(), "nothing half-printed: {out}");
    assert!(
        err.contains("t.csv:3: timestamp: \"0.5\" goes backwards"),
        "{err}"
    );
    assert!(!plot.exists());
}

#[test]
fn serve_refuses_a_bad_tokens_file() {
    let (code, _, err) = prescient(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[("PRESCIENT_AUTH__TOKENS_FILE", "/nonexistent/tokens.yaml")],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("auth.tokens_file: /nonexistent/tokens.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn simulate_on_two_daemons_reports_them_and_the_one_daemon_figure() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let policy = format!("{dir}/examples/sim/cluster.yaml");
    let trace = format!("{dir}/examples/sim/cluster.csv");
    let args = [
        "simulate",
        "--policy",
        &policy,
        "--trace",
        &trace,
        "--mode",
        "reactive",
        "--instances",
        "2",
        "--split",
        "hash:tenant",
    ];
    let (code, out, err) = prescient(&[&args[..], &["--json"]].concat(), &[]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["instances"], 2);
    let m = &v["modes"]["reactive"];
    assert_eq!(m["capacity_violations"], 0);
    assert!(m["single_daemon_denied"].is_u64(), "{m}");
    let (code, out, err) = prescient(&args, &[]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "2 daemons sharing one lease store, rows split hash:tenant",
        "distributed denied ",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
}

#[test]
fn simulate_refuses_a_bad_instances_or_split_naming_the_flag() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sim/cluster.yaml");
    let trace = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sim/cluster.csv");
    for (flag, value, reason) in [
        ("--instances", "0", "must be at least 1"),
        ("--instances", "two", "\"two\" is not a whole number"),
        (
            "--instances",
            "5000",
            "5000 is more than 1024 simulated daemons",
        ),
        (
            "--split",
            "hash:amount",
            "split: \"amount\" is not a column rows can be routed by: use hash:tenant or hash:resource",
        ),
        (
            "--split",
            "random",
            "split: \"random\" is not a split: use round-robin, hash:tenant or hash:resource",
        ),
    ] {
        let (code, out, err) = prescient(
            &[
                "simulate", "--policy", policy, "--trace", trace, flag, value,
            ],
            &[],
        );
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(out.is_empty(), "nothing printed: {out}");
        assert!(err.contains(&format!("'{value}' for '{flag}")), "{err}");
        assert!(err.contains(reason), "{flag} {value}: {err}");
    }
}
