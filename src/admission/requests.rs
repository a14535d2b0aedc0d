//! Idempotent retries: the first grant for a (tenant, request_id) is
//! remembered for a bounded window, and a retry gets the same grant instead
//! of paying twice. Denials are not remembered: a retry after one is a new
//! attempt. Concurrent retries wait for the first attempt to finish.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use foldhash::fast::RandomState;
use tokio::sync::OnceCell;

use super::api::{Decision, Grant};
use super::error::AdmissionError;
use super::resource::Resource;
use super::tenant::Tenant;
use crate::clock::{Nanos, duration_to_nanos};

/// One request id's record.
pub struct Slot {
    created: Nanos,
    resource: usize,
    amount: u64,
    grant: OnceCell<Grant>,
}

enum Attempt {
    Denied(Decision),
    Failed(AdmissionError),
}

impl Slot {
    /// Runs `attempt` unless a grant is already recorded, then answers with
    /// the recorded grant.
    pub async fn run<F, Fut>(&self, attempt: F) -> Result<Decision, AdmissionError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Decision, AdmissionError>>,
    {
        let result = self
            .grant
            .get_or_try_init(|| async {
                match attempt().await {
                    Ok(Decision::Granted(g)) => Ok(g),
                    Ok(denied) => Err(Attempt::Denied(denied)),
                    Err(e) => Err(Attempt::Failed(e)),
                }
            })
            .await;
        match result {
            Ok(grant) => Ok(Decision::Granted(grant.clone())),
            Err(Attempt::Denied(d)) => Ok(d),
            Err(Attempt::Failed(e)) => Err(e),
        }
    }
}

/// The window of remembered request ids.
pub struct RequestLog {
    slots: DashMap<(u64, Box<str>), Arc<Slot>, RandomState>,
    window: Nanos,
    max: usize,
}

impl RequestLog {
    pub fn new(window: Duration, max: usize) -> Self {
        Self {
            slots: DashMap::with_hasher(RandomState::default()),
            window: duration_to_nanos(window),
            max,
        }
    }

    /// The record for this request id, new or remembered. A remembered id
    /// must describe the same request.
    pub fn slot(
        &self,
        tenant: &Tenant,
        request_id: &str,
        resource: &Resource,
        amount: u64,
        now: Nanos,
    ) -> Result<Arc<Slot>, AdmissionError> {
        if request_id.len() > 256 {
            return Err(AdmissionError::InvalidArgument(format!(
                "request_id: {} bytes, at most 256",
                request_id.len()
            )));
        }
        let key = (tenant.id, Box::<str>::from(request_id));
        let fresh = || {
            Arc::new(Slot {
                created: now,
                resource: resource.id,
                amount,
                grant: OnceCell::new(),
            })
        };
        // Checked before `entry`, which holds a shard lock that `len` needs.
        let full = self.slots.len() >= self.max;
        let slot = match self.slots.entry(key) {
            dashmap::Entry::Occupied(mut e) => {
                if e.get().created.saturating_add(self.window) <= now {
                    e.insert(fresh());
                }
                e.get().clone()
            }
            dashmap::Entry::Vacant(e) => {
                if full {
                    return Err(AdmissionError::ResourceExhausted(format!(
                        "request_id: {} request ids are remembered already; retry without one or later",
                        self.max
                    )));
                }
                e.insert(fresh()).clone()
            }
        };
        if slot.resource != resource.id || slot.amount != amount {
            return Err(AdmissionError::InvalidArgument(format!(
                "request_id: {request_id:?} was used for a different request \
                 (another resource or amount) within the idempotency window"
            )));
        }
        Ok(slot)
    }

    /// Drops records older than the window.
    pub fn forget(&self, now: Nanos) {
        self.slots
            .retain(|_, s| s.created.saturating_add(self.window) > now);
    }
}
