//! `prescient.v1.Admission`: Acquire, Release, Report.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::status;
use crate::admission::{self as core, Admission, Decision};
use crate::auth::{Auth, AuthError, Caller};
use crate::echo::Echo;
use crate::planner::Forecasts;
use crate::proto;

/// Longest `max_wait` accepted.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Most entries in one Report.
pub const MAX_REPORT_ENTRIES: usize = 10_000;

/// The service: a handle on the core and on the planner's forecasts.
pub struct AdmissionService {
    core: Arc<Admission>,
    forecasts: watch::Receiver<Arc<Forecasts>>,
    /// Bearer-token authentication; `None`: off.
    auth: Option<Arc<Auth>>,
    /// The bound on WatchForecast streams open at once.
    watches: Arc<super::WatchSlots>,
}

impl AdmissionService {
    pub fn new(
        core: Arc<Admission>,
        forecasts: watch::Receiver<Arc<Forecasts>>,
        auth: Option<Arc<Auth>>,
        watches: Arc<super::WatchSlots>,
    ) -> Self {
        Self {
            core,
            forecasts,
            auth,
            watches,
        }
    }

    /// The caller presenting the request's bearer token; `None` when
    /// authentication is off.
    fn caller<T>(&self, request: &Request<T>) -> Result<Option<&Caller>, Status> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        auth.identify(header).map(Some).map_err(auth_status)
    }

    /// Refuses the request unless its caller may act for every tenant in
    /// `tenants` (free when authentication is off).
    fn authorize<'a, T>(
        &self,
        request: &Request<T>,
        tenants: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Status> {
        if let Some(caller) = self.caller(request)? {
            for tenant in tenants {
                caller.permit(tenant).map_err(auth_status)?;
            }
        }
        Ok(())
    }

    /// Refuses the request unless its caller is an admin (when auth is on).
    fn authorize_admin<T>(&self, request: &Request<T>, what: &str) -> Result<(), Status> {
        match self.caller(request)? {
            Some(caller) if !caller.admin => Err(Status::permission_denied(format!(
                "tenant: {what} needs an admin token; caller {:?} is not one",
                caller.name
            ))),
            _ => Ok(()),
        }
    }
}

pub(super) fn auth_status(e: AuthError) -> Status {
    match e {
        AuthError::Unauthenticated(m) => Status::unauthenticated(m),
        AuthError::Denied(m) => Status::permission_denied(m),
    }
}

fn duration(d: &prost_types::Duration, field: &str) -> Result<Duration, String> {
    Duration::try_from(*d).map_err(|_| {
        format!(
            "{field}: {}s {}ns is not a valid non-negative duration",
            d.seconds, d.nanos
        )
    })
}

fn to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

fn acquire_response(decision: Decision) -> proto::AcquireResponse {
    match decision {
        Decision::Granted(g) => proto::AcquireResponse {
            decision: proto::Decision::Granted as i32,
            lease_id: g.lease.map(|l| l.to_string()).unwrap_or_default(),
            from_reserve: g.split.reserve,
            from_guaranteed: g.split.guaranteed,
            from_shared: g.split.shared,
            from_emergency: g.split.emergency,
            retry_after: None,
            remaining: g.remaining,
        },
        Decision::Denied(d) => proto::AcquireResponse {
            decision: proto::Decision::Denied as i32,
            retry_after: Some(to_proto(d.retry_after)),
            remaining: d.remaining,
            ..Default::default()
        },
    }
}

/// One debug event per Acquire, inside its `acquire` span: what was decided
/// and which pools paid. Off by default (the filter is `info`): then each
/// `debug!` is a level check and nothing is formatted.
fn log_decision(amount: u64, decision: &Result<Decision, core::AdmissionError>) {
    match decision {
        Ok(Decision::Granted(g)) => tracing::debug!(
            amount,
            reserve = g.split.reserve,
            guaranteed = g.split.guaranteed,
            shared = g.split.shared,
            emergency = g.split.emergency,
            remaining = g.remaining,
            lease = g.lease.map(tracing::field::display),
            "granted"
        ),
        Ok(Decision::Denied(d)) => tracing::debug!(
            amount,
            retry_after = ?d.retry_after,
            remaining = d.remaining,
            "denied"
        ),
        Err(e) => tracing::debug!(amount, error = %e, "refused"),
    }
}

#[tonic::async_trait]
impl proto::admission_server::Admission for AdmissionService {
    type WatchForecastStream = super::watch::ForecastStream;

    async fn get_forecast(
        &self,
        request: Request<proto::GetForecastRequest>,
    ) -> Result<Response<proto::GetForecastResponse>, Status> {
        let m = request.get_ref();
        self.authorize(&request, [m.tenant.as_str()])?;
        super::forecast::get(&self.core, &self.forecasts, &m.tenant, &m.resource).map(Response::new)
    }

