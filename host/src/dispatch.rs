//! One request's way through the gateway, stage by stage: the canonical request
//! (`request`), the router chain (`policy`), then the decision carried out by its
//! target: `proxy` (or the event `bridge`, for its path) over the `upstream`
//! transport, `static_files`, or a direct `reply`. Starts the request's span (`trace`),
//! which its upstream gets as parent, and ends it with the access-log line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::bridge::{Bridge, Page};
use crate::config::Config;
use crate::identity::{Identities, Origin};
use crate::limits;
use crate::metrics::{Metrics, Target, TargetKind};
use crate::policy::{BridgePolicy, Decision, Forward, Outcome, PolicyFailure, Resolved, RouterChain};
use crate::request::{self, Canonical, Peer, RequestIds};
use crate::static_files::Mount;
use crate::supervise::Readiness;
use crate::trace::{self, Ending, Span, Tracer};
use crate::upstream::headers::{ClientHeaders, X_REQUEST_ID};
use crate::upstream::{Hop, ServedBy, Upstreams};
use crate::{proxy, reply};

pub struct Gateway {
    pub chain: RouterChain,
    upstreams: Upstreams,
    /// Who a session cookie belongs to: for routers that need the user, and the bridge.
    identities: Option<Arc<Identities>>,
    bridge: Option<Arc<Bridge>>,
    mounts: HashMap<String, Mount>,
    trusted_hops: usize,
    /// What no client may send, removed at the door.
    client_headers: ClientHeaders,
    ids: RequestIds,
    tracer: Arc<Tracer>,
    supervised: Option<Supervised>,
    metrics: Arc<Metrics>,
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
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Gateway> {
        let mut mounts = HashMap::new();
        for (name, mount) in &config.static_mounts {
            mounts.insert(name.clone(), Mount::new(name, mount)?);
        }
        let upstreams = Upstreams::new(config, metrics.clone());
        let tracer = Arc::new(Tracer::new(&config.tracing));
        let identities = config.bridge.as_ref().map(|bridge| {
            let upstream = upstreams.get(&bridge.identity_upstream).expect("validated by config");
            Identities::new(bridge, config.redis.as_ref(), upstream, metrics.clone())
        });
        let bridge = match (&config.bridge, bridge_policy, &identities) {
            (Some(bridge), Some(policy), Some(identities)) => {
                Some(Arc::new(Bridge::new(bridge, identities.clone(), policy, metrics.clone(), tracer.clone())))
            }
            (None, None, _) => None,
            (Some(_), None, _) => {
                return Err(std::io::Error::other("the config has a [bridge] section but no bridge policy was loaded"))
            }
            _ => return Err(std::io::Error::other("a bridge policy was given but the config has no [bridge] section")),
        };
        if identities.is_none() {
            if let Some(router) = chain.routers().iter().find(|r| r.needs().identity) {
                return Err(std::io::Error::other(format!(
                    "router `{}` needs the Django user, which the gateway resolves with the identity settings of a [bridge] section; the config has none",
                    router.name()
                )));
            }
        }
        Ok(Gateway {
            chain,
            upstreams,
            identities,
            bridge,
            mounts,
            trusted_hops: config.listen.trusted_hops,
            client_headers: ClientHeaders::new(&config.headers),
            ids: RequestIds::default(),
            tracer,
            supervised: None,
            metrics,
        })
    }

    /// The upstream pools, whose endpoints `isthmus run` starts and stops.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    pub fn supervised(mut self, supervised: Supervised) -> Gateway {
        self.supervised = Some(supervised);
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stop accepting tunnels, give open ones `grace` to finish, then end them; then
    /// export the spans still queued. The link to the other gateways closes first.
    pub async fn shutdown(&self, grace: Duration) {
        if let Some(identities) = &self.identities {
            identities.shutdown();
        }
        self.upstreams.tunnels().shutdown(grace).await;
        self.tracer.shutdown().await;
    }

    /// Spans dropped because the export queue was full, since start.
    pub fn spans_dropped(&self) -> u64 {
        self.tracer.dropped()
    }

