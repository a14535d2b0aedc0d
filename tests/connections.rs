//! The gRPC port's connections against the real binary under a low
//! file-descriptor limit: a flood of idle connections and descriptors run
//! out must not stop the daemon answering, on gRPC or on the admin port,
//! nor make it spin; idle connections are closed, and their clients
//! carry on.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use common::probe::{cpu_over, healthz, metric, open_fds};
use common::{Daemon, eventually};
use prescient::proto::{AcquireRequest, Decision, WatchForecastRequest};

const POLICY: &str = "resources:\n  api: { kind: rate, capacity: 100000 }\n\
                      tenants:\n  t00: { qos: silver, limits: { api: { guaranteed: 100 } } }\n";

fn acquire(tenant: &str) -> AcquireRequest {
    AcquireRequest {
        tenant: tenant.into(),
        resource: "api".into(),
        amount: 1,
        ..Default::default()
    }
}

/// Whether the server has closed this (never written) connection.
fn closed_by_server(mut s: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[tokio::test]
async fn out_of_descriptors_the_daemon_keeps_answering_and_reaps_idle_connections() {
    const FLOOD: usize = 100;
    let d = Daemon::start_with_fd_limit(POLICY, &[("PRESCIENT_GRPC__IDLE_TIMEOUT", "2s")], 64);
    let pid = d.child.id();
    // A client that was there first, with a stream open: never idle.
    let mut first = d.client().await;
    let _stream = first
        .watch_forecast(WatchForecastRequest {
            tenant: String::new(),
        })
        .await
        .unwrap();
    let grpc = d.grpc;
    let flood: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..FLOOD)
            .map(|_| {
                let s = TcpStream::connect(grpc).unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect()
    })
    .await
    .unwrap();
    // The daemon has dealt with the flood once it has closed every
    // connection beyond its bound (or, unbounded, run out of descriptors).
    eventually(Duration::from_secs(30), "the flood accepted", || {
        let closed = flood.iter().filter(|s| closed_by_server(s)).count();
        async move { (closed >= FLOOD - 32 || open_fds(pid) >= 64).then_some(()) }
    })
    .await;

    // While the idle connections are held: the admin port answers, the
    // first client is served, and the daemon does not spin.
    assert_eq!(healthz(&d).await, Some(200), "/healthz during the flood");
    let r = tokio::time::timeout(Duration::from_secs(10), first.acquire(acquire("t00")))
        .await
        .expect("Acquire answered during the flood")
        .unwrap();
    assert_eq!(r.into_inner().decision(), Decision::Granted);
    let cpu = cpu_over(pid, Duration::from_secs(2)).await;
    assert!(cpu < 0.5, "the daemon used {cpu:.2} of a core while idle");
    let open = metric(&d, "prescient_grpc_connections").await.unwrap();
    assert!(open <= 32.0, "{open} connections open under a 64-fd limit");

    // Every idle connection is closed: at once beyond the bound, after the
    // idle timeout below it. The one with a stream stays.
    eventually(Duration::from_secs(30), "idle connections reaped", || {
        let closed = flood.iter().filter(|s| closed_by_server(s)).count();
        async move { (closed == FLOOD).then_some(()) }
    })
    .await;
    drop(flood);
    let refused = metric(&d, "prescient_grpc_connections_refused_total").await;
    assert!(refused.unwrap() >= (FLOOD - 32) as f64, "{refused:?}");
    let reaped = metric(&d, "prescient_grpc_connections_reaped_total").await;
    assert!(reaped.unwrap() >= 1.0, "{reaped:?}");
    let streams = metric(&d, "prescient_watch_streams").await;
    assert_eq!(streams, Some(1.0), "the connection with a stream stays");

    // And new clients are served again.
    let r = d.client().await.acquire(acquire("t00")).await.unwrap();
    assert_eq!(r.into_inner().decision(), Decision::Granted);
    assert_eq!(healthz(&d).await, Some(200));
}

#[tokio::test]
async fn a_client_whose_idle_connection_was_closed_carries_on_without_errors() {
    let d = Daemon::start(POLICY, &[("PRESCIENT_GRPC__IDLE_TIMEOUT", "1s")]);
    let mut c = d.client().await;
    c.acquire(acquire("t00")).await.unwrap();
    for reaped in 1..=3 {
        eventually(
            Duration::from_secs(30),
            "the idle connection closed",
            || async {
                let n = metric(&d, "prescient_grpc_connections_reaped_total").await?;
                (n >= f64::from(reaped)).then_some(())
            },
        )
        .await;
        // The server counts the reap when it decides it; wait until it has
        // also dropped the socket (a call sent before that would race the
        // close on a connection the client still thinks open).
        eventually(
            Duration::from_secs(30),
            "the reaped connection's socket closed",
            || async {
                let open = metric(&d, "prescient_grpc_connections").await?;
                (open == 0.0).then_some(())
            },
        )
        .await;
        // Right after the close: tonic reconnects, the call is not lost.
        let r = c.acquire(acquire("t00")).await.unwrap();
        assert_eq!(r.into_inner().decision(), Decision::Granted);
    }
}

#[tokio::test]
async fn out_of_descriptors_the_accept_loop_backs_off_instead_of_spinning() {
    let d = Daemon::start_with_fd_limit(POLICY, &[], 64);
    let pid = d.child.id();
    let mut first = d.client().await;
    // Served once, so its connection was accepted before the fds ran out.
    first.acquire(acquire("t00")).await.unwrap();
    // Idle admin connections take every descriptor the daemon has left...
    let admin = d.admin;
    let hogs: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..80)
            .map(|_| TcpStream::connect(admin).unwrap())
            .collect()
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "the fd table to fill", || async {
        (open_fds(pid) >= 64).then_some(())
    })
    .await;
    // ...so these gRPC connections cannot be accepted (EMFILE).
    let grpc = d.grpc;
    let waiting: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..5).map(|_| TcpStream::connect(grpc).unwrap()).collect()
    })
    .await
    .unwrap();
    let cpu = cpu_over(pid, Duration::from_secs(2)).await;
    assert!(cpu < 0.5, "the daemon used {cpu:.2} of a core out of fds");
    // The connection it already had is still served.
    let r = tokio::time::timeout(Duration::from_secs(10), first.acquire(acquire("t00")))
        .await
        .expect("Acquire answered out of fds")
        .unwrap();
    assert_eq!(r.into_inner().decision(), Decision::Granted);

    // Descriptors come back: both ports serve new connections again.
    drop(hogs);
    drop(waiting);
    eventually(
        Duration::from_secs(30),
        "/healthz after the fds return",
        || async { (healthz(&d).await == Some(200)).then_some(()) },
    )
    .await;
    let r = d.client().await.acquire(acquire("t00")).await.unwrap();
    assert_eq!(r.into_inner().decision(), Decision::Granted);
}
