//! The upstream transport's one error type, and the reply each error gets.

use std::time::Duration;

use http::header::{self, HeaderValue};
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
            UpstreamError::Saturated { .. } => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamError::ClientBodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut res = body::text(self.status(), self.to_string());
        match self {
            UpstreamError::Saturated { .. } => {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The rest of the body may still be on its way: the connection cannot be reused.
            UpstreamError::ClientBodyTimeout(_) => {
                res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        res
    }
}
