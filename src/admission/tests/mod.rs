//! The admission core on a manual clock, call by call. This file holds
//! the policy and helpers the test modules share.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, ManualClock, NANOS_PER_SEC};
use crate::policy::Policy;

mod acquire;
mod leases;
mod lending;
mod report;
mod request_ids;
mod waiters;

const POLICY: &str = r#"
resources:
  db:
    kind: rate
    capacity: 1000
    emergency: 0.1
  slots:
    kind: concurrency
    capacity: 10
    emergency: 0.1
    lease_ttl: 30s
tenants:
  plat:
    qos: platinum
    limits:
      db: { guaranteed: 100, reserve: { max: 200 } }
      slots: { guaranteed: 2, reserve: { max: 2 } }
  bronze:
    qos: bronze
    limits:
      db: { guaranteed: 50 }
      slots: { guaranteed: 1 }
  silver:
    qos: silver
    limits:
      db: { guaranteed: 50 }
"#;

fn core_with(yaml: &str, clock: Arc<dyn Clock>) -> Admission {
    let policy = Policy::load_str(yaml, "test").unwrap();
    Admission::new(&policy, AdmissionConfig::default(), clock)
}

fn core() -> (Admission, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NANOS_PER_SEC));
    (core_with(POLICY, clock.clone()), clock)
}

fn req<'a>(tenant: &'a str, resource: &'a str, amount: u64) -> AcquireRequest<'a> {
    AcquireRequest {
        tenant,
        resource,
        amount,
        ..Default::default()
    }
}

fn granted(d: Result<Decision, AdmissionError>) -> Grant {
    match d {
        Ok(Decision::Granted(g)) => g,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn denied(d: Result<Decision, AdmissionError>) -> Denial {
    match d {
        Ok(Decision::Denied(d)) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// A core on a manual clock, with its dispatchers and reaper running on it.
fn running(yaml: &str) -> (Arc<Admission>, Arc<ManualClock>, CancellationToken) {
    let clock = Arc::new(ManualClock::new(NANOS_PER_SEC));
    let core = Arc::new(core_with(yaml, clock.clone()));
    let cancel = CancellationToken::new();
    core.spawn(cancel.clone(), Duration::from_secs(1));
    (core, clock, cancel)
}

/// Yields to the runtime (the dispatchers) until `done`; everything here is
/// in-process, so a bounded number of yields is plenty unless a bug. Shared
/// with the reload tests, as is [`park`].
pub(super) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// Parks an Acquire with `max_wait` in a task; returns once it is queued.
pub(super) async fn park(
    core: &Arc<Admission>,
    tenant: &'static str,
    resource: &'static str,
    amount: u64,
    max_wait: Duration,
) -> tokio::task::JoinHandle<Result<Decision, AdmissionError>> {
    let queued = core.resource_named(resource).unwrap().waiters.len();
    let task = {
        let core = core.clone();
        tokio::spawn(async move {
            let mut r = req(tenant, resource, amount);
            r.max_wait = max_wait;
            core.acquire(&r).await
        })
    };
    let r = core.resource_named(resource).unwrap();
    until("the waiter to queue", || r.waiters.len() > queued).await;
    task
}
