//! The event bridge's own behaviour against in-process stand-ins (`common::stand_ins`):
//! a Django identity endpoint and a Socket.IO upstream that records what reaches it.
//! (The real Django and Reflex processes are exercised by the end-to-end tests.)

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::stand_ins::{fake_reflex, rebind_token, FakeDjango, BRIDGE_SECRET, IDENTITY_SECRET};
use common::*;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use http::{Request, StatusCode};
use isthmus::policy::Resolved;
use isthmus::policy::{BridgeEvent, BridgePolicy, Refusal, Verdict};
use isthmus::policy::{FailMode, PolicyFailure, RouteRequest};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// Rules like the default policy's: `admin` needs staff, `secret` a login, `close_me` closes.
struct TestPolicy;

impl BridgePolicy for TestPolicy {
    fn name(&self) -> &str {
        "test-policy"
    }
    fn fail_mode(&self) -> FailMode {
        FailMode::Closed
    }
    fn on_connect(&self, handshake: &Arc<RouteRequest>, _who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        Ok(if handshake.query.contains("refuse=1") {
            Verdict::Refuse(Refusal::Forbidden("connect".into()))
        } else if let Some(tenant) = handshake.query.split('&').find_map(|kv| kv.strip_prefix("tenant=")) {
            Verdict::Allow(vec![("tenant".into(), tenant.into()), ("rule".into(), "connect".into())])
        } else {
            Verdict::Allow(vec![])
        })
    }
    fn on_event(&self, ev: &Arc<BridgeEvent>, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        let who = &who.identity;
        Ok(if ev.name.contains("close_me") {
            Verdict::Close("closed by policy".into())
        } else if ev.name.contains("admin") && !who.authenticated {
            Verdict::Refuse(Refusal::LoginRequired("/admin/login/".into()))
        } else if ev.name.contains("admin") && !who.is_staff {
            Verdict::Refuse(Refusal::Forbidden("staff".into()))
        } else if ev.name.contains("secret") && !who.authenticated {
            Verdict::Refuse(Refusal::LoginRequired("/admin/login/".into()))
        } else if ev.name.contains("boom") {
            return Err(PolicyFailure::Trap("boom".into()));
        } else {
            Verdict::Allow(vec![("rule".into(), "test".into())])
        })
    }
}

struct Stack {
    gw: RunningGateway,
    django: FakeDjango,
    reflex_rx: mpsc::UnboundedReceiver<String>,
    metrics: Arc<isthmus::metrics::Metrics>,
    _site: Site,
}

async fn stack(bridge_extra: &str, django_addr: Option<std::net::SocketAddr>) -> Stack {
    let django = FakeDjango::default();
    let django_addr = match django_addr {
        Some(a) => a,
        None => django.serve().await,
    };
    let (reflex, reflex_rx) = fake_reflex().await;
    let site = Site::new();
    let extra = format!(
        "\n[bridge]\nidentity_secret = \"{IDENTITY_SECRET}\"\nbridge_secret = \"{BRIDGE_SECRET}\"\nmax_frame_bytes = 4096\n{bridge_extra}\n[bridge.policy]\nplugin = \"test.wasm\"\n"
    );
    // `[bridge]` tables go after everything `Site::config` writes.
    site.config(&[("django", django_addr), ("reflex", reflex)], "");
    let text = std::fs::read_to_string(site.path().join("isthmus.toml")).unwrap() + &extra;
    let file = site.write("isthmus.toml", &text);
    let config = isthmus::config::Config::parse(&text, &file).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let router = router("r", |req| {
        // Uploads go to the Django stand-in, which answers HTTP (the Reflex one only speaks WebSocket).
        Ok(if req.path.starts_with("/_event") || req.path == "/ping" { forward("reflex") } else { forward("django") })
    });
    let metrics = metrics(&config);
    let gateway = Arc::new(
        isthmus::dispatch::Gateway::new(
            &config,
            isthmus::policy::RouterChain::new(vec![router]),
            Some(Arc::new(TestPolicy)),
            metrics.clone(),
        )
        .unwrap(),
    );
    let gw = start_with(gateway, &config).await;
    Stack { gw, django, reflex_rx, metrics, _site: site }
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(stack: &Stack, cookie: Option<&str>, query: &str) -> Client {
    connect_with(stack, cookie.map(|c| format!("csrftoken=x; sessionid={c}")).as_deref(), query).await
}

/// A WebSocket to the bridge with this whole Cookie header.
async fn connect_with(stack: &Stack, cookies: Option<&str>, query: &str) -> Client {
    let mut req =
        format!("ws://{}/_event/?EIO=4&transport=websocket{query}", stack.gw.addr).into_client_request().unwrap();
    if let Some(c) = cookies {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let open = next_text(&mut ws).await;
    assert!(open.starts_with("0{"), "{open}");
    ws
}

async fn next_text(ws: &mut Client) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame within 5 s") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Close(f))) => return format!("CLOSE {:?}", f.map(|f| (f.code, f.reason.to_string()))),
            Some(Ok(_)) => continue,
            other => return format!("END {other:?}"),
        }
    }
}

