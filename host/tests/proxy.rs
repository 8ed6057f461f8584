//! The gateway's own HTTP behaviour against in-process upstreams on loopback.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use isthmus::policy::{Decision, FailMode, Forward, PolicyFailure, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Upstream that answers with what it received, as JSON.
async fn echo_upstream() -> std::net::SocketAddr {
    upstream(|req: Request<hyper::body::Incoming>| async move {
        let headers: serde_json::Map<String, serde_json::Value> =
            req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").into())).collect();
        let json = serde_json::json!({
            "method": req.method().as_str(),
            "uri": req.uri().to_string(),
            "version": format!("{:?}", req.version()),
            "headers": headers,
        });
        let mut res = text(json.to_string());
        res.headers_mut().insert("connection", "x-upstream-secret".parse().unwrap());
        res.headers_mut().insert("x-upstream-secret", "1".parse().unwrap());
        res
    })
    .await
}

fn json(bytes: &Bytes) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test]
async fn forwards_with_clean_and_gateway_written_headers() {
    let up = echo_upstream().await;
    let site = Site::new();
    let config = site.config(&[("app", up)], "");
    let gw = start_gateway(
        &config,
        vec![router("r", |_| {
            Ok(Decision::Forward(Forward {
                upstream: "app".into(),
                path: None,
                set_headers: vec![("x-set".into(), "yes".into())],
                remove_headers: vec!["x-drop".into()],
            }))
        })],
    )
    .await;
    let req = Request::get(gw.url("/%61pi/./x/../items?q=1&r=%2F"))
        .header("host", "shop.example")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-request-id", "client-chosen")
        .header("forwarded", "for=6.6.6.6;proto=https")
        .header("x-real-ip", "6.6.6.6")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("te", "trailers")
        .header("x-drop", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = json(&body);
    let h = &seen["headers"];
    assert_eq!(seen["uri"], "/api/items?q=1&r=%2F", "canonical path, raw query");
    assert_eq!(h["host"], "shop.example", "Host preserved");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h["x-set"], "yes");
    for gone in ["x-hop", "te", "x-drop", "connection", "forwarded", "x-real-ip"] {
        assert!(h.get(gone).is_none(), "{gone} must not reach the upstream: {h}");
    }
    let id = h["x-request-id"].as_str().unwrap();
    assert_ne!(id, "client-chosen");
    assert_eq!(id.len(), 32);
    assert_eq!(headers["x-request-id"], id, "the same id goes back to the client");
    assert!(!headers.contains_key("x-upstream-secret"), "response hop-by-hop headers removed");
}

/// Headers a client might pose as somebody with: the gateway's own namespace, identity
/// headers an authenticating proxy would set, and `_` names an ASGI server folds into
/// them. None reaches the upstream, on a request or a WebSocket handshake.
const POSING: [(&str, &str); 8] = [
    ("x-isthmus-identity", "{\"username\": \"admin\"}"),
    ("x-isthmus-secret", "guess"),
    ("x-isthmus-user", "admin"),
    ("remote-user", "admin"),
    ("x-forwarded-user", "admin"),
    ("x-auth-request-user", "admin"),
    ("x_isthmus_user", "admin"),
    ("x_forwarded_user", "admin"),
];

