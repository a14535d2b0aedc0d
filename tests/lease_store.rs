//! `RedisStore` and `lease.lua` against a real redis-server (started by
//! `common::redis` on a free loopback port): shares across members, expiry
//! on Redis's clock, recovery after Redis restarts empty, one exchange for
//! many resources, a frozen or absent Redis, and bad asks.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::{Redis, free_port};
use common::redis_cluster::RedisCluster;
use prescient::cluster::redis::{RedisStore, RedisType, StoreError};
use prescient::cluster::store::{Ask, Reply};

/// Generous: an exchange on a loaded CI machine answers far sooner.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Longer than any test runs: a lease that must not expire meanwhile.
const LONG: Duration = Duration::from_secs(60);
/// How long the tests wait for something that takes a ttl or a reconnect.
const PATIENCE: Duration = Duration::from_secs(30);

fn ask(resource: &str, member: &str, capacity: u64, target: u64, in_force: u64) -> Ask {
    Ask {
        resource: Arc::from(resource),
        member: Arc::from(member),
        capacity,
        target,
        in_force,
        ttl: LONG,
        wants: format!("{member} wants {target}"),
    }
}

fn with_ttl(ask: Ask, ttl: Duration) -> Ask {
    Ask { ttl, ..ask }
}

async fn one(store: &RedisStore, ask: Ask) -> Reply {
    store.exchange(&[ask]).await.unwrap().remove(0)
}

/// Polls `probe` until it gives `Some`, or panics after `PATIENCE`.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "no {what} within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits out a new store's recovery window (one ttl of its first call, in
/// which nothing new is granted) for `resources`, then gives back the
/// probe's unit.
async fn settle(store: &RedisStore, resources: &[&str]) {
    let ttl = Duration::from_millis(300);
    let probes: Vec<Ask> = resources
        .iter()
        .map(|r| with_ttl(ask(r, "boot", 1, 1, 0), ttl))
        .collect();
    eventually("the end of the recovery window", || async {
        let replies = store.exchange(&probes).await.ok()?;
        replies.iter().all(|r| r.grant == 1).then_some(())
    })
    .await;
    let back: Vec<Ask> = resources
        .iter()
        .map(|r| with_ttl(ask(r, "boot", 1, 0, 0), ttl))
        .collect();
    store.exchange(&back).await.unwrap();
}

fn members(reply: &Reply) -> Vec<&str> {
    let names = reply.wants.iter().map(|(m, _)| m.as_str());
    names.filter(|m| *m != "boot").collect()
}

#[tokio::test]
async fn three_members_share_the_capacity_and_see_each_others_wants() {
    let redis = Redis::start();
    three_members_share(&RedisStore::new(&redis.url(), TIMEOUT).unwrap()).await;
}

#[tokio::test]
async fn on_a_redis_cluster_three_members_share_the_capacity_the_same_way() {
    let cluster = RedisCluster::start(3);
    three_members_share(&on(&cluster)).await;
}

/// A store on `cluster`, given one node: it discovers the others.
fn on(cluster: &RedisCluster) -> RedisStore {
    RedisStore::open(RedisType::Cluster, &cluster.seed(), TIMEOUT).unwrap()
}

async fn three_members_share(store: &RedisStore) {
    settle(store, &["db"]).await;

    let a = one(store, ask("db", "a/1", 100, 50, 0)).await;
    assert_eq!((a.grant, a.others), (50, 0));
    let b = one(store, ask("db", "b/1", 100, 40, 0)).await;
    assert_eq!((b.grant, b.others), (40, 50));
    let c = one(store, ask("db", "c/1", 100, 30, 0)).await;
    assert_eq!((c.grant, c.others), (10, 90));
    assert_eq!(members(&c), ["a/1", "b/1", "c/1"]);
    assert!(c.wants.contains(&("b/1".into(), "b/1 wants 40".into())));

    // a is granted less, but the 30 it gives back is free only once it
    // says it no longer enforces it.
    assert_eq!(one(store, ask("db", "a/1", 100, 20, 50)).await.grant, 20);
    assert_eq!(one(store, ask("db", "c/1", 100, 30, 10)).await.grant, 10);
    one(store, ask("db", "a/1", 100, 20, 20)).await;
    let c = one(store, ask("db", "c/1", 100, 30, 10)).await;
    assert_eq!((c.grant, c.others), (30, 60));
}

