//! One endpoint of an upstream (one address) and its keep-alive HTTP/1.1 connections.
//! A request takes the most recently used idle connection (or opens one); the response
//! body hands the connection back once it has been read to the end. Per request this is
//! one short lock, no pool-key hashing and no task spawned, which the general-purpose
//! client in hyper-util could not offer. Every connection holds one of the endpoint's
//! `max_connections` slots while it is open, idle or a tunnel: a request finding none
//! waits for a connection to come back or close, up to the connect timeout.
//!
//! The endpoint also keeps what its pool chooses by (`super::pool`): the requests and
//! tunnels in progress on it, and whether it takes new work (its process running, its
//! health checks passing, not ejected after a failed connect, not draining).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::address::Address;
use super::idle::IdleTimeout;
use super::UpstreamError;
use crate::body::Body;
use crate::caps::Refusals;
use crate::limits;
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

/// One address of an upstream, its idle connections and its state in the pool.
pub struct Endpoint {
    /// In errors and logs: the upstream's name, and the address when the pool has several.
    name: String,
    /// Where it listens (TCP or a Unix socket), and that as the metrics label it.
    address: Address,
    label: String,
    /// Set on each response when the pool has several endpoints.
    served_by: Option<ServedBy>,
    /// Sent when a request carries no Host of its own.
    host_header: HeaderValue,
    /// What rendezvous hashing mixes with a request's key: the same on every gateway.
    pub(super) seed: u64,
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
    /// Requests (until their response body ends) and tunnels in progress.
    in_flight: AtomicUsize,
    /// Requests alone: what a drain waits for. A tunnel never ends by itself; the
    /// process closes it when stopped, and its client reconnects to another endpoint.
    requests: AtomicUsize,
    /// Told when `requests` falls to 0, for a drain.
    quiet: Notify,
    /// Its process is up (`isthmus run` sets this; true for one it does not start).
    running: AtomicBool,
    /// Its active health checks pass (true until they fail, and without any).
    healthy: AtomicBool,
    /// Finishing what it has; no new work.
    draining: AtomicBool,
    /// Milliseconds since `born` until which it is ejected (0: not ejected).
    ejected_until: AtomicU64,
    born: Instant,
    /// `isthmus_upstream_endpoint_up`: running and healthy.
    up: Gauge,
    /// `isthmus_upstream_ejections_total`.
    ejections: Counter,
}

/// Which endpoint of a pool of several answered, in the response's extensions: the
/// access log names it (one endpoint: the upstream's name says it all, and the
/// extension would cost an allocation per request).
#[derive(Clone)]
pub struct ServedBy(pub Arc<str>);

/// Counts one request in progress on an endpoint while it lives (or, once it became
/// a tunnel, the tunnel).
pub struct InFlight {
    endpoint: Arc<Endpoint>,
    tunnel: bool,
}

impl InFlight {
    fn end_request(&self) {
        if self.endpoint.requests.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.endpoint.quiet.notify_waiters();
        }
    }

    /// The request was switched to a tunnel: still in flight, no longer a request.
    fn became_tunnel(mut self) -> InFlight {
        self.end_request();
        self.tunnel = true;
        self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !self.tunnel {
            self.end_request();
        }
    }
}

/// Why a request was not answered; `unsent` holds it back when no byte of it left, so
/// that another endpoint can take it.
pub struct Failure {
    pub error: UpstreamError,
    pub unsent: Option<Request<Body>>,
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
    _held: Arc<(OwnedSemaphorePermit, InFlight)>,
}

