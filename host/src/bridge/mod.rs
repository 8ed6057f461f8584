//! The event bridge: Reflex's Socket.IO WebSocket, understood by the gateway. Each
//! client event is judged by the bridge policy with the Django identity of the
//! connection's session cookie, and forwarded with that identity signed into its
//! `router_data`.

pub mod inject;
pub(crate) mod judge;
pub(crate) mod raw;
mod relay;
pub mod socketio;
mod upload;

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use judge::{judge, Closing, Judged, Session};

use crate::body::{self, Body};
use crate::config::BridgeConfig;
use crate::identity::{Identities, Origin};
use crate::metrics::{BridgeKind, BridgeVerdict, Metrics, TunnelKind};
use crate::policy::{or_fail_mode, BridgePolicy, PolicyFailure, Refusal, Resolved, RouteRequest, Verdict};
use crate::trace::Tracer;
use crate::upstream::headers as upstream_headers;
use crate::upstream::{Exchanged, Hop, Outbound, UpstreamError, Upstreams};
use inject::Injector;

pub struct Bridge {
    pub path: String,
    /// Answered by the gateway itself (`rebind`).
    pub rebind_path: String,
    upload_path: String,
    max_upload_bytes: u64,
    on_identity_change: Option<String>,
    policy: Arc<dyn BridgePolicy>,
    identities: Arc<Identities>,
    injector: Injector,
    /// Gives each event a span of its own, whose `traceparent` is spliced into it.
    tracer: Arc<Tracer>,
    max_frame_bytes: usize,
    metrics: Arc<Metrics>,
}

/// What a bridged page's handshake says about it.
pub struct Page<'a> {
    /// Its browser (`identity::browsers`).
    pub browser: Option<&'a str>,
    /// The session cookie of its handshake.
    pub session: Option<String>,
    pub route: &'a Arc<RouteRequest>,
}

impl Bridge {
    pub fn new(
        bridge: &BridgeConfig,
        identities: Arc<Identities>,
        policy: Arc<dyn BridgePolicy>,
        metrics: Arc<Metrics>,
        tracer: Arc<Tracer>,
    ) -> Bridge {
        Bridge {
            path: bridge.path.clone(),
            rebind_path: bridge.rebind_path.clone(),
            upload_path: bridge.upload_path.clone(),
            max_upload_bytes: bridge.max_upload_bytes,
            on_identity_change: bridge.on_identity_change.clone(),
            policy,
            identities,
            injector: Injector::new(bridge.bridge_secret.expose(), &bridge.inject_key),
            tracer,
            max_frame_bytes: bridge.max_frame_bytes,
            metrics,
        }
    }

    /// Serve a request whose outbound path is the bridge's: a WebSocket handshake is
    /// forwarded like any upgrade, then relayed frame by frame with every client event
    /// judged (`relay`). `Ok` is the upstream's answer; `Err` is for the gateway to answer.
    pub async fn serve(
        self: &Arc<Self>,
        upstreams: &Upstreams,
        req: Request<Incoming>,
        outbound: Outbound<'_>,
        hop: &Hop<'_>,
        page: Page<'_>,
    ) -> Result<Response<Body>, UpstreamError> {
        if !upstream_headers::is_websocket_upgrade(req.method(), req.headers()) {
            // Socket.IO's polling transport would carry events past the bridge.
            return Ok(body::text(StatusCode::BAD_REQUEST, "the event bridge accepts WebSocket connections only"));
        }
        let name = outbound.upstream_name();
        match upstreams.exchange(req, outbound, hop).await? {
            Exchanged::Response(response) => Ok(response),
            Exchanged::Switched { response, client, upstream, slot } => {
                // Reflex's client token, to find the page again for an upload's refusal.
                let reflex_token = url_query_value(&page.route.query, "token");
                let registration = self.identities.browsers.register(
                    page.browser.map(str::to_owned),
                    page.session.clone(),
                    reflex_token,
                );
                let session =
                    Session::new(self.clone(), page.route.clone(), page.session, registration, hop.span.context);
                let (idle, name) = (upstreams.timeouts().idle, name.to_owned());
                upstreams.tunnels().spawn(TunnelKind::Bridged, slot, move |shutdown| async move {
                    if let Some((client, upstream)) = Upstreams::join(client, upstream, &name).await {
                        relay::run(client, upstream, session, idle, shutdown).await;
                    }
                });
                Ok(response)
            }
        }
    }

    /// A page re-reading its browser's session (`identity::browsers`): a same-origin POST
    /// with the token its WebSocket was given (`upstream::headers::REBIND`, taken out of
    /// the request at the door). The session it carries is the page's now.
    pub fn rebind<B>(&self, req: &Request<B>, token: Option<&HeaderValue>) -> Response<Body> {
        if req.method() != Method::POST {
            return body::text(StatusCode::METHOD_NOT_ALLOWED, "POST only");
        }
        let token = token.and_then(|v| v.to_str().ok()).unwrap_or("");
        let session = self.identities.session_cookie(req.headers());
        if self.identities.browsers.rebind(token, session) {
            Response::builder().status(StatusCode::NO_CONTENT).body(body::empty()).expect("valid response")
        } else {
            body::text(StatusCode::NOT_FOUND, "no open page holds this token")
        }
    }

    /// Whether a request (method, path as sent upstream) is an upload to Reflex.
    pub fn is_upload(&self, method: &Method, path: &str) -> bool {
        method == Method::POST && path == self.upload_path
    }

    /// Whether a path (as sent upstream) is the bridge's.
    pub fn covers(&self, path: &str) -> bool {
        path.strip_prefix(self.path.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The policy's verdict on a packet of `kind` (`ask` calls it), counted and timed;
    /// a failure becomes the verdict of its fail mode.
    fn verdict(
        &self,
        kind: BridgeKind,
        ask: impl FnOnce(&dyn BridgePolicy) -> Result<Verdict, PolicyFailure>,
    ) -> Verdict {
        let start = Instant::now();
        let verdict = or_fail_mode(self.policy.as_ref(), ask(self.policy.as_ref()));
        let counted = match &verdict {
            Verdict::Allow(_) => BridgeVerdict::Allowed,
            Verdict::Refuse(_) => BridgeVerdict::Refused,
            Verdict::Close(_) => BridgeVerdict::Closed,
        };
        self.metrics.bridge_event(kind, counted, start.elapsed());
        verdict
    }

    /// The identity to judge with now; `None`: refuse without asking the policy.
    async fn identity(&self, cookie: Option<&str>, origin: &Origin) -> Option<Arc<Resolved>> {
        self.identities.resolve(cookie, origin).await
    }
}

/// The first value of `name` in a query string (raw, as Reflex's token is URL-safe).
fn url_query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_owned())
}

/// The refusal when the identity could not be had and `on_identity_error` is `deny`.
fn identity_unavailable() -> Refusal {
    Refusal::Forbidden("identity unavailable".into())
}
