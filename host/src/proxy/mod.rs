//! Forwarding to upstreams: pooled keep-alive HTTP/1.1 connections, streamed bodies
//! both ways, upgrades tunneled, timeouts turned into 502/504.

mod error;
pub mod headers;
pub(crate) mod idle;
mod pool;
mod tunnel;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::ProxyError;
use headers::ClientView;
pub use idle::IdleBody;
pub use pool::{PoolSettings, PooledBody, Upstream};

use crate::body::{self, Body, BoxError};
use crate::bridge::{Bridge, Session, IDENTITY_SECRET_HEADER};
use crate::config::{Config, Timeouts};
use crate::limits;
use crate::routing::{Forward, RouteRequest};

/// Per-request facts the forwarder needs beside the decision.
pub struct ForwardContext<'a> {
    pub client: &'a ClientView,
    pub request_id: &'a HeaderValue,
    /// The request as the routers saw it (canonical path, raw query).
    pub route: &'a RouteRequest,
}

pub struct Proxy {
    upstreams: HashMap<String, Arc<Upstream>>,
    timeouts: Timeouts,
    /// Upgraded tunnels outlive their request; shutdown ends them after the grace period.
    tunnels: TaskTracker,
    shutdown: CancellationToken,
    bridge: Option<Arc<Bridge>>,
}

impl Proxy {
    pub fn new(config: &Config) -> Proxy {
        let settings = PoolSettings {
            connect_timeout: config.timeouts.connect,
            idle_timeout: config.timeouts.pool_idle,
            max_idle: limits::POOL_MAX_IDLE_PER_HOST,
        };
        let upstreams = config
            .upstreams
            .iter()
            .map(|(name, u)| (name.clone(), Upstream::new(name, u.uri.authority().expect("validated by config"), settings)))
            .collect();
        Proxy { upstreams, timeouts: config.timeouts.clone(), tunnels: TaskTracker::new(), shutdown: CancellationToken::new(), bridge: None }
    }

    /// A configured upstream's connection pool, for the gateway's own calls (the identity endpoint).
    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.upstreams.get(name).cloned()
    }

    /// Bridge WebSockets on the bridge's path instead of tunneling them blindly.
    pub fn set_bridge(&mut self, bridge: Arc<Bridge>) {
        self.bridge = Some(bridge);
    }

    /// Stop accepting tunnels, give open ones `grace` to finish, then end them.
    pub async fn shutdown(&self, grace: Duration) {
        self.tunnels.close();
        if tokio::time::timeout(grace, self.tunnels.wait()).await.is_err() {
            self.shutdown.cancel();
            self.tunnels.wait().await;
        }
    }

    pub async fn forward(&self, req: Request<Incoming>, decision: &Forward, ctx: &ForwardContext<'_>) -> Response<Body> {
        match self.try_forward(req, decision, ctx).await {
            Ok(res) => res,
            Err(e) => {
                tracing::warn!(error = %e, "proxy error");
                e.into_response()
            }
        }
    }

    async fn try_forward(&self, mut req: Request<Incoming>, decision: &Forward, ctx: &ForwardContext<'_>) -> Result<Response<Body>, ProxyError> {
        let name = &decision.upstream;
        let upstream = self.upstreams.get(name).ok_or_else(|| ProxyError::UnknownUpstream(name.clone()))?;
        let bad = |reason: String| ProxyError::BadForward { upstream: name.clone(), reason };

        let path_and_query = match &decision.path {
            Some(p) if p.starts_with('/') => PathAndQuery::try_from(p.as_str()).map_err(|e| bad(format!("path `{p}`: {e}")))?,
            Some(p) => return Err(bad(format!("path `{p}` does not start with `/`"))),
            None if ctx.route.query.is_empty() => PathAndQuery::try_from(ctx.route.path.as_str()).map_err(|e| bad(e.to_string()))?,
            None => PathAndQuery::try_from(format!("{}?{}", ctx.route.path, ctx.route.query)).map_err(|e| bad(e.to_string()))?,
        };
        // The bridge judges by the path the upstream will see, rewrites included.
        let bridged = self.bridge.as_ref().filter(|b| b.covers(path_and_query.path()));

        let upgrade = headers::upgrade_protocol(req.headers());
        if bridged.is_some() && upgrade.is_none() {
            // Socket.IO's polling transport would carry events past the bridge.
            return Err(ProxyError::BadRequest("the event bridge accepts WebSocket connections only".into()));
        }
        let session_cookie = self.bridge.as_ref().and_then(|b| b.session_cookie(req.headers()));
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, incoming) = req.into_parts();

        // HTTP/2 carries the host in :authority; the upstream speaks HTTP/1.1 and needs Host.
        if !parts.headers.contains_key(header::HOST) {
            if let Some(host) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        headers::remove_hop_by_hop(&mut parts.headers);
        parts.headers.remove(&IDENTITY_SECRET_HEADER);
        for name in &decision.remove_headers {
            parts.headers.remove(name.as_str());
        }
        for (name, value) in &decision.set_headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(format!("header name `{name}`: {e}")))?;
            let value = HeaderValue::from_str(value).map_err(|e| bad(format!("header `{name}` value: {e}")))?;
            parts.headers.insert(name, value);
        }
        ctx.client.write(&mut parts.headers);
        parts.headers.insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
        if let Some(protocol) = &upgrade {
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        parts.uri = Uri::from(path_and_query);
        parts.version = Version::HTTP_11;

        let body = self.stream_body(incoming);
        let out = Request::from_parts(parts, body);

        let mut res = match tokio::time::timeout(self.timeouts.response_header, upstream.send(out)).await {
            Err(_) => return Err(ProxyError::ResponseTimeout { upstream: name.clone(), timeout: self.timeouts.response_header }),
            Ok(result) => result?,
        };

        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(ProxyError::Failed { upstream: name.clone(), reason: "switched protocols without being asked".into() });
            };
            let upstream_upgrade = hyper::upgrade::on(&mut res);
            let (mut parts, _) = res.into_parts();
            let protocol = parts.headers.get(header::UPGRADE).cloned();
            headers::remove_hop_by_hop(&mut parts.headers);
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(protocol) = protocol {
                parts.headers.insert(header::UPGRADE, protocol);
            }
            if self.tunnels.is_closed() {
                return Err(ProxyError::Failed { upstream: name.clone(), reason: "gateway is shutting down".into() });
            }
            let bridge = bridged.map(|bridge| Session::new(bridge.clone(), ctx.route.clone(), session_cookie));
            self.tunnels.spawn(tunnel::run(client_upgrade, upstream_upgrade, self.timeouts.idle, self.shutdown.clone(), name.clone(), bridge));
            return Ok(Response::from_parts(parts, body::empty()));
        }

        let (mut parts, incoming) = res.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        if let Some(bridge) = &self.bridge {
            bridge.observe_response(session_cookie.as_deref(), &parts.headers);
        }
        let body = self.stream_body(incoming);
        Ok(Response::from_parts(parts, body))
    }

    /// A streamed body with the idle timeout; a body known to be empty stays cheap.
    fn stream_body<B>(&self, incoming: B) -> Body
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if incoming.is_end_stream() {
            body::empty()
        } else {
            IdleBody::new(incoming, self.timeouts.idle).boxed_unsync()
        }
    }
}
