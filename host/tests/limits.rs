//! Resource-exhaustion caps: each one reached, refused as documented, counted, and
//! released once what held it ends; and the two slow-client timeouts.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use isthmus::config::Config;
use isthmus::dispatch::Gateway;
use isthmus::metrics::Metrics;
use isthmus::policy::RouterChain;

/// A gateway forwarding everything to upstream `app`, and its metrics.
async fn gateway(config: &Config) -> (RunningGateway, Arc<Metrics>) {
    let metrics = metrics(config);
    let chain = RouterChain::new(vec![router("r", |_| Ok(forward("app")))]);
    let gateway = Arc::new(Gateway::new(config, chain, None, metrics.clone()).unwrap());
    (start_with(gateway, config).await, metrics)
}

fn refusals(metrics: &Metrics, limit: &str) -> f64 {
    sample(&metrics.encode(false), &format!("isthmus_limit_refusals_total{{limit=\"{limit}\"}}")).unwrap_or(0.0)
}

/// A connection to `gw` from local address `from` (any 127.0.0.0/8 address is loopback on Linux).
async fn connect_from(from: &str, gw: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(gw).await.unwrap()
}

/// One keep-alive request on `stream`; its response head and body, as text.
async fn request(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET / HTTP/1.1\r\nhost: gw\r\n\r\n").await.unwrap();
    answer(stream).await
}

