//! Input a well-behaved client never sends, over real gRPC: fields far too
//! long to quote back. Each answers a clear error, never a status the
//! client cannot read.

mod common;

use common::Daemon;
use prescient::proto::{AcquireRequest, ReleaseRequest, WatchForecastRequest};
use tonic::Code;

const POLICY: &str = "resources:\n  api: { kind: rate, capacity: 100 }\n\
                      tenants:\n  web: { qos: gold, limits: { api: { guaranteed: 20 } } }\n";

/// A status message that quotes a 100 KB field is cut to a short one.
fn short(s: tonic::Status, code: Code, field: &str) {
    let head: String = s.message().chars().take(300).collect();
    assert_eq!(s.code(), code, "{head}");
    assert!(
        s.message().len() < 400
            && s.message().starts_with(field)
            && s.message().contains("…(100000 bytes)"),
        "{s:?}"
    );
}

#[tokio::test]
async fn errors_quote_a_100_kb_field_cut_short() {
    let d = Daemon::start(POLICY, &[]);
    let mut c = d.client().await;
    let long = "x".repeat(100_000);
    let acquire = |tenant: &str, resource: &str| AcquireRequest {
        tenant: tenant.into(),
        resource: resource.into(),
        amount: 1,
        ..Default::default()
    };
    let s = c.acquire(acquire(&long, "api")).await.unwrap_err();
    short(s, Code::NotFound, "tenant: unknown tenant \"xxxx");
    let s = c.acquire(acquire("web", &long)).await.unwrap_err();
    short(s, Code::NotFound, "resource: unknown resource \"xxxx");
    let s = c
        .release(ReleaseRequest {
            lease_id: long.clone(),
        })
        .await
        .unwrap_err();
    short(s, Code::InvalidArgument, "lease_id: \"xxxx");
    let s = c
        .watch_forecast(WatchForecastRequest {
            tenant: long.clone(),
        })
        .await
        .unwrap_err();
    short(s, Code::NotFound, "tenant: unknown tenant \"xxxx");
}
