//! What a policy edit changes, between the policy in force and the one just
//! read: tenants and resources added, removed and changed, and `defaults`.
//! The watcher logs it for every reload, and refuses (unless forced) an edit
//! that removes too much of either: a file cut short by an editor or a
//! script can still parse and validate, and would drop everything after the
//! cut.

use std::collections::BTreeMap;
use std::fmt;

use super::Policy;

/// Names listed in a change before the rest is only counted.
const LISTED: usize = 10;

/// Entries of one map (tenants or resources) added, removed and changed,
/// each in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Entries before the edit.
    pub before: usize,
}

impl Changes {
    fn between<V: PartialEq>(old: &BTreeMap<String, V>, new: &BTreeMap<String, V>) -> Self {
        let mut c = Self {
            before: old.len(),
            ..Self::default()
        };
        for (name, spec) in old {
            match new.get(name) {
                None => c.removed.push(name.clone()),
                Some(s) if s != spec => c.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        c.added = new
            .keys()
            .filter(|k| !old.contains_key(*k))
            .cloned()
            .collect();
        c
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Share of the entries before the edit that it removes (0 if there
    /// were none).
    pub fn removed_share(&self) -> f64 {
        match self.before {
            0 => 0.0,
            n => self.removed.len() as f64 / n as f64,
        }
    }
}

/// What happened to `defaults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsChange {
    Same,
    Added,
    Removed,
    Changed,
}

/// The difference between two policies, as a reload's log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDiff {
    pub tenants: Changes,
    pub resources: Changes,
    pub defaults: DefaultsChange,
}

impl PolicyDiff {
    /// What going from `old` to `new` changes.
    pub fn between(old: &Policy, new: &Policy) -> Self {
        let defaults = match (&old.defaults, &new.defaults) {
            (None, None) => DefaultsChange::Same,
            (None, Some(_)) => DefaultsChange::Added,
            (Some(_), None) => DefaultsChange::Removed,
            (Some(a), Some(b)) if a == b => DefaultsChange::Same,
            (Some(_), Some(_)) => DefaultsChange::Changed,
        };
        Self {
            tenants: Changes::between(&old.tenants, &new.tenants),
            resources: Changes::between(&old.resources, &new.resources),
            defaults,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
            && self.resources.is_empty()
            && self.defaults == DefaultsChange::Same
    }

    /// Share of tenants the edit removes. Dropping `defaults` drops every
    /// tenant the policy does not list, however many there are: it counts
    /// as all of them.
    pub fn removed_tenant_share(&self) -> f64 {
        match self.defaults {
            DefaultsChange::Removed => 1.0,
            _ => self.tenants.removed_share(),
        }
    }

    /// Why the edit removes too much: more than `max` (a share, 0 to 1) of
    /// the tenants or of the resources. `None`: within bounds.
    pub fn removes_too_much(&self, max: f64) -> Option<String> {
        let percent = |share: f64| format!("{:.0}%", share * 100.0);
        let mut why = Vec::new();
        if self.removed_tenant_share() > max {
            why.push(match self.defaults {
                DefaultsChange::Removed => format!(
                    "it drops `defaults` (every tenant not listed; counts as {})",
                    percent(1.0)
                ),
                _ => format!(
                    "it removes {} of {} tenants ({})",
                    self.tenants.removed.len(),
                    self.tenants.before,
                    percent(self.removed_tenant_share())
                ),
            });
        }
        if self.resources.removed_share() > max {
            why.push(format!(
                "it removes {} of {} resources ({})",
                self.resources.removed.len(),
                self.resources.before,
                percent(self.resources.removed_share())
            ));
        }
        (!why.is_empty()).then(|| {
            format!(
                "{}, more than reload.max_removed_share {}",
                why.join(" and "),
                percent(max)
            )
        })
    }
}

/// `3 removed (a, b, c)`; past [`LISTED`] names, `and N more`.
fn listed(f: &mut fmt::Formatter<'_>, what: &str, names: &[String]) -> fmt::Result {
    write!(f, "{} {what} (", names.len())?;
    for (i, name) in names.iter().take(LISTED).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(name)?;
    }
    if names.len() > LISTED {
        write!(f, ", and {} more", names.len() - LISTED)?;
    }
    f.write_str(")")
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ];
        let mut first = true;
        for (what, names) in parts {
            if names.is_empty() {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            listed(f, what, names)?;
        }
        Ok(())
    }
}

/// `tenants: 1 added (new), 2 removed (a, b); defaults removed`, or
/// `no changes`.
impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.tenants.is_empty() {
            parts.push(format!("tenants: {}", self.tenants));
        }
        if !self.resources.is_empty() {
            parts.push(format!("resources: {}", self.resources));
        }
        match self.defaults {
            DefaultsChange::Same => {}
            DefaultsChange::Added => parts.push("defaults added".into()),
            DefaultsChange::Removed => parts.push("defaults removed".into()),
            DefaultsChange::Changed => parts.push("defaults changed".into()),
        }
        if parts.is_empty() {
            return f.write_str("no changes");
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(tenants: &[(&str, u64)], resources: &[&str], defaults: Option<u64>) -> Policy {
        let mut yaml = String::from("resources:\n");
        for r in resources {
            yaml += &format!("  {r}: {{ kind: rate, capacity: 100000 }}\n");
        }
        yaml += "tenants:\n";
        for (t, g) in tenants {
            yaml += &format!(
                "  {t}: {{ limits: {{ {}: {{ guaranteed: {g} }} }} }}\n",
                resources[0]
            );
        }
        if let Some(g) = defaults {
            yaml += &format!(
                "defaults: {{ limits: {{ {}: {{ guaranteed: {g} }} }} }}\n",
                resources[0]
            );
        }
        Policy::load_str(&yaml, "test").unwrap()
    }

    #[test]
    fn the_same_policy_has_no_changes() {
        let p = policy(&[("a", 1)], &["db"], Some(1));
        let d = PolicyDiff::between(&p, &p);
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "no changes");
        assert_eq!(d.removes_too_much(0.0), None);
    }

