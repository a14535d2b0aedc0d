//! A peer for `benches/compare.sh`: Envoy's rate-limit service
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) deciding
//! with the `limitador` crate's in-memory limiter, as Kuadrant's
//! `limitador-server` does. That binary is not on crates.io and its default
//! build needs RocksDB, so this is our own small server doing per request
//! what its RLS handler does: the descriptors become the `descriptors`
//! list of a limitador `Context`, the domain is the namespace, one
//! `check_rate_limited_and_update` of `hits_addend` (0 means 1) decides,
//! and the answer is `OK` or `OVER_LIMIT` with no per-descriptor statuses.
//!
//! ```text
//! cargo run --release --example limitador_rls -- [--flavor multi_thread|current_thread] [--listen 127.0.0.1:50062] [--domain prescient] [--limit N]
//! ```
//!
//! One limit in namespace `--domain`: `--limit` hits per second (default
//! 10^11, so a bench never meets it) per value of the first descriptor's
//! `tenant` entry. Prints `listening on ADDR` once bound (port 0 picks a
//! free one); runs until killed. limitador-server runs on tokio's
//! multi-thread runtime, the default here too.

#[path = "peer/serve.rs"]
mod peer;

use std::collections::HashMap;
use std::net::SocketAddr;

use limitador::RateLimiter;
use limitador::limit::{Context, Expression, Limit, Namespace, Predicate};
use prescient::grpc::envoy::proto::envoy::service::ratelimit::v3::{
    RateLimitRequest, RateLimitResponse,
    rate_limit_response::Code,
    rate_limit_service_server::{RateLimitService, RateLimitServiceServer},
};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

/// The limiter and nothing else: limitador-server's handler without its
/// tracing and metrics.
struct Limitador {
    limiter: RateLimiter,
}

#[tonic::async_trait]
impl RateLimitService for Limitador {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let request = request.into_inner();
        // As limitador-server: no domain is UNKNOWN, not an error.
        if request.domain.is_empty() {
            return Ok(answer(Code::Unknown));
        }
        let namespace = Namespace::from(request.domain);
        let descriptors: Vec<HashMap<String, String>> = request
            .descriptors
            .into_iter()
            .map(|d| d.entries.into_iter().map(|e| (e.key, e.value)).collect())
            .collect();
        let mut ctx = Context::default();
        ctx.list_binding("descriptors".to_owned(), descriptors);
        let hits = u64::from(request.hits_addend.max(1));
        match self
            .limiter
            .check_rate_limited_and_update(&namespace, &ctx, hits)
        {
            Ok(checked) if checked.limited => Ok(answer(Code::OverLimit)),
            Ok(_) => Ok(answer(Code::Ok)),
            // limitador-server answers a storage failure UNAVAILABLE, so
            // Envoy's `failure_mode_deny` decides.
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}

fn answer(code: Code) -> Response<RateLimitResponse> {
    Response::new(RateLimitResponse {
        overall_code: code.into(),
        ..RateLimitResponse::default()
    })
}

/// `limit` hits per second in namespace `domain`, one counter per tenant.
fn limiter(domain: &str, limit: u64) -> Result<RateLimiter, Box<dyn std::error::Error>> {
    // limitador-server's in-memory cache size when memory cannot be read.
    let limiter = RateLimiter::new(10_000);
    let tenant = Expression::parse("descriptors[0].tenant")?;
    let no_conditions: [Predicate; 0] = [];
    limiter.add_limit(Limit::new(domain, limit, 1, no_conditions, [tenant]));
    Ok(limiter)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut flavor = "multi_thread".to_owned();
    let mut listen: SocketAddr = "127.0.0.1:50062".parse()?;
    let mut domain = "prescient".to_owned();
    let mut limit: u64 = 100_000_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--flavor" => flavor = value,
            "--listen" => listen = value.parse()?,
            "--domain" if value.is_empty() => return Err("--domain: is empty".into()),
            "--domain" => domain = value,
            "--limit" => limit = value.parse().map_err(|e| format!("--limit {value}: {e}"))?,
            _ => return Err(format!("unknown argument {arg} {value}").into()),
        }
    }
    let service = Limitador {
        limiter: limiter(&domain, limit)?,
    };
    peer::serve(
        &flavor,
        listen,
        Routes::new(RateLimitServiceServer::new(service)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prescient::grpc::envoy::proto::envoy::extensions::common::ratelimit::v3::{
        RateLimitDescriptor, rate_limit_descriptor::Entry,
    };

    async fn code(service: &Limitador, domain: &str, tenant: &str, hits: u32) -> Code {
        let request = RateLimitRequest {
            domain: domain.to_owned(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "tenant".to_owned(),
                    value: tenant.to_owned(),
                }],
                ..Default::default()
            }],
            hits_addend: hits,
        };
        let answer = service.should_rate_limit(Request::new(request)).await;
        answer.expect("an answer").get_ref().overall_code()
    }

    // The limit a bench must never meet has to be one limitador applies:
    // a limit whose variable did not resolve would limit nothing, and the
    // comparison would time less work than limitador-server does.
    #[tokio::test]
    async fn each_tenant_has_its_own_counter_in_the_domain() {
        let service = Limitador {
            limiter: limiter("edge", 3).unwrap(),
        };
        assert_eq!(code(&service, "edge", "a", 2).await, Code::Ok);
        // hits_addend 0 counts as 1, as in Envoy.
        assert_eq!(code(&service, "edge", "a", 0).await, Code::Ok);
        assert_eq!(code(&service, "edge", "a", 1).await, Code::OverLimit);
        assert_eq!(code(&service, "edge", "b", 3).await, Code::Ok);
        assert_eq!(code(&service, "edge", "b", 1).await, Code::OverLimit);
        // Another domain has no limit; no domain is UNKNOWN.
        assert_eq!(code(&service, "other", "a", 100).await, Code::Ok);
        assert_eq!(code(&service, "", "a", 1).await, Code::Unknown);
    }
}