#[tokio::test]
async fn an_expired_lease_frees_its_share_on_the_store_clock() {
    let redis = Redis::start();
    let store = RedisStore::new(&redis.url(), TIMEOUT).unwrap();
    settle(&store, &["db"]).await;
    let ttl = Duration::from_millis(300);

    let a = one(&store, with_ttl(ask("db", "a/1", 100, 100, 0), ttl)).await;
    assert_eq!(a.grant, 100);
    let b = one(&store, ask("db", "b/1", 100, 100, 0)).await;
    assert_eq!((b.grant, b.others), (0, 100));
    let b = eventually("a's lease to expire", || async {
        let b = one(&store, ask("db", "b/1", 100, 100, 0)).await;
        (b.grant == 100).then_some(b)
    })
    .await;
    assert!(
        b.now_ms >= a.now_ms + 300,
        "{} < {} + 300",
        b.now_ms,
        a.now_ms
    );
    assert_eq!((b.others, members(&b)), (0, vec!["b/1"]));
}

#[tokio::test]
async fn after_redis_restarts_empty_nothing_new_is_granted_for_one_ttl() {
    let mut redis = Redis::start();
    let store = RedisStore::new(&redis.url(), TIMEOUT).unwrap();
    settle(&store, &["db"]).await;
    one(&store, ask("db", "a/1", 100, 60, 0)).await;
    one(&store, ask("db", "b/1", 100, 40, 0)).await;

    redis.restart();
    // The first call after the restart (once reconnected, the script
    // reloaded) opens the window: c, enforcing nothing, gets nothing.
    let window = Duration::from_millis(500);
    let first = eventually("an answer from the restarted Redis", || async {
        let c = with_ttl(ask("db", "c/1", 100, 50, 0), window);
        store.exchange(&[c]).await.ok().map(|mut r| r.remove(0))
    })
    .await;
    assert_eq!((first.grant, first.others), (0, 0));
    // a and b re-register and keep what they enforce, no more.
    let b = one(&store, ask("db", "b/1", 100, 100, 40)).await;
    assert_eq!((b.grant, b.others), (40, 0));
    assert_eq!(one(&store, ask("db", "a/1", 100, 30, 60)).await.grant, 30);
    one(&store, ask("db", "a/1", 100, 30, 30)).await;
    // The 30 a gave back goes to c once the window is over.
    let c = eventually("the end of the recovery window", || async {
        let c = one(&store, with_ttl(ask("db", "c/1", 100, 50, 0), window)).await;
        (c.grant > 0).then_some(c)
    })
    .await;
    assert_eq!((c.grant, c.others), (30, 70));
    assert!(
        c.now_ms >= first.now_ms + 500,
        "{} < {} + 500",
        c.now_ms,
        first.now_ms
    );
}

#[tokio::test]
async fn one_exchange_answers_every_resource_in_order() {
    let redis = Redis::start();
    let store = RedisStore::new(&redis.url(), TIMEOUT).unwrap();
    let resources = ["db", "slots", "api"];
    settle(&store, &resources).await;
    let held = [ask("db", "a/1", 100, 70, 0), ask("slots", "a/1", 8, 8, 0)];
    store.exchange(&held).await.unwrap();

    let asks = [
        ask("db", "b/1", 100, 50, 0),
        ask("slots", "b/1", 8, 4, 0),
        ask("api", "b/1", 1000, 600, 0),
    ];
    let replies = store.exchange(&asks).await.unwrap();
    let got: Vec<_> = replies.iter().map(|r| (r.grant, r.others)).collect();
    assert_eq!(got, [(30, 70), (0, 8), (600, 0)]);
    assert_eq!(members(&replies[1]), ["a/1", "b/1"]);
    assert_eq!(members(&replies[2]), ["b/1"]);
}

/// Twelve resources: a Redis Cluster of three spreads their hash slots
/// over every node.
const SPREAD: [&str; 12] = [
    "db", "api", "slots", "llm", "gpu", "search", "mail", "cache", "queue", "blob", "auth", "log",
];