    #[test]
    fn added_removed_and_changed_are_named_in_order() {
        let old = policy(&[("a", 1), ("b", 1), ("c", 1)], &["db", "gpu"], None);
        let new = policy(&[("b", 2), ("c", 1), ("d", 1)], &["db", "net"], Some(1));
        let d = PolicyDiff::between(&old, &new);
        assert_eq!(d.tenants.added, ["d"]);
        assert_eq!(d.tenants.removed, ["a"]);
        assert_eq!(d.tenants.changed, ["b"]);
        assert_eq!(d.resources.removed, ["gpu"]);
        assert_eq!(d.defaults, DefaultsChange::Added);
        assert_eq!(
            d.to_string(),
            "tenants: 1 added (d), 1 removed (a), 1 changed (b); \
             resources: 1 added (net), 1 removed (gpu); defaults added"
        );
    }

    #[test]
    fn a_long_list_names_ten_and_counts_the_rest() {
        let names: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
        let tenants: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let old = policy(&tenants, &["db"], None);
        let new = policy(&tenants[..5], &["db"], None);
        let d = PolicyDiff::between(&old, &new);
        assert_eq!(d.tenants.removed.len(), 20);
        assert_eq!(
            d.to_string(),
            "tenants: 20 removed (t05, t06, t07, t08, t09, t10, t11, t12, t13, t14, and 10 more)"
        );
    }

    #[test]
    fn removing_more_than_the_share_is_too_much_and_up_to_it_is_not() {
        let old = policy(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)], &["db"], None);
        let half = policy(&[("a", 1), ("b", 1)], &["db"], None);
        let d = PolicyDiff::between(&old, &half);
        assert_eq!(d.removed_tenant_share(), 0.5);
        assert_eq!(d.removes_too_much(0.5), None, "not more than half");
        assert_eq!(
            d.removes_too_much(0.25).as_deref(),
            Some("it removes 2 of 4 tenants (50%), more than reload.max_removed_share 25%")
        );
        let one = policy(&[("a", 1)], &["db"], None);
        assert!(
            PolicyDiff::between(&old, &one)
                .removes_too_much(0.5)
                .is_some()
        );
        assert_eq!(
            PolicyDiff::between(&old, &one).removes_too_much(1.0),
            None,
            "1 turns the guard off"
        );
        // Adding is never too much.
        assert_eq!(PolicyDiff::between(&one, &old).removes_too_much(0.0), None);
    }

    #[test]
    fn removed_resources_count_on_their_own() {
        let old = policy(&[("a", 1)], &["db", "gpu", "net"], None);
        let new = policy(&[("a", 1)], &["db"], None);
        assert_eq!(
            PolicyDiff::between(&old, &new)
                .removes_too_much(0.5)
                .as_deref(),
            Some("it removes 2 of 3 resources (67%), more than reload.max_removed_share 50%")
        );
    }

    #[test]
    fn dropping_defaults_counts_as_every_unlisted_tenant() {
        let old = policy(&[("a", 1), ("b", 1)], &["db"], Some(1));
        let cut = policy(&[("a", 1), ("b", 1)], &["db"], None);
        let d = PolicyDiff::between(&old, &cut);
        assert_eq!(d.to_string(), "defaults removed");
        assert_eq!(d.removed_tenant_share(), 1.0);
        assert!(
            d.removes_too_much(0.5)
                .unwrap()
                .starts_with("it drops `defaults`"),
        );
        assert_eq!(d.removes_too_much(1.0), None);
        let changed = policy(&[("a", 1), ("b", 1)], &["db"], Some(2));
        assert_eq!(
            PolicyDiff::between(&old, &changed).defaults,
            DefaultsChange::Changed
        );
    }
}