impl Endpoint {
    pub fn new(
        upstream: &str,
        address: Address,
        several: bool,
        settings: PoolSettings,
        connect_errors: Counter,
        metrics: &Metrics,
    ) -> Arc<Endpoint> {
        let label = address.to_string();
        let up = metrics.endpoint_up(upstream, &label);
        up.set(1);
        Arc::new(Endpoint {
            name: if several { format!("{upstream} ({label})") } else { upstream.to_owned() },
            seed: xxhash_rust::xxh3::xxh3_64(label.as_bytes()),
            ejections: metrics.endpoint_ejections(upstream, &label),
            served_by: several.then(|| ServedBy(label.as_str().into())),
            host_header: address.host_header(),
            address,
            label,
            settings,
            idle: Mutex::new(Idle::default()),
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            freed: Notify::new(),
            connect_errors,
            refusals: Refusals::new(format!("upstreams.{upstream}.max_connections"), metrics),
            in_flight: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            quiet: Notify::new(),
            running: AtomicBool::new(true),
            healthy: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            ejected_until: AtomicU64::new(0),
            born: Instant::now(),
            up,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `127.0.0.1:8001` or `unix:/path`, as logs and metrics show it.
    pub fn address(&self) -> &str {
        &self.label
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether it takes new work now.
    pub fn available(&self) -> bool {
        self.serving() && self.healthy.load(Ordering::Acquire) && !self.ejected()
    }

    /// Running and not draining: a pool whose endpoints are all unavailable still
    /// tries these (Envoy's "panic" routing), since health checks and ejections can
    /// be wrong about every endpoint at once, and an answer beats a certain 503.
    pub fn serving(&self) -> bool {
        self.running.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    fn ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        until != 0 && (self.born.elapsed().as_millis() as u64) < until
    }

    /// A connect failed: no new work for [`limits::EJECTION_TIME`].
    pub fn eject(&self) {
        let was = self.ejected();
        let until = (self.born.elapsed() + limits::EJECTION_TIME).as_millis() as u64;
        self.ejected_until.store(until.max(1), Ordering::Release);
        if !was {
            self.ejections.inc();
            tracing::warn!(upstream = %self.name, for_s = limits::EJECTION_TIME.as_secs(), "endpoint ejected after a failed connect");
        }
    }

    /// `isthmus run`: its process became ready (true) or exited (false).
    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
        self.update_up();
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// The active health checks' verdict changed.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Release);
        self.update_up();
    }

    fn update_up(&self) {
        let up = self.running.load(Ordering::Acquire) && self.healthy.load(Ordering::Acquire);
        self.up.set(i64::from(up));
    }

    /// No new work from now on; returns once its requests are answered (its tunnels
    /// are left to the process, which closes them as it stops).
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        loop {
            let quiet = self.quiet.notified();
            tokio::pin!(quiet);
            quiet.as_mut().enable();
            if self.requests.load(Ordering::Acquire) == 0 {
                return;
            }
            quiet.await;
        }
    }

    /// Takes new work again (a drained endpoint whose process was started anew).
    pub fn undrain(&self) {
        self.draining.store(false, Ordering::Release);
    }

    /// Counts a request or tunnel as in progress until the guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::AcqRel);
        InFlight { endpoint: self.clone(), tunnel: false }
    }

    /// Send `req` (origin-form URI) and return the response; `in_flight` lives as long
    /// as the response body (or the tunnel). A request that a reused connection hands
    /// back unsent, because the upstream closed it meanwhile, goes out on another
    /// connection; a request that was sent is never sent twice.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
        in_flight: InFlight,
    ) -> Result<Response<PooledBody>, Failure> {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, self.host_header.clone());
        }
        loop {
            let (Conn { mut sender, slot }, reused) = match self.obtain().await {
                Ok(got) => got,
                Err(error) => return Err(Failure { error, unsent: Some(req) }),
            };
            match sender.try_send_request(req).await {
                Ok(mut res) => {
                    if let Some(served_by) = &self.served_by {
                        res.extensions_mut().insert(served_by.clone());
                    }
                    // A switched connection belongs to the tunnel now, never to the pool.
                    let lease = if res.status() == StatusCode::SWITCHING_PROTOCOLS {
                        res.extensions_mut()
                            .insert(UpstreamSlot { _held: Arc::new((slot, in_flight.became_tunnel())) });
                        None
                    } else {
                        Some(Lease { conn: Conn { sender, slot }, pool: self.clone(), _in_flight: in_flight })
                    };
                    return Ok(res.map(|inner| PooledBody { inner, lease }));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(Failure { error: self.failed(&e.into_error()), unsent: None }),
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
        let stream = match tokio::time::timeout(timeout, self.address.connect()).await {
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
async fn sweep(pool: Weak<Endpoint>, idle_timeout: Duration) {
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
    pool: Arc<Endpoint>,
    _in_flight: InFlight,
}

/// An upstream response body. Read to the end, it returns its connection to the pool;
/// dropped early, the connection closes (hyper does not reuse a half-read one).
pub struct PooledBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some(Lease { conn, pool, .. }) = self.lease.take() {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn a_drain_takes_no_new_work_and_waits_for_requests_not_tunnels() {
        let pool = super::super::pool::for_tests("url = \"http://127.0.0.1:8000\"");
        let endpoint = &pool.endpoints()[0];
        let tunnel = endpoint.enter().became_tunnel();
        let request = endpoint.enter();
        assert_eq!(endpoint.in_flight(), 2);
        let drain = endpoint.drain();
        tokio::pin!(drain);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut drain).await.is_err(), "a request is in progress");
        assert!(!endpoint.serving() && !endpoint.available());
        drop(request);
        tokio::time::timeout(Duration::from_secs(1), drain).await.expect("the request ended");
        assert_eq!(endpoint.in_flight(), 1, "the tunnel is still counted for balancing");
        drop(tunnel);
        assert_eq!(endpoint.in_flight(), 0);
        endpoint.undrain();
        assert!(endpoint.serving());
    }
}
