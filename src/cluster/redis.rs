//! The lease store on Redis (or Valkey), one server or a Redis Cluster:
//! each [`Ask`] is one call of `lease.lua`, atomic on the server and timed
//! by the server's clock. On one server a tick's calls for every resource
//! go out as one pipeline; on a cluster each goes to the node that owns
//! its resource's hash slot, all of them in flight at once.
//! [`LeaseScript`] is the script's calling convention, shared with the tests
//! that run it elsewhere; [`RedisStore`] sends it.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ServerErrorKind, Value};
use tokio::sync::OnceCell;

use super::store::{Ask, AskError, Reply};

/// What an exchange with the store could not do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configured URL cannot be used (the URL itself is not repeated:
    /// it may hold a password).
    #[error("cluster.redis_url: {0}")]
    Url(redis::RedisError),
    /// An ask was refused before anything was sent.
    #[error(transparent)]
    Ask(#[from] AskError),
    /// Redis did not answer the whole exchange within the timeout.
    #[error("lease store: no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting to Redis, or the pipeline itself, failed.
    #[error("lease store: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered one resource's call with an error or a reply the
    /// script does not give.
    #[error("lease store: resource {resource:?}: {reason}")]
    Reply { resource: String, reason: String },
}

/// What `cluster.redis_url` points at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisType {
    /// One Redis or Valkey server (behind a Service, or a Sentinel-managed
    /// primary's address).
    #[default]
    Single,
    /// A Redis (or Valkey) Cluster: the URL lists one or more of its nodes,
    /// comma-separated; the rest are discovered.
    Cluster,
}

/// The namespace of the lease keys unless `cluster.namespace` says
/// otherwise.
pub const DEFAULT_NAMESPACE: &str = "prescient";

/// `lease.lua` and how it is called: keys, arguments, reply.
pub struct LeaseScript;

impl LeaseScript {
    /// The script's text.
    pub const SOURCE: &'static str = include_str!("lease.lua");

    /// The resource's two hashes in the default namespace (see
    /// [`LeaseScript::keys_in`]).
    pub fn keys(resource: &str) -> [String; 2] {
        Self::keys_in(DEFAULT_NAMESPACE, resource)
    }

    /// The resource's two hashes. Both carry the hash tag
    /// `{<namespace>:<resource>}`, so a Redis Cluster would keep them in
    /// one slot; daemons share a capacity only within one namespace.
    pub fn keys_in(namespace: &str, resource: &str) -> [String; 2] {
        [
            format!("{{{namespace}:{resource}}}:leases"),
            format!("{{{namespace}:{resource}}}:wants"),
        ]
    }

    /// `ARGV`: member, capacity, target, in_force, ttl_ms, wants.
    pub fn args(ask: &Ask) -> [String; 6] {
        [
            ask.member.to_string(),
            ask.capacity.to_string(),
            ask.target.to_string(),
            ask.in_force.to_string(),
            ask.ttl_ms().to_string(),
            ask.wants.clone(),
        ]
    }

    /// Reads the script's answer for `resource`: `{grant, now_ms, others,
    /// member, wants, …}`. Redis returns hash fields in no set order; the
    /// wants come back sorted by member, as [`super::store::MemoryStore`]
    /// gives them.
    pub fn reply(resource: &str, value: Value) -> Result<Reply, StoreError> {
        let fail = |reason: String| StoreError::Reply {
            resource: resource.to_string(),
            reason,
        };
        let items = match value {
            Value::Array(items) if items.len() >= 3 && items.len() % 2 == 1 => items,
            Value::ServerError(error) => return Err(fail(error.to_string())),
            other => return Err(fail(format!("not the script's reply: {other:?}"))),
        };
        let mut items = items.into_iter();
        let mut number = |name: &str| match items.next() {
            Some(Value::Int(n)) => u64::try_from(n).map_err(|_| fail(format!("{name} is {n}"))),
            other => Err(fail(format!("{name} is not an integer: {other:?}"))),
        };
        let (grant, now_ms, others) = (number("grant")?, number("now_ms")?, number("others")?);
        let text = |name: &str, value: Value| match value {
            Value::BulkString(bytes) => {
                String::from_utf8(bytes).map_err(|_| fail(format!("a {name} is not UTF-8")))
            }
            other => Err(fail(format!("a {name} is not a string: {other:?}"))),
        };
        let mut wants = Vec::with_capacity(items.len() / 2);
        while let (Some(member), Some(blob)) = (items.next(), items.next()) {
            wants.push((text("member", member)?, text("wants", blob)?));
        }
        wants.sort_unstable();
        Ok(Reply {
            grant,
            now_ms,
            wants,
            others,
        })
    }
}

