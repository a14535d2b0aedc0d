//! The policy's `envoy:` section: how a request to Envoy's rate-limit
//! service (a `domain` and descriptors, each a list of key/value entries)
//! names a tenant and a resource. Parsed and validated with the rest of the
//! policy, so an invalid rule keeps the last good policy in force; the Envoy
//! face (`grpc/envoy`) only looks descriptors up here.
//!
//! ```yaml
//! envoy:
//!   domains:
//!     edge:                          # the rate-limit filter's `domain`
//!       - resource: api_requests     # a rate resource
//!         tenant_key: tenant         # tenant = value of entry `tenant`
//!       - resource: api_requests
//!         tenant: anonymous          # or a fixed tenant
//!         match: { generic_key: public }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::validate::{Problems, check_name};
use super::{Kind, Policy};

/// Longest `domain` name accepted.
const MAX_DOMAIN: usize = 128;

/// The `envoy:` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvoySpec {
    /// Answer with `X-RateLimit-Limit`, `-Remaining` and `-Reset` headers
    /// for Envoy to add to the response (off: Envoy's own default).
    #[serde(default)]
    pub response_headers: bool,
    /// Rules per domain, tried in order; the first that matches decides.
    pub domains: BTreeMap<String, Vec<EnvoyRule>>,
}

/// One rule: which descriptors it matches, and the tenant and resource a
/// matching descriptor is charged to.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvoyRule {
    /// The rate resource a matching descriptor draws on.
    pub resource: String,
    /// The tenant is the value of the entry with this key...
    #[serde(default)]
    pub tenant_key: Option<String>,
    /// ...or this fixed tenant (exactly one of the two).
    #[serde(default)]
    pub tenant: Option<String>,
    /// The other entries the descriptor must carry, key → exact value.
    #[serde(default, rename = "match")]
    pub entries: BTreeMap<String, String>,
}

/// What a descriptor maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The policy has no rules for the domain.
    UnknownDomain,
    /// No rule of the domain matches the descriptor.
    Unmatched,
    Matched {
        tenant: &'a str,
        resource: &'a str,
    },
}

impl EnvoyRule {
    /// The tenant a descriptor with exactly this rule's keys is charged
    /// to: every key present once (in any order), no other key, and each
    /// `match` value equal.
    fn tenant_of<'a>(&'a self, entries: &[(&'a str, &'a str)]) -> Option<&'a str> {
        let keys = self.entries.len() + usize::from(self.tenant_key.is_some());
        if entries.len() != keys {
            return None;
        }
        let mut tenant = self.tenant.as_deref();
        for (i, &(key, value)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(k, _)| *k == key) {
                return None;
            }
            if self.tenant_key.as_deref() == Some(key) {
                tenant = Some(value);
            } else if self.entries.get(key).map(String::as_str) != Some(value) {
                return None;
            }
        }
        tenant
    }

    fn keys(&self) -> (Option<&str>, &BTreeMap<String, String>) {
        (self.tenant_key.as_deref(), &self.entries)
    }
}

impl EnvoySpec {
    /// The tenant and resource for one descriptor of `domain`.
    pub fn lookup<'a>(&'a self, domain: &str, entries: &[(&'a str, &'a str)]) -> Lookup<'a> {
        let Some(rules) = self.domains.get(domain) else {
            return Lookup::UnknownDomain;
        };
        rules
            .iter()
            .find_map(|rule| {
                rule.tenant_of(entries).map(|tenant| Lookup::Matched {
                    tenant,
                    resource: &rule.resource,
                })
            })
            .unwrap_or(Lookup::Unmatched)
    }
}

/// Every rule of the `envoy:` section, against the policy around it.
pub(super) fn check(problems: &mut Problems, spec: &EnvoySpec, policy: &Policy) {
    if spec.domains.is_empty() {
        problems.push("envoy.domains", "must list at least one domain");
    }
    for (domain, rules) in &spec.domains {
        let path = format!("envoy.domains.{domain}");
        if domain.is_empty() || domain.len() > MAX_DOMAIN {
            problems.push(&path, format!("a domain is 1 to {MAX_DOMAIN} characters"));
        }
        if rules.is_empty() {
            problems.push(&path, "must list at least one rule");
        }
        for (i, rule) in rules.iter().enumerate() {
            check_rule(problems, &format!("{path}[{i}]"), rule, policy);
            if let Some(j) = rules[..i].iter().position(|r| r.keys() == rule.keys()) {
                problems.push(
                    format!("{path}[{i}]"),
                    format!(
                        "never matches: rule [{j}] has the same keys and values and comes first"
                    ),
                );
            }
        }
    }
}

