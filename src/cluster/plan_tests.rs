//! Targets: they add up to at most C, follow demand, and split evenly
//! when there is none.

use proptest::prelude::*;

use super::*;

const POLICY: &str = "resources:\n  db: { kind: rate, capacity: 1000, emergency: 0.1 }\n\
    tenants:\n  a: { qos: platinum, limits: { db: { guaranteed: 300, reserve: { quantile: 0.9, horizon: 10s } } } }\n  \
    b: { qos: silver, limits: { db: { guaranteed: 200 } } }\n\
    defaults: { qos: bronze, limits: { db: { guaranteed: 10 } } }\n";

fn terms() -> Terms {
    Terms::of(&Policy::load_str(POLICY, "test").unwrap(), "db").unwrap()
}

fn wants(pairs: &[(&str, f64)]) -> Wants {
    Wants {
        tenants: pairs
            .iter()
            .map(|(t, w)| (t.to_string(), [*w, 0.0]))
            .collect(),
        ..Wants::default()
    }
}

fn targets(terms: &Terms, all: &[(&str, Wants)]) -> Vec<Target> {
    let refs: Vec<(&str, &Wants)> = all.iter().map(|(m, w)| (*m, w)).collect();
    all.iter().map(|(m, _)| plan(terms, &refs, m)).collect()
}

#[test]
fn with_no_demand_every_instance_holds_an_even_share() {
    let all = [("x", Wants::default()), ("y", Wants::default())];
    let t = targets(&terms(), &all);
    assert_eq!(t[0].capacity, 500);
    assert_eq!(t[1].capacity, 500);
    assert_eq!(t[0].parts["a"], 0.5);
    assert_eq!(t[0].emergency, 50.0);
}

#[test]
fn capacity_follows_the_demand_that_guarantees_and_reserves_cover() {
    // a's whole demand (700/s) is on x: its guarantee (but EVEN of it)
    // and a reserve for the rest go there, and the shared pool too.
    let all = [("x", wants(&[("a", 700.0)])), ("y", Wants::default())];
    let t = targets(&terms(), &all);
    assert!((t[0].parts["a"] - 0.95).abs() < 1e-9, "{:?}", t[0].parts);
    assert!((t[1].parts["a"] - 0.05).abs() < 1e-9);
    assert!(t[0].capacity > 800, "x holds most: {:?}", t[0]);
    assert!(t[0].capacity + t[1].capacity <= 1000);
    // y keeps its part of the guarantees and of emergency.
    assert!(t[1].capacity >= (300.0 * 0.05 + 100.0 + 50.0) as u64 - 1);
}

#[test]
fn tenants_from_defaults_that_anyone_saw_hold_a_guarantee() {
    let all = [("x", wants(&[("guest", 5.0)])), ("y", Wants::default())];
    let t = targets(&terms(), &all);
    assert!((t[0].parts["guest"] - 0.95).abs() < 1e-9);
    assert!(!t[0].parts.contains_key("stranger"));
}

#[test]
fn a_share_scales_every_part_alike() {
    let all = [("x", wants(&[("a", 700.0)])), ("y", Wants::default())];
    let t = targets(&terms(), &all);
    let half = t[0].share(t[0].capacity / 2);
    assert_eq!(half.capacity, t[0].capacity / 2);
    assert!((half.parts["a"] - t[0].parts["a"] / 2.0).abs() < 0.01);
    assert_eq!(t[0].share(t[0].capacity * 2).parts["a"], t[0].parts["a"]);
}

proptest! {
    /// However demand is spread, the targets add up to at most C, and the
    /// parts of each tenant's guarantee to at most 1.
    #[test]
    fn targets_never_add_up_to_more_than_the_capacity(
        demand in proptest::collection::vec(
            proptest::collection::vec(0.0f64..2000.0, 4), 1..6),
    ) {
        let names = ["a", "b", "guest", "other"];
        let all: Vec<(String, Wants)> = demand
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let w = Wants {
                    tenants: names.iter().zip(d).filter(|(_, v)| **v > 1.0)
                        .map(|(t, v)| (t.to_string(), [*v, v / 2.0])).collect(),
                    ..Wants::default()
                };
                (format!("i{k}"), w)
            })
            .collect();
        let refs: Vec<(&str, &Wants)> = all.iter().map(|(m, w)| (m.as_str(), w)).collect();
        let t: Vec<Target> = all.iter().map(|(m, _)| plan(&terms(), &refs, m)).collect();
        let total: u64 = t.iter().map(|t| t.capacity).sum();
        prop_assert!(total <= 1000, "Σ targets {total}");
        prop_assert!(total >= 1000 - t.len() as u64, "nothing is left unheld: {total}");
        for name in names {
            let parts: f64 = t.iter().map(|t| t.parts.get(name).copied().unwrap_or(0.0)).sum();
            prop_assert!(parts <= 1.0 + 1e-9, "{name}: {parts}");
        }
    }
}
