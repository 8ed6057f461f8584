//! The proxy layer's one error type, and the reply each error gets.

use http::{Response, StatusCode};

use crate::body::{self, Body};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream `{0}` is not configured")]
    UnknownUpstream(String),
    #[error("upstream `{upstream}` is unreachable: {reason}")]
    Unreachable { upstream: String, reason: String },
    #[error("upstream `{upstream}` did not accept a connection within {timeout:?}")]
    ConnectTimeout { upstream: String, timeout: std::time::Duration },
    #[error("upstream `{upstream}` did not answer within {timeout:?}")]
    ResponseTimeout { upstream: String, timeout: std::time::Duration },
    #[error("upstream `{upstream}` failed: {reason}")]
    Failed { upstream: String, reason: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid forward to `{upstream}`: {reason}")]
    BadForward { upstream: String, reason: String },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::ConnectTimeout { .. } | ProxyError::ResponseTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        body::text(self.status(), self.to_string())
    }
}
