//! Who the client is, as far as the gateway may believe: the socket peer, or with
//! `listen.trusted_hops` > 0 what the trusted proxies in front of it say.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName};

use crate::upstream::headers::{list_items, Forwarded, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};

/// The connection a request came on.
#[derive(Debug)]
pub struct Peer {
    /// The socket peer's address, formatted once per connection.
    pub ip: Arc<str>,
    /// Whether the gateway terminated TLS on it.
    pub tls: bool,
}

impl Peer {
    /// The scheme the client used to reach the gateway itself.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientView {
    pub ip: String,
    /// What upstreams are told; its `proto` and `host` are the scheme and host the
    /// client reached the site by.
    pub forwarded: Forwarded,
}

impl ClientView {
    /// With `trusted_hops` = 0 only the socket peer is believed; with n > 0 the last n
    /// hops (the peer included) are proxies whose X-Forwarded-* headers are kept.
    pub fn new(headers: &HeaderMap, peer: &Peer, authority: &str, trusted_hops: usize) -> ClientView {
        let peer_ip = &*peer.ip;
        if trusted_hops == 0 {
            let forwarded = Forwarded {
                chain: peer_ip.to_owned(),
                proto: peer.scheme().to_owned(),
                host: authority.to_owned(),
                trusted: false,
            };
            return ClientView { ip: peer_ip.to_owned(), forwarded };
        }
        let mut chain: Vec<&str> = list_items(headers, &X_FORWARDED_FOR).collect();
        chain.push(peer_ip);
        let client = chain[chain.len().saturating_sub(trusted_hops + 1)];
        let last = |name: &HeaderName| {
            headers.get_all(name).iter().next_back().and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned())
        };
        let forwarded = Forwarded {
            chain: chain.join(", "),
            proto: last(&X_FORWARDED_PROTO)
                .filter(|s| s == "http" || s == "https")
                .unwrap_or_else(|| peer.scheme().to_owned()),
            host: last(&X_FORWARDED_HOST).unwrap_or_else(|| authority.to_owned()),
            trusted: true,
        };
        ClientView { ip: client.to_owned(), forwarded }
    }

    /// `http` or `https`, as the client sees the site.
    pub fn scheme(&self) -> &str {
        &self.forwarded.proto
    }

    /// The host the client asked for.
    pub fn host(&self) -> &str {
        &self.forwarded.host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::headers::map;

    fn peer(ip: &str, tls: bool) -> Peer {
        Peer { ip: ip.into(), tls }
    }

    #[test]
    fn untrusted_forwarded_headers_are_overwritten() {
        let h = map(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil")]);
        let view = ClientView::new(&h, &peer("127.0.0.1", false), "example.com", 0);
        assert_eq!((view.ip.as_str(), view.scheme(), view.host()), ("127.0.0.1", "http", "example.com"));
        assert_eq!(view.forwarded.chain, "127.0.0.1");
    }

    #[test]
    fn trusted_hops_pick_the_client_from_the_right() {
        let h = map(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2"), ("x-forwarded-proto", "https")]);
        let one = ClientView::new(&h, &peer("10.0.0.1", false), "example.com", 1);
        assert_eq!(one.ip, "2.2.2.2");
        assert_eq!(one.scheme(), "https");
        assert_eq!(one.forwarded.chain, "1.1.1.1, 2.2.2.2, 10.0.0.1");
        assert_eq!(ClientView::new(&h, &peer("10.0.0.1", false), "x", 2).ip, "1.1.1.1");
        assert_eq!(ClientView::new(&h, &peer("10.0.0.1", false), "x", 9).ip, "1.1.1.1");
    }

    #[test]
    fn tls_terminated_here_is_https_unless_a_trusted_proxy_says_otherwise() {
        let none = map(&[]);
        let direct = ClientView::new(&none, &peer("127.0.0.1", true), "example.com", 0);
        assert_eq!((direct.scheme(), direct.forwarded.proto.as_str()), ("https", "https"));
        let forged = map(&[("x-forwarded-proto", "http")]);
        assert_eq!(ClientView::new(&forged, &peer("127.0.0.1", true), "x", 0).scheme(), "https");
        assert_eq!(ClientView::new(&none, &peer("10.0.0.1", true), "x", 1).scheme(), "https");
        assert_eq!(ClientView::new(&forged, &peer("10.0.0.1", true), "x", 1).scheme(), "http");
    }
}
