//! `prescient simulate` on traces as users have them (quiet rows, gaps,
//! per-interval totals with `--spread`), and replays that are the same
//! byte for byte on every run. Through the real binary.

use std::process::Command;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn simulate(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_prescient"))
        .arg("simulate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8(out.stdout).unwrap(),
        err: String::from_utf8(out.stderr).unwrap(),
    }
}

fn json(run: &Run) -> serde_json::Value {
    assert_eq!(run.code, 0, "{}", run.err);
    serde_json::from_str(&run.out).expect("one JSON object")
}

/// One API of 1,000/s; `a` has 200/s and a bucket of 400.
const POLICY: &str = "resources: { api: { kind: rate, capacity: 1000 } }
tenants: { a: { limits: { api: { guaranteed: 200, burst: 400 } } } }
";

fn files(trace: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (p, t) = (dir.path().join("p.yaml"), dir.path().join("t.csv"));
    std::fs::write(&p, POLICY).unwrap();
    std::fs::write(&t, trace).unwrap();
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
    (dir, s(p), s(t))
}

#[test]
fn quiet_rows_and_gaps_are_time_in_which_nothing_is_asked() {
    // A quiet row at 30 s, then an hour with no rows at all.
    let (_dir, policy, trace) =
        files("timestamp,tenant,resource,amount\n0,a,api,100\n30,a,api,0\n3630,a,api,50\n");
    let v = json(&simulate(&[
        "--policy", &policy, "--trace", &trace, "--mode", "reactive", "--json",
    ]));
    let total = &v["modes"]["reactive"]["total"];
    assert_eq!(total["requests"], 2, "a quiet row is no Acquire");
    assert_eq!(total["tokens_asked"], 150);
    assert_eq!(total["tokens_denied"], 0);
    assert_eq!(v["trace"]["seconds"], 3630.0, "the gap's time passes");
    // Utilization is over the whole span, gap included.
    let util = v["modes"]["reactive"]["utilization"]["api"]
        .as_f64()
        .unwrap();
    assert!(util < 150.0 / (1000.0 * 3630.0) * 1.01, "{util}");
}

#[test]
fn spread_replays_interval_totals_over_the_interval_keeping_every_token() {
    // A per-minute export: 6,000 and 6,001 tokens, then a quiet minute.
    let csv = "timestamp,tenant,resource,amount\n0,a,api,6000\n60,a,api,6001\n120,a,api,0\n";
    let (_dir, policy, trace) = files(csv);
    let base = [
        "--policy", &policy, "--trace", &trace, "--mode", "reactive", "--json",
    ];
    // As one request each, a minute's total can never fit a bucket of 400.
    let whole = json(&simulate(&base));
    assert_eq!(whole["modes"]["reactive"]["total"]["tokens_denied"], 12_001);
    let mut args = base.to_vec();
    args.extend(["--spread", "1m"]);
    let v = json(&simulate(&args));
    let total = &v["modes"]["reactive"]["total"];
    assert_eq!(total["tokens_asked"], 12_001, "every token kept");
    assert_eq!(total["requests"], 120, "one request per second with tokens");
    assert_eq!(total["tokens_denied"], 0, "100/s fits 200/s");
    assert_eq!(v["trace"]["rows"], 180);
    assert_eq!(v["trace"]["seconds"], 179.0);
}

#[test]
fn a_bad_spread_or_rows_inside_one_are_refused_naming_why() {
    let (_dir, policy, trace) =
        files("timestamp,tenant,resource,amount\n0,a,api,60\n15,a,api,60\n");
    for (spread, expect) in [
        (
            "0s",
            "invalid value '0s' for '--spread <DURATION>': must be longer than 0",
        ),
        (
            "soon",
            "invalid value 'soon' for '--spread <DURATION>': \"soon\" is not a duration",
        ),
    ] {
        let run = simulate(&["--policy", &policy, "--trace", &trace, "--spread", spread]);
        assert_eq!(run.code, 2);
        assert!(run.err.contains(expect), "{}", run.err);
        assert!(run.out.is_empty());
    }
    let run = simulate(&["--policy", &policy, "--trace", &trace, "--spread", "1m"]);
    assert_eq!(run.code, 1);
    assert!(run.out.is_empty(), "nothing half-printed: {}", run.out);
    assert!(
        run.err
            .contains("t.csv:3: timestamp: \"15\" is inside the spread interval of line 2"),
        "{}",
        run.err
    );
}

/// The bundled example's first 20 minutes (models refit every minute from
/// minute 10 on): three daemons run each mode twice, so its first hour
/// alone takes two minutes in a debug build.
fn first_minutes(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/sim/trace.csv"
    ))
    .unwrap();
    let in_minutes = |l: &&str| {
        let t = l.split(',').next().and_then(|t| t.parse::<f64>().ok());
        t.is_none_or(|t| t < 1200.0)
    };
    let rows: Vec<&str> = text.lines().take_while(in_minutes).collect();
    assert!(rows.len() > 7_000, "{}", rows.len());
    let path = dir.join("first.csv");
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs `args` twice: the JSON must be the same bytes; returns it.
fn twice(args: &[&str]) -> serde_json::Value {
    let (first, second) = (simulate(args), simulate(args));
    let v = json(&first);
    assert_eq!(second.code, 0, "{}", second.err);
    assert!(first.out == second.out, "two runs of {args:?} differ");
    v
}

#[test]
fn two_replays_of_the_bundled_example_print_the_same_json_byte_for_byte() {
    let v = twice(&[
        "--policy",
        "examples/sim/policy.yaml",
        "--trace",
        "examples/sim/trace.csv",
        "--json",
    ]);
    // The forecasts predictive used are scored per tenant, and only there.
    for tenant in ["checkout", "search", "batch"] {
        let t = &v["modes"]["predictive"]["tenants"][tenant];
        let coverage = t["coverage"].as_f64().expect("coverage");
        assert!((0.5..=1.0).contains(&coverage), "{tenant}: {t}");
        assert!(t["mase"].as_f64().expect("mase") > 0.0, "{tenant}: {t}");
        let reactive = &v["modes"]["reactive"]["tenants"][tenant];
        assert!(reactive.get("coverage").is_none(), "{reactive}");
    }
}

#[test]
fn two_replays_on_three_daemons_print_the_same_json_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let trace = first_minutes(dir.path());
    let v = twice(&[
        "--policy",
        "examples/sim/policy.yaml",
        "--trace",
        &trace,
        "--json",
        "--instances",
        "3",
    ]);
    assert_eq!(v["instances"], 3);
    assert!(v["modes"]["predictive"]["tenants"]["checkout"]["coverage"].is_f64());
}
