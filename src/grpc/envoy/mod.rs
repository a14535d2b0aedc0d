//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, so
//! Envoy, Istio and Contour can use prescient as their rate-limit service
//! unchanged. A thin adapter: the policy's `envoy:` rules map each
//! descriptor to a tenant and a resource, and each is decided by the same
//! Acquire the `Admission` service makes (`docs/envoy.md`).

pub mod proto;
mod rules;
mod status;

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

pub use rules::EnvoyRules;
use status::Decided;

use self::proto::envoy::service::ratelimit::v3::{
    RateLimitRequest, RateLimitResponse,
    rate_limit_response::Code,
    rate_limit_service_server::{RateLimitService, RateLimitServiceServer},
};
use crate::admission::{self as core, Admission, Decision};
use crate::auth::Auth;
use crate::clock::Nanos;
use crate::policy::Lookup;
use crate::pool::Pool;

/// Most descriptors in one request (Envoy sends one per rate-limit action
/// set of the route, a handful).
pub const MAX_DESCRIPTORS: usize = 64;

/// The service: the core, the rules in force, and authentication.
pub struct EnvoyService {
    core: Arc<Admission>,
    rules: Arc<EnvoyRules>,
    auth: Option<Arc<Auth>>,
}

/// The rate-limit service, ready to add to a tonic router.
pub fn envoy_server(
    core: Arc<Admission>,
    rules: Arc<EnvoyRules>,
    auth: Option<Arc<Auth>>,
) -> RateLimitServiceServer<EnvoyService> {
    RateLimitServiceServer::new(EnvoyService { core, rules, auth })
        .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
}

/// `hits_addend`: the descriptor's own if set, else the request's; 0 means 1.
fn amount(request: u32, descriptor: Option<u64>) -> u64 {
    descriptor.unwrap_or(u64::from(request)).max(1)
}

/// What the tenant is held to, and when its pools are full again, from the
/// core's read-outs after a grant (`None`: a reload took the tenant or the
/// resource away meanwhile).
fn outlook(core: &Admission, tenant: &str, resource: &str, now: Nanos) -> Option<(u64, Duration)> {
    let registry = core.registry();
    let r = registry.resource(resource)?;
    let t = registry.existing_tenant(tenant)?;
    let a = &t.allotments[r.id];
    // A tenant guaranteed nothing is held to what it may borrow at most.
    let per_second = match a.guaranteed_here() {
        0 => r.capacity(),
        g => g,
    };
    let full_in = a
        .tiers(false)
        .iter()
        .filter_map(|&tier| match r.pool(a, tier) {
            Pool::Rate(b) => {
                let o = b.outlook(now);
                (o.rate > 0.0).then(|| ((o.depth as f64 - o.fill).max(0.0) / o.rate).min(3600.0))
            }
            Pool::Concurrency(_) => None,
        })
        .fold(0.0, f64::max);
    Some((per_second, Duration::from_secs_f64(full_in)))
}

impl EnvoyService {
    /// Refuses the request unless its caller may act for every tenant
    /// (free when authentication is off).
    fn authorize<'a, T>(
        &self,
        request: &Request<T>,
        tenants: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Status> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let caller = auth
            .identify(header)
            .map_err(super::admission::auth_status)?;
        for tenant in tenants {
            caller
                .permit(tenant)
                .map_err(super::admission::auth_status)?;
        }
        Ok(())
    }

    /// One matched descriptor, decided by the core's Acquire.
    async fn decide(
        &self,
        i: usize,
        tenant: &str,
        resource: &str,
        amount: u64,
    ) -> Result<Decided, Status> {
        let req = core::AcquireRequest {
            tenant,
            resource,
            amount,
            ..Default::default()
        };
        let in_context =
            |s: Status| Status::new(s.code(), format!("descriptors[{i}]: {}", s.message()));
        let decision = match self.core.admit(&req).decision().await {
            Ok(decision) => Some(decision),
            // More hits than the tenant could ever be granted at once: over
            // limit, not an error, which Envoy (failure_mode_deny: false,
            // its default) would let through.
            Err(core::AdmissionError::AmountOverMax(_)) => None,
            Err(e) => return Err(in_context(super::status(e))),
        };
        let now = self.core.clock().now();
        let (per_second, full_in) = outlook(&self.core, tenant, resource, now).ok_or_else(|| {
            Status::unavailable(format!(
                "descriptors[{i}]: tenant {tenant:?} or resource {resource:?} was just removed by a policy reload"
            ))
        })?;
        let Some(decision) = decision else {
            return Ok(Decided {
                over_limit: true,
                per_second,
                remaining: 0,
                reset: full_in,
            });
        };
        Ok(match decision {
            Decision::Granted(g) => Decided {
                over_limit: false,
                per_second,
                remaining: g.remaining,
                reset: full_in,
            },
            Decision::Denied(d) => Decided {
                over_limit: true,
                per_second,
                remaining: d.remaining,
                reset: d.retry_after,
            },
        })
    }
}

#[tonic::async_trait]
impl RateLimitService for EnvoyService {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let m = request.get_ref();
        if m.domain.is_empty() {
            return Err(Status::invalid_argument("domain: must not be empty"));
        }
        if m.descriptors.is_empty() || m.descriptors.len() > MAX_DESCRIPTORS {
            return Err(Status::invalid_argument(format!(
                "descriptors: {} descriptors; 1 to {MAX_DESCRIPTORS} are accepted",
                m.descriptors.len()
            )));
        }
        let rules = self.rules.current();
        let mut targets = Vec::with_capacity(m.descriptors.len());
        for (i, d) in m.descriptors.iter().enumerate() {
            if d.entries.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "descriptors[{i}].entries: must not be empty"
                )));
            }
            let entries: Vec<(&str, &str)> = d
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()))
                .collect();
            targets.push(match rules.lookup(&m.domain, &entries) {
                Lookup::Matched { tenant, resource } => {
                    Some((tenant.to_owned(), resource.to_owned()))
                }
                Lookup::Unmatched | Lookup::UnknownDomain => None,
            });
        }
        let headers_on = rules.response_headers;
        drop(rules);
        self.authorize(&request, targets.iter().flatten().map(|(t, _)| t.as_str()))?;
        // Every descriptor is decided, as Envoy's own service does: tokens
        // granted to one stay taken when another is over limit.
        let mut statuses = Vec::with_capacity(targets.len());
        let mut decided = Vec::new();
        for (i, (d, target)) in m.descriptors.iter().zip(&targets).enumerate() {
            let Some((tenant, resource)) = target else {
                statuses.push(status::unlimited());
                continue;
            };
            let one = self
                .decide(i, tenant, resource, amount(m.hits_addend, d.hits_addend))
                .await?;
            tracing::debug!(
                domain = ?crate::echo::Echo(&m.domain),
                descriptor = i,
                %tenant,
                %resource,
                over_limit = one.over_limit,
                remaining = one.remaining,
                "should_rate_limit"
            );
            statuses.push(status::status(resource, &one));
            decided.push(one);
        }
        let over = decided.iter().any(|d| d.over_limit);
        Ok(Response::new(RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
            response_headers_to_add: if headers_on {
                status::headers(&decided)
            } else {
                Vec::new()
            },
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_addend_zero_means_one_and_a_descriptor_overrides_the_request() {
        assert_eq!(amount(0, None), 1);
        assert_eq!(amount(5, None), 5);
        assert_eq!(amount(5, Some(2)), 2);
        assert_eq!(amount(5, Some(0)), 1);
        assert_eq!(amount(0, Some(u64::MAX)), u64::MAX);
    }
}
