//! The README's and docs' commands and snippets, run or checked verbatim
//! against the real binary and daemon (issue 16 item 10). Every fenced
//! block of README.md and docs/*.md is checked by its info string (the
//! convention is in README "Docs are tested"), or listed as skipped with
//! its reason; a block the test cannot place fails it.

mod common;
// Bottom up: markdown (reading), process (the binary), snippets (checks
// of blocks that are not commands), run (each block of a file).
#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/process.rs"]
mod process;
#[path = "docs/run.rs"]
mod run;
#[path = "docs/snippets.rs"]
mod snippets;

#[allow(dead_code)] // `main` is the example's; the test calls `run`
#[path = "../examples/acquire.rs"]
mod acquire_example;

#[allow(dead_code)] // `main` is the example's; the test calls `run`
#[path = "../client/examples/permit.rs"]
mod permit_example;

use std::time::Duration;

use common::{Daemon, eventually};
use prescient::proto::AcquireRequest;
use process::repo;
use run::Docs;

/// Markdown files whose blocks are not run, with the reason.
const NOT_RUN: &[(&str, &str)] = &[(
    "docs/performance.md",
    "measurements: its commands are `cargo bench` runs of minutes each",
)];

#[test]
fn readme_commands_and_snippets_hold() {
    Docs::check("README.md");
}

#[test]
fn design_doc_snippets_hold() {
    Docs::check("docs/design.md");
}

#[test]
fn deployment_doc_snippets_hold() {
    Docs::check("docs/deployment.md");
}

#[test]
fn distributed_doc_snippets_hold() {
    Docs::check("docs/distributed.md");
}

#[test]
fn envoy_doc_snippets_hold() {
    Docs::check("docs/envoy.md");
}

#[test]
fn keda_doc_snippets_hold() {
    Docs::check("docs/keda.md");
}

#[test]
fn operations_doc_snippets_hold() {
    Docs::check("docs/operations.md");
}

#[test]
fn simulation_doc_commands_and_contract_hold() {
    Docs::check("docs/simulation.md");
}

/// A new page is checked too, or says why not.
#[test]
fn every_markdown_page_is_checked_or_listed_as_not_run() {
    let checked = [
        "docs/design.md",
        "docs/deployment.md",
        "docs/distributed.md",
        "docs/envoy.md",
        "docs/keda.md",
        "docs/operations.md",
        "docs/simulation.md",
    ];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let name = format!("docs/{}", entry.unwrap().file_name().to_string_lossy());
        if !name.ends_with(".md") {
            continue;
        }
        if let Some((_, why)) = NOT_RUN.iter().find(|(f, _)| *f == name) {
            eprintln!("SKIP {name}: {why}");
            continue;
        }
        assert!(
            checked.contains(&name.as_str()),
            "{name} has no test in tests/docs.rs"
        );
    }
}

/// docs/simulation.md's results table against a run of its command,
/// exactly: replays are reproducible.
#[test]
fn simulation_results_table_is_what_the_command_prints() {
    let text = std::fs::read_to_string(repo().join("docs/simulation.md")).unwrap();
    let rows = markdown::marked_table(&text, "sim-results").expect("the marked table");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let v = process::simulate_json();
    let number = |cell: &str| -> f64 {
        let head = cell.trim_matches('*').split_whitespace().next().unwrap();
        head.trim_matches(|c: char| !c.is_ascii_digit())
            .replace(',', "")
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {cell:?}"))
    };
    for row in rows {
        let mode = row[0].as_str();
        let m = &v["modes"][mode];
        let denied = |who: &str| m["tenants"][who]["tokens_denied"].as_f64().unwrap();
        let close = |doc: f64, run: f64, what: &str| {
            assert!(
                doc == run,
                "{mode} {what}: the table says {doc}, the run {run}"
            );
        };
        close(number(&row[1]), denied("checkout"), "checkout");
        close(number(&row[2]), denied("search"), "search");
        close(number(&row[3]), denied("batch"), "batch");
        let total = m["total"]["tokens_denied"].as_f64().unwrap();
        close(number(&row[4]), total, "all tenants");
        let share = denied("checkout") / m["tenants"]["checkout"]["tokens_asked"].as_f64().unwrap();
        let said = row[1].split('(').nth(1).map(number).expect("a share");
        assert!(
            (said - share * 100.0).abs() <= 0.051,
            "{mode} share {said}%"
        );
        let util = m["utilization"]["api"].as_f64().unwrap() * 100.0;
        assert!(
            (number(&row[5]) - util).abs() <= 0.051,
            "{mode} utilization {util}"
        );
        assert_eq!(number(&row[6]), m["capacity_violations"].as_f64().unwrap());
    }
}

/// `predictive_vs_reactive` is left out, not `null`, when it does not apply.
#[test]
fn simulate_json_leaves_predictive_vs_reactive_out_when_one_mode_ran() {
    let out = process::prescient_in(
        &repo(),
        &[
            "simulate",
            "--policy",
            "examples/sim/policy.yaml",
            "--trace",
            "examples/sim/trace.csv",
            "--mode",
            "reactive",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let summary = v["summary"].as_object().unwrap();
    assert!(
        !summary.contains_key("predictive_vs_reactive"),
        "absent, not null: {summary:?}"
    );
}

/// operations.md: at debug, each Acquire logs its decision inside its
/// `acquire` span (granted, denied, refused).
#[test]
fn acquire_logs_its_decision_inside_its_span_at_debug() {
    let daemon = Daemon::start(prescient::policy::EMBEDDED_POLICY, &[("RUST_LOG", "debug")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut client = daemon.client().await;
        let ask = |amount| AcquireRequest {
            tenant: "newcomer".into(), // from `defaults`: bronze, 10/s, no borrowing
            resource: "db_queries".into(),
            amount,
            ..Default::default()
        };
        let first = client.acquire(ask(10)).await.unwrap().into_inner();
        assert_eq!(first.from_guaranteed, 10);
        client.acquire(ask(10)).await.unwrap(); // the bucket is empty
        client.acquire(ask(0)).await.unwrap_err();
        for (what, parts) in [
            ("granted", ["granted", "amount=10", "guaranteed=10"]),
            ("denied", ["denied", "amount=10", "retry_after="]),
            ("refused", ["refused", "amount=0", "amount: must be > 0"]),
        ] {
            let mut wanted = vec!["DEBUG", "acquire{tenant=newcomer resource=db_queries}:"];
            wanted.extend(parts);
            eventually(Duration::from_secs(10), what, || async {
                daemon.logged_yet(&wanted).then_some(())
            })
            .await;
        }
    });
}

/// operations.md: the latency histogram times every Acquire decided on
/// arrival, with or without `request_id`; a retry answered from the
/// idempotency log makes no decision and is not timed.
#[test]
fn acquire_latency_times_acquires_with_a_request_id_once() {
    let daemon = Daemon::start(prescient::policy::EMBEDDED_POLICY, &[]);
    let count = || {
        daemon
            .metric("prescient_acquire_latency_seconds_count")
            .unwrap_or(0.0)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut client = daemon.client().await;
        let ask = |id: &str| AcquireRequest {
            tenant: "checkout".into(),
            resource: "db_queries".into(),
            amount: 1,
            request_id: id.into(),
            ..Default::default()
        };
        client.acquire(ask("retry-1")).await.unwrap();
        assert_eq!(count(), 1.0, "an Acquire with a request_id is timed");
        client.acquire(ask("retry-1")).await.unwrap();
        assert_eq!(count(), 1.0, "its retry is answered, not decided");
        client.acquire(ask("")).await.unwrap();
        assert_eq!(count(), 2.0);
    });
}
