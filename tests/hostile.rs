//! Hostile and clumsy callers against the real binary (issue 16): every
//! probe that once froze the daemon or hurt another tenant, driven from a
//! gRPC client. Each call has a deadline, so a daemon that stops answering
//! fails the test instead of hanging it.

mod common;

use std::future::Future;

use common::requests::{AcquireExt, acquire, report, used, used_by_lease};
use common::{ANSWER, Daemon, eventually};
use prescient::proto::admission_client::AdmissionClient;
use prescient::proto::{AcquireRequest, AcquireResponse, Decision};
use tonic::transport::Channel;

/// The example policy's shape, plus `mallory`, who has no limits of her own
/// (she only borrows from the shared pool): the shared policies have no
/// such tenant.
const POLICY: &str = r#"
resources:
  db_queries: { kind: rate, capacity: 5000, emergency: 0.05 }
  worker_slots: { kind: concurrency, capacity: 64, lease_ttl: 30s }
tenants:
  checkout:
    qos: platinum
    limits:
      db_queries:
        guaranteed: 1000
        burst: 2000
        reserve: { quantile: 0.95, horizon: 30s, max: 1500 }
      worker_slots: { guaranteed: 16 }
  search:
    qos: silver
    limits:
      db_queries: { guaranteed: 500 }
  mallory: { qos: silver, limits: {} }
"#;

async fn answered<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER, call)
        .await
        .unwrap_or_else(|_| panic!("no answer to {what} within {ANSWER:?}: the daemon froze"))
}

/// Sends `r`, which must be answered (granted or denied) in time.
async fn call(c: &mut AdmissionClient<Channel>, r: AcquireRequest) -> AcquireResponse {
    let what = format!("Acquire {} x{} of {}", r.tenant, r.amount, r.resource);
    answered(&what, c.acquire(r))
        .await
        .unwrap_or_else(|s| panic!("{what}: {s:?}"))
        .into_inner()
}

