//! Upgraded connections outlive the request that opened them: every tunnel (plain or
//! bridged) is tracked here, so that shutdown can wait for them, then end them.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Default)]
pub struct Tunnels {
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Tunnels {
    /// Run a tunnel; `run` gets the token that is cancelled when the grace period ends.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, run: impl FnOnce(CancellationToken) -> F) {
        self.tasks.spawn(run(self.shutdown.clone()));
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
