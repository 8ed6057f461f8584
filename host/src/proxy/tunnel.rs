//! Upgraded connections (WebSocket and other `Upgrade:` protocols): once both sides
//! switched protocols, bytes are copied both ways until either side closes, the
//! tunnel is idle too long, or the gateway shuts down.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::idle::{ActiveIo, Activity};

pub async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    idle: Duration,
    shutdown: CancellationToken,
    upstream_name: String,
    bridge: Option<crate::bridge::Session>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(upstream = %upstream_name, error = %e, "upgrade did not complete");
            return;
        }
    };
    if let Some(session) = bridge {
        return crate::bridge::relay(client, upstream, session, idle, shutdown).await;
    }
    let activity = Activity::new();
    let mut client = ActiveIo::new(TokioIo::new(client), activity.clone());
    let mut upstream = TokioIo::new(upstream);
    tokio::select! {
        res = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = res {
                tracing::debug!(upstream = %upstream_name, error = %e, "tunnel closed with an error");
            }
        }
        () = activity.idle_for(idle) => {
            tracing::info!(upstream = %upstream_name, ?idle, "tunnel closed: idle timeout");
        }
        () = shutdown.cancelled() => {
            tracing::debug!(upstream = %upstream_name, "tunnel closed: shutdown");
        }
    }
}
