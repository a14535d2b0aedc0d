//! The connection to one daemon and the calls over it: Acquire (retried,
//! waiting if asked), Release and Report.

use tokio::runtime::Handle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::proto::admission_client::AdmissionClient;
use crate::proto::{self, Decision};
use crate::retry::{self, Budget, Failure};
use crate::{Demand, Error, Permit, Released, RetryPolicy};

/// The generated client, with the bearer token on every call.
pub type Rpc = AdmissionClient<InterceptedService<Channel, Bearer>>;

/// A handle on one daemon. Cheap to clone (clones share the connection);
/// made inside a tokio runtime, whose handle releases dropped
/// [`Permit`]s.
///
/// ```no_run
/// # async fn demo() -> Result<(), prescient_client::Error> {
/// use prescient_client::{Client, Demand, Outcome};
///
/// let client = Client::connect("http://127.0.0.1:50051").await?;
/// let permit = client.acquire(Demand::new("checkout", "worker_slots", 1)).await?;
/// // … the work …
/// permit.report(1, Outcome::Success).await?; // or drop it: the slot is released
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    rpc: Rpc,
    retry: RetryPolicy,
    runtime: Handle,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("retry", &self.retry)
            .finish()
    }
}

/// How to reach the daemon: endpoint, bearer token, TLS, retries.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    token: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<tonic::transport::ClientTlsConfig>,
    retry: RetryPolicy,
}

impl ClientBuilder {
    /// Sends `authorization: Bearer <token>` on every call, for a daemon
    /// with `auth.tokens_file` set.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Talks TLS (or mutual TLS, with an identity in `tls`) to a daemon
    /// with `tls.*` set; a bare `host:port` endpoint then means `https://`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: tonic::transport::ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How calls that get no answer are retried (default:
    /// [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Connects now: fails if the daemon cannot be reached.
    pub async fn connect(self) -> Result<Client, Error> {
        let (endpoint, bearer, runtime) = self.parts()?;
        let channel = endpoint.connect().await.map_err(|e| Error::Unavailable {
            attempts: 1,
            last: retry::describe(&Status::from_error(Box::new(e))),
        })?;
        Ok(Client::new(channel, bearer, self.retry, runtime))
    }

    /// Connects on the first call (and reconnects after failures), so a
    /// daemon that starts later is no error here.
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let (endpoint, bearer, runtime) = self.parts()?;
        Ok(Client::new(
            endpoint.connect_lazy(),
            bearer,
            self.retry,
            runtime,
        ))
    }

    fn parts(&self) -> Result<(Endpoint, Bearer, Handle), Error> {
        let runtime = Handle::try_current().map_err(|e| Error::Config {
            what: "runtime",
            reason: format!("a Client is made inside a tokio runtime: {e}"),
        })?;
        let bad = |what, reason: String| Error::Config { what, reason };
        let mut uri = self.endpoint.clone();
        if !uri.contains("://") {
            #[cfg(feature = "tls")]
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            #[cfg(not(feature = "tls"))]
            let scheme = "http";
            uri = format!("{scheme}://{uri}");
        }
        #[allow(unused_mut)]
        let mut endpoint =
            Endpoint::from_shared(uri).map_err(|e| bad("endpoint", format!("{e:?}")))?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| bad("tls", e.to_string()))?;
        }
        let bearer = match &self.token {
            None => Bearer(None),
            Some(t) => {
                let mut v: MetadataValue<Ascii> = format!("Bearer {t}")
                    .parse()
                    .map_err(|_| bad("bearer_token", "not a valid header value".into()))?;
                v.set_sensitive(true);
                Bearer(Some(v))
            }
        };
        Ok((endpoint, bearer, runtime))
    }
}

/// Adds the bearer token, if any, to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut().insert("authorization", token.clone());
        }
        Ok(req)
    }
}