fn event(name: &str, router_data: Value) -> String {
    format!("42/_event,{}", json!(["event", {"name": name, "payload": {"x": 1}, "router_data": router_data}]))
}

/// The signed identity Reflex receives, checked the way the Python side checks it.
fn verified(router_data: &Value) -> Value {
    let signed = &router_data["isthmus"];
    let payload = signed["payload"].as_str().expect("signed payload");
    let mut mac = Hmac::<Sha256>::new_from_slice(BRIDGE_SECRET.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(signed["sig"], expected, "signature must verify");
    serde_json::from_str(payload).unwrap()
}

async fn forwarded_event(stack: &mut Stack) -> Value {
    loop {
        let text = tokio::time::timeout(Duration::from_secs(5), stack.reflex_rx.recv())
            .await
            .expect("upstream got a frame")
            .unwrap();
        if let Some(rest) = text.strip_prefix("42/_event,") {
            return serde_json::from_str::<Value>(rest).unwrap()[1].clone();
        }
    }
}

#[tokio::test]
async fn events_carry_the_signed_identity_and_never_the_clients_copy() {
    let mut s = stack("", None).await;
    s.django.user("alice-session", "alice", true);
    let mut ws = connect(&s, Some("alice-session"), "").await;
    let forged = json!({"pathname": "/shop", "asPath": "/shop?page=2", "query": {"page": "2"},
        "isthmus": {"payload": "{\"v\":1,\"identity\":{\"username\":\"mallory\",\"is_superuser\":true}}", "sig": "00"}});
    ws.send(Message::text(event("state.shop.load", forged))).await.unwrap();
    let ev = forwarded_event(&mut s).await;
    let payload = verified(&ev["router_data"]);
    assert_eq!(payload["identity"]["username"], "alice");
    assert_eq!(payload["identity"]["is_staff"], true);
    assert_eq!(payload["query"], json!({"page": "2"}));
    assert_eq!(payload["context"], json!({"rule": "test"}));
    assert_eq!(ev["router_data"]["pathname"], "/shop");
    assert_eq!(ev["payload"], json!({"x": 1}));
    assert_eq!(
        *s.django.identity_hosts.lock().unwrap(),
        vec![s.gw.addr.to_string()],
        "Django is asked with the browser's Host"
    );
    // The echo comes back to the client untouched.
    assert!(next_text(&mut ws).await.starts_with("42/_event,[\"event\",{\"delta\""));
}

/// What the policy allowed the connection with goes into every event's context; an
/// event's own fields of the same name win.
#[tokio::test]
async fn the_connect_verdicts_fields_join_every_events_context() {
    let mut s = stack("", None).await;
    let mut ws = connect(&s, None, "&tenant=acme").await;
    ws.send(Message::text("40/_event,{}")).await.unwrap();
    for _ in 0..2 {
        ws.send(Message::text(event("state.shop.load", json!({"pathname": "/"})))).await.unwrap();
        let payload = verified(&forwarded_event(&mut s).await["router_data"]);
        assert_eq!(payload["context"], json!({"tenant": "acme", "rule": "test"}));
    }
}

/// The gateway reads events as Python's `json.loads` does (the last of duplicate keys
/// wins, escapes in keys decoded), so what it judges and signs is what a handler sees:
/// a second `name` cannot dodge a rule, and no spelling of the key keeps a client's copy.
#[tokio::test]
async fn duplicate_and_escaped_keys_cannot_smuggle_an_event_or_an_identity() {
    let mut s = stack("", None).await;
    s.django.user("bob-session", "bob", false);
    let mut bob = connect(&s, Some("bob-session"), "").await;
    let dodge = r#"42/_event,["event",{"name":"state.shop.list","payload":{},"n\u0061me":"state.admin.delete"}]"#;
    bob.send(Message::text(dodge)).await.unwrap();
    let answer = next_text(&mut bob).await;
    assert!(answer.contains("forbidden:staff"), "judged by the name Reflex will run: {answer}");
    assert!(s.reflex_rx.try_recv().is_err(), "never forwarded");

    let forged = r#"{\"v\":1,\"identity\":{\"username\":\"mallory\"}}"#;
    let smuggle = format!(
        r#"42/_event, [ "event" , {{ "name" : "state.shop.list", "payload":{{"x": [1, 2]}},
            "router_data": {{"isthmus": {{"payload":"{forged}","sig":"00"}}, "pathname": "/"}},
            "router_data": {{"pathname": "/shop", "isth\u006dus": {{"payload":"{forged}","sig":"00"}}, "isthmus": 1}} }} ]"#
    );
    bob.send(Message::text(smuggle)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), s.reflex_rx.recv()).await.unwrap().unwrap();
    assert!(!got.contains("mallory") && !got.contains("isth\\u006dus"), "no copy of the client's key survives: {got}");
    let ev: Value = serde_json::from_str::<Value>(got.strip_prefix("42/_event,").unwrap()).unwrap()[1].clone();
    assert_eq!(ev["router_data"]["pathname"], "/shop", "the last router_data, as Reflex would read it");
    assert_eq!(verified(&ev["router_data"])["identity"]["username"], "bob");
    assert_eq!(ev["payload"], json!({"x": [1, 2]}), "the payload as sent");
}

