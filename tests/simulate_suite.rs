//! `prescient suite DIR` through the real binary, on the two short traces of
//! `tests/suite/`: every row of its table and of its JSON is what
//! `prescient simulate --spread 1m --json` says of the same trace and
//! policy; bad suites are refused with the path and the reason.

use std::process::Command;

use serde_json::Value;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn prescient(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_prescient"))
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

fn json(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{}", run.err);
    serde_json::from_str(&run.out).expect("one JSON object")
}

const MODES: [&str; 3] = ["reactive", "predictive", "oracle"];

/// (name, trace, policy) of the fixture, as the suite should find them.
const ENTRIES: [(&str, &str, &str); 3] = [
    (
        "bursts/borrow",
        "tests/suite/bursts/trace.csv",
        "tests/suite/bursts/borrow.yaml",
    ),
    (
        "bursts/isolated",
        "tests/suite/bursts/trace.csv",
        "tests/suite/bursts/isolated.yaml",
    ),
    (
        "quiet/policy",
        "tests/suite/quiet/trace.csv",
        "tests/suite/quiet/policy.yaml",
    ),
];

fn simulate(trace: &str, policy: &str) -> Value {
    json(&prescient(&[
        "simulate", "--policy", policy, "--trace", trace, "--spread", "1m", "--json",
    ]))
}

fn value(denied: [u64; 3]) -> Option<f64> {
    let [r, p, o] = denied.map(|d| d as f64);
    (r - o > 0.0).then(|| (r - p) / (r - o))
}

#[test]
fn suite_rows_are_what_simulate_says_of_each_trace() {
    let suite = json(&prescient(&["suite", "tests/suite", "--json"]));
    let table = prescient(&["suite", "tests/suite"]);
    assert_eq!(table.code, 0, "{}", table.err);
    let lines: Vec<&str> = table.out.lines().collect();
    assert!(
        lines[0].starts_with("| trace | denied: reactive |"),
        "{}",
        table.out
    );

    let rows = suite["traces"].as_array().unwrap();
    assert_eq!(rows.len(), ENTRIES.len(), "{suite}");
    let mut sums = [0u64; 3];
    for (i, (name, trace, policy)) in ENTRIES.iter().enumerate() {
        let row = &rows[i];
        assert_eq!(row["name"], *name);
        let sim = simulate(trace, policy);
        let denied = MODES.map(|m| sim["modes"][m]["total"]["tokens_denied"].as_u64().unwrap());
        for (k, m) in MODES.iter().enumerate() {
            assert_eq!(
                row["tokens_denied"][m].as_u64(),
                Some(denied[k]),
                "{name} {m}"
            );
            assert_eq!(
                row["utilization"][m], sim["modes"][m]["utilization"]["api"],
                "{name} {m}"
            );
            sums[k] += denied[k];
        }
        let predictive = &sim["modes"]["predictive"]["total"];
        assert!(predictive["coverage"].is_f64(), "{sim}");
        assert_eq!(row["coverage"], predictive["coverage"], "{name}");
        assert_eq!(row["mase"], predictive["mase"], "{name}");
        let v = value(denied);
        assert_eq!(row["value"].as_f64(), v, "{name}");
        let whole = sim["modes"]["oracle"]["whole_requests_denied"]
            .as_u64()
            .unwrap();
        assert!(whole >= denied[2], "{name}: not below the bound");
        assert_eq!(row["whole_requests_denied"].as_u64(), Some(whole), "{name}");
        let vw = value([denied[0], denied[1], whole]);
        assert_eq!(row["value_whole"].as_f64(), vw, "{name}");

        // The markdown row says the same, rounded as documented.
        let cells: Vec<String> = format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.3} | {:.2} |",
            denied[0],
            denied[1],
            denied[2],
            v.map_or("n/a".into(), |v| format!("{v:.2}")),
            whole,
            vw.map_or("n/a".into(), |v| format!("{v:.2}")),
            sim["modes"]["reactive"]["utilization"]["api"]
                .as_f64()
                .unwrap()
                * 100.0,
            sim["modes"]["predictive"]["utilization"]["api"]
                .as_f64()
                .unwrap()
                * 100.0,
            sim["modes"]["oracle"]["utilization"]["api"]
                .as_f64()
                .unwrap()
                * 100.0,
            predictive["coverage"].as_f64().unwrap(),
            predictive["mase"].as_f64().unwrap(),
        )
        .split('|')
        .map(|c| c.trim().to_string())
        .collect();
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row {name} in\n{}", table.out));
        let got: Vec<String> = line.split('|').map(|c| c.trim().to_string()).collect();
        assert_eq!(got, cells, "{name}");
    }
    // The fixture has a row where forecasting paid, and one where it did not.
    assert!(
        rows.iter().any(|r| r["value"].as_f64() > Some(0.5)),
        "{suite}"
    );
    let total = &suite["total"];
    for (k, m) in MODES.iter().enumerate() {
        assert_eq!(total["tokens_denied"][m].as_u64(), Some(sums[k]), "{m}");
    }
    assert_eq!(total["value"].as_f64(), value(sums));
    assert!(
        lines.iter().any(|l| l.starts_with("| total |")),
        "{}",
        table.out
    );
}

#[test]
fn an_empty_suite_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = prescient(&["suite", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(run.out.is_empty(), "{}", run.out);
    assert!(
        run.err.contains(dir.path().to_str().unwrap()),
        "{}",
        run.err
    );
    assert!(run.err.contains("no traces"), "{}", run.err);
}

#[test]
fn a_trace_without_a_policy_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("lonely");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy("tests/suite/quiet/trace.csv", sub.join("trace.csv")).unwrap();
    let run = prescient(&["suite", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(run.out.is_empty(), "{}", run.out);
    assert!(run.err.contains("lonely"), "{}", run.err);
    assert!(run.err.contains("no policy"), "{}", run.err);
}

#[test]
fn a_bad_policy_stops_the_suite_before_any_replay() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("bad");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy("tests/suite/quiet/trace.csv", sub.join("trace.csv")).unwrap();
    std::fs::write(
        sub.join("policy.yaml"),
        "resources: { api: { kind: rate, capacity: 100 } }\n\
         tenants: { a: { limits: { api: { guaranteed: 500 } } } }\n",
    )
    .unwrap();
    let run = prescient(&["suite", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(run.out.is_empty(), "{}", run.out);
    assert!(run.err.contains("policy.yaml"), "{}", run.err);
    assert!(run.err.contains("guaranteed"), "{}", run.err);
    assert!(
        !run.err.contains("suite: "),
        "replayed before refusing: {}",
        run.err
    );
}
