//! From forecasts to reserve sizes (DESIGN §2).
//!
//! For each tenant with a `reserve`, over its horizon:
//!
//! ```text
//! want_i = clamp(upper_i − g_i, 0, max_i) × risk_i
//! risk_i = min(1, mean_i / (upper_i − lower_i))
//! ```
//!
//! `upper_i` is the highest upper bound of the forecast band over the
//! horizon (rate resources: tokens/s; concurrency: units, by Little's law
//! `arrivals/s × mean hold time`), scaled by any event in force. The risk
//! factor shrinks a reserve whose band is wider than its mean: an uncertain
//! forecast should not lock away capacity others can use. When the wants
//! add up to more than `C − Σg − emergency`, they are water-filled by QoS
//! weight: each tenant gets `min(want_i, λ·w_i)` with `λ` the level that
//! spends exactly what there is.
//!
//! Reserves are soft: what a tenant's reserve holds beyond what the next
//! two ticks need (the same formula over a two-tick horizon) is lent to the
//! shared pool until the forecast says it is needed. A reserve refills in
//! one tick, so it is full again by the time a predicted burst arrives,
//! and reserved capacity nobody uses is never withheld from others.

use super::forecast::Band;

/// The reserve a tenant wants for a band (same unit as `guaranteed`);
/// `shrink`: apply the risk factor (`planner.shrink_wide_bands`).
pub fn reserve_wanted(band: Band, guaranteed: f64, max: f64, shrink: bool) -> f64 {
    let width = band.upper - band.lower;
    let risk = if shrink && width > band.mean && width > 0.0 {
        (band.mean / width).clamp(0.0, 1.0)
    } else {
        1.0
    };
    (band.upper - guaranteed).clamp(0.0, max.max(0.0)) * risk
}

/// Weighted water-filling of `available` among `(want, weight)` pairs:
/// nobody gets more than it wants, and the rest is shared in proportion to
/// weight. Returns the allocation in the same order.
pub fn water_fill(wants: &[(f64, u32)], available: f64) -> Vec<f64> {
    let total: f64 = wants.iter().map(|w| w.0.max(0.0)).sum();
    if total <= available {
        return wants.iter().map(|w| w.0.max(0.0)).collect();
    }
    let mut order: Vec<usize> = (0..wants.len()).collect();
    // Fill the least hungry per unit of weight first.
    let ratio = |i: usize| wants[i].0.max(0.0) / wants[i].1.max(1) as f64;
    order.sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)));
    let mut out = vec![0.0; wants.len()];
    let mut left = available.max(0.0);
    let mut weight_left: f64 = wants.iter().map(|w| w.1.max(1) as f64).sum();
    for i in order {
        let w = wants[i].1.max(1) as f64;
        let level = left / weight_left;
        let give = wants[i].0.max(0.0).min(level * w);
        out[i] = give;
        left -= give;
        weight_left -= w;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_covers_the_upper_bound_above_the_guarantee() {
        let band = Band {
            mean: 90.0,
            lower: 80.0,
            upper: 130.0,
        };
        assert_eq!(reserve_wanted(band, 100.0, 1000.0, true), 30.0);
        assert_eq!(
            reserve_wanted(band, 100.0, 10.0, true),
            10.0,
            "capped at max"
        );
        assert_eq!(
            reserve_wanted(band, 200.0, 1000.0, true),
            0.0,
            "guarantee suffices"
        );
    }

    #[test]
    fn a_band_wider_than_its_mean_shrinks_the_reserve() {
        let band = Band {
            mean: 10.0,
            lower: 0.0,
            upper: 40.0,
        };
        assert_eq!(reserve_wanted(band, 0.0, 1000.0, true), 40.0 * 0.25);
        assert_eq!(
            reserve_wanted(band, 0.0, 1000.0, false),
            40.0,
            "not with the risk factor off"
        );
    }

    #[test]
    fn water_filling_respects_wants_and_weights() {
        // Enough for all: everyone gets what it wants.
        assert_eq!(water_fill(&[(10.0, 1), (20.0, 1)], 100.0), [10.0, 20.0]);
        // 60 to share, weights 1:2, both hungry: 20 and 40.
        assert_eq!(water_fill(&[(100.0, 1), (100.0, 2)], 60.0), [20.0, 40.0]);
        // The modest one is satisfied, the rest goes to the hungry one.
        assert_eq!(water_fill(&[(5.0, 1), (100.0, 1)], 60.0), [5.0, 55.0]);
        let got = water_fill(&[(30.0, 8), (50.0, 1), (50.0, 4)], 70.0);
        assert!((got.iter().sum::<f64>() - 70.0).abs() < 1e-9, "{got:?}");
        assert_eq!(got[0], 30.0);
    }
}
