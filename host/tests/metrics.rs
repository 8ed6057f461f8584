//! The metrics listener in-process: exact counters after a scripted sequence of
//! requests, bounded labels (no path, user or token in a scrape), a scrape `promtool`
//! accepts, liveness and readiness, and `/metrics` on the public port routed as any path.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use isthmus::dispatch::Gateway;
use isthmus::metrics::listener::{self, ReadyCheck};
use isthmus::policy::{Decision, RouterChain};
use tokio::net::TcpListener;

struct Stack {
    gw: RunningGateway,
    /// The metrics listener's address.
    metrics: std::net::SocketAddr,
    ready: Arc<AtomicBool>,
    _site: Site,
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics)
    }

    async fn scrape(&self) -> String {
        let (status, headers, body) = get(&self.url("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        String::from_utf8(body.to_vec()).unwrap()
    }
}

/// A gateway with a Django stand-in, an upstream nothing listens on and a static mount;
/// its router sends `/app…` to Django, `/dead` to the dead one, `/ghost` to an upstream
/// the config lacks and `/static/…` to the mount; anything else is no route.
async fn stack() -> Stack {
    let django = upstream(|_req| async { text("django page") }).await;
    let dead = dead_port().await;
    let site = Site::new();
    site.write("files/hello.txt", "hello");
    let config = site.config(
        &[("django", django), ("dead", dead)],
        "[static.files]\nroot = \"files\"\nstrip_prefix = \"/static\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let chain = RouterChain::new(vec![router("r", |req| {
        Ok(match req.path.as_str() {
            p if p.starts_with("/app") => forward("django"),
            "/dead" => forward("dead"),
            "/ghost" => forward("ghost"),
            p if p.starts_with("/static/") => Decision::ServeStatic("files".into()),
            _ => Decision::Pass,
        })
    })]);
    let metrics = metrics(&config);
    let gateway = Arc::new(Gateway::new(&config, chain, None, metrics.clone()).unwrap());
    let gw = start_with(gateway, &config).await;
    let listener = TcpListener::bind(config.metrics.as_ref().unwrap().listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ready = Arc::new(AtomicBool::new(true));
    let flag = ready.clone();
    let check: ReadyCheck = Box::new(move || match flag.load(Ordering::SeqCst) {
        true => Ok(()),
        false => Err("plugin `r` is not loaded yet".into()),
    });
    tokio::spawn(listener::serve(listener, metrics, check, std::future::pending()));
    Stack { gw, metrics: addr, ready, _site: site }
}

