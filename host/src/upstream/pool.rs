//! Keep-alive HTTP/1.1 connections to one upstream, owned by the proxy. A request
//! takes the most recently used idle connection (or opens one); the response body
//! hands the connection back once it has been read to the end. Per request this is
//! one short lock, no pool-key hashing and no task spawned, which the general-purpose
//! client in hyper-util could not offer. Every connection holds one of the upstream's
//! `max_connections` slots while it is open, idle or a tunnel: a request finding none
//! waits for a connection to come back or close, up to the connect timeout.

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::idle::IdleTimeout;
use super::UpstreamError;
use crate::body::Body;
use crate::caps::Refusals;
use crate::metrics::Metrics;

/// How connections to an upstream are opened and kept.
#[derive(Clone, Copy)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    /// An idle connection unused for this long is closed.
    pub idle_timeout: Duration,
    pub max_idle: usize,
    /// Connections open at once: in use, idle and tunnels.
    pub max_connections: usize,
}

/// One upstream's address and its idle connections.
pub struct Upstream {
    name: String,
    host: String,
    port: u16,
    /// Sent when a request carries no Host of its own.
    host_header: HeaderValue,
    settings: PoolSettings,
    idle: Mutex<Idle>,
    /// One permit per connection open.
    slots: Arc<Semaphore>,
    /// Told when a connection comes back idle, for requests waiting on a slot.
    freed: Notify,
    /// `isthmus_upstream_connect_errors_total` of this upstream.
    connect_errors: Counter,
    /// Requests refused because no slot came free in time.
    refusals: Refusals,
}