/// Takes `amount` with a lease and reports `used` against it.
async fn overuse(c: &mut AdmissionClient<Channel>, tenant: &str, amount: u64, overused: u64) {
    let g = call(c, acquire(tenant, "db_queries", amount).leased()).await;
    assert_eq!(g.decision(), Decision::Granted, "{g:?}");
    let entry = used(tenant, "db_queries", &g.lease_id, overused);
    let r = answered("Report", c.report(report(vec![entry])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1, "{r:?}");
}

/// Every resource still answers, and the admin port too.
async fn still_serving(d: &Daemon, c: &mut AdmissionClient<Channel>) {
    for (tenant, resource) in [
        ("checkout", "db_queries"),
        ("search", "db_queries"),
        ("checkout", "worker_slots"),
    ] {
        call(c, acquire(tenant, resource, 1)).await;
    }
    let admin = d.admin;
    let status = answered(
        "/healthz",
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(admin).unwrap();
            write!(s, "GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        }),
    )
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"));
}

async fn reloaded(d: &Daemon, n: f64) {
    eventually(ANSWER, "the reload to go in force", || async {
        (d.metric("prescient_policy_reloads_total{result=\"ok\"}") >= Some(n)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_huge_report_leaves_the_daemon_answering_through_reloads_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).unwrap();
    let mut d = Daemon::start_at(&path, &[]);
    let mut c = d.client().await;

    // A borrower (charged to the shared pool before) and a tenant with a
    // guarantee (its bucket's debt saturated to the resize sentinel).
    overuse(&mut c, "mallory", 1, 1_000_000_000_000).await;
    overuse(&mut c, "checkout", 1, u64::MAX).await;
    overuse(&mut c, "checkout", 1, u64::MAX).await;
    still_serving(&d, &mut c).await;

    // The planner resizes the shared and reserve pools every tick; a reload
    // resizes checkout's guaranteed bucket, then SIGHUP reloads again.
    std::fs::write(&path, POLICY.replace("guaranteed: 1000", "guaranteed: 900")).unwrap();
    reloaded(&d, 1.0).await;
    still_serving(&d, &mut c).await;
    d.signal("HUP");
    reloaded(&d, 2.0).await;
    still_serving(&d, &mut c).await;

    let status = answered("SIGTERM", async { d.terminate() }).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn one_tenants_overuse_never_denies_another() {
    let d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    overuse(&mut c, "mallory", 1, 100_000_000).await;
    // search borrows beyond its guarantee (500) and checkout beyond its
    // burst (2000): both need the shared pool mallory's Report once sank.
    for (tenant, amount) in [("search", 600), ("checkout", 2100)] {
        let r = call(&mut c, acquire(tenant, "db_queries", amount)).await;
        assert_eq!(r.decision(), Decision::Granted, "{tenant}: {r:?}");
        assert!(r.from_shared > 0, "{tenant} borrowed: {r:?}");
    }
    // mallory's overuse is counted, not charged, and the shared pool owes
    // nothing.
    eventually(ANSWER, "the overuse in /metrics", || async {
        (d.metric("prescient_report_uncharged_tokens_total") >= Some(99_999_999.0)).then_some(())
    })
    .await;
    let shared = "prescient_pool_debt_tokens{tenant=\"\",resource=\"db_queries\",pool=\"shared\"}";
    assert_eq!(d.metric(shared), Some(0.0));
}

#[tokio::test]
async fn overuse_is_owed_by_the_reporters_own_guarantee_up_to_the_bound() {
    // 2 s of refill at most: checkout (1000/s) owes at most 2000 tokens.
    let d = Daemon::start(POLICY, &[("PRESCIENT_ADMISSION__MAX_REPORT_DEBT", "2s")]);
    let mut c = d.client().await;
    overuse(&mut c, "checkout", 10, 1_000_000).await;
    let debt = "prescient_pool_debt_tokens{tenant=\"checkout\",resource=\"db_queries\",pool=\"guaranteed\"}";
    let owed = eventually(ANSWER, "checkout's debt in /metrics", || async {
        d.metric(debt).filter(|&v| v > 0.0)
    })
    .await;
    assert!(owed <= 2000.0, "owes {owed}, bound 2000");
    // checkout is denied its own bucket while in debt, yet may still
    // borrow; search is untouched.
    let r = call(&mut c, acquire("checkout", "db_queries", 100)).await;
    assert_eq!(r.decision(), Decision::Granted, "{r:?}");
    assert_eq!(r.from_guaranteed, 0, "its own bucket owes: {r:?}");
    let r = call(&mut c, acquire("search", "db_queries", 500)).await;
    assert_eq!(r.from_guaranteed, 500, "{r:?}");
}

/// What an attacker (or a clumsy client) may send, with extreme values.
#[derive(Debug, Clone)]
enum Op {
    Acquire {
        tenant: usize,
        resource: usize,
        amount: u64,
        lease: bool,
    },
    /// Report `used` against the last lease taken (or a made-up one).
    Report {
        used: u64,
        bogus_lease: bool,
    },
    Release {
        bogus: bool,
    },
    /// Rewrite the policy with another capacity, then SIGHUP.
    Reload {
        capacity: u64,
    },
}

const ATTACKERS: [&str; 3] = ["mallory", "checkout", "newcomer"];
const RESOURCES: [&str; 2] = ["db_queries", "worker_slots"];
/// Extreme and ordinary numbers alike.
const EXTREMES: [u64; 6] = [0, 1, 7, 1_000_000_000_000, u64::MAX - 1, u64::MAX];

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let number = prop_oneof![proptest::sample::select(&EXTREMES[..]), 0..3_000u64];
    prop_oneof![
        4 => (0..ATTACKERS.len(), 0..RESOURCES.len(), number.clone(), any::<bool>())
            .prop_map(|(tenant, resource, amount, lease)| Op::Acquire { tenant, resource, amount, lease }),
        3 => (number, any::<bool>()).prop_map(|(used, bogus_lease)| Op::Report { used, bogus_lease }),
        2 => any::<bool>().prop_map(|bogus| Op::Release { bogus }),
        1 => (5_000..20_000u64).prop_map(|capacity| Op::Reload { capacity }),
    ]
}

/// The victim: a tenant no attacker is, whose own bucket only it draws on.
const VICTIM_POLICY: &str = "  victim:\n    qos: bronze\n    limits:\n      \
                             db_queries: { guaranteed: 1000, burst: 100 }\n";

/// Random sequences of hostile calls against one real daemon: every call is
/// answered within its deadline, and after each sequence a tenant that
/// took no part still gets its whole burst, and the shared pool owes
/// nothing (no Report charged anyone but its reporter).
#[test]
fn random_hostile_sequences_never_stall_the_daemon_or_hurt_a_bystander() {
    use proptest::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let policy = |capacity: u64| {
        format!(
            "{}defaults: {{ qos: silver }}\n",
            POLICY.replace("capacity: 5000", &format!("capacity: {capacity}"))
        )
        .replace("tenants:\n", &format!("tenants:\n{VICTIM_POLICY}"))
    };
    std::fs::write(&path, policy(5000)).unwrap();
    let d = Daemon::start_at(&path, &[("PRESCIENT_TICK", "100ms")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(d.client());
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..25))| {
        let mut c = c.clone();
        rt.block_on(async {
            let mut lease = String::new();
            for op in &ops {
                match op {
                    Op::Acquire { tenant, resource, amount, lease: want } => {
                        let mut r = acquire(ATTACKERS[*tenant], RESOURCES[*resource], *amount);
                        r.lease = *want;
                        if let Ok(g) = answered("Acquire", c.acquire(r)).await
                            && !g.get_ref().lease_id.is_empty()
                        {
                            lease = g.into_inner().lease_id;
                        }
                    }
                    Op::Report { used, bogus_lease } => {
                        let lease_id = if *bogus_lease { "00000000deadbeef" } else { lease.as_str() };
                        // No tenant or resource: the lease's own.
                        let entry = used_by_lease(lease_id, *used);
                        let _ = answered("Report", c.report(report(vec![entry]))).await;
                    }
                    Op::Release { bogus } => {
                        let lease_id = if *bogus { "ffffffffffffffff".into() } else { lease.clone() };
                        let _ = answered("Release", c.release(prescient::proto::ReleaseRequest { lease_id })).await;
                    }
                    Op::Reload { capacity } => {
                        std::fs::write(&path, policy(*capacity)).unwrap();
                        d.signal("HUP");
                    }
                }
            }
            // The bystander's burst refills in 0.1 s; its own bucket is all
            // it may use (bronze does not borrow).
            let victim = eventually(ANSWER, "the bystander's burst", || {
                let mut c = c.clone();
                async move {
                    let r = answered("Acquire", c.acquire(acquire("victim", "db_queries", 100)))
                        .await
                        .unwrap()
                        .into_inner();
                    (r.decision() == Decision::Granted).then_some(r)
                }
            })
            .await;
            assert_eq!(victim.from_guaranteed, 100);
            let shared = "prescient_pool_debt_tokens{tenant=\"\",resource=\"db_queries\",pool=\"shared\"}";
            eventually(ANSWER, "a tick's gauges", || async {
                d.metric(shared).map(|_| ())
            })
            .await;
            assert_eq!(d.metric(shared), Some(0.0), "the shared pool owes for someone's Report");
        });
    });
}
