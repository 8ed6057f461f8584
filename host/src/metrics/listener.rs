//! The metrics listener: its own address (`[metrics] listen`, loopback by default),
//! never the public port. `GET /metrics` (OpenMetrics when the scraper asks for it,
//! else Prometheus' text format), `GET /livez` (200 while the runtime runs),
//! `GET /readyz` (200 when the gateway can serve, else 503 with why); anything else 404.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::Metrics;
use crate::accept;
use crate::body::{self, Body};
use crate::limits;

/// Whether the gateway can serve now: `Err` says why not (`/readyz` answers it).
pub type ReadyCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve until `shutdown` resolves; requests in flight then finish.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: ReadyCheck,
    shutdown: impl Future<Output = ()>,
) {
    let ready = Arc::new(ready);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = accept::next(&listener, "metrics") => accepted,
            () = &mut shutdown => break,
        };
        let (metrics, ready) = (metrics.clone(), ready.clone());
        let service = service_fn(move |req| {
            let res = answer(&req, &metrics, &ready);
            async move { Ok::<_, Infallible>(res) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits::METRICS_HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn answer(req: &Request<Incoming>, metrics: &Metrics, ready: &ReadyCheck) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return body::text(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get_all(ACCEPT)
                .iter()
                .any(|a| a.to_str().is_ok_and(|a| a.contains("application/openmetrics-text")));
            let mut res = Response::new(body::full(metrics.encode(openmetrics)));
            let content_type =
                if openmetrics { OPENMETRICS } else { prometheus_client::encoding::prometheus_text::CONTENT_TYPE };
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            res
        }
        "/livez" => body::text(StatusCode::OK, "ok"),
        "/readyz" => match ready() {
            Ok(()) => body::text(StatusCode::OK, "ready"),
            Err(why) => body::text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        _ => body::text(StatusCode::NOT_FOUND, "not found: /metrics, /livez and /readyz are served here"),
    }
}
