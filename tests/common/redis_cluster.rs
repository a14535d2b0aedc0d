//! A real Redis Cluster for the lease-store tests: `n` redis-servers with
//! `cluster-enabled`, each on a free loopback port (and a free cluster-bus
//! port), joined and given the 16384 slots by `redis-cli --cluster create`
//! (Debian's `redis-tools`, installed with `redis-server` by
//! `scripts/install-redis`), and answered `cluster_state:ok` by every node
//! before use. Killed on drop.

use std::process::Command;
use std::time::{Duration, Instant};

use super::redis::{Redis, cli, free_port};

/// How long the nodes may take to agree on the slot map.
const FORM: Duration = Duration::from_secs(30);

pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    /// `n` primaries (no replicas), the slots split evenly between them.
    pub fn start(n: usize) -> Self {
        let nodes: Vec<Redis> = (0..n).map(|_| node()).collect();
        let mut create = Command::new(cli());
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + FORM;
        while !cluster.nodes.iter().all(|n| cluster_ok(n.port())) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not form within {FORM:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// One node's URL: enough for a cluster client, which discovers the
    /// rest.
    pub fn seed(&self) -> String {
        self.nodes[0].url()
    }

    /// Keys held by each node, in node order.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| cli_on(n.port(), &["DBSIZE"]).trim().parse().unwrap())
            .collect()
    }

    /// Runs `args` on every node (e.g. `SCRIPT FLUSH`).
    pub fn on_every_node(&self, args: &[&str]) {
        for n in &self.nodes {
            cli_on(n.port(), args);
        }
    }
}

/// One cluster node, retried on another pair of ports if one was taken.
fn node() -> Redis {
    for _ in 0..5 {
        let (port, bus) = (free_port(), free_port());
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &bus.to_string(),
            "--cluster-node-timeout",
            "5000",
        ]
        .map(String::from);
        if let Some(node) = Redis::try_start_with(port, &args) {
            return node;
        }
    }
    panic!("no cluster node started on any of 5 pairs of free ports");
}

fn cluster_ok(port: u16) -> bool {
    cli_on(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
}

/// `redis-cli -p <port> <args>`'s output.
fn cli_on(port: u16, args: &[&str]) -> String {
    let out = Command::new(cli())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
