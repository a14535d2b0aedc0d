//! The Rust client crate (`client/`, `prescient-client`) against the real
//! daemon over real sockets: permits give their lease back, retries are
//! paid once and wait for `retry_after`, deadlines hold, the tower layer
//! answers 429, reports settle estimates, bearer tokens go through.

mod common;
#[path = "client/proxy.rs"]
mod proxy;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ANSWER, Daemon, eventually};
use prescient_client::{AdmissionLayer, Client, Demand, Error, LayerError, Outcome, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `web` is bronze (no borrowing): its own pools are all it gets. `slots`
/// holds 2 units; `api` refills 1 token/s into a 10-token bucket, so a test
/// sees refunds, not refill; `fast` refills 10/s.
const POLICY: &str = r#"
resources:
  slots: { kind: concurrency, capacity: 2, lease_ttl: 1h }
  api: { kind: rate, capacity: 100 }
  fast: { kind: rate, capacity: 100 }
tenants:
  web:
    qos: bronze
    limits:
      slots: { guaranteed: 2 }
      api: { guaranteed: 1, burst: 10 }
      fast: { guaranteed: 10 }
"#;

async fn client(d: &Daemon) -> Client {
    Client::connect(format!("http://{}", d.grpc)).await.unwrap()
}

fn slots(n: u64) -> Demand {
    Demand::new("web", "slots", n)
}

/// Polls until `web` can take `n` slots (then gives them back).
async fn slots_free(c: &Client, n: u64, what: &str) {
    eventually(ANSWER, what, || async {
        let permit = c.acquire(slots(n)).await.ok()?;
        permit.release().await.unwrap();
        Some(())
    })
    .await;
}

#[tokio::test]
async fn a_dropped_permit_gives_its_slots_back() {
    let d = Daemon::start(POLICY, &[]);
    let c = client(&d).await;
    let permit = c.acquire(slots(2)).await.unwrap();
    assert!(
        permit.lease_id().is_some(),
        "a concurrency grant holds a lease"
    );
    let e = c.acquire(slots(1)).await.unwrap_err();
    assert!(e.is_denied(), "both slots are held: {e}");
    drop(permit);
    slots_free(&c, 2, "the dropped permit's slots").await;
}

#[tokio::test]
async fn release_returns_the_units_and_forget_keeps_them_held() {
    let d = Daemon::start(POLICY, &[]);
    let c = client(&d).await;
    let released = c.acquire(slots(2)).await.unwrap().release().await.unwrap();
    assert_eq!((released.units, released.already_released), (2, false));
    let lease = c.acquire(slots(2)).await.unwrap().forget().unwrap();
    assert!(
        c.acquire(slots(1)).await.unwrap_err().is_denied(),
        "still held"
    );
    assert_eq!(c.release(&lease).await.unwrap().units, 2);
    assert!(c.release(&lease).await.unwrap().already_released);
    c.acquire(slots(2)).await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_reuses_the_request_id_and_is_paid_once() {
    let d = Daemon::start(POLICY, &[]);
    let proxy = proxy::Proxy::start(d.grpc, 1).await;
    let through = Client::connect(format!("http://{}", proxy.addr))
        .await
        .unwrap();
    let permit = through.acquire(slots(1)).await.unwrap();
    assert_eq!(
        proxy.cut.load(Ordering::SeqCst),
        1,
        "the first answer was lost"
    );
    assert!(proxy.connections.load(Ordering::SeqCst) >= 2, "retried");
    // The daemon granted the lost attempt; the retry got that grant back
    // instead of a second unit.
    let c = client(&d).await;
    let other = c.acquire(slots(1)).await.unwrap();
    assert_eq!(other.remaining(), 0, "one unit each: {other:?}");
    assert!(c.acquire(slots(1)).await.unwrap_err().is_denied());
    // And the permit's lease is the one the daemon holds.
    assert_eq!(permit.release().await.unwrap().units, 1);
    assert_eq!(other.release().await.unwrap().units, 1);
    slots_free(&c, 2, "both slots").await;
}

#[tokio::test]
async fn a_caller_that_may_wait_is_granted_after_a_denial_with_retry_after() {
    // No queue: the daemon answers DENIED at once even to a caller that
    // would wait, so the client itself must wait out `retry_after`.
    let d = Daemon::start(POLICY, &[("PRESCIENT_ADMISSION__MAX_WAITERS", "0")]);
    let c = client(&d).await;
    let _spent = c.acquire(Demand::new("web", "fast", 10)).await.unwrap(); // the bucket is empty
    let e = c.acquire(Demand::new("web", "fast", 5)).await.unwrap_err();
    let retry_after = e.retry_after().expect("a denial");
    assert!(retry_after > Duration::ZERO, "{e}");
    let waited = Demand::new("web", "fast", 5).max_wait(Duration::from_secs(20));
    let permit = c.acquire(waited).await.unwrap();
    assert_eq!(permit.amount(), 5);
    // The daemon saw the waiting caller denied, then granted.
    let decided = |decision: &str| {
        let parts = [
            "prescient_acquisitions_total{",
            "tenant=\"web\"",
            "resource=\"fast\"",
        ];
        metric(&d, &parts, decision)
    };
    eventually(ANSWER, "the decisions counted", || async {
        (decided("granted") == 2.0 && decided("denied") >= 2.0).then_some(())
    })
    .await;
}

/// The sum of the `/metrics` samples whose line holds every one of `parts`
/// and `decision="…"`.
fn metric(d: &Daemon, parts: &[&str], decision: &str) -> f64 {
    let (_, body) = d.http_get("/metrics");
    let label = format!("decision=\"{decision}\"");
    body.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn an_acquire_gives_up_at_its_deadline_when_the_daemon_hangs() {
    let hung = proxy::black_hole().await;
    let c = Client::builder(hung.to_string())
        .retry(RetryPolicy::default().max_attempts(100))
        .connect_lazy()
        .unwrap();
    let demand = slots(1).timeout(Duration::from_millis(300));
    let answer = tokio::time::timeout(ANSWER, c.acquire(demand)).await;
    match answer.expect("the call ends by itself") {
        Err(Error::Deadline {
            timeout, attempts, ..
        }) => {
            assert_eq!(timeout, Duration::from_millis(300));
            assert!(attempts >= 1);
        }
        other => panic!("expected a deadline error, got {other:?}"),
    }
}

#[tokio::test]
async fn report_refunds_what_an_estimate_did_not_use() {
    let d = Daemon::start(POLICY, &[]);
    let c = client(&d).await;
    let api = |n| Demand::new("web", "api", n);
    let permit = c.acquire(api(10).estimate()).await.unwrap();
    assert!(permit.lease_id().is_some(), "an estimate carries a lease");
    assert!(c.acquire(api(6)).await.unwrap_err().is_denied(), "spent");
    permit.report(4, Outcome::Success).await.unwrap();
    let _refunded = c.acquire(api(6)).await.expect("the 6 unused came back");
    // A concurrency permit's report gives the slots back too.
    c.acquire(slots(2))
        .await
        .unwrap()
        .report(2, Outcome::Failure)
        .await
        .unwrap();
    let _freed = c.acquire(slots(2)).await.expect("released by the report");
}

#[tokio::test]
async fn the_daemons_refusals_are_typed_with_its_message() {
    let d = Daemon::start(POLICY, &[]);
    let c = client(&d).await;
    match c.acquire(slots(0)).await.unwrap_err() {
        Error::InvalidArgument(m) => assert!(m.starts_with("amount"), "{m}"),
        e => panic!("{e}"),
    }
    let e = c
        .acquire(Demand::new("nobody", "slots", 1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
}

#[tokio::test]
async fn a_bearer_token_is_sent_on_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    let token = "web-token-0123456789";
    std::fs::write(
        &tokens,
        format!("tokens:\n  - {{ name: web-api, token: {token}, tenants: [web] }}\n"),
    )
    .unwrap();
    let d = Daemon::start(
        POLICY,
        &[("PRESCIENT_AUTH__TOKENS_FILE", tokens.to_str().unwrap())],
    );
    let anonymous = client(&d).await;
    let e = anonymous.acquire(slots(1)).await.unwrap_err();
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    let c = Client::builder(d.grpc.to_string())
        .bearer_token(token)
        .connect()
        .await
        .unwrap();
    let permit = c.acquire(slots(1)).await.unwrap();
    assert_eq!(permit.release().await.unwrap().units, 1, "release too");
}

/// An HTTP service behind the layer: `x-tenant` names the tenant, each
/// request holds one slot while the handler runs.
async fn admitted_http(c: Client, calls: Arc<AtomicUsize>) -> std::net::SocketAddr {
    use axum::body::Body;
    use axum::error_handling::HandleErrorLayer;
    let layer = AdmissionLayer::new(c, |req: &http::Request<Body>| {
        let tenant = req.headers().get("x-tenant")?.to_str().ok()?;
        Some(Demand::new(tenant, "slots", 1))
    });
    let refused = HandleErrorLayer::new(|e: LayerError<Infallible>| async move {
        match e {
            LayerError::Admission(e) => e.into_http_response(),
            LayerError::Inner(never) => match never {},
        }
    });
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                "served"
            }),
        )
        .layer(tower_layer::Stack::new(layer, refused));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `GET /` as `tenant`: the status line and headers, lower-cased, and body.
async fn get(addr: std::net::SocketAddr, tenant: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET / HTTP/1.0\r\nHost: localhost\r\nx-tenant: {tenant}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.to_lowercase()
}

#[tokio::test]
async fn the_layer_answers_429_with_retry_after_while_the_slots_are_held() {
    let d = Daemon::start(POLICY, &[]);
    let c = client(&d).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = admitted_http(c.clone(), calls.clone()).await;

    let ok = get(addr, "web").await;
    assert!(
        ok.starts_with("http/1.0 200") && ok.ends_with("served"),
        "{ok}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The layer reported and released the slot after the response.
    slots_free(&c, 2, "the slot the layer held").await;

    let held = c.acquire(slots(2)).await.unwrap();
    let refused = get(addr, "web").await;
    assert!(refused.starts_with("http/1.0 429"), "{refused}");
    assert!(refused.contains("\r\nretry-after: "), "{refused}");
    assert!(refused.contains("denied: 1 of slots for web"), "{refused}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the service did not run");

    let unknown = get(addr, "nobody").await;
    assert!(unknown.starts_with("http/1.0 403"), "{unknown}");

    drop(held);
    eventually(ANSWER, "served again", || async {
        get(addr, "web")
            .await
            .starts_with("http/1.0 200")
            .then_some(())
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
