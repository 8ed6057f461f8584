//! Header hygiene for proxied requests and responses: hop-by-hop headers removed
//! (RFC 9110 §7.6.1), X-Forwarded-* written by the gateway.

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

/// Who the client is, as far as the gateway may believe.
#[derive(Debug, Clone)]
pub struct ClientView {
    pub ip: String,
    pub scheme: String,
    pub host: String,
    /// Value to send as X-Forwarded-For.
    pub forwarded_for: String,
    /// Whether client-side forwarding headers came from a trusted proxy.
    trusted: bool,
}

impl ClientView {
    /// With `trusted_hops` = 0 only the socket peer is believed; with n > 0 the last n
    /// hops (the peer included) are proxies whose X-Forwarded-* headers are kept.
    pub fn new(headers: &HeaderMap, peer_ip: &str, authority: &str, trusted_hops: usize) -> ClientView {
        if trusted_hops == 0 {
            return ClientView {
                ip: peer_ip.to_owned(),
                scheme: "http".to_owned(),
                host: authority.to_owned(),
                forwarded_for: peer_ip.to_owned(),
                trusted: false,
            };
        }
        let mut chain: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        chain.push(peer_ip);
        let client = chain[chain.len().saturating_sub(trusted_hops + 1)];
        let last = |name: &HeaderName| {
            headers.get_all(name).iter().next_back().and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned())
        };
        ClientView {
            ip: client.to_owned(),
            scheme: last(&X_FORWARDED_PROTO).filter(|s| s == "http" || s == "https").unwrap_or_else(|| "http".to_owned()),
            host: last(&X_FORWARDED_HOST).unwrap_or_else(|| authority.to_owned()),
            forwarded_for: chain.join(", "),
            trusted: true,
        }
    }

    /// Overwrite the X-Forwarded-* headers with what the gateway believes.
    pub fn write(&self, headers: &mut HeaderMap) {
        if !self.trusted {
            for name in &SPOOFABLE {
                headers.remove(name);
            }
        }
        for (name, value) in [(&X_FORWARDED_FOR, &self.forwarded_for), (&X_FORWARDED_PROTO, &self.scheme), (&X_FORWARDED_HOST, &self.host)] {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[("connection", "keep-alive, x-secret"), ("x-secret", "1"), ("te", "trailers"), ("keep-alive", "5"), ("accept", "*/*")]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn untrusted_forwarded_headers_are_overwritten() {
        let h = map(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil")]);
        let view = ClientView::new(&h, "127.0.0.1", "example.com", 0);
        assert_eq!((view.ip.as_str(), view.scheme.as_str(), view.host.as_str()), ("127.0.0.1", "http", "example.com"));
        assert_eq!(view.forwarded_for, "127.0.0.1");
    }

    #[test]
    fn trusted_hops_pick_the_client_from_the_right() {
        let h = map(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2"), ("x-forwarded-proto", "https")]);
        let one = ClientView::new(&h, "10.0.0.1", "example.com", 1);
        assert_eq!(one.ip, "2.2.2.2");
        assert_eq!(one.scheme, "https");
        assert_eq!(one.forwarded_for, "1.1.1.1, 2.2.2.2, 10.0.0.1");
        assert_eq!(ClientView::new(&h, "10.0.0.1", "x", 2).ip, "1.1.1.1");
        assert_eq!(ClientView::new(&h, "10.0.0.1", "x", 9).ip, "1.1.1.1");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(upgrade_protocol(&map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")])).is_some());
        assert!(upgrade_protocol(&map(&[("upgrade", "websocket")])).is_none());
    }
}
