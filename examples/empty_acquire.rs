//! The transport's ceiling for `benches/compare.sh`: our `Admission`
//! service, built from our proto, whose Acquire answers GRANTED at once
//! and does nothing else. What `prescient serve` loses against it is the
//! cost of deciding (and of its runtime layout).
//!
//! ```text
//! cargo run --release --example empty_acquire -- [--flavor current_thread|multi_thread] [--listen 127.0.0.1:50061]
//! ```
//!
//! Prints `listening on ADDR` once bound (port 0 picks a free one); runs
//! until killed.

#[path = "peer/serve.rs"]
mod peer;

use std::net::SocketAddr;
use std::pin::Pin;

use prescient::proto::admission_server::{Admission, AdmissionServer};
use prescient::proto::{
    AcquireRequest, AcquireResponse, Decision, GetForecastRequest, GetForecastResponse,
    ReleaseRequest, ReleaseResponse, ReportRequest, ReportResponse, WatchForecastRequest,
    WatchForecastResponse,
};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

/// Answers every Acquire GRANTED; every other RPC is UNIMPLEMENTED.
struct Empty;

#[tonic::async_trait]
impl Admission for Empty {
    type WatchForecastStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<WatchForecastResponse, Status>> + Send>>;

    async fn acquire(
        &self,
        request: Request<AcquireRequest>,
    ) -> Result<Response<AcquireResponse>, Status> {
        Ok(Response::new(AcquireResponse {
            decision: Decision::Granted as i32,
            from_guaranteed: request.get_ref().amount,
            ..AcquireResponse::default()
        }))
    }

    async fn release(
        &self,
        _: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        Err(Status::unimplemented("empty handler"))
    }

    async fn report(&self, _: Request<ReportRequest>) -> Result<Response<ReportResponse>, Status> {
        Err(Status::unimplemented("empty handler"))
    }

    async fn get_forecast(
        &self,
        _: Request<GetForecastRequest>,
    ) -> Result<Response<GetForecastResponse>, Status> {
        Err(Status::unimplemented("empty handler"))
    }

    async fn watch_forecast(
        &self,
        _: Request<WatchForecastRequest>,
    ) -> Result<Response<Self::WatchForecastStream>, Status> {
        Err(Status::unimplemented("empty handler"))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut flavor = "current_thread".to_owned();
    let mut listen: SocketAddr = "127.0.0.1:50061".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--flavor" => flavor = value,
            "--listen" => listen = value.parse()?,
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    peer::serve(&flavor, listen, Routes::new(AdmissionServer::new(Empty)))
}
