//! One supervisor for the daemon's tasks: when one fails, the whole daemon
//! stops (readiness cleared, ports closed, the failure returned), instead of
//! a daemon whose gRPC server died but whose `/readyz` still says ready.

mod common;

use prescient::proto::AcquireRequest;

#[tokio::test]
async fn a_failing_task_stops_the_whole_daemon_and_clears_readiness() {
    let (mut running, mut client) = common::start_in_process(
        "resources: { api: { kind: rate, capacity: 100 } }\ntenants: { web: { limits: { api: { guaranteed: 10 } } } }\n",
    )
    .await;
    let readiness = running.readiness.clone();
    let grpc = running.grpc;
    assert!(readiness.is_ready());
    // Serving, until a task fails.
    let ask = AcquireRequest {
        tenant: "web".into(),
        resource: "api".into(),
        amount: 1,
        ..Default::default()
    };
    client.acquire(ask).await.expect("serving");
    running.supervise("injected task", async {
        Err(anyhow::anyhow!("disk on fire"))
    });
    let e = running
        .wait()
        .await
        .expect_err("the daemon reports the failure");
    assert_eq!(format!("{e:#}"), "injected task failed: disk on fire");
    assert!(!readiness.is_ready(), "/readyz must not say ready");
    assert!(
        tokio::net::TcpStream::connect(grpc).await.is_err(),
        "the gRPC port is closed"
    );
}
