//! The direct-reply target: a router's `reply` decision written as the response.

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, Body};
use crate::policy::Reply;

/// The response for `router`'s reply; one the router got wrong is answered 502.
pub fn respond(router: &str, reply: Reply) -> Response<Body> {
    let invalid = |what: String| {
        body::text(StatusCode::BAD_GATEWAY, format!("router `{router}` returned an invalid reply: {what}"))
    };
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        return invalid(format!("status {}", reply.status));
    };
    let mut res = Response::new(body::full(reply.body));
    *res.status_mut() = status;
    for (name, value) in reply.headers {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            (Ok(n), Ok(v)) => {
                res.headers_mut().append(n, v);
            }
            _ => return invalid(format!("header `{name}`")),
        }
    }
    res
}
