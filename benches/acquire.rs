//! The Acquire hot path (DESIGN §3) next to two peers deciding the same
//! request in process: `governor`, the reference GCRA limiter, and
//! `limitador`'s in-memory limiter (the library under Kuadrant's Envoy
//! rate-limit service). Targets from issues 3 and 15: an uncontended rate
//! Acquire under 100 ns, no slower than governor's keyed check, at least 5×
//! faster than limitador. Every prescient iteration reads the clock
//! (`core.clock().now()`), as governor's `check()` and limitador's
//! (`SystemTime::now()`) read their own.
//!
//! `cargo bench --bench acquire`; results and how to read them are in
//! `docs/performance.md`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use limitador::limit::{Context, Expression, Limit, Namespace, Predicate};
use prescient::admission::{AcquireRequest, Admission, AdmissionConfig, Decision};
use prescient::clock::SystemClock;
use prescient::policy::Policy;

/// One policy for every group. `rate` and `split` are so large they never
/// deny during a run; `tight` holds 10 tokens/s in all, so it is always
/// empty once drained.
const POLICY: &str = r#"
resources:
  rate: { kind: rate, capacity: 1000000000000 }
  split: { kind: rate, capacity: 1000000000000 }
  tight: { kind: rate, capacity: 10 }
  slots: { kind: concurrency, capacity: 1000 }
tenants:
  a:
    qos: gold
    limits:
      rate: { guaranteed: 100000000000 }
      slots: { guaranteed: 100 }
  b:
    qos: gold
    limits:
      rate: { guaranteed: 100000000000 }
  splitter:
    qos: gold
    limits:
      split: { guaranteed: 100000000, burst: 1, reserve: { max: 100000000 } }
  starved:
    qos: gold
    limits:
      tight: { guaranteed: 1, burst: 1 }
"#;

/// The split tenant's reserve (tokens/s): 10 ns per token, like its
/// guaranteed bucket.
const SPLIT_RESERVE: u64 = 100_000_000;
/// Far more than reserve and guaranteed refill between two calls, so the
/// shared pool always pays the rest.
const SPLIT_AMOUNT: u64 = 1_000;
/// Leases acquired between two reaps in the concurrency group.
const LEASE_BATCH: u64 = 10_000;

fn core() -> Admission {
    let policy = Policy::load_str(POLICY, "bench").expect("bench policy is valid");
    let config = AdmissionConfig {
        // Released leases are forgotten at the next reap, so the lease
        // table stays at one batch however many iterations criterion runs.
        lease_tombstone: Duration::ZERO,
        ..AdmissionConfig::default()
    };
    Admission::new(&policy, config, Arc::new(SystemClock::new()))
}

fn request<'a>(tenant: &'a str, resource: &'a str, amount: u64) -> AcquireRequest<'a> {
    AcquireRequest {
        tenant,
        resource,
        amount,
        ..Default::default()
    }
}

fn unlimited() -> Quota {
    Quota::per_second(NonZeroU32::MAX)
}

/// limitador's in-memory limiter holding what `POLICY` says of resource
/// `rate`: a limit per tenant (the `tenant` variable qualifies the counter)
/// of 10^11 per one-second window, so it never limits during a run. Its
/// API for this storage is synchronous: no runtime in the loop.
fn limitador_rate() -> (limitador::RateLimiter, Namespace) {
    let limiter = limitador::RateLimiter::new(1_000);
    let tenant: Expression = "tenant".try_into().expect("a CEL variable");
    let no_conditions: [Predicate; 0] = [];
    limiter.add_limit(Limit::new(
        "rate",
        100_000_000_000,
        1,
        no_conditions,
        [tenant],
    ));
    (limiter, Namespace::from("rate"))
}

/// A request as limitador's server hands it to the library: the
/// descriptor's entries as CEL variables. Built once, as prescient's
/// `AcquireRequest` is.
fn limitador_context(tenant: &str) -> Context<'static> {
    let values = [("tenant".to_string(), tenant.to_string())];
    Context::from(
        values
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
    )
}

