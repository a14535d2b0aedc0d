//! The gRPC port's request workers, laid out as `grpc.runtime` says.
//!
//! `multi_thread`: one tonic server on the daemon's runtime, tokio's
//! work-stealing pool of `grpc.workers` threads. `per_core`: `grpc.workers`
//! threads, each with its own current-thread runtime and its own
//! `SO_REUSEPORT` listener on the same address: the kernel spreads new
//! connections over the listeners, and a call is read, decided and answered
//! on one thread with no hand-off. The daemon's own runtime (one worker)
//! keeps the admin port, the watcher, the waiter dispatchers and the
//! supervisor; the planner and refits have their own threads in both.
//!
//! Shutdown is the same in both: every worker stops accepting, the core
//! answers waiters UNAVAILABLE, calls in flight get the grace, then the
//! connections still open are closed (one [`Connections`] for all workers,
//! so `grpc.max_connections` bounds them all together).

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::connections::Connections;
use crate::settings::{GrpcSettings, RuntimeLayout};
use crate::supervisor::Supervisor;

/// How long closed connections get to wind down before shutdown stops
/// waiting for them.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Waiting connections a listener's queue holds (tokio's own default).
const BACKLOG: i32 = 1024;

/// The runtime `prescient serve` runs the daemon on: for `multi_thread`
/// the request workers' pool, for `per_core` a single thread for the
/// background work (the workers get their own in [`Listeners::spawn`]).
pub fn runtime(grpc: &GrpcSettings) -> std::io::Result<tokio::runtime::Runtime> {
    match grpc.runtime {
        RuntimeLayout::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(grpc.worker_count())
            .enable_all()
            .build(),
        // One worker thread beside the thread that runs `serve` itself, so
        // background tasks (the watcher's first look at the policy file)
        // run while the daemon starts, as they do in `multi_thread`.
        RuntimeLayout::PerCore => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build(),
    }
}

/// The gRPC port's bound listeners, before any worker runs.
pub(super) enum Listeners {
    /// One listener on the daemon's runtime.
    Shared(TcpListener),
    /// One listener per worker, all on the same address.
    PerCore(Vec<std::net::TcpListener>),
}

impl Listeners {
    /// Binds `addr` as `grpc` lays it out; with port 0 every per-core
    /// listener shares the one port the first was given.
    pub(super) async fn bind(addr: SocketAddr, grpc: &GrpcSettings) -> std::io::Result<Self> {
        match grpc.runtime {
            RuntimeLayout::MultiThread => Ok(Self::Shared(TcpListener::bind(addr).await?)),
            RuntimeLayout::PerCore => {
                let first = reuse_port_listener(addr)?;
                let bound = first.local_addr()?;
                let mut all = vec![first];
                for _ in 1..grpc.worker_count() {
                    all.push(reuse_port_listener(bound)?);
                }
                Ok(Self::PerCore(all))
            }
        }
    }

    /// The address actually bound.
    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Self::Shared(l) => l.local_addr(),
            Self::PerCore(all) => all[0].local_addr(),
        }
    }

    /// How many threads serve calls.
    pub(super) fn workers(&self, grpc: &GrpcSettings) -> usize {
        match self {
            Self::Shared(_) => grpc.worker_count(),
            Self::PerCore(all) => all.len(),
        }
    }

    /// Runs `serve` on every listener under `tasks`: on the daemon's runtime
    /// (`Shared`), or each on a thread and runtime of its own (`PerCore`),
    /// whose task ends once that runtime is gone. Returns once every worker
    /// is accepting.
    pub(super) async fn spawn<S, F>(self, tasks: &mut Supervisor, serve: S) -> anyhow::Result<()>
    where
        S: Fn(TcpListener) -> F + Clone + Send + 'static,
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        match self {
            Self::Shared(listener) => {
                tasks.spawn("gRPC server", serve(listener));
            }
            Self::PerCore(all) => {
                let mut accepting = Vec::new();
                for (i, listener) in all.into_iter().enumerate() {
                    let serve = serve.clone();
                    let (done, ended) = tokio::sync::oneshot::channel();
                    let (ready, started) = tokio::sync::oneshot::channel::<()>();
                    accepting.push(started);
                    std::thread::Builder::new()
                        // Short: Linux keeps 15 bytes of a thread's name.
                        .name(format!("grpc-worker-{i}"))
                        .spawn(move || {
                            let served = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .context("cannot start a gRPC worker's runtime")
                                .and_then(|runtime| {
                                    let served = runtime.block_on(async move {
                                        let listener = TcpListener::from_std(listener)?;
                                        let _ = ready.send(());
                                        serve(listener).await
                                    });
                                    // Its connections' tasks end here, before
                                    // the daemon counts this worker stopped.
                                    drop(runtime);
                                    served
                                });
                            let _ = done.send(served);
                        })
                        .context("cannot start a gRPC worker thread")?;
                    tasks.spawn("gRPC worker", async move {
                        ended
                            .await
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("the worker thread panicked")))
                    });
                }
                for started in accepting {
                    // Dropped unsent: that worker failed, and its task says why.
                    let _ = started.await;
                }
            }
        }
        Ok(())
    }
}

/// A non-blocking listener on `addr` with `SO_REUSEPORT`, so the other
/// workers' listeners may bind the same address.
fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Awaits a worker's tonic server (`serve`, which stops accepting once
/// `stop` is cancelled); at the end of the shutdown grace closes the
/// connections still open and waits [`CLOSE_WAIT`] for them at most.
pub(super) async fn drain(
    serve: impl Future<Output = Result<(), tonic::transport::Error>>,
    stop: CancellationToken,
    grace: std::time::Duration,
    connections: Connections,
) -> anyhow::Result<()> {
    tokio::pin!(serve);
    tokio::select! {
        served = &mut serve => return served.context("gRPC server failed"),
        () = super::after_grace(&stop, grace) => {}
    }
    // Calls still open (a client that stopped reading its stream) end with
    // their connection. The first worker here closes every worker's, and
    // says so once.
    if let Some(open) = connections.close_all() {
        tracing::warn!(
            connections = open,
            ?grace,
            "closing the gRPC connections still open after the shutdown grace"
        );
    }
    match tokio::time::timeout(CLOSE_WAIT, serve).await {
        Ok(served) => served.context("gRPC server failed"),
        Err(_) => {
            if connections.first_to_give_up() {
                tracing::warn!("gRPC connections did not close; they end with the process");
            }
            Ok(())
        }
    }
}
