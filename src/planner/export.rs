//! What the planner shows the world each tick: the forecasts it publishes
//! (GetForecast, WatchForecast) and the metrics it feeds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::{ForecastView, Forecasts, Planner, Point};
use crate::clock::Nanos;
use crate::metrics::{self, Metrics};

impl Planner {
    /// Sets the per-tick gauges: reserves, forecasts, accuracy, pool
    /// contents, leases and waiters.
    pub(super) fn gauges(&mut self, m: &Metrics, now: Nanos) {
        let registry = self.core.registry();
        for s in &self.series {
            if s.label == metrics::OTHER {
                // Per-series gauges of tenants beyond the label bound would
                // overwrite each other; their counters still add up.
                continue;
            }
            let r = &registry.resources[s.resource];
            let series = metrics::Series {
                tenant: s.label.clone(),
                resource: r.name.to_string(),
            };
            let a = &s.tenant.allotments[s.resource];
            m.reserve
                .get_or_create(&series)
                .set(a.holdings.reserve.size());
            m.forecast_mean.get_or_create(&series).set(s.next.mean);
            m.forecast_upper.get_or_create(&series).set(s.next.upper);
            let accuracy = s.forecaster.accuracy();
            m.forecast_coverage
                .get_or_create(&series)
                .set(accuracy.coverage);
            m.forecast_error.get_or_create(&series).set(accuracy.mase);
            for (pool, p) in [
                ("reserve", &a.holdings.reserve),
                ("guaranteed", &a.holdings.guaranteed),
            ] {
                let labels = metrics::Paid {
                    tenant: s.label.clone(),
                    resource: r.name.to_string(),
                    pool,
                };
                m.pool_tokens
                    .get_or_create(&labels)
                    .set(p.available(now) as f64);
                m.pool_debt.get_or_create(&labels).set(p.debt(now) as f64);
            }
        }
        for r in registry.live() {
            for (pool, p) in [("shared", &r.shared), ("emergency", &r.emergency)] {
                let labels = metrics::Paid {
                    tenant: String::new(),
                    resource: r.name.to_string(),
                    pool,
                };
                m.pool_tokens
                    .get_or_create(&labels)
                    .set(p.available(now) as f64);
                m.pool_debt.get_or_create(&labels).set(p.debt(now) as f64);
            }
            m.waiters
                .get_or_create(&metrics::OfResource {
                    resource: r.name.to_string(),
                })
                .set(r.waiters.len() as i64);
        }
        m.leases_active.set(self.core.leases().held() as i64);
        let uncharged = self.core.uncharged();
        m.report_uncharged
            .inc_by(uncharged.saturating_sub(self.uncharged));
        self.uncharged = uncharged;
        let reclaimed = self.core.reclaimed();
        m.leases_reclaimed
            .inc_by(reclaimed.saturating_sub(self.reclaimed));
        self.reclaimed = reclaimed;
    }

    pub(super) fn publish(&self, wall: SystemTime) {
        let tpm = self.ticks_per_minute as u64;
        let mut out = Forecasts {
            tick: self.ticks,
            at: Some(wall),
            series: BTreeMap::new(),
        };
        for s in &self.series {
            let first = s.history.ticks / tpm;
            let into_minute = s.history.ticks % tpm;
            let tick = self.config.tick;
            let points = (0..self.config.published_minutes as u64)
                .map(|k| Point {
                    at: wall + tick * ((k * tpm).saturating_sub(into_minute) as u32),
                    band: s.forecaster.band(first + k),
                })
                .collect();
            let r = &self.core.registry().resources[s.resource];
            out.series.insert(
                (s.tenant.name.clone(), r.name.clone()),
                ForecastView {
                    tenant: s.tenant.name.clone(),
                    resource: r.name.clone(),
                    reserve: s.tenant.allotments[s.resource].holdings.reserve.size() as u64,
                    demand: s.last_demand,
                    model: s.forecaster.model(first).as_str(),
                    seasons: s.forecaster.seasons().to_vec(),
                    points,
                    accuracy: s.forecaster.accuracy(),
                },
            );
        }
        self.published.send_replace(Arc::new(out));
    }
}

/// Drops the gauges of series a reload ended, `(tenant label, resource)`,
/// and of resources it removed, so dashboards do not show frozen values.
/// Counters stay: they are totals, and `rate()` handles their end.
pub(super) fn forget(m: &Metrics, series: &[(String, Arc<str>)], resources: &[String]) {
    for (tenant, resource) in series {
        if tenant == metrics::OTHER {
            continue;
        }
        let s = metrics::Series {
            tenant: tenant.clone(),
            resource: resource.to_string(),
        };
        for family in [
            &m.reserve,
            &m.forecast_mean,
            &m.forecast_upper,
            &m.forecast_coverage,
            &m.forecast_error,
            &m.backtest_error,
        ] {
            family.remove(&s);
        }
        for pool in ["reserve", "guaranteed"] {
            let labels = metrics::Paid {
                tenant: tenant.clone(),
                resource: resource.to_string(),
                pool,
            };
            m.pool_tokens.remove(&labels);
            m.pool_debt.remove(&labels);
        }
    }
    for resource in resources {
        for pool in ["shared", "emergency"] {
            let labels = metrics::Paid {
                tenant: String::new(),
                resource: resource.clone(),
                pool,
            };
            m.pool_tokens.remove(&labels);
            m.pool_debt.remove(&labels);
        }
        m.waiters.remove(&metrics::OfResource {
            resource: resource.clone(),
        });
    }
}

/// Adds one tick's folded demand to the acquisition counters.
pub(super) fn count(m: &Metrics, tenant: &str, resource: &str, d: &crate::admission::Demand) {
    if d.asked > 0 {
        m.asked
            .get_or_create(&metrics::Series {
                tenant: tenant.to_owned(),
                resource: resource.to_owned(),
            })
            .inc_by(d.asked);
    }
    for (decision, n) in [("granted", d.requests - d.denials), ("denied", d.denials)] {
        if n > 0 {
            m.acquisitions
                .get_or_create(&metrics::Decided {
                    tenant: tenant.to_owned(),
                    resource: resource.to_owned(),
                    decision,
                })
                .inc_by(n);
        }
    }
    for (tier, n) in crate::pool::Tier::ALL.into_iter().zip(d.by_tier) {
        if n > 0 {
            m.tokens
                .get_or_create(&metrics::Paid {
                    tenant: tenant.to_owned(),
                    resource: resource.to_owned(),
                    pool: tier.as_str(),
                })
                .inc_by(n);
        }
    }
}
