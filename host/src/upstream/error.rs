//! The upstream transport's one error type, and the reply each error gets.

use std::time::Duration;

use http::{Response, StatusCode};

use crate::body::{self, Body};

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
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::ConnectTimeout { .. } | UpstreamError::ResponseTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        body::text(self.status(), self.to_string())
    }
}
