//! Waiting for a started upstream to answer: its `health` path with a 2xx or 3xx, or,
//! without one, a TCP connection.

use std::time::{Duration, Instant};

use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::limits;

/// Polls until the upstream is healthy. Logs the last failure every
/// [`limits::HEALTH_REPORT_EVERY`] so a process that never becomes ready says why.
pub async fn wait_healthy(name: &str, uri: &Uri, path: Option<&str>) -> Duration {
    let start = Instant::now();
    let mut interval = limits::HEALTH_POLL_MIN;
    let mut next_report = start + limits::HEALTH_REPORT_EVERY;
    loop {
        match probe(uri, path).await {
            Ok(()) => return start.elapsed(),
            Err(why) if Instant::now() >= next_report => {
                tracing::warn!(upstream = %name, waited_s = start.elapsed().as_secs(), "not ready yet: {why}");
                next_report += limits::HEALTH_REPORT_EVERY;
            }
            Err(why) => tracing::debug!(upstream = %name, "not ready yet: {why}"),
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(limits::HEALTH_POLL_MAX);
    }
}

async fn probe(uri: &Uri, path: Option<&str>) -> Result<(), String> {
    let authority = uri.authority().expect("upstream urls are validated to have a host and port");
    let connect = TcpStream::connect(authority.as_str());
    let stream = tokio::time::timeout(limits::HEALTH_TIMEOUT, connect)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let Some(path) = path else { return Ok(()) };
    let request = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(http::header::HOST, authority.as_str())
            .body(Empty::<bytes::Bytes>::new())
            .expect("a valid request");
        sender.send_request(req).await
    };
    let res = tokio::time::timeout(limits::HEALTH_TIMEOUT, request)
        .await
        .map_err(|_| format!("GET {path} timed out"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = res.status();
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    }
}
