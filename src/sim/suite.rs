//! `prescient suite DIR`: the evaluation suite. Runs every (trace, policy)
//! pair of a directory through the modes of [`super::run`] (and the oracle) and
//! tabulates what forecasting was worth on each: tokens denied per mode,
//! the forecast value `(reactive − predictive) ÷ (reactive − oracle)`,
//! utilization, and the coverage and MASE of the forecasts predictive used.
//!
//! Layout: one subdirectory per trace, holding `trace.csv` (per-minute
//! totals, replayed with `--spread 1m`) and one or more policies
//! (`*.yaml`); each pair is one row, named `<dir>/<policy stem>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{Daemons, Mode, Trace};
use crate::planner::PlannerConfig;
use crate::policy::Policy;

/// Every suite trace is a per-minute export: each row is one minute's total.
pub const SPREAD: Duration = Duration::from_secs(60);

/// Why a suite could not run: the path and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SuiteError {
    pub path: String,
    pub reason: String,
}

impl SuiteError {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}

/// One (trace, policy) pair of the suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub trace: PathBuf,
    pub policy: PathBuf,
}

/// The suite's pairs in name order; an error if the directory holds none,
/// or a trace directory has no policy.
pub fn entries(dir: &Path) -> Result<Vec<Entry>, SuiteError> {
    let mut out = Vec::new();
    for sub in sorted_dir(dir)? {
        if !sub.is_dir() {
            continue;
        }
        let trace = sub.join("trace.csv");
        if !trace.is_file() {
            continue;
        }
        let policies: Vec<PathBuf> = sorted_dir(&sub)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        if policies.is_empty() {
            return Err(SuiteError::new(
                &sub,
                "no policy: a trace directory needs at least one *.yaml beside trace.csv",
            ));
        }
        let dir_name = file_name(&sub);
        for policy in policies {
            let stem = policy
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(Entry {
                name: format!("{dir_name}/{stem}"),
                trace: trace.clone(),
                policy,
            });
        }
    }
    if out.is_empty() {
        return Err(SuiteError::new(
            dir,
            "no traces: expected subdirectories holding trace.csv and a policy (*.yaml)",
        ));
    }
    Ok(out)
}

fn sorted_dir(dir: &Path) -> Result<Vec<PathBuf>, SuiteError> {
    let read = std::fs::read_dir(dir).map_err(|e| SuiteError::new(dir, e.to_string()))?;
    let mut paths = read
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SuiteError::new(dir, e.to_string()))?;
    paths.sort();
    Ok(paths)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub tokens_denied: BTreeMap<&'static str, u64>,
    /// `(reactive − predictive) ÷ (reactive − oracle)`; `None` (JSON
    /// `null`) when the denominator is ≤ 0: the oracle saved nothing.
    pub value: Option<f64>,
    /// What the oracle's pools deny granting whole requests only, greedily
    /// in trace order (not a bound: see `sim::oracle`).
    pub whole_requests_denied: Option<u64>,
    /// `(reactive − predictive) ÷ (reactive − whole_requests_denied)`:
    /// the value against a hindsight all-or-nothing admission; may exceed
    /// 1. `None` when that admission denied no fewer than reactive.
    pub value_whole: Option<f64>,
    /// Per mode, tokens granted over capacity × duration, averaged over
    /// the trace's resources.
    pub utilization: BTreeMap<&'static str, f64>,
    /// Of the forecasts predictive used (all tenants pooled).
    pub coverage: Option<f64>,
    pub mase: Option<f64>,
}

impl Row {
    /// A row with nothing measured yet.
    fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            tokens_denied: BTreeMap::new(),
            value: None,
            whole_requests_denied: None,
            value_whole: None,
            utilization: BTreeMap::new(),
            coverage: None,
            mase: None,
        }
    }
}

/// The table: a row per pair, and the total (denied tokens summed, the
/// value of the sums; utilization, coverage and MASE averaged over rows).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub traces: Vec<Row>,
    pub total: Row,
}

