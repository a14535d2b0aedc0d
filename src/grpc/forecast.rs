//! GetForecast and WatchForecast: the planner's published forecasts, as
//! messages.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::admission::Admission;
use crate::planner::{ForecastView, Forecasts};
use crate::proto;

/// Messages queued per WatchForecast stream; a slow reader misses ticks
/// rather than holding the planner back.
const WATCH_BUFFER: usize = 1024;

fn points(view: &ForecastView) -> Vec<proto::ForecastPoint> {
    view.points
        .iter()
        .map(|p| proto::ForecastPoint {
            time: Some(p.at.into()),
            mean: p.band.mean,
            lower: p.band.lower,
            upper: p.band.upper,
        })
        .collect()
}

fn accuracy(view: &ForecastView) -> proto::ForecastAccuracy {
    proto::ForecastAccuracy {
        coverage: view.accuracy.coverage,
        error: view.accuracy.mase,
        samples: view.accuracy.samples as u32,
    }
}

fn seasons(view: &ForecastView) -> Vec<prost_types::Duration> {
    view.seasons
        .iter()
        .map(|m| prost_types::Duration {
            seconds: *m as i64 * 60,
            nanos: 0,
        })
        .collect()
}

pub fn get_response(view: &ForecastView, at: &Forecasts) -> proto::GetForecastResponse {
    proto::GetForecastResponse {
        tenant: view.tenant.to_string(),
        resource: view.resource.to_string(),
        reserve: view.reserve,
        points: points(view),
        model: view.model.into(),
        accuracy: Some(accuracy(view)),
        demand: view.demand,
        seasons: seasons(view),
        time: at.at.map(Into::into),
    }
}

fn watch_response(view: &ForecastView, at: &Forecasts) -> proto::WatchForecastResponse {
    let g = get_response(view, at);
    proto::WatchForecastResponse {
        tenant: g.tenant,
        resource: g.resource,
        reserve: g.reserve,
        points: g.points,
        model: g.model,
        accuracy: g.accuracy,
        demand: g.demand,
        seasons: g.seasons,
        time: g.time,
    }
}

/// GetForecast: NOT_FOUND until the planner has a series for the pair.
pub fn get(
    core: &Admission,
    forecasts: &watch::Receiver<Arc<Forecasts>>,
    tenant: &str,
    resource: &str,
) -> Result<proto::GetForecastResponse, Status> {
    if tenant.is_empty() {
        return Err(Status::invalid_argument("tenant: must not be empty"));
    }
    if core.registry().resource(resource).is_none() {
        return Err(Status::not_found(format!(
            "resource: unknown resource {resource:?}"
        )));
    }
    let snapshot = forecasts.borrow().clone();
    match snapshot.get(tenant, resource) {
        Some(view) => Ok(get_response(view, &snapshot)),
        None => Err(Status::not_found(format!(
            "tenant: no forecast for tenant {tenant:?} on {resource:?} \
             (unknown tenant, or not seen by the planner yet)"
        ))),
    }
}

/// WatchForecast: a stream fed from the planner's watch channel; ends when
/// the planner stops (shutdown) or the client goes away.
pub fn watch(
    mut forecasts: watch::Receiver<Arc<Forecasts>>,
    tenant: String,
) -> ReceiverStream<Result<proto::WatchForecastResponse, Status>> {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    tokio::spawn(async move {
        forecasts.mark_unchanged();
        while forecasts.changed().await.is_ok() {
            let snapshot = forecasts.borrow_and_update().clone();
            for view in snapshot
                .series
                .values()
                .filter(|v| tenant.is_empty() || *v.tenant == *tenant)
            {
                match tx.try_send(Ok(watch_response(view, &snapshot))) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => break,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
