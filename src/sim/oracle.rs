//! The oracle: the most tokens any admission could grant on the trace,
//! knowing all of it in advance. No mode can deny fewer (`oracle_tests`
//! checks it over random policies and traces), so "how close predictive
//! came to the oracle" is a share of what was there to win.
//!
//! Whatever reserves a planner sizes, every mode's pools keep two limits
//! on a resource of capacity `C`:
//! * a listed tenant's guaranteed bucket is its own: its rate, its depth;
//! * everything else (reserves, the shared and emergency pools, and the
//!   guarantees of tenants made from `defaults`) refills at no more than
//!   `C − Σ listed guarantees` in all and holds no more than one second of
//!   that plus the defaults' bursts: a resize never creates tokens
//!   (`Bucket::set_rate`), shrinks come before grows.
//!
//! The oracle is one bucket of each kind. Each request, in time order,
//! takes what it can from its tenant's own bucket, then from the common
//! one if the tenant may ever draw on more than its guarantee (its class
//! borrows or has emergency access, it has a reserve, or it came from
//! `defaults`). Requests are divisible here, and a request granted in part
//! counts its part, so the oracle grants at least what any all-or-nothing
//! schedule can; taking greedily is optimal for a sum of tokens, because
//! a token taken now serves one token of demand and a token kept serves at
//! most one later, if it does not overflow first. A concurrency resource
//! is the same split of units per tick, all back at the tick's end (as the
//! replay releases them). Arithmetic is exact: nano-tokens (tokens/s × ns).
//!
//! The per-tenant split is one optimal schedule's, not a bound per tenant.
//!
//! Beside the bound, the same pools replay the trace granting only whole
//! requests, each in time order if it fits (`whole_requests_denied`): what
//! a greedy all-or-nothing admission with perfect pools denies. Not a
//! bound (skipping a large request can admit two small ones), but the
//! difference between the two is the part of the gap to the bound that
//! lies in requests granted in part.

use super::report::{ModeReport, Stats};
use super::trace::Trace;
use super::{Line, Mode, Outcome, Timeline, busiest_resources};
use crate::clock::Nanos;
use crate::policy::{Kind, LimitSpec, Policy};
use crate::pool::Tier;

const NANO: u128 = 1_000_000_000;

/// What one tenant may draw on, on one resource.
#[derive(Debug, Clone, Copy, Default)]
struct Access {
    /// Its own bucket: tokens/s (units for concurrency) and depth.
    rate: u64,
    depth: u64,
    /// May take from the common bucket.
    common: bool,
}

/// The two kinds of bucket of one resource.
#[derive(Clone)]
struct Buckets {
    kind: Kind,
    tick: Nanos,
    access: Vec<Access>,
    /// Per tenant: nano-tokens held, and when last refilled.
    own: Vec<(u128, Nanos)>,
    common_rate: u64,
    common_depth: u64,
    common: (u128, Nanos),
    /// The tick the concurrency units were last given back in.
    tick_of: Option<Nanos>,
}

impl Buckets {
    fn new(policy: &Policy, trace: &Trace, resource: &str, tick: Nanos) -> Self {
        let spec = &policy.resources[resource];
        let classes = policy.qos_classes();
        let listed_guaranteed = policy.guaranteed_on(resource);
        let mut defaults_burst = 0;
        let access: Vec<Access> = trace
            .tenants
            .iter()
            .map(|name| match policy.tenants.get(name) {
                Some(t) => {
                    let limit = t.limits.get(resource).cloned().unwrap_or_default();
                    let class = classes.get(&t.qos).copied();
                    let beyond = class.is_some_and(|c| c.borrow || c.emergency);
                    Access {
                        rate: limit.guaranteed,
                        depth: own_depth(spec.kind, &limit),
                        common: beyond || limit.reserve.is_some(),
                    }
                }
                // A tenant made from defaults: its guarantee is carved out
                // of what the listed tenants leave, so all of it is common.
                None => {
                    let limit = policy
                        .defaults
                        .as_ref()
                        .and_then(|d| d.limits.get(resource).cloned())
                        .unwrap_or_default();
                    if spec.kind == Kind::Rate {
                        defaults_burst += own_depth(spec.kind, &limit) - limit.guaranteed;
                    }
                    Access {
                        rate: 0,
                        depth: 0,
                        common: true,
                    }
                }
            })
            .collect();
        let common_rate = spec.capacity.saturating_sub(listed_guaranteed);
        let full = |depth: u64| (depth as u128 * NANO, 0);
        Self {
            kind: spec.kind,
            tick,
            own: access.iter().map(|a| full(a.depth)).collect(),
            access,
            common_rate,
            common_depth: common_rate + defaults_burst,
            common: full(common_rate + defaults_burst),
            tick_of: None,
        }
    }