#[tokio::test]
async fn headers_no_client_may_send_never_reach_an_upstream_or_a_router() {
    let up = echo_upstream().await;
    let site = Site::new();
    let routed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_by_router = routed.clone();
    let ws = websocket_echo().await;
    let gw = start_gateway(
        &site.config(&[("app", up), ("ws", ws)], ""),
        vec![router("r", move |req| {
            *seen_by_router.lock().unwrap() = req.headers.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            Ok(forward(if req.path == "/ws" { "ws" } else { "app" }))
        })],
    )
    .await;
    let mut req = Request::get(gw.url("/")).header("x-django-user", "kept: nobody trusts it");
    for (name, value) in POSING {
        req = req.header(name, value);
    }
    let (status, _, body) = send(req.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let h = &json(&body)["headers"];
    for (name, _) in POSING {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {h}");
        assert!(!routed.lock().unwrap().iter().any(|k| k == name), "{name} reached the router");
    }
    assert_eq!(h["x-django-user"], "kept: nobody trusts it", "other headers pass");

    // A WebSocket handshake, through the tunnel.
    let mut handshake = format!("ws://{}/ws", gw.addr).into_client_request().unwrap();
    for (name, value) in POSING {
        handshake.headers_mut().insert(http::HeaderName::from_static(name), value.parse().unwrap());
    }
    let (_, res) = tokio_tungstenite::connect_async(handshake).await.unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    let seen: Vec<String> = res.headers().get_all("x-seen").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(seen.iter().any(|k| k == "sec-websocket-key"), "the upstream reports what it saw: {seen:?}");
    for (name, _) in POSING {
        assert!(!seen.iter().any(|k| k == name), "{name} reached the upstream's handshake: {seen:?}");
    }
}

#[tokio::test]
async fn the_removed_headers_follow_the_headers_section() {
    let up = echo_upstream().await;
    let site = Site::new();
    let config = site.config(
        &[("app", up)],
        "[headers]\nremove = [\"X-Api-User\"]\nkeep = [\"X-Forwarded-User\"]\nallow_underscores = true\n",
    );
    let gw = start_gateway(&config, vec![router("r", |_| Ok(forward("app")))]).await;
    let req = Request::get(gw.url("/"))
        .header("x-api-user", "a")
        .header("x-forwarded-user", "set by a trusted proxy in front")
        .header("remote-user", "c")
        .header("x_legacy_key", "d")
        .header("x-isthmus-user", "e")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let h = json(&send(req).await.2)["headers"].clone();
    assert_eq!(h["x-forwarded-user"], "set by a trusted proxy in front");
    assert_eq!(h["x_legacy_key"], "d");
    for gone in ["x-api-user", "remote-user", "x-isthmus-user"] {
        assert!(h.get(gone).is_none(), "{gone}: {h}");
    }
}

#[tokio::test]
async fn request_ids_are_unique() {
    let up = echo_upstream().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        let (_, headers, _) = get(&gw.url("/")).await;
        assert!(ids.insert(headers["x-request-id"].to_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn trusted_hops_keep_the_proxy_chain() {
    let up = echo_upstream().await;
    let site = Site::new();
    let config = site.config(&[("app", up)], "trusted_hops = 1\n");
    let seen_ip = Arc::new(std::sync::Mutex::new(String::new()));
    let seen = seen_ip.clone();
    let gw = start_gateway(
        &config,
        vec![router("r", move |req| {
            *seen.lock().unwrap() = format!("{} {}", req.client_ip, req.scheme);
            Ok(forward("app"))
        })],
    )
    .await;
    let req = Request::get(gw.url("/"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "from-the-edge")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, headers, body) = send(req).await;
    let h = &json(&body)["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-request-id"], "from-the-edge");
    assert_eq!(headers["x-request-id"], "from-the-edge");
    assert_eq!(*seen_ip.lock().unwrap(), "203.0.113.7 https");
}

#[tokio::test]
async fn path_rewrite_is_sent_upstream() {
    let up = echo_upstream().await;
    let site = Site::new();
    let gw = start_gateway(
        &site.config(&[("app", up)], ""),
        vec![router("r", |req| {
            Ok(Decision::Forward(Forward {
                upstream: "app".into(),
                path: Some(format!("/v2{}?rewritten=1", req.path)),
                set_headers: vec![],
                remove_headers: vec![],
            }))
        })],
    )
    .await;
    let (_, _, body) = get(&gw.url("/items?dropped=1")).await;
    assert_eq!(json(&body)["uri"], "/v2/items?rewritten=1");
}

#[tokio::test]
async fn http2_cleartext_clients_are_served() {
    let up = echo_upstream().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    // Cookies in fields of their own, as HTTP/2 allows and Chromium sends them.
    let req = Request::get(gw.url("/h2"))
        .header("cookie", "a=1")
        .header("cookie", "sessionid=s2")
        .body(Full::new(Bytes::new()));
    let res = client.request(req.unwrap()).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let seen = json(&body);
    assert_eq!(seen["version"], "HTTP/1.1", "upstreams are spoken to in HTTP/1.1");
    assert_eq!(seen["headers"]["host"], gw.addr.to_string(), "Host comes from :authority");
    assert_eq!(seen["headers"]["cookie"], "a=1; sessionid=s2", "one Cookie field upstream");
}

#[tokio::test]
async fn upstream_connections_are_pooled() {
    let connections = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                hyper_util::rt::TokioIo::new(stream),
                hyper::service::service_fn(|_| async { Ok::<_, std::convert::Infallible>(text("ok")) }),
            ));
        }
    });
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    for _ in 0..30 {
        assert_eq!(get(&gw.url("/")).await.0, StatusCode::OK);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "30 sequential requests share one upstream connection");
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    const SIZE: usize = 64 * 1024 * 1024;
    // Upstream counts what it receives, then streams back SIZE bytes in 64 KiB frames.
    let up = upstream(|req: Request<hyper::body::Incoming>| async move {
        let mut body = req.into_body();
        let mut received = 0usize;
        while let Some(frame) = body.frame().await {
            received += frame.unwrap().data_ref().map_or(0, |d| d.len());
        }
        let chunks = futures_util::stream::iter(
            (0..SIZE / 65536).map(|_| Ok::<_, isthmus::body::BoxError>(Frame::data(Bytes::from(vec![7u8; 65536])))),
        );
        let mut res = Response::new(StreamBody::new(chunks).boxed_unsync());
        res.headers_mut().insert("x-received", received.to_string().parse().unwrap());
        res
    })
    .await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    let upload = futures_util::stream::iter(
        (0..SIZE / 65536).map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![1u8; 65536])))),
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let res = client.request(Request::post(gw.url("/upload")).body(StreamBody::new(upload)).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-received"], SIZE.to_string().as_str());
    let mut body = res.into_body();
    let mut got = 0usize;
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(got, SIZE);
}

