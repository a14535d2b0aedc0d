//! The daemon joining the others that share its capacities: the lease
//! store it talks to, its member state put in force at start (the safe
//! share), the task carrying its exchanges, and how it hands its leases
//! back when it stops.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::planner_thread::{ClusterLink, PlannerCall};
use super::store_task;
use crate::admission::Admission;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::settings::Settings;
use crate::supervisor::Supervisor;

/// Joins the daemons sharing capacity through the lease store: holds the
/// safe share until the first lease, and starts the task that talks to the
/// store. An unreachable store is not an error (it is retried every tick);
/// a malformed `cluster.redis_url` is.
#[allow(clippy::too_many_arguments)]
pub(super) fn join_cluster(
    settings: &Settings,
    config: crate::cluster::member::MemberConfig,
    policy: &Policy,
    core: &Arc<Admission>,
    metrics: &Arc<Metrics>,
    tasks: &mut Supervisor,
    to_planner: std::sync::mpsc::Sender<PlannerCall>,
    cancel: CancellationToken,
) -> anyhow::Result<ClusterLink> {
    let store = crate::cluster::redis::RedisStore::open(
        settings.cluster.redis_type,
        &settings.cluster.redis_url,
        settings.cluster.store_timeout,
    )?
    .with_namespace(&settings.cluster.namespace);
    let id = config.id.clone();
    let (member, applies) = crate::cluster::member::Member::new(config, policy);
    crate::cluster::put_in_force(core, applies, core.clock().now());
    let (to_store, asks) = tokio::sync::mpsc::channel(1);
    let store = Arc::new(store);
    let exchange = move |asks: Vec<crate::cluster::store::Ask>| {
        let store = store.clone();
        async move { store.exchange(&asks).await.map_err(|e| e.to_string()) }
    };
    // Leaving: no grant from here on, and nothing held but the units of
    // concurrency leases still out (they stay counted until they expire).
    let closing = core.clone();
    let leave = move |last: Vec<crate::cluster::store::Ask>| {
        closing.close();
        let registry = closing.registry();
        let leaving = serde_json::to_string(&crate::planner::Wants {
            leaving: true,
            ..Default::default()
        })
        .unwrap_or_default();
        last.into_iter()
            .map(|mut ask| {
                let held = registry.resource(&ask.resource).map_or(0, |r| r.held());
                ask.target = held;
                ask.in_force = held;
                ask.wants = leaving.clone();
                ask
            })
            .collect()
    };
    tasks.spawn(
        "lease store",
        store_task::run(exchange, leave, asks, to_planner, cancel),
    );
    tracing::info!(member = %id, lease_ttl = ?settings.cluster.lease_ttl, "sharing capacity through the lease store");
    Ok(ClusterLink {
        member,
        core: core.clone(),
        to_store,
        metrics: metrics.clone(),
        failing: false,
    })
}
