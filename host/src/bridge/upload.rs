//! Uploads to Reflex's upload endpoint, treated as events: the Django user resolved from
//! the request's session cookie, the bridge policy asked about the upload handler
//! (`Reflex-Event-Handler`) before any of the body is read, and the signed identity
//! attached as `X-Isthmus-Identity` (any copy the client sent is removed with the rest
//! of the gateway's headers). The body is streamed, never buffered: it must declare its
//! length (every browser's upload does), at most `bridge.max_upload_bytes`.

use std::sync::Arc;

use base64::Engine as _;
use http::header;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use super::Bridge;
use crate::body::{self, Body};
use crate::identity::Origin;
use crate::metrics::BridgeKind;
use crate::policy::{BridgeEvent, EventKind, Forward, Refusal, RouteRequest, Verdict};
use crate::proxy;
use crate::upstream::headers::IDENTITY;
use crate::upstream::{Hop, UpstreamError, Upstreams};

/// Reflex's upload headers: the handler to run and the page's client token.
const HANDLER: &str = "reflex-event-handler";
const CLIENT_TOKEN: &str = "reflex-client-token";

impl Bridge {
    /// Judge an upload and, allowed, stream it to Reflex with the signed identity.
    pub async fn upload(
        &self,
        upstreams: &Upstreams,
        req: Request<Incoming>,
        forward: &Forward,
        hop: &Hop<'_>,
        route: &Arc<RouteRequest>,
        session_cookie: Option<&str>,
    ) -> Result<Response<Body>, UpstreamError> {
        let headers = req.headers();
        let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        match length {
            None => return Ok(body::text(StatusCode::LENGTH_REQUIRED, "an upload must declare its Content-Length")),
            Some(n) if n > self.max_upload_bytes => {
                return Ok(body::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("uploads are limited to {} bytes", self.max_upload_bytes),
                ))
            }
            Some(_) => {}
        }
        let Some(handler) = headers.get(HANDLER).and_then(|v| v.to_str().ok()).filter(|h| !h.is_empty()) else {
            return Ok(body::text(StatusCode::BAD_REQUEST, "an upload must name its handler (Reflex-Event-Handler)"));
        };
        let origin = Origin { host: route.authority.clone(), scheme: route.scheme.clone() };
        let Some(who) = self.identity(session_cookie, &origin).await else {
            return Ok(refused(&super::identity_unavailable()));
        };
        // The page the upload comes from, as the browser says (only to send the user
        // back to it after logging in): the Referer's path and query.
        let page =
            headers.get(header::REFERER).and_then(|v| v.to_str().ok()).and_then(referer_page).unwrap_or_default();
        let (page_path, page_query) = page.split_once('?').unwrap_or((&page, ""));
        let ev = Arc::new(BridgeEvent {
            kind: EventKind::Upload,
            name: handler.to_owned(),
            payload_json: "{}".into(),
            route: page_path.to_owned(),
            query: page_query.to_owned(),
            // The request's span, which the upload is sent upstream under.
            traceparent: hop.span.traceparent().to_str().ok().map(str::to_owned),
        });
        match self.verdict(BridgeKind::Upload, |policy| policy.on_event(&ev, &who)) {
            Verdict::Allow(context) => {
                let query = query_object(page_query);
                let mut last = None;
                let signed = self.injector.signed(&mut last, &who, Some(&query), context);
                let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed);
                // Set after the client's own copy is removed with the gateway's other headers.
                let mut forward = forward.clone();
                forward.set_headers.push((IDENTITY.as_str().to_owned(), value));
                let outbound = upstreams.outbound(&forward, route)?;
                proxy::forward(upstreams, req, outbound, hop).await
            }
            Verdict::Refuse(refusal) => {
                tracing::info!(target: "isthmus::bridge", handler = %ev.name, user = %who.identity.username, %refusal, "upload refused");
                if let (Refusal::LoginRequired(url), Some(token)) =
                    (&refusal, req.headers().get(CLIENT_TOKEN).and_then(|v| v.to_str().ok()))
                {
                    // The page learns it as for an event: it goes to the login page.
                    let location = Refusal::login_location(url, if page.is_empty() { "/" } else { &page });
                    let script = format!("window.location.assign({})", Value::String(location));
                    self.identities.browsers.run_in_page(token, script);
                }
                Ok(refused(&refusal))
            }
            Verdict::Close(reason) => Ok(refused(&Refusal::Forbidden(reason))),
        }
    }
}

/// 403 naming the refusal (`login_required:<url>` or `forbidden:<reason>`).
fn refused(refusal: &Refusal) -> Response<Body> {
    body::text(StatusCode::FORBIDDEN, format!("upload refused ({refusal})"))
}

/// The path and query of a Referer URL (`https://host/shop?x=1` → `/shop?x=1`).
fn referer_page(referer: &str) -> Option<String> {
    let uri: http::Uri = referer.parse().ok()?;
    uri.path_and_query().map(|pq| pq.as_str().to_owned()).filter(|p| p.starts_with('/'))
}

/// A query string as Reflex's `router_data.query` object (last value of a key wins).
fn query_object(query: &str) -> Box<serde_json::value::RawValue> {
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode =
            |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        map.insert(decode(k), Value::String(decode(v)));
    }
    serde_json::value::to_raw_value(&map).expect("a map of strings")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_comes_from_the_referer() {
        assert_eq!(referer_page("http://127.0.0.1:3000/shop?page=2").as_deref(), Some("/shop?page=2"));
        assert_eq!(referer_page("https://x.example/").as_deref(), Some("/"));
        assert_eq!(referer_page("not a url"), None);
        assert_eq!(query_object("a=1&b=x+y&a=2&c").get(), r#"{"a":"2","b":"x y","c":""}"#);
    }
}
