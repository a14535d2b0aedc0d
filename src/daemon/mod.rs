//! `prescient serve`: loads the policy, builds the core, binds the gRPC and
//! admin ports, and runs until told to stop. On shutdown it stops accepting,
//! answers waiters UNAVAILABLE, lets in-flight calls finish for at most
//! `grpc.shutdown_grace`, closes the connections still open, then returns.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Readiness};
use crate::admission::Admission;
use crate::clock::Clock;
use crate::connections::{ConnectionLimits, Connections};
use crate::metrics::Metrics;
use crate::planner::{Planner, snapshot};
use crate::policy::{EMBEDDED_POLICY, Policy};
use crate::settings::Settings;
use crate::supervisor::Supervisor;
use crate::watcher::PolicyWatcher;
use planner_thread::{PlannerCall, spawn_planner};

mod membership;
mod planner_thread;
mod store_task;
mod workers;

pub use workers::runtime;

/// A started daemon.
pub struct Running {
    /// The gRPC address actually bound (port 0 resolved).
    pub grpc: SocketAddr,
    /// The admin HTTP address actually bound.
    pub admin: SocketAddr,
    pub core: Arc<Admission>,
    pub readiness: Arc<Readiness>,
    cancel: CancellationToken,
    tasks: Supervisor,
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

    /// Waits until the daemon has stopped: after its token is cancelled,
    /// or after one of its tasks failed (that failure is returned).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.tasks.wait().await
    }

    /// Runs one more task under the daemon's supervisor: it must run until
    /// the daemon's token is cancelled; if it fails, the daemon stops.
    pub fn supervise(
        &mut self,
        name: &'static str,
        task: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.tasks.spawn(name, task);
    }
}

/// The policy named by the settings, or the embedded example; with the
/// text it was read from (`None`: embedded).
pub fn load_policy(settings: &Settings) -> anyhow::Result<(Policy, Option<String>)> {
    if settings.policy.as_os_str().is_empty() {
        let policy = Policy::load_str(EMBEDDED_POLICY, "embedded config/policies.yaml")?;
        return Ok((policy, None));
    }
    let origin = settings.policy.display().to_string();
    let text = std::fs::read_to_string(&settings.policy).map_err(|e| {
        crate::policy::PolicyError::single(&origin, "", format!("cannot read: {e}"))
    })?;
    Ok((Policy::load_str(&text, &origin)?, Some(text)))
}

/// The gRPC port's TLS, from `tls.*` (PEM files); `None`: plaintext.
fn tls_config(settings: &Settings) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let tls = &settings.tls;
    if tls.cert_file.as_os_str().is_empty() {
        return Ok(None);
    }
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("tls.{key}: cannot read {}", path.display()))
    };
    let identity = Identity::from_pem(
        read("cert_file", &tls.cert_file)?,
        read("key_file", &tls.key_file)?,
    );
    let mut config = ServerTlsConfig::new().identity(identity);
    if !tls.client_ca_file.as_os_str().is_empty() {
        config = config.client_ca_root(Certificate::from_pem(read(
            "client_ca_file",
            &tls.client_ca_file,
        )?));
    }
    Ok(Some(config))
}