    pub async fn handle(&self, mut req: Request<Incoming>, peer: &Peer) -> Response<Body> {
        let start = Instant::now();
        let extended_connect = request::extended_connect_as_upgrade(&mut req);
        let request_id = self.ids.for_request(req.headers(), self.trusted_hops);
        let span = self.tracer.request(req.headers());
        let method = req.method().clone();
        let raw_path = req.uri().path().to_owned();
        let (mut res, target) = self.route_and_serve(req, peer, &request_id, &span).await;
        if extended_connect {
            request::extended_connect_answer(&mut res);
        }
        res.headers_mut().insert(X_REQUEST_ID.clone(), request_id.clone());
        let took = start.elapsed();
        self.metrics.request(&target, res.status(), took);
        let status = res.status().as_u16();
        tracing::info!(
            target: "isthmus::access",
            method = %method,
            path = %raw_path,
            status,
            target = %target,
            endpoint = res.extensions().get::<ServedBy>().map(|s| &*s.0),
            duration_us = took.as_micros() as u64,
            request_id = request_id.to_str().unwrap_or(""),
            trace_id = format_args!("{:032x}", span.context.trace_id),
            span_id = format_args!("{:016x}", span.context.span_id),
        );
        if self.tracer.records(&span) {
            let attributes = vec![
                ("http.request.method", trace::Value::Str(method.to_string())),
                ("url.path", trace::Value::Str(raw_path)),
                ("http.response.status_code", trace::Value::Int(i64::from(status))),
                ("isthmus.target", trace::Value::Str(target.to_string())),
                ("client.address", trace::Value::Str(peer.ip.to_string())),
            ];
            let ending = Ending { name: format!("{method} {target}"), attributes, link: None, error: status >= 500 };
            self.tracer.end(&span, true, ending);
        }
        res
    }

    /// Returns the response and where it came from, for the log and the metrics.
    async fn route_and_serve(
        &self,
        mut req: Request<Incoming>,
        peer: &Peer,
        request_id: &HeaderValue,
        span: &Span,
    ) -> (Response<Body>, Target) {
        request::join_cookie_fields(req.headers_mut());
        let traceparent = span.traceparent();
        let canonical =
            match request::canonicalize(&mut req, peer, self.trusted_hops, &self.client_headers, Some(&traceparent)) {
                Ok(c) => c,
                Err(e) => {
                    let res = body::text(StatusCode::BAD_REQUEST, e.to_string());
                    return (res, Target::bare(TargetKind::Refused));
                }
            };
        let (browser, new_cookie) = self.browser(&req, &canonical.route.scheme);
        let (mut res, target) = self.serve(req, &canonical, browser.as_deref(), request_id, span).await;
        if let Some(cookie) = new_cookie {
            res.headers_mut().append(http::header::SET_COOKIE, cookie);
        }
        (res, target)
    }

    /// The browser a request comes from (see `identity::browsers`), when the gateway
    /// bridges events; a page load or a WebSocket handshake without one is given one
    /// (the Set-Cookie to answer with is returned too).
    fn browser(&self, req: &Request<Incoming>, scheme: &str) -> (Option<String>, Option<HeaderValue>) {
        let Some(browsers) = self.identities.as_ref().map(|i| &i.browsers) else { return (None, None) };
        if let Some(id) = browsers.id_of(req.headers(), scheme) {
            return (Some(id), None);
        }
        let headers = req.headers();
        let page_load = req.method() == http::Method::GET
            && match headers.get("sec-fetch-dest") {
                Some(dest) => dest == "document",
                None => headers
                    .get(http::header::ACCEPT)
                    .is_some_and(|a| a.as_bytes().windows(9).any(|w| w == b"text/html")),
            };
        if !page_load && !crate::upstream::headers::is_websocket_upgrade(req.method(), headers) {
            return (None, None);
        }
        let (id, cookie) = browsers.new_id(scheme);
        (Some(id), Some(cookie))
    }

