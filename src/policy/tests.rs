use super::*;

const GOOD: &str = r#"
resources:
  db:
    kind: rate
    capacity: 5000
    emergency: 0.05
  slots:
    kind: concurrency
    capacity: 64
    lease_ttl: 30s
tenants:
  checkout:
    qos: platinum
    limits:
      db: { guaranteed: 1000, burst: 2000, reserve: { quantile: 0.95, horizon: 30s, max: 1500 } }
      slots: { guaranteed: 16 }
"#;

fn problems(yaml: &str) -> Vec<String> {
    match Policy::load_str(yaml, "p.yaml") {
        Ok(_) => vec![],
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.reason))
            .collect(),
    }
}

#[test]
fn the_shipped_example_policy_is_valid() {
    let p = Policy::load_str(EMBEDDED_POLICY, "config/policies.yaml").unwrap();
    assert_eq!(p.resources.len(), 2);
    assert_eq!(p.tenants["checkout"].qos, "platinum");
    assert_eq!(p.resources["db_queries"].emergency_units(), 250);
    assert_eq!(p.events[0].multiplier, 3.0);
}

#[test]
fn a_good_policy_parses_with_durations_and_defaults() {
    let p = Policy::load_str(GOOD, "p.yaml").unwrap();
    assert_eq!(p.resources["slots"].lease_ttl(), Duration::from_secs(30));
    assert_eq!(p.resources["db"].lease_ttl(), DEFAULT_LEASE_TTL);
    let db = &p.tenants["checkout"].limits["db"];
    assert_eq!(db.depth(), 2000);
    assert_eq!(
        db.reserve.as_ref().unwrap().horizon,
        Duration::from_secs(30)
    );
    assert_eq!(p.qos_classes().len(), 4, "built-in classes when none given");
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let yaml = GOOD.replace("burst: 2000", "brust: 2000");
    let err = Policy::load_str(&yaml, "p.yaml").unwrap_err().to_string();
    assert!(err.starts_with("p.yaml: "), "{err}");
    assert!(err.contains("tenants.checkout.limits.db"), "{err}");
    assert!(err.contains("unknown field `brust`"), "{err}");
}

#[test]
fn bad_durations_are_errors() {
    let yaml = GOOD.replace("lease_ttl: 30s", "lease_ttl: soon");
    let err = Policy::load_str(&yaml, "p.yaml").unwrap_err().to_string();
    assert!(err.contains("resources.slots.lease_ttl"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let yaml = r#"
resources:
  db: { kind: rate, capacity: 0, emergency: 1.5 }
  api: { kind: rate, capacity: 100, emergency: 0.1 }
  slots: { kind: concurrency, capacity: 4 }
tenants:
  a:
    qos: diamond
    limits:
      api: { guaranteed: 95, reserve: { quantile: 1.0 } }
      nope: { guaranteed: 1 }
      slots: { guaranteed: 1, burst: 3 }
  b:
    limits:
      api: { guaranteed: 50 }
defaults:
  qos: bronze
  limits:
    ghost: { guaranteed: 1 }
events:
  - { name: x, tenants: [zed], start: 2026-01-02T00:00:00Z, end: 2026-01-01T00:00:00Z, multiplier: 0 }
"#;
    let got = problems(yaml);
    let expect = [
        "resources.db.capacity: must be > 0",
        "resources.db.emergency: 1.5 must be in [0, 1)",
        "tenants.a.qos: unknown QoS class \"diamond\"",
        "tenants.a.limits.api.guaranteed: 95 exceeds capacity 100 - emergency 10",
        "tenants.a.limits.api.reserve.quantile: 1 must be in (0, 1)",
        "tenants.a.limits.nope: unknown resource \"nope\"",
        "tenants.a.limits.slots.burst: applies to rate resources only",
        "defaults.limits.ghost: unknown resource",
        "resources.api: guaranteed total 145 (a 95, b 50) exceeds capacity 100 - emergency 10",
        "events[0].tenants: unknown tenant \"zed\"",
        "events[0].end: must be after start",
        "events[0].multiplier: 0 must be a finite number > 0",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expect.len(), "{got:#?}");
}

#[test]
fn qos_classes_merge_over_the_builtin_ones() {
    let yaml =
        format!("{GOOD}qos:\n  gold: {{ weight: 5, borrow: false }}\n  iron: {{ weight: 1 }}\n");
    let p = Policy::load_str(&yaml, "p.yaml").unwrap();
    let classes = p.qos_classes();
    assert_eq!(classes.len(), 5);
    assert_eq!(classes["gold"].weight, 5);
    assert!(!classes["gold"].borrow);
    assert!(classes["platinum"].emergency);
}

#[test]
fn names_with_odd_characters_are_refused() {
    let yaml = GOOD.replace("checkout:", "\"check out\":");
    let got = problems(&yaml);
    assert!(
        got.iter().any(|g| g.starts_with("tenants.check out: name")),
        "{got:?}"
    );
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let err = Policy::load_str("resources: [", "bad.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("bad.yaml: "), "{err}");
    assert!(err.contains("line"), "{err}");
}