/// Starts the daemon; returns once both ports are bound.
pub async fn start(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let (policy, policy_text) = load_policy(settings)?;
    let auth = settings
        .auth()
        .map_err(|e| anyhow::anyhow!("auth.tokens_file: {e}"))?
        .map(Arc::new);
    let metrics = Arc::new(Metrics::new(settings.metrics.max_tenants));
    let core = Arc::new(
        Admission::new(&policy, settings.admission.to_config(), clock)
            .with_latency(metrics.acquire_latency.clone()),
    );
    let grpc_listeners = workers::Listeners::bind(settings.listen, &settings.grpc)
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
    let grpc = grpc_listeners.local_addr()?;
    let admin = admin_listener.local_addr()?;

    let cancel = CancellationToken::new();
    let readiness = Arc::new(Readiness::default());
    let mut planner = Planner::new(core.clone(), &policy, settings.planner_config())
        .with_metrics(metrics.clone());
    let state_dir =
        (!settings.state_dir.as_os_str().is_empty()).then(|| settings.state_dir.clone());
    if let Some(dir) = &state_dir {
        match snapshot::load(dir) {
            Ok(Some(saved)) => {
                let n = planner.restore(saved);
                tracing::info!(series = n, dir = %dir.display(), "history restored");
            }
            Ok(None) => tracing::info!(dir = %dir.display(), "no history snapshot yet"),
            Err(e) => tracing::warn!(error = %e, "history snapshot ignored; starting empty"),
        }
    }
    let forecasts = planner.subscribe();
    // The first tick runs before the ports open, so /readyz and GetForecast
    // are meaningful from the first request.
    planner.tick(core.clock().now());
    metrics.policy_in_force(
        policy_text.as_deref().unwrap_or(EMBEDDED_POLICY),
        std::time::SystemTime::now(),
    );
    let (to_planner, calls) = std::sync::mpsc::channel();
    let mut tasks = Supervisor::new(cancel.clone(), readiness.clone());
    let cluster = match settings.cluster_member() {
        None => None,
        Some(config) => Some(membership::join_cluster(
            settings,
            config,
            &policy,
            &core,
            &metrics,
            &mut tasks,
            to_planner.clone(),
            cancel.clone(),
        )?),
    };
    let planner_thread = spawn_planner(
        planner,
        settings.tick,
        state_dir.map(|dir| (dir, settings.planner.snapshot_every)),
        calls,
        cluster,
    );
    {
        // Shutdown: not ready any more, and the planner thread stops (it
        // saves a last snapshot).
        let cancel = cancel.clone();
        let to_planner = to_planner.clone();
        let readiness = readiness.clone();
        tasks.spawn("shutdown", async move {
            cancel.cancelled().await;
            readiness.set(false);
            let _ = to_planner.send(PlannerCall::Stop);
            Ok(())
        });
    }
    let background = core.spawn(cancel.clone(), settings.admission.reap_interval);
    background.close();
    tasks.spawn("waiter dispatchers and lease reaper", async move {
        background.wait().await;
        Ok(())
    });
    // Envoy's rate-limit rules follow the policy in force (`grpc/envoy`).
    let envoy_rules = crate::grpc::EnvoyRules::new(&policy);
    let watcher = match policy_text {
        Some(text) => {
            let apply =
                envoy_rules.follow(move |r| to_planner.send(PlannerCall::Reload(r)).is_ok());
            PolicyWatcher::new(
                settings.policy.clone(),
                policy.clone(),
                text,
                apply,
                metrics.clone(),
            )
            .spawn(settings.watch_config(), cancel.clone())?
        }
        None => crate::watcher::ignore_hangups(cancel.clone())?,
    };
    tasks.spawn("policy watcher", async move { watcher.await? });

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<crate::proto::admission_server::AdmissionServer<crate::grpc::AdmissionService>>()
        .await;
    health
        .set_serving::<crate::keda_proto::external_scaler_server::ExternalScalerServer<
            crate::grpc::keda::ScalerService,
        >>()
        .await;
    health
        .set_service_status(
            "envoy.service.ratelimit.v3.RateLimitService",
            tonic_health::ServingStatus::Serving,
        )
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let (reflection_v1, reflection_v1alpha) = crate::grpc::reflection()?;
    let connections = Connections::new(connection_limits(settings), metrics.connections.clone());
    let watches =
        crate::grpc::WatchSlots::new(settings.grpc.max_watch_streams, metrics.watches.clone());
    let mut server = settings.grpc.server().layer(connections.layer());
    if let Some(tls) = tls_config(settings)? {
        server = server
            .tls_config(tls)
            .context("tls: bad certificate or key")?;
    }
    let router = server
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(crate::grpc::keda::scaler_server(
            core.clone(),
            forecasts.clone(),
            watches.clone(),
        ))
        .add_service(crate::grpc::admission_server(
            core.clone(),
            forecasts,
            auth.clone(),
            watches,
        ))
        .add_service(crate::grpc::envoy_server(
            core.clone(),
            envoy_rules,
            auth.clone(),
        ));
    let closing = core.clone();
    let grace = settings.grpc.shutdown_grace;
    let shutdown = cancel.clone();
    let runtime = settings.grpc.runtime;
    let workers = grpc_listeners.workers(&settings.grpc);
    grpc_listeners
        .spawn(&mut tasks, move |listener| {
            let stop = shutdown.clone();
            let closing = closing.clone();
            let serve = router.clone().serve_with_incoming_shutdown(
                connections.incoming(listener),
                async move {
                    stop.cancelled().await;
                    closing.close();
                },
            );
            workers::drain(serve, shutdown.clone(), grace, connections.clone())
        })
        .await?;

    let stop = cancel.clone();
    let app = admin::router(readiness.clone(), metrics);
    tasks.spawn("admin server", async move {
        let serve = axum::serve(admin_listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future();
        tokio::select! {
            served = serve => served.context("admin server failed"),
            // Connections still open then end with the process.
            () = after_grace(&stop, grace) => Ok(()),
        }
    });

    tasks.spawn_blocking("planner", move || {
        planner_thread
            .join()
            .map_err(|_| anyhow::anyhow!("the planner thread panicked"))
    });

    if !settings.tls.cert_file.as_os_str().is_empty() {
        let mutual = !settings.tls.client_ca_file.as_os_str().is_empty();
        tracing::info!(mutual, "gRPC over TLS");
    }
    match &auth {
        Some(a) => tracing::info!(callers = ?a, "bearer-token authentication on"),
        None if !grpc.ip().is_loopback() => tracing::warn!(
            grpc = %grpc,
            "authentication is off and gRPC is not on loopback: any caller may act for any tenant"
        ),
        None => {}
    }
    readiness.set(true);
    tracing::info!(
        grpc = %grpc,
        admin = %admin,
        policy = %policy.summary(),
        %runtime,
        workers,
        watch = settings.reload.watch && !settings.policy.as_os_str().is_empty(),
        "prescient listening"
    );
    Ok(Running {
        grpc,
        admin,
        core,
        readiness,
        cancel,
        tasks,
    })
}

/// Resolves `grace` after `stop` is cancelled.
async fn after_grace(stop: &CancellationToken, grace: std::time::Duration) {
    stop.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// The connection limits from the settings, `max_connections` lowered to
/// what the file-descriptor limit leaves room for.
fn connection_limits(settings: &Settings) -> ConnectionLimits {
    let g = &settings.grpc;
    let mut max = g.max_connections;
    if let Some(limit) = crate::connections::fd_limit() {
        let room = crate::connections::fd_room(limit);
        if room < max {
            tracing::warn!(
                configured = max,
                max_connections = room,
                fd_limit = limit,
                "grpc.max_connections lowered to fit the file-descriptor limit (raise ulimit -n to allow more)"
            );
            max = room;
        }
    }
    ConnectionLimits {
        max,
        idle_timeout: (!g.idle_timeout.is_zero()).then_some(g.idle_timeout),
    }
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully; ends early,
/// with the error, if a daemon task fails.
pub async fn run(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives while the daemon starts (once
    // it has logged its addresses, say) must drain it, not kill it.
    let signal = shutdown_signal()?;
    let running = start(settings, clock).await?;
    let stop = running.stopper();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutdown signal received; draining");
        stop.cancel();
    });
    running.wait().await?;
    tracing::info!("prescient stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT; the handlers are in place on return.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
