//! One request's way through the gateway, stage by stage: the canonical request
//! (`request`), the router chain (`policy`), then the decision carried out by its
//! target: `proxy` (or the event `bridge`, for its path) over the `upstream`
//! transport, `static_files`, or a direct `reply`. Writes the access-log line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::bridge::Bridge;
use crate::config::Config;
use crate::limits;
use crate::policy::{BridgePolicy, Decision, Forward, Outcome, RouterChain};
use crate::request::{self, Canonical, RequestIds};
use crate::static_files::Mount;
use crate::supervise::Readiness;
use crate::upstream::headers::X_REQUEST_ID;
use crate::upstream::{Hop, Upstreams};
use crate::{proxy, reply};

pub struct Gateway {
    pub chain: RouterChain,
    upstreams: Upstreams,
    bridge: Option<Arc<Bridge>>,
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
    pub fn new(
        config: &Config,
        chain: RouterChain,
        bridge_policy: Option<Arc<dyn BridgePolicy>>,
    ) -> std::io::Result<Gateway> {
        let mut mounts = HashMap::new();
        for (name, mount) in &config.static_mounts {
            mounts.insert(name.clone(), Mount::new(name, mount)?);
        }
        let upstreams = Upstreams::new(config);
        let bridge = match (&config.bridge, bridge_policy) {
            (Some(bridge), Some(policy)) => {
                let identity = upstreams.get(&bridge.identity_upstream).expect("validated by config");
                Some(Arc::new(Bridge::new(bridge, identity, policy)))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(std::io::Error::other("the config has a [bridge] section but no bridge policy was loaded"))
            }
            (None, Some(_)) => {
                return Err(std::io::Error::other("a bridge policy was given but the config has no [bridge] section"))
            }
        };
        Ok(Gateway {
            chain,
            upstreams,
            bridge,
            mounts,
            trusted_hops: config.listen.trusted_hops,
            ids: RequestIds::default(),
            supervised: None,
        })
    }

    pub fn supervised(mut self, supervised: Supervised) -> Gateway {
        self.supervised = Some(supervised);
        self
    }

    /// Stop accepting tunnels, give open ones `grace` to finish, then end them.
    pub async fn shutdown(&self, grace: Duration) {
        self.upstreams.tunnels().shutdown(grace).await;
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
    async fn route_and_serve(
        &self,
        req: Request<Incoming>,
        peer_ip: &str,
        request_id: &HeaderValue,
    ) -> (Response<Body>, String) {
        let canonical = match request::canonicalize(&req, peer_ip, self.trusted_hops) {
            Ok(c) => c,
            Err(e) => return (body::text(StatusCode::BAD_REQUEST, format!("bad request path: {e}")), "refused".into()),
        };
        match self.chain.route(&canonical.route, None) {
            Outcome::Decided { router, decision } => match self.dev_decision(decision) {
                Decision::Forward(forward) => {
                    let target = format!("upstream:{}", forward.upstream);
                    if let Some(res) = self.not_ready(&forward.upstream) {
                        return (res, target);
                    }
                    (self.forward(req, &forward, &canonical, request_id).await, target)
                }
                Decision::ServeStatic(mount) => match self.mounts.get(&mount) {
                    Some(m) => {
                        // Files are named by decoded text; canonical paths keep reserved
                        // escapes and can no longer hold an encoded separator.
                        let file_path = percent_encoding::percent_decode_str(&canonical.route.path).decode_utf8_lossy();
                        (m.serve(req.method(), &file_path, req.headers()).await, format!("static:{mount}"))
                    }
                    None => (
                        body::text(
                            StatusCode::BAD_GATEWAY,
                            format!("router `{router}` chose static mount `{mount}`, which is not configured"),
                        ),
                        format!("static:{mount}"),
                    ),
                },
                Decision::Reply(r) => (reply::respond(&router, r), format!("reply:{router}")),
                Decision::Pass => unreachable!("the chain never returns Pass as a decision"),
            },
            Outcome::Failed { router, failure } => (
                body::text(StatusCode::SERVICE_UNAVAILABLE, format!("router `{router}` failed: {failure}")),
                format!("failed:{router}"),
            ),
            Outcome::NoRoute => {
                (body::text(StatusCode::NOT_FOUND, format!("no route for {}", canonical.route.path)), "none".into())
            }
        }
    }

    /// A forward decision: to the event bridge when the path the upstream will see is
    /// its own, else to the proxy. Responses that set or delete the session cookie
    /// drop the identity the bridge cached for the old one.
    async fn forward(
        &self,
        req: Request<Incoming>,
        forward: &Forward,
        canonical: &Canonical,
        request_id: &HeaderValue,
    ) -> Response<Body> {
        let outbound = match self.upstreams.outbound(forward, &canonical.route) {
            Ok(o) => o,
            Err(e) => return failed(e),
        };
        let hop = Hop { forwarded: &canonical.client.forwarded, request_id };
        let session_cookie = self.bridge.as_ref().and_then(|b| b.session_cookie(req.headers()));
        let result = match self.bridge.as_ref().filter(|b| b.covers(outbound.path())) {
            Some(bridge) => {
                bridge.serve(&self.upstreams, req, outbound, &hop, &canonical.route, session_cookie.clone()).await
            }
            None => proxy::forward(&self.upstreams, req, outbound, &hop).await,
        };
        match result {
            Ok(res) => {
                if let Some(bridge) = &self.bridge {
                    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
                        bridge.observe_response(session_cookie.as_deref(), res.headers());
                    }
                }
                res
            }
            Err(e) => failed(e),
        }
    }

    /// 503 with Retry-After while an upstream `isthmus run` started is not healthy yet.
    fn not_ready(&self, upstream: &str) -> Option<Response<Body>> {
        let readiness = &self.supervised.as_ref()?.readiness;
        if readiness.is_ready(upstream) {
            return None;
        }
        let mut res =
            body::text(StatusCode::SERVICE_UNAVAILABLE, format!("upstream `{upstream}` is starting; retry shortly"));
        res.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(limits::NOT_READY_RETRY_AFTER_S));
        Some(res)
    }

    /// `--dev`: the decision with the dev server's upstream in place of its static mount.
    fn dev_decision(&self, decision: Decision) -> Decision {
        match (&decision, self.supervised.as_ref().and_then(|s| s.dev.as_ref())) {
            (Decision::ServeStatic(mount), Some((dev_mount, upstream))) if mount == dev_mount => {
                Decision::Forward(Forward {
                    upstream: upstream.clone(),
                    path: None,
                    set_headers: Vec::new(),
                    remove_headers: Vec::new(),
                })
            }
            _ => decision,
        }
    }
}

fn failed(e: crate::upstream::UpstreamError) -> Response<Body> {
    tracing::warn!(error = %e, "proxy error");
    e.into_response()
}
