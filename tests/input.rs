//! Input a well-behaved client never sends, over real gRPC: bytes that are
//! not protobuf the typed client could produce, and fields far too long to
//! quote back. Each answers a clear error, never INTERNAL or a status the
//! client cannot read.

mod common;

use common::Daemon;
use common::policies::WEB_AND_BATCH as POLICY;
use common::requests::{acquire, release};
use prescient::proto::{AcquireResponse, Decision, WatchForecastRequest};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

/// `AcquireRequest` with `tenant` as raw bytes: the same wire format, but
/// any bytes, UTF-8 or not.
#[derive(Clone, PartialEq, prost::Message)]
struct RawAcquire {
    #[prost(bytes = "vec", tag = "1")]
    tenant: Vec<u8>,
    #[prost(string, tag = "2")]
    resource: String,
    #[prost(uint64, tag = "3")]
    amount: u64,
}

/// Sends `raw` as an Acquire over a real HTTP/2 connection.
async fn acquire_raw(d: &Daemon, raw: RawAcquire) -> Result<AcquireResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(d.channel().await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<RawAcquire, AcquireResponse>::default();
    let path = PathAndQuery::from_static("/prescient.v1.Admission/Acquire");
    grpc.unary(tonic::Request::new(raw), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_string_field_that_is_not_utf8_is_invalid_argument() {
    let d = Daemon::start(POLICY, &[]);
    let raw = |tenant: &[u8]| RawAcquire {
        tenant: tenant.to_vec(),
        resource: "api".into(),
        amount: 1,
    };
    // The same path with valid bytes is an ordinary Acquire.
    let ok = acquire_raw(&d, raw(b"web")).await.unwrap();
    assert_eq!(ok.decision(), Decision::Granted, "{ok:?}");

    let s = acquire_raw(&d, raw(b"we\xff\xfeb")).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(
        s.message()
            .starts_with("AcquireRequest.tenant: invalid string value: data is not UTF-8"),
        "{s:?}"
    );
    // The daemon still serves.
    let ok = acquire_raw(&d, raw(b"web")).await.unwrap();
    assert_eq!(ok.decision(), Decision::Granted, "{ok:?}");
}

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
    let s = c.acquire(acquire(&long, "api", 1)).await.unwrap_err();
    short(s, Code::NotFound, "tenant: unknown tenant \"xxxx");
    let s = c.acquire(acquire("web", &long, 1)).await.unwrap_err();
    short(s, Code::NotFound, "resource: unknown resource \"xxxx");
    let s = c.release(release(&long)).await.unwrap_err();
    short(s, Code::InvalidArgument, "lease_id: \"xxxx");
    let s = c
        .watch_forecast(WatchForecastRequest {
            tenant: long.clone(),
        })
        .await
        .unwrap_err();
    short(s, Code::NotFound, "tenant: unknown tenant \"xxxx");
    for (tenant, resource, field) in [(&*long, "api", "tenant"), ("web", &*long, "resource")] {
        let s = c
            .get_forecast(prescient::proto::GetForecastRequest {
                tenant: tenant.into(),
                resource: resource.into(),
            })
            .await
            .unwrap_err();
        short(s, Code::NotFound, &format!("{field}: "));
    }
}
