//! The check of a [`History`] read from outside (a snapshot): the ring and
//! tick arithmetic trusts every bound it tests.

use super::{History, MAX_TICKS, QUARTER};
use crate::planner::ring::{Invalid, check_rate};

impl History {
    /// Checks a history read from outside: every ring within its bound,
    /// rings recorded together of one length, counters consistent with the
    /// ticks recorded and far from overflow, every sample a rate.
    pub fn check(&self) -> Result<(), Invalid> {
        let rings = self.rings();
        for (name, ring, cap) in rings {
            ring.check(name, cap)?;
        }
        // Rings of one tier are pushed together: same length, same head.
        for group in [&rings[0..3], &rings[4..6]] {
            let (first, lead, _) = group[0];
            for &(name, ring, _) in group {
                if (ring.len(), ring.head()) != (lead.len(), lead.head()) {
                    return Err(Invalid::new(
                        name,
                        format!(
                            "{} samples at head {}, but {first} has {} at head {}: \
                             rings recorded together must match",
                            ring.len(),
                            ring.head(),
                            lead.len(),
                            lead.head()
                        ),
                    ));
                }
            }
        }
        if self.ticks > MAX_TICKS {
            return Err(Invalid::new(
                "ticks",
                format!("{} is more than {MAX_TICKS}", self.ticks),
            ));
        }
        for (name, len) in [
            ("tick_demand", self.tick_demand.len()),
            ("minute_demand", self.minute_demand.len()),
            ("quarter_demand", self.quarter_demand.len()),
        ] {
            if len as u64 > self.ticks {
                return Err(Invalid::new(
                    "ticks",
                    format!("{}, fewer than the {len} samples of {name}", self.ticks),
                ));
            }
        }
        if self.acc_ticks as u64 > self.ticks {
            return Err(Invalid::new(
                "acc_ticks",
                format!(
                    "{} ticks into the minute, more than the {} recorded",
                    self.acc_ticks, self.ticks
                ),
            ));
        }
        if self.acc_ticks == u32::MAX {
            return Err(Invalid::new(
                "acc_ticks",
                "at its counter's limit: the next tick would overflow",
            ));
        }
        if self.acc_holds > self.acc_ticks {
            return Err(Invalid::new(
                "acc_holds",
                format!(
                    "{} holds in the minute, more than its {} ticks",
                    self.acc_holds, self.acc_ticks
                ),
            ));
        }
        if self.acc_minutes >= QUARTER {
            return Err(Invalid::new(
                "acc_minutes",
                format!(
                    "{} minutes into the quarter hour, which closes at {QUARTER}",
                    self.acc_minutes
                ),
            ));
        }
        check_rate(|| "acc_demand".into(), self.acc_demand)?;
        check_rate(|| "acc_arrivals".into(), self.acc_arrivals)?;
        check_rate(|| "acc_hold".into(), self.acc_hold)?;
        check_rate(|| "acc_quarter".into(), self.acc_quarter)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::recorded;
    use super::super::{DETAIL_MINUTES_KEPT, MINUTES_KEPT, TICKS_KEPT};
    use super::*;
    use crate::planner::ring::Ring;

    #[test]
    fn histories_as_recorded_pass_the_check() {
        for ticks in [0, 1, 59, 60, 61, 899, 900, 901, TICKS_KEPT + 7] {
            assert_eq!(recorded(ticks).check(), Ok(()), "{ticks}");
        }
    }

    #[test]
    fn each_broken_field_is_named() {
        type Edit = fn(&mut History);
        let cases: [(Edit, &str, &str); 17] = [
            (
                |h| h.tick_demand = Ring::new(0),
                "tick_demand.cap",
                "0, but",
            ),
            (
                |h| h.minute_hold = Ring::new(TICKS_KEPT),
                "minute_hold.cap",
                "600, but this ring keeps 1440",
            ),
            (
                |h| h.quarter_demand = Ring::new(MINUTES_KEPT),
                "quarter_demand.cap",
                "5760, but this ring keeps 1344",
            ),
            (
                |h| h.tick_granted = Ring::new(TICKS_KEPT),
                "tick_granted",
                "0 samples at head 0, but tick_demand has 70",
            ),
            (
                |h| h.minute_hold = Ring::new(DETAIL_MINUTES_KEPT),
                "minute_hold",
                "0 samples",
            ),
            (
                |h| h.ticks = MAX_TICKS + 1,
                "ticks",
                "281474976710657 is more",
            ),
            (
                |h| h.ticks = 3,
                "ticks",
                "3, fewer than the 70 samples of tick_demand",
            ),
            (
                |h| h.acc_ticks = 71,
                "acc_ticks",
                "71 ticks into the minute",
            ),
            (
                |h| (h.ticks, h.acc_ticks) = (u32::MAX as u64, u32::MAX),
                "acc_ticks",
                "at its counter's limit",
            ),
            (
                |h| h.acc_holds = 11,
                "acc_holds",
                "11 holds in the minute, more than its 10",
            ),
            (
                |h| h.acc_minutes = 15,
                "acc_minutes",
                "15 minutes into the quarter hour",
            ),
            (|h| h.acc_demand = f64::NAN, "acc_demand", "NaN is not"),
            (|h| h.acc_arrivals = -1.0, "acc_arrivals", "-1 is not"),
            (|h| h.acc_hold = f64::INFINITY, "acc_hold", "inf is not"),
            (|h| h.acc_quarter = -3.0, "acc_quarter", "-3 is not"),
            (
                |h| {
                    h.tick_demand = Ring::new(TICKS_KEPT);
                    h.tick_demand.push(f32::NAN);
                },
                "tick_demand.buf[0]",
                "NaN is not",
            ),
            (
                |h| {
                    h.minute_demand = Ring::new(MINUTES_KEPT);
                    h.minute_demand.push(-2.0);
                },
                "minute_demand.buf[0]",
                "-2 is not",
            ),
        ];
        for (edit, field, reason) in cases {
            let mut h = recorded(70);
            edit(&mut h);
            let e = h.check().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.reason.starts_with(reason), "{e}");
        }
    }
}
