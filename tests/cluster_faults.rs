//! Faults of a cluster (issue 12, item 5), with real processes: three
//! `prescient` daemons on one redis-server. A daemon killed with SIGKILL
//! gives its share back within its lease TTL; a Redis frozen for ten
//! seconds changes neither Acquire's answers nor the capacity admitted; a
//! Redis restarted empty gets the shares back without their sum ever
//! exceeding the capacity.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{self, Cluster, Joiner, LEASE_TTL, PATIENCE, RATE, TICK, exclusive};
use common::load::Load;
use common::requests::acquire;
use common::{Daemon, eventually, probe};

/// How long Redis stays frozen.
const OUTAGE: Duration = Duration::from_secs(10);
/// Every Acquire answers within this, far less than the outage.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// What polling a loaded machine adds to a bound: a scrape of three
/// daemons, a late tick.
const SLACK: Duration = Duration::from_secs(1);

fn api(series: &str) -> String {
    format!("prescient_{series}{{resource=\"api\"}}")
}

/// Whether every daemon's `series` on `api` is `value`.
async fn all_at(daemons: &[&Daemon], series: &str, value: f64) -> bool {
    for d in daemons {
        if probe::metric(d, &api(series)).await != Some(value) {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemons_share_goes_to_the_others_within_its_lease_ttl() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start(3);
    cluster.formed("api", RATE * 95 / 100).await;
    cluster.kill(0);
    let killed = Instant::now();
    let survivors = cluster.all();
    let limit = LEASE_TTL + TICK + SLACK;
    eventually(limit, "the survivors hold the whole capacity", || async {
        let held = cluster::leased(&survivors, "api").await?;
        let two = all_at(&survivors, "cluster_instances", 2.0).await;
        (two && held >= (RATE * 95 / 100) as f64).then_some(())
    })
    .await;
    eprintln!("the killed daemon's share moved in {:?}", killed.elapsed());
    let stored: u64 = cluster.stored("api").await.values().sum();
    assert!(stored <= RATE, "Σ stored {stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_frozen_for_ten_seconds_changes_nothing_on_the_hot_path() {
    let _one = exclusive().await;
    let cluster = Cluster::start(3);
    cluster.formed("api", RATE * 95 / 100).await;
    let daemons = cluster.all();
    let load = Load::start(&daemons, acquire("web", "api", 10), 60, ANSWER_WITHIN).await;
    let started = Instant::now();
    let before = cluster::granted(&daemons, "api").await;
    cluster.redis().stop();
    let stopped = Instant::now();
    // Every daemon sees its lease run out (and holds it: on_store_loss).
    eventually(OUTAGE, "every lease lost", || async {
        all_at(&daemons, "cluster_lease_valid", 0.0)
            .await
            .then_some(())
    })
    .await;
    // The outage's length, not a wait for an event.
    tokio::time::sleep_until((stopped + OUTAGE).into()).await;
    cluster.redis().resume();
    let granted = cluster::granted(&daemons, "api").await - before;
    let window = started.elapsed();
    let seen = load.stop().await;
    eprintln!("granted {granted} in {window:?}; clients saw {seen:?}");
    for s in &seen {
        assert_eq!(s.unanswered, 0, "an Acquire went unanswered: {seen:?}");
        assert!(s.slowest < ANSWER_WITHIN, "{seen:?}");
    }
    let bound = cluster::admissible(window, 3);
    assert!(
        granted <= bound,
        "{granted} granted in {window:?}: over {bound}"
    );
    let capacity = RATE as f64 * window.as_secs_f64();
    assert!(
        granted >= 0.7 * capacity,
        "{granted} of {capacity}: leases not held"
    );

    // Renewed once Redis answers again.
    cluster.formed("api", RATE * 95 / 100).await;
    let stored: u64 = cluster.stored("api").await.values().sum();
    assert!(stored <= RATE, "Σ stored {stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_empty_the_shares_re_form_within_the_capacity() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start(3);
    cluster.formed("api", RATE * 95 / 100).await;
    let load = Load::start(&cluster.all(), acquire("web", "api", 10), 60, ANSWER_WITHIN).await;
    let started = Instant::now();
    let before = cluster::granted(&cluster.all(), "api").await;
    cluster.redis_mut().restart();
    // The new store grants no one more than it enforces for a TTL, so the
    // leases never add up to more than C while every daemon registers again.
    let (mut most_enforced, mut most_stored) = (0.0_f64, 0_u64);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stored = cluster.stored("api").await;
        let enforced = cluster::leased(&cluster.all(), "api").await.unwrap();
        most_stored = most_stored.max(stored.values().sum());
        most_enforced = most_enforced.max(enforced);
        let valid = all_at(&cluster.all(), "cluster_lease_valid", 1.0).await;
        if stored.len() == 3 && valid && enforced >= (RATE * 95 / 100) as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no shares in the new store after {PATIENCE:?}: {stored:?}, Σ enforced {enforced}"
        );
    }
    let granted = cluster::granted(&cluster.all(), "api").await - before;
    let window = started.elapsed();
    let seen = load.stop().await;
    eprintln!("re-formed in {window:?}: Σ enforced ≤ {most_enforced}, Σ stored ≤ {most_stored}");
    assert!(seen.iter().all(|s| s.unanswered == 0), "{seen:?}");
    assert!(
        most_enforced <= RATE as f64,
        "Σ enforced reached {most_enforced}"
    );
    assert!(most_stored <= RATE, "Σ stored reached {most_stored}");
    let bound = cluster::admissible(window, 3);
    assert!(
        granted <= bound,
        "{granted} granted in {window:?}: over {bound}"
    );
}

/// What the store's recovery rule (lease.lua, step 3) is for: Redis comes
/// back empty and the first daemon to ask holds nothing yet, while the
/// others (frozen here; slow or cut off in life) still enforce their
/// shares. It gets nothing they hold; once they are back the shares
/// re-form, a third each, the leases never adding up to more than C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_empty_a_new_daemon_gets_nothing_the_others_still_enforce() {
    let _one = exclusive().await;
    // Long enough for a daemon to start within the recovery window.
    let mut cluster = Cluster::with_lease_ttl(2, Duration::from_secs(3));
    cluster.formed("api", RATE * 95 / 100).await;
    let enforced_by_frozen = cluster::leased(&cluster.all(), "api").await.unwrap();
    for d in &cluster.daemons {
        d.signal("STOP");
    }
    cluster.redis_mut().restart();
    let joiner = cluster.daemon();
    eventually(PATIENCE, "the new daemon's first lease", || async {
        probe::metric(&joiner, &api("cluster_lease_valid"))
            .await
            .filter(|v| *v == 1.0)
    })
    .await;
    let first = probe::metric(&joiner, &api("cluster_lease_capacity")).await;
    assert_eq!(
        first,
        Some(0.0),
        "the new daemon took capacity the frozen ones ({enforced_by_frozen}) enforce"
    );
    for d in &cluster.daemons {
        d.signal("CONT");
    }
    let (_joiner, peaks) = cluster::watch_join(&cluster, Joiner::Up(joiner)).await;
    eprintln!("re-formed: {peaks:?}");
    assert!(
        peaks.enforced <= RATE as f64,
        "Σ enforced reached {peaks:?}"
    );
    assert!(peaks.stored <= RATE, "Σ stored reached {peaks:?}");
}
