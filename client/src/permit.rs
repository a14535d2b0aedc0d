//! A grant held by the caller: its lease goes back to the daemon when the
//! permit is released, reported, or dropped.

use tokio::time::Instant;

use crate::client::wire;
use crate::proto::{self, AcquireResponse};
use crate::{Client, Demand, Error};

/// A granted Acquire. For a concurrency resource (and a rate resource
/// acquired with [`Demand::estimate`]) it holds a lease, which
/// [`release`](Permit::release), [`report`](Permit::report) or dropping the
/// permit gives back (on drop, by a Release spawned on the client's
/// runtime; if that fails, the daemon reclaims the lease at its TTL).
/// [`forget`](Permit::forget) keeps the lease held.
#[derive(Debug)]
#[must_use = "dropping a Permit releases its lease at once"]
pub struct Permit {
    client: Client,
    demand: Demand,
    request_id: String,
    lease_id: Option<String>,
    paid: Paid,
    remaining: u64,
    granted_at: Instant,
}

/// Which pools paid for a grant (they add up to the amount).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paid {
    pub reserve: u64,
    pub guaranteed: u64,
    pub shared: u64,
    pub emergency: u64,
}

/// What a Release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Units returned to the pools (0 for a rate lease, or when already
    /// released).
    pub units: u64,
    /// The lease had already been released, settled or reclaimed.
    pub already_released: bool,
}

/// How the work behind a permit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Cancelled,
}

impl From<Outcome> for proto::Outcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Success => Self::Success,
            Outcome::Failure => Self::Failure,
            Outcome::Cancelled => Self::Cancelled,
        }
    }
}

impl Permit {
    pub(crate) fn new(
        client: Client,
        demand: Demand,
        request_id: String,
        r: AcquireResponse,
        granted_at: Instant,
    ) -> Self {
        Self {
            client,
            demand,
            request_id,
            lease_id: Some(r.lease_id).filter(|l| !l.is_empty()),
            paid: Paid {
                reserve: r.from_reserve,
                guaranteed: r.from_guaranteed,
                shared: r.from_shared,
                emergency: r.from_emergency,
            },
            remaining: r.remaining,
            granted_at,
        }
    }

    pub fn tenant(&self) -> &str {
        &self.demand.tenant
    }

    pub fn resource(&self) -> &str {
        &self.demand.resource
    }

    /// The amount granted.
    pub fn amount(&self) -> u64 {
        self.demand.amount
    }

    /// The lease this permit holds, if any.
    pub fn lease_id(&self) -> Option<&str> {
        self.lease_id.as_deref()
    }

    /// The idempotency key every attempt of the Acquire carried.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn paid(&self) -> Paid {
        self.paid
    }

    /// What the tenant could still take of this resource when granted.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Gives the lease back now, and says what the daemon did. A permit
    /// without a lease has nothing to give back.
    pub async fn release(mut self) -> Result<Released, Error> {
        match self.lease_id.take() {
            Some(lease) => self.client.release(&lease).await,
            None => Ok(Released {
                units: 0,
                already_released: false,
            }),
        }
    }

    /// Reports what the work used (for an estimate, the daemon refunds or
    /// charges the difference) and how it ended, with the time held; then
    /// gives the lease back. Hold times and sizes feed the daemon's
    /// forecasts.
    pub async fn report(mut self, used: u64, outcome: Outcome) -> Result<(), Error> {
        let lease = self.lease_id.take();
        let entry = proto::ReportEntry {
            tenant: self.demand.tenant.clone(),
            resource: self.demand.resource.clone(),
            lease_id: lease.clone().unwrap_or_default(),
            used,
            duration: Some(wire(self.granted_at.elapsed())),
            outcome: proto::Outcome::from(outcome).into(),
        };
        let reported = self.client.report(vec![entry]).await;
        // A Report settles a rate lease but not a concurrency one; Release
        // is idempotent, so it ends either.
        if let Some(lease) = lease {
            let released = self.client.release(&lease).await;
            reported?;
            released?;
            return Ok(());
        }
        reported.map(drop)
    }

    /// Keeps the lease held past the permit (the daemon reclaims it at its
    /// TTL unless released by id); returns its id.
    pub fn forget(mut self) -> Option<String> {
        self.lease_id.take()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(lease) = self.lease_id.take() {
            let client = self.client.clone();
            // A runtime that is shutting down drops the task: the TTL
            // reclaims the lease then.
            self.client.runtime().spawn(async move {
                let _ = client.release(&lease).await;
            });
        }
    }
}
