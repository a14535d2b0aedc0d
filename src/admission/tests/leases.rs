//! Leases: released once, back to the pools that paid them, and reclaimed
//! after their TTL.

use super::*;

#[test]
fn concurrency_leases_release_once_and_return_units_to_their_pools() {
    let (core, clock) = core();
    let now = clock.now();
    let g = granted(core.try_acquire(&req("bronze", "slots", 1), now));
    let lease = g
        .lease
        .expect("concurrency grants carry a lease")
        .to_string();
    denied(core.try_acquire(&req("bronze", "slots", 1), now));
    assert_eq!(
        core.release(&lease).unwrap(),
        Released {
            units: 1,
            already: false
        }
    );
    assert_eq!(
        core.release(&lease).unwrap(),
        Released {
            units: 0,
            already: true
        }
    );
    granted(core.try_acquire(&req("bronze", "slots", 1), now));
    assert!(matches!(
        core.release("00000000deadbeef"),
        Err(AdmissionError::NotFound(m)) if m.starts_with("lease_id: unknown lease")
    ));
    assert!(matches!(
        core.release("not-a-lease"),
        Err(AdmissionError::InvalidArgument(m)) if m.starts_with("lease_id:")
    ));
}

#[test]
fn leases_past_their_ttl_are_reclaimed_and_then_read_as_released() {
    let (core, clock) = core();
    let g = granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    assert_eq!(core.reap(clock.now()), 0);
    clock.advance(Duration::from_secs(31));
    assert_eq!(core.reap(clock.now()), 1);
    granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    let lease = g.lease.unwrap().to_string();
    assert!(core.release(&lease).unwrap().already);
}