#[tokio::test]
async fn the_first_event_in_connect_is_judged_and_signed() {
    let mut s = stack("", None).await;
    let mut ws = connect(&s, None, "").await;
    let connect = format!(
        "40/_event,{}",
        json!({"event": {"name": "reflex___state____state.hydrate", "payload": {}, "router_data": {"pathname": "/", "isthmus": "forged"}}})
    );
    ws.send(Message::text(connect)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), s.reflex_rx.recv()).await.unwrap().unwrap();
    let auth: Value = serde_json::from_str(got.strip_prefix("40/_event,").unwrap()).unwrap();
    let payload = verified(&auth["event"]["router_data"]);
    assert_eq!(payload["identity"]["authenticated"], false);
    assert_eq!(next_text(&mut ws).await, r#"40/_event,{"sid":"n1"}"#);
}

#[tokio::test]
async fn refused_events_are_answered_and_never_forwarded() {
    let mut s = stack("", None).await;
    s.django.user("bob-session", "bob", false);
    let mut anon = connect(&s, None, "").await;
    anon.send(Message::text(event(
        "state.admin.delete",
        json!({"pathname": "/products", "asPath": "/products?tab=all"}),
    )))
    .await
    .unwrap();
    let answer = next_text(&mut anon).await;
    assert!(
        answer.contains(r#"window.location.assign(\"/admin/login/?next=/products%3Ftab%3Dall\")"#),
        "back to the page, query included, escaped as Django does: {answer}"
    );

    let mut bob = connect(&s, Some("bob-session"), "").await;
    bob.send(Message::text(event("state.admin.delete", json!({"pathname": "/"})))).await.unwrap();
    let answer = next_text(&mut bob).await;
    assert!(answer.contains("_call_script") && answer.contains("forbidden:staff"), "{answer}");

    // Only this allowed event reached the upstream.
    bob.send(Message::text(event("state.shop.list", json!({})))).await.unwrap();
    let ev = forwarded_event(&mut s).await;
    assert_eq!(ev["name"], "state.shop.list");
    assert!(s.reflex_rx.try_recv().is_err());
}

#[tokio::test]
async fn a_refused_connect_gets_connect_error() {
    let mut s = stack("", None).await;
    let mut ws = connect(&s, None, "&refuse=1").await;
    ws.send(Message::text("40/_event,{}")).await.unwrap();
    let answer = next_text(&mut ws).await;
    assert_eq!(answer, r#"44/_event,{"message":"forbidden:connect"}"#);
    assert!(s.reflex_rx.try_recv().is_err());
}

#[tokio::test]
async fn pings_and_other_packets_pass_untouched() {
    let mut s = stack("", None).await;
    let mut ws = connect(&s, None, "").await;
    for frame in ["3", "2probe", "41/_event,"] {
        ws.send(Message::text(frame)).await.unwrap();
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), s.reflex_rx.recv()).await.unwrap().unwrap(), frame);
    }
}

async fn expect_close(ws: &mut Client, code: CloseCode, reason_part: &str) {
    let answer = next_text(ws).await;
    assert!(
        answer.starts_with(&format!("CLOSE Some(({code:?}")) && answer.contains(reason_part),
        "expected {code:?} `{reason_part}`, got {answer}"
    );
}

