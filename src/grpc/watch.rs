//! WatchForecast streams. A stream follows the planner's latest published
//! forecasts and holds nothing else: it builds its next message only when
//! tonic asks for one, which hyper does only when the client's HTTP/2
//! window has room. A reader that falls behind therefore skips ticks and
//! gets the newest forecast of each series; it never makes a queue grow.
//! Streams open at once are bounded over all connections.

use std::ops::Bound;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::ReusableBoxFuture;
use tonic::Status;

use crate::planner::{ForecastView, Forecasts};
use crate::proto;

/// WatchForecast counts, exported on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct WatchMetrics {
    pub open: Gauge,
    pub refused: Counter,
}

impl WatchMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "watch_streams",
            "WatchForecast streams open now",
            self.open.clone(),
        );
        registry.register(
            "watch_streams_refused",
            "WatchForecast calls refused RESOURCE_EXHAUSTED because grpc.max_watch_streams were open",
            self.refused.clone(),
        );
    }
}

/// The bound on WatchForecast streams open at once.
#[derive(Debug)]
pub struct WatchSlots {
    open: AtomicUsize,
    max: usize,
    metrics: WatchMetrics,
}

impl WatchSlots {
    pub fn new(max: usize, metrics: WatchMetrics) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
            metrics,
        })
    }

    /// A slot for one more stream, or RESOURCE_EXHAUSTED.
    pub fn take(self: &Arc<Self>) -> Result<WatchSlot, Status> {
        let max = self.max;
        if self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            self.metrics.refused.inc();
            return Err(Status::resource_exhausted(format!(
                "WatchForecast: {max} streams are open, the most grpc.max_watch_streams allows; retry later"
            )));
        }
        self.metrics.open.inc();
        Ok(WatchSlot(self.clone()))
    }
}

/// One open stream's place; given back when the stream is dropped.
#[derive(Debug)]
pub struct WatchSlot(Arc<WatchSlots>);

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.open.dec();
    }
}

type Receiver = watch::Receiver<Arc<Forecasts>>;
type Key = (Arc<str>, Arc<str>);
/// A change of the planner's forecasts (an error: the planner stopped),
/// and the receiver back.
type Change = (Result<(), watch::error::RecvError>, Receiver);

async fn next_change(mut forecasts: Receiver) -> Change {
    let changed = forecasts.changed().await;
    (changed, forecasts)
}

enum State {
    /// Sending each series of a tick, in key order.
    Round {
        forecasts: Receiver,
        snapshot: Arc<Forecasts>,
        /// The last series sent in this round.
        after: Option<Key>,
    },
    /// Every series sent; waiting for the next tick.
    Waiting,
    Ended,
}

/// A WatchForecast response stream: every series of `tenant` (all tenants
/// when empty) each tick, from the newest forecasts at the time each
/// message is taken. Ends when the planner stops.
pub struct ForecastStream {
    tenant: String,
    state: State,
    change: ReusableBoxFuture<'static, Change>,
    _slot: WatchSlot,
}

impl ForecastStream {
    /// Starts at the next tick.
    pub fn new(mut forecasts: Receiver, tenant: String, slot: WatchSlot) -> Self {
        forecasts.mark_unchanged();
        Self {
            tenant,
            state: State::Waiting,
            change: ReusableBoxFuture::new(next_change(forecasts)),
            _slot: slot,
        }
    }
}

/// The series of `tenant` after `after` in `snapshot`.
fn next_view<'a>(
    snapshot: &'a Forecasts,
    tenant: &str,
    after: Option<&Key>,
) -> Option<&'a ForecastView> {
    let from = match after {
        Some(key) => Bound::Excluded(key.clone()),
        None if tenant.is_empty() => Bound::Unbounded,
        None => Bound::Included((Arc::from(tenant), Arc::from(""))),
    };
    snapshot
        .series
        .range((from, Bound::Unbounded))
        .map(|(_, view)| view)
        .take_while(|view| tenant.is_empty() || *view.tenant == *tenant)
        .next()
}

