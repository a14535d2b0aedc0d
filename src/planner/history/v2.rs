//! The history of snapshot format 2 (an hour of ticks and 14 days of
//! minutes, before the tiers), read so that an upgrade keeps what the old
//! daemon learned: the newest of each ring moves into the tiers.

use serde::{Deserialize, Serialize};

use super::History;
use crate::planner::ring::{Invalid, Ring};

const V2_TICKS: usize = 3_600;
const V2_MINUTES: usize = 14 * 24 * 60;

/// A history as format 2 saved it, field for field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryV2 {
    pub tick_demand: Ring,
    pub tick_granted: Ring,
    pub tick_arrivals: Ring,
    pub minute_demand: Ring,
    pub minute_arrivals: Ring,
    pub minute_hold: Ring,
    pub acc_demand: f64,
    pub acc_arrivals: f64,
    pub acc_ticks: u32,
    pub acc_hold: f64,
    pub acc_holds: u32,
    pub ticks: u64,
}

impl HistoryV2 {
    /// The same series in today's tiers, or why it cannot be used. Its
    /// minutes are replayed oldest first, so quarter hours close every 15
    /// minutes counted from the oldest minute kept.
    pub fn upgrade(self) -> Result<History, Invalid> {
        for (name, ring, cap) in [
            ("tick_demand", &self.tick_demand, V2_TICKS),
            ("tick_granted", &self.tick_granted, V2_TICKS),
            ("tick_arrivals", &self.tick_arrivals, V2_TICKS),
            ("minute_demand", &self.minute_demand, V2_MINUTES),
            ("minute_arrivals", &self.minute_arrivals, V2_MINUTES),
            ("minute_hold", &self.minute_hold, V2_MINUTES),
        ] {
            // Before any read: `tail` trusts the head.
            ring.check(name, cap)?;
        }
        let mut h = History::default();
        let all = usize::MAX;
        let ticks = self.tick_demand.tail(all).into_iter().zip(
            self.tick_granted
                .tail(all)
                .into_iter()
                .zip(self.tick_arrivals.tail(all)),
        );
        for (d, (g, a)) in ticks {
            h.push_tick(d as f32, g as f32, a as f32);
        }
        let minutes = self.minute_demand.tail(all).into_iter().zip(
            self.minute_arrivals
                .tail(all)
                .into_iter()
                .zip(self.minute_hold.tail(all)),
        );
        for (d, (a, hold)) in minutes {
            h.push_minute(d as f32, a as f32, hold as f32);
        }
        h.acc_demand = self.acc_demand;
        h.acc_arrivals = self.acc_arrivals;
        h.acc_ticks = self.acc_ticks;
        h.acc_hold = self.acc_hold;
        h.acc_holds = self.acc_holds;
        h.ticks = self.ticks;
        h.check()?;
        Ok(h)
    }
}

#[cfg(test)]
/// A format-2 history of `minutes` minutes at one tick a minute, demand
/// equal to the minute's index.
pub fn sample(minutes: usize) -> HistoryV2 {
    let r = Ring::new;
    let mut old = HistoryV2 {
        tick_demand: r(V2_TICKS),
        tick_granted: r(V2_TICKS),
        tick_arrivals: r(V2_TICKS),
        minute_demand: r(V2_MINUTES),
        minute_arrivals: r(V2_MINUTES),
        minute_hold: r(V2_MINUTES),
        acc_demand: 0.0,
        acc_arrivals: 0.0,
        acc_ticks: 0,
        acc_hold: 0.0,
        acc_holds: 0,
        ticks: minutes as u64,
    };
    for i in 0..minutes {
        for ring in [&mut old.tick_demand, &mut old.tick_granted] {
            ring.push(i as f32);
        }
        old.tick_arrivals.push(1.0);
        old.minute_demand.push(i as f32);
        old.minute_arrivals.push(1.0);
        old.minute_hold.push(0.5);
    }
    old
}

#[cfg(test)]
mod tests {
    use super::super::{MINUTES_KEPT, QUARTER, Sample, TICKS_KEPT};
    use super::sample as v2;
    use super::*;

    #[test]
    fn an_old_history_keeps_its_newest_samples_in_the_tiers() {
        let minutes = V2_MINUTES + 100;
        let h = v2(minutes).upgrade().unwrap();
        let newest = |n: usize| -> Vec<f64> { (minutes - n..minutes).map(|i| i as f64).collect() };
        assert_eq!(h.tick_demand.tail(usize::MAX), newest(TICKS_KEPT));
        assert_eq!(h.minute_demand.tail(usize::MAX), newest(MINUTES_KEPT));
        assert_eq!(h.recent_hold(), Some(0.5));
        // 14 days of minutes make 14 days of quarter hours, each the mean
        // of its minutes: the newest is minutes-15 .. minutes-1.
        assert_eq!(h.quarter_demand.len(), V2_MINUTES / QUARTER as usize);
        let q = QUARTER as f64;
        assert_eq!(
            h.quarter_demand.last(),
            Some((minutes as f64 - (q + 1.0) / 2.0) as f32)
        );
        assert_eq!(h.ticks, minutes as u64);
        // It records on as any history.
        let mut h = h;
        h.record(Sample::default(), 1);
        assert_eq!(h.check(), Ok(()));
    }

    #[test]
    fn a_broken_old_history_is_refused_naming_the_field() {
        let mut old = v2(10);
        old.minute_hold = Ring::new(7);
        assert_eq!(
            old.upgrade().unwrap_err().to_string(),
            "minute_hold.cap: 7, but this ring keeps 20160 samples"
        );
        let mut old = v2(10);
        old.ticks = 3;
        assert_eq!(old.upgrade().unwrap_err().field, "ticks");
    }
}
