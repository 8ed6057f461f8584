//! One request's way through the gateway: canonical path, router chain, then the
//! decision carried out. Writes the access-log line.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::bridge::policy::BridgePolicy;
use crate::bridge::Bridge;
use crate::canonical_path;
use crate::config::Config;
use crate::limits;
use crate::proxy::headers::{ClientView, X_REQUEST_ID};
use crate::proxy::{ForwardContext, Proxy};
use crate::routing::{Decision, Forward, Outcome, Reply, RouteRequest, RouterChain};
use crate::static_files::Mount;
use crate::supervise::Readiness;

pub struct Gateway {
    pub chain: RouterChain,
    pub proxy: Proxy,
    mounts: HashMap<String, Mount>,
    trusted_hops: usize,
    ids: RequestIds,
    supervised: Option<Supervised>,
}

/// What `isthmus run` adds to the gateway.
pub struct Supervised {
    /// Upstreams it started answer 503 until they are healthy.
    pub readiness: Arc<Readiness>,
    /// `--dev`: (static mount, upstream): that mount is served by that upstream.
    pub dev: Option<(String, String)>,
}

impl Gateway {
    /// `bridge_policy` goes with the config's `[bridge]` section: one without the
    /// other is refused, so `/_event` is never tunneled unjudged by mistake.
    pub fn new(config: &Config, chain: RouterChain, bridge_policy: Option<Arc<dyn BridgePolicy>>) -> std::io::Result<Gateway> {
        let mut mounts = HashMap::new();
        for (name, mount) in &config.static_mounts {
            mounts.insert(name.clone(), Mount::new(name, mount)?);
        }
        let mut proxy = Proxy::new(config);
        match (&config.bridge, bridge_policy) {
            (Some(bridge), Some(policy)) => {
                let identity = proxy.upstream(&bridge.identity_upstream).expect("validated by config");
                proxy.set_bridge(Arc::new(Bridge::new(bridge, identity, policy)));
            }
            (None, None) => {}
            (Some(_), None) => return Err(std::io::Error::other("the config has a [bridge] section but no bridge policy was loaded")),
            (None, Some(_)) => return Err(std::io::Error::other("a bridge policy was given but the config has no [bridge] section")),
        }
        Ok(Gateway { chain, proxy, mounts, trusted_hops: config.listen.trusted_hops, ids: RequestIds::new(), supervised: None })
    }

    pub fn supervised(mut self, supervised: Supervised) -> Gateway {
        self.supervised = Some(supervised);
        self
    }

