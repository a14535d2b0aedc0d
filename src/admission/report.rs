//! Report: what finished work actually used. A rate grant taken with a lease
//! is settled: the difference between acquired and used goes back to the
//! pools that paid (borrowed tiers first) or is charged as debt. Durations
//! feed the hold-time estimate. A bad entry is rejected with a reason and
//! changes nothing; it never fails the call.

use std::time::Duration;

use super::error::AdmissionError;
use super::facade::{Admission, allotment, parse_lease};
use super::lease::Entry;
use std::sync::atomic::Ordering;

use super::allotment::Allotment;
use crate::clock::{Nanos, duration_to_nanos};
use crate::policy::Kind;
use crate::pool::{Pool, Tier};

/// How the reported work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Unspecified,
    Success,
    Failure,
    Cancelled,
}

/// One reported piece of work (borrowed from the request).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportEntry<'a> {
    pub tenant: &'a str,
    pub resource: &'a str,
    pub lease_id: Option<&'a str>,
    pub used: u64,
    pub duration: Option<Duration>,
    pub outcome: Outcome,
}

/// What a Report did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportSummary {
    pub accepted: u32,
    pub rejected: u32,
    /// Per rejected entry: its index and `field: reason`.
    pub errors: Vec<(usize, String)>,
}

impl Admission {
    /// Applies every entry it can; rejects the rest with a reason each.
    pub fn report(&self, entries: &[ReportEntry<'_>]) -> ReportSummary {
        let mut summary = ReportSummary::default();
        for (i, entry) in entries.iter().enumerate() {
            match self.report_one(entry) {
                Ok(()) => summary.accepted += 1,
                Err(e) => {
                    summary.rejected += 1;
                    summary.errors.push((i, e.to_string()));
                }
            }
        }
        summary
    }

    fn report_one(&self, entry: &ReportEntry<'_>) -> Result<(), AdmissionError> {
        let now = self.clock.now();
        let registry = self.registry.load();
        let Some(lease_text) = entry.lease_id.filter(|s| !s.is_empty()) else {
            // No grant to settle: history only.
            let (tenant, resource) = Self::resolve(&registry, entry.tenant, entry.resource, now)?;
            self.observe_work(&tenant, resource, hold(entry), Some(entry.used));
            return Ok(());
        };
        let id = parse_lease(lease_text, "lease_id")?;
        let lease = match self.leases.get(id) {
            Some(Entry::Held(lease)) => lease,
            // A concurrency lease reported after its Release is normal; a
            // rate lease is settled once only (checked below).
            Some(Entry::Gone { lease, .. }) => lease,
            None => {
                return Err(AdmissionError::NotFound(format!(
                    "lease_id: unknown lease {lease_text:?}"
                )));
            }
        };
        let resource = &registry.resources[lease.resource];
        if (!entry.tenant.is_empty() && entry.tenant != &*lease.tenant.name)
            || (!entry.resource.is_empty() && entry.resource != &*resource.name)
        {
            return Err(AdmissionError::InvalidArgument(format!(
                "lease_id: lease {lease_text:?} belongs to tenant {:?} on {:?}, not {:?} on {:?}",
                lease.tenant.name,
                resource.name,
                crate::echo::Echo(entry.tenant),
                crate::echo::Echo(entry.resource)
            )));
        }
        match resource.kind {
            Kind::Concurrency => {
                // The hold time is measured at Release (or lost to TTL);
                // a Report adds the size.
                self.observe_work(&lease.tenant, resource, None, Some(entry.used));
                Ok(())
            }
            Kind::Rate => {
                // End the lease first: if another Report raced us, it wins.
                let Some(lease) = self.end_lease(&registry, id, now) else {
                    return Err(AdmissionError::InvalidArgument(format!(
                        "lease_id: lease {lease_text:?} was already settled or released"
                    )));
                };
                self.observe_work(&lease.tenant, resource, hold(entry), Some(entry.used));
                let a = allotment(&lease.tenant, resource);
                let acquired = lease.split.total();
                if entry.used < acquired {
                    // Refund borrowed tiers first: they are the scarcest.
                    let mut refund = acquired - entry.used;
                    for tier in [
                        Tier::Emergency,
                        Tier::Shared,
                        Tier::Guaranteed,
                        Tier::Reserve,
                    ] {
                        let back = refund.min(lease.split.get(tier));
                        resource.pool(a, tier).put_back(back, now);
                        refund -= back;
                    }
                    resource.waiters.wake();
                } else if entry.used > acquired {
                    self.charge_overuse(a, entry.used - acquired, now);
                }
                Ok(())
            }
        }
    }

    /// Work that used more than it acquired is owed by the reporting
    /// tenant's own guaranteed bucket, at most `max_report_debt` of its
    /// refill, and never by a pool other tenants draw on: one tenant's
    /// Report cannot deny another tenant anything. Overuse beyond the bound,
    /// or by a tenant with no guaranteed rate, is counted, not charged.
    fn charge_overuse(&self, a: &Allotment, over: u64, now: Nanos) {
        let charged = match &a.holdings.guaranteed {
            Pool::Rate(bucket) => {
                let window = self.config.max_report_debt.as_secs_f64();
                // f64 → u64 saturates.
                let max_debt = (bucket.rate() * window) as u64;
                bucket.charge(over, max_debt, now)
            }
            Pool::Concurrency(_) => 0,
        };
        self.uncharged
            .fetch_add(over.saturating_sub(charged), Ordering::Relaxed);
    }
}

fn hold(entry: &ReportEntry<'_>) -> Option<u64> {
    entry.duration.map(duration_to_nanos)
}
