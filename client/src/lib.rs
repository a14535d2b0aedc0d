//! prescient-client: the Rust client of the prescient admission-control
//! daemon, and a `tower` layer over it.
//!
//! The data flow is the module order: a [`Client`] (its [`RetryPolicy`])
//! asks for a [`Demand`] and gets a [`Permit`], which gives its lease back
//! on drop; failures are one [`Error`]; the [`layer`] wraps any service in
//! an Acquire before and a Report after. The crate compiles the daemon's
//! proto itself and does not depend on the daemon.
//!
//! The README below is this crate's guide; its examples are doctests.
#![doc = include_str!("../README.md")]

mod client;
mod demand;
mod error;
pub mod layer;
mod permit;
mod retry;

pub use client::{Bearer, Client, ClientBuilder, Rpc};
pub use demand::Demand;
pub use error::Error;
pub use layer::{AdmissionLayer, Admitted, LayerError};
pub use permit::{Outcome, Paid, Permit, Released};
pub use retry::RetryPolicy;

/// The daemon's messages and the generated gRPC client (package
/// `prescient.v1`), for calls this crate does not wrap (`GetForecast`,
/// `WatchForecast`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("prescient.v1");
}

/// The root README's Rust blocks compile as doctests of this crate, so the
/// README cannot show code that does not build.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RootReadme;