#[tokio::test]
async fn on_a_redis_cluster_each_resource_lives_on_its_own_node_and_one_exchange_answers_all() {
    let cluster = RedisCluster::start(3);
    let store = on(&cluster);
    settle(&store, &SPREAD).await;
    let asks =
        |member: &str| -> Vec<Ask> { SPREAD.iter().map(|r| ask(r, member, 100, 60, 0)).collect() };
    let a = store.exchange(&asks("a/1")).await.unwrap();
    let b = store.exchange(&asks("b/1")).await.unwrap();
    for (resource, (a, b)) in SPREAD.iter().zip(a.iter().zip(&b)) {
        assert_eq!((a.grant, b.grant, b.others), (60, 40, 60), "{resource}");
        assert_eq!(members(b), ["a/1", "b/1"], "{resource}");
    }
    // Two hashes per resource, and every node holds some.
    let keys = cluster.keys_per_node();
    assert_eq!(
        keys.iter().sum::<u64>(),
        2 * SPREAD.len() as u64,
        "{keys:?}"
    );
    assert!(keys.iter().all(|&k| k > 0), "not spread: {keys:?}");
}

/// The control: a store that takes a cluster node for one server is told
/// that most resources live elsewhere, so the cluster client is what makes
/// the test above pass.
#[tokio::test]
async fn a_single_server_store_on_a_cluster_node_is_refused_for_other_nodes_slots() {
    let cluster = RedisCluster::start(3);
    let single = RedisStore::new(&cluster.seed(), TIMEOUT).unwrap();
    let asks: Vec<Ask> = SPREAD.iter().map(|r| ask(r, "a/1", 100, 60, 0)).collect();
    let error = single.exchange(&asks).await.unwrap_err().to_string();
    assert!(error.to_lowercase().contains("moved"), "{error}");
}

#[tokio::test]
async fn after_every_cluster_node_forgets_the_script_it_is_loaded_again() {
    let cluster = RedisCluster::start(3);
    let store = on(&cluster);
    settle(&store, &SPREAD).await;
    cluster.on_every_node(&["SCRIPT", "FLUSH"]);
    let asks: Vec<Ask> = SPREAD.iter().map(|r| ask(r, "a/1", 100, 60, 0)).collect();
    let replies = store.exchange(&asks).await.unwrap();
    assert!(replies.iter().all(|r| r.grant == 60), "{replies:?}");
}

#[tokio::test]
async fn a_frozen_redis_fails_the_exchange_at_the_timeout_and_is_used_again_after() {
    let redis = Redis::start();
    let timeout = Duration::from_millis(300);
    let store = RedisStore::new(&redis.url(), timeout).unwrap();
    settle(&store, &["db"]).await;

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let error = store.exchange(&[ask("db", "a/1", 100, 10, 0)]).await;
        let error = error.unwrap_err();
        assert!(
            matches!(error, StoreError::Timeout(_) | StoreError::Redis(_)),
            "{error}"
        );
        // Bounded by the timeout (generously: a loaded machine is slow to
        // wake the timer), not by the outage.
        assert!(started.elapsed() < Duration::from_secs(5), "{error}");
    }
    redis.resume();
    let a = eventually("an answer after the freeze", || async {
        store.exchange(&[ask("db", "a/1", 100, 10, 0)]).await.ok()
    })
    .await;
    assert_eq!(a[0].grant, 10);
}

#[tokio::test]
async fn a_redis_that_starts_after_the_store_is_used_once_it_is_up() {
    let port = free_port();
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}"), TIMEOUT).unwrap();
    // Refused at once, not held for the timeout.
    let started = Instant::now();
    let refused = store.exchange(&[ask("db", "a/1", 100, 10, 0)]).await;
    let refused = refused.unwrap_err();
    assert!(matches!(refused, StoreError::Redis(_)), "{refused}");
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());

    let _redis = Redis::start_on(port);
    settle(&store, &["db"]).await;
    assert_eq!(one(&store, ask("db", "a/1", 100, 10, 0)).await.grant, 10);
}

#[tokio::test]
async fn a_batch_with_a_bad_ask_is_refused_whole_and_changes_nothing() {
    let redis = Redis::start();
    let store = RedisStore::new(&redis.url(), TIMEOUT).unwrap();
    settle(&store, &["db"]).await;
    one(&store, ask("db", "a/1", 100, 50, 0)).await;

    let batch = [
        ask("db", "a/1", 100, 100, 50),
        Ask {
            ttl: Duration::ZERO,
            ..ask("db", "b/1", 100, 10, 0)
        },
    ];
    let error = store.exchange(&batch).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "lease ask for resource \"db\": ttl: 0ns is under 1 ms"
    );
    // a's ask in the same batch was not sent: it still holds 50, not 100.
    let c = one(&store, ask("db", "c/1", 100, 100, 0)).await;
    assert_eq!((c.grant, c.others), (50, 50));
}
