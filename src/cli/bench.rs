//! `prescient bench`: the load generator (`loadgen`) against a daemon on
//! this machine, or (`--protocol envoy`) any Envoy rate-limit service on it.

use std::process::ExitCode;

use crate::loadgen;

/// `--protocol`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProtocolArg {
    Acquire,
    Envoy,
}

/// The flags of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The daemon's gRPC address (host:port, loopback).
    #[arg(long, default_value = "127.0.0.1:50051")]
    target: String,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Requests in flight on each connection.
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// Tenants, taken in turn.
    #[arg(long, value_delimiter = ',', default_value = "checkout,search")]
    tenants: Vec<String>,
    /// The resource each Acquire asks for (`--protocol acquire`).
    #[arg(long, default_value = "db_queries")]
    resource: String,
    /// The RPC: prescient's Acquire, or Envoy's ShouldRateLimit with one
    /// descriptor `[("tenant", T)]` and hits_addend the amount.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Acquire)]
    protocol: ProtocolArg,
    /// The domain of each ShouldRateLimit (`--protocol envoy`).
    #[arg(long, default_value = "prescient")]
    domain: String,
    #[arg(long, default_value_t = 1)]
    amount: u64,
    /// Stop after this many requests (default 100000).
    #[arg(long, conflicts_with = "duration")]
    requests: Option<u64>,
    /// Stop after this long (e.g. 10s) instead.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            target,
            connections,
            streams,
            tenants,
            resource,
            protocol,
            domain,
            amount,
            requests,
            duration,
            json,
        } = self;
        let load = loadgen::Load {
            target: loadgen::loopback(&target)?,
            connections,
            streams,
            tenants,
            resource,
            amount,
            stop: match duration {
                Some(d) => loadgen::Stop::After(d),
                None => loadgen::Stop::Requests(requests.unwrap_or(100_000)),
            },
            protocol: match protocol {
                ProtocolArg::Acquire => loadgen::Protocol::Acquire,
                ProtocolArg::Envoy => loadgen::Protocol::Envoy { domain },
            },
        };
        load.check()?;
        let report = tokio::runtime::Runtime::new()?.block_on(load.run())?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.to_text());
        }
        Ok(ExitCode::SUCCESS)
    }
}
