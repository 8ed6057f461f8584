//! One bridged WebSocket: frames relayed both ways, every client text frame judged
//! (`super::judge`) on the way up; server frames, pings and binary attachments pass
//! through unparsed.

use std::time::Duration;

use futures_util::{Sink, SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::judge::{control, judge, Closing, Judged, Session};
use crate::limits::BRIDGE_READ_BUFFER as READ_BUFFER;
use crate::upstream::idle::{ActiveIo, Activity};

fn ws_config(max_frame_bytes: Option<usize>) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(max_frame_bytes)
        .max_frame_size(max_frame_bytes)
}

pub async fn run(
    client: Upgraded,
    upstream: Upgraded,
    mut session: Session,
    idle: Duration,
    shutdown: CancellationToken,
) {
    tracing::debug!(target: "isthmus::bridge", client = %session.handshake.client_ip, "bridged WebSocket open");
    let config = ws_config(Some(session.bridge.max_frame_bytes));
    // Idle as the plain tunnel is: no byte from or to the client for `idle`. One timer for
    // the connection, re-armed only when it fires early, not one per frame.
    let activity = Activity::default();
    let idle_timeout = activity.idle_for(idle);
    tokio::pin!(idle_timeout);
    let client = ActiveIo::new(TokioIo::new(client), activity.clone());
    let mut client = WebSocketStream::from_raw_socket(client, Role::Server, Some(config)).await;
    // What Reflex sends is bounded by tungstenite's own defaults, as before.
    let upstream_config = ws_config(WebSocketConfig::default().max_message_size);
    let mut upstream =
        WebSocketStream::from_raw_socket(TokioIo::new(upstream), Role::Client, Some(upstream_config)).await;
    let peer = session.handshake.client_ip.clone();
    let closing = loop {
        tokio::select! {
            Some(message) = session.page.control.recv() => match control(&mut session, message).await {
                Ok(Some(judged)) => if !deliver(judged, None, &mut client, &mut upstream).await { break None },
                Ok(None) => {}
                Err(closing) => break Some(closing),
            },
            msg = client.next() => match msg {
                Some(Ok(Message::Text(text))) => match judge(&mut session, &text).await {
                    Ok(judged) => if !deliver(judged, Some(text), &mut client, &mut upstream).await { break None },
                    Err(closing) => break Some(closing),
                },
                // Binary frames are Socket.IO attachments of a packet already judged.
                Some(Ok(msg @ Message::Binary(_))) => {
                    if upstream.send(msg).await.is_err() { break None; }
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = upstream.send(Message::Close(frame)).await;
                    break None;
                }
                // WebSocket pings are per hop: tungstenite answers them itself.
                Some(Ok(_)) => {}
                Some(Err(WsError::Capacity(e))) => break Some(Closing { code: CloseCode::Size, reason: format!("frame too large: {e}") }),
                Some(Err(e)) => break Some(Closing::protocol(format!("invalid WebSocket frame: {e}"))),
                None => break None,
            },
            msg = upstream.next() => match msg {
                Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                    if client.send(msg).await.is_err() { break None; }
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = client.send(Message::Close(frame)).await;
                    break None;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            },
            () = &mut idle_timeout => break Some(Closing { code: CloseCode::Away, reason: "idle timeout".into() }),
            () = shutdown.cancelled() => break Some(Closing { code: CloseCode::Away, reason: "gateway shutting down".into() }),
        }
    };
    if let Some(Closing { code, reason }) = closing {
        tracing::warn!(target: "isthmus::bridge", client = %peer, ?code, %reason, "closing bridged WebSocket");
        let frame = CloseFrame { code, reason: truncate(&reason, 120).into() };
        let _ = client.send(Message::Close(Some(frame))).await;
        let _ = upstream.send(Message::Close(None)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = client.close(None).await;
        let _ = upstream.close(None).await;
    })
    .await;
}

/// Send what a judgement says (`original`: the client's frame, for `Relay`); false
/// when either side is gone.
async fn deliver(
    judged: Judged,
    original: Option<Utf8Bytes>,
    client: &mut (impl Sink<Message> + Unpin),
    upstream: &mut (impl Sink<Message> + Unpin),
) -> bool {
    let (up, down) = match judged {
        Judged::Forward(out) => (Some(Message::text(out)), None),
        Judged::Relay => (original.map(Message::Text), None),
        Judged::Answer(answer) => (None, Some(Message::text(answer))),
        Judged::ForwardAndAnswer(out, answer) => (Some(Message::text(out)), Some(Message::text(answer))),
    };
    if let Some(message) = up {
        if upstream.send(message).await.is_err() {
            return false;
        }
    }
    if let Some(message) = down {
        if client.send(message).await.is_err() {
            return false;
        }
    }
    true
}

/// A close reason must fit a control frame (125 bytes with the code).
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The small read buffer bounds memory, not messages: a frame many times its size
    /// arrives whole, and the frame limit still applies.
    #[tokio::test]
    async fn messages_larger_than_the_read_buffer_arrive_whole() {
        let (a, b) = tokio::io::duplex(1024);
        let mut server = WebSocketStream::from_raw_socket(a, Role::Server, Some(ws_config(Some(100_000)))).await;
        let mut client = WebSocketStream::from_raw_socket(b, Role::Client, Some(ws_config(None))).await;
        let big = "x".repeat(READ_BUFFER * 8);
        // The second message is refused mid-frame, so its sender never finishes: not awaited.
        let send = tokio::spawn(async move {
            client.send(Message::text(big)).await.unwrap();
            let _ = client.send(Message::text("y".repeat(200_000))).await;
        });
        let limit = Duration::from_secs(10);
        match tokio::time::timeout(limit, server.next()).await.expect("first message") {
            Some(Ok(Message::Text(t))) => assert_eq!(t.len(), READ_BUFFER * 8),
            other => panic!("{other:?}"),
        }
        let second = tokio::time::timeout(limit, server.next()).await.expect("second message");
        assert!(matches!(second, Some(Err(WsError::Capacity(_)))), "max_frame_bytes still applies: {second:?}");
        send.abort();
    }
}
