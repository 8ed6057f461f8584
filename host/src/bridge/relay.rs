//! One bridged WebSocket: frames relayed both ways; every client CONNECT and EVENT
//! judged by the policy with the session's current identity, the signed identity
//! injected into what is forwarded, refusals answered with an update Reflex's
//! frontend runs (a full-page redirect to the login page, or a console error).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::identity::{Origin, Resolved};
use super::policy::{or_fail_mode, BridgeEvent, Verdict};
use super::socketio::{self, Packet};
use super::Bridge;
use crate::routing::RouteRequest;

/// What the bridge knows of one connection, from its handshake.
pub struct Session {
    pub bridge: Arc<Bridge>,
    pub handshake: RouteRequest,
    pub session_cookie: Option<String>,
}

impl Session {
    async fn identity(&self) -> Option<Arc<Resolved>> {
        let origin = Origin { host: self.handshake.authority.clone(), scheme: self.handshake.scheme.clone() };
        self.bridge.identity(self.session_cookie.as_deref(), &origin).await
    }
}

/// Why the gateway closes a bridged connection.
#[derive(Debug)]
pub struct Closing {
    pub code: CloseCode,
    pub reason: String,
}

impl Closing {
    fn policy(reason: String) -> Self {
        Closing { code: CloseCode::Policy, reason }
    }
    fn protocol(reason: String) -> Self {
        Closing { code: CloseCode::Protocol, reason }
    }
}

/// Read buffer of each side's WebSocket. tungstenite's default (128 KiB) is zero-filled
/// before every read and stays resident: measured by bench/ws, a quarter of the bridge's
/// CPU went to that memset and each idle bridged connection held about 260 KiB.
/// Larger messages are still read whole, in several reads.
const READ_BUFFER: usize = 8 * 1024;

fn ws_config(max_frame_bytes: Option<usize>) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER).max_message_size(max_frame_bytes).max_frame_size(max_frame_bytes)
}

