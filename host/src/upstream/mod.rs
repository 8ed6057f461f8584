//! The upstream transport, used by every dispatch target that talks to an upstream:
//! the proxy, the event bridge (its handshake and its identity calls). It owns one
//! pool per upstream (`pool`): its endpoints, each with its keep-alive connections
//! (`endpoint`) opened by the one connector of `address` (TCP or a Unix socket), chosen by the upstream's balance (`balance`) among those its health
//! checks (`health`) and the supervisor leave in, and prepares what is sent (the
//! decision's path and header edits, hop-by-hop headers removed, X-Forwarded-*, the
//! request id and the trace context written: `headers`, `crate::trace`), bounds waits (`idle`, the configured timeouts) and
//! keeps the tunnels upgraded connections become (`tunnels`).

pub mod address;
pub mod balance;
mod endpoint;
mod error;
pub mod headers;
pub mod health;
pub mod idle;
pub(crate) mod pool;
mod tunnels;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use tokio::sync::Notify;

pub use address::Address;
pub use endpoint::{Endpoint, PoolSettings, PooledBody, ServedBy, UpstreamSlot};
pub use error::UpstreamError;
pub use pool::Pool;
pub use tunnels::{TunnelSlot, Tunnels};

use crate::body::{self, Body, BoxError};
use crate::caps::Refusals;
use crate::config::{Config, Timeouts};
use crate::limits;
use crate::metrics::Metrics;
use crate::policy::{Forward, RouteRequest};
use crate::trace::Span;
use headers::Forwarded;
use idle::IdleBody;

/// Every configured upstream, the timeouts that apply to them, and the open tunnels.
pub struct Upstreams {
    pools: HashMap<String, Arc<Pool>>,
    /// Told when a pool finds it may not serve (`Pool::refused`).
    refusal: Arc<Notify>,
    timeouts: Timeouts,
    /// Requests ended because the client's body stalled (`timeouts.client_body`).
    body_timeouts: Refusals,
    tunnels: Tunnels,
}

/// A forward decision made concrete: the upstream's pool and the origin-form target
/// (path and query) it will be sent.
pub struct Outbound<'a> {
    upstream: &'a Arc<Pool>,
    forward: &'a Forward,
    target: PathAndQuery,
}

impl<'a> Outbound<'a> {
    /// The path the upstream will see, rewrites included.
    pub fn path(&self) -> &str {
        self.target.path()
    }

    /// Borrowed from the decision, so it outlives the exchange that consumes `self`.
    pub fn upstream_name(&self) -> &'a str {
        &self.forward.upstream
    }
}

/// What the gateway says about itself and the client on a request it forwards.
pub struct Hop<'a> {
    pub forwarded: &'a Forwarded,
    pub request_id: &'a HeaderValue,
    /// The gateway's span of the request: the upstream's parent (`traceparent`).
    pub span: &'a Span,
}

/// What an upstream answered.
pub enum Exchanged {
    /// A response to stream back: hop-by-hop headers removed, body under the idle timeout.
    Response(Response<Body>),
    /// Both sides switched protocols: the response for the client, the two connections
    /// to join once they are upgraded, and the caps' slots the tunnel holds.
    Switched { response: Response<Body>, client: OnUpgrade, upstream: OnUpgrade, slot: TunnelSlot },
}

impl Upstreams {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Upstreams {
        let refusal = Arc::new(Notify::new());
        let pools = config
            .upstreams
            .iter()
            .map(|(name, u)| {
                let settings = PoolSettings {
                    connect_timeout: config.timeouts.connect,
                    idle_timeout: config.timeouts.pool_idle,
                    max_idle: limits::POOL_MAX_IDLE_PER_HOST,
                    max_connections: u.max_connections,
                };
                (name.clone(), Arc::new(Pool::new(name, u, settings, &metrics, &refusal)))
            })
            .collect();
        Upstreams {
            pools,
            refusal,
            timeouts: config.timeouts.clone(),
            body_timeouts: Refusals::new("timeouts.client_body", &metrics),
            tunnels: Tunnels::new(config.listen.max_websockets, metrics),
        }
    }

