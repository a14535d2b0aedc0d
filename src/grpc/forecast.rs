//! GetForecast and WatchForecast: the planner's published forecasts, as
//! messages (the stream itself is in `watch.rs`).

use std::sync::Arc;

use tokio::sync::watch;
use tonic::Status;

use crate::admission::Admission;
use crate::echo::Echo;
use crate::planner::{ForecastView, Forecasts};
use crate::proto;

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

pub(super) fn watch_response(view: &ForecastView, at: &Forecasts) -> proto::WatchForecastResponse {
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
            "resource: unknown resource {:?}",
            Echo(resource)
        )));
    }
    let snapshot = forecasts.borrow().clone();
    match snapshot.get(tenant, resource) {
        Some(view) => Ok(get_response(view, &snapshot)),
        None => Err(Status::not_found(format!(
            "tenant: no forecast for tenant {:?} on {:?} \
             (unknown tenant, or not seen by the planner yet)",
            Echo(tenant),
            Echo(resource)
        ))),
    }
}
