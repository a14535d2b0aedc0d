//! Loom models of the pool primitives: every interleaving (to a bounded
//! number of preemptions) of takes, refunds, resizes and reads. Run with
//! `scripts/loom` (`RUSTFLAGS="--cfg loom" cargo test --lib pool::loom`).
//!
//! Time stands still in these models (`now` is fixed), so a bucket never
//! refills: whatever the interleaving, takers can get at most the tokens
//! that were there, and a resize can only keep or cut them.

use loom::sync::Arc;
use loom::thread;

use super::{Bucket, Units};

const NOW: u64 = 1_000;

/// Rates and depths small enough for the loom word (see `word.rs`).
const R1: (f64, u64) = (1_000.0, 3);
const R2: (f64, u64) = (2_000.0, 2);

#[test]
fn takes_racing_a_resize_never_get_more_than_was_there() {
    loom::model(|| {
        let b = Arc::new(Bucket::new(R1.0, R1.1));
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.take_up_to(2, NOW).0)
            })
            .collect();
        b.set_rate(R2.0, R2.1, NOW);
        let taken: u64 = takers.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(taken <= R1.1, "took {taken} of {}", R1.1);
        // Resizing creates nothing: what is left plus what was taken is at
        // most the original fill, and within the new depth.
        let left = b.available(NOW);
        assert!(left <= R2.1, "{left} left in a bucket of depth {}", R2.1);
        assert!(taken + left <= R1.1, "taken {taken} + left {left}");
    });
}

#[test]
fn reads_racing_a_resize_see_one_generation_whole() {
    loom::model(|| {
        let b = Arc::new(Bucket::new(R1.0, R1.1));
        let reader = {
            let b = b.clone();
            thread::spawn(move || {
                let o = b.outlook(NOW);
                (o.available, o.fill, o.rate.round(), o.depth)
            })
        };
        b.set_rate(R2.0, R2.1, NOW);
        let (available, fill, rate, depth) = reader.join().unwrap();
        // Before the resize: full at depth 3 and ~1000/s; after: 2 and ~2000/s.
        let whole = |(r, d): (f64, u64)| {
            depth == d && rate == r.round() && fill == d as f64 && available == d
        };
        assert!(
            whole(R1) || whole(R2),
            "mixed: available {available}, fill {fill}, rate {rate}, depth {depth}"
        );
    });
}

#[test]
fn two_resizes_and_a_take_keep_the_bucket_consistent() {
    loom::model(|| {
        let b = Arc::new(Bucket::new(R1.0, R1.1));
        let taker = {
            let b = b.clone();
            thread::spawn(move || b.take_up_to(3, NOW).0)
        };
        let resizer = {
            let b = b.clone();
            thread::spawn(move || b.set_rate(R2.0, R2.1, NOW))
        };
        b.set_rate(R1.0, R1.1, NOW);
        let taken = taker.join().unwrap();
        resizer.join().unwrap();
        let left = b.available(NOW);
        assert!(taken + left <= R1.1, "taken {taken} + left {left}");
        assert!(left <= b.depth());
    });
}

#[test]
fn a_refund_racing_a_take_never_overfills() {
    loom::model(|| {
        let b = Arc::new(Bucket::new(R1.0, R1.1));
        assert_eq!(b.take_up_to(2, NOW).0, 2);
        let refund = {
            let b = b.clone();
            thread::spawn(move || b.put_back(2, NOW))
        };
        let taken = b.take_up_to(3, NOW).0;
        refund.join().unwrap();
        let left = b.available(NOW);
        assert!(taken + left <= R1.1, "taken {taken} + left {left}");
    });
}

#[test]
fn exact_takes_on_units_are_all_or_nothing() {
    loom::model(|| {
        let u = Arc::new(Units::new(3));
        let other = {
            let u = u.clone();
            thread::spawn(move || u.take_exact(2))
        };
        let mine = u.take_exact(2);
        let theirs = other.join().unwrap();
        assert!(
            mine ^ theirs,
            "exactly one of two takes of 2 from 3 succeeds"
        );
        assert_eq!(u.held(), 2, "nothing taken and put back");
    });
}
