//! The lease store's protocol: what a daemon sends for one resource each
//! tick ([`Ask`]) and what it gets back ([`Reply`]). [`MemoryStore`] runs the
//! allocation in process (the simulator, tests); `redis.rs` runs the same
//! allocation as one server-side script call per resource. The algorithm is
//! described once, in `docs/distributed.md` ("Protocol").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One instance's call for one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The resource (its keys carry it as a hash tag).
    pub resource: Arc<str>,
    /// This daemon process: `<instance_id>/<nonce>`, unique per process.
    pub member: Arc<str>,
    /// The resource's global capacity `C`.
    pub capacity: u64,
    /// The share this instance would like (see `plan`).
    pub target: u64,
    /// The share this instance enforces right now (after lowering).
    pub in_force: u64,
    /// Lease time to live.
    pub ttl: Duration,
    /// This instance's wants, opaque to the store, returned to the others.
    pub wants: String,
}

/// The store's answer to one [`Ask`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The share granted: at most `target`, and at most `C` less the
    /// unexpired leases of the others.
    pub grant: u64,
    /// The store's clock (ms) when it decided; the lease expires at
    /// `now_ms + ttl`.
    pub now_ms: u64,
    /// Every live instance's wants (this one's included), by member.
    pub wants: Vec<(String, String)>,
    /// Σ of the other live instances' leases.
    pub others: u64,
}

/// The largest number an [`Ask`] may carry: the Redis script computes in
/// Lua 5.1, whose numbers are doubles, exact only up to 2^53.
pub const MAX_EXACT: u64 = (1 << 53) - 1;

/// Member names starting with this are the store's own (the recovery
/// deadline is kept under `~recovering`), so no daemon may use them.
pub const RESERVED_PREFIX: char = '~';

/// Why an [`Ask`] cannot be sent: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease ask for resource {resource:?}: {field}: {reason}")]
pub struct AskError {
    /// The ask's resource.
    pub resource: String,
    /// The [`Ask`] field refused (`member`, `ttl`, …).
    pub field: &'static str,
    /// Why, with the value.
    pub reason: String,
}

impl Ask {
    /// Checks what the store's script relies on: a resource and a member
    /// name (not a reserved one), numbers it computes exactly, and a ttl of
    /// at least 1 ms.
    pub fn validate(&self) -> Result<(), AskError> {
        let fail = |field, reason: String| {
            Err(AskError {
                resource: self.resource.to_string(),
                field,
                reason,
            })
        };
        if self.resource.is_empty() {
            return fail("resource", "is empty".into());
        }
        if self.member.is_empty() {
            return fail("member", "is empty".into());
        }
        if self.member.starts_with(RESERVED_PREFIX) {
            return fail(
                "member",
                format!(
                    "{:?} starts with the reserved {RESERVED_PREFIX:?}",
                    self.member
                ),
            );
        }
        for (field, value) in [
            ("capacity", self.capacity),
            ("target", self.target),
            ("in_force", self.in_force),
        ] {
            if value > MAX_EXACT {
                return fail(field, format!("{value} exceeds {MAX_EXACT} (2^53 - 1)"));
            }
        }
        let ttl = self.ttl.as_millis();
        if ttl == 0 {
            return fail("ttl", format!("{:?} is under 1 ms", self.ttl));
        }
        if ttl > u128::from(MAX_EXACT / 10) {
            return fail(
                "ttl",
                format!("{:?} exceeds {} ms", self.ttl, MAX_EXACT / 10),
            );
        }
        Ok(())
    }

