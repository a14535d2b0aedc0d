//! KEDA's external scaler (`externalscaler.ExternalScaler`, vendored under
//! `proto/vendor/externalscaler`): a ScaledObject's trigger names a tenant,
//! a resource, a lead time and what one replica serves; the metric is the
//! demand to be ready for over the lead time ([`crate::prewarm`]), and the
//! target per replica is the replica's capacity, so KEDA's HPA runs
//! `ceil(metric / replicaCapacity)` replicas *before* a predicted burst.
//! This face only reads the planner's published forecasts, as GetForecast
//! does; the core learns nothing from it.

mod trigger;

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::admission::Admission;
use crate::keda_proto as pb;
use crate::planner::Forecasts;
pub use trigger::{MAX_LEAD, Trigger};

/// The service: the core (for its resource names) and the forecasts.
pub struct ScalerService {
    core: Arc<Admission>,
    forecasts: watch::Receiver<Arc<Forecasts>>,
    /// StreamIsActive streams count against the WatchForecast bound.
    watches: Arc<super::WatchSlots>,
}

/// The service, ready to add to a tonic router.
pub fn scaler_server(
    core: Arc<Admission>,
    forecasts: watch::Receiver<Arc<Forecasts>>,
    watches: Arc<super::WatchSlots>,
) -> pb::external_scaler_server::ExternalScalerServer<ScalerService> {
    pb::external_scaler_server::ExternalScalerServer::new(ScalerService {
        core,
        forecasts,
        watches,
    })
    .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
}

impl ScalerService {
    fn trigger(&self, object: Option<&pb::ScaledObjectRef>) -> Result<Trigger, Status> {
        let metadata = object
            .map(|o| &o.scaler_metadata)
            .ok_or_else(|| Status::invalid_argument("scaledObjectRef: required"))?;
        let registry = self.core.registry();
        Trigger::parse(metadata, |r| registry.resource(r).is_some())
            .map_err(|e| Status::invalid_argument(format!("scalerMetadata.{e}")))
    }
}

/// The demand ahead of the trigger's series over its lead time. A series
/// the planner has not seen yet (a tenant from `defaults` before its first
/// call, or one the policy does not know) reads 0: nothing observed,
/// nothing forecast.
fn ahead(trigger: &Trigger, forecasts: &Forecasts) -> crate::prewarm::Ahead {
    match (
        forecasts.get(&trigger.tenant, &trigger.resource),
        forecasts.at,
    ) {
        (Some(view), Some(at)) => crate::prewarm::ahead(view, at, trigger.lead),
        _ => Default::default(),
    }
}

/// The metric: demand per second to be ready for over the lead time.
pub fn metric(trigger: &Trigger, forecasts: &Forecasts) -> f64 {
    ahead(trigger, forecasts).upper
}

/// Whether the workload should run at all: the demand expected over the
/// lead time above the trigger's activation threshold (default 0).
pub fn active(trigger: &Trigger, forecasts: &Forecasts) -> bool {
    ahead(trigger, forecasts).expected > trigger.activation
}

type ActiveStream = Pin<Box<dyn Stream<Item = Result<pb::IsActiveResponse, Status>> + Send>>;
type SpecStream = Pin<Box<dyn Stream<Item = Result<pb::GetMetricSpecResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::external_scaler_server::ExternalScaler for ScalerService {
    type StreamIsActiveStream = ActiveStream;
    type StreamMetricSpecStream = SpecStream;

    async fn is_active(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<pb::IsActiveResponse>, Status> {
        let trigger = self.trigger(Some(request.get_ref()))?;
        let result = active(&trigger, &self.forecasts.borrow());
        Ok(Response::new(pb::IsActiveResponse { result }))
    }

    /// The current activity at once, then a message each time a tick
    /// changes it: when a predicted burst comes within the lead time, and
    /// when it has passed. Ends when the planner stops.
    async fn stream_is_active(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let trigger = self.trigger(Some(request.get_ref()))?;
        let slot = self.watches.take()?;
        let mut last = None;
        let stream = tokio_stream::wrappers::WatchStream::new(self.forecasts.clone()).filter_map(
            move |forecasts| {
                let _held = &slot;
                let now = active(&trigger, &forecasts);
                (last.replace(now) != Some(now)).then_some(Ok(pb::IsActiveResponse { result: now }))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_metric_spec(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<pb::GetMetricSpecResponse>, Status> {
        let trigger = self.trigger(Some(request.get_ref()))?;
        Ok(Response::new(pb::GetMetricSpecResponse {
            metric_specs: vec![pb::MetricSpec {
                metric_name: trigger.metric_name(),
                target_size: trigger.replica_capacity.ceil() as i64,
                target_size_float: trigger.replica_capacity,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        let m = request.get_ref();
        let trigger = self.trigger(m.scaled_object_ref.as_ref())?;
        let name = trigger.metric_name();
        if !m.metric_name.is_empty() && m.metric_name != name {
            return Err(Status::invalid_argument(format!(
                "metricName: {:?} is not this trigger's metric {name:?}",
                crate::echo::Echo(&m.metric_name)
            )));
        }
        let value = metric(&trigger, &self.forecasts.borrow());
        Ok(Response::new(pb::GetMetricsResponse {
            metric_values: vec![pb::MetricValue {
                metric_name: name,
                metric_value: value.ceil() as i64,
                metric_value_float: value,
            }],
        }))
    }

    /// Not offered: the spec (`replicaCapacity`) never changes while a
    /// trigger lives, and KEDA falls back to GetMetricSpec on UNIMPLEMENTED.
    async fn stream_metric_spec(
        &self,
        _request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        Err(Status::unimplemented(
            "StreamMetricSpec: the metric spec is fixed by the trigger's metadata; use GetMetricSpec",
        ))
    }
}
