//! Every way a call can fail, and how a service passes a failure on to its
//! own callers: HTTP 429 / gRPC RESOURCE_EXHAUSTED for a denial.

use std::time::Duration;

use tonic::{Code, Status};

/// What went wrong, with what the daemon said.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon answered DENIED: the tokens are not there, and the caller
    /// did not ask to wait (or `retry_after` would outlast its `max_wait`).
    /// `retry_after` is when the daemon expects them.
    #[error("denied: {amount} of {resource} for {tenant}, retry after {retry_after:?}")]
    Denied {
        tenant: String,
        resource: String,
        amount: u64,
        retry_after: Duration,
    },
    /// The request is wrong (amount 0 or above what the resource could ever
    /// grant, a request_id reused for another request, …); the message is
    /// the daemon's and starts with the field.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An unknown tenant, resource or lease.
    #[error("not found: {0}")]
    NotFound(String),
    /// The daemon wants a bearer token, or did not know this one.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// This token may not act for that tenant.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A bounded daemon table is full (leases, request ids, tenants from
    /// `defaults`): not a denial, the daemon itself is at its limit.
    #[error("daemon limit reached: {0}")]
    Exhausted(String),
    /// The daemon could not be reached (or was shutting down) on every one
    /// of the retry policy's attempts.
    #[error("daemon unavailable after {attempts} attempt(s): {last}")]
    Unavailable { attempts: u32, last: String },
    /// The call's deadline passed before an answer; `last` is the last
    /// failure seen, if any.
    #[error(
        "deadline of {timeout:?} passed after {attempts} attempt(s){}",
        last.as_ref().map(|l| format!("; last: {l}")).unwrap_or_default()
    )]
    Deadline {
        timeout: Duration,
        attempts: u32,
        last: Option<String>,
    },
    /// The endpoint, token or TLS setting given to [`ClientBuilder`](crate::ClientBuilder)
    /// cannot be used.
    #[error("client setting {what}: {reason}")]
    Config { what: &'static str, reason: String },
    /// Any other status from the daemon.
    #[error("daemon error {}: {}", .0.code(), .0.message())]
    Rpc(Status),
}

impl Error {
    /// The error for a status the daemon answered (not a transport failure:
    /// those are retried first, see [`crate::RetryPolicy`]).
    pub(crate) fn from_status(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument(message),
            Code::NotFound => Self::NotFound(message),
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::PermissionDenied => Self::PermissionDenied(message),
            Code::ResourceExhausted => Self::Exhausted(message),
            _ => Self::Rpc(status),
        }
    }

    /// For a denial, when the daemon expects the tokens.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Denied { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether this is a denial (an answer about capacity), as opposed to
    /// a failure to get an answer or a bad request.
    pub fn is_denied(&self) -> bool {
        matches!(self, Self::Denied { .. })
    }

    /// The status a gRPC service answers its own caller with: a denial is
    /// RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms` (gRPC's retry
    /// pushback), a bad request INVALID_ARGUMENT, a tenant the daemon does
    /// not know or allow PERMISSION_DENIED, anything else UNAVAILABLE (the
    /// admission decision could not be made).
    pub fn into_status(self) -> Status {
        let message = format!("prescient: {self}");
        match &self {
            Self::Denied { retry_after, .. } => {
                let mut status = Status::resource_exhausted(message);
                if let Ok(ms) = retry_after.as_millis().to_string().parse() {
                    status.metadata_mut().insert("grpc-retry-pushback-ms", ms);
                }
                status
            }
            Self::InvalidArgument(_) => Status::invalid_argument(message),
            Self::NotFound(_) | Self::PermissionDenied(_) => Status::permission_denied(message),
            Self::Unauthenticated(_) | Self::Config { .. } => Status::internal(message),
            _ => Status::unavailable(message),
        }
    }

    /// The response an HTTP service answers its own caller with: a denial
    /// is `429 Too Many Requests` with `Retry-After` (whole seconds, rounded
    /// up), a bad request 400, a tenant the daemon does not know or allow
    /// 403, a client misconfiguration 500, anything else 503. The body is
    /// the error's text.
    pub fn into_http_response(self) -> http::Response<String> {
        use http::StatusCode;
        let code = match &self {
            Self::Denied { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) | Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::Unauthenticated(_) | Self::Config { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let retry_after = self.retry_after().map(|d| d.as_secs_f64().ceil() as u64);
        let mut response = http::Response::new(format!("prescient: {self}\n"));
        *response.status_mut() = code;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(secs) = retry_after {
            headers.insert(http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        e.into_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(retry_after: Duration) -> Error {
        Error::Denied {
            tenant: "checkout".into(),
            resource: "db".into(),
            amount: 3,
            retry_after,
        }
    }

    #[test]
    fn a_denial_is_429_with_retry_after_rounded_up_to_whole_seconds() {
        let r = denied(Duration::from_millis(1200)).into_http_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "2");
        assert!(
            r.body().contains("denied: 3 of db for checkout"),
            "{}",
            r.body()
        );
        let r = denied(Duration::ZERO).into_http_response();
        assert_eq!(r.headers()["retry-after"], "0");
    }

    #[test]
    fn a_denial_is_resource_exhausted_with_the_retry_pushback() {
        let s = denied(Duration::from_millis(1200)).into_status();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.metadata().get("grpc-retry-pushback-ms").unwrap(), "1200");
        assert!(s.message().starts_with("prescient: denied"), "{s:?}");
    }

    #[test]
    fn other_failures_map_to_what_the_caller_can_act_on() {
        let bad = Error::from_status(Status::invalid_argument("amount: must be > 0"));
        assert!(matches!(&bad, Error::InvalidArgument(m) if m == "amount: must be > 0"));
        assert_eq!(bad.into_http_response().status(), 400);
        let unknown = Error::from_status(Status::not_found("tenant: unknown"));
        assert_eq!(unknown.into_status().code(), Code::PermissionDenied);
        let down = Error::Unavailable {
            attempts: 3,
            last: "connection refused".into(),
        };
        assert_eq!(down.into_http_response().status(), 503);
        let full = Error::from_status(Status::resource_exhausted("leases: table full"));
        assert!(matches!(full, Error::Exhausted(_)), "not a denial");
        assert_eq!(full.into_status().code(), Code::Unavailable);
    }
}
