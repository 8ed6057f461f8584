//! Health probes of an upstream endpoint: one probe (its `health` path answering 2xx or
//! 3xx, or, without a path, a TCP connection), and the active checks that probe each
//! endpoint of a pool while the gateway serves and take it out of (or back into) the
//! pool after `unhealthy_threshold` (`healthy_threshold`) results in a row.

use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::endpoint::Endpoint;
use crate::config::HealthCheck;

/// One probe, all of it within `timeout`.
pub async fn probe(uri: &Uri, path: Option<&str>, timeout: Duration) -> Result<(), String> {
    let authority = uri.authority().expect("upstream urls are validated to have a host and port");
    let answered = async {
        let stream = TcpStream::connect(authority.as_str()).await.map_err(|e| format!("connect: {e}"))?;
        let Some(path) = path else { return Ok(()) };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(http::header::HOST, authority.as_str())
            .body(Empty::<bytes::Bytes>::new())
            .expect("a valid request");
        let status = sender.send_request(req).await.map_err(|e| format!("GET {path}: {e}"))?.status();
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("GET {path} answered {status}"))
        }
    };
    tokio::time::timeout(timeout, answered).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// Probes `endpoint` every `check.interval` while it exists (the gateway holds it).
/// A process `isthmus run` has not seen ready yet is left to the supervisor.
pub async fn check(endpoint: Weak<Endpoint>, uri: Uri, check: HealthCheck) {
    let (mut passes, mut fails) = (0u32, 0u32);
    loop {
        tokio::time::sleep(check.interval).await;
        let Some(endpoint) = endpoint.upgrade() else { return };
        if !endpoint.is_running() {
            (passes, fails) = (0, 0);
            continue;
        }
        let result = probe(&uri, Some(&check.path), check.timeout).await;
        judge(&endpoint, &check, result, &mut passes, &mut fails);
    }
}

fn judge(endpoint: &Arc<Endpoint>, check: &HealthCheck, result: Result<(), String>, passes: &mut u32, fails: &mut u32) {
    let healthy = endpoint.is_healthy();
    match result {
        Ok(()) => {
            (*passes, *fails) = (passes.saturating_add(1), 0);
            if !healthy && *passes >= check.healthy_threshold {
                endpoint.set_healthy(true);
                tracing::info!(upstream = %endpoint.name(), passes = *passes, "endpoint healthy again: back in the pool");
            }
        }
        Err(why) => {
            (*passes, *fails) = (0, fails.saturating_add(1));
            if healthy && *fails >= check.unhealthy_threshold {
                endpoint.set_healthy(false);
                tracing::warn!(upstream = %endpoint.name(), fails = *fails, "endpoint unhealthy ({why}): out of the pool");
            } else {
                tracing::debug!(upstream = %endpoint.name(), "health check failed: {why}");
            }
        }
    }
}
