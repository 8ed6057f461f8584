//! Upstream pools against in-process upstreams on loopback: balancing, rendezvous
//! hashing of the Reflex token, passive ejection of an endpoint that refuses
//! connections, active health checks taking an endpoint out and back, and WebSocket
//! tunnels counted by least connections.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use hyper::body::Incoming;
use isthmus::config::Config;

/// An upstream answering its own name, and 503 on `/health` while `sick` is set.
async fn named(name: &'static str, sick: Arc<AtomicBool>) -> SocketAddr {
    upstream(move |req: Request<Incoming>| {
        let sick = sick.clone();
        async move {
            if req.uri().path() == "/health" && sick.load(Ordering::Relaxed) {
                let mut res = text("sick");
                *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                return res;
            }
            text(name)
        }
    })
    .await
}

fn pool_config(site: &Site, endpoints: &[SocketAddr], fields: &str) -> Config {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"http://{a}\"")).collect();
    site.config_text(&format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[upstreams.app]\nendpoints = [{}]\n{fields}\n\
         [[routing.routers]]\nplugin = \"test.wasm\"\n",
        list.join(", ")
    ))
}

async fn answers(gw: &RunningGateway, path: &str, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let (status, _, body) = get(&gw.url(path)).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        seen.push(String::from_utf8_lossy(&body).into_owned());
    }
    seen
}

fn count(seen: &[String], name: &str) -> usize {
    seen.iter().filter(|s| *s == name).count()
}

