//! `--spread`: a trace whose rows are per-interval totals (a metrics
//! export at 1m or 15s) replayed as one request per second of each
//! interval, so a minute's 6,000 tokens arrive as 100/s rather than as one
//! request the buckets could never hold.

use crate::clock::{NANOS_PER_SEC, Nanos};

/// The requests one row becomes: `n` slots, one per started second of
/// `every` (at least one), evenly spaced from `at`. Slot `i` carries
/// `⌊(i+1)·A/n⌋ − ⌊i·A/n⌋` of the row's amount `A`: every slot gets
/// `⌊A/n⌋` or one more, the extra tokens spread evenly over the interval
/// rather than bunched at its start, and the slots add up to `A` exactly.
/// Slots with nothing in them stay as quiet steps (no Acquire).
pub fn slots(at: Nanos, amount: u64, every: Nanos) -> impl Iterator<Item = (Nanos, u64)> {
    let n = every.div_ceil(NANOS_PER_SEC).max(1);
    let cut = move |i: u64| (i as u128 * amount as u128 / n as u128) as u64;
    (0..n).map(move |i| {
        let offset = (i as u128 * every as u128 / n as u128) as u64;
        (at.saturating_add(offset), cut(i + 1) - cut(i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE: Nanos = 60 * NANOS_PER_SEC;

    #[test]
    fn a_minute_of_6000_is_100_a_second() {
        let s: Vec<_> = slots(5 * MINUTE, 6000, MINUTE).collect();
        assert_eq!(s.len(), 60);
        assert!(s.iter().all(|&(_, a)| a == 100));
        assert_eq!(s[0].0, 5 * MINUTE);
        assert_eq!(s[59].0, 5 * MINUTE + 59 * NANOS_PER_SEC);
    }

    #[test]
    fn a_remainder_is_spread_not_bunched() {
        // 7 over 15 seconds: seven slots of 1, never two in a row.
        let a: Vec<u64> = slots(0, 7, 15 * NANOS_PER_SEC).map(|s| s.1).collect();
        assert_eq!(a.iter().sum::<u64>(), 7);
        assert!(a.windows(2).all(|w| w[0] + w[1] <= 1), "{a:?}");
    }

    #[test]
    fn under_a_second_is_one_request() {
        let s: Vec<_> = slots(3, 42, NANOS_PER_SEC / 2).collect();
        assert_eq!(s, [(3, 42)]);
    }

    proptest! {
        #[test]
        fn slots_keep_the_total_exactly_and_stay_even_within_the_interval(
            at in 0u64..1 << 50,
            amount in 0u64..u64::MAX,
            every in 1u64..(3600 * NANOS_PER_SEC),
        ) {
            let s: Vec<_> = slots(at, amount, every).collect();
            let n = s.len() as u64;
            prop_assert_eq!(n, every.div_ceil(NANOS_PER_SEC).max(1));
            let total: u128 = s.iter().map(|&(_, a)| a as u128).sum();
            prop_assert_eq!(total, amount as u128);
            for (i, &(t, a)) in s.iter().enumerate() {
                prop_assert!(a == amount / n || a == amount / n + 1);
                prop_assert!(t >= at && t < at + every);
                if i > 0 {
                    prop_assert!(t > s[i - 1].0);
                }
            }
        }
    }
}
