//! The upstream transport's one error type, and the status each error is answered with.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue, CONNECTION, RETRY_AFTER};
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream `{0}` is not configured")]
    Unknown(String),
    #[error("upstream `{upstream}` is unreachable: {reason}")]
    Unreachable { upstream: String, reason: String },
    #[error("upstream `{upstream}` did not accept a connection within {timeout:?}")]
    ConnectTimeout { upstream: String, timeout: Duration },
    #[error("upstream `{upstream}` did not answer within {timeout:?}")]
    ResponseTimeout { upstream: String, timeout: Duration },
    #[error("upstream `{upstream}` is refused: its Reflex replicas share no state (see the error logged at start)")]
    Refused { upstream: String },
    #[error("no endpoint of upstream `{upstream}` is running (all stopped or draining)")]
    NoEndpoint { upstream: String },
    #[error("upstream `{upstream}` failed: {reason}")]
    Failed { upstream: String, reason: String },
    #[error("invalid forward to `{upstream}`: {reason}")]
    BadForward { upstream: String, reason: String },
    #[error("the client's request body to `{upstream}` is malformed or cut short: {reason}")]
    ClientBody { upstream: String, reason: String },
    /// A cap (named by its config key) left no room within the wait allowed.
    #[error("too busy: {limit} reached")]
    Saturated { limit: String },
    #[error("the client sent no byte of its request body for {0:?}")]
    ClientBodyTimeout(Duration),
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::ConnectTimeout { .. } | UpstreamError::ResponseTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::ClientBody { .. } => StatusCode::BAD_REQUEST,
            UpstreamError::Saturated { .. } | UpstreamError::NoEndpoint { .. } | UpstreamError::Refused { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            UpstreamError::ClientBodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// A header the answer carries: when to retry past a cap; `Connection: close` after
    /// a stalled body, whose rest may still be on its way (the connection cannot be reused).
    pub fn answer_header(&self) -> Option<(HeaderName, HeaderValue)> {
        match self {
            UpstreamError::Saturated { .. } | UpstreamError::NoEndpoint { .. } => {
                Some((RETRY_AFTER, HeaderValue::from_static("1")))
            }
            UpstreamError::ClientBodyTimeout(_) => Some((CONNECTION, HeaderValue::from_static("close"))),
            _ => None,
        }
    }

    /// The endpoint could not be reached: nothing was sent, another endpoint may take it.
    pub fn is_connect_failure(&self) -> bool {
        matches!(self, UpstreamError::Unreachable { .. } | UpstreamError::ConnectTimeout { .. })
    }

    /// Whether the answer's log line is left to the cap that refused: it counts every
    /// refusal and logs them at a bounded rate, so a flood cannot flood the log.
    pub fn logged_by_cap(&self) -> bool {
        matches!(self, UpstreamError::Saturated { .. })
    }
}