/// The next response on `stream` (a small one, read at once), as text.
async fn answer(stream: &mut TcpStream) -> String {
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("an answer").unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// All a refused connection is told, up to its close.
async fn refusal(mut stream: TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await.expect("closed").unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// Connect until a connection is answered `status`, for up to 5 s (a closed
/// connection's slot comes back once the gateway has seen the close).
async fn served_again(from: &str, gw: SocketAddr, status: &str) -> TcpStream {
    let start = Instant::now();
    loop {
        let mut stream = connect_from(from, gw).await;
        let answer = request(&mut stream).await;
        if answer.starts_with(&format!("HTTP/1.1 {status}")) {
            return stream;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still refused after 5 s: {answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A GET sent in the background.
fn spawn_get(url: String) -> tokio::task::JoinHandle<(StatusCode, http::HeaderMap, Bytes)> {
    tokio::spawn(async move { get(&url).await })
}

async fn ok_upstream() -> SocketAddr {
    upstream(|_| async { text("ok") }).await
}

#[tokio::test]
async fn connections_past_max_connections_get_503_until_one_closes() {
    let site = Site::new();
    let config = site.config(&[("app", ok_upstream().await)], "max_connections = 2\n");
    let (gw, metrics) = gateway(&config).await;
    let mut first = connect_from("127.0.0.1", gw.addr).await;
    let mut second = connect_from("127.0.0.2", gw.addr).await;
    assert!(request(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(request(&mut second).await.starts_with("HTTP/1.1 200"));

    let third = refusal(connect_from("127.0.0.3", gw.addr).await).await;
    assert!(third.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{third}");
    assert!(third.contains("connection: close\r\n") && third.ends_with("too many connections, retry 1s"), "{third}");
    assert_eq!(refusals(&metrics, "listen.max_connections"), 1.0);

    drop(first);
    let _fourth = served_again("127.0.0.3", gw.addr, "200").await;
    assert!(request(&mut second).await.starts_with("HTTP/1.1 200"), "the others are untouched");
}

#[tokio::test]
async fn connections_past_max_connections_per_ip_get_429_and_other_addresses_are_served() {
    let site = Site::new();
    let config = site.config(&[("app", ok_upstream().await)], "max_connections_per_ip = 2\n");
    let (gw, metrics) = gateway(&config).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from("127.0.0.1", gw.addr).await;
        assert!(request(&mut stream).await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let refused = refusal(connect_from("127.0.0.1", gw.addr).await).await;
    assert!(refused.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{refused}");
    assert_eq!(refusals(&metrics, "listen.max_connections_per_ip"), 1.0);

    let mut other = connect_from("127.0.0.2", gw.addr).await;
    assert!(request(&mut other).await.starts_with("HTTP/1.1 200"), "another address has its own count");

    held.pop();
    let _again = served_again("127.0.0.1", gw.addr, "200").await;
}

#[test]
fn the_per_ip_cap_is_off_behind_trusted_proxies_unless_set() {
    let site = Site::new();
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(site.config(&[("app", up)], "").listen.per_ip_cap(), Some(isthmus::limits::MAX_CONNECTIONS_PER_IP));
    assert_eq!(site.config(&[("app", up)], "trusted_hops = 1\n").listen.per_ip_cap(), None);
    assert_eq!(
        site.config(&[("app", up)], "trusted_hops = 1\nmax_connections_per_ip = 50\n").listen.per_ip_cap(),
        Some(50)
    );
    assert_eq!(site.config(&[("app", up)], "max_connections_per_ip = 0\n").listen.per_ip_cap(), None);
}

/// An upstream answering `/hold` only once the test adds a permit to `release`.
async fn holding_upstream(release: Arc<Semaphore>) -> SocketAddr {
    upstream(move |req| {
        let release = release.clone();
        async move {
            if req.uri().path() == "/hold" {
                release.acquire().await.unwrap().forget();
            }
            text("ok")
        }
    })
    .await
}

fn one_connection_config(site: &Site, up: SocketAddr, connect: &str) -> Config {
    site.config_text(&format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[timeouts]\nconnect = \"{connect}\"\n\
         [upstreams.app]\nurl = \"http://{up}\"\nmax_connections = 1\n\
         [[routing.routers]]\nplugin = \"test.wasm\"\n"
    ))
}

#[tokio::test]
async fn a_request_past_an_upstreams_max_connections_waits_then_gets_503() {
    let release = Arc::new(Semaphore::new(0));
    let site = Site::new();
    let config = one_connection_config(&site, holding_upstream(release.clone()).await, "300ms");
    let (gw, metrics) = gateway(&config).await;

    let held = spawn_get(gw.url("/hold"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let (status, headers, body) = get(&gw.url("/fast")).await;
    let waited = start.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert_eq!(headers["retry-after"], "1");
    assert!(String::from_utf8_lossy(&body).starts_with("503 Service Unavailable\nrequest id: "), "{body:?}");
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(2), "waited {waited:?}");
    assert_eq!(refusals(&metrics, "upstreams.app.max_connections"), 1.0);

    release.add_permits(1);
    assert_eq!(held.await.unwrap().0, StatusCode::OK);
    assert_eq!(get(&gw.url("/fast")).await.0, StatusCode::OK, "the connection came back");
}

#[tokio::test]
async fn a_request_waiting_for_an_upstream_connection_gets_it_when_it_comes_back() {
    let release = Arc::new(Semaphore::new(0));
    let site = Site::new();
    let config = one_connection_config(&site, holding_upstream(release.clone()).await, "5s");
    let (gw, metrics) = gateway(&config).await;

    let held = spawn_get(gw.url("/hold"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = spawn_get(gw.url("/fast"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the second request waits for the one connection");
    release.add_permits(1);
    assert_eq!(held.await.unwrap().0, StatusCode::OK);
    assert_eq!(waiting.await.unwrap().0, StatusCode::OK);
    assert_eq!(refusals(&metrics, "upstreams.app.max_connections"), 0.0);
}

#[tokio::test]
async fn a_tunnel_holds_its_upstream_connection_until_it_closes() {
    let site = Site::new();
    let config = one_connection_config(&site, websocket_echo().await, "200ms");
    let (gw, _) = gateway(&config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr)).await.unwrap();
    let (status, _, body) = get(&gw.url("/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    ws.close(None).await.unwrap();
    drop(ws);
    let start = Instant::now();
    // The echo upstream drops a plain GET (not a WebSocket handshake): any answer but
    // 503 shows the gateway could connect to it again.
    while get(&gw.url("/")).await.0 == StatusCode::SERVICE_UNAVAILABLE {
        assert!(start.elapsed() < Duration::from_secs(5), "the tunnel's connection never came back");
    }
}

#[tokio::test]
async fn upgrades_past_max_websockets_get_503_until_one_closes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Error, Message};
    let site = Site::new();
    let config = site.config(&[("app", websocket_echo().await)], "max_websockets = 1\n");
    let (gw, metrics) = gateway(&config).await;
    let url = format!("ws://{}/_event/?EIO=4&transport=websocket", gw.addr);

    let (mut first, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match tokio_tungstenite::connect_async(&url).await {
        Err(Error::Http(res)) => assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE),
        other => panic!("a second WebSocket past the cap: {:?}", other.map(|(_, res)| res.status())),
    }
    assert_eq!(refusals(&metrics, "listen.max_websockets"), 1.0);
    first.send(Message::text("still open")).await.unwrap();
    assert_eq!(first.next().await.unwrap().unwrap().into_text().unwrap().as_str(), "still open");

    first.close(None).await.unwrap();
    drop(first);
    let start = Instant::now();
    let (mut again, _) = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok(pair) => break pair,
            Err(e) => assert!(start.elapsed() < Duration::from_secs(5), "still refused after 5 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    again.send(Message::text("again")).await.unwrap();
    assert_eq!(again.next().await.unwrap().unwrap().into_text().unwrap().as_str(), "again");
}

#[tokio::test]
async fn a_request_body_that_stalls_gets_408_within_client_body() {
    // Reads the whole body before answering, as Django does.
    let up = upstream(|req: http::Request<hyper::body::Incoming>| async move {
        match req.into_body().collect().await {
            Ok(body) => text(format!("{} bytes", body.to_bytes().len())),
            Err(e) => text(format!("body failed: {e}")),
        }
    })
    .await;
    let site = Site::new();
    let config = site.config(&[("app", up)], "[timeouts]\nclient_body = \"300ms\"\n");
    let (gw, metrics) = gateway(&config).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let start = Instant::now();
    stream.write_all(b"POST /upload HTTP/1.1\r\nhost: gw\r\ncontent-length: 100\r\n\r\n0123456789").await.unwrap();
    let cut = refusal(stream).await;
    assert!(cut.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{cut}");
    assert!(cut.contains("\r\n\r\n408 Request Timeout\nrequest id: "), "{cut}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    assert_eq!(refusals(&metrics, "timeouts.client_body"), 1.0);

    // A body that keeps coming, however slowly, is not cut.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(b"POST /upload HTTP/1.1\r\nhost: gw\r\ncontent-length: 4\r\n\r\n").await.unwrap();
    for byte in b"abcd" {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(&[*byte]).await.unwrap();
    }
    let slow = answer(&mut stream).await;
    assert!(slow.starts_with("HTTP/1.1 200") && slow.ends_with("4 bytes"), "{slow}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_client_send() {
    // A response far larger than the socket buffers, streamed as long as anyone reads.
    let up = upstream(|_| async {
        use futures_util::StreamExt;
        let chunk = || Ok::<_, isthmus::body::BoxError>(hyper::body::Frame::data(Bytes::from(vec![b'x'; 65536])));
        let chunks = futures_util::stream::repeat_with(chunk).take(16 * 1024);
        http::Response::new(http_body_util::StreamBody::new(chunks).boxed_unsync())
    })
    .await;
    let site = Site::new();
    let config = site.config(&[("app", up)], "[timeouts]\nclient_send = \"500ms\"\n");
    let (gw, metrics) = gateway(&config).await;
    let open = || sample(&metrics.encode(false), "isthmus_open_connections").unwrap();

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(b"GET /big HTTP/1.1\r\nhost: gw\r\n\r\n").await.unwrap();
    eventually(|| open() == 1.0, "the connection is open").await;
    // Not reading: the gateway's writes stall once the socket buffers are full.
    let start = Instant::now();
    while open() != 0.0 {
        assert!(start.elapsed() < Duration::from_secs(5), "a client that reads nothing is still connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What was buffered arrives, then the end: far short of the 1 GiB sent.
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await.expect("closed");
    assert!(got.len() < 512 * 1024 * 1024, "got {} bytes", got.len());
}

#[tokio::test]
async fn a_connection_that_sends_nothing_or_half_a_preface_is_closed_after_client_header() {
    let site = Site::new();
    let config = site.config(&[("app", ok_upstream().await)], "[timeouts]\nclient_header = \"300ms\"\n");
    let (gw, metrics) = gateway(&config).await;
    let open = || sample(&metrics.encode(false), "isthmus_open_connections").unwrap();
    let silent = TcpStream::connect(gw.addr).await.unwrap();
    // The first bytes of the HTTP/2 preface: too few to tell HTTP/1 from HTTP/2.
    let mut half = TcpStream::connect(gw.addr).await.unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    eventually(|| open() == 2.0, "both are open").await;
    let start = Instant::now();
    while open() != 0.0 {
        assert!(start.elapsed() < Duration::from_secs(3), "{} silent connections still open", open());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for stream in [silent, half] {
        let _ = refusal(stream).await;
    }
}

#[tokio::test]
async fn the_redirect_listener_beside_tls_counts_against_the_same_caps() {
    use isthmus::caps::ConnectionCaps;
    use isthmus::redirect::Redirect;
    use isthmus::server::{self, ServerSettings};
    let site = Site::new();
    let config = site.config(&[("app", ok_upstream().await)], "max_connections = 1\n");
    let metrics = metrics(&config);
    let chain = RouterChain::new(vec![router("r", |_| Ok(forward("app")))]);
    let gateway = Arc::new(Gateway::new(&config, chain, None, metrics.clone()).unwrap());
    let caps = ConnectionCaps::from_config(&config.listen, &metrics);
    let (public, plain) = (
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (public_addr, plain_addr) = (public.local_addr().unwrap(), plain.local_addr().unwrap());
    let settings = ServerSettings::from_config(&config);
    tokio::spawn(server::serve(public, None, gateway, settings, caps.clone(), std::future::pending()));
    let redirect = Arc::new(Redirect::new(443, None, &config.timeouts, caps));
    tokio::spawn(redirect.serve(plain, std::future::pending()));

    let mut held = connect_from("127.0.0.1", public_addr).await;
    assert!(request(&mut held).await.starts_with("HTTP/1.1 200"));
    let refused = refusal(connect_from("127.0.0.1", plain_addr).await).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    drop(held);
    let _redirected = served_again("127.0.0.1", plain_addr, "308").await;
    assert_eq!(refusals(&metrics, "listen.max_connections"), 1.0);
}
