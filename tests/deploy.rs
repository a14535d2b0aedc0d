//! The shipped dashboard and alert rules only name metrics the daemon
//! exports (a renamed metric would silently empty a panel or an alert).

use std::collections::BTreeSet;

use prescient::metrics::Metrics;

/// Every `prescient_…` identifier in `text` (recording-rule names, which
/// contain a colon, are not metric names and are skipped).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("prescient_") {
        let start = i + at;
        let preceded_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b':');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if preceded_ok && bytes.get(end) != Some(&b':') {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// Metric families a daemon sharing capacity exposes after one tick with
/// traffic (from the `# TYPE` lines; a family shows once it has a series).
fn exported() -> BTreeSet<String> {
    use std::sync::Arc;

    use prescient::admission::{AcquireRequest, Admission, AdmissionConfig};
    use prescient::clock::{Clock, ManualClock};
    use prescient::cluster::member::{Member, MemberConfig, OnStoreLoss};
    use prescient::planner::{Planner, PlannerConfig};
    use prescient::policy::Policy;

    let policy = Policy::load_str(
        "resources: { api: { kind: rate, capacity: 10 }, gpu: { kind: concurrency, capacity: 1 } }\n\
         tenants: { t: { qos: gold, limits: { api: { guaranteed: 5, reserve: {} } } } }\n",
        "test",
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(1));
    let core = Arc::new(Admission::new(
        &policy,
        AdmissionConfig::default(),
        clock.clone(),
    ));
    let metrics = Arc::new(Metrics::new(10));
    let config = PlannerConfig {
        inline_refits: true,
        ..PlannerConfig::default()
    };
    let mut planner = Planner::new(core.clone(), &policy, config).with_metrics(metrics.clone());
    for amount in [5, 10] {
        let req = AcquireRequest {
            tenant: "t",
            resource: "api",
            amount,
            ..Default::default()
        };
        let _ = core.try_acquire(&req, clock.now());
    }
    metrics.acquire_latency.observe_ns(1_000);
    planner.tick(clock.now());
    // A daemon sharing capacity also has a lease on every resource.
    let member = MemberConfig {
        id: "pod-0/1".into(),
        lease_ttl: std::time::Duration::from_secs(3),
        on_store_loss: OnStoreLoss::Hold,
        safe_share: 0.0,
    };
    let (member, _) = Member::new(member, &policy);
    metrics.cluster.leases(&member.leases(), clock.now());
    metrics
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn family(sample: &str) -> &str {
    for suffix in ["_total", "_bucket", "_count", "_sum"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            return base;
        }
    }
    sample
}

fn check(file: &str) {
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let exported = exported();
    let used = metric_names(&text);
    assert!(!used.is_empty(), "{file} names no metric");
    for name in &used {
        assert!(
            exported.contains(family(name)),
            "{file} uses {name}, which the daemon does not export; exported: {exported:?}"
        );
    }
}

#[test]
fn the_grafana_dashboard_uses_only_exported_metrics() {
    let path = "deploy/grafana/prescient.json";
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for t in [
        "Decisions per second",
        "Denials by tenant",
        "Demand vs forecast band",
        "Reserves",
        "Forecast accuracy",
        "Acquire latency",
        "Leases on $resource",
    ] {
        assert!(titles.contains(&t), "no panel {t:?}: {titles:?}");
    }
    check(path);
}

#[test]
fn the_alert_rules_use_only_exported_metrics() {
    check("deploy/prometheus/alerts.yaml");
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to `-`,
/// other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_links_to_a_section_of_the_operations_doc() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{dir}/docs/operations.md")).unwrap();
    let sections: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    let text = std::fs::read_to_string(format!("{dir}/deploy/prometheus/alerts.yaml")).unwrap();
    let rules: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let Some(alert) = rule["alert"].as_str() else {
                continue;
            };
            alerts += 1;
            let description = rule["annotations"]["description"].as_str().unwrap_or("");
            let link = description
                .split("docs/operations.md#")
                .nth(1)
                .unwrap_or_else(|| panic!("{alert}: no docs/operations.md# link: {description}"));
            let section: String = link
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            assert!(
                sections.contains(&section),
                "{alert} links to docs/operations.md#{section}, which has no such heading"
            );
            assert_eq!(
                Some(section.as_str()),
                alert
                    .strip_prefix("Prescient")
                    .map(str::to_lowercase)
                    .as_deref(),
                "{alert}: its section is named after it"
            );
        }
    }
    assert!(alerts > 0, "no alert rule read from alerts.yaml");
}

#[test]
fn a_renamed_metric_would_be_caught() {
    let used = metric_names("rate(prescient_acquisitons_total[5m]) and prescient:ratio");
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["prescient_acquisitons_total"]
    );
    assert!(!exported().contains(family("prescient_acquisitons_total")));
}
