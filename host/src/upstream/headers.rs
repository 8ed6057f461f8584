//! Header hygiene for requests sent upstream and their responses: hop-by-hop headers
//! removed (RFC 9110 §7.6.1), X-Forwarded-* written by the gateway, and what no client
//! may send (the gateway's `x-isthmus-*` namespace, identity headers, names with `_`)
//! removed at the door (`ClientHeaders`).

use std::borrow::Cow;
use std::collections::HashSet;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;

use crate::limits;

/// Fields that describe one connection and must not be forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Carries the identity secret on the gateway's own calls to Django; in the gateway's
/// namespace, so a client can never pose as the gateway.
pub static IDENTITY_SECRET: HeaderName = HeaderName::from_static("x-isthmus-secret");
/// Carries the signed identity on uploads the gateway judged; in the gateway's
/// namespace, so only the gateway's own reaches an upstream.
pub static IDENTITY: HeaderName = HeaderName::from_static("x-isthmus-identity");
/// The one header of the gateway's namespace a client sends: the gateway's own script
/// carries a page's token in it to the rebind endpoint, which the gateway answers itself.
pub static REBIND: HeaderName = HeaderName::from_static("x-isthmus-rebind");
/// Every header whose name starts so is the gateway's: a client's copy is removed.
const GATEWAY_NAMESPACE: &str = "x-isthmus-";
/// Other client-address headers an app might believe; dropped unless a hop is trusted.
const SPOOFABLE: [HeaderName; 2] = [HeaderName::from_static("forwarded"), HeaderName::from_static("x-real-ip")];

/// What is removed from every client request before any router or upstream sees it
/// (`[headers]`): the gateway's namespace, identity headers, names with `_`.
pub struct ClientHeaders {
    identity: HashSet<HeaderName>,
    allow_underscores: bool,
}

impl ClientHeaders {
    pub fn new(config: &crate::config::Headers) -> ClientHeaders {
        let identity = limits::IDENTITY_HEADERS
            .into_iter()
            .filter(|name| !config.keep.iter().any(|k| k.eq_ignore_ascii_case(name)))
            .map(HeaderName::from_static)
            .chain(config.remove.iter().filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok()))
            .collect();
        ClientHeaders { identity, allow_underscores: config.allow_underscores }
    }

    /// Remove what no client may send; the value of the rebind header, when it was sent,
    /// is returned for the rebind endpoint (and reaches nothing else).
    pub fn clean(&self, headers: &mut HeaderMap) -> Option<HeaderValue> {
        let foreign = |name: &HeaderName| {
            let name_str = name.as_str();
            name_str.starts_with(GATEWAY_NAMESPACE)
                || (!self.allow_underscores && name_str.contains('_'))
                || self.identity.contains(name)
        };
        // Most requests carry none: one pass over the names, no allocation.
        if !headers.keys().any(foreign) {
            return None;
        }
        let rebind = headers.remove(&REBIND);
        let doomed: Vec<HeaderName> = headers.keys().filter(|name| foreign(name)).cloned().collect();
        for name in doomed {
            headers.remove(name);
        }
        rebind
    }
}

/// A header value as text, as ASGI servers and Django decode it: latin-1 (so no value
/// is unreadable, and none differs from what Django sees).
pub fn latin1(value: &HeaderValue) -> Cow<'_, str> {
    match value.to_str() {
        Ok(ascii) => Cow::Borrowed(ascii),
        Err(_) => Cow::Owned(value.as_bytes().iter().map(|&b| char::from(b)).collect()),
    }
}

/// The items of a list-valued header (RFC 9110 §5.6.1) over all its fields: split on
/// commas, trimmed, empty ones skipped.
pub fn list_items<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Remove hop-by-hop headers, including those the Connection header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = list_items(headers, &header::CONNECTION)
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    // Most messages carry none of them: one pass over the names costs less than eight
    // removals, each of which hashes.
    if headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
    }
}

/// Whether a request asks to switch to WebSocket (RFC 6455: a GET with `Connection:
/// upgrade` and `websocket` among its `Upgrade` protocols), the one upgrade the gateway
/// tunnels. Any other (`h2c`, TLS, an upgrade on a POST) is forwarded as a plain request,
/// its upgrade headers removed with the other hop-by-hop ones: an upstream switching to
/// HTTP/2 or to raw bytes behind the gateway would carry requests no router judged.
pub fn is_websocket_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    let has = |name: HeaderName, token: &str| list_items(headers, &name).any(|t| t.eq_ignore_ascii_case(token));
    method == Method::GET && has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// What the gateway tells an upstream about the client, as X-Forwarded-* headers.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// X-Forwarded-For: the client and the proxies it came through.
    pub chain: String,
    /// X-Forwarded-Proto: `http` or `https`.
    pub proto: String,
    /// X-Forwarded-Host.
    pub host: String,
    /// Whether the client's own forwarding headers came from a trusted proxy; if not,
    /// the other headers an app might take a client address from are dropped.
    pub trusted: bool,
}

