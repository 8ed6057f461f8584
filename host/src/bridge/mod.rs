//! The event bridge: Reflex's Socket.IO WebSocket, understood by the gateway. Each
//! client event is judged by the bridge policy with the Django identity of the
//! connection's session cookie, and forwarded with that identity signed into its
//! `router_data`.

pub mod inject;
mod judge;
mod raw;
mod relay;
pub mod socketio;

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

pub use judge::{judge, Closing, Judged, Session};

use crate::body::{self, Body};
use crate::config::BridgeConfig;
use crate::identity::{Identities, Origin};
use crate::policy::{BridgePolicy, Refusal, Resolved, RouteRequest};
use crate::upstream::headers as upstream_headers;
use crate::upstream::{Exchanged, Hop, Outbound, UpstreamError, Upstreams};
use inject::Injector;

pub struct Bridge {
    pub path: String,
    policy: Arc<dyn BridgePolicy>,
    identities: Arc<Identities>,
    injector: Injector,
    max_frame_bytes: usize,
}

impl Bridge {
    pub fn new(bridge: &BridgeConfig, identities: Arc<Identities>, policy: Arc<dyn BridgePolicy>) -> Bridge {
        Bridge {
            path: bridge.path.clone(),
            policy,
            identities,
            injector: Injector::new(bridge.bridge_secret.expose(), &bridge.inject_key),
            max_frame_bytes: bridge.max_frame_bytes,
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
        handshake: &Arc<RouteRequest>,
        session_cookie: Option<String>,
    ) -> Result<Response<Body>, UpstreamError> {
        if upstream_headers::upgrade_protocol(req.headers()).is_none() {
            // Socket.IO's polling transport would carry events past the bridge.
            return Ok(body::text(StatusCode::BAD_REQUEST, "the event bridge accepts WebSocket connections only"));
        }
        let name = outbound.upstream_name().to_owned();
        match upstreams.exchange(req, outbound, hop).await? {
            Exchanged::Response(response) => Ok(response),
            Exchanged::Switched { response, client, upstream } => {
                let session = Session::new(self.clone(), handshake.clone(), session_cookie);
                let idle = upstreams.timeouts().idle;
                upstreams.tunnels().spawn(move |shutdown| async move {
                    if let Some((client, upstream)) = Upstreams::join(client, upstream, &name).await {
                        relay::run(client, upstream, session, idle, shutdown).await;
                    }
                });
                Ok(response)
            }
        }
    }

    /// Whether a path (as sent upstream) is the bridge's.
    pub fn covers(&self, path: &str) -> bool {
        path.strip_prefix(self.path.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The identity to judge with now; `None`: refuse without asking the policy.
    async fn identity(&self, cookie: Option<&str>, origin: &Origin) -> Option<Arc<Resolved>> {
        self.identities.resolve(cookie, origin).await
    }
}

/// The refusal when the identity could not be had and `on_identity_error` is `deny`.
fn identity_unavailable() -> Refusal {
    Refusal::Forbidden("identity unavailable".into())
}