    /// A configured upstream's pool, for the gateway's own calls (the identity endpoint)
    /// and for `isthmus run`, which starts and stops its endpoints.
    pub fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.get(name).cloned()
    }

    /// Why a pool may not serve, once one finds it may not: the gateway stops then.
    pub async fn refused(&self) -> String {
        loop {
            let notified = self.refusal.notified();
            if let Some(why) = self.pools.values().find_map(|p| p.refused()) {
                return why.to_owned();
            }
            notified.await;
        }
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }

    /// Where `forward` sends `route`: its path rewrite, else the canonical path and query.
    pub fn outbound<'a>(&'a self, forward: &'a Forward, route: &RouteRequest) -> Result<Outbound<'a>, UpstreamError> {
        let name = &forward.upstream;
        let upstream = self.pools.get(name).ok_or_else(|| UpstreamError::Unknown(name.clone()))?;
        let bad = |reason: String| UpstreamError::BadForward { upstream: name.clone(), reason };
        let target = match &forward.path {
            Some(p) if p.starts_with('/') => {
                PathAndQuery::try_from(p.as_str()).map_err(|e| bad(format!("path `{p}`: {e}")))?
            }
            Some(p) => return Err(bad(format!("path `{p}` does not start with `/`"))),
            None if route.query.is_empty() => {
                PathAndQuery::try_from(route.path.as_str()).map_err(|e| bad(e.to_string()))?
            }
            None => {
                PathAndQuery::try_from(format!("{}?{}", route.path, route.query)).map_err(|e| bad(e.to_string()))?
            }
        };
        Ok(Outbound { upstream, forward, target })
    }

    /// Send a client's request upstream as `outbound` says and return the answer. An
    /// upgrade request (WebSocket) keeps its upgrade headers, if `listen.max_websockets`
    /// leaves room for one more; else it is refused before the upstream sees it.
    pub async fn exchange(
        &self,
        mut req: Request<Incoming>,
        outbound: Outbound<'_>,
        hop: &Hop<'_>,
    ) -> Result<Exchanged, UpstreamError> {
        let Outbound { upstream, forward, target } = outbound;
        let name = &forward.upstream;
        let upgrade = headers::is_websocket_upgrade(req.method(), req.headers());
        let websocket = if upgrade { Some(self.tunnels.reserve()?) } else { None };
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, incoming) = req.into_parts();
        let affinity = upstream.affinity(parts.uri.query().unwrap_or(""), &parts.headers);

        // HTTP/2 carries the host in :authority; the upstream speaks HTTP/1.1 and needs Host.
        if !parts.headers.contains_key(header::HOST) {
            if let Some(host) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        // What no client may send is gone already (`headers::ClientHeaders`, at the door).
        headers::remove_hop_by_hop(&mut parts.headers);
        for name in &forward.remove_headers {
            parts.headers.remove(name.as_str());
        }
        let bad = |reason: String| UpstreamError::BadForward { upstream: name.clone(), reason };
        for (name, value) in &forward.set_headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(format!("header name `{name}`: {e}")))?;
            let value = HeaderValue::from_str(value).map_err(|e| bad(format!("header `{name}` value: {e}")))?;
            parts.headers.insert(name, value);
        }
        hop.forwarded.write(&mut parts.headers);
        parts.headers.insert(headers::X_REQUEST_ID.clone(), hop.request_id.clone());
        hop.span.write(&mut parts.headers);
        if upgrade {
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        parts.uri = Uri::from(target);
        parts.version = Version::HTTP_11;

        let out = Request::from_parts(parts, stream_body(incoming, self.timeouts.client_body));
        let mut res = match tokio::time::timeout(self.timeouts.response_header, upstream.send(out, affinity)).await {
            Err(_) => {
                return Err(UpstreamError::ResponseTimeout {
                    upstream: name.clone(),
                    timeout: self.timeouts.response_header,
                })
            }
            Ok(Err(e @ UpstreamError::ClientBodyTimeout(_))) => {
                self.body_timeouts.refused(format_args!("a request body sent too slowly to `{name}`"));
                return Err(e);
            }
            Ok(result) => result?,
        };

        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client) = client_upgrade else {
                return Err(UpstreamError::Failed {
                    upstream: name.clone(),
                    reason: "switched protocols without being asked".into(),
                });
            };
            let upstream = hyper::upgrade::on(&mut res);
            let slot = TunnelSlot {
                _websocket: websocket.expect("an upgrade request reserved one"),
                _upstream: res.extensions_mut().remove::<UpstreamSlot>(),
            };
            let (mut parts, _) = res.into_parts();
            let protocol = parts.headers.get(header::UPGRADE).cloned();
            headers::remove_hop_by_hop(&mut parts.headers);
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(protocol) = protocol {
                parts.headers.insert(header::UPGRADE, protocol);
            }
            if self.tunnels.is_closed() {
                return Err(UpstreamError::Failed {
                    upstream: name.clone(),
                    reason: "gateway is shutting down".into(),
                });
            }
            return Ok(Exchanged::Switched {
                response: Response::from_parts(parts, body::empty()),
                client,
                upstream,
                slot,
            });
        }

        let (mut parts, incoming) = res.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        Ok(Exchanged::Response(Response::from_parts(parts, stream_body(incoming, self.timeouts.idle))))
    }

    /// The two sides of a switched exchange, once both are upgraded.
    pub async fn join(client: OnUpgrade, upstream: OnUpgrade, name: &str) -> Option<(Upgraded, Upgraded)> {
        match tokio::try_join!(client, upstream) {
            Ok(pair) => Some(pair),
            Err(e) => {
                tracing::debug!(upstream = %name, error = %e, "upgrade did not complete");
                None
            }
        }
    }
}

/// A streamed body ended when no byte comes for `idle`; one known to be empty stays cheap.
fn stream_body<B>(incoming: B, idle: std::time::Duration) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if incoming.is_end_stream() {
        body::empty()
    } else {
        IdleBody::new(incoming, idle).boxed_unsync()
    }
}