impl Forwarded {
    /// Overwrite the X-Forwarded-* headers with what the gateway believes.
    pub fn write(&self, headers: &mut HeaderMap) {
        if !self.trusted {
            for name in &SPOOFABLE {
                headers.remove(name);
            }
        }
        for (name, value) in
            [(&X_FORWARDED_FOR, &self.chain), (&X_FORWARDED_PROTO, &self.proto), (&X_FORWARDED_HOST, &self.host)]
        {
            match HeaderValue::from_str(value) {
                Ok(v) => {
                    headers.insert(name.clone(), v);
                }
                Err(_) => {
                    headers.remove(name);
                }
            }
        }
    }
}

/// A header map of `pairs`, for tests.
#[cfg(test)]
pub(crate) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("keep-alive", "5"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn forwarded_headers_are_overwritten_and_spoofable_ones_dropped_unless_trusted() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ]);
        let forwarded =
            Forwarded { chain: "127.0.0.1".into(), proto: "http".into(), host: "example.com".into(), trusted: false };
        forwarded.write(&mut h);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert!(!h.contains_key("forwarded") && !h.contains_key("x-real-ip"));
        let mut h = map(&[("x-real-ip", "1.1.1.1")]);
        Forwarded { trusted: true, ..forwarded }.write(&mut h);
        assert_eq!(h["x-real-ip"], "1.1.1.1", "kept from a trusted proxy");
    }

    #[test]
    fn what_no_client_may_send_is_removed_and_the_rebind_token_handed_over() {
        let clean = ClientHeaders::new(&crate::config::Headers::default());
        let mut h = map(&[
            ("x-isthmus-identity", "{\"username\": \"admin\"}"),
            ("x-isthmus-secret", "guess"),
            ("x-isthmus-user", "admin"),
            ("x-isthmus-rebind", "token"),
            ("remote-user", "admin"),
            ("x-forwarded-user", "admin"),
            ("x-auth-request-email", "admin@example.com"),
            ("x-forwarded-client-cert", "Hash=1"),
            ("x_isthmus_user", "admin"),
            ("x_remote_user", "admin"),
            ("accept", "*/*"),
            ("x-django-user", "admin"),
            ("authorization", "Token abc"),
        ]);
        assert_eq!(clean.clean(&mut h), Some(HeaderValue::from_static("token")));
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "authorization", "x-django-user"]);
        let mut plain = map(&[("accept", "*/*"), ("cookie", "a=1")]);
        assert_eq!(clean.clean(&mut plain), None);
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn the_removed_identity_headers_are_configurable() {
        let config = crate::config::Headers {
            remove: vec!["X-Api-User".into()],
            keep: vec!["X-Forwarded-User".into()],
            allow_underscores: true,
        };
        let clean = ClientHeaders::new(&config);
        let mut h = map(&[
            ("x-api-user", "a"),
            ("x-forwarded-user", "b"),
            ("remote-user", "c"),
            ("x_legacy_key", "d"),
            ("x-isthmus-identity", "e"),
        ]);
        assert_eq!(clean.clean(&mut h), None);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-forwarded-user", "x_legacy_key"]);
    }

    #[test]
    fn header_values_read_as_latin_1() {
        assert_eq!(latin1(&HeaderValue::from_static("plain")), "plain");
        assert_eq!(latin1(&HeaderValue::from_bytes(b"caf\xe9").unwrap()), "caf\u{e9}");
    }

    #[test]
    fn only_a_websocket_upgrade_on_a_get_is_one() {
        let websocket = map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "WebSocket")]);
        assert!(is_websocket_upgrade(&Method::GET, &websocket));
        assert!(!is_websocket_upgrade(&Method::POST, &websocket));
        assert!(!is_websocket_upgrade(&Method::GET, &map(&[("upgrade", "websocket")])));
        let h2c = map(&[("connection", "Upgrade, HTTP2-Settings"), ("upgrade", "h2c"), ("http2-settings", "AAMAAABk")]);
        assert!(!is_websocket_upgrade(&Method::GET, &h2c));
        assert!(!is_websocket_upgrade(&Method::GET, &map(&[("connection", "upgrade"), ("upgrade", "TLS/1.2")])));
    }
}
