//! The canonical request: what the gateway believes of an incoming request before any
//! decision. Its path is made canonical (`canonical_path`), so that routers decide on
//! exactly the path the upstream receives; the client is identified as far as it may
//! be believed (`ClientView`); and it gets its request id (`RequestIds`).

pub mod canonical_path;
mod client;
mod id;

use std::sync::Arc;

use http::{HeaderValue, Request};

pub use canonical_path::PathError;
pub use client::ClientView;
pub use id::RequestIds;

use crate::policy::RouteRequest;
use crate::trace;

/// An incoming request as the gateway judges and forwards it.
pub struct Canonical {
    /// What routers see: the canonical path, the raw query, the headers.
    pub route: Arc<RouteRequest>,
    pub client: ClientView,
}

/// The canonical form of `req` from peer `peer_ip`; a path no upstream may be sent is
/// refused. `traceparent`: the gateway's, which routers see in place of the client's
/// trace context (it is what the upstream gets).
pub fn canonicalize<B>(
    req: &Request<B>,
    peer_ip: &str,
    trusted_hops: usize,
    traceparent: Option<&HeaderValue>,
) -> Result<Canonical, PathError> {
    let path = canonical_path::canonicalize(req.uri().path())?;
    // HTTP/2 carries the host in :authority, HTTP/1.1 in Host.
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or_default();
    let client = ClientView::new(req.headers(), peer_ip, authority, trusted_hops);
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
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .chain(
                traceparent.and_then(|t| Some((trace::TRACEPARENT.as_str().to_owned(), t.to_str().ok()?.to_owned()))),
            )
            .collect(),
        client_ip: client.ip.clone(),
    };
    Ok(Canonical { route: Arc::new(route), client })
}
