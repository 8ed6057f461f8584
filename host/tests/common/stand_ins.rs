//! Stand-ins for Django and Reflex, served in-process on loopback: what the bridge
//! and the several-gateways tests talk to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use isthmus::policy::Identity;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::{text, upstream};

pub const IDENTITY_SECRET: &str = "identity-secret-identity-secret-0123456789";
pub const BRIDGE_SECRET: &str = "bridge-secret-bridge-secret-bridge-0123456789";

/// Django stand-in: identities by session cookie, a login and a logout view.
#[derive(Clone, Default)]
pub struct FakeDjango {
    pub users: Arc<Mutex<HashMap<String, Identity>>>,
    pub identity_calls: Arc<AtomicUsize>,
    pub identity_hosts: Arc<Mutex<Vec<String>>>,
    pub seen_secret_from_clients: Arc<Mutex<Vec<String>>>,
}

impl FakeDjango {
    pub fn user(&self, cookie: &str, username: &str, staff: bool) {
        let identity = Identity {
            authenticated: true,
            user_id: Some(format!("{}", username.len())),
            username: username.into(),
            email: format!("{username}@example.org"),
            is_staff: staff,
            ..Identity::default()
        };
        self.users.lock().unwrap().insert(cookie.into(), identity);
    }

    pub async fn serve(&self) -> std::net::SocketAddr {
        let me = self.clone();
        upstream(move |req: Request<hyper::body::Incoming>| {
            let me = me.clone();
            async move {
                let cookie = req.headers().get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let session = cookie
                    .split(';')
                    .filter_map(|p| p.trim().strip_prefix("sessionid="))
                    .next()
                    .unwrap_or("")
                    .to_owned();
                match req.uri().path() {
                    "/_isthmus/identity" => {
                        if req.headers().get("x-isthmus-secret").and_then(|v| v.to_str().ok()) != Some(IDENTITY_SECRET)
                        {
                            let mut res = text("forbidden");
                            *res.status_mut() = StatusCode::FORBIDDEN;
                            return res;
                        }
                        me.identity_calls.fetch_add(1, Ordering::SeqCst);
                        let host = req.headers().get("host").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        me.identity_hosts.lock().unwrap().push(host);
                        let identity = me.users.lock().unwrap().get(&session).cloned().unwrap_or_default();
                        text(serde_json::to_string(&identity).unwrap())
                    }
                    // Logs in as whoever the `as` query names: the session cookie is `<as>-session`.
                    // Logs in as whoever `as` names (the session is `<as>-session`), for the
                    // cookie `domain` and `path` given, if any.
                    "/login" => {
                        let query = req.uri().query().unwrap_or("");
                        let arg = |k: &str| query.split('&').find_map(|kv| kv.strip_prefix(k)).map(str::to_owned);
                        let who = arg("as=").unwrap_or_else(|| "bob".into());
                        let mut cookie = format!("sessionid={who}-session; HttpOnly; SameSite=Lax");
                        cookie += &format!("; Path={}", arg("path=").unwrap_or_else(|| "/".into()));
                        if let Some(domain) = arg("domain=") {
                            cookie += &format!("; Domain={domain}");
                        }
                        let mut res = text("welcome");
                        res.headers_mut().insert("set-cookie", cookie.parse().unwrap());
                        res
                    }
                    // Reflex's upload endpoint stand-in: says what identity header and body it got.
                    "/_upload" => {
                        let identity = req.headers().get("x-isthmus-identity").map(|v| v.to_str().unwrap().to_owned());
                        let body = http_body_util::BodyExt::collect(req.into_body()).await.unwrap().to_bytes();
                        text(json!({"identity": identity, "bytes": body.len()}).to_string())
                    }
                    "/logout" => {
                        me.users.lock().unwrap().remove(&session);
                        let mut res = text("bye");
                        res.headers_mut().insert(
                            "set-cookie",
                            "sessionid=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/".parse().unwrap(),
                        );
                        res
                    }
                    _ => {
                        if let Some(v) = req.headers().get("x-isthmus-secret") {
                            me.seen_secret_from_clients.lock().unwrap().push(v.to_str().unwrap_or("").into());
                        }
                        text("django page")
                    }
                }
            }
        })
        .await
    }
}

/// Reflex stand-in: answers the Engine.IO open and the namespace CONNECT, echoes
/// each received event's data back, and reports every text frame it got.
pub async fn fake_reflex() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                let _ = ws
                    .send(Message::text(
                        r#"0{"sid":"s1","upgrades":[],"pingTimeout":120000,"pingInterval":25000,"maxPayload":1000000}"#,
                    ))
                    .await;
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let text = text.to_string();
                    let _ = tx.send(text.clone());
                    if text.starts_with("40/_event") {
                        let _ = ws.send(Message::text(r#"40/_event,{"sid":"n1"}"#)).await;
                    } else if let Some(rest) = text.strip_prefix("42/_event,") {
                        let args: Value = serde_json::from_str(rest).unwrap();
                        let echo = json!(["event", {"delta": {"echo": args[1]}}]);
                        let _ = ws.send(Message::text(format!("42/_event,{echo}"))).await;
                    } else if text == "3" {
                        // pong: nothing to answer
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// The token of a rebind request the gateway sent a page.
pub fn rebind_token(packet: &str) -> String {
    let (_, rest) = packet.split_once("x-isthmus-rebind").unwrap_or_else(|| panic!("not a rebind request: {packet}"));
    rest.split(|c: char| !c.is_ascii_hexdigit()).find(|part| part.len() == 32).expect("a token").to_owned()
}
