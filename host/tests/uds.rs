//! Upstreams on Unix domain sockets (`url = "unix:/path"`): real hyper servers on
//! sockets behind the gateway. Requests, WebSocket upgrades, balancing, active health
//! checks and passive ejection behave as over TCP; the access log and the metrics name
//! the socket; a dead or missing socket is a generic 502 at once.

mod common;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use isthmus::body::Body;
use isthmus::config::Config;
use tokio::net::UnixListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// An HTTP/1.1 upstream on a new socket `name.sock` in `dir`, until the test ends:
/// `/health` answers 503 while `sick` is set, `/ws` is a WebSocket echo, anything else
/// `name path host`.
fn on_socket(dir: &Path, name: &'static str, sick: Arc<AtomicBool>) -> PathBuf {
    let path = dir.join(format!("{name}.sock"));
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sick = sick.clone();
            let service = service_fn(move |req| {
                let sick = sick.clone();
                async move { Ok::<_, Infallible>(answer(name, &sick, req)) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    path
}

fn answer(name: &str, sick: &AtomicBool, mut req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/health" if sick.load(Ordering::Relaxed) => {
            let mut res = text("sick");
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            res
        }
        "/ws" => {
            let accept = derive_accept_key(req.headers()[header::SEC_WEBSOCKET_KEY].as_bytes());
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let io = TokioIo::new(upgrade.await.unwrap());
                let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() {
                        ws.send(msg).await.unwrap();
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::UPGRADE, "websocket")
                .header(header::CONNECTION, "upgrade")
                .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                .body(isthmus::body::empty())
                .unwrap()
        }
        path => {
            let host = req.headers().get(header::HOST).map_or("", |h| h.to_str().unwrap());
            text(format!("{name} {path} {host}"))
        }
    }
}

fn config(site: &Site, endpoints: &[&Path], fields: &str) -> Config {
    let list: Vec<String> = endpoints.iter().map(|p| format!("\"unix:{}\"", p.display())).collect();
    site.config_text(&format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[upstreams.app]\nendpoints = [{}]\n{fields}\n\
         [[routing.routers]]\nplugin = \"test.wasm\"\n",
        list.join(", ")
    ))
}

async fn gateway(config: &Config) -> (Arc<isthmus::dispatch::Gateway>, RunningGateway) {
    let chain = isthmus::policy::RouterChain::new(vec![router("r", |_| Ok(forward("app")))]);
    let gateway = Arc::new(isthmus::dispatch::Gateway::new(config, chain, None, metrics(config)).unwrap());
    let running = start_with(gateway.clone(), config).await;
    (gateway, running)
}

async fn bodies(gw: &RunningGateway, path: &str, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let (status, _, body) = get(&gw.url(path)).await;
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "{path}: {body}");
        seen.push(body);
    }
    seen
}

fn from(seen: &[String], name: &str) -> usize {
    seen.iter().filter(|s| s.starts_with(&format!("{name} "))).count()
}

#[tokio::test]
async fn requests_websockets_balancing_and_health_checks_work_over_unix_sockets() {
    let log = global_log();
    let dir = tempfile::tempdir().unwrap();
    let (sick_a, sick_b) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (a, b) = (on_socket(dir.path(), "a", sick_a), on_socket(dir.path(), "b", sick_b.clone()));
    let site = Site::new();
    let fields = "balance = \"round_robin\"\n\
                  health = { path = \"/health\", interval = \"30ms\", timeout = \"500ms\", healthy_threshold = 2, unhealthy_threshold = 2 }";
    let (gateway, gw) = gateway(&config(&site, &[&a, &b], fields)).await;

    // Balanced over both sockets; the client's Host reaches the upstream as over TCP.
    let seen = bodies(&gw, "/x?q=1", 10).await;
    assert_eq!((from(&seen, "a"), from(&seen, "b")), (5, 5), "{seen:?}");
    assert!(seen[0].ends_with(&format!("/x {}", gw.addr)), "{seen:?}");

    // The metrics and the access log name each endpoint by its socket.
    let (label_a, label_b) = (format!("unix:{}", a.display()), format!("unix:{}", b.display()));
    let scrape = gateway.metrics().encode(false);
    let up = format!("isthmus_upstream_endpoint_up{{upstream=\"app\",endpoint=\"{label_a}\"}}");
    assert_eq!(sample(&scrape, &up), Some(1.0), "{scrape}");
    let served = format!("\"{label_b}\"");
    eventually(|| log.line_with_all(&["isthmus::access", "endpoint", &served]).is_some(), "endpoint logged").await;

    // A WebSocket upgrade becomes a tunnel to the socket.
    let (mut ws, res) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("over a socket")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_text().unwrap().as_str(), "over a socket");

    // Active health checks take the sick socket out, and bring it back.
    sick_b.store(true, Ordering::Relaxed);
    let b_name = format!("app ({label_b})");
    eventually(|| log.line_with_all(&[&b_name, "out of the pool"]).is_some(), "b taken out").await;
    assert_eq!(from(&bodies(&gw, "/x", 6).await, "a"), 6, "b gets nothing while sick");
    sick_b.store(false, Ordering::Relaxed);
    eventually(|| log.line_with_all(&[&b_name, "back in the pool"]).is_some(), "b back").await;
    assert_eq!(from(&bodies(&gw, "/x", 6).await, "b"), 3);
}

#[tokio::test]
async fn a_dead_socket_is_ejected_and_its_requests_go_to_the_other_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let live = on_socket(dir.path(), "live", Arc::default());
    // A socket file nobody listens on any more: connections are refused.
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let site = Site::new();
    let (gateway, gw) = gateway(&config(&site, &[&dead, &live], "balance = \"round_robin\"")).await;
    assert_eq!(from(&bodies(&gw, "/x", 10).await, "live"), 10);
    let scrape = gateway.metrics().encode(false);
    let ejections =
        format!("isthmus_upstream_ejections_total{{upstream=\"app\",endpoint=\"unix:{}\"}}", dead.display());
    assert_eq!(sample(&scrape, &ejections), Some(1.0), "{scrape}");
}

/// A socket refusing connections, and one whose file does not exist (the server not
/// started yet): each a generic 502 at once, never a wait for the connect timeout.
#[tokio::test]
async fn a_dead_or_missing_socket_is_a_generic_502_at_once() {
    let log = global_log();
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let missing = dir.path().join("missing.sock");
    for (socket, cause) in [(&dead, "onnection refused"), (&missing, "No such file")] {
        let site = Site::new();
        let (_, gw) = gateway(&config(&site, &[socket], "")).await;
        let started = Instant::now();
        let (status, headers, body) = get(&gw.url("/x")).await;
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert_generic_error(status, &headers, &body, StatusCode::BAD_GATEWAY);
        let line = log.line_with(headers["x-request-id"].to_str().unwrap()).expect("the failure is logged");
        assert!(line.contains("upstream `app` is unreachable") && line.contains(cause), "{line}");
    }
}
