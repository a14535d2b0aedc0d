//! Report: refunds and debts settled once per grant, bad entries
//! rejected one by one.

use super::*;

#[test]
fn report_refunds_or_debits_a_rate_grant_once() {
    let (core, clock) = core();
    let now = clock.now();
    let mut r = req("bronze", "db", 40);
    r.lease = true;
    let g = granted(core.try_acquire(&r, now));
    let lease = g.lease.unwrap().to_string();
    let entry = |used| ReportEntry {
        tenant: "bronze",
        resource: "db",
        lease_id: Some(&lease),
        used,
        ..Default::default()
    };
    let s = core.report(&[entry(10)]);
    assert_eq!((s.accepted, s.rejected), (1, 0));
    assert_eq!(
        granted(core.try_acquire(&req("bronze", "db", 1), now)).remaining,
        39
    );
    let s = core.report(&[entry(10)]);
    assert_eq!(s.rejected, 1, "a grant is settled once");
    assert!(s.errors[0].1.contains("already settled"), "{:?}", s.errors);

    // Used more than acquired: the bucket goes into debt.
    clock.advance(Duration::from_secs(1));
    let now = clock.now();
    let g = granted(core.try_acquire(&r, now));
    let lease = g.lease.unwrap().to_string();
    let s = core.report(&[ReportEntry {
        tenant: "bronze",
        resource: "db",
        lease_id: Some(&lease),
        used: 140,
        ..Default::default()
    }]);
    assert_eq!(s.accepted, 1);
    let d = denied(core.try_acquire(&req("bronze", "db", 1), now));
    assert!(d.retry_after > Duration::from_secs(1), "{d:?}");
}

#[test]
fn bad_report_entries_are_rejected_one_by_one() {
    let (core, _clock) = core();
    let s = core.report(&[
        ReportEntry {
            tenant: "bronze",
            resource: "db",
            used: 3,
            ..Default::default()
        },
        ReportEntry {
            tenant: "ghost",
            resource: "db",
            ..Default::default()
        },
        ReportEntry {
            tenant: "bronze",
            resource: "db",
            lease_id: Some("zz"),
            ..Default::default()
        },
        ReportEntry {
            tenant: "bronze",
            resource: "db",
            lease_id: Some("00000000000000aa"),
            ..Default::default()
        },
    ]);
    assert_eq!((s.accepted, s.rejected), (1, 3));
    let idx: Vec<usize> = s.errors.iter().map(|e| e.0).collect();
    assert_eq!(idx, [1, 2, 3]);
    assert!(s.errors[0].1.starts_with("tenant:"));
    assert!(s.errors[1].1.starts_with("lease_id:"));
}

#[test]
fn report_of_another_tenants_lease_is_rejected() {
    let (core, clock) = core();
    let g = granted(core.try_acquire(&req("bronze", "slots", 1), clock.now()));
    let lease = g.lease.unwrap().to_string();
    let s = core.report(&[ReportEntry {
        tenant: "plat",
        resource: "slots",
        lease_id: Some(&lease),
        used: 1,
        ..Default::default()
    }]);
    assert_eq!(s.rejected, 1);
    assert!(
        s.errors[0].1.contains("belongs to tenant \"bronze\""),
        "{:?}",
        s.errors
    );
}
