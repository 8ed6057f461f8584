//! The Django user behind a request: the session cookie's value, resolved through the
//! companion app's identity endpoint on Django (never from anything the client
//! claims), cached per cookie value (`cache`), and forgotten at once when a Django
//! response through the gateway sets or deletes that cookie (login, logout). Used by
//! dispatch for routers that need the user, and by the event bridge.

pub mod browsers;
mod cache;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Uri};
use http_body_util::BodyExt;

pub use cache::{IdentityCache, IdentityError, IdentitySource, Origin};

use crate::body;
use crate::config::{BridgeConfig, IdentityFailure};
use crate::limits;
use crate::metrics::Metrics;
use crate::policy::{Identity, Resolved};
use crate::upstream::headers::{IDENTITY_SECRET, X_FORWARDED_PROTO};
use crate::upstream::Upstream;

pub struct Identities {
    cache: IdentityCache<DjangoIdentity>,
    on_error: IdentityFailure,
    session_cookie: String,
    /// The open bridged pages of each browser, told when its session changes.
    pub browsers: Arc<browsers::Browsers>,
}

impl Identities {
    /// From the `[bridge]` section's identity settings; `upstream` is the pool of
    /// `bridge.identity_upstream`.
    pub fn new(config: &BridgeConfig, upstream: Arc<Upstream>, metrics: Arc<Metrics>) -> Identities {
        let source = DjangoIdentity {
            upstream,
            uri: Uri::try_from(config.identity_path.as_str()).expect("validated path"),
            secret: HeaderValue::from_bytes(config.identity_secret.expose()).ok(),
            cookie_name: config.session_cookie.clone(),
            timeout: config.identity_timeout,
        };
        Identities {
            cache: IdentityCache::new(source, config.identity_ttl, limits::IDENTITY_CACHE_ENTRIES).measured(metrics),
            on_error: config.on_identity_error,
            session_cookie: config.session_cookie.clone(),
            browsers: Arc::new(browsers::Browsers::new(&config.browser_cookie)),
        }
    }

    /// The session cookie's value in a request's Cookie headers.
    pub fn session_cookie(&self, headers: &HeaderMap) -> Option<String> {
        cookie_value(headers, &self.session_cookie)
    }

    /// The user of `cookie` now. When Django cannot say, `on_identity_error` decides:
    /// anonymous, or `None`: refuse without asking any policy.
    pub async fn resolve(&self, cookie: Option<&str>, origin: &Origin) -> Option<Arc<Resolved>> {
        match self.cache.get(cookie, origin).await {
            Ok(who) => Some(who),
            Err(e) => {
                tracing::warn!(target: "isthmus::identity", error = %e, mode = ?self.on_error, "identity unavailable");
                match self.on_error {
                    IdentityFailure::Anonymous => Some(Resolved::anonymous()),
                    IdentityFailure::Deny => None,
                }
            }
        }
    }

    /// A response to a request of `browser` carrying session `old` passed through: when
    /// it sets or deletes the session cookie, the cached identity of `old` is dropped and
    /// the browser's open pages are told (see `browsers`).
    pub fn observe_response(&self, browser: Option<&str>, old: Option<&str>, response_headers: &HeaderMap) {
        let Some(deleted) = browsers::touches_cookie(response_headers, &self.session_cookie) else { return };
        if let Some(old) = old {
            self.cache.invalidate(old);
        }
        let asked = self.browsers.session_changed(browser, old, deleted);
        tracing::debug!(target: "isthmus::identity", deleted, pages = asked, "session cookie changed");
    }
}

/// The value of cookie `name` in Cookie headers, as Django reads it: the last of
/// duplicates, quotes removed; an empty value is none.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_in(headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()), name)
}

/// The value of cookie `name` in these Cookie header values (see `cookie_value`).
pub fn cookie_in<'a>(values: impl Iterator<Item = &'a str>, name: &str) -> Option<String> {
    values
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .last()
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
    fn cookie_values_are_found_among_others_and_the_last_duplicate_wins() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "csrftoken=x; sessionid=abc123; theme=dark".parse().unwrap());
        assert_eq!(cookie_value(&h, "sessionid").as_deref(), Some("abc123"));
        assert_eq!(cookie_value(&h, "session"), None);
        h.append(header::COOKIE, "other=1; sessionid=\"def\"".parse().unwrap());
        assert_eq!(cookie_value(&h, "other").as_deref(), Some("1"));
        assert_eq!(cookie_value(&h, "sessionid").as_deref(), Some("def"), "Django reads the last of duplicates");
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, "sessionid=".parse().unwrap());
        assert_eq!(cookie_value(&empty, "sessionid"), None);
    }
}
