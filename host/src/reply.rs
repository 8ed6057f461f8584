//! The direct-reply target: a router's `reply` decision written as the response, its
//! refusals (a login redirect or 403), and the gateway's own error answers.

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, Body};
use crate::policy::{Refusal, Reply, RouteRequest};

/// An error the gateway answers itself: the status and the request id, nothing about
/// what failed (an upstream's name, an operating system's error text); that goes to the
/// log under the same request id.
pub fn gateway_error(status: StatusCode, request_id: &HeaderValue) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let id = String::from_utf8_lossy(request_id.as_bytes());
    body::text(status, format!("{} {reason}\nrequest id: {id}", status.as_u16()))
}

/// The response for `router`'s refusal of `req`: `302 Found` to the login page with
/// `next=` the request's path and query, or `403 Forbidden` with the reason. `Err`: what
/// the router got wrong, for a 502.
pub fn refuse(router: &str, refusal: &Refusal, req: &RouteRequest) -> Result<Response<Body>, String> {
    tracing::info!(router, path = %req.path, %refusal, "request refused");
    match refusal {
        Refusal::LoginRequired(login_url) => {
            let page = if req.query.is_empty() { req.path.clone() } else { format!("{}?{}", req.path, req.query) };
            let location = Refusal::login_location(login_url, &page);
            let location = HeaderValue::from_str(&location)
                .map_err(|_| format!("router `{router}` refused with an invalid login URL `{login_url}`"))?;
            let mut res = body::text(StatusCode::FOUND, "login required");
            res.headers_mut().insert(http::header::LOCATION, location);
            Ok(res)
        }
        Refusal::Forbidden(reason) => Ok(body::text(StatusCode::FORBIDDEN, format!("forbidden: {reason}"))),
    }
}

/// The response for `router`'s reply. `Err`: what the router got wrong, for a 502.
pub fn respond(router: &str, reply: Reply) -> Result<Response<Body>, String> {
    let invalid = |what: String| Err(format!("router `{router}` returned an invalid reply: {what}"));
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
    Ok(res)
}
