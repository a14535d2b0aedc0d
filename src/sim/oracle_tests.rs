//! Over random multi-tenant policies and traces (reserves, borrowing and
//! lending), no mode ever grants more than capacity allows. The oracle is
//! *not* a bound on the other modes, and a test pins down why: until that
//! one fails, no page may call it one.

use proptest::prelude::*;

use super::*;

const QOS: [&str; 3] = ["gold", "bronze", "platinum"];

#[derive(Debug, Clone)]
struct TenantCase {
    qos: usize,
    /// Percent of capacity guaranteed (at most 3 × 30 in all).
    guaranteed: u64,
    reserve: bool,
    base: u64,
    /// Burst rate, from second `burst_at` for `burst_for` seconds.
    burst: u64,
    burst_at: u64,
    burst_for: u64,
}

fn tenant_case() -> impl Strategy<Value = TenantCase> {
    (
        0..3usize,
        0..30u64,
        any::<bool>(),
        0..80u64,
        0..400u64,
        0..90u64,
        1..40u64,
    )
        .prop_map(
            |(qos, guaranteed, reserve, base, burst, burst_at, burst_for)| TenantCase {
                qos,
                guaranteed,
                reserve,
                base,
                burst,
                burst_at,
                burst_for,
            },
        )
}

fn policy_yaml(capacity: u64, tenants: &[TenantCase]) -> String {
    let mut y = format!("resources:\n  api: {{ kind: rate, capacity: {capacity} }}\ntenants:\n");
    for (i, t) in tenants.iter().enumerate() {
        let reserve = if t.reserve {
            ", reserve: { quantile: 0.95, horizon: 10s }"
        } else {
            ""
        };
        y += &format!(
            "  t{i}:\n    qos: {}\n    limits:\n      api: {{ guaranteed: {}{reserve} }}\n",
            QOS[t.qos],
            capacity * t.guaranteed / 100
        );
    }
    y
}

/// Two requests a second per tenant for `seconds`.
fn trace_csv(tenants: &[TenantCase], seconds: u64) -> String {
    let mut csv = String::from("timestamp,tenant,resource,amount\n");
    for s in 0..seconds {
        for half in 0..2 {
            for (i, t) in tenants.iter().enumerate() {
                let bursting = (t.burst_at..t.burst_at + t.burst_for).contains(&s);
                let rate = if bursting { t.burst } else { t.base };
                let amount = rate / 2;
                if amount > 0 {
                    let at = s as f64 + half as f64 * 0.5 + i as f64 * 0.01;
                    csv += &format!("{at:.2},t{i},api,{amount}\n");
                }
            }
        }
    }
    csv
}

/// Denied tokens and capacity violations per mode.
fn run_all(capacity: u64, tenants: &[TenantCase], seconds: u64) -> Vec<(Mode, u64, u64)> {
    let policy = Policy::load_str(&policy_yaml(capacity, tenants), "p").unwrap();
    let csv = trace_csv(tenants, seconds);
    let trace = Trace::read(csv.as_bytes(), "t.csv", &policy).unwrap();
    Mode::ALL
        .iter()
        .map(|&m| {
            let out = run(
                &policy,
                &trace,
                m,
                &PlannerConfig::default(),
                &Daemons::default(),
                &mut |_| {},
            );
            (
                m,
                out.report.total.tokens_denied,
                out.report.capacity_violations,
            )
        })
        .collect()
}

fn denied_by(runs: &[(Mode, u64, u64)], mode: Mode) -> u64 {
    runs.iter().find(|r| r.0 == mode).unwrap().1
}

/// Found by the property below when it asserted the bound (the case
/// pinned before lending made reserves work-conserving no longer loses).
/// `t0` (gold, no reserve) asks 208/s for 22 s against a capacity of 137
/// while `t1` (platinum, a reserve) asks 36/s: reactive denies 2,342
/// tokens, the oracle 2,360. The oracle sizes each tick by rates alone
/// and carves `t1`'s exact rate out of the shared pool as a reserve of one
/// second's depth; the tokens the single shared bucket stored across
/// ticks are then split over buckets each capped at one second of its own
/// rate. Stored tokens are what a per-tick rate oracle does not see.
#[test]
fn the_oracle_is_not_a_bound_when_a_reserve_starves_a_borrower_without_one() {
    let tenants = [
        TenantCase {
            qos: 0,
            guaranteed: 0,
            reserve: false,
            base: 0,
            burst: 208,
            burst_at: 0,
            burst_for: 22,
        },
        TenantCase {
            qos: 2,
            guaranteed: 0,
            reserve: true,
            base: 36,
            burst: 0,
            burst_at: 22,
            burst_for: 1,
        },
    ];
    let runs = run_all(137, &tenants, 120);
    assert!(
        denied_by(&runs, Mode::Oracle) > denied_by(&runs, Mode::Reactive),
        "{runs:?}"
    );
    assert!(runs.iter().all(|r| r.2 == 0), "{runs:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_mode_grants_more_than_capacity_allows(
        capacity in 100..400u64,
        tenants in prop::collection::vec(tenant_case(), 2..4),
    ) {
        prop_assume!(trace_csv(&tenants, 120).lines().count() > 1);
        for (mode, _, violations) in run_all(capacity, &tenants, 120) {
            prop_assert_eq!(violations, 0, "{:?}", mode);
        }
    }
}