#[tokio::test]
async fn bad_input_closes_only_that_connection() {
    let mut s = stack("", None).await;
    let mut other = connect(&s, None, "").await;
    let cases: Vec<(Message, CloseCode, &str)> = vec![
        (Message::text("9nonsense"), CloseCode::Protocol, "not a Socket.IO packet"),
        (Message::text("42/_event,[\"event\","), CloseCode::Protocol, "not valid JSON"),
        (
            Message::text(r#"42/_event,["event","{\"name\":\"state.admin.x\"}"]"#),
            CloseCode::Protocol,
            "not a JSON object",
        ),
        (Message::text(r#"42/_event,["event",{"payload":{}}]"#), CloseCode::Protocol, "no name"),
        (
            Message::text(format!("42/_event,[\"event\",{{\"name\":\"{}\"}}]", "x".repeat(8000))),
            CloseCode::Size,
            "too large",
        ),
        (Message::text(event("state.close_me", json!({}))), CloseCode::Policy, "closed by policy"),
    ];
    for (msg, code, reason) in cases {
        let mut ws = connect(&s, None, "").await;
        ws.send(msg).await.unwrap();
        expect_close(&mut ws, code, reason).await;
    }
    assert!(s.reflex_rx.try_recv().is_err(), "the upstream saw none of it");
    other.send(Message::text(event("state.ok", json!({})))).await.unwrap();
    assert_eq!(forwarded_event(&mut s).await["name"], "state.ok", "others keep being served");
}

#[tokio::test]
async fn identities_are_cached_and_dropped_on_logout_through_the_gateway() {
    let mut s = stack("identity_ttl = \"60s\"\n", None).await;
    s.django.user("alice-session", "alice", true);
    let mut ws = connect(&s, Some("alice-session"), "").await;
    for _ in 0..5 {
        ws.send(Message::text(event("state.secret.read", json!({})))).await.unwrap();
        assert_eq!(verified(&forwarded_event(&mut s).await["router_data"])["identity"]["username"], "alice");
        next_text(&mut ws).await;
    }
    assert_eq!(s.django.identity_calls.load(Ordering::SeqCst), 1, "one identity call for five events");

    // Logout in another tab, through the gateway: Django deletes the session cookie.
    let req = Request::post(s.gw.url("/logout"))
        .header("cookie", "sessionid=alice-session")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, StatusCode::OK);
    // The page holding that session drops it at once and is asked to re-read its browser's.
    let ask = next_text(&mut ws).await;
    assert!(ask.contains("x-isthmus-rebind"), "{ask}");
    ws.send(Message::text(event("state.secret.read", json!({"pathname": "/vault"})))).await.unwrap();
    let answer = next_text(&mut ws).await;
    assert!(answer.contains("window.location.assign"), "the next event is judged logged out: {answer}");
    assert_eq!(s.django.identity_calls.load(Ordering::SeqCst), 1, "anonymous without asking Django");
}

#[tokio::test]
async fn a_logout_elsewhere_is_seen_within_the_ttl() {
    let mut s = stack("identity_ttl = \"300ms\"\n", None).await;
    s.django.user("alice-session", "alice", true);
    let mut ws = connect(&s, Some("alice-session"), "").await;
    ws.send(Message::text(event("state.secret.read", json!({})))).await.unwrap();
    forwarded_event(&mut s).await;
    next_text(&mut ws).await;
    s.django.users.lock().unwrap().clear(); // session ended without passing through the gateway
    tokio::time::sleep(Duration::from_millis(400)).await;
    ws.send(Message::text(event("state.secret.read", json!({})))).await.unwrap();
    assert!(next_text(&mut ws).await.contains("window.location.assign"));
}

#[tokio::test]
async fn identity_endpoint_down_judges_as_anonymous_by_default() {
    let mut s = stack("", Some(dead_port().await)).await;
    let mut ws = connect(&s, Some("alice-session"), "").await;
    ws.send(Message::text(event("state.public.view", json!({})))).await.unwrap();
    assert_eq!(verified(&forwarded_event(&mut s).await["router_data"])["identity"]["authenticated"], false);
    next_text(&mut ws).await;
    ws.send(Message::text(event("state.secret.read", json!({})))).await.unwrap();
    assert!(next_text(&mut ws).await.contains("window.location.assign"));
}

#[tokio::test]
async fn identity_endpoint_down_refuses_everything_in_deny_mode() {
    let mut s = stack("on_identity_error = \"deny\"\n", Some(dead_port().await)).await;
    let mut ws = connect(&s, Some("alice-session"), "").await;
    ws.send(Message::text(event("state.public.view", json!({})))).await.unwrap();
    let answer = next_text(&mut ws).await;
    assert!(answer.contains("identity unavailable"), "{answer}");
    assert!(s.reflex_rx.try_recv().is_err());
}

#[tokio::test]
async fn a_failing_policy_fails_closed() {
    let mut s = stack("", None).await;
    let mut ws = connect(&s, None, "").await;
    ws.send(Message::text(event("state.boom", json!({})))).await.unwrap();
    assert!(next_text(&mut ws).await.contains("policy `test-policy` failed"));
    assert!(s.reflex_rx.try_recv().is_err());
}

#[tokio::test]
async fn the_bridge_path_takes_websockets_only_and_the_secret_header_never_passes() {
    let s = stack("", None).await;
    let (status, _, body) = get(&s.gw.url("/_event/?EIO=4&transport=polling")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("WebSocket"));
    let req = Request::get(s.gw.url("/admin/"))
        .header("x-isthmus-secret", IDENTITY_SECRET)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, StatusCode::OK);
    assert!(s.django.seen_secret_from_clients.lock().unwrap().is_empty(), "a client-sent secret header is stripped");
}

#[tokio::test]
async fn a_bridge_section_without_a_policy_is_refused() {
    let site = Site::new();
    site.config(&[("django", dead_port().await)], "");
    let text = std::fs::read_to_string(site.path().join("isthmus.toml")).unwrap()
        + &format!("\n[bridge]\nidentity_secret = \"{IDENTITY_SECRET}\"\nbridge_secret = \"{BRIDGE_SECRET}\"\n[bridge.policy]\nplugin = \"test.wasm\"\n");
    let file = site.write("isthmus.toml", &text);
    let config = isthmus::config::Config::parse(&text, &file).unwrap();
    let err = isthmus::dispatch::Gateway::new(&config, isthmus::policy::RouterChain::default(), None, metrics(&config))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no bridge policy"), "{err}");
}

#[tokio::test]
async fn a_hanging_identity_endpoint_costs_one_timeout_not_one_per_event() {
    // Accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap().0);
        }
    });
    let mut s = stack("identity_timeout = \"300ms\"\n", Some(stuck)).await;
    let mut ws = connect(&s, Some("alice-session"), "").await;
    let start = std::time::Instant::now();
    for _ in 0..3 {
        ws.send(Message::text(event("state.public.view", json!({})))).await.unwrap();
        assert_eq!(verified(&forwarded_event(&mut s).await["router_data"])["identity"]["authenticated"], false);
        next_text(&mut ws).await;
    }
    assert!(start.elapsed() < Duration::from_millis(900), "three events took {:?}", start.elapsed());
}

