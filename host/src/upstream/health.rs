//! Health probes of an upstream endpoint: one probe (its `health` path answering 2xx or
//! 3xx, or, without a path, a connection accepted, over TCP or its Unix socket), and the active checks that probe each
//! endpoint of a pool while the gateway serves and take it out of (or back into) the
//! pool after `unhealthy_threshold` (`healthy_threshold`) results in a row. And the
//! one check a pool of Reflex endpoints needs before it may serve: that its replicas
//! share their state through Redis.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::address::Address;
use super::endpoint::Endpoint;
use crate::config::HealthCheck;
use crate::limits;

/// One probe, all of it within `timeout`.
pub async fn probe(address: &Address, path: Option<&str>, timeout: Duration) -> Result<(), String> {
    let Some(path) = path else {
        return match tokio::time::timeout(timeout, address.connect()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("connect: {e}")),
            Err(_) => Err(format!("no connection within {timeout:?}")),
        };
    };
    let (status, _) = get(address, path, timeout).await?;
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    }
}

/// `GET path` of an endpoint: the status and (up to 64 KiB of) the body, all within `timeout`.
async fn get(address: &Address, path: &str, timeout: Duration) -> Result<(StatusCode, Bytes), String> {
    let answered = async {
        let stream = address.connect().await.map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(http::header::HOST, address.host_header())
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let res = sender.send_request(req).await.map_err(|e| format!("GET {path}: {e}"))?;
        let status = res.status();
        let body = Limited::new(res.into_body(), 64 * 1024).collect().await.map_err(|e| format!("GET {path}: {e}"))?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(timeout, answered).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// What a pool's `/_health` says about the state its endpoints keep.
#[derive(Debug, PartialEq, Eq)]
pub enum SharedState {
    /// Not a Reflex backend (no Reflex health answer): nothing to check.
    NotReflex,
    /// Reflex, with Redis: its replicas share state.
    Redis,
    /// Reflex without Redis: each replica keeps its own state.
    Missing,
}

/// Reads Reflex's `/_health` answer: `{"status": …, "db": …, "redis": …}`, where
/// `redis` is there only when Reflex uses Redis (reflex/app.py `health`, 0.10.1).
pub fn shared_state(status: StatusCode, body: &[u8]) -> SharedState {
    let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice(body) else { return SharedState::NotReflex };
    let reflex = matches!(status, StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE)
        && answer.get("status").is_some_and(serde_json::Value::is_boolean);
    match (reflex, answer.contains_key("redis")) {
        (false, _) => SharedState::NotReflex,
        (true, true) => SharedState::Redis,
        (true, false) => SharedState::Missing,
    }
}

/// Asks the pool's endpoints for `/_health` until one answers, and returns what it says.
pub async fn await_shared_state(addresses: &[Address]) -> SharedState {
    loop {
        for address in addresses {
            if let Ok((status, body)) = get(address, "/_health", limits::HEALTH_TIMEOUT).await {
                return shared_state(status, &body);
            }
        }
        tokio::time::sleep(limits::HEALTH_POLL_MAX).await;
    }
}

/// Probes `endpoint` every `check.interval` while it exists (the gateway holds it).
/// A process `isthmus run` has not seen ready yet is left to the supervisor.
pub async fn check(endpoint: Weak<Endpoint>, address: Address, check: HealthCheck) {
    let (mut passes, mut fails) = (0u32, 0u32);
    loop {
        tokio::time::sleep(check.interval).await;
        let Some(endpoint) = endpoint.upgrade() else { return };
        if !endpoint.is_running() {
            (passes, fails) = (0, 0);
            continue;
        }
        let result = probe(&address, Some(&check.path), check.timeout).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflex_health_answers_say_whether_replicas_share_state() {
        let ok = StatusCode::OK;
        // reflex/app.py `health`: `redis` only when Redis is used; 503 when something is down.
        assert_eq!(shared_state(ok, br#"{"status": true}"#), SharedState::Missing);
        assert_eq!(shared_state(ok, br#"{"status": true, "db": true}"#), SharedState::Missing);
        assert_eq!(shared_state(ok, br#"{"status": true, "redis": true}"#), SharedState::Redis);
        assert_eq!(
            shared_state(StatusCode::SERVICE_UNAVAILABLE, br#"{"status": false, "redis": false}"#),
            SharedState::Redis
        );
        // Anything else is not Reflex: Django's 404 page, another app's JSON.
        assert_eq!(shared_state(StatusCode::NOT_FOUND, b"<h1>Not Found</h1>"), SharedState::NotReflex);
        assert_eq!(shared_state(StatusCode::NOT_FOUND, br#"{"status": true}"#), SharedState::NotReflex);
        assert_eq!(shared_state(ok, br#"{"status": "ok"}"#), SharedState::NotReflex);
        assert_eq!(shared_state(ok, b"[]"), SharedState::NotReflex);
    }
}
