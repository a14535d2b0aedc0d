//! Many daemons, one capacity (issue 12, items 5 and 6), with real
//! processes: `prescient` daemons share one redis-server; clients race on
//! all of them, and what they admit together stays within the capacity; a
//! joining daemon takes its share without the leases ever adding up to
//! more than the capacity; units held across daemons never exceed a
//! concurrency capacity, even while shares move. The bounds have their
//! controls: the same daemons without the cluster settings. Faults are in
//! `cluster_faults.rs`.

mod common;

use std::time::{Duration, Instant};

use common::Daemon;
use common::cluster::{self, Cluster, Joiner, LEASE_TTL, PATIENCE, POLICY, RATE, UNITS, exclusive};
use common::load::Load;
use common::requests::{acquire, release};
use prescient::proto::Decision;

/// How long clients hammer the daemons while grants are counted.
const WINDOW: Duration = Duration::from_secs(5);

/// Clients on every daemon, each offering twice the whole capacity
/// (`web`, 10 tokens, 60 times a second), for [`WINDOW`]: the tokens the
/// daemons say they granted meanwhile, and the window measured around the
/// two reads of their counters (so it holds every grant counted).
async fn hammer(daemons: &[&Daemon]) -> (f64, Duration) {
    let load = Load::start(
        daemons,
        acquire("web", "api", 10),
        60,
        Duration::from_secs(5),
    )
    .await;
    let started = Instant::now();
    let before = cluster::granted(daemons, "api").await;
    // The measurement window, not a wait for an event.
    tokio::time::sleep(WINDOW).await;
    let after = cluster::granted(daemons, "api").await;
    let window = started.elapsed();
    let seen = load.stop().await;
    assert!(
        seen.iter().all(|s| s.unanswered == 0 && s.grants > 0),
        "every client answered and granted: {seen:?}"
    );
    (after - before, window)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_hammered_at_once_admit_the_capacity_between_them_not_more() {
    let _one = exclusive().await;
    admit_the_capacity_between_them(Cluster::start(3)).await;
}

/// The same daemons with their leases on a Redis Cluster of three nodes
/// (`cluster.redis_type: cluster`, given one node's URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_on_a_redis_cluster_admit_the_capacity_between_them_not_more() {
    let _one = exclusive().await;
    let cluster = Cluster::on_redis_cluster(3);
    admit_the_capacity_between_them(cluster).await;
}

async fn admit_the_capacity_between_them(cluster: Cluster) {
    cluster.formed("api", RATE * 95 / 100).await;
    let stored = cluster.stored("api").await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(stored.values().sum::<u64>() <= RATE, "{stored:?}");
    let (granted, window) = hammer(&cluster.all()).await;
    let capacity = RATE as f64 * window.as_secs_f64();
    let bound = cluster::admissible(window, 3);
    eprintln!("granted {granted} in {window:?}: bound {bound}, capacity {capacity}");
    assert!(
        granted <= bound,
        "{granted} granted in {window:?}: more than C × window + depths = {bound}"
    );
    assert!(
        granted >= 0.7 * capacity,
        "{granted} granted in {window:?}: the capacity ({capacity}) is not used"
    );
}

/// The control: the same daemons, each alone, admit about three times
/// the capacity, so the bound above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_without_the_cluster_settings_admit_three_times_the_capacity() {
    let _one = exclusive().await;
    let alone: Vec<Daemon> = (0..3)
        .map(|_| Daemon::start(POLICY, &[("PRESCIENT_TICK", "100ms")]))
        .collect();
    let daemons: Vec<&Daemon> = alone.iter().collect();
    let (granted, window) = hammer(&daemons).await;
    let capacity = RATE as f64 * window.as_secs_f64();
    eprintln!("alone: granted {granted} in {window:?}");
    assert!(
        granted > cluster::admissible(window, 3),
        "{granted} in {window:?}"
    );
    assert!(granted >= 2.5 * capacity, "{granted} in {window:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_daemon_takes_its_share_and_the_leases_never_exceed_the_capacity() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start(2);
    cluster.formed("api", RATE * 95 / 100).await;
    let joining = Joiner::Starting(cluster.spawn_daemon());
    let (_joiner, peaks) = cluster::watch_join(&cluster, joining).await;
    eprintln!("joined: {peaks:?}");
    assert!(
        peaks.enforced <= RATE as f64,
        "Σ enforced reached {peaks:?}"
    );
    assert!(peaks.stored <= RATE, "Σ stored reached {peaks:?}");
    assert!(peaks.samples >= 3, "the join was seen in {peaks:?} only");
}

/// Units of `slots` taken on `d` for `web`, one at a time until a denial:
/// their lease ids.
async fn take_all(d: &Daemon) -> Vec<String> {
    let mut client = d.client().await;
    let mut held = Vec::new();
    // A daemon alone grants UNITS at most: one more ask gets the denial.
    for _ in 0..=UNITS {
        let r = client.acquire(acquire("web", "slots", 1)).await.unwrap();
        let r = r.into_inner();
        if r.decision() != Decision::Granted {
            break;
        }
        held.push(r.lease_id);
    }
    held
}

async fn give_back(d: &Daemon, leases: &[String]) {
    let mut client = d.client().await;
    for lease in leases {
        let r = client.release(release(lease)).await.unwrap().into_inner();
        assert_eq!(r.released_units, 1, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_held_across_daemons_never_exceed_the_capacity_even_as_a_daemon_joins() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start(3);
    cluster.formed("slots", UNITS).await;
    let mut held: Vec<Vec<String>> = Vec::new();
    for d in cluster.all() {
        held.push(take_all(d).await);
    }
    let total = |held: &[Vec<String>]| held.iter().map(Vec::len).sum::<usize>() as u64;
    assert_eq!(total(&held), UNITS, "held: {held:?}");

    // A fourth daemon joins while every unit is held: the others' shares
    // shrink, but units they hold are not free, so it must not grant any.
    let joiner = cluster.daemon();
    cluster.daemons.push(joiner);
    held.push(Vec::new());
    cluster.formed("slots", 0).await;
    // Keep asking everywhere for a few TTLs, as shares settle.
    let until = Instant::now() + 3 * LEASE_TTL;
    while Instant::now() < until {
        for (d, leases) in cluster.daemons.iter().zip(&mut held) {
            leases.extend(take_all(d).await);
        }
        assert!(
            total(&held) <= UNITS,
            "{} units held: {held:?}",
            total(&held)
        );
    }
    for (d, leases) in cluster.daemons.iter().zip(&held) {
        give_back(d, leases).await;
    }
    // Released, the units move: the joiner gets its share.
    let joiner = cluster.daemons.last().unwrap();
    let taken = common::eventually(PATIENCE, "a unit on the joiner", || async {
        Some(take_all(joiner).await).filter(|t| !t.is_empty())
    })
    .await;
    give_back(joiner, &taken).await;
}

/// The control: the same daemons, each alone, hold the capacity each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_without_the_cluster_settings_hold_three_times_the_units() {
    let _one = exclusive().await;
    let alone: Vec<Daemon> = (0..3)
        .map(|_| Daemon::start(POLICY, &[("PRESCIENT_TICK", "100ms")]))
        .collect();
    let mut total = 0;
    for d in &alone {
        total += take_all(d).await.len() as u64;
    }
    assert_eq!(total, 3 * UNITS);
}