    async fn serve(
        &self,
        req: Request<Incoming>,
        canonical: &Canonical,
        browser: Option<&str>,
        request_id: &HeaderValue,
        span: &Span,
    ) -> (Response<Body>, Target) {
        if let Some(bridge) = self.bridge.as_ref().filter(|b| b.rebind_path == canonical.route.path) {
            return (bridge.rebind(&req, canonical.rebind_token.as_ref()), Target::bare(TargetKind::Rebind));
        }
        let who = match self.user(&req, canonical, request_id).await {
            Ok(who) => who,
            Err(res) => return (res, Target::bare(TargetKind::Refused)),
        };
        match self.chain.route(&canonical.route, who.as_ref(), None) {
            Outcome::Decided { router, decision } => match self.dev_decision(decision) {
                Decision::Forward(forward) => {
                    let target = Target::new(TargetKind::Upstream, &forward.upstream);
                    if let Some(res) = self.not_ready(&forward.upstream, request_id) {
                        return (res, target);
                    }
                    (self.forward(req, &forward, canonical, browser, request_id, span).await, target)
                }
                Decision::ServeStatic(mount) => match self.mounts.get(&mount) {
                    Some(m) => {
                        // Files are named by decoded text; canonical paths keep reserved
                        // escapes and can no longer hold an encoded separator.
                        let file_path = percent_encoding::percent_decode_str(&canonical.route.path).decode_utf8_lossy();
                        let query = &canonical.route.query;
                        (
                            m.serve(req.method(), &file_path, query, req.headers()).await,
                            Target::new(TargetKind::Static, mount),
                        )
                    }
                    None => (
                        failure(
                            StatusCode::BAD_GATEWAY,
                            request_id,
                            &format!("router `{router}` chose static mount `{mount}`, which is not configured"),
                        ),
                        Target::new(TargetKind::Static, mount),
                    ),
                },
                Decision::Reply(r) => (
                    reply::respond(&router, r).unwrap_or_else(|e| failure(StatusCode::BAD_GATEWAY, request_id, &e)),
                    Target::new(TargetKind::Reply, router),
                ),
                Decision::Refuse(refusal) => (
                    reply::refuse(&router, &refusal, &canonical.route)
                        .unwrap_or_else(|e| failure(StatusCode::BAD_GATEWAY, request_id, &e)),
                    Target::new(TargetKind::Refused, router),
                ),
                Decision::Pass => unreachable!("the chain never returns Pass as a decision"),
            },
            Outcome::Failed { router, failure: PolicyFailure::Starting } => {
                tracing::debug!(request_id = request_id.to_str().unwrap_or(""), router = %router, "router is starting");
                (retry_shortly(request_id), Target::new(TargetKind::Starting, router))
            }
            // What failed is in the chain's log line; the client learns only that it did.
            Outcome::Failed { router, .. } => (
                reply::gateway_error(StatusCode::SERVICE_UNAVAILABLE, request_id),
                Target::new(TargetKind::Failed, router),
            ),
            Outcome::NoRoute => (
                body::text(StatusCode::NOT_FOUND, format!("no route for {}", canonical.route.path)),
                Target::bare(TargetKind::None),
            ),
        }
    }

    /// The request's user, when a router needs it; a 503 when Django cannot say and
    /// `on_identity_error` is `deny`.
    async fn user(
        &self,
        req: &Request<Incoming>,
        canonical: &Canonical,
        request_id: &HeaderValue,
    ) -> Result<Option<Arc<Resolved>>, Response<Body>> {
        if !self.chain.needs_identity() {
            return Ok(None);
        }
        // `new` refuses this for routers loaded then; one that finished loading later
        // may still need the user.
        let Some(identities) = self.identities.as_ref() else {
            return Err(failure(
                StatusCode::SERVICE_UNAVAILABLE,
                request_id,
                &"a router needs the Django user, which the gateway resolves with the identity settings of a [bridge] section; the config has none",
            ));
        };
        let cookie = identities.session_cookie(req.headers());
        let origin = Origin { host: canonical.route.authority.clone(), scheme: canonical.route.scheme.clone() };
        match identities.resolve(cookie.as_deref(), &origin).await {
            Some(who) => Ok(Some(who)),
            // `resolve` logged why.
            None => Err(retry_shortly(request_id)),
        }
    }

