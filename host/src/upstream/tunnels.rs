//! Upgraded connections outlive the request that opened them: every tunnel (plain or
//! bridged) is tracked here, so that shutdown can wait for them, then end them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{Metrics, TunnelKind};

pub struct Tunnels {
    tasks: TaskTracker,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
}

impl Tunnels {
    pub fn new(metrics: Arc<Metrics>) -> Tunnels {
        Tunnels { tasks: TaskTracker::new(), shutdown: CancellationToken::new(), metrics }
    }

    /// Run a tunnel, counted open as `kind` while it runs; `run` gets the token that is
    /// cancelled when the grace period ends.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(
        &self,
        kind: TunnelKind,
        run: impl FnOnce(CancellationToken) -> F,
    ) {
        let open = self.metrics.tunnel_opened(kind);
        let tunnel = run(self.shutdown.clone());
        self.tasks.spawn(async move {
            tunnel.await;
            drop(open);
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
