//! Metrics of this daemon's leases when many daemons share capacity
//! (docs/distributed.md), fed by the planner thread after each exchange.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::OfResource;
use crate::clock::{NANOS_PER_SEC, Nanos};
use crate::cluster::member::LeaseView;

#[derive(Default)]
pub struct ClusterMetrics {
    /// The resource's capacity in the policy: what every daemon's lease is
    /// a share of (the line their stacked leases stay under).
    pub capacity: Family<OfResource, Gauge>,
    /// Capacity this daemon enforces under its lease.
    pub lease_capacity: Family<OfResource, Gauge>,
    /// Capacity it asked for (its target).
    pub lease_target: Family<OfResource, Gauge>,
    /// Σ of the other live daemons' leases, as of the last reply.
    pub others: Family<OfResource, Gauge>,
    /// Live daemons sharing the resource, this one included.
    pub instances: Family<OfResource, Gauge>,
    /// Seconds until the lease runs out without a renewal (negative: lost).
    pub expiry: Family<OfResource, Gauge<f64, AtomicU64>>,
    /// 1 while the lease is valid, 0 once it ran out (store lost).
    pub valid: Family<OfResource, Gauge>,
    /// Exchanges with the store that failed.
    pub store_errors: Counter,
}

impl ClusterMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cluster_capacity",
            "The resource's capacity in the policy, which the leases of all daemons share",
            self.capacity.clone(),
        );
        registry.register(
            "cluster_lease_capacity",
            "Capacity this daemon enforces under its lease (tokens/s or units)",
            self.lease_capacity.clone(),
        );
        registry.register(
            "cluster_lease_target",
            "Capacity this daemon asked the lease store for",
            self.lease_target.clone(),
        );
        registry.register(
            "cluster_others_capacity",
            "Capacity the other live daemons hold, as of the last reply",
            self.others.clone(),
        );
        registry.register(
            "cluster_instances",
            "Live daemons sharing the resource, this one included",
            self.instances.clone(),
        );
        registry.register(
            "cluster_lease_expiry_seconds",
            "Seconds until the lease runs out without a renewal (negative once lost)",
            self.expiry.clone(),
        );
        registry.register(
            "cluster_lease_valid",
            "1 while the lease is renewed, 0 once it ran out with no answer from the store",
            self.valid.clone(),
        );
        registry.register(
            "cluster_store_errors",
            "Exchanges with the lease store that failed",
            self.store_errors.clone(),
        );
    }

    /// Records every lease as it stands at `now`.
    pub fn leases(&self, leases: &[LeaseView], now: Nanos) {
        for l in leases {
            let label = OfResource {
                resource: l.resource.clone(),
            };
            self.capacity.get_or_create(&label).set(l.capacity as i64);
            self.lease_capacity
                .get_or_create(&label)
                .set(l.in_force as i64);
            self.lease_target.get_or_create(&label).set(l.target as i64);
            self.others.get_or_create(&label).set(l.others_held as i64);
            self.instances.get_or_create(&label).set(l.instances as i64);
            let left = l
                .expires
                .map_or(0.0, |e| (e as f64 - now as f64) / NANOS_PER_SEC as f64);
            self.expiry.get_or_create(&label).set(left);
            self.valid.get_or_create(&label).set(i64::from(!l.lost));
        }
    }
}
