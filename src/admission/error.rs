//! Why an admission call failed. A denial is not an error: these are bad
//! input, unknown names, exhausted daemon limits and shutdown. Every
//! message starts with the offending field.

/// Errors of the admission core; the gRPC face maps each to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// Bad input: INVALID_ARGUMENT.
    #[error("{0}")]
    InvalidArgument(String),
    /// `amount` beyond the most the tenant could ever be granted at once:
    /// INVALID_ARGUMENT too, but its own variant so that a face whose
    /// amounts are counts rather than requests (Envoy's hits) can answer it
    /// as over limit without reading the message.
    #[error("{0}")]
    AmountOverMax(String),
    /// Unknown tenant, resource or lease: NOT_FOUND.
    #[error("{0}")]
    NotFound(String),
    /// A bounded table of the daemon is full: RESOURCE_EXHAUSTED.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The daemon is shutting down: UNAVAILABLE.
    #[error("shutting down")]
    Unavailable,
}