pub async fn run(client: Upgraded, upstream: Upgraded, session: Session, idle: Duration, shutdown: CancellationToken) {
    tracing::debug!(target: "isthmus::bridge", client = %session.handshake.client_ip, "bridged WebSocket open");
    let config = ws_config(Some(session.bridge.max_frame_bytes));
    let mut client = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(config)).await;
    // What Reflex sends is bounded by tungstenite's own defaults, as before.
    let upstream_config = ws_config(WebSocketConfig::default().max_message_size);
    let mut upstream = WebSocketStream::from_raw_socket(TokioIo::new(upstream), Role::Client, Some(upstream_config)).await;
    let peer = session.handshake.client_ip.clone();
    let closing = loop {
        tokio::select! {
            msg = client.next() => match msg {
                Some(Ok(Message::Text(text))) => match judge(&session, &text).await {
                    Ok(Judged::Forward(out)) => {
                        if upstream.send(Message::text(out)).await.is_err() { break None; }
                    }
                    Ok(Judged::Relay) => {
                        if upstream.send(Message::Text(text)).await.is_err() { break None; }
                    }
                    Ok(Judged::Answer(answer)) => {
                        if client.send(Message::text(answer)).await.is_err() { break None; }
                    }
                    Ok(Judged::ForwardAndAnswer(out, answer)) => {
                        if upstream.send(Message::text(out)).await.is_err() { break None; }
                        if client.send(Message::text(answer)).await.is_err() { break None; }
                    }
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
            () = tokio::time::sleep(idle) => break Some(Closing { code: CloseCode::Away, reason: "idle timeout".into() }),
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

/// What to do with one client text frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Judged {
    /// Send this rewritten packet upstream.
    Forward(String),
    /// Send the client's frame upstream unchanged.
    Relay,
    /// Send this to the client instead of forwarding.
    Answer(String),
    /// Send the first upstream and the second to the client.
    ForwardAndAnswer(String, String),
}

/// Judge one client text frame of a bridged connection.
pub async fn judge(session: &Session, text: &str) -> Result<Judged, Closing> {
    let packet = socketio::parse(text).map_err(|e| Closing::protocol(format!("not a Socket.IO packet: {e}")))?;
    let bridge = &session.bridge;
    match packet {
        Packet::Relay => Ok(Judged::Relay),
        Packet::Connect { namespace, mut auth } => {
            // CONNECT_ERROR: the client is told the namespace refused it.
            let refuse = |reason: &str| Judged::Answer(socketio::connect_error(&namespace, reason));
            let Some(who) = session.identity().await else {
                return Ok(refuse(super::IDENTITY_UNAVAILABLE));
            };
            match or_fail_mode(bridge.policy.as_ref(), bridge.policy.on_connect(&session.handshake, &who.identity)) {
                Verdict::Allow(_) => {}
                Verdict::Deny(reason) => return Ok(refuse(&reason)),
                Verdict::Close(reason) => return Err(Closing::policy(reason)),
            }
            let mut answer = None;
            if let Some(Value::Object(auth)) = auth.as_mut() {
                if let Some(event) = auth.get_mut(bridge.connect_event_key()) {
                    let event = event_object(event)?;
                    match decide(session, &who, event)? {
                        None => {}
                        Some(refusal) => {
                            auth.remove(bridge.connect_event_key());
                            answer = Some(refusal);
                        }
                    }
                }
            }
            let connect = socketio::encode_connect(&namespace, auth.as_ref());
            match answer {
                // The connection goes ahead without its first event; the client is told why.
                Some(refusal) => Ok(Judged::ForwardAndAnswer(connect, refusal_packet(&namespace, refusal))),
                None => Ok(Judged::Forward(connect)),
            }
        }
        Packet::Event { namespace, ack, attachments, mut args } => {
            if args[0] != "event" {
                // Reflex's other socket events (`ping`, `client_error`) reach no handler.
                return Ok(Judged::Relay);
            }
            let event = args.get_mut(1).ok_or_else(|| Closing::protocol("event without data".into()))?;
            let event = event_object(event)?;
            let Some(who) = session.identity().await else {
                return Ok(Judged::Answer(refusal_packet(&namespace, Refusal { reason: super::IDENTITY_UNAVAILABLE.into(), page: String::new() })));
            };
            match decide(session, &who, event)? {
                None => Ok(Judged::Forward(socketio::encode_event(&namespace, ack, attachments, &args))),
                Some(refusal) => Ok(Judged::Answer(refusal_packet(&namespace, refusal))),
            }
        }
    }
}

/// A Reflex event must be a JSON object: Reflex also accepts a JSON string and
/// decodes it, which would slip past the injection, so anything else is refused.
fn event_object(value: &mut Value) -> Result<&mut Map<String, Value>, Closing> {
    match value {
        Value::Object(map) if map.get("name").is_some_and(Value::is_string) => Ok(map),
        Value::Object(_) => Err(Closing::protocol("event has no name".into())),
        _ => Err(Closing::protocol("event data is not a JSON object".into())),
    }
}

/// Ask the policy about one event; on allow, inject the signed identity in place.
/// Returns the refusal to answer with, if refused.
fn decide(session: &Session, who: &Resolved, event: &mut Map<String, Value>) -> Result<Option<Refusal>, Closing> {
    let bridge = &session.bridge;
    let router_data = event.get("router_data").and_then(Value::as_object);
    let text = |key: &str| router_data.and_then(|r| r.get(key)).and_then(Value::as_str).unwrap_or("");
    let route = text("pathname").to_owned();
    let as_path = text("asPath");
    let query = as_path.split_once('?').map_or("", |(_, q)| q).to_owned();
    // The page to come back to after logging in, query included.
    let page = if as_path.starts_with('/') { as_path.to_owned() } else { route.clone() };
    let ev = BridgeEvent {
        name: event["name"].as_str().unwrap_or_default().to_owned(),
        payload_json: event.get("payload").map_or_else(|| "{}".to_owned(), Value::to_string),
        route,
        query,
    };
    let verdict = or_fail_mode(bridge.policy.as_ref(), bridge.policy.on_event(&ev, &who.identity));
    match verdict {
        Verdict::Allow(context) => {
            bridge.injector.apply(event, &who.json, &context);
            Ok(None)
        }
        Verdict::Deny(reason) => {
            tracing::info!(target: "isthmus::bridge", event = %ev.name, user = %who.identity.username, %reason, "event refused");
            Ok(Some(Refusal { reason, page }))
        }
        Verdict::Close(reason) => Err(Closing::policy(reason)),
    }
}

struct Refusal {
    reason: String,
    /// Path (and query) of the page the event came from.
    page: String,
}

/// The update answering a refused event: a full page load of the login page (Reflex's
/// own `_redirect` only moves inside the SPA, which would show its 404 for a Django
/// page), or a console error for other refusals.
fn refusal_packet(namespace: &str, refusal: Refusal) -> String {
    let script = match refusal.reason.strip_prefix("login_required:") {
        Some(login_url) => {
            let next: String = url_encode(if refusal.page.is_empty() { "/" } else { &refusal.page });
            let sep = if login_url.contains('?') { '&' } else { '?' };
            format!("window.location.assign({})", Value::String(format!("{login_url}{sep}next={next}")))
        }
        None => format!("console.error({})", Value::String(format!("isthmus: event refused ({})", refusal.reason))),
    };
    let event = json!({"name": "_call_script", "payload": {"javascript_code": script}});
    socketio::server_event(namespace, &[json!("event"), json!({ "events": [event] })])
}

/// What Django's `redirect_to_login` leaves unescaped in `next=` (`quote(safe="/")`).
const NEXT_ESCAPED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'/');

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NEXT_ESCAPED).to_string()
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