/// Uncontended rate Acquire paid by one pool (the tenant's guaranteed
/// bucket): the common case, against governor's direct limiter (no lookup),
/// its keyed one (a DashMap lookup, as prescient does by tenant name) and
/// limitador's check-and-update of the tenant's counter (amount 1).
fn rate_single_pool(c: &mut Criterion) {
    let core = core();
    let req = request("a", "rate", 1);
    match core.try_acquire(&req, core.clock().now()) {
        Ok(Decision::Granted(g)) => assert_eq!(g.split.guaranteed, 1, "{g:?}"),
        other => panic!("expected a grant, got {other:?}"),
    }
    let direct = RateLimiter::direct(unlimited());
    let keyed: DefaultKeyedRateLimiter<&str> = RateLimiter::keyed(unlimited());
    let (limitador, namespace) = limitador_rate();
    let ctx = limitador_context("a");
    let checked = limitador
        .check_rate_limited_and_update(&namespace, &ctx, 1)
        .expect("limitador decides");
    assert!(!checked.limited, "limitador must grant");
    assert_eq!(checked.counters.len(), 1, "one counter: tenant a's");

    let mut g = c.benchmark_group("rate_single_pool");
    g.bench_function("prescient", |b| {
        b.iter(|| black_box(core.try_acquire(black_box(&req), core.clock().now())))
    });
    g.bench_function("governor_direct", |b| b.iter(|| black_box(direct.check())));
    g.bench_function("governor_keyed", |b| {
        b.iter(|| black_box(keyed.check_key(black_box(&"a"))))
    });
    g.bench_function("limitador", |b| {
        b.iter(|| {
            let r = limitador.check_rate_limited_and_update(&namespace, black_box(&ctx), 1);
            black_box(r.map(|r| r.limited))
        })
    });
    g.finish();
}

/// Rate Acquire paid by reserve, guaranteed and shared at once: three CAS
/// instead of one. Reserve and guaranteed refill 1 token per 10 ns, far
/// less than the 1000 asked, so each call drains what they gathered since
/// the last one and the shared pool pays the rest, every time.
fn rate_split(c: &mut Criterion) {
    let core = core();
    let applied = core
        .set_reserve("splitter", "split", SPLIT_RESERVE)
        .expect("splitter has a reserve on split");
    assert_eq!(applied, SPLIT_RESERVE);
    let req = request("splitter", "split", SPLIT_AMOUNT);
    // Drain what the reserve gathered since it was set: steady state.
    let drained = (0..10_000_000).any(|_| match core.try_acquire(&req, core.clock().now()) {
        Ok(Decision::Granted(g)) => g.split.shared > 0,
        other => panic!("expected a grant, got {other:?}"),
    });
    assert!(drained, "the reserve never ran dry");
    let three = (0..1_000)
        .filter(|_| match core.try_acquire(&req, core.clock().now()) {
            Ok(Decision::Granted(g)) => {
                g.split.reserve > 0 && g.split.guaranteed > 0 && g.split.shared > 0
            }
            other => panic!("expected a grant, got {other:?}"),
        })
        .count();
    eprintln!("rate_split: {three}/1000 sample grants paid by reserve + guaranteed + shared");
    assert!(three >= 500, "the split case must touch three pools");

    let mut g = c.benchmark_group("rate_split");
    g.bench_function("prescient", |b| {
        b.iter(|| black_box(core.try_acquire(black_box(&req), core.clock().now())))
    });
    g.finish();
}

/// Concurrency Acquire then Release of the lease: a unit taken and given
/// back, a lease recorded in and ended in the lease table, the id parsed
/// from its 16-hex-digit string form as gRPC hands it over. Tombstones are
/// reaped between batches, outside the timing.
fn concurrency_pair(c: &mut Criterion) {
    let core = core();
    let req = request("a", "slots", 1);
    let mut g = c.benchmark_group("concurrency_pair");
    g.bench_function("prescient", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            let mut id = [0u8; 16];
            while left > 0 {
                let n = left.min(LEASE_BATCH);
                let start = Instant::now();
                for _ in 0..n {
                    let lease = match core.try_acquire(black_box(&req), core.clock().now()) {
                        Ok(Decision::Granted(g)) => g.lease.expect("concurrency grants a lease"),
                        other => panic!("expected a grant, got {other:?}"),
                    };
                    let released = core.release(hex(lease.0, &mut id));
                    black_box(released.expect("a held lease releases"));
                }
                timed += start.elapsed();
                core.reap(core.clock().now());
                left -= n;
            }
            timed
        })
    });
    g.finish();
}

/// A lease id as the client sends it back, without allocating.
fn hex(id: u64, out: &mut [u8; 16]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[(id >> (60 - 4 * i)) as usize & 0xf];
    }
    std::str::from_utf8(out).expect("hex digits are ASCII")
}