#[tokio::test]
async fn a_scripted_sequence_gives_exact_counts_and_no_path_user_or_token() {
    let s = stack().await;
    for i in 0..3 {
        let req = Request::get(s.gw.url(&format!("/app/orders/{i}?token=SECRET-TOKEN")))
            .header("cookie", "sessionid=SECRET-SESSION")
            .header("authorization", "Bearer SECRET-BEARER")
            .header("x-user", "alice")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(send(req).await.0, StatusCode::OK);
    }
    assert_eq!(get(&s.gw.url("/static/hello.txt")).await.0, StatusCode::OK);
    assert_eq!(get(&s.gw.url("/static/missing-alice.txt")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&s.gw.url("/dead")).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(get(&s.gw.url("/ghost")).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(get(&s.gw.url("/nowhere/alice")).await.0, StatusCode::NOT_FOUND);
    // On the public port `/metrics` is a path like any other: here no router takes it.
    let (status, _, body) = get(&s.gw.url("/metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&body).contains("isthmus_"), "the exporter is not on the public port");
    assert_eq!(get(&s.gw.url("/%2e%2e%2fx")).await.0, StatusCode::BAD_REQUEST);

    let scrape = s.scrape().await;
    let expected = [
        (r#"isthmus_requests_total{target="upstream",name="django",status="2xx"}"#, 3),
        (r#"isthmus_requests_total{target="static",name="files",status="2xx"}"#, 1),
        (r#"isthmus_requests_total{target="static",name="files",status="4xx"}"#, 1),
        (r#"isthmus_requests_total{target="upstream",name="dead",status="5xx"}"#, 1),
        // A name the config lacks is not a label value.
        (r#"isthmus_requests_total{target="upstream",name="",status="5xx"}"#, 1),
        (r#"isthmus_requests_total{target="none",name="",status="4xx"}"#, 2),
        (r#"isthmus_requests_total{target="refused",name="",status="4xx"}"#, 1),
        (r#"isthmus_request_duration_seconds_count{target="upstream",name="django"}"#, 3),
        (r#"isthmus_request_duration_seconds_bucket{target="upstream",name="django",le="+Inf"}"#, 3),
        (r#"isthmus_upstream_connect_errors_total{upstream="dead"}"#, 1),
        (r#"isthmus_upstream_connect_errors_total{upstream="django"}"#, 0),
    ];
    for (series, n) in expected {
        assert_eq!(sample(&scrape, series), Some(n as f64), "{series} in:\n{scrape}");
    }
    let version = format!(r#"isthmus_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION"));
    assert_eq!(sample(&scrape, &version), Some(1.0), "{scrape}");
    assert_eq!(sample(&scrape, r#"isthmus_requests_total{target="upstream",name="ghost",status="5xx"}"#), None);
    for secret in ["SECRET", "alice", "/app", "orders", "hello", "missing", "ghost", "nowhere", "Bearer"] {
        assert!(!scrape.contains(secret), "`{secret}` leaked into the scrape:\n{scrape}");
    }
    promtool_accepts(&scrape);

    // OpenMetrics for a scraper that asks for it.
    let req = Request::get(s.url("/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(String::from_utf8_lossy(&body).ends_with("# EOF\n"));
}

#[tokio::test]
async fn open_connections_follow_accept_and_close() {
    let s = stack().await;
    let open = |scrape: &str| sample(scrape, "isthmus_open_connections");
    assert_eq!(open(&s.scrape().await), Some(0.0));
    let first = tokio::net::TcpStream::connect(s.gw.addr).await.unwrap();
    let second = tokio::net::TcpStream::connect(s.gw.addr).await.unwrap();
    let mut seen = None;
    for _ in 0..250 {
        seen = open(&s.scrape().await);
        if seen == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(2.0));
    drop((first, second));
    for _ in 0..250 {
        seen = open(&s.scrape().await);
        if seen == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(0.0), "closed connections are no longer counted");
}

#[tokio::test]
async fn livez_readyz_and_nothing_else() {
    let s = stack().await;
    assert_eq!(get(&s.url("/livez")).await.0, StatusCode::OK);
    let (status, _, body) = get(&s.url("/readyz")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ready\n"[..]));
    s.ready.store(false, Ordering::SeqCst);
    let (status, _, body) = get(&s.url("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(&body[..], b"plugin `r` is not loaded yet\n");
    assert_eq!(get(&s.url("/livez")).await.0, StatusCode::OK, "alive while not ready");
    for path in ["/", "/metrics/", "/app/x", "/healthz"] {
        assert_eq!(get(&s.url(path)).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let post = Request::post(s.url("/metrics")).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(post).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

/// `promtool check metrics` (Debian's `prometheus` package; `tests/run.sh` installs it)
/// on a scrape. Missing, it fails the test unless ISTHMUS_NO_PROMTOOL=1 says to skip.
fn promtool_accepts(scrape: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var_os("ISTHMUS_NO_PROMTOOL").is_some_and(|v| v == "1") => {
            eprintln!("promtool not run ({e}); ISTHMUS_NO_PROMTOOL=1");
            return;
        }
        Err(e) => panic!(
            "promtool cannot be run ({e}): install Debian's prometheus package (tests/run.sh does), or set ISTHMUS_NO_PROMTOOL=1"
        ),
    };
    child.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\non:\n{scrape}");
}
