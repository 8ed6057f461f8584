//! Waiting for a started upstream endpoint to answer: its `health` path with a 2xx or
//! 3xx, or, without one, a connection accepted (over TCP or its Unix socket).

use std::time::{Duration, Instant};

use crate::config::Address;
use crate::limits;
use crate::upstream::health::probe;

/// Polls until the endpoint is healthy. Logs the last failure every
/// [`limits::HEALTH_REPORT_EVERY`] so a process that never becomes ready says why.
pub async fn wait_healthy(name: &str, address: &Address, path: Option<&str>) -> Duration {
    let start = Instant::now();
    let mut interval = limits::HEALTH_POLL_MIN;
    let mut next_report = start + limits::HEALTH_REPORT_EVERY;
    loop {
        match probe(address, path, limits::HEALTH_TIMEOUT).await {
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