    /// 503 with Retry-After while an upstream `isthmus run` started is not healthy yet.
    fn not_ready(&self, upstream: &str) -> Option<Response<Body>> {
        let readiness = &self.supervised.as_ref()?.readiness;
        if readiness.is_ready(upstream) {
            return None;
        }
        let mut res = body::text(StatusCode::SERVICE_UNAVAILABLE, format!("upstream `{upstream}` is starting; retry shortly"));
        res.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(limits::NOT_READY_RETRY_AFTER_S));
        Some(res)
    }

    /// `--dev`: the decision with the dev server's upstream in place of its static mount.
    fn dev_decision(&self, decision: Decision) -> Decision {
        match (&decision, self.supervised.as_ref().and_then(|s| s.dev.as_ref())) {
            (Decision::ServeStatic(mount), Some((dev_mount, upstream))) if mount == dev_mount => {
                Decision::Forward(Forward { upstream: upstream.clone(), path: None, set_headers: Vec::new(), remove_headers: Vec::new() })
            }
            _ => decision,
        }
    }

    /// `peer_ip` is the connection's peer address, formatted once per connection.
    pub async fn handle(&self, req: Request<Incoming>, peer_ip: &str) -> Response<Body> {
        let start = Instant::now();
        let request_id = self.ids.for_request(req.headers(), self.trusted_hops);
        let method = req.method().clone();
        let raw_path = req.uri().path().to_owned();
        let (mut res, target) = self.route_and_serve(req, peer_ip, &request_id).await;
        res.headers_mut().insert(X_REQUEST_ID.clone(), request_id.clone());
        tracing::info!(
            target: "isthmus::access",
            method = %method,
            path = %raw_path,
            status = res.status().as_u16(),
            target = %target,
            duration_us = start.elapsed().as_micros() as u64,
            request_id = request_id.to_str().unwrap_or(""),
        );
        res
    }

    /// Returns the response and a short description of where it came from, for the log.
    async fn route_and_serve(&self, req: Request<Incoming>, peer_ip: &str, request_id: &HeaderValue) -> (Response<Body>, String) {
        let path = match canonical_path::canonicalize(req.uri().path()) {
            Ok(p) => p,
            Err(e) => return (body::text(StatusCode::BAD_REQUEST, format!("bad request path: {e}")), "refused".into()),
        };
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
            .unwrap_or_default();
        let client = ClientView::new(req.headers(), peer_ip, &authority, self.trusted_hops);
        let route_req = route_request(&req, path, &client);

        match self.chain.route(&route_req, None) {
            Outcome::Decided { router, decision } => match self.dev_decision(decision) {
                Decision::Forward(forward) => {
                    let target = format!("upstream:{}", forward.upstream);
                    if let Some(res) = self.not_ready(&forward.upstream) {
                        return (res, target);
                    }
                    let ctx = ForwardContext { client: &client, request_id, route: &route_req };
                    (self.proxy.forward(req, &forward, &ctx).await, target)
                }
                Decision::ServeStatic(mount) => match self.mounts.get(&mount) {
                    Some(m) => {
                        // Files are named by decoded text; canonical paths keep reserved
                        // escapes and can no longer hold an encoded separator.
                        let file_path = percent_encoding::percent_decode_str(&route_req.path).decode_utf8_lossy();
                        (m.serve(req.method(), &file_path, req.headers()).await, format!("static:{mount}"))
                    }
                    None => (
                        body::text(StatusCode::BAD_GATEWAY, format!("router `{router}` chose static mount `{mount}`, which is not configured")),
                        format!("static:{mount}"),
                    ),
                },
                Decision::Reply(reply) => (reply_response(&router, reply), format!("reply:{router}")),
                Decision::Pass => unreachable!("the chain never returns Pass as a decision"),
            },
            Outcome::Failed { router, failure } => (
                body::text(StatusCode::SERVICE_UNAVAILABLE, format!("router `{router}` failed: {failure}")),
                format!("failed:{router}"),
            ),
            Outcome::NoRoute => (body::text(StatusCode::NOT_FOUND, format!("no route for {}", route_req.path)), "none".into()),
        }
    }
}

/// The request as routers see it.
pub fn route_request<B>(req: &Request<B>, path: String, client: &ClientView) -> RouteRequest {
    RouteRequest {
        method: req.method().as_str().to_owned(),
        scheme: client.scheme.clone(),
        authority: client.host.clone(),
        path,
        query: req.uri().query().unwrap_or("").to_owned(),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        client_ip: client.ip.clone(),
    }
}

fn reply_response(router: &str, reply: Reply) -> Response<Body> {
    let invalid = |what: String| body::text(StatusCode::BAD_GATEWAY, format!("router `{router}` returned an invalid reply: {what}"));
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

/// Request ids: a random per-process prefix and a counter, unique without a syscall
/// per request. A client's own id is kept only from a trusted proxy.
struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        Self { prefix: uuid::Uuid::new_v4().as_u64_pair().0, counter: AtomicU64::new(0) }
    }

    fn for_request(&self, headers: &http::HeaderMap, trusted_hops: usize) -> HeaderValue {
        if trusted_hops > 0 {
            if let Some(id) = headers.get(&X_REQUEST_ID).filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok()) {
                return id.clone();
            }
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Hex by hand: `format!` was a measurable share of a proxied request's CPU.
        let id = (u128::from(self.prefix) << 64) | u128::from(n);
        let mut hex = [0u8; 32];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[(id >> (124 - 4 * i)) as usize & 0xf];
        }
        HeaderValue::from_bytes(&hex).expect("hex is a valid header value")
    }
}
