//! WatchForecast against the real binary with clients that never open
//! their HTTP/2 flow-control window: the daemon's memory stays bounded, the
//! streams open at once are capped, and SIGTERM does not wait for them
//! beyond the shutdown grace.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::probe::{healthz, rss_kb};
use common::{Daemon, eventually};
use prescient::proto::{AcquireRequest, Decision, WatchForecastRequest, WatchForecastResponse};
use prost::Message;

/// Twenty tenants on one resource: twenty forecast messages a tick for a
/// stream that watches every tenant.
fn policy() -> String {
    let mut p = String::from("resources:\n  api: { kind: rate, capacity: 100000 }\ntenants:\n");
    for i in 0..20 {
        p.push_str(&format!(
            "  t{i:02}: {{ qos: silver, limits: {{ api: {{ guaranteed: 10 }} }} }}\n"
        ));
    }
    p
}

fn acquire(tenant: &str) -> AcquireRequest {
    AcquireRequest {
        tenant: tenant.into(),
        resource: "api".into(),
        amount: 1,
        ..Default::default()
    }
}

/// A raw HTTP/2 connection whose client answers pings but gives every
/// stream a receive window of 0 and never reads a body.
async fn stalled_connection(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake(tcp)
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// One WatchForecast call on `send` for every tenant; returns the response
/// (headers only: the body is never read) and the request stream, both of
/// which must be kept alive or h2 resets the stream.
async fn watch_every_tenant(
    send: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
) -> (http::Response<h2::RecvStream>, h2::SendStream<Bytes>) {
    let request = http::Request::post(format!(
        "http://{addr}/prescient.v1.Admission/WatchForecast"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let mut send = send.clone().ready().await.unwrap();
    let (response, mut body) = send.send_request(request, false).unwrap();
    let message = WatchForecastRequest {
        tenant: String::new(),
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    body.send_data(frame.into(), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .expect("response headers")
        .unwrap();
    (response, body)
}

/// The gRPC status a response's headers carry (a trailers-only answer),
/// `None` for a stream that started.
fn grpc_status(response: &http::Response<h2::RecvStream>) -> Option<i32> {
    response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

/// Counts the messages a stream that keeps up receives (one per series
/// per tick), in the background.
fn count_messages(mut stream: tonic::Streaming<WatchForecastResponse>) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok(Some(_)) = stream.message().await {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    count
}

/// Waits until a counted stream has seen `ticks` more ticks of twenty
/// series each.
async fn ticks_pass(count: &AtomicUsize, ticks: usize) {
    let target = count.load(Ordering::Relaxed) + ticks * 20;
    eventually(Duration::from_secs(120), "the planner to tick", || async {
        (count.load(Ordering::Relaxed) >= target).then_some(())
    })
    .await;
}

async fn watch_all(d: &Daemon) -> tonic::Streaming<WatchForecastResponse> {
    d.client()
        .await
        .watch_forecast(WatchForecastRequest {
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn stalled_watch_streams_hold_bounded_memory_and_the_total_is_capped() {
    const PER_CONNECTION: usize = 150;
    const MAX_WATCH: usize = 250;
    let d = Daemon::start(
        &policy(),
        &[
            ("PRESCIENT_TICK", "20ms"),
            ("PRESCIENT_GRPC__MAX_WATCH_STREAMS", &MAX_WATCH.to_string()),
        ],
    );
    let pid = d.child.id();
    let ticks = count_messages(watch_all(&d).await);
    ticks_pass(&ticks, 5).await;
    let baseline_kb = rss_kb(pid);

    // Two connections of stalled streams; the second one goes past the
    // total (the counting reader holds one of the slots).
    let mut connections = Vec::new();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..2 {
        let send = stalled_connection(d.grpc).await;
        for _ in 0..PER_CONNECTION {
            let (response, body) = watch_every_tenant(&send, d.grpc).await;
            match grpc_status(&response) {
                None => held.push((response, body)),
                Some(8) => refused += 1, // RESOURCE_EXHAUSTED
                Some(other) => panic!("unexpected grpc-status {other}: {response:?}"),
            }
        }
        connections.push(send);
    }
    // Long enough for every stalled stream to have fallen 100 ticks (2,000
    // messages) behind: a per-stream queue would now be full.
    ticks_pass(&ticks, 100).await;
    let rss_kb = rss_kb(pid);
    eprintln!(
        "RSS {baseline_kb} kB before, {rss_kb} kB with {} stalled streams",
        held.len()
    );
    assert!(
        rss_kb < baseline_kb + 64 * 1024,
        "RSS grew from {baseline_kb} kB to {rss_kb} kB with {} stalled streams",
        held.len()
    );
    assert_eq!(held.len(), MAX_WATCH - 1, "streams open beside the reader");
    assert_eq!(refused, 2 * PER_CONNECTION - (MAX_WATCH - 1));

    // The daemon still answers, on both ports.
    assert_eq!(healthz(&d).await, Some(200));
    let r = d.client().await.acquire(acquire("t00")).await.unwrap();
    assert_eq!(r.into_inner().decision(), Decision::Granted);
    // A slot freed is a slot another watcher can take.
    drop(held.pop());
    eventually(Duration::from_secs(30), "a freed watch slot", || async {
        let send = stalled_connection(d.grpc).await;
        let (response, body) = watch_every_tenant(&send, d.grpc).await;
        grpc_status(&response)
            .is_none()
            .then_some((send, response, body))
    })
    .await;
}

#[tokio::test]
async fn sigterm_with_undrained_streams_exits_within_the_grace_period_and_says_so_once() {
    const GRACE: Duration = Duration::from_secs(1);
    // Enough connections that, with two workers, both hold some (the
    // kernel spreads them over the per-core listeners); each worker then
    // reaches the end of the grace with connections open.
    const STALLED: usize = 8;
    let mut d = Daemon::start(
        &policy(),
        &[
            ("PRESCIENT_TICK", "20ms"),
            ("PRESCIENT_GRPC__SHUTDOWN_GRACE", "1s"),
            ("PRESCIENT_GRPC__WORKERS", "2"),
        ],
    );
    let ticks = count_messages(watch_all(&d).await);
    let mut held = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..STALLED {
        let send = stalled_connection(d.grpc).await;
        for _ in 0..3 {
            held.push(watch_every_tenant(&send, d.grpc).await);
        }
        connections.push(send);
    }
    ticks_pass(&ticks, 20).await;

    let asked = Instant::now();
    d.signal("TERM");
    let limit = GRACE + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < limit,
            "still running {:?} after SIGTERM with undrained streams",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(d.logged(&["grace"]), "the forced close is logged");
    // Once per shutdown, whatever the layout, with every worker's count.
    let log = d.log.lock().unwrap().clone();
    let closing: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("closing the gRPC connections still open"))
        .collect();
    assert_eq!(closing.len(), 1, "{closing:#?}");
    let closed: usize = closing[0]
        .split("connections=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no connections= in {:?}", closing[0]));
    assert!(
        closed >= STALLED,
        "{closed} connections closed: {}",
        closing[0]
    );
    drop((held, connections));
}
