//! The listener: HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on one port, request
//! head limits and timeouts, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::dispatch::Gateway;

/// Connection settings taken from the config once.
#[derive(Clone)]
pub struct ServerSettings {
    pub client_header_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub shutdown_grace: Duration,
}

impl ServerSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            client_header_timeout: config.timeouts.client_header,
            max_header_bytes: config.listen.max_header_bytes,
            max_headers: config.listen.max_headers,
            shutdown_grace: config.listen.shutdown_grace,
        }
    }
}

/// Serve until `shutdown` resolves, then stop accepting and give in-flight requests
/// and tunnels the grace period.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.client_header_timeout)
        .max_buf_size(settings.max_header_bytes)
        .max_headers(settings.max_headers);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(settings.max_header_bytes as u32);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let open = gateway.metrics().connection_opened();
        let gateway = gateway.clone();
        let peer_ip: Arc<str> = peer.ip().to_string().into();
        let service = service_fn(move |req| {
            let (gateway, peer_ip) = (gateway.clone(), peer_ip.clone());
            async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, &peer_ip).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(open);
        });
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

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