#[tokio::test]
async fn websocket_upgrades_are_tunneled() {
    let up = websocket_echo().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("ws", up)], ""), vec![router("r", |_| Ok(forward("ws")))]).await;
    let (mut ws, res) =
        tokio_tungstenite::connect_async(format!("ws://{}/_event/?EIO=4&transport=websocket", gw.addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..100 {
        let msg = format!("42/_event,[\"event\",{{\"n\":{i}}}]");
        ws.send(tokio_tungstenite::tungstenite::Message::text(msg.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap().into_text().unwrap().as_str(), msg);
    }
    ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![0u8, 1, 2, 255])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_data().as_ref(), &[0u8, 1, 2, 255]);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn unreachable_upstream_is_a_generic_502_with_the_detail_in_the_log() {
    let log = global_log();
    let dead = dead_port().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("django", dead)], ""), vec![router("r", |_| Ok(forward("django")))]).await;
    let (status, headers, body) = get(&gw.url("/admin/")).await;
    assert_generic_error(status, &headers, &body, StatusCode::BAD_GATEWAY);
    let id = headers["x-request-id"].to_str().unwrap();
    let line = log.line_with(id).expect("the failure is logged under the request id");
    assert!(line.contains("upstream `django` is unreachable") && line.contains("onnection refused"), "{line}");
}

