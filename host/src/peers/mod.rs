//! The other gateways of a site (`[redis]`): they share nothing but a Redis, over which
//! each login or logout one of them sees (`identity`) is told at once to the others,
//! whose `Listener` drops the session's cached identity and asks their open pages of it
//! to re-read their session. Messages name sessions and browsers by keyed digests and
//! are signed (`wire`): the channel never carries a usable session id.
//!
//! Redis is not needed to serve: the link is one task that connects (two connections:
//! a subscription, and one to publish on), reconnects with backoff when it fails, and
//! says so once in the log (warn when it goes down, info when it is back) and in the
//! `isthmus_redis_up` gauge. While it is down each gateway serves from its own cache,
//! whose entries live `bridge.identity_ttl` at most; what it misses meanwhile is lost
//! (pub/sub keeps no history), so that TTL bounds how long a change goes unseen.

mod wire;

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncCommands, AsyncConnectionConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use wire::Change;
use wire::Wire;

use crate::config::RedisConfig;
use crate::limits;
use crate::metrics::{PeerMessage, RedisSeries};

#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis closed the subscription")]
    Closed,
    #[error("a message that is not a gateway's")]
    Malformed,
    #[error("a message not signed by this site's gateways")]
    Forged,
}

/// What hears the other gateways' changes.
pub trait Listener: Send + Sync + 'static {
    fn heard(&self, change: &Change);
}

/// This gateway's end of the link; the task behind it stops with `shutdown`.
pub struct Link {
    queue: mpsc::Sender<Change>,
    series: RedisSeries,
    stop: CancellationToken,
}

impl Link {
    /// Spawn the link's task on the current tokio runtime, if any (`isthmus check`
    /// builds the gateway outside one and serves nothing). `secret` signs the messages;
    /// `listener` is held weakly: the task ends when what it tells is gone.
    pub fn start(config: &RedisConfig, secret: &[u8], listener: Weak<dyn Listener>, series: &RedisSeries) -> Link {
        let (queue, changes) = mpsc::channel(limits::REDIS_QUEUE);
        let stop = CancellationToken::new();
        // The URL was checked when the config was read.
        let client = redis::Client::open(config.url.expose_str()).expect("a valid Redis URL");
        let task = Task {
            client,
            channel: config.channel.clone(),
            wire: Wire::new(secret),
            listener,
            series: series.clone(),
            stop: stop.clone(),
            rejections_logged: None,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(task.run(changes));
        }
        Link { queue, series: series.clone(), stop }
    }

    /// Tell the other gateways of `change`; never waits.
    pub fn tell(&self, change: Change) {
        if self.queue.try_send(change).is_err() {
            self.series.message(PeerMessage::Dropped);
        }
    }

    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

struct Task {
    client: redis::Client,
    channel: String,
    wire: Wire,
    listener: Weak<dyn Listener>,
    series: RedisSeries,
    stop: CancellationToken,
    /// When a rejected message was last logged.
    rejections_logged: Option<Instant>,
}

/// The link's two connections, subscribed.
struct Connected {
    publish: MultiplexedConnection,
    subscription: PubSubSink,
    messages: PubSubStream,
}

/// Why the link stopped serving.
enum Ended {
    /// Shutdown, or the gateway is gone.
    Stopped,
    Failed(PeersError),
}

impl Task {
    async fn run(mut self, mut changes: mpsc::Receiver<Change>) {
        let mut retry = limits::REDIS_RECONNECT_MIN;
        // What the log last said: only a change of state is logged.
        let mut logged_up = None;
        loop {
            let connected = tokio::select! {
                connected = self.connect() => connected,
                () = self.stop.cancelled() => return,
            };
            let error = match connected {
                Ok(connected) => {
                    self.series.link(true);
                    tracing::info!(target: "isthmus::peers", channel = %self.channel, "Redis link up: logins and logouts are shared with the other gateways");
                    logged_up = Some(true);
                    retry = limits::REDIS_RECONNECT_MIN;
                    let ended = self.serve(connected, &mut changes).await;
                    self.series.link(false);
                    match ended {
                        Ended::Stopped => return,
                        Ended::Failed(e) => e,
                    }
                }
                Err(e) => e,
            };
            if logged_up != Some(false) {
                tracing::warn!(target: "isthmus::peers", channel = %self.channel, error = %error, "Redis link down: serving with the local identity cache and its TTL; reconnecting");
                logged_up = Some(false);
            } else {
                tracing::debug!(target: "isthmus::peers", error = %error, ?retry, "Redis still unreachable");
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = self.stop.cancelled() => return,
            }
            retry = (retry * 2).min(limits::REDIS_RECONNECT_MAX);
        }
    }

