//! The direct-reply target: a router's `reply` decision written as the response, and
//! its refusals (a login redirect or 403).

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, Body};
use crate::policy::{Refusal, Reply, RouteRequest};

/// The response for `router`'s refusal of `req`: `302 Found` to the login page with
/// `next=` the request's path and query, or `403 Forbidden` with the reason.
pub fn refuse(router: &str, refusal: &Refusal, req: &RouteRequest) -> Response<Body> {
    tracing::info!(router, path = %req.path, %refusal, "request refused");
    match refusal {
        Refusal::LoginRequired(login_url) => {
            let page = if req.query.is_empty() { req.path.clone() } else { format!("{}?{}", req.path, req.query) };
            let location = Refusal::login_location(login_url, &page);
            let Ok(location) = HeaderValue::from_str(&location) else {
                return body::text(
                    StatusCode::BAD_GATEWAY,
                    format!("router `{router}` refused with an invalid login URL"),
                );
            };
            let mut res = body::text(StatusCode::FOUND, "login required");
            res.headers_mut().insert(http::header::LOCATION, location);
            res
        }
        Refusal::Forbidden(reason) => body::text(StatusCode::FORBIDDEN, format!("forbidden: {reason}")),
    }
}

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