#[tokio::test]
async fn unknown_upstream_is_a_generic_502() {
    let up = echo_upstream().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("nowhere")))]).await;
    let (status, headers, body) = get(&gw.url("/")).await;
    assert_generic_error(status, &headers, &body, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn silent_upstream_is_504_within_the_timeout() {
    // Accepts connections, reads, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            held.push(s);
        }
    });
    let site = Site::new();
    let config = site.config(&[("slow", up)], "[timeouts]\nresponse_header = \"300ms\"\n");
    let gw = start_gateway(&config, vec![router("r", |_| Ok(forward("slow")))]).await;
    let start = Instant::now();
    let (status, headers, body) = get(&gw.url("/")).await;
    assert_generic_error(status, &headers, &body, StatusCode::GATEWAY_TIMEOUT);
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn stalled_response_body_is_cut_by_the_idle_timeout() {
    let up = upstream(|_| async {
        let stream = futures_util::stream::once(async {
            Ok::<_, isthmus::body::BoxError>(Frame::data(Bytes::from_static(b"first")))
        })
        .chain(futures_util::stream::pending());
        Response::new(StreamBody::new(stream).boxed_unsync())
    })
    .await;
    let site = Site::new();
    let config = site.config(&[("app", up)], "[timeouts]\nidle = \"300ms\"\n");
    let gw = start_gateway(&config, vec![router("r", |_| Ok(forward("app")))]).await;
    let res = client().request(Request::get(gw.url("/")).body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(5), res.into_body().collect())
        .await
        .expect("the gateway must end the stalled body");
    assert!(result.is_err(), "a cut body is an error for the client, not a clean end");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn replies_failures_and_the_chain() {
    let up = echo_upstream().await;
    let site = Site::new();
    let config = site.config(&[("app", up)], "");
    let gw = start_gateway(
        &config,
        vec![
            router("maintenance", |req| {
                Ok(if req.path == "/down" {
                    Decision::Reply(Reply {
                        status: 503,
                        headers: vec![("retry-after".into(), "30".into())],
                        body: b"maintenance".to_vec(),
                    })
                } else {
                    Decision::Pass
                })
            }),
            Arc::new(FnRouter {
                name: "flaky-open".into(),
                fail: FailMode::Open,
                f: |req: &isthmus::policy::RouteRequest| {
                    if req.path == "/flaky" {
                        Err(PolicyFailure::Trap("boom".into()))
                    } else {
                        Ok(Decision::Pass)
                    }
                },
            }),
            router("strict", |req| match req.path.as_str() {
                "/broken" => Err(PolicyFailure::Deadline(Duration::from_millis(10))),
                "/compiling" => Err(PolicyFailure::Starting),
                "/unloaded" => Err(PolicyFailure::NotLoaded),
                "/flaky" | "/app" => Ok(forward("app")),
                "/bad-reply" => Ok(Decision::Reply(Reply { status: 1000, headers: vec![], body: vec![] })),
                "/no-mount" => Ok(Decision::ServeStatic("nope".into())),
                _ => Ok(Decision::Pass),
            }),
        ],
    )
    .await;
    let (status, headers, body) = get(&gw.url("/down")).await;
    assert_eq!(
        (status, headers["retry-after"].to_str().unwrap(), &body[..]),
        (StatusCode::SERVICE_UNAVAILABLE, "30", &b"maintenance"[..])
    );
    let (status, _, _) = get(&gw.url("/flaky")).await;
    assert_eq!(status, StatusCode::OK, "a fail-open router is skipped");
    let (status, headers, body) = get(&gw.url("/broken")).await;
    assert_generic_error(status, &headers, &body, StatusCode::SERVICE_UNAVAILABLE);
    let (status, headers, body) = get(&gw.url("/compiling")).await;
    assert_generic_error(status, &headers, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "2", "a router still compiling is retried shortly");
    let (status, headers, body) = get(&gw.url("/unloaded")).await;
    assert_generic_error(status, &headers, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!headers.contains_key("retry-after"));
    let (status, headers, body) = get(&gw.url("/bad-reply")).await;
    assert_generic_error(status, &headers, &body, StatusCode::BAD_GATEWAY);
    let (status, headers, body) = get(&gw.url("/no-mount")).await;
    assert_generic_error(status, &headers, &body, StatusCode::BAD_GATEWAY);
    let (status, _, _) = get(&gw.url("/elsewhere")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "every router passed");
}

#[tokio::test]
async fn static_decisions_serve_from_the_mount() {
    let site = Site::new();
    site.write("spa/index.html", "<h1>spa</h1>");
    site.write("spa/assets/app-4KQ2ZJ7M.js", "console.log(1)");
    site.write("spa/caf\u{e9} menu.txt", "accents and spaces");
    let up = echo_upstream().await;
    let config = site.config(&[("app", up)], "\n[static.frontend]\nroot = \"spa\"\nfallback = \"index.html\"\n");
    let gw = start_gateway(&config, vec![router("r", |_| Ok(Decision::ServeStatic("frontend".into())))]).await;
    let (status, headers, body) = get(&gw.url("/assets/app-4KQ2ZJ7M.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"console.log(1)");
    assert!(headers["content-type"].to_str().unwrap().contains("javascript"));
    assert!(headers["x-request-id"].len() == 32);
    let (status, _, body) = get(&gw.url("/caf%C3%A9%20menu.txt")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"accents and spaces"[..]),
        "escaped names are decoded for the disk"
    );
    let (status, _, body) = get(&gw.url("/some/page")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"<h1>spa</h1>"[..]), "SPA fallback");
    let (status, _, _) = get(&gw.url("/%2e%2e/isthmus.toml")).await;
    assert_ne!(status, StatusCode::OK);
}

/// Send raw bytes, read until the server closes or 2 s pass.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn bad_requests_get_the_right_status() {
    let up = echo_upstream().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    assert!(raw(gw.addr, b"NOT HTTP AT ALL\r\n\r\n").await.starts_with("HTTP/1.1 400"));
    assert!(raw(gw.addr, b"GET /admin%2Fsecret HTTP/1.1\r\nHost: x\r\n\r\n").await.starts_with("HTTP/1.1 400"));
    assert!(raw(gw.addr, b"GET /a\\b HTTP/1.1\r\nHost: x\r\n\r\n").await.starts_with("HTTP/1.1 400"));
    assert!(raw(gw.addr, b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n").await.starts_with("HTTP/1.1 400"));
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(100 * 1024));
    assert!(raw(gw.addr, huge.as_bytes()).await.starts_with("HTTP/1.1 431"), "huge header");
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert!(raw(gw.addr, many.as_bytes()).await.starts_with("HTTP/1.1 431"), "too many headers");
    // The host must be one, and unambiguous (RFC 9112 §3.2).
    for head in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test/evil\r\n\r\n",
        b"GET http://user@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ] {
        let answer = raw(gw.addr, head).await;
        assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("bad host"), "{answer}");
    }
    // A client's malformed body is its own fault: 400, never a 502 blaming the upstream.
    let answer =
        raw(gw.addr, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("400 Bad Request\nrequest id: "), "{answer}");
    // The gateway is still serving everyone else.
    assert_eq!(get(&gw.url("/")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_absolute_target_is_sent_with_its_own_host() {
    let up = echo_upstream().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    let answer = raw(gw.addr, b"GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await;
    let seen: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(seen["headers"]["host"], "b.test");
    assert_eq!(seen["headers"]["x-forwarded-host"], "b.test");
}

#[tokio::test]
async fn only_websocket_upgrades_are_tunneled() {
    let up = echo_upstream().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    // h2c would turn the upstream connection into HTTP/2 that no router judges: the
    // request goes as a plain one, its upgrade headers gone.
    let h2c = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nConnection: close\r\n\r\n";
    let answer = raw(gw.addr, h2c).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(seen["headers"].get(gone).is_none(), "{gone}: {seen}");
    }
    // A WebSocket upgrade on a POST is not one (RFC 6455 asks a GET).
    let post = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let answer = raw(gw.addr, post).await;
    let seen: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(seen["method"], "POST");
    assert!(seen["headers"].get("upgrade").is_none(), "{seen}");
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let up = echo_upstream().await;
    let site = Site::new();
    let config = site.config(&[("app", up)], "[timeouts]\nclient_header = \"300ms\"\n");
    let gw = start_gateway(&config, vec![router("r", |_| Ok(forward("app")))]).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the gateway closes a slow head")
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let up = upstream(|_| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        text("slow but finished")
    })
    .await;
    let site = Site::new();
    let mut gw = start_gateway(
        &site.config(&[("app", up)], "shutdown_grace = \"5s\"\n"),
        vec![router("r", |_| Ok(forward("app")))],
    )
    .await;
    let url = gw.url("/");
    let in_flight = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.stop();
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"slow but finished"[..]));
    tokio::time::timeout(Duration::from_secs(5), &mut gw.done)
        .await
        .expect("server stops after its in-flight work")
        .unwrap();
    assert!(TcpStream::connect(gw.addr).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn shutdown_grace_is_bounded() {
    let up = upstream(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        text("too late")
    })
    .await;
    let site = Site::new();
    let mut gw = start_gateway(
        &site.config(&[("app", up)], "shutdown_grace = \"300ms\"\n"),
        vec![router("r", |_| Ok(forward("app")))],
    )
    .await;
    let url = gw.url("/");
    tokio::spawn(async move { client().request(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.stop();
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), &mut gw.done).await.expect("grace period bounds shutdown").unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_connect_that_hangs_is_504_within_the_connect_timeout() {
    // A listener that never accepts, its backlog filled: further SYNs are dropped and
    // connects hang, as with an unresponsive host.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let up = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(up)).await {
            held.push(s);
        }
    }
    let site = Site::new();
    let config = site.config(&[("stuck", up)], "[timeouts]\nconnect = \"300ms\"\n");
    let gw = start_gateway(&config, vec![router("r", |_| Ok(forward("stuck")))]).await;
    let start = Instant::now();
    let (status, headers, body) = get(&gw.url("/")).await;
    assert_generic_error(status, &headers, &body, StatusCode::GATEWAY_TIMEOUT);
    assert!(start.elapsed() < Duration::from_secs(3));
    drop((listener, held));
}