#[tokio::test]
async fn round_robin_and_least_conn_spread_requests_over_every_endpoint() {
    let ok = Arc::new(AtomicBool::new(false));
    let (a, b, c) = (named("a", ok.clone()).await, named("b", ok.clone()).await, named("c", ok.clone()).await);
    let site = Site::new();
    let gw = start_gateway(
        &pool_config(&site, &[a, b, c], "balance = \"round_robin\""),
        vec![router("r", |_| Ok(forward("app")))],
    )
    .await;
    let seen = answers(&gw, "/x", 30).await;
    for name in ["a", "b", "c"] {
        assert_eq!(count(&seen, name), 10, "{seen:?}");
    }
    // Least connections (the default), one request at a time: every endpoint is as idle
    // as the others, and ties take turns.
    let site = Site::new();
    let gw = start_gateway(&pool_config(&site, &[a, b, c], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    let seen = answers(&gw, "/x", 30).await;
    for name in ["a", "b", "c"] {
        assert!(count(&seen, name) >= 5, "{seen:?}");
    }
}

#[tokio::test]
async fn hash_keeps_a_reflex_token_on_one_endpoint_on_every_gateway_and_falls_back_without_one() {
    let ok = Arc::new(AtomicBool::new(false));
    let (a, b) = (named("a", ok.clone()).await, named("b", ok.clone()).await);
    let fields = "balance = \"hash\"\nhash_key = [\"query:token\", \"header:reflex-client-token\"]";
    // Two gateways with the same endpoints: each token lands on the same endpoint on both.
    let (site1, site2) = (Site::new(), Site::new());
    let gw1 = start_gateway(&pool_config(&site1, &[a, b], fields), vec![router("r", |_| Ok(forward("app")))]).await;
    let gw2 = start_gateway(&pool_config(&site2, &[a, b], fields), vec![router("r", |_| Ok(forward("app")))]).await;
    let mut per_endpoint = std::collections::HashMap::new();
    for i in 0..40 {
        let path = format!("/_event/?EIO=4&transport=polling&token=token-{i}");
        let one = answers(&gw1, &path, 3).await;
        assert!(one.iter().all(|s| *s == one[0]), "token-{i}: {one:?}");
        assert_eq!(answers(&gw2, &path, 1).await[0], one[0], "the other gateway agrees on token-{i}");
        // An upload carries the same token in its header: same endpoint.
        let req = Request::post(gw1.url("/_upload")).header("reflex-client-token", format!("token-{i}"));
        let (_, _, body) = send(req.body(http_body_util::Full::new(bytes::Bytes::new())).unwrap()).await;
        assert_eq!(String::from_utf8_lossy(&body), one[0], "upload of token-{i}");
        *per_endpoint.entry(one[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(per_endpoint.len(), 2, "tokens spread over both endpoints: {per_endpoint:?}");
    assert!(per_endpoint.values().all(|n| *n >= 8), "{per_endpoint:?}");
    // No token: balanced by least connections, so both endpoints get some.
    let seen = answers(&gw1, "/_event/?EIO=4&transport=polling", 20).await;
    assert!(count(&seen, "a") >= 5 && count(&seen, "b") >= 5, "{seen:?}");
}

/// A dead endpoint: every request is still answered (the one that met it went on to the
/// other endpoint), it is ejected once for the ejection time, not tried on every turn,
/// and the log, the metrics and the access log say so.
#[tokio::test]
async fn an_endpoint_refusing_connections_is_ejected_and_its_requests_go_to_the_others() {
    let log = global_log();
    let ok = Arc::new(AtomicBool::new(false));
    let (a, dead) = (named("a", ok.clone()).await, dead_port().await);
    let site = Site::new();
    let config = pool_config(&site, &[dead, a], "balance = \"round_robin\"");
    let gateway = Arc::new(
        isthmus::dispatch::Gateway::new(
            &config,
            isthmus::policy::RouterChain::new(vec![router("r", |_| Ok(forward("app")))]),
            None,
            metrics(&config),
        )
        .unwrap(),
    );
    let gw = start_with(gateway.clone(), &config).await;
    let seen = answers(&gw, "/x", 20).await;
    assert_eq!(count(&seen, "a"), 20);

    let scrape = gateway.metrics().encode(false);
    let ejections = format!("isthmus_upstream_ejections_total{{upstream=\"app\",endpoint=\"{dead}\"}}");
    assert_eq!(sample(&scrape, &ejections), Some(1.0), "{scrape}");
    assert_eq!(sample(&scrape, "isthmus_upstream_connect_errors_total{upstream=\"app\"}"), Some(1.0), "{scrape}");

    let dead = format!("app ({dead})");
    eventually(|| log.line_with_all(&["endpoint ejected after a failed connect", &dead]).is_some(), "ejection logged")
        .await;
    // (The test binary's log has colours between a field's name and its value.)
    let served = format!("\"{a}\"");
    eventually(|| log.line_with_all(&["isthmus::access", "endpoint", &served]).is_some(), "endpoint logged").await;
}

#[tokio::test]
async fn active_health_checks_take_a_sick_endpoint_out_and_bring_it_back() {
    let log = global_log();
    let (sick_a, sick_b) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (a, b) = (named("a", sick_a.clone()).await, named("b", sick_b.clone()).await);
    let site = Site::new();
    let fields = "balance = \"round_robin\"\n\
                  health = { path = \"/health\", interval = \"30ms\", timeout = \"500ms\", healthy_threshold = 2, unhealthy_threshold = 2 }";
    let gw = start_gateway(&pool_config(&site, &[a, b], fields), vec![router("r", |_| Ok(forward("app")))]).await;
    assert_eq!(count(&answers(&gw, "/x", 10).await, "b"), 5);

    sick_b.store(true, Ordering::Relaxed);
    eventually(|| log.line_with_all(&[&format!("app ({b})"), "out of the pool"]).is_some(), "b taken out").await;
    assert_eq!(count(&answers(&gw, "/x", 10).await, "a"), 10, "b gets nothing while sick");

    sick_b.store(false, Ordering::Relaxed);
    eventually(|| log.line_with_all(&[&format!("app ({b})"), "back in the pool"]).is_some(), "b back").await;
    assert_eq!(count(&answers(&gw, "/x", 10).await, "b"), 5);

    // Every endpoint failing its checks: they are still tried (a 200 beats a certain 503).
    sick_a.store(true, Ordering::Relaxed);
    sick_b.store(true, Ordering::Relaxed);
    eventually(|| log.line_with_all(&[&format!("app ({a})"), "out of the pool"]).is_some(), "a out").await;
    let seen = answers(&gw, "/x", 4).await;
    assert_eq!(seen.len(), 4);
}

#[tokio::test]
async fn open_websockets_count_as_connections_so_new_ones_go_to_the_idler_endpoint() {
    let (a, b) = (websocket_echo().await, websocket_echo().await);
    let site = Site::new();
    let gw = start_gateway(&pool_config(&site, &[a, b], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    let mut sockets = Vec::new();
    let mut served = std::collections::HashMap::new();
    for _ in 0..6 {
        let (ws, res) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr)).await.unwrap();
        *served.entry(res.headers()["x-served-by"].to_str().unwrap().to_owned()).or_insert(0) += 1;
        sockets.push(ws);
    }
    // Each open tunnel counts on its endpoint: least connections alternates.
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(served.values().all(|n| *n == 3), "{served:?}");
    // The tunnels work, and closing them gives the endpoints back their counts.
    for ws in &mut sockets {
        ws.send(tokio_tungstenite::tungstenite::Message::text("hi")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap().into_text().unwrap().as_str(), "hi");
    }
}
