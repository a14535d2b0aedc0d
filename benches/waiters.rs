//! Waking waiters with 10,000 parked: the time from a Release to the next
//! waiter's grant, through the public API only (so the same file measures
//! any version of the core). One slot of a concurrency resource is handed
//! from waiter to waiter: each iteration releases the slot and awaits the
//! grant the dispatcher makes to the best waiter.
//!
//! Two queues of 10,000: all waiters of one tenant, and one waiter each of
//! 10,000 tenants (from `defaults`), the worst case for a queue indexed by
//! tenant. `cargo bench --bench waiters`; results in `docs/performance.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use prescient::admission::{AcquireRequest, Admission, AdmissionConfig, Decision};
use prescient::clock::SystemClock;
use prescient::policy::Policy;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAITERS: usize = 10_000;

const POLICY: &str = r#"
resources:
  slots: { kind: concurrency, capacity: 1, lease_ttl: 1h }
tenants:
  one: { qos: gold }
defaults: { qos: gold }
"#;

/// A running core whose slot is held, with `WAITERS` waiters parked (from
/// `tenants`, round robin); returns the held lease and a channel of the
/// leases waiters are granted.
async fn parked(
    tenants: &[String],
) -> (
    Arc<Admission>,
    String,
    mpsc::UnboundedReceiver<String>,
    CancellationToken,
) {
    let policy = Policy::load_str(POLICY, "bench").expect("bench policy is valid");
    let config = AdmissionConfig {
        max_waiters: WAITERS + 1,
        max_default_tenants: WAITERS + 1,
        ..AdmissionConfig::default()
    };
    let core = Arc::new(Admission::new(
        &policy,
        config,
        Arc::new(SystemClock::new()),
    ));
    let cancel = CancellationToken::new();
    core.spawn(cancel.clone(), Duration::from_secs(3600));
    let Ok(Decision::Granted(g)) = core.acquire(&slot_for("one")).await else {
        panic!("the first Acquire takes the slot");
    };
    let held = g
        .lease
        .expect("concurrency grants carry a lease")
        .to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..WAITERS {
        let (core, tx) = (core.clone(), tx.clone());
        let tenant = tenants[i % tenants.len()].clone();
        tokio::spawn(async move {
            if let Ok(Decision::Granted(g)) = core.acquire(&slot_for(&tenant)).await {
                let _ = tx.send(g.lease.expect("a lease").to_string());
            }
        });
    }
    let slots = core.resource_named("slots").expect("slots");
    while slots.waiters.len() < WAITERS {
        tokio::task::yield_now().await;
    }
    (core, held, rx, cancel)
}

/// The slot, for `tenant`, waiting up to an hour.
fn slot_for(tenant: &str) -> AcquireRequest<'_> {
    AcquireRequest {
        tenant,
        resource: "slots",
        amount: 1,
        max_wait: Duration::from_secs(3600),
        ..AcquireRequest::default()
    }
}

fn handoff(c: &mut Criterion, name: &str, tenants: Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("waiters");
    group.sample_size(20);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                // Fresh queues of 10,000 (parking is not timed): every
                // handoff timed sees between 5,000 and 10,000 waiters.
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let (core, mut held, mut granted, cancel) = parked(&tenants).await;
                    let n = left.min(WAITERS as u64 / 2);
                    let start = Instant::now();
                    for _ in 0..n {
                        core.release(&held).expect("held lease");
                        held = granted.recv().await.expect("a waiter is granted");
                    }
                    timed += start.elapsed();
                    cancel.cancel();
                    left -= n;
                }
                timed
            })
        })
    });
    group.finish();
}

fn waiters(c: &mut Criterion) {
    handoff(
        c,
        "release_to_grant/one_tenant_10k_waiters",
        vec!["one".into()],
    );
    let many = (0..WAITERS).map(|i| format!("t{i}")).collect();
    handoff(c, "release_to_grant/10k_tenants_1_waiter_each", many);
}

criterion_group!(benches, waiters);
criterion_main!(benches);
