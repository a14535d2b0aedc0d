//! Admission: Acquire, Release and Report over the pools (DESIGN §3-4).
//! The core of the daemon; it knows policies, pools and time, and nothing of
//! gRPC. Every call takes `now` from the injected [`Clock`].

// Bottom up, each file uses only files before it in this order (no
// cycles): error, api, counters, qos, share → allotment → loan, tenant,
// lease, queue → listed, resource → registry, requests → in_force → take →
// facade (the `Admission` struct) → acquire, dispatch, release, report,
// reload, sharing (its calls). This file only declares and re-exports.
mod acquire;
mod allotment;
mod api;
mod counters;
mod dispatch;
mod error;
mod facade;
mod in_force;
mod lease;
mod listed;
mod loan;
mod qos;
mod queue;
mod registry;
mod release;
mod reload;
mod report;
mod requests;
mod resource;
mod share;
mod sharing;
mod take;
mod tenant;

pub use acquire::{Admit, Pending};
pub use allotment::{Allotment, Holdings};
pub use api::{AcquireRequest, Decision, Denial, Grant, Released};
pub use counters::{Counters, Demand};
pub use error::AdmissionError;
pub use facade::{Admission, AdmissionConfig};
pub use lease::{LeaseId, Leases};
pub use qos::Qos;
pub use registry::Registry;
pub use reload::Reloaded;
pub use report::{Outcome, ReportEntry, ReportSummary};
pub use resource::Resource;
pub use share::Share;
pub use sharing::Applied;
pub use take::{Scope, seconds_to_gather};
pub use tenant::{Tenant, TenantRef};

#[cfg(test)]
mod tests;
