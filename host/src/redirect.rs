//! The plain-HTTP listener beside a TLS one (`listen.tls.redirect_addr`): every
//! request is answered `308 Permanent Redirect` to the same path on the https
//! origin (308 keeps the method and body, unlike 301), except the files of an
//! external ACME client's HTTP-01 challenges, served from `acme_challenge_dir`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::accept;
use crate::body::{self, Body};
use crate::caps::{self, ConnectionCaps};
use crate::config::Timeouts;
use crate::limits;
use crate::upstream::idle::ClientIo;

const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

pub struct Redirect {
    /// The port HTTPS is served on; omitted from redirects when it is 443.
    https_port: u16,
    acme_challenge_dir: Option<PathBuf>,
    client_header_timeout: Duration,
    client_send_timeout: Duration,
    /// Shared with the public listener: a flood on port 80 counts against the same caps.
    caps: Arc<ConnectionCaps>,
}

impl Redirect {
    pub fn new(
        https_port: u16,
        acme_challenge_dir: Option<PathBuf>,
        timeouts: &Timeouts,
        caps: Arc<ConnectionCaps>,
    ) -> Redirect {
        Redirect {
            https_port,
            acme_challenge_dir,
            client_header_timeout: timeouts.client_header,
            client_send_timeout: timeouts.client_send,
            caps,
        }
    }

    /// Serve on `listener` until `shutdown` resolves (requests in flight are dropped:
    /// each is answered at once).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(self.client_header_timeout);
        let builder = Arc::new(builder);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = accept::next(&listener, "redirect") => accepted,
                () = &mut shutdown => return,
            };
            let Some((stream, slot)) = caps::admit_or_refuse(&self.caps, stream, peer, true) else { continue };
            let stream = ClientIo::new(stream, self.client_header_timeout, self.client_send_timeout);
            let this = self.clone();
            let service = service_fn(move |req| {
                let this = this.clone();
                async move { Ok::<_, std::convert::Infallible>(this.answer(&req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
                drop(slot);
            });
        }
    }

    async fn answer(&self, req: &Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        if let (Some(dir), Some(token)) = (&self.acme_challenge_dir, path.strip_prefix(ACME_PREFIX)) {
            if req.method() == Method::GET || req.method() == Method::HEAD {
                return challenge(dir, token).await;
            }
        }
        match self.location(req) {
            Some(location) => {
                let mut res = body::text(StatusCode::PERMANENT_REDIRECT, "this site is served over https");
                res.headers_mut().insert(LOCATION, location);
                res
            }
            None => body::text(StatusCode::BAD_REQUEST, "a request needs a valid Host"),
        }
    }

    /// `https://` + the requested host (its port replaced by the https one) + the
    /// path and query as sent.
    fn location(&self, req: &Request<Incoming>) -> Option<HeaderValue> {
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok())?;
        let authority: http::uri::Authority = host.parse().ok()?;
        let name = authority.host();
        let port = if self.https_port == 443 { String::new() } else { format!(":{}", self.https_port) };
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
        HeaderValue::from_str(&format!("https://{name}{port}{path_and_query}")).ok()
    }
}

/// A challenge file: its name is the token (base64url, so no path can be built from
/// it); anything else, or a missing file, is 404.
async fn challenge(dir: &std::path::Path, token: &str) -> Response<Body> {
    let valid = !token.is_empty()
        && token.len() <= 255
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let not_found = || body::text(StatusCode::NOT_FOUND, "no such challenge");
    if !valid {
        return not_found();
    }
    let path = dir.join(token);
    match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.is_file() && meta.len() <= limits::ACME_CHALLENGE_MAX_BYTES => {}
        _ => return not_found(),
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut res = Response::new(body::full(bytes));
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            res
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read an ACME challenge file");
            not_found()
        }
    }
}
