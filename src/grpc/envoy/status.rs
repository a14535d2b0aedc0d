//! What one descriptor's decision looks like to Envoy: a `DescriptorStatus`
//! with its limit, what is left and when it resets, and the
//! `X-RateLimit-*` headers of the most constrained descriptor.

use std::time::Duration;

use super::proto::envoy::config::core::v3::HeaderValue;
use super::proto::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit, rate_limit::Unit,
};

/// One matched descriptor, decided: the facts its status is built from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decided {
    pub over_limit: bool,
    /// Tokens per second the tenant is held to on the resource.
    pub per_second: u64,
    /// Tokens the tenant could still take now.
    pub remaining: u64,
    /// Over limit: when the hits fit. OK: when the tenant's pools are full
    /// again (if nobody else draws on them meanwhile).
    pub reset: Duration,
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

/// The status Envoy gets for a descriptor `name`d by its resource.
pub fn status(name: &str, d: &Decided) -> DescriptorStatus {
    DescriptorStatus {
        code: if d.over_limit {
            Code::OverLimit
        } else {
            Code::Ok
        } as i32,
        current_limit: Some(RateLimit {
            name: name.to_owned(),
            requests_per_unit: saturate(d.per_second),
            unit: Unit::Second as i32,
        }),
        limit_remaining: saturate(d.remaining),
        duration_until_reset: Some(duration(d.reset)),
        quota: None,
    }
}

/// The status of a descriptor no rule matches: OK, no limit.
pub fn unlimited() -> DescriptorStatus {
    DescriptorStatus {
        code: Code::Ok as i32,
        ..Default::default()
    }
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (whole seconds, rounded
/// up) of the descriptor with the least remaining, as Envoy's reference
/// service writes them; none if no descriptor was limited.
pub fn headers(decided: &[Decided]) -> Vec<HeaderValue> {
    let Some(d) = decided.iter().min_by_key(|d| d.remaining) else {
        return Vec::new();
    };
    let limit = saturate(d.per_second);
    let reset = d.reset.as_secs() + u64::from(d.reset.subsec_nanos() > 0);
    let header = |key: &str, value: String| HeaderValue {
        key: key.to_owned(),
        value,
        raw_value: Vec::new(),
    };
    vec![
        header("x-ratelimit-limit", format!("{limit}, {limit};w=1")),
        header("x-ratelimit-remaining", saturate(d.remaining).to_string()),
        header("x-ratelimit-reset", reset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(over_limit: bool, remaining: u64, reset_ms: u64) -> Decided {
        Decided {
            over_limit,
            per_second: 10,
            remaining,
            reset: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn a_status_carries_limit_remaining_and_reset() {
        let s = status("api", &decided(true, 3, 1500));
        assert_eq!(s.code(), Code::OverLimit);
        let limit = s.current_limit.unwrap();
        assert_eq!((limit.name.as_str(), limit.requests_per_unit), ("api", 10));
        assert_eq!(limit.unit(), Unit::Second);
        assert_eq!(s.limit_remaining, 3);
        let reset = s.duration_until_reset.unwrap();
        assert_eq!((reset.seconds, reset.nanos), (1, 500_000_000));
        assert_eq!(status("api", &decided(false, 3, 0)).code(), Code::Ok);
    }

    #[test]
    fn numbers_beyond_u32_saturate() {
        let s = status(
            "api",
            &Decided {
                per_second: u64::MAX,
                remaining: 1 << 40,
                ..decided(false, 0, 0)
            },
        );
        assert_eq!(s.current_limit.unwrap().requests_per_unit, u32::MAX);
        assert_eq!(s.limit_remaining, u32::MAX);
    }

    #[test]
    fn headers_follow_the_descriptor_with_least_remaining() {
        let h = headers(&[decided(false, 7, 100), decided(false, 2, 1200)]);
        let pairs: Vec<_> = h
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("x-ratelimit-limit", "10, 10;w=1"),
                ("x-ratelimit-remaining", "2"),
                ("x-ratelimit-reset", "2"),
            ]
        );
        assert!(headers(&[]).is_empty());
    }
}
