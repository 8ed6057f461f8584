//! The event bridge: Reflex's Socket.IO WebSocket, understood by the gateway. Each
//! client event is judged by the bridge policy with the Django identity of the
//! connection's session cookie, and forwarded with that identity signed into its
//! `router_data`.

pub mod identity;
pub mod inject;
mod judge;
mod raw;
mod relay;
pub mod socketio;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;

pub use judge::{judge, Closing, Judged, Session};

use crate::body::{self, Body};
use crate::config::{BridgeConfig, IdentityFailure};
use crate::limits;
use crate::policy::{BridgePolicy, Identity, Resolved, RouteRequest};
use crate::upstream::headers::{self as upstream_headers, IDENTITY_SECRET, X_FORWARDED_PROTO};
use crate::upstream::{Exchanged, Hop, Outbound, Upstream, UpstreamError, Upstreams};
use identity::{IdentityCache, IdentityError, IdentitySource, Origin};
use inject::Injector;

pub struct Bridge {
    pub path: String,
    policy: Arc<dyn BridgePolicy>,
    identities: IdentityCache<DjangoIdentity>,
    injector: Injector,
    on_identity_error: IdentityFailure,
    session_cookie: String,
    max_frame_bytes: usize,
}

impl Bridge {
    /// `identity_upstream` is the pool of the upstream named by `bridge.identity_upstream`.
    pub fn new(bridge: &BridgeConfig, identity_upstream: Arc<Upstream>, policy: Arc<dyn BridgePolicy>) -> Bridge {
        let uri = Uri::try_from(bridge.identity_path.as_str()).expect("validated path");
        let source = DjangoIdentity {
            upstream: identity_upstream,
            uri,
            secret: HeaderValue::from_bytes(bridge.identity_secret.expose()).ok(),
            cookie_name: bridge.session_cookie.clone(),
            timeout: bridge.identity_timeout,
        };
        Bridge {
            path: bridge.path.clone(),
            policy,
            identities: IdentityCache::new(source, bridge.identity_ttl, limits::IDENTITY_CACHE_ENTRIES),
            injector: Injector::new(bridge.bridge_secret.expose(), &bridge.inject_key),
            on_identity_error: bridge.on_identity_error,
            session_cookie: bridge.session_cookie.clone(),
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
        handshake: &RouteRequest,
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

    /// The session cookie's value in a request's Cookie headers.
    pub fn session_cookie(&self, headers: &HeaderMap) -> Option<String> {
        cookie_value(headers, &self.session_cookie)
    }

    /// Drop the cached identity of `old` when a response sets or deletes the session cookie.
    pub fn observe_response(&self, old: Option<&str>, response_headers: &HeaderMap) {
        let Some(old) = old else { return };
        let prefix = format!("{}=", self.session_cookie);
        let touches =
            response_headers.get_all(header::SET_COOKIE).iter().any(|v| v.as_bytes().starts_with(prefix.as_bytes()));
        if touches {
            tracing::debug!(target: "isthmus::bridge", "session cookie changed: cached identity dropped");
            self.identities.invalidate(old);
        }
    }

    /// The identity to judge with now. When Django cannot say, `on_identity_error`
    /// decides: judge as anonymous, or `None`: refuse without asking the policy.
    async fn identity(&self, cookie: Option<&str>, origin: &Origin) -> Option<Arc<Resolved>> {
        match self.identities.get(cookie, origin).await {
            Ok(who) => Some(who),
            Err(e) => {
                tracing::warn!(target: "isthmus::bridge", error = %e, mode = ?self.on_identity_error, "identity unavailable");
                match self.on_identity_error {
                    IdentityFailure::Anonymous => Some(Resolved::anonymous()),
                    IdentityFailure::Deny => None,
                }
            }
        }
    }
}

/// The refusal reason when the identity could not be had and the mode is `deny`.
const IDENTITY_UNAVAILABLE: &str = "forbidden:identity unavailable";

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// The companion Django app's identity endpoint.
struct DjangoIdentity {
    upstream: Arc<Upstream>,
    /// Origin-form: the path and query.
    uri: Uri,
    secret: Option<HeaderValue>,
    cookie_name: String,
    timeout: Duration,
}

impl IdentitySource for DjangoIdentity {
    async fn fetch(&self, session_cookie: &str, origin: &Origin) -> Result<Identity, IdentityError> {
        let cookie = HeaderValue::from_str(&format!("{}={session_cookie}", self.cookie_name))
            .map_err(|e| IdentityError::Malformed(e.to_string()))?;
        let mut req =
            Request::get(self.uri.clone()).header(header::COOKIE, cookie).body(body::empty()).expect("valid request");
        for (name, value) in [(header::HOST, &origin.host), (X_FORWARDED_PROTO.clone(), &origin.scheme)] {
            if let Ok(value) = HeaderValue::from_str(value) {
                if !value.is_empty() {
                    req.headers_mut().insert(name, value);
                }
            }
        }
        if let Some(secret) = &self.secret {
            req.headers_mut().insert(IDENTITY_SECRET.clone(), secret.clone());
        }
        let fetch = async {
            let res = self.upstream.send(req).await.map_err(|e| IdentityError::Unreachable(e.to_string()))?;
            if !res.status().is_success() {
                return Err(IdentityError::Status(res.status().as_u16()));
            }
            let body: Bytes = http_body_util::Limited::new(res.into_body(), limits::IDENTITY_MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| IdentityError::Unreachable(e.to_string()))?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| IdentityError::Malformed(e.to_string()))
        };
        tokio::time::timeout(self.timeout, fetch).await.map_err(|_| IdentityError::Timeout(self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "csrftoken=x; sessionid=abc123; theme=dark".parse().unwrap());
        assert_eq!(cookie_value(&h, "sessionid").as_deref(), Some("abc123"));
        assert_eq!(cookie_value(&h, "session"), None);
        h.append(header::COOKIE, "other=1".parse().unwrap());
        assert_eq!(cookie_value(&h, "other").as_deref(), Some("1"));
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, "sessionid=".parse().unwrap());
        assert_eq!(cookie_value(&empty, "sessionid"), None);
    }
}
