//! A ScaledObject trigger's `scalerMetadata`, parsed and checked: which
//! series to pre-warm for, how far ahead, and what one replica serves.

use std::collections::HashMap;
use std::time::Duration;

use crate::echo::Echo;

/// Longest `leadTime` accepted: a day (the forecast itself is published
/// for `planner.published_minutes`, 15 by default; a longer lead reads all
/// of it).
pub const MAX_LEAD: Duration = Duration::from_secs(86_400);

/// Keys KEDA itself puts in every external trigger's metadata; read by
/// KEDA, ignored here.
const KEDA_KEYS: [&str; 3] = ["scalerAddress", "enableTLS", "unsafeSsl"];

/// One trigger: the metric is the demand `tenant` may put on `resource`
/// over the next `lead`, and one replica serves `replica_capacity` of it
/// per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub tenant: String,
    pub resource: String,
    pub lead: Duration,
    pub replica_capacity: f64,
    /// Active while the expected demand is above this (default 0).
    pub activation: f64,
}

impl Trigger {
    /// Parses `metadata`; `known` says whether a resource exists. The
    /// error names the key and the reason.
    pub fn parse(
        metadata: &HashMap<String, String>,
        known: impl Fn(&str) -> bool,
    ) -> Result<Self, String> {
        let mut unknown: Vec<&str> = metadata
            .keys()
            .map(String::as_str)
            .filter(|k| {
                !KEDA_KEYS.contains(k)
                    && ![
                        "tenant",
                        "resource",
                        "leadTime",
                        "replicaCapacity",
                        "activationThreshold",
                    ]
                    .contains(k)
            })
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(format!(
                "{:?}: unknown key (known: tenant, resource, leadTime, replicaCapacity, activationThreshold)",
                Echo(unknown[0])
            ));
        }
        let required = |key: &str| match metadata.get(key).map(|v| v.trim()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("{key}: required")),
        };
        let tenant = required("tenant")?.to_owned();
        let resource = required("resource")?.to_owned();
        if !known(&resource) {
            return Err(format!("resource: unknown resource {:?}", Echo(&resource)));
        }
        let lead_text = required("leadTime")?;
        let lead = humantime::parse_duration(lead_text)
            .map_err(|e| format!("leadTime: {:?} is not a duration: {e}", Echo(lead_text)))?;
        if lead.is_zero() || lead > MAX_LEAD {
            return Err(format!(
                "leadTime: {} must be above 0 and at most {}",
                humantime::format_duration(lead),
                humantime::format_duration(MAX_LEAD)
            ));
        }
        let replica_capacity = number("replicaCapacity", required("replicaCapacity")?)?;
        if replica_capacity <= 0.0 {
            return Err(format!(
                "replicaCapacity: {replica_capacity} must be above 0 (the resource's units per second one replica serves)"
            ));
        }
        let activation = match metadata.get("activationThreshold") {
            None => 0.0,
            Some(v) => number("activationThreshold", v.trim())?,
        };
        if activation < 0.0 {
            return Err(format!(
                "activationThreshold: {activation} must not be negative"
            ));
        }
        Ok(Self {
            tenant,
            resource,
            lead,
            replica_capacity,
            activation,
        })
    }

    /// The metric's name: its series, in the characters a Kubernetes
    /// metric name may hold.
    pub fn metric_name(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect()
        };
        format!(
            "prescient-prewarm-{}-{}",
            clean(&self.tenant),
            clean(&self.resource)
        )
    }
}

/// A finite number, or the key and why not.
fn number(key: &str, text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{key}: {:?} is not a number", Echo(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const GOOD: [(&str, &str); 5] = [
        ("scalerAddress", "prescient:50051"),
        ("tenant", "checkout"),
        ("resource", "db_queries"),
        ("leadTime", "90s"),
        ("replicaCapacity", "50"),
    ];

    fn parse(pairs: &[(&str, &str)]) -> Result<Trigger, String> {
        Trigger::parse(&meta(pairs), |r| r == "db_queries")
    }

    #[test]
    fn a_good_trigger_parses_with_kedas_own_keys_beside_it() {
        let t = parse(&GOOD).unwrap();
        assert_eq!(
            t,
            Trigger {
                tenant: "checkout".into(),
                resource: "db_queries".into(),
                lead: Duration::from_secs(90),
                replica_capacity: 50.0,
                activation: 0.0,
            }
        );
        assert_eq!(t.metric_name(), "prescient-prewarm-checkout-db-queries");
        let mut with = GOOD.to_vec();
        with.push(("activationThreshold", "2.5"));
        assert_eq!(parse(&with).unwrap().activation, 2.5);
    }

    #[test]
    fn each_bad_key_is_named_with_its_reason() {
        let cases: [(&str, Option<&str>, &str); 11] = [
            ("tenant", None, "tenant: required"),
            ("tenant", Some("  "), "tenant: required"),
            (
                "resource",
                Some("disk"),
                "resource: unknown resource \"disk\"",
            ),
            ("leadTime", None, "leadTime: required"),
            (
                "leadTime",
                Some("soon"),
                "leadTime: \"soon\" is not a duration",
            ),
            ("leadTime", Some("0s"), "leadTime: 0s must be above 0"),
            (
                "leadTime",
                Some("2days"),
                "leadTime: 2days must be above 0 and at most 1day",
            ),
            (
                "replicaCapacity",
                Some("0"),
                "replicaCapacity: 0 must be above 0",
            ),
            (
                "replicaCapacity",
                Some("-5"),
                "replicaCapacity: -5 must be above 0",
            ),
            (
                "replicaCapacity",
                Some("NaN"),
                "replicaCapacity: \"NaN\" is not a number",
            ),
            (
                "activationThreshold",
                Some("-1"),
                "activationThreshold: -1 must not be negative",
            ),
        ];
        for (key, value, want) in cases {
            let mut pairs: Vec<(&str, &str)> =
                GOOD.iter().copied().filter(|(k, _)| *k != key).collect();
            if let Some(v) = value {
                pairs.push((key, v));
            }
            let e = parse(&pairs).unwrap_err();
            assert!(e.starts_with(want), "{key}={value:?}: {e}");
        }
        let mut typo = GOOD.to_vec();
        typo.push(("leadtime", "90s"));
        let e = parse(&typo).unwrap_err();
        assert!(e.starts_with("\"leadtime\": unknown key"), "{e}");
    }
}