impl Client {
    /// Connects to the daemon at `endpoint` (`http://host:port`, or
    /// `host:port`) with the default settings.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        Self::builder(endpoint).connect().await
    }

    /// Settings beyond the endpoint: token, TLS, retries.
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            token: None,
            #[cfg(feature = "tls")]
            tls: None,
            retry: RetryPolicy::default(),
        }
    }

    fn new(channel: Channel, bearer: Bearer, retry: RetryPolicy, runtime: Handle) -> Self {
        Self {
            rpc: AdmissionClient::with_interceptor(channel, bearer),
            retry,
            runtime,
        }
    }

    /// Acquires `demand`: a [`Permit`] once granted, [`Error::Denied`] when
    /// not (at once, or once `max_wait` is spent). Every attempt carries the
    /// same `request_id`, so retries after lost answers are paid once.
    pub async fn acquire(&self, demand: Demand) -> Result<Permit, Error> {
        let request_id = demand.request_id.clone().unwrap_or_else(new_request_id);
        let budget = Budget {
            timeout: (demand.timeout).unwrap_or(demand.max_wait + self.retry.default_timeout()),
            max_wait: demand.max_wait,
        };
        let started = tokio::time::Instant::now();
        let answer = retry::run(&self.retry, budget, |left| {
            let mut rpc = self.rpc.clone();
            let mut req = Request::new(proto::AcquireRequest {
                tenant: demand.tenant.clone(),
                resource: demand.resource.clone(),
                amount: demand.amount,
                priority: demand.priority,
                max_wait: (!left.wait.is_zero()).then(|| wire(left.wait.min(left.time))),
                request_id: request_id.clone(),
                lease: demand.estimate,
            });
            req.set_timeout(left.time);
            let denied = |retry_after: Option<prost_types::Duration>| Error::Denied {
                tenant: demand.tenant.clone(),
                resource: demand.resource.clone(),
                amount: demand.amount,
                retry_after: retry_after.map(unwire).unwrap_or_default(),
            };
            async move {
                let r = rpc
                    .acquire(req)
                    .await
                    .map_err(Failure::from_status)?
                    .into_inner();
                match r.decision() {
                    Decision::Granted => Ok(r),
                    Decision::Denied => Err(Failure::Denied(denied(r.retry_after))),
                    Decision::Unspecified => Err(Failure::Fatal(Error::Rpc(Status::unknown(
                        "decision: unspecified in the daemon's answer",
                    )))),
                }
            }
        })
        .await?;
        Ok(Permit::new(
            self.clone(),
            demand,
            request_id,
            answer,
            started,
        ))
    }

    /// Releases a lease by id (idempotent; retried like an Acquire).
    pub async fn release(&self, lease_id: &str) -> Result<Released, Error> {
        let r = self
            .call(|mut rpc| {
                let req = proto::ReleaseRequest {
                    lease_id: lease_id.to_owned(),
                };
                async move { rpc.release(req).await }
            })
            .await?;
        Ok(Released {
            units: r.released_units,
            already_released: r.already_released,
        })
    }

    /// Reports finished work; an entry the daemon refuses is an
    /// [`Error::InvalidArgument`] with its reason (entries before it are
    /// applied). A retry after a lost answer cannot settle a lease twice.
    pub async fn report(&self, entries: Vec<proto::ReportEntry>) -> Result<u32, Error> {
        let r = self
            .call(|mut rpc| {
                let req = proto::ReportRequest {
                    entries: entries.clone(),
                };
                async move { rpc.report(req).await }
            })
            .await?;
        if r.rejected > 0 {
            return Err(Error::InvalidArgument(r.errors.join("; ")));
        }
        Ok(r.accepted)
    }

    /// The generated client over the same connection, for the calls this
    /// crate does not wrap (`GetForecast`, `WatchForecast`).
    pub fn rpc(&self) -> Rpc {
        self.rpc.clone()
    }

    /// The runtime that releases dropped permits.
    pub(crate) fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// One unary call with the retry policy and its default deadline.
    async fn call<T, F, Fut>(&self, mut send: F) -> Result<T, Error>
    where
        F: FnMut(Rpc) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let budget = Budget {
            timeout: self.retry.default_timeout(),
            max_wait: std::time::Duration::ZERO,
        };
        retry::run(&self.retry, budget, |_| {
            let call = send(self.rpc.clone());
            async move {
                call.await
                    .map(tonic::Response::into_inner)
                    .map_err(Failure::from_status)
            }
        })
        .await
    }
}

/// 128 random bits, as hex: unique per Acquire, the same on its retries.
fn new_request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

pub(crate) fn wire(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs().min(i64::MAX as u64) as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn unwire(d: prost_types::Duration) -> std::time::Duration {
    std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
}
