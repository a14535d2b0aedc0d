//! What one request of a load is: prescient's own `Acquire`, or Envoy's
//! `ShouldRateLimit` (to load prescient's Envoy face, or another rate-limit
//! service such as Limitador's, with the same connections, streams and
//! tenants), and how its answer counts.

use tonic::transport::Channel;

use crate::grpc::envoy::proto::envoy::extensions::common::ratelimit::v3::{
    RateLimitDescriptor, rate_limit_descriptor::Entry,
};
use crate::grpc::envoy::proto::envoy::service::ratelimit::v3::{
    RateLimitRequest, rate_limit_response::Code, rate_limit_service_client::RateLimitServiceClient,
};
use crate::proto::admission_client::AdmissionClient;
use crate::proto::{AcquireRequest, Decision};

/// The RPC a load sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// `prescient.v1.Admission/Acquire` of the load's resource.
    Acquire,
    /// `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` in
    /// `domain`, with one descriptor `[("tenant", T)]` and `hits_addend`
    /// the amount.
    Envoy { domain: String },
}

/// How one call was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// GRANTED, or Envoy's OK.
    Granted,
    /// DENIED, or Envoy's OVER_LIMIT.
    Denied,
    /// A gRPC error, or an Envoy answer that is neither (UNKNOWN).
    Error,
}

/// A client of the protocol on one connection: one per stream.
pub(super) enum Caller {
    Acquire {
        client: AdmissionClient<Channel>,
        resource: String,
    },
    Envoy {
        client: RateLimitServiceClient<Channel>,
        domain: String,
    },
}

impl Caller {
    pub(super) fn new(protocol: &Protocol, resource: &str, channel: Channel) -> Self {
        match protocol {
            Protocol::Acquire => Caller::Acquire {
                client: AdmissionClient::new(channel),
                resource: resource.to_owned(),
            },
            Protocol::Envoy { domain } => Caller::Envoy {
                client: RateLimitServiceClient::new(channel),
                domain: domain.clone(),
            },
        }
    }

    /// One request of `amount` for `tenant`. The Envoy amount was checked
    /// to fit a `hits_addend` (`Load::check`); saturating keeps it so.
    pub(super) async fn call(&mut self, tenant: &str, amount: u64) -> Outcome {
        match self {
            Caller::Acquire { client, resource } => {
                let request = AcquireRequest {
                    tenant: tenant.to_owned(),
                    resource: resource.clone(),
                    amount,
                    ..Default::default()
                };
                match client.acquire(request).await {
                    Ok(r) if r.get_ref().decision() == Decision::Granted => Outcome::Granted,
                    Ok(_) => Outcome::Denied,
                    Err(_) => Outcome::Error,
                }
            }
            Caller::Envoy { client, domain } => {
                let request = RateLimitRequest {
                    domain: domain.clone(),
                    descriptors: vec![RateLimitDescriptor {
                        entries: vec![Entry {
                            key: "tenant".to_owned(),
                            value: tenant.to_owned(),
                        }],
                        ..Default::default()
                    }],
                    hits_addend: u32::try_from(amount).unwrap_or(u32::MAX),
                };
                match client.should_rate_limit(request).await {
                    Ok(r) => match r.get_ref().overall_code() {
                        Code::Ok => Outcome::Granted,
                        Code::OverLimit => Outcome::Denied,
                        Code::Unknown => Outcome::Error,
                    },
                    Err(_) => Outcome::Error,
                }
            }
        }
    }
}