    /// The ttl in whole milliseconds, as the store counts it.
    pub fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The allocation in process, with the time passed in: the reference the
/// Redis script is tested against, and the store the simulator's daemons
/// share. Each resource's state vanishes after 10 × ttl without a call, as
/// the Redis keys do.
#[derive(Debug, Default)]
pub struct MemoryStore {
    resources: BTreeMap<Arc<str>, Resource>,
}

/// One resource's leases and wants (the two Redis hashes).
#[derive(Debug, Default)]
struct Resource {
    /// member → (lease, expires_ms).
    leases: BTreeMap<String, (u64, u64)>,
    wants: BTreeMap<String, String>,
    /// While set and in the future, grants are capped at `in_force`.
    recovering_until: Option<u64>,
    /// The resource is gone after this instant (Redis: `PEXPIRE`; a key
    /// expires once the clock is past its deadline).
    expires_ms: u64,
}

impl MemoryStore {
    /// An empty store (a new Redis).
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `ask` at `now_ms` on the store's clock: the same steps as
    /// `lease.lua`, in the same order.
    pub fn exchange(&mut self, ask: &Ask, now_ms: u64) -> Reply {
        let ttl = ask.ttl_ms();
        let existed = self
            .resources
            .get(&ask.resource)
            .is_some_and(|r| now_ms <= r.expires_ms);
        let res = self.resources.entry(ask.resource.clone()).or_default();
        if !existed {
            *res = Resource::default();
        }
        // 1. Drop expired members from both hashes.
        let wants = &mut res.wants;
        res.leases.retain(|member, &mut (_, expires)| {
            let live = expires > now_ms;
            if !live {
                wants.remove(member);
            }
            live
        });
        res.recovering_until = res.recovering_until.filter(|&until| until > now_ms);
        // 2. The others' leases.
        let others = res
            .leases
            .iter()
            .filter(|(member, _)| member.as_str() != &*ask.member)
            .fold(0u64, |sum, (_, &(lease, _))| sum.saturating_add(lease));
        // 3. A store that lost its data waits one ttl for old leases to end.
        if !existed {
            res.recovering_until = Some(now_ms.saturating_add(ttl));
        }
        // 4. The grant.
        let mut grant = ask.target.min(ask.capacity.saturating_sub(others));
        if res.recovering_until.is_some() {
            grant = grant.min(ask.in_force);
        }
        // 5. Store what the caller may still enforce, until now + ttl.
        let held = grant.max(ask.in_force);
        let member = ask.member.to_string();
        res.leases
            .insert(member.clone(), (held, now_ms.saturating_add(ttl)));
        res.wants.insert(member, ask.wants.clone());
        res.expires_ms = now_ms.saturating_add(ttl.saturating_mul(10));
        // 6. The answer.
        Reply {
            grant,
            now_ms,
            others,
            wants: res
                .wants
                .iter()
                .map(|(m, w)| (m.clone(), w.clone()))
                .collect(),
        }
    }

    /// The store restarting empty (or being flushed).
    pub fn wipe(&mut self) {
        self.resources.clear();
    }

