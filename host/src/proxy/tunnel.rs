//! A plain tunnel: once both sides switched protocols, bytes are copied both ways until
//! either side closes, the tunnel is idle too long, or the gateway shuts down.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::upstream::idle::{ActiveIo, Activity};
use crate::upstream::Upstreams;

pub async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    idle: Duration,
    shutdown: CancellationToken,
    upstream_name: String,
) {
    let Some((client, upstream)) = Upstreams::join(client, upstream, &upstream_name).await else { return };
    let activity = Activity::default();
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