    /// A forward decision: to the event bridge when the path the upstream will see is
    /// its own, to its upload judge for an upload, else to the proxy. Responses that set
    /// or delete the session cookie drop the identity cached for the old one and reach
    /// the browser's open pages (`identity::browsers`).
    async fn forward(
        &self,
        req: Request<Incoming>,
        forward: &Forward,
        canonical: &Canonical,
        browser: Option<&str>,
        request_id: &HeaderValue,
        span: &Span,
    ) -> Response<Body> {
        let outbound = match self.upstreams.outbound(forward, &canonical.route) {
            Ok(o) => o,
            Err(e) => return upstream_failed(&e, request_id),
        };
        let hop = Hop { forwarded: &canonical.client.forwarded, request_id, span };
        let session_cookie = self.identities.as_ref().and_then(|i| i.session_cookie(req.headers()));
        let route = &canonical.route;
        let result = match self.bridge.as_ref() {
            Some(bridge) if bridge.covers(outbound.path()) => {
                let page = Page { browser, session: session_cookie.clone(), route };
                bridge.serve(&self.upstreams, req, outbound, &hop, page).await
            }
            Some(bridge) if bridge.is_upload(req.method(), outbound.path()) => {
                bridge.upload(&self.upstreams, req, forward, &hop, route, session_cookie.as_deref()).await
            }
            _ => proxy::forward(&self.upstreams, req, outbound, &hop).await,
        };
        match result {
            Ok(mut res) => {
                if let Some(identities) = &self.identities {
                    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
                        identities.observe_written(res.headers_mut());
                        identities.observe_response(browser, session_cookie.as_deref(), res.headers());
                    }
                }
                res.headers_mut().remove(&crate::identity::written::SESSION_WRITTEN);
                res
            }
            Err(e) => upstream_failed(&e, request_id),
        }
    }

    /// 503 with Retry-After while an upstream `isthmus run` started is not healthy yet.
    fn not_ready(&self, upstream: &str, request_id: &HeaderValue) -> Option<Response<Body>> {
        let readiness = &self.supervised.as_ref()?.readiness;
        if readiness.is_ready(upstream) {
            return None;
        }
        tracing::debug!(request_id = request_id.to_str().unwrap_or(""), upstream, "upstream is starting");
        Some(retry_shortly(request_id))
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

/// 503 with Retry-After: something the request needs is starting or unavailable.
fn retry_shortly(request_id: &HeaderValue) -> Response<Body> {
    let mut res = reply::gateway_error(StatusCode::SERVICE_UNAVAILABLE, request_id);
    res.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(limits::NOT_READY_RETRY_AFTER_S));
    res
}

/// A failure the gateway answers itself: the client gets the status and the request id
/// (`reply::gateway_error`), the log gets what failed, under the same id (a client's own
/// error at debug level, so that no client can flood the log with warnings).
fn failure(status: StatusCode, request_id: &HeaderValue, detail: &dyn std::fmt::Display) -> Response<Body> {
    let request_id_text = request_id.to_str().unwrap_or("");
    if status.is_client_error() {
        tracing::debug!(request_id = request_id_text, error = %detail, status = status.as_u16(), "request failed");
    } else {
        tracing::warn!(request_id = request_id_text, error = %detail, status = status.as_u16(), "request failed");
    }
    reply::gateway_error(status, request_id)
}

/// The answer to an upstream transport's error (see `failure`).
fn upstream_failed(e: &crate::upstream::UpstreamError, request_id: &HeaderValue) -> Response<Body> {
    let mut res = if e.logged_by_cap() {
        reply::gateway_error(e.status(), request_id)
    } else {
        failure(e.status(), request_id, e)
    };
    if let Some((name, value)) = e.answer_header() {
        res.headers_mut().insert(name, value);
    }
    res
}
