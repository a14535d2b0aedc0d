//! Request ids: a retry within the window is the first answer, not a
//! second payment.

use super::*;

#[tokio::test]
async fn a_retry_with_the_same_request_id_does_not_pay_twice() {
    let (core, clock) = core();
    let mut r = req("bronze", "db", 30);
    r.request_id = Some("order-17");
    let first = granted(core.acquire(&r).await);
    let again = granted(core.acquire(&r).await);
    assert_eq!(first, again);
    assert_eq!(
        granted(core.try_acquire(&req("bronze", "db", 1), clock.now())).remaining,
        19
    );
    let mut other = r;
    other.amount = 31;
    assert!(matches!(
        core.acquire(&other).await,
        Err(AdmissionError::InvalidArgument(m)) if m.starts_with("request_id:")
    ));
    clock.advance(Duration::from_secs(301));
    core.reap(clock.now());
    granted(core.acquire(&r).await); // a new window: pays again
}

#[tokio::test]
async fn a_denied_request_id_is_not_remembered() {
    let (core, clock) = core();
    granted(core.try_acquire(&req("bronze", "db", 50), clock.now()));
    let mut r = req("bronze", "db", 10);
    r.request_id = Some("x");
    denied(core.acquire(&r).await);
    clock.advance(Duration::from_secs(1));
    granted(core.acquire(&r).await);
}