/// The lease store on Redis (or Valkey). Cheap to share: one multiplexed
/// connection (per node, on a cluster), opened on first use and reopened
/// after a loss.
pub struct RedisStore {
    server: Server,
    script: redis::Script,
    timeout: Duration,
    namespace: String,
}

/// Where the leases live, and the connection to it, created on the first
/// exchange (it needs the tokio runtime).
enum Server {
    /// Connects lazily and reconnects by itself.
    Single(redis::Client, OnceCell<ConnectionManager>),
    /// Learns the slot map from the nodes given and follows MOVED; a
    /// connection that fails is made again by the next exchange.
    Cluster(Box<ClusterClient>, OnceCell<ClusterConnection>),
}

impl RedisStore {
    /// A store on one server at `url` (`redis://`, `valkey://`, `unix://`),
    /// each exchange bounded by `timeout`. Connects nothing yet: a Redis
    /// that cannot be reached now is no error (exchanges fail and retry); a
    /// URL that cannot be used is one, naming `cluster.redis_url`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        Self::open(RedisType::Single, url, timeout)
    }

    /// A store of `kind` at `url`: one server's URL, or for a cluster one
    /// or more of its nodes' URLs, comma-separated.
    pub fn open(kind: RedisType, url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let server = match kind {
            RedisType::Single => {
                if url.contains(',') {
                    return Err(StoreError::Url(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "several URLs are for a Redis Cluster (cluster.redis_type: cluster)",
                    ))));
                }
                Server::Single(
                    redis::Client::open(url).map_err(StoreError::Url)?,
                    OnceCell::new(),
                )
            }
            RedisType::Cluster => {
                let nodes = url
                    .split(',')
                    .map(str::trim)
                    .map(redis::IntoConnectionInfo::into_connection_info)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::Url)?;
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // Enough to follow a MOVED or two while slots migrate;
                    // the exchange's own timeout bounds the rest.
                    .retries(2)
                    .build()
                    .map_err(StoreError::Url)?;
                Server::Cluster(Box::new(client), OnceCell::new())
            }
        };
        Ok(Self {
            server,
            script: redis::Script::new(LeaseScript::SOURCE),
            timeout,
            namespace: DEFAULT_NAMESPACE.into(),
        })
    }

    /// Keeps this store's leases apart from other deployments' on the
    /// same Redis (`cluster.namespace`).
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sends every ask (one per resource), each as one script call, and
    /// returns the replies in the same order. Bad asks are refused before
    /// anything is sent. Fails whole after `timeout`; asks the store had
    /// already answered then stay recorded, which is safe: a lease is
    /// stored as at least what its holder enforces.
    pub async fn exchange(&self, asks: &[Ask]) -> Result<Vec<Reply>, StoreError> {
        for ask in asks {
            ask.validate()?;
        }
        if asks.is_empty() {
            return Ok(Vec::new());
        }
        let values = tokio::time::timeout(self.timeout, self.send(asks))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))??;
        if values.len() != asks.len() {
            return Err(StoreError::Reply {
                resource: asks[0].resource.to_string(),
                reason: format!("{} replies to {} calls", values.len(), asks.len()),
            });
        }
        asks.iter()
            .zip(values)
            .map(|(ask, value)| LeaseScript::reply(&ask.resource, value))
            .collect()
    }

    /// The script's raw answers, in the order of `asks`.
    async fn send(&self, asks: &[Ask]) -> Result<Vec<Value>, StoreError> {
        match &self.server {
            Server::Single(client, cell) => {
                let mut connection = cell
                    .get_or_try_init(|| async {
                        let timeout = Some(self.timeout);
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(timeout)
                            .set_response_timeout(timeout)
                            // One connection attempt per exchange: an
                            // unreachable Redis fails the exchange at once,
                            // and the next exchange tries again, instead of
                            // each one waiting out the timeout in backoff.
                            .set_number_of_retries(0);
                        ConnectionManager::new_lazy_with_config(client.clone(), config)
                    })
                    .await?
                    .clone();
                self.pipelined(asks, &mut connection).await
            }
            Server::Cluster(client, cell) => {
                let mut connection = cell
                    .get_or_try_init(|| client.get_async_connection())
                    .await?
                    .clone();
                self.fanned_out(asks, &mut connection).await
            }
        }
    }

    /// One server: every call in one pipeline.
    async fn pipelined(
        &self,
        asks: &[Ask],
        connection: &mut ConnectionManager,
    ) -> Result<Vec<Value>, StoreError> {
        let mut pipe = redis::pipe();
        for ask in asks {
            pipe.add_command(self.call(ask));
        }
        let mut values: Vec<Value> = pipe.ignore_errors().query_async(connection).await?;
        // A Redis that restarted (or ran SCRIPT FLUSH) lost the script: load
        // it and send again only the calls that did not run.
        let missing = lost_script(&values);
        if !missing.is_empty() {
            let mut retry = redis::pipe();
            retry
                .cmd("SCRIPT")
                .arg("LOAD")
                .arg(LeaseScript::SOURCE)
                .ignore();
            for &i in &missing {
                retry.add_command(self.call(&asks[i]));
            }
            let again: Vec<Value> = retry.ignore_errors().query_async(connection).await?;
            for (i, value) in missing.into_iter().zip(again) {
                values[i] = value;
            }
        }
        Ok(values)
    }

    /// A cluster: a pipeline may only hold one slot's keys, and each
    /// resource is a slot of its own, so each call goes alone to its
    /// resource's node, all of them at once over the nodes' multiplexed
    /// connections (one round trip, as a pipeline).
    async fn fanned_out(
        &self,
        asks: &[Ask],
        connection: &mut ClusterConnection,
    ) -> Result<Vec<Value>, StoreError> {
        let mut values = self.all_at_once(asks.iter(), connection).await?;
        // A node that restarted, failed over or ran SCRIPT FLUSH lost the
        // script: load it on every primary (the cluster client routes
        // SCRIPT LOAD to all of them) and send again the calls that did
        // not run.
        let missing = lost_script(&values);
        if !missing.is_empty() {
            let _: Value = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(LeaseScript::SOURCE)
                .query_async(connection)
                .await?;
            let again = self
                .all_at_once(missing.iter().map(|&i| &asks[i]), connection)
                .await?;
            for (i, value) in missing.into_iter().zip(again) {
                values[i] = value;
            }
        }
        Ok(values)
    }

    /// Each ask's call on its own, all in flight at once; the answers in
    /// the order of `asks`.
    async fn all_at_once<'a>(
        &self,
        asks: impl Iterator<Item = &'a Ask>,
        connection: &ClusterConnection,
    ) -> Result<Vec<Value>, StoreError> {
        let calls = asks.map(|ask| {
            let mut connection = connection.clone();
            let call = self.call(ask);
            async move { answer(call.query_async::<Value>(&mut connection).await) }
        });
        futures_util::future::try_join_all(calls).await
    }

    /// `EVALSHA <sha> 2 <leases> <wants> <argv…>` for one ask.
    fn call(&self, ask: &Ask) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash())
            .arg(2)
            .arg(&LeaseScript::keys_in(&self.namespace, &ask.resource))
            .arg(&LeaseScript::args(ask));
        cmd
    }
}

/// One call's outcome as a pipeline gives it: the server's refusal of that
/// call is its value (read by [`LeaseScript::reply`], or retried if it is
/// NOSCRIPT); only a failure of the connection fails the exchange.
fn answer(result: redis::RedisResult<Value>) -> Result<Value, StoreError> {
    match result {
        Ok(value) => Ok(value),
        Err(error) => match error.try_into() {
            Ok(server) => Ok(Value::ServerError(server)),
            Err(error) => Err(StoreError::Redis(error)),
        },
    }
}

/// The calls a server answered NOSCRIPT: it lost the script.
fn lost_script(values: &[Value]) -> Vec<usize> {
    let noscript = |value: &Value| matches!(value, Value::ServerError(error) if error.kind() == Some(ServerErrorKind::NoScript));
    (0..values.len())
        .filter(|&i| noscript(&values[i]))
        .collect()
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
