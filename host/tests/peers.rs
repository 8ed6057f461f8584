//! Several gateways sharing one Redis (`[redis]`, `isthmus::peers`), each test with a
//! real `redis-server` of its own on a free loopback port (Debian's package:
//! `tests/redis-server.sh` installs it), stopped by PID: a login or logout through one
//! gateway reaches the other at once, far below the identity TTL; with Redis down or
//! not yet up, both keep serving from their caches and say so, and the link comes back
//! with Redis; the channel never carries a session or browser id; messages not signed
//! by the site's gateways change nothing. Without `[redis]` nothing starts.
//!
//! Run: `cargo test -p isthmus --test peers` (`-- --nocapture` prints the latencies).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::stand_ins::{fake_reflex, rebind_token, FakeDjango, BRIDGE_SECRET, IDENTITY_SECRET};
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use isthmus::metrics::Metrics;
use isthmus::policy::{BridgeEvent, BridgePolicy, Decision, FailMode, Needs, PolicyFailure, Reply, Resolved};
use isthmus::policy::{RouteRequest, Router, RouterChain, Verdict};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// Far above every wait below: an identity seen on the other gateway within a second
/// was dropped by its message, never by the TTL.
const TTL: &str = "60s";
/// How long a change may take to reach the other gateway.
const AT_ONCE: Duration = Duration::from_secs(1);
const BROWSER: &str = "0123456789abcdef0123456789abcdef";

