//! A `tower` layer that admits each request through the daemon: Acquire
//! before the inner service, Report (and Release) after, and a denial as
//! an error the service answers with 429 / RESOURCE_EXHAUSTED.
//!
//! ```no_run
//! # async fn demo() -> Result<(), prescient_client::Error> {
//! use prescient_client::{AdmissionLayer, Client, Demand, LayerError};
//! use tower::{Layer, Service, ServiceExt};
//!
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! // The tenant from a header; one `api` token per request.
//! let layer = AdmissionLayer::new(client, |req: &http::Request<String>| {
//!     let tenant = req.headers().get("x-tenant")?.to_str().ok()?;
//!     Some(Demand::new(tenant, "api", 1))
//! });
//! let inner = tower::service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_string()))
//! });
//! let mut service = layer.layer(inner);
//! let req = http::Request::builder().header("x-tenant", "checkout").body(String::new()).unwrap();
//! let response = match service.ready().await.unwrap().call(req).await {
//!     Ok(response) => response,
//!     // Denied: 429 with Retry-After; daemon unreachable: 503.
//!     Err(LayerError::Admission(e)) => e.into_http_response(),
//!     Err(LayerError::Inner(never)) => match never {},
//! };
//! # let _ = response; Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::{Client, Demand, Error, Outcome};

/// Wraps services in [`Admitted`]: each request is admitted for the
/// [`Demand`] that `demand` reads from it (`None`: let it through
/// unadmitted, e.g. health checks).
pub struct AdmissionLayer<F> {
    client: Client,
    demand: Arc<F>,
}

impl<F> AdmissionLayer<F> {
    pub fn new(client: Client, demand: F) -> Self {
        Self {
            client,
            demand: Arc::new(demand),
        }
    }
}

impl<F> Clone for AdmissionLayer<F> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            demand: Arc::clone(&self.demand),
        }
    }
}

impl<S, F> Layer<S> for AdmissionLayer<F> {
    type Service = Admitted<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Admitted {
            inner,
            client: self.client.clone(),
            demand: Arc::clone(&self.demand),
        }
    }
}

/// A service whose requests are admitted first. The inner service runs
/// only once granted; afterwards the grant is reported (`used` = the
/// amount acquired; outcome Failure when the inner service returned an
/// error) and released, off the response's path.
pub struct Admitted<S, F> {
    inner: S,
    client: Client,
    demand: Arc<F>,
}

impl<S: Clone, F> Clone for Admitted<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            client: self.client.clone(),
            demand: Arc::clone(&self.demand),
        }
    }
}

/// Why an admitted service failed: admission (a denial, or the daemon not
/// answering), or the inner service.
#[derive(Debug)]
pub enum LayerError<E> {
    Admission(Error),
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for LayerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admission(e) => write!(f, "admission: {e}"),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LayerError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Admission(e) => Some(e),
            Self::Inner(e) => e.source(),
        }
    }
}

impl<S, F, Req> Service<Req> for Admitted<S, F>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send,
    F: Fn(&Req) -> Option<Demand>,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = LayerError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(LayerError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let demand = (self.demand)(&req);
        // The instance polled ready serves this request; a clone waits for
        // the next one (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let client = self.client.clone();
        Box::pin(async move {
            let Some(demand) = demand else {
                return inner.call(req).await.map_err(LayerError::Inner);
            };
            let amount = demand.amount;
            let permit = client
                .acquire(demand)
                .await
                .map_err(LayerError::Admission)?;
            let result = inner.call(req).await;
            let outcome = match &result {
                Ok(_) => Outcome::Success,
                Err(_) => Outcome::Failure,
            };
            client.runtime().spawn(async move {
                // Lost reports only thin the daemon's history.
                let _ = permit.report(amount, outcome).await;
            });
            result.map_err(LayerError::Inner)
        })
    }
}