    async fn watch_forecast(
        &self,
        request: Request<proto::WatchForecastRequest>,
    ) -> Result<Response<Self::WatchForecastStream>, Status> {
        if request.get_ref().tenant.is_empty() {
            self.authorize_admin(&request, "watching every tenant")?;
        } else {
            self.authorize(&request, [request.get_ref().tenant.as_str()])?;
        }
        let tenant = request.into_inner().tenant;
        if !tenant.is_empty() && self.core.registry().existing_tenant(&tenant).is_none() {
            return Err(Status::not_found(format!(
                "tenant: unknown tenant {:?} (or not seen yet)",
                Echo(&tenant)
            )));
        }
        let slot = self.watches.take()?;
        Ok(Response::new(super::watch::ForecastStream::new(
            self.forecasts.clone(),
            tenant,
            slot,
        )))
    }

    async fn acquire(
        &self,
        request: Request<proto::AcquireRequest>,
    ) -> Result<Response<proto::AcquireResponse>, Status> {
        let m = request.get_ref();
        self.authorize(&request, [m.tenant.as_str()])?;
        let span = tracing::debug_span!("acquire", tenant = %m.tenant, resource = %m.resource);
        let _enter = span.enter();
        let max_wait = match &m.max_wait {
            None => Duration::ZERO,
            Some(d) => duration(d, "max_wait").map_err(Status::invalid_argument)?,
        };
        if max_wait > MAX_WAIT {
            return Err(Status::invalid_argument(format!(
                "max_wait: {max_wait:?} exceeds the longest wait accepted ({MAX_WAIT:?})"
            )));
        }
        let req = core::AcquireRequest {
            tenant: &m.tenant,
            resource: &m.resource,
            amount: m.amount,
            priority: m.priority,
            max_wait,
            request_id: Some(m.request_id.as_str()).filter(|s| !s.is_empty()),
            lease: m.lease,
        };
        let decision = match self.core.admit(&req) {
            // The hot path: decided synchronously, no future state machine.
            core::Admit::Decided(decision) => decision,
            core::Admit::Pending(decision) => {
                drop(_enter);
                let decision = decision.await;
                span.in_scope(|| log_decision(m.amount, &decision));
                return Ok(Response::new(acquire_response(decision.map_err(status)?)));
            }
        };
        log_decision(m.amount, &decision);
        Ok(Response::new(acquire_response(decision.map_err(status)?)))
    }

    async fn release(
        &self,
        request: Request<proto::ReleaseRequest>,
    ) -> Result<Response<proto::ReleaseResponse>, Status> {
        if self.auth.is_some() {
            // Only the lease's own tenant (or an admin) may release it; an
            // unknown lease falls through to the core's NOT_FOUND.
            let owner = self.core.lease_tenant(&request.get_ref().lease_id);
            self.authorize(&request, owner.as_deref())?;
        }
        let released = self
            .core
            .release(&request.get_ref().lease_id)
            .map_err(status)?;
        Ok(Response::new(proto::ReleaseResponse {
            released_units: released.units,
            already_released: released.already,
        }))
    }

    async fn report(
        &self,
        request: Request<proto::ReportRequest>,
    ) -> Result<Response<proto::ReportResponse>, Status> {
        let entries = &request.get_ref().entries;
        if self.auth.is_some() {
            let owners: Vec<Arc<str>> = entries
                .iter()
                .filter_map(|e| self.core.lease_tenant(&e.lease_id))
                .collect();
            let named = entries.iter().map(|e| e.tenant.as_str());
            self.authorize(&request, named.chain(owners.iter().map(|t| &**t)))?;
        }
        if entries.len() > MAX_REPORT_ENTRIES {
            return Err(Status::invalid_argument(format!(
                "entries: {} entries, at most {MAX_REPORT_ENTRIES} per Report",
                entries.len()
            )));
        }
        // Entries whose fields do not even translate are rejected here, the
        // rest by the core; the reasons keep their original index.
        let mut errors: Vec<(usize, String)> = Vec::new();
        let mut valid = Vec::with_capacity(entries.len());
        let mut index = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let duration = match e.duration.as_ref().map(|d| duration(d, "duration")) {
                Some(Err(reason)) => {
                    errors.push((i, format!("entries[{i}].{reason}")));
                    continue;
                }
                Some(Ok(d)) => Some(d),
                None => None,
            };
            let outcome = match proto::Outcome::try_from(e.outcome) {
                Ok(proto::Outcome::Success) => core::Outcome::Success,
                Ok(proto::Outcome::Failure) => core::Outcome::Failure,
                Ok(proto::Outcome::Cancelled) => core::Outcome::Cancelled,
                Ok(proto::Outcome::Unspecified) => core::Outcome::Unspecified,
                Err(_) => {
                    errors.push((
                        i,
                        format!("entries[{i}].outcome: unknown value {}", e.outcome),
                    ));
                    continue;
                }
            };
            index.push(i);
            valid.push(core::ReportEntry {
                tenant: &e.tenant,
                resource: &e.resource,
                lease_id: Some(e.lease_id.as_str()).filter(|s| !s.is_empty()),
                used: e.used,
                duration,
                outcome,
            });
        }
        let summary = self.core.report(&valid);
        for (j, reason) in summary.errors {
            let i = index[j];
            errors.push((i, format!("entries[{i}].{reason}")));
        }
        errors.sort_by_key(|(i, _)| *i);
        Ok(Response::new(proto::ReportResponse {
            accepted: summary.accepted,
            rejected: errors.len() as u32,
            errors: errors.into_iter().map(|(_, e)| e).collect(),
        }))
    }
}