/// Denied Acquire with guaranteed and shared both empty: the cost of the
/// failed takes plus computing `retry_after` from the refill rates.
/// governor's `check()` answers with the earliest possible instant.
fn rate_denied(c: &mut Criterion) {
    let core = core();
    let req = request("starved", "tight", 1);
    let now = core.clock().now();
    let _ = core.try_acquire(&request("starved", "tight", 10), now);
    while let Ok(Decision::Granted(_)) = core.try_acquire(&req, now) {}
    match core.try_acquire(&req, core.clock().now()) {
        Ok(Decision::Denied(d)) => assert!(d.retry_after > Duration::ZERO, "{d:?}"),
        other => panic!("expected a denial, got {other:?}"),
    }
    let direct = RateLimiter::direct(Quota::per_hour(NonZeroU32::MIN));
    assert!(direct.check().is_ok() && direct.check().is_err());

    let mut g = c.benchmark_group("rate_denied");
    g.bench_function("prescient", |b| {
        b.iter(|| black_box(core.try_acquire(black_box(&req), core.clock().now())))
    });
    g.bench_function("governor_direct", |b| {
        b.iter(|| black_box(direct.check().map_err(|e| e.earliest_possible())))
    });
    g.finish();
}

/// Runs `op(thread)` `iters` times on each of two threads started together;
/// returns the wall time of the concurrent part, so criterion reports wall
/// time / iters: time per op per thread.
fn on_two_threads<R>(iters: u64, op: impl Fn(usize) -> R + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(op(t));
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("bench thread panicked"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("two spans");
    let end = spans.iter().map(|s| s.1).max().expect("two spans");
    end - start
}

/// Two threads Acquiring at once (rate, one pool each time): the same
/// tenant (one bucket, one set of counters, one map entry: every atomic
/// contended) and different tenants (only the map and the clock shared).
fn two_threads(c: &mut Criterion) {
    let core = core();
    let reqs = [request("a", "rate", 1), request("b", "rate", 1)];
    let keyed: DefaultKeyedRateLimiter<&str> = RateLimiter::keyed(unlimited());
    let keys = ["a", "b"];

    let mut g = c.benchmark_group("two_threads");
    g.bench_function("prescient_same_tenant", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, |_| {
                core.try_acquire(black_box(&reqs[0]), core.clock().now())
            })
        })
    });
    g.bench_function("governor_keyed_same_key", |b| {
        b.iter_custom(|iters| on_two_threads(iters, |_| keyed.check_key(black_box(&keys[0]))))
    });
    g.bench_function("prescient_two_tenants", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, |t| {
                core.try_acquire(black_box(&reqs[t]), core.clock().now())
            })
        })
    });
    g.bench_function("governor_keyed_two_keys", |b| {
        b.iter_custom(|iters| on_two_threads(iters, |t| keyed.check_key(black_box(&keys[t]))))
    });
    g.finish();
}

/// A policy reload (`Admission::reload`): `n` tenants on two resources,
/// one tenant's guarantee changed each time. Runs on the planner thread in
/// the daemon; Acquires keep going on the previous policy meanwhile.
fn policy_reload(c: &mut Criterion) {
    let policy = |n: usize, changed: u64| {
        let mut y = String::from(
            "resources:\n  api: { kind: rate, capacity: 100000000 }\n  \
             slots: { kind: concurrency, capacity: 100000 }\ntenants:\n",
        );
        for i in 0..n {
            let g = if i == 0 { changed } else { 10 };
            y += &format!(
                "  t{i}: {{ qos: gold, limits: {{ api: {{ guaranteed: {g}, reserve: {{}} }}, slots: {{ guaranteed: 1 }} }} }}\n"
            );
        }
        Policy::load_str(&y, "bench").expect("bench policy is valid")
    };
    let mut g = c.benchmark_group("policy_reload");
    g.sample_size(20);
    for n in [1_000, 10_000] {
        let policies = [policy(n, 10), policy(n, 20)];
        let core = Arc::new(Admission::new(
            &policies[0],
            AdmissionConfig::default(),
            Arc::new(SystemClock::new()),
        ));
        let mut k = 0;
        g.bench_function(format!("{n}_tenants"), |b| {
            b.iter(|| {
                k = 1 - k;
                core.reload(&policies[k], "bench").unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    rate_single_pool,
    rate_split,
    concurrency_pair,
    rate_denied,
    two_threads,
    policy_reload
);
criterion_main!(benches);