    /// What every pool of the resource can hold at once: the capacity
    /// check's slack for the oracle's own grants.
    fn slack(&self) -> f64 {
        (self.access.iter().map(|a| a.depth).sum::<u64>() + self.common_depth) as f64
    }

    /// Takes up to `amount` for `tenant` at `at`: nano-tokens from its own
    /// bucket and from the common one.
    fn take(&mut self, tenant: usize, amount: u64, at: Nanos) -> (u128, u128) {
        if self.kind == Kind::Concurrency && self.tick_of != Some(at / self.tick) {
            // A new tick: every unit is back.
            self.tick_of = Some(at / self.tick);
            for (own, a) in self.own.iter_mut().zip(&self.access) {
                own.0 = a.depth as u128 * NANO;
            }
            self.common.0 = self.common_depth as u128 * NANO;
        }
        let a = self.access[tenant];
        let want = amount as u128 * NANO;
        let own = refill(&mut self.own[tenant], self.kind, a.rate, a.depth, at);
        let from_own = want.min(*own);
        *own -= from_own;
        if !a.common || from_own == want {
            return (from_own, 0);
        }
        let kind = self.kind;
        let common = refill(
            &mut self.common,
            kind,
            self.common_rate,
            self.common_depth,
            at,
        );
        let from_common = (want - from_own).min(*common);
        *common -= from_common;
        (from_own, from_common)
    }

    /// Takes all of `amount` or nothing; whether it took.
    fn take_whole(&mut self, tenant: usize, amount: u64, at: Nanos) -> bool {
        let (own, common) = self.take(tenant, amount, at);
        if own + common == amount as u128 * NANO {
            return true;
        }
        // Both buckets were refilled to `at` by the take: put back exactly.
        self.own[tenant].0 += own;
        self.common.0 += common;
        false
    }
}

/// The own bucket's depth: the guarantee's depth (at least one second of
/// its rate, as a daemon's share keeps it), or its units.
fn own_depth(kind: Kind, limit: &LimitSpec) -> u64 {
    match kind {
        Kind::Rate => limit.depth().max(limit.guaranteed),
        Kind::Concurrency => limit.guaranteed,
    }
}

/// A rate bucket's tokens at `at` (concurrency units refill per tick).
fn refill(bucket: &mut (u128, Nanos), kind: Kind, rate: u64, depth: u64, at: Nanos) -> &mut u128 {
    if kind == Kind::Rate {
        let gained = rate as u128 * at.saturating_sub(bucket.1) as u128;
        bucket.0 = (bucket.0 + gained).min(depth as u128 * NANO);
        bucket.1 = at;
    }
    &mut bucket.0
}

/// Whole tokens of `nano`, rounded up: the oracle never claims to deny a
/// token some schedule could grant.
fn tokens_up(nano: u128) -> u64 {
    nano.div_ceil(NANO) as u64
}