const BROWSER_A: &str = "0123456789abcdef0123456789abcdef";
const BROWSER_B: &str = "fedcba9876543210fedcba9876543210";

/// POST `path` through the gateway with this Cookie header (and extra headers).
async fn post(stack: &Stack, path: &str, cookies: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = Request::post(stack.gw.url(path)).header("cookie", cookies);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, _, body) = send(req.body(http_body_util::Full::new(bytes::Bytes::new())).unwrap()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Nothing reaches the client within a short while.
async fn quiet(ws: &mut Client) {
    if let Ok(frame) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
        panic!("expected nothing, got {frame:?}");
    }
}

#[tokio::test]
async fn a_login_in_one_tab_reaches_the_browsers_other_open_pages() {
    let mut s = stack("on_identity_change = \"state.user.on_identity_change\"\n", None).await;
    s.django.user("bob-session", "bob", false);
    let browser = format!("isthmus_browser={BROWSER_A}");
    let mut tab = connect_with(&s, Some(&browser), "").await;
    let mut elsewhere = connect_with(&s, Some(&format!("isthmus_browser={BROWSER_B}")), "").await;
    tab.send(Message::text(r#"40/_event,{}"#)).await.unwrap();
    assert!(next_text(&mut tab).await.starts_with("40/_event"));
    elsewhere.send(Message::text(r#"40/_event,{}"#)).await.unwrap();
    assert!(next_text(&mut elsewhere).await.starts_with("40/_event"));
    tab.send(Message::text(event("state.user.greet", json!({"pathname": "/shop", "asPath": "/shop?x=1"}))))
        .await
        .unwrap();
    assert_eq!(verified(&forwarded_event(&mut s).await["router_data"])["identity"]["authenticated"], false);
    next_text(&mut tab).await;

    // Another tab of the browser logs in through the gateway.
    assert_eq!(post(&s, "/login?as=bob", &browser, &[]).await.0, StatusCode::OK);
    let token = rebind_token(&next_text(&mut tab).await);
    quiet(&mut elsewhere).await;
    // The page re-reads its session: the browser sends its cookies, the new session among them.
    let cookies = format!("{browser}; sessionid=bob-session");
    assert_eq!(post(&s, "/_isthmus/rebind", &cookies, &[("x-isthmus-rebind", &token)]).await.0, StatusCode::NO_CONTENT);

    // Reflex gets the configured handler, signed with the new user, on the page it was on.
    let change = forwarded_event(&mut s).await;
    assert_eq!(change["name"], "state.user.on_identity_change");
    assert_eq!(change["router_data"]["pathname"], "/shop");
    assert_eq!(verified(&change["router_data"])["identity"]["username"], "bob");
    // And every event after it.
    tab.send(Message::text(event("state.secret.read", json!({})))).await.unwrap();
    assert_eq!(verified(&forwarded_event(&mut s).await["router_data"])["identity"]["username"], "bob");
}

#[tokio::test]
async fn a_copied_browser_cookie_never_hands_over_a_session() {
    let mut s = stack("", None).await;
    s.django.user("bob-session", "bob", true);
    let browser = format!("isthmus_browser={BROWSER_A}");
    // The attacker's page carries a copy of the victim's browser id.
    let mut attacker = connect_with(&s, Some(&browser), "").await;
    attacker.send(Message::text(r#"40/_event,{}"#)).await.unwrap();
    next_text(&mut attacker).await;
    assert_eq!(post(&s, "/login?as=bob", &browser, &[]).await.0, StatusCode::OK);
    // It is asked to re-read its session, and its browser has none to send.
    let token = rebind_token(&next_text(&mut attacker).await);
    assert_eq!(post(&s, "/_isthmus/rebind", &browser, &[("x-isthmus-rebind", &token)]).await.0, StatusCode::NO_CONTENT);
    attacker.send(Message::text(event("state.secret.read", json!({})))).await.unwrap();
    assert!(next_text(&mut attacker).await.contains("window.location.assign"), "still anonymous");
    // A token it guesses, or a GET, moves nothing.
    let wrong = "0".repeat(32);
    assert_eq!(
        post(&s, "/_isthmus/rebind", "sessionid=bob-session", &[("x-isthmus-rebind", &wrong)]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&s.gw.url("/_isthmus/rebind")).await.0, StatusCode::METHOD_NOT_ALLOWED);
    attacker.send(Message::text(event("state.secret.read", json!({})))).await.unwrap();
    assert!(next_text(&mut attacker).await.contains("window.location.assign"));
    let _ = &mut s;
}

#[tokio::test]
async fn page_loads_and_handshakes_get_a_browser_cookie_once() {
    let s = stack("", None).await;
    let page = Request::get(s.gw.url("/shop"))
        .header("accept", "text/html,*/*")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let (_, headers, _) = send(page).await;
    let cookie = headers.get("set-cookie").expect("a browser cookie").to_str().unwrap().to_owned();
    assert!(cookie.starts_with("isthmus_browser=") && cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{cookie}");
    let again = Request::get(s.gw.url("/shop"))
        .header("accept", "text/html")
        .header("cookie", cookie.split(';').next().unwrap())
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert!(send(again).await.1.get("set-cookie").is_none(), "a browser keeps its id");
    let fetch = Request::get(s.gw.url("/api/x"))
        .header("accept", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert!(send(fetch).await.1.get("set-cookie").is_none(), "only page loads and handshakes get one");
}

fn upload_headers<'a>(handler: &'a str, length: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("reflex-event-handler", handler),
        ("reflex-client-token", "tok1"),
        ("content-length", length),
        ("referer", "http://127.0.0.1/shop?page=2"),
    ]
}

#[tokio::test]
async fn uploads_are_judged_and_carry_the_signed_identity() {
    let s = stack("max_upload_bytes = 1024\n", None).await;
    s.django.user("alice-session", "alice", false);
    // An open page of that Reflex client, to hear of a refusal.
    let mut page = connect(&s, None, "&token=tok1").await;
    page.send(Message::text(r#"40/_event,{}"#)).await.unwrap();
    next_text(&mut page).await;

    // Anonymous, on a handler that needs a login: 403 and the page is sent to log in.
    let (status, body) = post(&s, "/_upload", "", &upload_headers("state.secret.upload", "0")).await;
    assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, "upload refused (login_required:/admin/login/)\n"));
    let script = next_text(&mut page).await;
    assert!(script.contains(r#"window.location.assign(\"/admin/login/?next=/shop%3Fpage%3D2\")"#), "{script}");

    // Logged in, with a forged identity header: Reflex gets the gateway's own.
    let mut headers = upload_headers("state.secret.upload", "0");
    headers.push(("x-isthmus-identity", "eyJmb3JnZWQiOnRydWV9"));
    let (status, body) = post(&s, "/_upload", "sessionid=alice-session", &headers).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got: Value = serde_json::from_str(&body).unwrap();
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(got["identity"].as_str().unwrap()).unwrap();
    let injected: Value = serde_json::from_slice(&raw).unwrap();
    let payload = verified(&json!({ "isthmus": injected }));
    assert_eq!(payload["identity"]["username"], "alice");
    assert_eq!(payload["query"]["page"], "2");

    // Sizes: declared and within the cap, or refused before anything is read.
    assert_eq!(
        post(&s, "/_upload", "", &upload_headers("state.ok.upload", "2048")).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let no_handler = vec![("content-length", "0")];
    assert_eq!(post(&s, "/_upload", "", &no_handler).await.0, StatusCode::BAD_REQUEST);
    let chunked = Request::post(s.gw.url("/_upload"))
        .header("reflex-event-handler", "state.ok.upload")
        .body(http_body_util::StreamBody::new(futures_util::stream::iter(vec![Ok::<_, std::convert::Infallible>(
            hyper::body::Frame::data(bytes::Bytes::from_static(b"abc")),
        )])))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let res = client.request(chunked).await.unwrap();
    assert_eq!(res.status(), StatusCode::LENGTH_REQUIRED);
}

#[tokio::test]
async fn a_session_cookie_the_browser_does_not_keep_changes_nothing() {
    let mut s = stack("", None).await;
    s.django.user("alice-session", "alice", false);
    s.django.user("eve-session", "eve", true);
    let browser = format!("isthmus_browser={BROWSER_A}");
    let cookies = format!("{browser}; sessionid=alice-session");
    let mut tab = connect_with(&s, Some(&cookies), "").await;
    tab.send(Message::text(r#"40/_event,{}"#)).await.unwrap();
    next_text(&mut tab).await;
    // Set for another domain or another path: a browser does not send it to this page.
    for login in ["/login?as=eve&domain=evil.example", "/login?as=eve&path=/elsewhere"] {
        assert_eq!(post(&s, login, &cookies, &[]).await.0, StatusCode::OK);
        let token = rebind_token(&next_text(&mut tab).await);
        // The browser answers with the cookies it really has for this page.
        let (status, _) = post(&s, "/_isthmus/rebind", &cookies, &[("x-isthmus-rebind", &token)]).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        tab.send(Message::text(event("state.secret.read", json!({})))).await.unwrap();
        assert_eq!(verified(&forwarded_event(&mut s).await["router_data"])["identity"]["username"], "alice");
        next_text(&mut tab).await;
    }
}

/// Every judged packet is counted by kind and verdict, with the identity lookups and the
/// open bridged sockets; the scrape never holds a user, a cookie or an event's name.
#[tokio::test]
async fn judged_packets_identity_lookups_and_open_sockets_are_counted() {
    let mut s = stack("", None).await;
    s.django.user("alice-session", "alice", false);
    let value = |s: &Stack, series: &str| sample(&s.metrics.encode(false), series);
    let mut alice = connect(&s, Some("alice-session"), "").await;
    alice.send(Message::text("40/_event,{}")).await.unwrap();
    assert!(next_text(&mut alice).await.starts_with("40/_event"));
    alice.send(Message::text(event("state.shop.load", json!({"pathname": "/"})))).await.unwrap();
    forwarded_event(&mut s).await;
    alice.send(Message::text(event("state.admin.delete", json!({"pathname": "/"})))).await.unwrap();
    // The echo of the allowed event may come first.
    let mut answers = Vec::new();
    while !answers.last().is_some_and(|a: &String| a.contains("event refused (forbidden:staff)")) {
        assert!(answers.len() < 2, "{answers:?}");
        answers.push(next_text(&mut alice).await);
    }
    let mut anonymous = connect(&s, None, "").await;
    anonymous.send(Message::text(event("state.close_me", json!({"pathname": "/"})))).await.unwrap();
    assert!(next_text(&mut anonymous).await.starts_with("CLOSE"));

    let expected = [
        (r#"isthmus_bridge_events_total{kind="connect",verdict="allowed"}"#, 1),
        (r#"isthmus_bridge_events_total{kind="event",verdict="allowed"}"#, 1),
        (r#"isthmus_bridge_events_total{kind="event",verdict="refused"}"#, 1),
        (r#"isthmus_bridge_events_total{kind="event",verdict="closed"}"#, 1),
        (r#"isthmus_bridge_event_duration_seconds_count{kind="event"}"#, 3),
        (r#"isthmus_bridge_event_duration_seconds_count{kind="connect"}"#, 1),
        // Alice's CONNECT asked Django, her events found the answer cached; no cookie asks nothing.
        (r#"isthmus_identity_lookups_total{result="miss"}"#, 1),
        (r#"isthmus_identity_lookups_total{result="hit"}"#, 2),
        (r#"isthmus_identity_lookups_total{result="error"}"#, 0),
        (r#"isthmus_requests_total{target="upstream",name="reflex",status="1xx"}"#, 2),
    ];
    for (series, n) in expected {
        assert_eq!(value(&s, series), Some(n as f64), "{series} in:\n{}", s.metrics.encode(false));
    }
    let bridged = r#"isthmus_open_tunnels{kind="bridged"}"#;
    eventually(|| value(&s, bridged) == Some(1.0), "the closed socket is no longer open").await;
    drop(alice);
    eventually(|| value(&s, bridged) == Some(0.0), "no bridged socket open").await;
    let scrape = s.metrics.encode(false);
    for secret in ["alice", "state.shop", "state.admin", "close_me", "/_event"] {
        assert!(!scrape.contains(secret), "`{secret}` leaked into the scrape:\n{scrape}");
    }
}

/// The next event frame Reflex got, as text.
async fn forwarded_frame(stack: &mut Stack) -> String {
    loop {
        let text = tokio::time::timeout(Duration::from_secs(5), stack.reflex_rx.recv())
            .await
            .expect("upstream got a frame")
            .unwrap();
        if text.starts_with("42/_event,") {
            return text;
        }
    }
}

fn event_with(name: &str, extra: Value) -> String {
    let mut data = json!({"name": name, "payload": {}, "router_data": {"pathname": "/"}});
    data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    format!("42/_event,{}", json!(["event", data]))
}

/// Each event gets a span of the gateway's, whose `traceparent` replaces the client's
/// in the event Reflex reads (so Reflex's span is the child of the gateway's), and
/// which is exported with the client's span as parent and a link to the handshake's.
#[tokio::test]
async fn each_event_carries_the_gateways_span_in_place_of_the_clients_trace_context() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";
    let (collector, mut exports) = collector().await;
    let mut s = stack(
        &format!("[tracing.otlp]\nendpoint = \"http://{collector}/v1/traces\"\nexport_interval = \"50ms\"\n"),
        None,
    )
    .await;
    let mut ws = connect(&s, None, "").await;

    let client = format!("00-{TRACE}-{SPAN}-01");
    ws.send(Message::text(event_with("state.a", json!({"traceparent": client, "tracestate": "v=1"})))).await.unwrap();
    let frame = forwarded_frame(&mut s).await;
    assert_eq!(frame.matches("traceparent").count(), 1, "{frame}");
    let ev = &serde_json::from_str::<Value>(frame.strip_prefix("42/_event,").unwrap()).unwrap()[1];
    let (trace, parent, flags) = traceparent_parts(ev["traceparent"].as_str().unwrap());
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "01"), "the client's trace continues");
    assert_ne!(parent, SPAN, "under the gateway's span");
    assert_eq!(ev["tracestate"], "v=1");
    verified(&ev["router_data"]);

    let (span, _) = exports.span(|s| hex(&s.span_id) == parent).await;
    assert_eq!(hex(&span.trace_id), TRACE);
    assert_eq!(hex(&span.parent_span_id), SPAN);
    assert_eq!((span.kind, span.name.as_str()), (4, "event state.a"), "a producer span");
    let (handshake, _) = exports.span(|s| s.name == "GET upstream:reflex").await;
    assert_eq!(span.links.len(), 1);
    assert_eq!(
        (hex(&span.links[0].trace_id), hex(&span.links[0].span_id)),
        (hex(&handshake.trace_id), hex(&handshake.span_id)),
        "linked to the WebSocket handshake's span"
    );

    // A forged or malformed trace context never reaches Reflex: a new trace starts.
    for extra in [
        json!({"traceparent": format!("00-{}-{SPAN}-01", TRACE.to_uppercase()), "tracestate": "evil=1"}),
        json!({"traceparent": {"an": "object"}, "tracestate": 5}),
        json!({}),
    ] {
        ws.send(Message::text(event_with("state.b", extra.clone()))).await.unwrap();
        let frame = forwarded_frame(&mut s).await;
        let ev = &serde_json::from_str::<Value>(frame.strip_prefix("42/_event,").unwrap()).unwrap()[1];
        let (trace, _, _) = traceparent_parts(ev["traceparent"].as_str().unwrap_or_else(|| panic!("{frame}")));
        assert_ne!(trace, TRACE, "{extra}");
        assert!(ev.get("tracestate").is_none(), "{frame}");
        assert_eq!(ev["name"], "state.b");
    }
}