/// Upstream counting the connections it accepted and those that have ended.
async fn counting_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, e) = (accepted.clone(), ended.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let e = e.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_| async { Ok::<_, std::convert::Infallible>(text("ok")) });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                e.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, accepted, ended)
}

/// What a raw upstream does after answering a connection's first request.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Close the connection at once.
    Close,
    /// Read the next request, then close without answering it.
    DropNextRequest,
}

/// Answers each connection's first request with `answer`; counts connections and requests.
async fn raw_upstream(
    answer: &'static [u8],
    then: AfterAnswer,
) -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 0..2 {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    buf.clear();
                    r.fetch_add(1, Ordering::SeqCst);
                    if n > 0 {
                        return;
                    }
                    s.write_all(answer).await.unwrap();
                    if let AfterAnswer::Close = then {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted, requests)
}

#[tokio::test]
async fn concurrent_clients_reuse_upstream_connections() {
    let (up, accepted, _) = counting_upstream().await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = gw.url("/");
            tokio::spawn(async move {
                for _ in 0..25 {
                    assert_eq!(get(&url).await.0, StatusCode::OK);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let n = accepted.load(Ordering::SeqCst);
    assert!((1..=4).contains(&n), "100 requests from 4 clients at a time took {n} upstream connections");
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_pool_idle() {
    let (up, accepted, ended) = counting_upstream().await;
    let site = Site::new();
    let gw = start_gateway(
        &site.config(&[("app", up)], "[timeouts]\npool_idle = \"200ms\"\n"),
        vec![router("r", |_| Ok(forward("app")))],
    )
    .await;
    assert_eq!(get(&gw.url("/")).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(ended.load(Ordering::SeqCst), 1, "the idle connection was closed");
    assert_eq!(get(&gw.url("/")).await.0, StatusCode::OK);
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection replaces it");
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_reused() {
    // Answers as if keeping the connection alive, then closes it.
    let (up, accepted, _) = raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", AfterAnswer::Close).await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    for i in 1..=3 {
        let (status, _, body) = get(&gw.url("/")).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), i);
    }
}

#[tokio::test]
async fn a_request_the_upstream_received_is_never_sent_twice() {
    // The second request on a connection is read, then the connection is dropped.
    let (up, _, requests) =
        raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", AfterAnswer::DropNextRequest).await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    assert_eq!(get(&gw.url("/")).await.0, StatusCode::OK);
    let post = Request::post(gw.url("/pay")).body(Full::new(Bytes::from_static(b"once"))).unwrap();
    let (status, _, body) = send(post).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{}", String::from_utf8_lossy(&body));
    assert_eq!(requests.load(Ordering::SeqCst), 2, "the POST reached the upstream once and was not retried");
}

#[tokio::test]
async fn connection_close_responses_are_not_pooled() {
    let (up, accepted, _) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        AfterAnswer::DropNextRequest,
    )
    .await;
    let site = Site::new();
    let gw = start_gateway(&site.config(&[("app", up)], ""), vec![router("r", |_| Ok(forward("app")))]).await;
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/")).await.0, StatusCode::OK);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
