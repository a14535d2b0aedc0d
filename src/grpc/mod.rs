//! The gRPC face: translates `prescient.v1` messages to calls on the
//! admission core and back, and nothing else. Health and reflection are
//! served beside it on the same port.

mod admission;
pub mod codec;
pub mod envoy;
mod forecast;
pub mod keda;
mod watch;

use std::sync::Arc;

pub use admission::AdmissionService;
pub use envoy::{EnvoyRules, EnvoyService, envoy_server};
pub use watch::{WatchMetrics, WatchSlots};

use crate::admission::AdmissionError;
use crate::proto::admission_server::AdmissionServer;

/// Most bytes one request may carry; larger is refused before decoding.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The Admission service, ready to add to a tonic router.
pub fn admission_server(
    core: Arc<crate::admission::Admission>,
    forecasts: tokio::sync::watch::Receiver<Arc<crate::planner::Forecasts>>,
    auth: Option<Arc<crate::auth::Auth>>,
    watches: Arc<WatchSlots>,
) -> AdmissionServer<AdmissionService> {
    AdmissionServer::new(AdmissionService::new(core, forecasts, auth, watches))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// The status code of DESIGN §3 for each core error.
pub fn status(e: AdmissionError) -> tonic::Status {
    match e {
        AdmissionError::InvalidArgument(m) | AdmissionError::AmountOverMax(m) => {
            tonic::Status::invalid_argument(m)
        }
        AdmissionError::NotFound(m) => tonic::Status::not_found(m),
        AdmissionError::ResourceExhausted(m) => tonic::Status::resource_exhausted(m),
        AdmissionError::Unavailable => tonic::Status::unavailable("prescient is shutting down"),
    }
}

/// gRPC server reflection (v1 and v1alpha, for older grpcurl).
pub fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(crate::keda_proto::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