/// Loads every pair first (so bad input fails before any replay), then
/// runs each in every mode. `progress` is told each pair's name.
pub fn run(
    entries: &[Entry],
    planner_config: &PlannerConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<SuiteReport, SuiteError> {
    let mut loaded = Vec::new();
    for e in entries {
        let policy = Policy::load_file(&e.policy)
            .map_err(|err| SuiteError::new(&e.policy, err.to_string()))?;
        let trace = Trace::load(&e.trace, &policy, Some(SPREAD))
            .map_err(|err| SuiteError::new(&e.trace, err.to_string()))?;
        loaded.push((e, policy, trace));
    }
    let mut rows = Vec::new();
    for (e, policy, trace) in &loaded {
        progress(&e.name);
        rows.push(run_one(&e.name, policy, trace, planner_config));
    }
    let total = total(&rows);
    Ok(SuiteReport {
        traces: rows,
        total,
    })
}

fn run_one(name: &str, policy: &Policy, trace: &Trace, planner_config: &PlannerConfig) -> Row {
    let mut row = Row::named(name);
    for mode in Mode::ALL {
        let report = super::run(
            policy,
            trace,
            mode,
            planner_config,
            &Daemons::default(),
            &mut |_| {},
        )
        .report;
        row.tokens_denied
            .insert(mode.as_str(), report.total.tokens_denied);
        row.utilization
            .insert(mode.as_str(), mean(report.utilization.values().copied()));
        if mode == Mode::Predictive {
            row.coverage = report.total.coverage;
            row.mase = report.total.mase;
        }
        if mode == Mode::Oracle {
            row.whole_requests_denied = report.whole_requests_denied;
        }
    }
    row.value = value(&row.tokens_denied);
    row.value_whole = value_whole(&row.tokens_denied, row.whole_requests_denied);
    row
}

/// The forecast value of one row's denials; `None` when the oracle denied
/// no fewer tokens than reactive.
pub fn value(denied: &BTreeMap<&'static str, u64>) -> Option<f64> {
    let r = *denied.get("reactive")? as f64;
    let p = *denied.get("predictive")? as f64;
    let o = *denied.get("oracle")? as f64;
    (r - o > 0.0).then(|| (r - p) / (r - o))
}

/// The value against the whole-request replay instead of the bound.
pub fn value_whole(denied: &BTreeMap<&'static str, u64>, whole: Option<u64>) -> Option<f64> {
    let mut d = denied.clone();
    d.insert("oracle", whole?);
    value(&d)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

fn total(rows: &[Row]) -> Row {
    let mut t = Row::named("total");
    for mode in Mode::ALL {
        let m = mode.as_str();
        // Each trace's total fits in u64 (the reader refuses one that does
        // not); the sum of several might not, so it stops at the top.
        let denied = rows
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.tokens_denied[m]));
        t.tokens_denied.insert(m, denied);
        t.utilization
            .insert(m, mean(rows.iter().map(|r| r.utilization[m])));
    }
    t.value = value(&t.tokens_denied);
    t.whole_requests_denied = rows.iter().try_fold(0u64, |sum, r| {
        r.whole_requests_denied.map(|w| sum.saturating_add(w))
    });
    t.value_whole = value_whole(&t.tokens_denied, t.whole_requests_denied);
    let some = |f: fn(&Row) -> Option<f64>| {
        let v: Vec<f64> = rows.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| mean(v.into_iter()))
    };
    t.coverage = some(|r| r.coverage);
    t.mase = some(|r| r.mase);
    t
}

impl SuiteReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the suite report serializes")
    }

    /// The table in markdown, as `docs/simulation.md` shows it.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from(
            "| trace | denied: reactive | predictive | oracle | value | oracle, whole requests | value, whole | utilization: reactive | predictive | oracle | coverage | MASE |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for row in self.traces.iter().chain([&self.total]) {
            let d = |m| row.tokens_denied[m];
            let u = |m| format!("{:.1}%", row.utilization[m] * 100.0);
            let opt = |v: Option<f64>, digits: usize| {
                v.map_or("n/a".to_string(), |v| format!("{v:.digits$}"))
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.name,
                d("reactive"),
                d("predictive"),
                d("oracle"),
                opt(row.value, 2),
                row.whole_requests_denied
                    .map_or("n/a".to_string(), |w| w.to_string()),
                opt(row.value_whole, 2),
                u("reactive"),
                u("predictive"),
                u("oracle"),
                opt(row.coverage, 3),
                opt(row.mase, 2),
            );
        }
        s.push_str(
            "\nvalue = (reactive − predictive) ÷ (reactive − oracle) of tokens denied; \
             n/a where the oracle denied no fewer than reactive. \
             Oracle, whole requests = what the oracle's pools deny granting each request whole \
             or not at all, in trace order (not a bound); value, whole = the value against it \
             (may exceed 1). The total's values are those \
             of the summed denials; its utilization, coverage and MASE are the means over traces.\n",
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(r: u64, p: u64, o: u64) -> BTreeMap<&'static str, u64> {
        [("reactive", r), ("predictive", p), ("oracle", o)].into()
    }

    #[test]
    fn value_is_the_share_of_the_oracles_saving_that_predictive_got() {
        assert_eq!(value(&denied(100, 60, 50)), Some(0.8));
        assert_eq!(value(&denied(100, 120, 50)), Some(-0.4));
        assert_eq!(value(&denied(100, 40, 50)), Some(1.2));
    }

    #[test]
    fn the_whole_request_value_puts_that_replay_in_the_oracles_place() {
        assert_eq!(value_whole(&denied(100, 60, 10), Some(50)), Some(0.8));
        assert_eq!(value_whole(&denied(100, 60, 10), Some(100)), None);
        assert_eq!(value_whole(&denied(100, 60, 10), None), None);
    }

    #[test]
    fn value_is_absent_when_the_oracle_saved_nothing() {
        assert_eq!(value(&denied(100, 60, 100)), None);
        assert_eq!(value(&denied(100, 60, 130)), None);
        assert_eq!(value(&denied(0, 0, 0)), None);
    }
}
