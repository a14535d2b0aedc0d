//! The bucket's arithmetic and its single-threaded behaviour; the
//! concurrent proofs are the loom models in `loom.rs`.

use super::*;

const SEC: Nanos = NANOS_PER_SEC;

/// Tokens a take got.
fn take_n(b: &Bucket, want: u64, now: Nanos) -> u64 {
    b.take_up_to(want, now).0
}

#[test]
fn an_empty_bucket_fills_at_its_rate() {
    let b = Bucket::new_empty(100.0, 100, SEC);
    assert_eq!(b.available(SEC), 0);
    assert_eq!(b.available(SEC + SEC / 2), 50);
    assert_eq!(b.available(3 * SEC), 100);
}

#[test]
fn a_full_bucket_holds_its_depth_and_one_token_less_after_a_take() {
    let b = Bucket::new(100.0, 100);
    assert_eq!(b.available(SEC), 100, "full: the short path");
    assert_eq!(b.take_up_to(1, SEC), (1, 100));
    assert_eq!(b.available(SEC), 99, "one in backlog: the division");
    // depth × interval past u64: never more than the division allows.
    let huge = Bucket::new(1e-6, u64::MAX / 2);
    assert_eq!(huge.available(0), u64::MAX / interval_for(1e-6));
}

#[test]
fn full_bucket_grants_its_depth_then_refills_at_its_rate() {
    let b = Bucket::new(10.0, 20);
    assert_eq!(take_n(&b, 100, 0), 20);
    assert_eq!(take_n(&b, 1, 0), 0);
    assert_eq!(b.available(SEC / 2), 5);
    assert_eq!(take_n(&b, 100, SEC), 10);
    assert_eq!(b.available(100 * SEC), 20, "never more than depth");
}

#[test]
fn uneven_intervals_still_grant_the_whole_depth_one_by_one() {
    let b = Bucket::new(3.0, 3);
    for _ in 0..3 {
        assert_eq!(take_n(&b, 1, 0), 1);
    }
    assert_eq!(take_n(&b, 1, 0), 0);
    // Intervals round up (never over-grant): full a hair after 1 s.
    assert_eq!(b.available(SEC), 2);
    assert_eq!(b.available(SEC + 1), 3);
}

#[test]
fn put_back_returns_tokens_but_never_overfills() {
    let b = Bucket::new(10.0, 10);
    assert_eq!(take_n(&b, 6, 0), 6);
    b.put_back(4, 0);
    assert_eq!(b.available(0), 8);
    b.put_back(100, 0);
    assert_eq!(b.available(0), 10);
}

#[test]
fn debt_blocks_until_refilled() {
    let b = Bucket::new(10.0, 10);
    assert_eq!(b.charge(30, u64::MAX, 0), 30);
    assert_eq!(b.available(0), 0);
    assert_eq!(b.available(2 * SEC), 0);
    assert_eq!(b.available(3 * SEC), 10);
    assert_eq!(b.time_until(10, 0), Some(3 * SEC));
}

#[test]
fn time_until_follows_the_refill_rate() {
    let b = Bucket::new(100.0, 100);
    take_n(&b, 100, 0);
    assert_eq!(b.time_until(50, 0), Some(SEC / 2));
    assert_eq!(b.time_until(0, 0), Some(0));
    assert_eq!(b.time_until(101, 0), None, "deeper than the bucket");
    assert_eq!(Bucket::new(0.0, 10).time_until(1, 0), None, "no rate");
}

#[test]
fn set_rate_keeps_tokens_and_caps_them_at_the_new_depth() {
    let b = Bucket::new(10.0, 10);
    take_n(&b, 4, 0);
    b.set_rate(100.0, 100, 0);
    assert_eq!(b.available(0), 6, "resizing creates no tokens");
    assert_eq!(b.available(SEC), 100);
    b.set_rate(1.0, 2, SEC);
    assert_eq!(b.available(SEC), 2);
    b.set_rate(0.0, 0, SEC);
    assert_eq!(b.available(SEC), 0);
    b.set_rate(5.0, 5, SEC);
    assert_eq!(b.available(SEC), 0, "a pool that had no rate starts empty");
    assert_eq!(b.available(2 * SEC), 5);
}

#[test]
fn concurrent_takers_never_exceed_depth_plus_refill() {
    let b = std::sync::Arc::new(Bucket::new(1000.0, 1000));
    let taken: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                s.spawn(move || (0..2000).map(|_| take_n(&b, 1, 0)).sum::<u64>())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(taken, 1000);
}

#[test]
fn a_debt_saturated_at_the_end_of_time_is_only_debt() {
    // The freeze of issue 16: a debt that saturates the TAT used to
    // become the resize sentinel. Now it is a bucket in debt, and
    // takes, looks and resizes all still answer.
    let b = Bucket::new(10.0, 10);
    b.charge(u64::MAX, u64::MAX, SEC);
    b.charge(u64::MAX, u64::MAX, SEC);
    assert_eq!(b.take_up_to(1, 2 * SEC), (0, 0));
    assert!(b.debt(2 * SEC) > 1_000_000_000);
    b.set_rate(20.0, 20, 3 * SEC);
    b.set_rate(10.0, 10, 3 * SEC);
    assert_eq!(b.available(3 * SEC), 0);
    assert_eq!(b.time_until(1, 3 * SEC).map(|t| t > SEC), Some(true));
    b.put_back(5, 3 * SEC);
    assert_eq!(b.available(3 * SEC), 0, "still deep in debt");
}

#[test]
fn a_resize_moves_the_generation_and_keeps_the_fill() {
    let b = Bucket::new(100.0, 100);
    let g0 = b.word.load().generation;
    take_n(&b, 40, 0);
    b.set_rate(100.0, 100, 0);
    assert_eq!(b.word.load().generation, g0 + 1, "even an equal resize");
    assert_eq!(b.available(0), 60);
    assert_eq!(b.debt(0), 0);
    b.charge(80, u64::MAX, 0);
    assert_eq!(b.debt(0), 20);
}

#[test]
fn a_charge_stops_at_the_debt_bound() {
    let b = Bucket::new(10.0, 10);
    assert_eq!(b.charge(1_000_000, 50, 0), 60, "empty, then 50 owed");
    assert_eq!(b.debt(0), 50);
    assert_eq!(b.charge(5, 50, 0), 0, "already at the bound");
    assert_eq!(b.debt(0), 50);
    // Refilled 2 s later: 30 owed, room for 20 more.
    assert_eq!(b.debt(2 * SEC), 30);
    assert_eq!(b.charge(100, 50, 2 * SEC), 20);
    assert_eq!(b.debt(2 * SEC), 50);
    // A tighter bound never forgives debt already owed.
    assert_eq!(b.charge(1, 10, 2 * SEC), 0);
    assert_eq!(b.debt(2 * SEC), 50);
    assert_eq!(
        Bucket::new(0.0, 0).charge(10, 10, 0),
        0,
        "no rate: nothing owed"
    );
}