impl tokio_stream::Stream for ForecastStream {
    type Item = Result<proto::WatchForecastResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Round {
                    forecasts,
                    snapshot,
                    after,
                } => {
                    // A tick published mid-round: the rest of the round
                    // comes from it.
                    if forecasts.has_changed().unwrap_or(false) {
                        *snapshot = forecasts.borrow_and_update().clone();
                    }
                    if let Some(view) = next_view(snapshot, &this.tenant, after.as_ref()) {
                        *after = Some((view.tenant.clone(), view.resource.clone()));
                        let message = super::forecast::watch_response(view, snapshot);
                        return Poll::Ready(Some(Ok(message)));
                    }
                    let State::Round { forecasts, .. } =
                        std::mem::replace(&mut this.state, State::Waiting)
                    else {
                        unreachable!("matched above")
                    };
                    this.change.set(next_change(forecasts));
                }
                State::Waiting => match ready!(this.change.poll(cx)) {
                    (Ok(()), mut forecasts) => {
                        let snapshot = forecasts.borrow_and_update().clone();
                        this.state = State::Round {
                            forecasts,
                            snapshot,
                            after: None,
                        };
                    }
                    (Err(_), _) => {
                        this.state = State::Ended;
                        return Poll::Ready(None);
                    }
                },
                State::Ended => return Poll::Ready(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    /// Forecasts at `tick` for `tenants` on one resource, each series'
    /// reserve set to the tick.
    fn at_tick(tick: u64, tenants: &[&str]) -> Arc<Forecasts> {
        let series = tenants
            .iter()
            .map(|t| {
                let view = ForecastView {
                    tenant: Arc::from(*t),
                    resource: Arc::from("api"),
                    reserve: tick,
                    demand: 0.0,
                    model: "ewma",
                    seasons: Vec::new(),
                    points: Vec::new(),
                    accuracy: Default::default(),
                };
                ((view.tenant.clone(), view.resource.clone()), view)
            })
            .collect();
        Arc::new(Forecasts {
            tick,
            at: None,
            series,
        })
    }

    fn sent(m: &proto::WatchForecastResponse) -> (String, u64) {
        (m.tenant.clone(), m.reserve)
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_gets_the_newest_forecast_of_each_series() {
        let (planner, forecasts) = watch::channel(at_tick(0, &["a", "b", "c"]));
        let slots = WatchSlots::new(1, WatchMetrics::default());
        let mut stream = ForecastStream::new(forecasts, String::new(), slots.take().unwrap());
        planner.send(at_tick(1, &["a", "b", "c"])).unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(sent(&first), ("a".into(), 1));
        // Ten ticks while the reader reads nothing: no queue, the rest of
        // the round comes from the newest.
        for tick in 2..=11 {
            planner.send(at_tick(tick, &["a", "b", "c"])).unwrap();
        }
        let next: Vec<_> = [
            stream.next().await.unwrap().unwrap(),
            stream.next().await.unwrap().unwrap(),
        ]
        .iter()
        .map(sent)
        .collect();
        assert_eq!(next, [("b".into(), 11), ("c".into(), 11)]);
        // Nothing more until the next tick, which starts a new round.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), stream.next())
                .await
                .is_err()
        );
        planner.send(at_tick(12, &["a", "b", "c"])).unwrap();
        assert_eq!(
            sent(&stream.next().await.unwrap().unwrap()),
            ("a".into(), 12)
        );
        // The planner stops: the stream ends after its round, and its slot
        // is free again.
        drop(planner);
        let mut rest = 0;
        while stream.next().await.is_some() {
            rest += 1;
        }
        assert_eq!(rest, 2);
        drop(stream);
        assert!(slots.take().is_ok());
    }

    #[tokio::test]
    async fn a_tenant_filter_sends_only_that_tenants_series() {
        let (planner, forecasts) = watch::channel(at_tick(0, &[]));
        let slots = WatchSlots::new(1, WatchMetrics::default());
        let stream = ForecastStream::new(forecasts, "b".into(), slots.take().unwrap());
        planner.send(at_tick(1, &["a", "b", "bb", "c"])).unwrap();
        drop(planner);
        let all: Vec<_> = stream.map(|m| sent(&m.unwrap())).collect().await;
        assert_eq!(all, [("b".to_string(), 1)]);
    }

    #[test]
    fn slots_are_bounded_and_given_back() {
        let metrics = WatchMetrics::default();
        let slots = WatchSlots::new(2, metrics.clone());
        let a = slots.take().unwrap();
        let _b = slots.take().unwrap();
        let refused = slots.take().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("grpc.max_watch_streams"));
        assert_eq!((metrics.open.get(), metrics.refused.get()), (2, 1));
        drop(a);
        assert!(slots.take().is_ok());
    }
}
