//! Every rule a policy must satisfy, checked all at once so an operator sees
//! the whole list of problems in one run of `prescient check`.

use std::collections::BTreeMap;
use std::fmt;

use super::{Kind, LimitSpec, Policy, ResourceSpec, TenantSpec};

/// One broken rule: where (`tenants.checkout.limits.db.guaranteed`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

/// Why a policy was refused: the file and every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl PolicyError {
    pub(crate) fn single(origin: &str, path: &str, reason: String) -> Self {
        Self {
            origin: origin.to_owned(),
            problems: vec![Problem {
                path: path.to_owned(),
                reason,
            }],
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.path.is_empty() {
                write!(f, "{}: {}", self.origin, p.reason)?;
            } else {
                write!(f, "{}: {}: {}", self.origin, p.path, p.reason)?;
            }
        }
        Ok(())
    }
}

/// Names of tenants and resources: what fits in a metric label and a log
/// line without escaping.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!(
            "name must be 1 to 128 characters, got {}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/')))
    {
        return Err(format!(
            "name {name:?} has {c:?}; allowed: A-Z a-z 0-9 _ - . : /"
        ));
    }
    Ok(())
}

#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

impl Policy {
    /// Checks every rule of DESIGN §2 and §7; returns all problems found.
    pub fn validate(&self, origin: &str) -> Result<(), PolicyError> {
        let mut problems = Problems::default();
        if self.resources.is_empty() {
            problems.push("resources", "at least one resource is required");
        }
        for (name, r) in &self.resources {
            check_resource(&mut problems, name, r);
        }
        for (name, q) in &self.qos {
            let path = format!("qos.{name}");
            if let Err(e) = check_name(name) {
                problems.push(&path, e);
            }
            if q.weight == 0 {
                problems.push(format!("{path}.weight"), "must be > 0");
            }
        }
        let classes = self.qos_classes();
        for (name, t) in &self.tenants {
            let path = format!("tenants.{name}");
            if let Err(e) = check_name(name) {
                problems.push(&path, e);
            }
            check_tenant(&mut problems, &path, t, self, &classes);
        }
        if let Some(d) = &self.defaults {
            check_tenant(&mut problems, "defaults", d, self, &classes);
        }
        check_guarantee_totals(&mut problems, self);
        if let Some(envoy) = &self.envoy {
            super::envoy::check(&mut problems, envoy, self);
        }
        for (i, e) in self.events.iter().enumerate() {
            let path = format!("events[{i}]");
            if e.name.trim().is_empty() {
                problems.push(format!("{path}.name"), "must not be empty");
            }
            if e.tenants.is_empty() {
                problems.push(format!("{path}.tenants"), "must list at least one tenant");
            }
            for t in &e.tenants {
                if !self.tenants.contains_key(t) {
                    problems.push(format!("{path}.tenants"), format!("unknown tenant {t:?}"));
                }
            }
            if e.end <= e.start {
                problems.push(format!("{path}.end"), "must be after start");
            }
            if !(e.multiplier.is_finite() && e.multiplier > 0.0) {
                problems.push(
                    format!("{path}.multiplier"),
                    format!("{} must be a finite number > 0", e.multiplier),
                );
            }
        }
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(PolicyError {
                origin: origin.to_owned(),
                problems: problems.0,
            })
        }
    }
}

fn check_resource(problems: &mut Problems, name: &str, r: &ResourceSpec) {
    let path = format!("resources.{name}");
    if let Err(e) = check_name(name) {
        problems.push(&path, e);
    }
    if r.capacity == 0 {
        problems.push(format!("{path}.capacity"), "must be > 0");
    }
    if !(0.0..1.0).contains(&r.emergency) {
        problems.push(
            format!("{path}.emergency"),
            format!("{} must be in [0, 1)", r.emergency),
        );
    }
    if r.lease_ttl.is_some_and(|d| d.is_zero()) {
        problems.push(format!("{path}.lease_ttl"), "must be > 0");
    }
}

fn check_tenant(
    problems: &mut Problems,
    path: &str,
    t: &TenantSpec,
    policy: &Policy,
    classes: &BTreeMap<String, super::QosSpec>,
) {
    if !classes.contains_key(&t.qos) {
        let known: Vec<_> = classes.keys().map(String::as_str).collect();
        problems.push(
            format!("{path}.qos"),
            format!("unknown QoS class {:?}; known: {}", t.qos, known.join(", ")),
        );
    }
    for (res, limit) in &t.limits {
        let lpath = format!("{path}.limits.{res}");
        match policy.resources.get(res) {
            None => {
                let known: Vec<_> = policy.resources.keys().map(String::as_str).collect();
                problems.push(
                    &lpath,
                    format!("unknown resource {res:?}; known: {}", known.join(", ")),
                );
            }
            Some(r) => check_limit(problems, &lpath, limit, r),
        }
    }
}

fn check_limit(problems: &mut Problems, path: &str, l: &LimitSpec, r: &ResourceSpec) {
    let room = r.room();
    if l.guaranteed > room {
        problems.push(
            format!("{path}.guaranteed"),
            format!(
                "{} exceeds capacity {} - emergency {}",
                l.guaranteed,
                r.capacity,
                r.emergency_units()
            ),
        );
    }
    match (r.kind, l.burst) {
        (Kind::Concurrency, Some(_)) => {
            problems.push(format!("{path}.burst"), "applies to rate resources only")
        }
        (Kind::Rate, Some(0)) => problems.push(format!("{path}.burst"), "must be > 0"),
        _ => {}
    }
    if let Some(res) = &l.reserve {
        if !(res.quantile > 0.0 && res.quantile < 1.0) {
            problems.push(
                format!("{path}.reserve.quantile"),
                format!("{} must be in (0, 1)", res.quantile),
            );
        }
        if res.horizon.is_zero() {
            problems.push(format!("{path}.reserve.horizon"), "must be > 0");
        }
        for (i, season) in res.seasons.iter().enumerate() {
            let secs = season.as_secs();
            if secs < 120 || secs % 60 != 0 {
                problems.push(
                    format!("{path}.reserve.seasons[{i}]"),
                    format!(
                        "{} must be a whole number of minutes, at least 2m",
                        humantime::format_duration(**season)
                    ),
                );
            }
        }
        if let Some(max) = res.max
            && max > room
        {
            problems.push(
                format!("{path}.reserve.max"),
                format!(
                    "{max} exceeds capacity {} - emergency {}",
                    r.capacity,
                    r.emergency_units()
                ),
            );
        }
    }
}

/// Σ guaranteed ≤ capacity − emergency, per resource, over the listed tenants.
fn check_guarantee_totals(problems: &mut Problems, policy: &Policy) {
    for (name, r) in &policy.resources {
        let parts: Vec<(&str, u64)> = policy
            .tenants
            .iter()
            .filter_map(|(t, spec)| spec.limits.get(name).map(|l| (t.as_str(), l.guaranteed)))
            .filter(|(_, g)| *g > 0)
            .collect();
        let total: u64 = parts.iter().map(|(_, g)| g).sum();
        if total > r.room() {
            let list: Vec<String> = parts.iter().map(|(t, g)| format!("{t} {g}")).collect();
            problems.push(
                format!("resources.{name}"),
                format!(
                    "guaranteed total {total} ({}) exceeds capacity {} - emergency {}",
                    list.join(", "),
                    r.capacity,
                    r.emergency_units()
                ),
            );
        }
    }
}
