//! The canonical request: what the gateway believes of an incoming request before any
//! decision. Its path is made canonical (`canonical_path`), so that routers decide on
//! exactly the path the upstream receives; the client is identified as far as it may
//! be believed (`ClientView`); and it gets its request id (`RequestIds`).

pub mod canonical_path;
mod client;
mod host;
mod id;

use std::sync::Arc;

use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderValue, Method, Request, Response, StatusCode};

pub use canonical_path::PathError;
pub use client::{ClientView, Peer};
pub use host::HostError;
pub use id::RequestIds;

use crate::policy::RouteRequest;
use crate::trace;
use crate::upstream::headers::{latin1, ClientHeaders};

/// Why a request is refused with 400 before any decision.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    #[error("bad request path: {0}")]
    Path(#[from] PathError),
    #[error("bad host: {0}")]
    Host(#[from] HostError),
}

/// An incoming request as the gateway judges and forwards it.
pub struct Canonical {
    /// What routers see: the canonical path, the raw query, the headers.
    pub route: Arc<RouteRequest>,
    pub client: ClientView,
    /// The page token of a rebind request (`upstream::headers::REBIND`), taken out of
    /// the headers with the rest of the gateway's namespace.
    pub rebind_token: Option<HeaderValue>,
}

/// RFC 8441: a WebSocket over HTTP/2 arrives as `CONNECT` with `:protocol websocket`.
/// It is rewritten here into the HTTP/1.1 upgrade request every later stage (the
/// bridge, the tunnel, the upstream) already handles, with a handshake key of the
/// gateway's; `true` when it was one, and its answer must then go through
/// `extended_connect_answer`. hyper keeps the stream's pending upgrade in the request.
pub fn extended_connect_as_upgrade<B>(req: &mut Request<B>) -> bool {
    let websocket = req.method() == Method::CONNECT
        && req.extensions().get::<hyper::ext::Protocol>().is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if !websocket {
        return false;
    }
    *req.method_mut() = Method::GET;
    let headers = req.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if !headers.contains_key(SEC_WEBSOCKET_VERSION) {
        headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    }
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    headers.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_str(&key).expect("base64 is a valid header value"));
    true
}

/// The answer to an RFC 8441 `CONNECT`: the upstream's `101 Switching Protocols` is
/// `200 OK` on HTTP/2, without the HTTP/1.1 handshake's headers (HTTP/2 has no
/// Connection header, and the accept value answered the gateway's key).
pub fn extended_connect_answer<B>(res: &mut Response<B>) {
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        *res.status_mut() = StatusCode::OK;
        for name in [CONNECTION, UPGRADE, SEC_WEBSOCKET_ACCEPT] {
            res.headers_mut().remove(name);
        }
    }
}

/// HTTP/2 clients may send each cookie in a field of its own (RFC 9113 §8.2.3, as
/// Chromium does); HTTP/1.1 upstreams and routers expect the one `Cookie` field, and an
/// ASGI server would join the fields with commas, which no cookie parser reads. Joined
/// here with "; ", as the RFC says, before anything reads them.
pub fn join_cookie_fields(headers: &mut http::HeaderMap) {
    let mut fields = headers.get_all(http::header::COOKIE).iter();
    if fields.nth(1).is_none() {
        return;
    }
    let joined: Vec<u8> =
        headers.get_all(http::header::COOKIE).iter().map(|v| v.as_bytes()).collect::<Vec<_>>().join(&b"; "[..]);
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(http::header::COOKIE, value);
    }
}

/// The canonical form of `req` from `peer`; a path no upstream may be sent, or a host
/// that is missing, doubled or ambiguous (`host`), is refused. What no client may send
/// is removed from `req` first (`clean`), so that no router, upstream or bridge sees it. `traceparent`: the gateway's, which routers see in place
/// of the client's trace context (it is what the upstream gets).
pub fn canonicalize<B>(
    req: &mut Request<B>,
    peer: &Peer,
    trusted_hops: usize,
    clean: &ClientHeaders,
    traceparent: Option<&HeaderValue>,
) -> Result<Canonical, BadRequest> {
    let path = canonical_path::canonicalize(req.uri().path())?;
    host::settle(req)?;
    let rebind_token = clean.clean(req.headers_mut());
    // HTTP/2 carries the host in :authority, HTTP/1.1 in Host.
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or_default();
    let client = ClientView::new(req.headers(), peer, authority, trusted_hops);
    let route = RouteRequest {
        method: req.method().as_str().to_owned(),
        scheme: client.scheme().to_owned(),
        authority: client.host().to_owned(),
        path,
        query: req.uri().query().unwrap_or("").to_owned(),
        headers: req
            .headers()
            .iter()
            .filter(|(k, _)| traceparent.is_none() || (*k != trace::TRACEPARENT && *k != trace::TRACESTATE))
            .map(|(k, v)| (k.as_str().to_owned(), latin1(v).into_owned()))
            .chain(
                traceparent.and_then(|t| Some((trace::TRACEPARENT.as_str().to_owned(), t.to_str().ok()?.to_owned()))),
            )
            .collect(),
        client_ip: client.ip.clone(),
    };
    Ok(Canonical { route: Arc::new(route), client, rebind_token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_fields_of_http2_are_joined_into_one() {
        let mut h = crate::upstream::headers::map(&[("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2; c=3")]);
        join_cookie_fields(&mut h);
        assert_eq!(h.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1; b=2; c=3"]);
        let mut one = crate::upstream::headers::map(&[("cookie", "a=1")]);
        join_cookie_fields(&mut one);
        assert_eq!(one["cookie"], "a=1");
    }
}