/// The oracle's outcome on `trace` under `policy`, in ticks of `tick`.
pub(super) fn run(policy: &Policy, trace: &Trace, tick: Nanos) -> Outcome {
    let tick = tick.max(1);
    let ticks = (trace.rows.last().map_or(0, |r| r.at) / tick + 1) as usize;
    let mut buckets: Vec<Option<Buckets>> = trace
        .resources
        .iter()
        .map(|r| {
            policy
                .resources
                .contains_key(r)
                .then(|| Buckets::new(policy, trace, r, tick))
        })
        .collect();
    // The same pools, full as at the start, for the whole-request replay.
    let mut whole_buckets = buckets.clone();
    let mut whole_denied = 0u64;
    let (tenants, resources) = (trace.tenants.len(), trace.resources.len());
    // Per tenant: requests, requests granted whole, tokens asked, nano-tokens granted.
    let mut counts = vec![(0u64, 0u64, 0u64, 0u128); tenants];
    // Per resource: nano-tokens granted in each tick; in all, own and common.
    let mut per_tick = vec![vec![0u128; ticks]; resources];
    let mut by_tier = vec![(0u128, 0u128); resources];
    // Per tenant, on its plot line's resource, per tick: tokens asked and
    // nano-tokens granted (only those lines are drawn).
    let lines = busiest_resources(trace);
    let mut asked = vec![vec![0u64; ticks]; tenants];
    let mut granted = vec![vec![0u128; ticks]; tenants];
    for row in trace.rows.iter().filter(|r| r.amount > 0) {
        let (t, r, k) = (
            row.tenant as usize,
            row.resource as usize,
            (row.at / tick) as usize,
        );
        let (own, common) = buckets[r]
            .as_mut()
            .map_or((0, 0), |b| b.take(t, row.amount, row.at));
        let got = own + common;
        if !whole_buckets[r]
            .as_mut()
            .is_some_and(|b| b.take_whole(t, row.amount, row.at))
        {
            whole_denied += row.amount;
        }
        let c = &mut counts[t];
        c.0 += 1;
        c.1 += u64::from(got == row.amount as u128 * NANO);
        c.2 += row.amount;
        c.3 += got;
        per_tick[r][k] += got;
        by_tier[r].0 += own;
        by_tier[r].1 += common;
        if lines[t].1 == r {
            asked[t][k] += row.amount;
            granted[t][k] += got;
        }
    }

    let mut report = ModeReport::new(trace, policy);
    let mut total = Stats::default();
    for (name, &(requests, whole, tokens_asked, got)) in trace.tenants.iter().zip(&counts) {
        if requests == 0 {
            continue;
        }
        let tokens_granted = tokens_up(got);
        let s = Stats {
            requests,
            granted: whole,
            denied: requests - whole,
            tokens_asked,
            tokens_granted,
            tokens_denied: tokens_asked - tokens_granted,
            denial_rate: (requests - whole) as f64 / requests as f64,
            ..Stats::default()
        };
        total.requests += s.requests;
        total.granted += s.granted;
        total.denied += s.denied;
        total.tokens_asked += s.tokens_asked;
        total.tokens_granted += s.tokens_granted;
        total.tokens_denied += s.tokens_denied;
        report.tenants.insert(name.clone(), s);
    }
    total.denial_rate = total.denied as f64 / total.requests.max(1) as f64;
    report.total = total;
    report.whole_requests_denied = Some(whole_denied);

    let tick_secs = tick as f64 / 1e9;
    for (r, nano) in per_tick.iter().enumerate() {
        // Whole tokens per tick, from the running sum: never above what
        // the buckets allowed by more than rounding, and summing to it.
        let mut sum = 0;
        let mut whole_before = 0;
        let tokens: Vec<u64> = nano
            .iter()
            .map(|&g| {
                sum += g;
                let whole = tokens_up(sum);
                let t = whole - whole_before;
                whole_before = whole;
                t
            })
            .collect();
        let (own, common) = by_tier[r];
        let mut tiers = [0u64; 4];
        tiers[Tier::Guaranteed as usize] = tokens_up(own);
        tiers[Tier::Shared as usize] = tokens_up(common);
        report.add_ticks(r, &tokens, tiers);
    }
    let slacks: Vec<f64> = buckets
        .iter()
        .map(|b| b.as_ref().map_or(0.0, Buckets::slack))
        .collect();
    report.finish_with(
        &|name| {
            trace
                .resources
                .iter()
                .position(|r| r == name)
                .map_or(0.0, |r| slacks[r])
        },
        ticks as Nanos * tick,
        tick_secs,
    );

    let per_sec = 1.0 / tick_secs;
    let lines = lines
        .into_iter()
        .map(|(t, r)| {
            let (a, g) = (&asked[t], &granted[t]);
            Line {
                tenant: trace.tenants[t].clone(),
                resource: trace.resources[r].clone(),
                demand: a.iter().map(|&x| (x as f64 * per_sec) as f32).collect(),
                denied: a
                    .iter()
                    .zip(g)
                    .map(|(&x, &y)| ((x as f64 - y as f64 / 1e9) * per_sec) as f32)
                    .collect(),
                reserve: vec![0.0; ticks],
                band: Vec::new(),
            }
        })
        .collect();
    Outcome {
        mode: Mode::Oracle,
        report,
        timeline: Timeline {
            tick_secs,
            lines,
            leases: Vec::new(),
            ahead: Vec::new(),
        },
    }
}
