//! Many real daemons on one real redis-server (issue 12): each daemon is
//! the `prescient` binary with its cluster settings pointing at the same
//! Redis, with a short tick and lease TTL so that shares form and move
//! within about a second. What the tests read of them: Σ of a metric over
//! the daemons, and the leases as Redis stores them (one atomic HGETALL).

use std::collections::BTreeMap;
use std::time::Duration;

use prescient::cluster::redis::LeaseScript;

use super::redis::Redis;
use super::redis_cluster::RedisCluster;
use super::{Daemon, probe};

/// A rate resource (300/s) and a concurrency one (6 units), one tenant
/// that may borrow. No `burst`: every rate pool's depth is one second of
/// its rate, so the tokens a daemon can hold are at most the capacity.
pub const POLICY: &str = r#"
resources:
  api: { kind: rate, capacity: 300 }
  slots: { kind: concurrency, capacity: 6 }
tenants:
  web:
    qos: gold
    limits:
      api: { guaranteed: 150 }
      slots: { guaranteed: 3 }
"#;
/// `api`'s capacity, tokens/s.
pub const RATE: u64 = 300;
/// `slots`' capacity, units.
pub const UNITS: u64 = 6;

pub const TICK: Duration = Duration::from_millis(100);
pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// Generous for what takes a few TTLs (leases forming, moving) on a
/// loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One test at a time per test binary: three daemons, a Redis and the
/// clients keep two cores busy, and a starved daemon misses its renewals.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// Where the daemons keep their leases.
pub enum Store {
    /// One redis-server.
    Server(Redis),
    /// A Redis Cluster (`cluster.redis_type: cluster`, given one node).
    Cluster(RedisCluster),
}

impl Store {
    /// The `cluster.redis_*` settings of a daemon using this store.
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Store::Server(redis) => vec![("PRESCIENT_CLUSTER__REDIS_URL", redis.url())],
            Store::Cluster(cluster) => vec![
                ("PRESCIENT_CLUSTER__REDIS_URL", cluster.seed()),
                ("PRESCIENT_CLUSTER__REDIS_TYPE", "cluster".into()),
            ],
        }
    }
}

/// Daemons sharing capacity through one Redis.
pub struct Cluster {
    pub store: Store,
    pub daemons: Vec<Daemon>,
    /// Every daemon's `cluster.lease_ttl`.
    pub lease_ttl: Duration,
    /// Daemons started so far (names `d0`, `d1`, … are never reused).
    started: usize,
}

impl Cluster {
    /// A redis-server and `n` daemons on [`POLICY`].
    pub fn start(n: usize) -> Self {
        Self::with_lease_ttl(n, LEASE_TTL)
    }

    /// The same with another `cluster.lease_ttl`.
    pub fn with_lease_ttl(n: usize, lease_ttl: Duration) -> Self {
        Self::on(Store::Server(Redis::start()), n, lease_ttl)
    }

    /// A Redis Cluster of three nodes and `n` daemons on [`POLICY`].
    pub fn on_redis_cluster(n: usize) -> Self {
        Self::on(Store::Cluster(RedisCluster::start(3)), n, LEASE_TTL)
    }

    fn on(store: Store, n: usize, lease_ttl: Duration) -> Self {
        let mut cluster = Self {
            store,
            daemons: Vec::new(),
            lease_ttl,
            started: 0,
        };
        for _ in 0..n {
            let d = cluster.daemon();
            cluster.daemons.push(d);
        }
        cluster
    }

    /// Starts one more daemon of the cluster (the caller adds it to
    /// `daemons` when it wants to).
    pub fn daemon(&mut self) -> Daemon {
        self.spawn_daemon().join().unwrap()
    }

    /// Starts one more daemon on a thread of its own, to watch the others
    /// while it starts.
    pub fn spawn_daemon(&mut self) -> std::thread::JoinHandle<Daemon> {
        let name = format!("d{}", self.started);
        let mut env = member_env(&name, self.lease_ttl);
        env.extend(self.store.env());
        self.started += 1;
        std::thread::spawn(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Daemon::start(POLICY, &env)
        })
    }

    /// SIGKILLs daemon `i` (no goodbye to the store) and forgets it.
    pub fn kill(&mut self, i: usize) {
        let mut d = self.daemons.remove(i);
        d.child.kill().unwrap();
        d.child.wait().unwrap();
    }

    pub fn all(&self) -> Vec<&Daemon> {
        self.daemons.iter().collect()
    }

    /// Waits until every daemon holds a valid lease on `resource`, sees
    /// all the others, and the leases add up to at least `at_least`.
    pub async fn formed(&self, resource: &str, at_least: u64) {
        let n = self.daemons.len() as f64;
        let instances = format!("prescient_cluster_instances{{resource=\"{resource}\"}}");
        let valid = format!("prescient_cluster_lease_valid{{resource=\"{resource}\"}}");
        super::eventually(
            PATIENCE,
            &format!("leases on {resource} formed"),
            || async {
                for d in &self.daemons {
                    if probe::metric(d, &valid).await? != 1.0
                        || probe::metric(d, &instances).await? != n
                    {
                        return None;
                    }
                }
                (leased(&self.all(), resource).await? >= at_least as f64).then_some(())
            },
        )
        .await;
    }

    /// The leases Redis holds on `resource`, by member (expired ones not
    /// yet dropped included: they were counted when the others were
    /// granted).
    pub async fn stored(&self, resource: &str) -> BTreeMap<String, u64> {
        let [leases, _] = LeaseScript::keys(resource);
        let hgetall = redis::cmd("HGETALL").arg(&leases).clone();
        let fields: BTreeMap<String, String> = match &self.store {
            Store::Server(redis) => {
                let client = redis::Client::open(redis.url()).unwrap();
                let mut connection = client.get_multiplexed_async_connection().await.unwrap();
                hgetall.query_async(&mut connection).await.unwrap()
            }
            Store::Cluster(cluster) => {
                let client = redis::cluster::ClusterClient::new(vec![cluster.seed()]).unwrap();
                let mut connection = client.get_async_connection().await.unwrap();
                hgetall.query_async(&mut connection).await.unwrap()
            }
        };
        leases_of(fields)
    }

    /// The one redis-server (a test of its faults).
    pub fn redis(&self) -> &Redis {
        match &self.store {
            Store::Server(redis) => redis,
            Store::Cluster(_) => panic!("the cluster's store is a Redis Cluster"),
        }
    }

    /// The same, to restart it.
    pub fn redis_mut(&mut self) -> &mut Redis {
        match &mut self.store {
            Store::Server(redis) => redis,
            Store::Cluster(_) => panic!("the cluster's store is a Redis Cluster"),
        }
    }
}