/// A `redis-server` on a loopback port of its own, stopped (SIGKILL, by PID) when
/// dropped or killed; `start` again brings it back on the same port.
struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    /// Not started yet. `None` (the test is skipped) only when redis-server is missing
    /// and ISTHMUS_NO_REDIS=1 says to skip; missing otherwise, the test fails.
    fn new() -> Option<Redis> {
        if let Err(e) = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status() {
            if std::env::var_os("ISTHMUS_NO_REDIS").is_some_and(|v| v == "1") {
                eprintln!("redis-server not run ({e}); ISTHMUS_NO_REDIS=1");
                return None;
            }
            panic!("redis-server cannot be run ({e}): run tests/redis-server.sh (tests/run.sh does), or set ISTHMUS_NO_REDIS=1");
        }
        Some(Redis { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Start it and wait until it answers PING.
    async fn start(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self.answers_ping().await {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not answer on {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn answers_ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else { return false };
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && stream.read_exact(&mut answer).await.is_ok()
            && &answer == b"+PONG\r\n"
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A router that needs the user: `/whoami` answers the username the gateway resolved
/// (cached), the bridge path goes to Reflex, the rest to Django.
struct WhoAmI;

impl Router for WhoAmI {
    fn name(&self) -> &str {
        "whoami"
    }
    fn fail_mode(&self) -> FailMode {
        FailMode::Closed
    }
    fn needs(&self) -> Needs {
        Needs { identity: true }
    }
    fn route(&self, req: &Arc<RouteRequest>, who: Option<&Arc<Resolved>>) -> Result<Decision, PolicyFailure> {
        Ok(match req.path.as_str() {
            "/whoami" => Decision::Reply(Reply {
                status: 200,
                headers: vec![],
                body: who.map(|w| w.identity.username.clone()).unwrap_or_default().into_bytes(),
            }),
            path if path.starts_with("/_event") => forward("reflex"),
            _ => forward("django"),
        })
    }
}

struct AllowAll;

impl BridgePolicy for AllowAll {
    fn name(&self) -> &str {
        "allow-all"
    }
    fn fail_mode(&self) -> FailMode {
        FailMode::Closed
    }
    fn on_connect(&self, _: &Arc<RouteRequest>, _: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        Ok(Verdict::Allow(vec![]))
    }
    fn on_event(&self, _: &Arc<BridgeEvent>, _: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        Ok(Verdict::Allow(vec![]))
    }
}

/// Django and Reflex stand-ins, shared by the gateways of a test.
struct Upstreams {
    django: FakeDjango,
    django_addr: SocketAddr,
    reflex_addr: SocketAddr,
}

async fn upstreams() -> Upstreams {
    let django = FakeDjango::default();
    let django_addr = django.serve().await;
    let (reflex_addr, _frames) = fake_reflex().await;
    Upstreams { django, django_addr, reflex_addr }
}

struct Gw {
    running: RunningGateway,
    metrics: Arc<Metrics>,
    _site: Site,
}

impl Gw {
    fn sample(&self, series: &str) -> Option<f64> {
        sample(&self.metrics.encode(false), series)
    }

    fn up(&self) -> Option<f64> {
        self.sample("isthmus_redis_up")
    }

    fn count(&self, outcome: &str) -> f64 {
        self.sample(&format!("isthmus_redis_invalidations_total{{outcome=\"{outcome}\"}}")).expect("exported")
    }
}

/// A gateway with the bridge and, with `redis` (its URL and channel), `[redis]`.
async fn gateway(up: &Upstreams, redis: Option<(&str, &str)>) -> Gw {
    let site = Site::new();
    site.config(&[("django", up.django_addr), ("reflex", up.reflex_addr)], "");
    let mut text = std::fs::read_to_string(site.path().join("isthmus.toml")).unwrap();
    text += &format!(
        "\n[bridge]\nidentity_secret = \"{IDENTITY_SECRET}\"\nbridge_secret = \"{BRIDGE_SECRET}\"\nidentity_ttl = \"{TTL}\"\n[bridge.policy]\nplugin = \"test.wasm\"\n"
    );
    if let Some((url, channel)) = redis {
        text += &format!("\n[redis]\nurl = \"{url}\"\nchannel = \"{channel}\"\n");
    }
    let config = site.config_text(&text);
    let metrics = metrics(&config);
    let gateway = isthmus::dispatch::Gateway::new(
        &config,
        RouterChain::new(vec![Arc::new(WhoAmI) as Arc<dyn Router>]),
        Some(Arc::new(AllowAll)),
        metrics.clone(),
    )
    .unwrap();
    Gw { running: start_with(Arc::new(gateway), &config).await, metrics, _site: site }
}

/// Wait up to `within` for `done`.
async fn wait(within: Duration, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn links_up(gateways: &[&Gw]) {
    let within = isthmus::limits::REDIS_RECONNECT_MAX + Duration::from_secs(10);
    wait(within, "every link up", || gateways.iter().all(|g| g.up() == Some(1.0))).await;
}

async fn request(gw: &Gw, method: &str, path: &str, cookies: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(gw.running.url(path)).header("cookie", cookies);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let (status, _, body) = send(req.body(http_body_util::Full::new(bytes::Bytes::new())).unwrap()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The user `gw` resolves for session cookie `session`.
async fn whoami(gw: &Gw, session: &str) -> String {
    let (status, body) = request(gw, "GET", "/whoami", &format!("sessionid={session}"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Poll `gw` until it resolves `session` as nobody; how long that took from `since`.
async fn until_anonymous(gw: &Gw, session: &str, since: Instant) -> Duration {
    loop {
        if whoami(gw, session).await.is_empty() {
            return since.elapsed();
        }
        assert!(since.elapsed() < AT_ONCE, "the identity of {session} is still cached after {AT_ONCE:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

type Page = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An open bridged page on `gw` with these cookies, connected to the namespace.
async fn open_page(gw: &Gw, cookies: &str) -> Page {
    let mut req = format!("ws://{}/_event/?EIO=4&transport=websocket", gw.running.addr).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookies.parse().unwrap());
    let (mut page, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert!(next_text(&mut page).await.starts_with("0{"));
    page.send(Message::text("40/_event,{}")).await.unwrap();
    assert!(next_text(&mut page).await.starts_with("40/_event"));
    page
}

async fn next_text(page: &mut Page) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), page.next()).await.expect("a frame within 5 s") {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("the page's socket ended: {other:?}"),
        }
    }
}

/// The page is asked to re-read its session within `AT_ONCE` of `since`: its token, and when.
async fn asked_to_rebind(page: &mut Page, since: Instant) -> (String, Duration) {
    let frame = tokio::time::timeout(AT_ONCE, next_text(page)).await.expect("the page was asked at once");
    (rebind_token(&frame), since.elapsed())
}

#[tokio::test]
async fn a_logout_or_login_through_one_gateway_reaches_the_other_at_once() {
    let Some(mut redis) = Redis::new() else { return };
    redis.start().await;
    let up = upstreams().await;
    up.django.user("alice-session", "alice", false);
    let (a, b) =
        (gateway(&up, Some((&redis.url(), "at-once"))).await, gateway(&up, Some((&redis.url(), "at-once"))).await);
    links_up(&[&a, &b]).await;

    // B has alice cached: asked Django once.
    assert_eq!(whoami(&b, "alice-session").await, "alice");
    let calls = up.django.identity_calls.load(Ordering::SeqCst);
    assert_eq!(whoami(&b, "alice-session").await, "alice");
    assert_eq!(up.django.identity_calls.load(Ordering::SeqCst), calls, "cached on B");
    // And an open page of her browser on B.
    let mut page = open_page(&b, &format!("isthmus_browser={BROWSER}; sessionid=alice-session")).await;

    // She logs out through A (times from the request sent: its round trip included).
    let logout = Instant::now();
    let (status, _) =
        request(&a, "POST", "/logout", &format!("isthmus_browser={BROWSER}; sessionid=alice-session"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (mut token, page_asked) = asked_to_rebind(&mut page, logout).await;
    let dropped = until_anonymous(&b, "alice-session", logout).await;
    eprintln!("logout through A: B's page asked after {page_asked:?}, B's cached identity dropped within {dropped:?}");

    // The page re-reads its browser's session on B (none now); then logins through A in
    // other tabs of the browser: each time the page on B is asked again.
    const LOGINS: usize = 20;
    let mut asked = Vec::new();
    for _ in 0..LOGINS {
        let rebind = [("x-isthmus-rebind", token.as_str())];
        let (status, _) = request(&b, "POST", "/_isthmus/rebind", &format!("isthmus_browser={BROWSER}"), &rebind).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let login = Instant::now();
        let (status, _) = request(&a, "POST", "/login?as=bob", &format!("isthmus_browser={BROWSER}"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        let took;
        (token, took) = asked_to_rebind(&mut page, login).await;
        asked.push(took);
    }
    asked.sort();
    eprintln!(
        "{LOGINS} logins through A: B's page asked after {:?} (median), {:?} (most)",
        asked[LOGINS / 2],
        asked[LOGINS - 1]
    );

    assert_eq!((a.count("sent"), b.count("received")), (1.0 + LOGINS as f64, 1.0 + LOGINS as f64));
    assert_eq!((a.count("received"), b.count("sent")), (0.0, 0.0), "a gateway skips its own messages");
    assert_eq!((a.count("rejected"), b.count("rejected"), a.count("dropped")), (0.0, 0.0, 0.0));
}

#[tokio::test]
async fn with_redis_down_both_serve_from_their_caches_say_so_once_and_recover_with_it() {
    let log = global_log();
    let Some(mut redis) = Redis::new() else { return };
    let up = upstreams().await;
    up.django.user("alice-session", "alice", false);
    let lines = |needle: &str| {
        let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
        // The channel names this test's gateways (the log is the test binary's).
        text.lines().filter(|l| l.contains(needle) && l.contains("outage-channel")).count()
    };

    // Redis is not there yet: the gateways start and serve all the same.
    let (a, b) = (
        gateway(&up, Some((&redis.url(), "outage-channel"))).await,
        gateway(&up, Some((&redis.url(), "outage-channel"))).await,
    );
    assert_eq!(
        (whoami(&a, "alice-session").await, whoami(&b, "alice-session").await),
        ("alice".into(), "alice".into())
    );
    wait(Duration::from_secs(5), "both say the link is down", || lines("Redis link down") == 2).await;
    assert_eq!((a.up(), b.up()), (Some(0.0), Some(0.0)));

    redis.start().await;
    links_up(&[&a, &b]).await;
    wait(Duration::from_secs(5), "both say the link is up", || lines("Redis link up") == 2).await;

    // Redis dies: both keep serving alice from their caches, without asking Django.
    redis.kill();
    wait(Duration::from_secs(5), "both links down", || a.up() == Some(0.0) && b.up() == Some(0.0)).await;
    let calls = up.django.identity_calls.load(Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(
        (whoami(&a, "alice-session").await, whoami(&b, "alice-session").await),
        ("alice".into(), "alice".into())
    );
    assert!(started.elapsed() < Duration::from_millis(500), "served at once: {:?}", started.elapsed());
    assert_eq!(up.django.identity_calls.load(Ordering::SeqCst), calls, "from the caches");
    // Said once each, however many reconnects fail meanwhile (100 ms, 200 ms, 400 ms…).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(lines("Redis link down"), 4, "one line per gateway per outage");

    // Redis is back: so are the links, and a logout through A reaches B at once again.
    let restarted = Instant::now();
    redis.start().await;
    links_up(&[&a, &b]).await;
    eprintln!("Redis restarted: both links up after {:?}", restarted.elapsed());
    wait(Duration::from_secs(5), "both say the link is back", || lines("Redis link up") == 4).await;
    let logout = Instant::now();
    let (status, _) = request(&a, "POST", "/logout", "sessionid=alice-session", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let dropped = until_anonymous(&b, "alice-session", logout).await;
    eprintln!("after the restart, a logout through A dropped B's cached identity within {dropped:?}");
}

#[tokio::test]
async fn the_channel_never_carries_a_session_or_browser_id() {
    let Some(mut redis) = Redis::new() else { return };
    redis.start().await;
    let up = upstreams().await;
    let a = gateway(&up, Some((&redis.url(), "wire"))).await;
    links_up(&[&a]).await;
    // A subscriber of our own, as anyone with access to Redis could be.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut subscriber = client.get_async_pubsub().await.unwrap();
    subscriber.subscribe("wire").await.unwrap();

    let (status, _) =
        request(&a, "POST", "/login?as=bob", &format!("isthmus_browser={BROWSER}; sessionid=anon-session"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        request(&a, "POST", "/logout", &format!("isthmus_browser={BROWSER}; sessionid=bob-session"), &[]).await;
    assert_eq!(status, StatusCode::OK);

    let mut messages = subscriber.on_message();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(Duration::from_secs(2), messages.next()).await.expect("published").unwrap();
        seen.push(String::from_utf8(message.get_payload_bytes().to_vec()).unwrap());
    }
    for secret in ["anon-session", "bob-session", BROWSER] {
        // Nor in the encodings a careless implementation might use, nor as a bare SHA-256.
        let sha = Sha256::digest(secret.as_bytes());
        let forms = [
            secret.to_owned(),
            URL_SAFE_NO_PAD.encode(secret),
            hex(secret.as_bytes()),
            hex(&sha),
            URL_SAFE_NO_PAD.encode(sha),
        ];
        for message in &seen {
            assert!(message.starts_with("isthmus1 "), "{message}");
            for form in &forms {
                assert!(!message.contains(form.as_str()), "{message} carries {secret} as {form}");
            }
        }
    }
    eprintln!("on the channel: {seen:?}");
}

#[tokio::test]
async fn messages_not_signed_by_the_sites_gateways_are_counted_and_change_nothing() {
    let Some(mut redis) = Redis::new() else { return };
    redis.start().await;
    let up = upstreams().await;
    up.django.user("alice-session", "alice", false);
    let b = gateway(&up, Some((&redis.url(), "forged"))).await;
    links_up(&[&b]).await;
    assert_eq!(whoami(&b, "alice-session").await, "alice");
    let calls = up.django.identity_calls.load(Ordering::SeqCst);

    // Whoever can publish: garbage, and a well-formed logout of every session a digest
    // could name, with a made-up signature.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
    let digest = URL_SAFE_NO_PAD.encode([0u8; 32]);
    let signature = URL_SAFE_NO_PAD.encode([1u8; 32]);
    for message in ["hello".to_owned(), format!("isthmus1 AAAAAAAAAAAAAAAAAAAAAA {digest} {digest} 1 {signature}")] {
        let receivers: usize = redis::AsyncCommands::publish(&mut publisher, "forged", message).await.unwrap();
        assert_eq!(receivers, 1);
    }
    wait(Duration::from_secs(2), "both counted", || b.count("rejected") == 2.0).await;
    assert_eq!((b.count("received"), b.up()), (0.0, Some(1.0)), "applied nothing, and the link stays up");
    assert_eq!(whoami(&b, "alice-session").await, "alice");
    assert_eq!(up.django.identity_calls.load(Ordering::SeqCst), calls, "still cached");
}

#[tokio::test]
async fn without_redis_no_link_starts_and_no_redis_series_is_exported() {
    let up = upstreams().await;
    up.django.user("alice-session", "alice", false);
    let a = gateway(&up, None).await;
    assert_eq!(whoami(&a, "alice-session").await, "alice");
    let (status, _) = request(&a, "POST", "/logout", "sessionid=alice-session", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(whoami(&a, "alice-session").await, "", "dropped here, as ever");
    assert!(!a.metrics.encode(false).contains("isthmus_redis"));
}