#[derive(Default)]
struct Idle {
    /// Most recently released last.
    conns: Vec<IdleConn>,
    /// Whether a task is closing expired connections.
    sweeping: bool,
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

/// A connection and the slot it holds.
struct Conn {
    sender: SendRequest<Body>,
    slot: OwnedSemaphorePermit,
}

/// The slot of a connection that became a tunnel, in its 101 response's extensions:
/// the tunnel holds it until it ends.
#[derive(Clone)]
pub struct UpstreamSlot {
    _held: Arc<OwnedSemaphorePermit>,
}

impl Upstream {
    pub fn new(
        name: &str,
        authority: &Authority,
        settings: PoolSettings,
        connect_errors: Counter,
        metrics: &Metrics,
    ) -> Arc<Upstream> {
        // IPv6 literals come bracketed in an authority; the resolver wants them bare.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        Arc::new(Upstream {
            name: name.to_owned(),
            host,
            port: authority.port_u16().unwrap_or(80),
            host_header: HeaderValue::from_str(authority.as_str()).expect("an authority is a valid header value"),
            settings,
            idle: Mutex::new(Idle::default()),
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            freed: Notify::new(),
            connect_errors,
            refusals: Refusals::new(format!("upstreams.{name}.max_connections"), metrics),
        })
    }

    /// Send `req` (origin-form URI) and return the response. A request that a reused
    /// connection hands back unsent, because the upstream closed it meanwhile, goes out
    /// on another connection; a request that was sent is never sent twice.
    pub async fn send(self: &Arc<Self>, mut req: Request<Body>) -> Result<Response<PooledBody>, UpstreamError> {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, self.host_header.clone());
        }
        loop {
            let (Conn { mut sender, slot }, reused) = self.obtain().await?;
            match sender.try_send_request(req).await {
                Ok(mut res) => {
                    // A switched connection belongs to the tunnel now, never to the pool.
                    let lease = if res.status() == StatusCode::SWITCHING_PROTOCOLS {
                        res.extensions_mut().insert(UpstreamSlot { _held: Arc::new(slot) });
                        None
                    } else {
                        Some(Lease { conn: Conn { sender, slot }, pool: self.clone() })
                    };
                    return Ok(res.map(|inner| PooledBody { inner, lease }));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(self.failed(&e.into_error())),
                },
            }
        }
    }

    /// A connection to send on (`true`: reused): an idle one, else a new one in a free
    /// slot. With every slot taken, wait for a connection to come back or close, up to
    /// the connect timeout: then the request is refused, never queued for longer.
    async fn obtain(&self) -> Result<(Conn, bool), UpstreamError> {
        let deadline = Instant::now() + self.settings.connect_timeout;
        loop {
            // Listening before looking: a connection given back in between still wakes us.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(conn) = self.checkout(false) {
                return Ok((conn, true));
            }
            let slot = match self.slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                // Every slot taken, but one idle connection is still finishing its last
                // exchange (given back as its body ended, before hyper marks it ready):
                // it is the one to wait for.
                Err(_) if let Some(mut conn) = self.checkout(true) => {
                    match tokio::time::timeout_at(deadline, conn.sender.ready()).await {
                        Ok(Ok(())) => return Ok((conn, true)),
                        Ok(Err(_)) => continue,
                        Err(_) => return Err(self.saturated()),
                    }
                }
                Err(_) => tokio::select! {
                    slot = self.slots.clone().acquire_owned() => slot.expect("the pool's semaphore is never closed"),
                    () = &mut freed => continue,
                    () = tokio::time::sleep_until(deadline) => return Err(self.saturated()),
                },
            };
            return Ok((Conn { sender: self.connect().await?, slot }, false));
        }
    }

    /// No slot came free in time: refused, counted and logged.
    fn saturated(&self) -> UpstreamError {
        self.refusals.refused(format_args!("a request to upstream `{}`", self.name));
        UpstreamError::Saturated { limit: self.refusals.limit().to_owned() }
    }

    /// The most recently used idle connection that is ready (or, with `pending`, one
    /// still finishing its last exchange).
    fn checkout(&self, pending: bool) -> Option<Conn> {
        let mut idle = self.idle.lock().expect("pool lock");
        let timeout = self.settings.idle_timeout;
        let usable = |c: &IdleConn| {
            !c.conn.sender.is_closed() && (pending || c.conn.sender.is_ready()) && c.since.elapsed() < timeout
        };
        if let Some(i) = idle.conns.iter().rposition(usable) {
            return Some(idle.conns.remove(i).conn);
        }
        // None usable: the closed and the expired give their slots back now, not at the next sweep.
        idle.conns.retain(|c| !c.conn.sender.is_closed() && c.since.elapsed() < timeout);
        None
    }

    fn release(self: &Arc<Self>, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.conns.len() >= self.settings.max_idle {
            return;
        }
        if !idle.sweeping {
            // Only while connections are idle does a timer run; dropped outside a runtime, nothing is kept.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
            runtime.spawn(sweep(Arc::downgrade(self), self.settings.idle_timeout));
            idle.sweeping = true;
        }
        idle.conns.push(IdleConn { conn, since: Instant::now() });
        drop(idle);
        self.freed.notify_one();
    }

    async fn connect(&self) -> Result<SendRequest<Body>, UpstreamError> {
        let timeout = self.settings.connect_timeout;
        let connect_timeout = || UpstreamError::ConnectTimeout { upstream: self.name.clone(), timeout };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect((self.host.as_str(), self.port))).await {
            Ok(Ok(stream)) => stream,
            failed => {
                self.connect_errors.inc();
                return Err(match failed {
                    Ok(Err(e)) if e.kind() != std::io::ErrorKind::TimedOut => {
                        UpstreamError::Unreachable { upstream: self.name.clone(), reason: e.to_string() }
                    }
                    _ => connect_timeout(),
                });
            }
        };
        // Request heads are small writes answered at once: Nagle would hold them back.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| self.failed(&e))?;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(upstream = %name, error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn failed(&self, error: &hyper::Error) -> UpstreamError {
        // The request body failed while it was sent: the client's doing (a malformed chunk,
        // a body cut short, too slow a sender), never the upstream's.
        if let Some(cause) = error.is_user().then(|| std::error::Error::source(error)).flatten() {
            let upstream = self.name.clone();
            return match cause.downcast_ref::<IdleTimeout>() {
                Some(IdleTimeout(timeout)) => UpstreamError::ClientBodyTimeout(*timeout),
                None => UpstreamError::ClientBody { upstream, reason: cause.to_string() },
            };
        }
        // The innermost IO error says most ("Connection reset by peer").
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                reason = io.to_string();
            }
            source = e.source();
        }
        UpstreamError::Failed { upstream: self.name.clone(), reason }
    }
}

/// Close idle connections unused for `idle_timeout`, until none is left.
async fn sweep(pool: Weak<Upstream>, idle_timeout: Duration) {
    loop {
        tokio::time::sleep(idle_timeout).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock().expect("pool lock");
        idle.conns.retain(|c| !c.conn.sender.is_closed() && c.since.elapsed() < idle_timeout);
        if idle.conns.is_empty() {
            idle.sweeping = false;
            return;
        }
    }
}

struct Lease {
    conn: Conn,
    pool: Arc<Upstream>,
}

/// An upstream response body. Read to the end, it returns its connection to the pool;
/// dropped early, the connection closes (hyper does not reuse a half-read one).
pub struct PooledBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some(Lease { conn, pool }) = self.lease.take() {
            pool.release(conn);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => this.give_back(),
            Some(Ok(_)) if this.inner.is_end_stream() => this.give_back(),
            Some(Err(_)) => this.lease = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body known to be empty is never polled.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
