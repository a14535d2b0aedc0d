//! What sharing capacity costs on the wire (issue 12): N daemons'
//! exchanges with a real Redis, each the whole tick's asks (one script call
//! per resource, pipelined), with T tenants busy on every resource.
//!
//! ```sh
//! redis-server --port 6390 --save "" --appendonly no &
//! cargo run --release --example lease_load -- redis://127.0.0.1:6390 1000 2 3 300
//! ```
//! Arguments: Redis URL, tenants, resources, instances, ticks, and
//! `single` (default) or `cluster` (the URL is then one or more nodes of a
//! Redis Cluster, comma-separated; the figures from INFO are the first
//! node's). Prints the
//! exchange latency (p50 / p99 / max), the bytes of one reply, and Redis's
//! own count of script calls and CPU per call (INFO commandstats).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prescient::admission::{Admission, AdmissionConfig};
use prescient::clock::{Clock, SystemClock};
use prescient::cluster::member::{Member, MemberConfig, OnStoreLoss};
use prescient::cluster::redis::{RedisStore, RedisType};
use prescient::cluster::{begin, finish};
use prescient::planner::Wants;
use prescient::policy::Policy;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url: String = arg(1, "redis://127.0.0.1:6390".to_string());
    let (tenants, resources, instances, ticks) = (
        arg(2, 1000usize),
        arg(3, 2usize),
        arg(4, 3usize),
        arg(5, 300usize),
    );
    let mut yaml = String::from("resources:\n");
    for r in 0..resources {
        yaml.push_str(&format!("  r{r}: {{ kind: rate, capacity: 10000000 }}\n"));
    }
    yaml.push_str("tenants:\n");
    for t in 0..tenants {
        yaml.push_str(&format!("  t{t}: {{ qos: silver, limits: {{ "));
        for r in 0..resources {
            yaml.push_str(&format!("r{r}: {{ guaranteed: 100 }}, "));
        }
        yaml.push_str("} }\n");
    }
    let policy = Policy::load_str(&yaml, "lease_load")?;
    let kind = match arg(6, "single".to_string()).as_str() {
        "cluster" => RedisType::Cluster,
        _ => RedisType::Single,
    };
    let store = RedisStore::open(kind, &url, Duration::from_secs(2))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut daemons: Vec<(Member, Arc<Admission>, BTreeMap<String, Wants>)> = (0..instances)
        .map(|k| {
            let core = Arc::new(Admission::new(
                &policy,
                AdmissionConfig::default(),
                clock.clone(),
            ));
            let config = MemberConfig {
                id: format!("load-{k}/{}", std::process::id()).into(),
                lease_ttl: Duration::from_secs(3),
                on_store_loss: OnStoreLoss::Hold,
                safe_share: 0.0,
            };
            let (member, _) = Member::new(config, &policy);
            let wants = (0..resources)
                .map(|r| {
                    let tenants = (0..tenants)
                        .map(|t| {
                            let d = ((t * 7 + k * 13) % 50) as f64 * 10.0 + 0.123;
                            (format!("t{t}"), [d * 1.2, d])
                        })
                        .collect();
                    (
                        format!("r{r}"),
                        Wants {
                            tenants,
                            ..Wants::default()
                        },
                    )
                })
                .collect();
            (member, core, wants)
        })
        .collect();
    let mut latencies = Vec::new();
    let mut reply_bytes = 0;
    for _ in 0..ticks {
        for (member, core, wants) in &mut daemons {
            let now = clock.now();
            let asks = begin(member, wants, core, now);
            let started = Instant::now();
            let replies = store.exchange(&asks).await;
            latencies.push(started.elapsed());
            if let Ok(r) = &replies {
                reply_bytes = r[0].wants.iter().map(|(m, w)| m.len() + w.len()).sum();
            }
            finish(member, core, &asks, replies, now, clock.now())?;
        }
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{instances} instances x {resources} resources x {tenants} tenants, {ticks} ticks: \
         exchange p50 {:?}, p99 {:?}, max {:?}; one resource's reply {} KiB",
        at(0.5),
        at(0.99),
        at(1.0),
        reply_bytes / 1024
    );
    let first = url.split(',').next().unwrap_or_default();
    let client = redis::Client::open(first)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await?;
    for line in stats.lines().filter(|l| l.contains("evalsha")) {
        println!("redis {line}");
    }
    let how = match kind {
        RedisType::Single => "in one pipeline",
        RedisType::Cluster => "each to its node, all in flight at once",
    };
    println!("Redis calls per instance per tick: {resources} script calls {how} (one round trip)");
    Ok(())
}