    async fn connect(&self) -> Result<Connected, PeersError> {
        let timeout = Some(limits::REDIS_TIMEOUT);
        let config = AsyncConnectionConfig::new().set_connection_timeout(timeout).set_response_timeout(timeout);
        let publish = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        let (mut subscription, messages) = within(self.client.get_async_pubsub()).await?.split();
        within(subscription.subscribe(&self.channel)).await?;
        Ok(Connected { publish, subscription, messages })
    }

    /// Publish this gateway's changes and hear the others' until the link fails or stops.
    async fn serve(&mut self, mut link: Connected, changes: &mut mpsc::Receiver<Change>) -> Ended {
        let mut ping = tokio::time::interval_at(Instant::now() + limits::REDIS_PING_EVERY, limits::REDIS_PING_EVERY);
        loop {
            let step = tokio::select! {
                () = self.stop.cancelled() => return Ended::Stopped,
                message = link.messages.next() => match message {
                    Some(message) => {
                        self.hear(message.get_payload_bytes());
                        Ok(())
                    }
                    None => Err(PeersError::Closed),
                },
                change = changes.recv() => match change {
                    Some(change) => self.publish(&mut link.publish, &change).await,
                    None => return Ended::Stopped,
                },
                _ = ping.tick() => Self::ping(&mut link).await,
            };
            if let Err(e) = step {
                return Ended::Failed(e);
            }
        }
    }

    async fn publish(&self, connection: &mut MultiplexedConnection, change: &Change) -> Result<(), PeersError> {
        let _receivers: usize = connection.publish(&self.channel, self.wire.seal(change)).await?;
        self.series.message(PeerMessage::Sent);
        Ok(())
    }

    /// Both connections, so that one gone silent is noticed.
    async fn ping(link: &mut Connected) -> Result<(), PeersError> {
        within(link.subscription.ping::<redis::Value>()).await?;
        let _: String = link.publish.ping().await?;
        Ok(())
    }

    /// Another gateway's message: applied, or (not a gateway's) counted and logged now
    /// and then. Never fails the link: whoever can publish on the channel cannot cut it.
    fn hear(&mut self, message: &[u8]) {
        match self.wire.open(message) {
            Ok(None) => {}
            Ok(Some(change)) => {
                if let Some(listener) = self.listener.upgrade() {
                    listener.heard(&change);
                    self.series.message(PeerMessage::Received);
                }
            }
            Err(e) => {
                self.series.message(PeerMessage::Rejected);
                let now = Instant::now();
                if self.rejections_logged.is_none_or(|at| now - at >= limits::REDIS_REJECT_LOG_EVERY) {
                    self.rejections_logged = Some(now);
                    tracing::warn!(target: "isthmus::peers", error = %e, channel = %self.channel, "ignored a message on the Redis channel (another site's gateways, with another identity_secret, on the same channel?)");
                }
            }
        }
    }
}

/// `future` within `limits::REDIS_TIMEOUT`.
async fn within<T>(future: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, PeersError> {
    match tokio::time::timeout(limits::REDIS_TIMEOUT, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(PeersError::Timeout(limits::REDIS_TIMEOUT)),
    }
}
