//! Accepting connections, for each of the gateway's listeners (public, redirect, metrics).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

use crate::limits::ACCEPT_RETRY;

/// The next connection on `listener` (named `which` in the log). A failed accept
/// (EMFILE and friends) is logged and retried after a pause instead of spinning.
/// Cancel-safe, as `TcpListener::accept` is: it can stand in a `select!`.
pub async fn next(listener: &TcpListener, which: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(e) => {
                tracing::error!(listener = which, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}