/// The settings of daemon `name` of the cluster, but its store's.
fn member_env(name: &str, lease_ttl: Duration) -> Vec<(&'static str, String)> {
    vec![
        ("PRESCIENT_TICK", humantime(TICK)),
        ("PRESCIENT_CLUSTER__INSTANCE_ID", name.to_string()),
        ("PRESCIENT_CLUSTER__LEASE_TTL", humantime(lease_ttl)),
    ]
}

fn humantime(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Σ of `prescient_cluster_lease_capacity` on `resource` over `daemons`,
/// read in order (one after the other, not at one instant).
pub async fn leased(daemons: &[&Daemon], resource: &str) -> Option<f64> {
    let series = format!("prescient_cluster_lease_capacity{{resource=\"{resource}\"}}");
    let mut sum = 0.0;
    for d in daemons {
        sum += probe::metric(d, &series).await?;
    }
    Some(sum)
}

/// The most `daemons` daemons may grant of `api` between them over
/// `window`: `C × window + depths`. Depths: Σ of the bucket depths they can
/// hold. [`POLICY`] has no `burst`, so every pool's depth is one second of
/// its rate, and a daemon's pools add up to at most the policy's capacity
/// (its share is less): one second of [`RATE`] per daemon.
pub fn admissible(window: Duration, daemons: usize) -> f64 {
    let depths = daemons as f64 * RATE as f64;
    RATE as f64 * window.as_secs_f64() + depths
}

/// Σ of `prescient_granted_tokens` on `resource` (every tenant and pool)
/// over `daemons`.
pub async fn granted(daemons: &[&Daemon], resource: &str) -> f64 {
    let label = format!("resource=\"{resource}\"");
    let mut sum = 0.0;
    for d in daemons {
        sum += probe::metric_sum(d, "prescient_granted_tokens_total", &label)
            .await
            .expect("a daemon's /metrics");
    }
    sum
}

/// Leases by member from the fields of a resource's `leases` hash.
fn leases_of(fields: BTreeMap<String, String>) -> BTreeMap<String, u64> {
    fields
        .into_iter()
        // `~recovering`: the store's own marker, a lease of 0.
        .filter(|(member, _)| !member.starts_with('~'))
        .map(|(member, value)| {
            let lease = value.split(':').next().unwrap().parse().unwrap();
            (member, lease)
        })
        .collect()
}

/// A daemon joining a cluster: still starting (on its own thread), or up.
pub enum Joiner {
    Starting(std::thread::JoinHandle<Daemon>),
    Up(Daemon),
}

/// The most the leases on `api` added up to while a daemon joined.
#[derive(Debug)]
pub struct Peaks {
    /// Σ of what the daemons enforce (their metric).
    pub enforced: f64,
    /// Σ of what Redis stores.
    pub stored: u64,
    pub samples: usize,
}

/// Samples the leases on `api`, enforced and stored, until `joiner` and
/// every daemon of `cluster` hold an even share of the capacity (less
/// rounding); returns the joiner, up, and the peaks.
pub async fn watch_join(cluster: &Cluster, mut joiner: Joiner) -> (Daemon, Peaks) {
    let share = "prescient_cluster_lease_capacity{resource=\"api\"}";
    let n = cluster.daemons.len() as u64 + 1;
    let mut peaks = Peaks {
        enforced: 0.0,
        stored: 0,
        samples: 0,
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Joiner::Starting(thread) = &joiner
            && thread.is_finished()
        {
            let Joiner::Starting(thread) = joiner else {
                unreachable!()
            };
            joiner = Joiner::Up(thread.join().unwrap());
        }
        let up = match &joiner {
            Joiner::Up(d) => Some(d),
            Joiner::Starting(_) => None,
        };
        // The joiner's share only grows while the others' only shrink:
        // reading it first, the sum is at most the leases at the last read.
        let mut sweep: Vec<&Daemon> = up.into_iter().collect();
        sweep.extend(cluster.all());
        let enforced = leased(&sweep, "api").await.unwrap();
        let stored = cluster.stored("api").await;
        peaks.enforced = peaks.enforced.max(enforced);
        peaks.stored = peaks.stored.max(stored.values().sum());
        peaks.samples += 1;
        let joined = match up {
            Some(d) => probe::metric(d, share).await.unwrap(),
            None => 0.0,
        };
        let even = (RATE / n).saturating_sub(2) as f64;
        if joined >= even && stored.len() as u64 == n && enforced >= (RATE - 2 * n) as f64 {
            let Joiner::Up(d) = joiner else {
                unreachable!("its share was read")
            };
            return (d, peaks);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the joiner holds {joined} after {PATIENCE:?}: {stored:?}, Σ enforced {enforced}"
        );
    }
}
