//! Which connections have a call open: a tower layer over every service on
//! the gRPC port that counts a call from its request until its response
//! body is dropped (a parked Acquire and a WatchForecast stream are open
//! calls for as long as they last), on the connection it came in on.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::codegen::{Service, http};

use super::conn::{CallGuard, ConnInfo};

/// Wraps a service in [`OpenCalls`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenCallsLayer;

impl<S> tower_layer::Layer<S> for OpenCallsLayer {
    type Service = OpenCalls<S>;

    fn layer(&self, inner: S) -> OpenCalls<S> {
        OpenCalls { inner }
    }
}

/// Counts each call on its connection while it is open.
#[derive(Debug, Clone)]
pub struct OpenCalls<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for OpenCalls<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<Counted<R>>;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Absent only for connections not accepted by `Incoming` (none on
        // the daemon's port).
        let guard = request
            .extensions()
            .get::<ConnInfo>()
            .map(ConnInfo::call_opened);
        CountedFuture {
            inner: self.inner.call(request),
            guard,
        }
    }
}

pin_project! {
    /// The response on its way; the call stays counted.
    pub struct CountedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<CallGuard>,
    }
}

impl<F, R, E> Future for CountedFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<Counted<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| Counted {
            inner,
            _guard: guard,
        })))
    }
}

pin_project! {
    /// A response body; the call ends when it is dropped (sent, or the
    /// stream reset, or the connection gone).
    pub struct Counted<B> {
        #[pin]
        inner: B,
        _guard: Option<CallGuard>,
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