fn check_rule(problems: &mut Problems, path: &str, rule: &EnvoyRule, policy: &Policy) {
    match policy.resources.get(&rule.resource) {
        None => {
            let known: Vec<_> = policy.resources.keys().map(String::as_str).collect();
            problems.push(
                format!("{path}.resource"),
                format!(
                    "unknown resource {:?}; known: {}",
                    rule.resource,
                    known.join(", ")
                ),
            );
        }
        Some(r) if r.kind != Kind::Rate => problems.push(
            format!("{path}.resource"),
            format!(
                "{:?} is a concurrency resource; Envoy never releases what it is granted, so only rate resources can be used",
                rule.resource
            ),
        ),
        Some(_) => {}
    }
    match (&rule.tenant_key, &rule.tenant) {
        (Some(_), Some(_)) | (None, None) => problems.push(
            path,
            "needs exactly one of `tenant_key` (the entry whose value is the tenant) and `tenant` (a fixed tenant)",
        ),
        (Some(key), None) => {
            if key.is_empty() {
                problems.push(format!("{path}.tenant_key"), "must not be empty");
            }
            if rule.entries.contains_key(key) {
                problems.push(
                    format!("{path}.match.{key}"),
                    "is the tenant_key; it cannot also be matched",
                );
            }
        }
        (None, Some(tenant)) => {
            if let Err(e) = check_name(tenant) {
                problems.push(format!("{path}.tenant"), e);
            } else if !policy.tenants.contains_key(tenant) && policy.defaults.is_none() {
                problems.push(
                    format!("{path}.tenant"),
                    format!("unknown tenant {tenant:?}, and the policy has no `defaults`"),
                );
            }
        }
    }
    if rule.tenant.is_some() && rule.entries.is_empty() {
        problems.push(
            format!("{path}.match"),
            "a fixed-tenant rule needs at least one entry to match",
        );
    }
    for (key, value) in &rule.entries {
        if key.is_empty() {
            problems.push(format!("{path}.match"), "an entry key must not be empty");
        }
        if value.is_empty() {
            problems.push(format!("{path}.match.{key}"), "must not be empty");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
resources:
  api: { kind: rate, capacity: 100 }
  slots: { kind: concurrency, capacity: 4 }
tenants:
  acme: { limits: { api: { guaranteed: 10 } } }
envoy:
  domains:
    edge:
      - resource: api
        tenant_key: tenant
      - resource: api
        tenant_key: tenant
        match: { path: /search }
      - resource: api
        tenant: acme
        match: { generic_key: batch }
"#;

    fn spec() -> EnvoySpec {
        Policy::load_str(POLICY, "p.yaml").unwrap().envoy.unwrap()
    }

    fn problems(yaml: &str) -> Vec<String> {
        match Policy::load_str(yaml, "p.yaml") {
            Ok(_) => vec![],
            Err(e) => e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.reason))
                .collect(),
        }
    }

    fn matched<'a>(tenant: &'a str, resource: &'a str) -> Lookup<'a> {
        Lookup::Matched { tenant, resource }
    }

    #[test]
    fn the_tenant_is_the_value_of_the_tenant_key_entry() {
        let spec = spec();
        assert_eq!(
            spec.lookup("edge", &[("tenant", "acme")]),
            matched("acme", "api")
        );
        // Any order; the match values must be equal.
        assert_eq!(
            spec.lookup("edge", &[("path", "/search"), ("tenant", "beta")]),
            matched("beta", "api")
        );
        assert_eq!(
            spec.lookup("edge", &[("path", "/other"), ("tenant", "beta")]),
            Lookup::Unmatched
        );
    }

    #[test]
    fn a_fixed_tenant_rule_matches_its_entries_exactly() {
        let spec = spec();
        assert_eq!(
            spec.lookup("edge", &[("generic_key", "batch")]),
            matched("acme", "api")
        );
        assert_eq!(
            spec.lookup("edge", &[("generic_key", "other")]),
            Lookup::Unmatched
        );
        // An extra entry, or a key given twice, is another descriptor.
        assert_eq!(
            spec.lookup("edge", &[("generic_key", "batch"), ("x", "y")]),
            Lookup::Unmatched
        );
        assert_eq!(
            spec.lookup("edge", &[("tenant", "a"), ("tenant", "b")]),
            Lookup::Unmatched
        );
        assert_eq!(spec.lookup("edge", &[]), Lookup::Unmatched);
    }

    #[test]
    fn a_domain_without_rules_is_unknown() {
        assert_eq!(
            spec().lookup("other", &[("tenant", "acme")]),
            Lookup::UnknownDomain
        );
    }

    #[test]
    fn bad_rules_are_reported_with_their_path() {
        let yaml = POLICY.replace(
            "    edge:\n",
            "    edge:\n      - { resource: slots, tenant_key: t }\n      - { resource: nope, tenant: ghost, tenant_key: t2 }\n      - { resource: api, tenant: ghost, match: { k: v } }\n      - { resource: api, tenant_key: k, match: { k: v, e: '' } }\n",
        );
        let got = problems(&yaml);
        for want in [
            "envoy.domains.edge[0].resource: \"slots\" is a concurrency resource",
            "envoy.domains.edge[1].resource: unknown resource \"nope\"",
            "envoy.domains.edge[1]: needs exactly one of `tenant_key`",
            "envoy.domains.edge[2].tenant: unknown tenant \"ghost\", and the policy has no `defaults`",
            "envoy.domains.edge[3].match.k: is the tenant_key",
            "envoy.domains.edge[3].match.e: must not be empty",
        ] {
            assert!(got.iter().any(|p| p.starts_with(want)), "{want}\n{got:#?}");
        }
        assert!(!got.iter().any(|p| p.contains("never matches")), "{got:#?}");
    }

    #[test]
    fn a_rule_shadowed_by_an_earlier_one_is_an_error() {
        let yaml = POLICY.replace(
            "        match: { generic_key: batch }\n",
            "        match: { generic_key: batch }\n      - { resource: api, tenant_key: tenant }\n",
        );
        assert_eq!(
            problems(&yaml),
            [
                "envoy.domains.edge[3]: never matches: rule [0] has the same keys and values and comes first"
            ]
        );
    }

    #[test]
    fn an_empty_section_and_unknown_keys_are_errors() {
        let empty =
            POLICY[..POLICY.find("envoy:").unwrap()].to_owned() + "envoy: { domains: {} }\n";
        assert_eq!(
            problems(&empty),
            ["envoy.domains: must list at least one domain"]
        );
        let unknown = problems(&POLICY.replacen("tenant_key: tenant", "tenant_keys: tenant", 1));
        assert!(unknown[0].contains("envoy.domains.edge[0]"), "{unknown:?}");
        assert!(
            unknown[0].contains("unknown field `tenant_keys`"),
            "{unknown:?}"
        );
    }
}
