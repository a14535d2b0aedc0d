//! `prescient serve`: loads the policy, builds the core, binds the gRPC and
//! admin ports, and runs until told to stop. On shutdown it stops accepting,
//! answers waiters UNAVAILABLE, lets in-flight calls finish, then returns.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Readiness};
use crate::admission::Admission;
use crate::clock::Clock;
use crate::policy::{EMBEDDED_POLICY, Policy};
use crate::settings::Settings;

/// A started daemon.
pub struct Running {
    /// The gRPC address actually bound (port 0 resolved).
    pub grpc: SocketAddr,
    /// The admin HTTP address actually bound.
    pub admin: SocketAddr,
    pub core: Arc<Admission>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// A token that stops the daemon when cancelled.
    pub fn stopper(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops and waits for every task to finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits until the daemon has stopped (after its token is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        for task in self.tasks {
            task.await.context("daemon task panicked")??;
        }
        Ok(())
    }
}

/// The policy named by the settings, or the embedded example.
pub fn load_policy(settings: &Settings) -> anyhow::Result<Policy> {
    Ok(if settings.policy.as_os_str().is_empty() {
        Policy::load_str(EMBEDDED_POLICY, "embedded config/policies.yaml")?
    } else {
        Policy::load_file(&settings.policy)?
    })
}

/// Starts the daemon; returns once both ports are bound.
pub async fn start(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let policy = load_policy(settings)?;
    let core = Arc::new(Admission::new(
        &policy,
        settings.admission.to_config(),
        clock,
    ));
    let grpc_listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listen: cannot bind gRPC on {}", settings.listen))?;
    let admin_listener = TcpListener::bind(settings.admin_listen)
        .await
        .with_context(|| {
            format!(
                "admin_listen: cannot bind admin HTTP on {}",
                settings.admin_listen
            )
        })?;
    let grpc = grpc_listener.local_addr()?;
    let admin = admin_listener.local_addr()?;

    let cancel = CancellationToken::new();
    let readiness = Arc::new(Readiness::default());
    let mut tasks: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();
    for task in core.spawn(cancel.clone(), settings.admission.reap_interval) {
        tasks.push(tokio::spawn(async move {
            task.await.context("admission task panicked")
        }));
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<crate::proto::admission_server::AdmissionServer<crate::grpc::AdmissionService>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let (reflection_v1, reflection_v1alpha) = crate::grpc::reflection()?;
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(crate::grpc::admission_server(core.clone()));
    let stop = cancel.clone();
    let closing = core.clone();
    tasks.push(tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(TcpListenerStream::new(grpc_listener), async move {
                stop.cancelled().await;
                closing.close();
            })
            .await
            .context("gRPC server failed")
    }));

    let stop = cancel.clone();
    let app = admin::router(readiness.clone());
    tasks.push(tokio::spawn(async move {
        axum::serve(admin_listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .context("admin server failed")
    }));

    readiness.set(true);
    tracing::info!(
        grpc = %grpc,
        admin = %admin,
        policy = %policy.summary(),
        "prescient listening"
    );
    Ok(Running {
        grpc,
        admin,
        core,
        cancel,
        tasks,
    })
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let running = start(settings, clock).await?;
    let stop = running.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; draining");
        stop.cancel();
    });
    running.wait().await?;
    tracing::info!("prescient stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