    /// Σ of the unexpired leases stored for `resource` at `now_ms`: the
    /// quantity the protocol keeps at most `C`.
    pub fn held(&self, resource: &str, now_ms: u64) -> u64 {
        self.resources
            .get(resource)
            .filter(|r| now_ms <= r.expires_ms)
            .map_or(0, |r| {
                r.leases
                    .values()
                    .filter(|&&(_, expires)| expires > now_ms)
                    .fold(0u64, |sum, &(lease, _)| sum.saturating_add(lease))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: u64 = 100;
    const TTL: u64 = 1_000;
    const T0: u64 = 1_000_000;

    fn ask(member: &str, target: u64, in_force: u64) -> Ask {
        Ask {
            resource: "db".into(),
            member: member.into(),
            capacity: C,
            target,
            in_force,
            ttl: Duration::from_millis(TTL),
            wants: format!("wants of {member}"),
        }
    }

    /// A store past its first recovery window, with nothing in it.
    fn settled() -> MemoryStore {
        let mut store = MemoryStore::new();
        store.exchange(&ask("boot", 0, 0), T0 - TTL);
        store
    }

    #[test]
    fn grant_is_at_most_the_target_and_what_the_others_leave() {
        let mut store = settled();
        let a = store.exchange(&ask("a", 70, 0), T0);
        assert_eq!((a.grant, a.others), (70, 0));
        let b = store.exchange(&ask("b", 50, 0), T0);
        assert_eq!((b.grant, b.others), (30, 70));
        let c = store.exchange(&ask("c", 10, 0), T0);
        assert_eq!((c.grant, c.others), (0, 100));
        assert_eq!(store.held("db", T0), C);
    }

    #[test]
    fn grant_is_zero_not_negative_when_the_others_hold_more_than_capacity() {
        let mut store = settled();
        store.exchange(&ask("a", 100, 0), T0);
        let shrunk = Ask {
            capacity: 60,
            ..ask("b", 10, 0)
        };
        let b = store.exchange(&shrunk, T0);
        assert_eq!((b.grant, b.others), (0, 100));
    }

    #[test]
    fn capacity_given_back_is_free_for_others_only_after_the_next_call() {
        let mut store = settled();
        store.exchange(&ask("a", 100, 0), T0);
        // a is granted 40 but still enforces 100 until it applies the grant.
        assert_eq!(store.exchange(&ask("a", 40, 100), T0).grant, 40);
        assert_eq!(store.exchange(&ask("b", 60, 0), T0).grant, 0);
        // Its next call says it enforces 40 now.
        assert_eq!(store.exchange(&ask("a", 40, 40), T0 + 1).grant, 40);
        assert_eq!(store.exchange(&ask("b", 60, 0), T0 + 1).grant, 60);
    }

    #[test]
    fn expired_lease_and_its_wants_are_dropped_at_its_expiry() {
        let mut store = settled();
        store.exchange(&ask("a", 100, 0), T0);
        let before = store.exchange(&ask("b", 100, 0), T0 + TTL - 1);
        assert_eq!((before.grant, before.others), (0, 100));
        assert_eq!(before.wants.len(), 2);
        let after = store.exchange(&ask("b", 100, 0), T0 + TTL);
        assert_eq!((after.grant, after.others), (100, 0));
        assert_eq!(after.wants, vec![("b".into(), "wants of b".into())]);
    }

    #[test]
    fn wants_list_every_live_member_by_name_the_caller_included() {
        let mut store = settled();
        store.exchange(&ask("c", 1, 0), T0);
        store.exchange(&ask("a", 1, 0), T0);
        let reply = store.exchange(&ask("b", 1, 0), T0);
        let members: Vec<_> = reply.wants.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(members, ["a", "b", "c"]); // "boot" expired at T0
        assert_eq!(reply.wants[1].1, "wants of b");
    }

    #[test]
    fn after_a_wipe_grants_are_capped_at_what_callers_enforce_for_one_ttl() {
        let mut store = settled();
        store.exchange(&ask("a", 60, 0), T0);
        store.exchange(&ask("b", 40, 0), T0);
        store.wipe();
        let t = T0 + 10;
        // The first caller enforces nothing (a newcomer, or a daemon whose
        // lease ended): it gets nothing yet, a and b still enforce 100.
        let c = store.exchange(&ask("c", 50, 0), t);
        assert_eq!((c.grant, c.others), (0, 0));
        // b re-registers: it keeps what it enforces, no more.
        let b = store.exchange(&ask("b", 100, 40), t + 1);
        assert_eq!((b.grant, b.others), (40, 0));
        let a = store.exchange(&ask("a", 60, 60), t + 2);
        assert_eq!((a.grant, a.others), (60, 40));
        // a gives 30 back; it is free, but only to callers enforcing it...
        store.exchange(&ask("a", 30, 30), t + 3);
        assert_eq!(store.exchange(&ask("c", 50, 0), t + TTL - 1).grant, 0);
        // ...until one ttl after the first call.
        let c = store.exchange(&ask("c", 50, 0), t + TTL);
        assert_eq!((c.grant, c.others), (30, 70));
    }

    #[test]
    fn a_fresh_store_grants_nothing_new_for_one_ttl() {
        let mut store = MemoryStore::new();
        assert_eq!(store.exchange(&ask("a", 50, 0), T0).grant, 0);
        assert_eq!(store.exchange(&ask("a", 50, 0), T0 + TTL - 1).grant, 0);
        assert_eq!(store.exchange(&ask("a", 50, 0), T0 + TTL).grant, 50);
    }

    #[test]
    fn a_resource_idle_for_ten_ttls_is_forgotten() {
        let mut store = settled();
        store.exchange(&ask("a", 50, 0), T0);
        // At exactly 10 × ttl it is still there (no recovery window; a's
        // lease has expired).
        let kept = store.exchange(&ask("b", 50, 0), T0 + 10 * TTL);
        assert_eq!((kept.grant, kept.wants.len()), (50, 1));
        // Past it, the resource starts over: a recovery window.
        let gone = store.exchange(&ask("b", 50, 50), T0 + 20 * TTL + 1);
        assert_eq!((gone.grant, gone.wants.len()), (50, 1));
        assert_eq!(store.exchange(&ask("c", 50, 0), T0 + 20 * TTL + 1).grant, 0);
    }

    #[test]
    fn resources_are_independent() {
        let mut store = settled();
        store.exchange(&ask("a", 100, 0), T0);
        let other = Ask {
            resource: "slots".into(),
            ..ask("b", 30, 30)
        };
        let reply = store.exchange(&other, T0);
        // A resource never seen is in its recovery window.
        assert_eq!((reply.grant, reply.others), (30, 0));
        assert_eq!(store.held("db", T0), 100);
        assert_eq!(store.held("slots", T0), 30);
    }

    #[test]
    fn validate_names_the_field_and_the_reason() {
        assert_eq!(ask("a", 1, 1).validate(), Ok(()));
        let refused = |change: fn(&mut Ask), expected: &str| {
            let mut bad = ask("a", 1, 1);
            change(&mut bad);
            let message = bad.validate().unwrap_err().to_string();
            assert!(message.starts_with("lease ask for resource"), "{message}");
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        };
        refused(|a| a.resource = "".into(), "resource: is empty");
        refused(|a| a.member = "".into(), "member: is empty");
        refused(
            |a| a.member = "~recovering".into(),
            "member: \"~recovering\" starts with",
        );
        refused(
            |a| a.capacity = MAX_EXACT + 1,
            "capacity: 9007199254740992 exceeds",
        );
        refused(
            |a| a.target = u64::MAX,
            "target: 18446744073709551615 exceeds",
        );
        refused(
            |a| a.in_force = MAX_EXACT + 1,
            "in_force: 9007199254740992 exceeds",
        );
        refused(
            |a| a.ttl = Duration::from_micros(999),
            "ttl: 999µs is under 1 ms",
        );
        refused(|a| a.ttl = Duration::MAX, "ttl: ");
    }
}
