//! The upstream transport's one error type, and the status each error is answered with.

use std::time::Duration;

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
    #[error("upstream `{upstream}` failed: {reason}")]
    Failed { upstream: String, reason: String },
    #[error("invalid forward to `{upstream}`: {reason}")]
    BadForward { upstream: String, reason: String },
    #[error("the client's request body to `{upstream}` is malformed or cut short: {reason}")]
    ClientBody { upstream: String, reason: String },
    #[error("the client sent no byte of its request body to `{upstream}` for {timeout:?}")]
    ClientBodyTimeout { upstream: String, timeout: Duration },
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::ConnectTimeout { .. } | UpstreamError::ResponseTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::ClientBody { .. } => StatusCode::BAD_REQUEST,
            UpstreamError::ClientBodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}
