//! prescient: a predictive admission-control daemon.
//!
//! The data flow is the module order: a [`policy`] is compiled into
//! [`pool`]s, which [`admission`] draws from on each Acquire; the [`grpc`]
//! face only translates messages; [`daemon`] wires it all to sockets,
//! settings and signals under one [`supervisor`], and the [`watcher`] feeds
//! it policy edits. Every function of time takes `now` from a
//! [`clock::Clock`].

pub mod admin;
pub mod admission;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod connections;
pub mod daemon;
pub mod echo;
pub mod grpc;
pub mod loadgen;
pub mod metrics;
pub mod planner;
pub mod policy;
pub mod pool;
pub mod prewarm;
pub mod settings;
pub mod sim;
pub mod supervisor;
pub mod watcher;

/// Generated protobuf types and the service trait (package `prescient.v1`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("prescient.v1");

    /// Encoded descriptors, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("prescient_descriptor");
}

/// KEDA's external-scaler protocol (package `externalscaler`, vendored
/// under `proto/vendor/`): the service trait `src/grpc/keda/` serves.
pub mod keda_proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("externalscaler");

    /// Encoded descriptors, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("externalscaler_descriptor");
}
