//! Request builders: one spelling of each message the tests send, so a
//! test reads as what it asks for.

use std::time::Duration;

use prescient::proto::{AcquireRequest, ReleaseRequest, ReportEntry, ReportRequest};

/// An Acquire of `amount` of `resource` for `tenant`, answered at once and
/// without a lease unless the resource is a concurrency one.
pub fn acquire(tenant: &str, resource: &str, amount: u64) -> AcquireRequest {
    AcquireRequest {
        tenant: tenant.into(),
        resource: resource.into(),
        amount,
        ..Default::default()
    }
}

/// The options of an Acquire, as builder steps on [`acquire`]'s request.
pub trait AcquireExt {
    /// Asks for a lease on a rate grant too (to Report against it).
    fn leased(self) -> Self;
    /// Waits up to `max_wait` in the queue instead of a denial.
    fn waiting(self, max_wait: Duration) -> Self;
}

impl AcquireExt for AcquireRequest {
    fn leased(mut self) -> Self {
        self.lease = true;
        self
    }

    fn waiting(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(duration(max_wait));
        self
    }
}

/// A Release of `lease_id`.
pub fn release(lease_id: &str) -> ReleaseRequest {
    ReleaseRequest {
        lease_id: lease_id.into(),
    }
}

/// A Report of `used` tokens against `lease_id`, which `tenant` holds on
/// `resource`.
pub fn used(tenant: &str, resource: &str, lease_id: &str, used: u64) -> ReportEntry {
    ReportEntry {
        tenant: tenant.into(),
        resource: resource.into(),
        lease_id: lease_id.into(),
        used,
        ..Default::default()
    }
}

/// A Report of `used` against `lease_id` alone (the lease's own tenant and
/// resource).
pub fn used_by_lease(lease_id: &str, used: u64) -> ReportEntry {
    ReportEntry {
        lease_id: lease_id.into(),
        used,
        ..Default::default()
    }
}

/// A Report request of `entries`.
pub fn report(entries: Vec<ReportEntry>) -> ReportRequest {
    ReportRequest { entries }
}

/// `d` on the wire.
pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}
