//! Header hygiene for requests sent upstream and their responses: hop-by-hop headers
//! removed (RFC 9110 §7.6.1), X-Forwarded-* written by the gateway, and the headers the
//! gateway authenticates itself and its users with never taken from a client.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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
/// Carries the identity secret on the gateway's own calls to Django; removed from
/// every client request, so a client can never pose as the gateway.
pub static IDENTITY_SECRET: HeaderName = HeaderName::from_static("x-isthmus-secret");
/// Carries the signed identity on uploads the gateway judged; removed from every
/// client request, so only the gateway's own reaches an upstream.
pub static IDENTITY: HeaderName = HeaderName::from_static("x-isthmus-identity");
/// Other client-address headers an app might believe; dropped unless a hop is trusted.
const SPOOFABLE: [HeaderName; 2] = [HeaderName::from_static("forwarded"), HeaderName::from_static("x-real-ip")];

/// Remove hop-by-hop headers, including those the Connection header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
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

/// The protocol a request asks to switch to, when it is an HTTP/1.1 upgrade request.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if connection_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
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
    fn upgrade_needs_both_headers() {
        assert!(upgrade_protocol(&map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")])).is_some());
        assert!(upgrade_protocol(&map(&[("upgrade", "websocket")])).is_none());
    }
}
