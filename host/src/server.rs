//! The listener: HTTP/1.1 and HTTP/2 on one port, in the clear (HTTP/2 as h2c with
//! prior knowledge) or over TLS (`crate::tls`, HTTP/2 by ALPN); request head limits,
//! timeouts, HTTP/2 stream limits, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::accept;
use crate::caps::{self, ConnectionCaps, ConnectionSlot};
use crate::config::Config;
use crate::dispatch::Gateway;
use crate::limits;
use crate::metrics::OpenGuard;
use crate::request::Peer;
use crate::upstream::idle::ClientIo;

/// Connection settings taken from the config once.
#[derive(Clone)]
pub struct ServerSettings {
    pub client_header_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub http2_max_concurrent_streams: u32,
    pub shutdown_grace: Duration,
    pub client_send_timeout: Duration,
}

impl ServerSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            client_header_timeout: config.timeouts.client_header,
            max_header_bytes: config.listen.max_header_bytes,
            max_headers: config.listen.max_headers,
            http2_max_concurrent_streams: config.listen.http2_max_concurrent_streams,
            shutdown_grace: config.listen.shutdown_grace,
            client_send_timeout: config.timeouts.client_send,
        }
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.client_header_timeout)
            .max_buf_size(self.max_header_bytes)
            .max_headers(self.max_headers);
        // Extended CONNECT (RFC 8441) advertised: WebSockets ride HTTP/2 connections too
        // (`request::extended_connect_as_upgrade`).
        builder
            .http2()
            .enable_connect_protocol()
            .timer(TokioTimer::new())
            .max_header_list_size(self.max_header_bytes as u32)
            .max_concurrent_streams(self.http2_max_concurrent_streams)
            .max_pending_accept_reset_streams(limits::HTTP2_MAX_PENDING_RESET_STREAMS)
            .max_local_error_reset_streams(limits::HTTP2_MAX_LOCAL_ERROR_RESETS);
        builder
    }
}

/// Serve until `shutdown` resolves, then stop accepting and give in-flight requests
/// and tunnels the grace period. With `tls`, every connection is TLS. Connections are
/// admitted under `caps`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gateway: Arc<Gateway>,
    settings: ServerSettings,
    caps: Arc<ConnectionCaps>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(settings.builder());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept::next(&listener, "public") => accepted,
            () = &mut shutdown => break,
        };
        let Some((stream, slot)) = caps::admit_or_refuse(&caps, stream, peer, tls.is_none()) else { continue };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            _slot: slot,
            _open: gateway.metrics().connection_opened(),
            opening_timeout: settings.client_header_timeout,
            send_timeout: settings.client_send_timeout,
            builder: builder.clone(),
            watcher: graceful.watcher(),
            gateway: gateway.clone(),
            peer: Arc::new(Peer { ip: peer.ip().to_string().into(), tls: tls.is_some() }),
        };
        match &tls {
            None => {
                tokio::spawn(connection.serve(stream));
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                tokio::spawn(async move {
                    match tokio::time::timeout(limits::TLS_HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }

    drop(listener);
    tracing::info!(grace = ?settings.shutdown_grace, "shutting down: no longer accepting");
    let grace = settings.shutdown_grace;
    let connections = async {
        if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
            tracing::warn!("grace period over with requests still in flight");
        }
    };
    tokio::join!(connections, gateway.shutdown(grace));
}

/// One accepted connection, ready to be served over whatever stream it became.
struct Connection {
    /// Its place under the connection caps, given back when it ends.
    _slot: ConnectionSlot,
    /// Counted open until the connection ends, its TLS handshake included.
    _open: OpenGuard,
    /// The first bytes must come within this (`timeouts.client_header`).
    opening_timeout: Duration,
    /// `timeouts.client_send`.
    send_timeout: Duration,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    gateway: Arc<Gateway>,
    peer: Arc<Peer>,
}

impl Connection {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S) {
        let Connection { _slot, _open, opening_timeout, send_timeout, builder, watcher, gateway, peer } = self;
        let service = service_fn(move |req| {
            let (gateway, peer) = (gateway.clone(), peer.clone());
            async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, &peer).await) }
        });
        let conn = builder.serve_connection_with_upgrades(
            TokioIo::new(ClientIo::new(stream, opening_timeout, send_timeout)),
            service,
        );
        if let Err(e) = watcher.watch(conn.into_owned()).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
