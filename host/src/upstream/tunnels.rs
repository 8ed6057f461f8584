//! Upgraded connections outlive the request that opened them: every tunnel (plain or
//! bridged) is tracked here, so that shutdown can wait for them, then end them; and
//! counted under `listen.max_websockets`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{UpstreamError, UpstreamSlot};
use crate::caps::Refusals;
use crate::metrics::{Metrics, TunnelKind};

pub struct Tunnels {
    tasks: TaskTracker,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    /// One permit per tunnel open or being set up.
    websockets: Arc<Semaphore>,
    refusals: Refusals,
}

/// What a tunnel holds while it runs: its place under `listen.max_websockets` and its
/// upstream connection's slot under `upstreams.<name>.max_connections`.
pub struct TunnelSlot {
    pub(super) _websocket: OwnedSemaphorePermit,
    pub(super) _upstream: Option<UpstreamSlot>,
}

impl Tunnels {
    pub fn new(max_websockets: usize, metrics: Arc<Metrics>) -> Tunnels {
        Tunnels {
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            websockets: Arc::new(Semaphore::new(max_websockets)),
            refusals: Refusals::new("listen.max_websockets", &metrics),
            metrics,
        }
    }

    /// A place for one more tunnel, taken before the upgrade is sent upstream.
    pub(super) fn reserve(&self) -> Result<OwnedSemaphorePermit, UpstreamError> {
        self.websockets.clone().try_acquire_owned().map_err(|_| {
            self.refusals.refused("an upgrade");
            UpstreamError::Saturated { limit: self.refusals.limit().to_owned() }
        })
    }

    /// Run a tunnel, counted open as `kind` while it runs and holding `slot`; `run`
    /// gets the token that is cancelled when the grace period ends.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(
        &self,
        kind: TunnelKind,
        slot: TunnelSlot,
        run: impl FnOnce(CancellationToken) -> F,
    ) {
        let open = self.metrics.tunnel_opened(kind);
        let tunnel = run(self.shutdown.clone());
        self.tasks.spawn(async move {
            tunnel.await;
            drop((open, slot));
        });
    }

    /// Whether shutdown began (no new tunnel is accepted).
    pub fn is_closed(&self) -> bool {
        self.tasks.is_closed()
    }

    /// Stop accepting tunnels, give open ones `grace` to finish, then end them.
    pub async fn shutdown(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            self.shutdown.cancel();
            self.tasks.wait().await;
        }
    }
}
