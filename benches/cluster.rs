//! The cost of sharing capacity (issue 12, DESIGN §9), per daemon and tick:
//! the targets from every instance's wants (`plan`), and one whole
//! exchange in process — lower, ask an in-memory store running the lease
//! allocation, put the grant in force — for 1,000 tenants × 2 resources and
//! 3 instances. The Redis round trip itself is measured by
//! `examples/lease_load.rs` against a real redis-server.
//!
//! `cargo bench --bench cluster`; numbers in `docs/performance.md`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use prescient::admission::{Admission, AdmissionConfig};
use prescient::clock::{Clock, ManualClock};
use prescient::cluster::member::{Member, MemberConfig, OnStoreLoss};
use prescient::cluster::plan::{Terms, plan};
use prescient::cluster::store::MemoryStore;
use prescient::cluster::{begin, finish};
use prescient::planner::Wants;
use prescient::policy::Policy;

const TENANTS: usize = 1_000;
const INSTANCES: usize = 3;
const RESOURCES: [&str; 2] = ["db", "llm"];

/// 1,000 listed tenants on two rate resources, a tenth with reserves.
fn policy() -> Policy {
    let mut yaml = String::from(
        "resources:\n  db: { kind: rate, capacity: 1000000 }\n  llm: { kind: rate, capacity: 2000000 }\ntenants:\n",
    );
    for t in 0..TENANTS {
        let reserve = if t % 10 == 0 {
            ", reserve: { max: 1000 }"
        } else {
            ""
        };
        yaml.push_str(&format!(
            "  t{t}: {{ qos: silver, limits: {{ db: {{ guaranteed: 100{reserve} }}, llm: {{ guaranteed: 200 }} }} }}\n"
        ));
    }
    Policy::load_str(&yaml, "bench").expect("bench policy is valid")
}

/// Instance `k`'s wants: every tenant busy somewhere, each instance seeing
/// a different mix.
fn wants(k: usize) -> BTreeMap<String, Wants> {
    RESOURCES
        .iter()
        .map(|r| {
            let tenants = (0..TENANTS)
                .map(|t| {
                    let d = ((t * 7 + k * 13) % 50) as f64 * 10.0;
                    (format!("t{t}"), [d * 1.2, d])
                })
                .collect();
            (
                r.to_string(),
                Wants {
                    tenants,
                    ..Wants::default()
                },
            )
        })
        .collect()
}

fn bench_plan(c: &mut Criterion) {
    let policy = policy();
    let terms = Terms::of(&policy, "db").unwrap();
    let all: Vec<(String, Wants)> = (0..INSTANCES)
        .map(|k| (format!("i{k}/0"), wants(k).remove("db").unwrap()))
        .collect();
    let refs: Vec<(&str, &Wants)> = all.iter().map(|(m, w)| (m.as_str(), w)).collect();
    c.bench_function("cluster/plan_1000_tenants_3_instances", |b| {
        b.iter(|| black_box(plan(&terms, black_box(&refs), "i0/0")))
    });
}

fn bench_exchange(c: &mut Criterion) {
    let policy = policy();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let mut store = MemoryStore::new();
    let mut daemons: Vec<(Member, Arc<Admission>, BTreeMap<String, Wants>)> = (0..INSTANCES)
        .map(|k| {
            let core = Arc::new(Admission::new(
                &policy,
                AdmissionConfig::default(),
                clock.clone(),
            ));
            let config = MemberConfig {
                id: format!("i{k}/0").into(),
                lease_ttl: Duration::from_secs(3),
                on_store_loss: OnStoreLoss::Hold,
                safe_share: 0.0,
            };
            let (member, _) = Member::new(config, &policy);
            (member, core, wants(k))
        })
        .collect();
    // Tick: every daemon exchanges once, each call timed on its own.
    let mut exchange = |d: &mut (Member, Arc<Admission>, BTreeMap<String, Wants>), now| {
        let asks = begin(&mut d.0, &d.2, &d.1, now);
        let replies: Vec<_> = asks
            .iter()
            .map(|a| store.exchange(a, now / 1_000_000))
            .collect();
        finish::<std::convert::Infallible>(&mut d.0, &d.1, &asks, Ok(replies), now, now).unwrap();
    };
    for d in &mut daemons {
        exchange(d, clock.now());
    }
    let mut k = 0;
    c.bench_function("cluster/exchange_1000_tenants_2_resources", |b| {
        b.iter(|| {
            clock.advance(Duration::from_millis(1));
            exchange(&mut daemons[k % INSTANCES], clock.now());
            k += 1;
        })
    });
}

criterion_group!(benches, bench_plan, bench_exchange);
criterion_main!(benches);
