//! The member's steps: safe share first, lower before asking, raise only
//! on a grant, fall back when the store goes quiet.

use super::*;

const POLICY: &str = "resources:\n  db: { kind: rate, capacity: 1000 }\n\
    tenants:\n  a: { qos: gold, limits: { db: { guaranteed: 400 } } }\n";

fn member(on_store_loss: OnStoreLoss) -> (Member, Vec<Apply>) {
    let config = MemberConfig {
        id: Arc::from("x/1"),
        lease_ttl: Duration::from_secs(3),
        on_store_loss,
        safe_share: 0.1,
    };
    Member::new(config, &Policy::load_str(POLICY, "test").unwrap())
}

fn reply(grant: u64, wants: &[(&str, &str)]) -> Reply {
    Reply {
        grant,
        now_ms: 0,
        wants: wants
            .iter()
            .map(|(m, w)| (m.to_string(), w.to_string()))
            .collect(),
        others: 0,
    }
}

fn wants(a: f64) -> BTreeMap<String, Wants> {
    let mut w = Wants::default();
    w.tenants.insert("a".into(), [a, a]);
    BTreeMap::from([("db".to_string(), w)])
}

const SEC: Nanos = 1_000_000_000;

#[test]
fn a_member_holds_the_safe_share_until_its_first_grant() {
    let (mut m, applies) = member(OnStoreLoss::Hold);
    assert_eq!(applies[0].1.capacity, 100);
    let (applies, asks) = m.asks(&wants(0.0), |_| 0);
    // Alone, it wants everything but holds only what it has.
    assert_eq!(asks[0].target, 1000);
    assert_eq!(asks[0].in_force, 100);
    assert_eq!(applies[0].1.capacity, 100);
    assert!(
        m.asks(&wants(0.0), |_| 0).1.is_empty(),
        "one exchange at a time"
    );
    let (_, share) = m
        .granted("db", &reply(1000, &[("x/1", "{}")]), SEC)
        .unwrap();
    m.answered();
    assert_eq!(share.capacity, 1000);
    assert_eq!(share.part("a"), 1.0);
}

#[test]
fn a_member_lowers_its_share_before_asking_and_raises_it_only_when_granted() {
    let (mut m, _) = member(OnStoreLoss::Hold);
    m.asks(&wants(0.0), |_| 0);
    m.granted("db", &reply(1000, &[("x/1", "{}")]), SEC);
    m.answered();
    // Another instance appears with all of a's demand.
    let other = serde_json::to_string(&wants(900.0)["db"]).unwrap();
    m.asks(&wants(0.0), |_| 0);
    m.granted(
        "db",
        &reply(1000, &[("x/1", "{}"), ("y/1", &other)]),
        2 * SEC,
    );
    m.answered();
    let (applies, asks) = m.asks(&wants(0.0), |_| 0);
    let lowered = &applies[0].1;
    assert!(asks[0].target < 300, "y needs it: {}", asks[0].target);
    assert_eq!(asks[0].in_force, asks[0].target);
    assert_eq!(lowered.capacity, asks[0].target, "lowered before the ask");
    assert!(lowered.part("a") < 0.2);
    // A grant below the target is put in force as it is.
    let (_, share) = m.granted("db", &reply(50, &[]), 3 * SEC).unwrap();
    assert_eq!(share.capacity, 50);
}

#[test]
fn a_member_keeps_the_units_it_holds_under_its_lease_until_they_are_released() {
    let (mut m, _) = member(OnStoreLoss::Hold);
    m.asks(&wants(0.0), |_| 0);
    m.granted("db", &reply(1000, &[("x/1", "{}")]), SEC);
    m.answered();
    // Another instance appears with all the demand while 600 are held.
    let other = serde_json::to_string(&wants(900.0)["db"]).unwrap();
    m.asks(&wants(0.0), |_| 600);
    m.granted(
        "db",
        &reply(1000, &[("x/1", "{}"), ("y/1", &other)]),
        2 * SEC,
    );
    m.answered();
    let (applies, asks) = m.asks(&wants(0.0), |_| 600);
    assert_eq!(asks[0].in_force, 600, "the units held are not let go of");
    assert_eq!(asks[0].target, 600, "nor given up in the ask");
    assert_eq!(applies[0].1.capacity, 600);
    let both = [("x/1", "{}"), ("y/1", other.as_str())];
    let (_, share) = m.granted("db", &reply(600, &both), 3 * SEC).unwrap();
    m.answered();
    assert_eq!(share.capacity, 600);
    // Released: the lease comes down to the target.
    let (applies, asks) = m.asks(&wants(0.0), |_| 0);
    assert!(asks[0].target < 300, "{}", asks[0].target);
    assert_eq!(applies[0].1.capacity, asks[0].target);
}

#[test]
fn a_lost_lease_falls_to_the_safe_share_or_is_held() {
    for (on_loss, after) in [(OnStoreLoss::Safe, 100), (OnStoreLoss::Hold, 800)] {
        let (mut m, _) = member(on_loss);
        m.asks(&wants(0.0), |_| 0);
        m.granted("db", &reply(800, &[("x/1", "{}")]), SEC);
        m.answered();
        assert!(m.expire(SEC + 3 * SEC - 1).is_empty(), "not yet");
        let applies = m.expire(SEC + 3 * SEC);
        let view = &m.leases()[0];
        assert!(view.lost);
        assert_eq!(view.in_force, after, "{on_loss:?}");
        assert_eq!(applies.len(), usize::from(on_loss == OnStoreLoss::Safe));
        assert!(m.expire(10 * SEC).is_empty(), "logged and applied once");
    }
}

#[test]
fn a_daemon_that_is_leaving_is_left_out_of_the_targets() {
    let (mut m, _) = member(OnStoreLoss::Hold);
    m.asks(&wants(0.0), |_| 0);
    let busy = serde_json::to_string(&wants(900.0)["db"]).unwrap();
    m.granted("db", &reply(500, &[("x/1", "{}"), ("y/1", &busy)]), SEC);
    m.answered();
    assert_eq!(m.leases()[0].instances, 2);
    assert!(m.asks(&wants(0.0), |_| 0).1[0].target < 500);
    m.granted(
        "db",
        &reply(100, &[("x/1", "{}"), ("y/1", r#"{"t":{},"l":true}"#)]),
        2 * SEC,
    );
    m.answered();
    assert_eq!(m.leases()[0].instances, 1);
    assert_eq!(m.asks(&wants(0.0), |_| 0).1[0].target, 1000, "alone again");
}
