//! Test harness: upstreams served in-process on loopback, a plain-Rust router for
//! the gateway's own HTTP behaviour, and a gateway started in-process on a free port.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod pki;
pub mod stand_ins;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use isthmus::body::Body;
use isthmus::caps::ConnectionCaps;
use isthmus::config::Config;
use isthmus::dispatch::Gateway;
use isthmus::metrics::Metrics;
use isthmus::policy::{Decision, FailMode, Needs, PolicyFailure, Resolved, RouteRequest, Router, RouterChain};
use isthmus::server::{self, ServerSettings};

/// A router written in Rust for tests: the production chain holds WebAssembly routers.
pub struct FnRouter<F> {
    pub name: String,
    pub fail: FailMode,
    pub f: F,
}

impl<F> Router for FnRouter<F>
where
    F: Fn(&RouteRequest) -> Result<Decision, PolicyFailure> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn fail_mode(&self) -> FailMode {
        self.fail
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn route(&self, req: &Arc<RouteRequest>, _who: Option<&Arc<Resolved>>) -> Result<Decision, PolicyFailure> {
        (self.f)(req)
    }
}

pub fn router(
    name: &str,
    f: impl Fn(&RouteRequest) -> Result<Decision, PolicyFailure> + Send + Sync + 'static,
) -> Arc<dyn Router> {
    Arc::new(FnRouter { name: name.to_owned(), fail: FailMode::Closed, f })
}

pub fn forward(upstream: &str) -> Decision {
    Decision::Forward(isthmus::policy::Forward {
        upstream: upstream.to_owned(),
        path: None,
        set_headers: vec![],
        remove_headers: vec![],
    })
}

/// Serve `handler` on a fresh loopback port (HTTP/1.1 and h2c) until the test ends.
pub async fn upstream<H, Fut>(handler: H) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A port nothing listens on.
pub async fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A loopback port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A temp folder holding the config, a placeholder plugin file (validation wants one;
/// these tests supply their routers in Rust) and any static files.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        std::fs::write(dir.path().join("plugins/test.wasm"), b"placeholder").unwrap();
        Site { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Config with `[upstreams]` from `upstreams` (name → addr) plus `extra` TOML.
    pub fn config(&self, upstreams: &[(&str, SocketAddr)], extra: &str) -> Config {
        let mut text = String::from("[listen]\naddr = \"127.0.0.1:0\"\n");
        text += extra;
        for (name, addr) in upstreams {
            text += &format!("\n[upstreams.{name}]\nurl = \"http://{addr}\"\n");
        }
        text += "\n[[routing.routers]]\nplugin = \"test.wasm\"\n";
        self.config_text(&text)
    }

    /// Config of exactly `text`, written to the site's `isthmus.toml`.
    pub fn config_text(&self, text: &str) -> Config {
        let file = self.write("isthmus.toml", text);
        Config::parse(text, &file).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

pub struct RunningGateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Signal shutdown (as SIGTERM would); `done` resolves when the server has stopped.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn start_gateway(config: &Config, routers: Vec<Arc<dyn Router>>) -> RunningGateway {
    start_with(Arc::new(Gateway::new(config, RouterChain::new(routers), None, metrics(config)).unwrap()), config).await
}

/// The metrics of a gateway of `config`.
pub fn metrics(config: &Config) -> Arc<Metrics> {
    Arc::new(Metrics::new(config))
}

pub async fn start_with(gateway: Arc<Gateway>, config: &Config) -> RunningGateway {
    start_serving(gateway, config, None).await
}

/// With `tls`, the listener speaks TLS only.
pub async fn start_serving(
    gateway: Arc<Gateway>,
    config: &Config,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> RunningGateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let settings = ServerSettings::from_config(config);
    let caps = ConnectionCaps::from_config(&config.listen, gateway.metrics());
    let done = tokio::spawn(server::serve(listener, tls, gateway, settings, caps, async {
        let _ = rx.await;
    }));
    RunningGateway { addr, stop: Some(tx), done }
}

/// An HTTP/1.1 client with a connection pool.
pub fn client() -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

pub async fn get(url: &str) -> (http::StatusCode, http::HeaderMap, Bytes) {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

pub async fn send(req: Request<Full<Bytes>>) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let res = client().request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
}

/// The body of every error the gateway answers itself: the status and the request id
/// only, never what failed (asserted against the response's own `x-request-id`).
pub fn assert_generic_error(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    expected: http::StatusCode,
) {
    assert_eq!(status, expected, "{}", String::from_utf8_lossy(body));
    let id = headers["x-request-id"].to_str().unwrap();
    let generic = format!("{} {}\nrequest id: {id}\n", expected.as_u16(), expected.canonical_reason().unwrap());
    assert_eq!(String::from_utf8_lossy(body), generic);
}

pub fn text(s: impl Into<String>) -> Response<Body> {
    Response::new(isthmus::body::full(s.into()))
}

/// Where the build script puts guest components.
pub fn plugin_path(file: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins").join(file);
    assert!(p.is_file(), "{} is missing: run `bash guest-plugins/build.sh` first", p.display());
    p
}

/// The component with a custom section appended: same behaviour, other bytes.
pub fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"isthmus-test";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// The value of one sample (`name{labels}`, exactly as written) in a Prometheus text
/// scrape; `None` when absent.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Wait up to 5 s for `done`.
pub async fn eventually(done: impl Fn() -> bool, what: &str) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "not within 5 s: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An OTLP/HTTP collector stand-in: every export request it gets, decoded with the
/// OpenTelemetry project's own generated types (not the gateway's).
pub async fn collector() -> (SocketAddr, Exports) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = upstream(move |req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let _ = tx.send(<ExportTraceServiceRequest as prost::Message>::decode(body).expect("OTLP protobuf"));
            text("")
        }
    })
    .await;
    (addr, Exports { rx, seen: Vec::new() })
}

/// What a collector stand-in received.
pub struct Exports {
    rx: tokio::sync::mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
    seen: Vec<ExportTraceServiceRequest>,
}

impl Exports {
    /// The first exported span `pick` accepts (and the request it came in), waiting up to 10 s.
    pub async fn span(&mut self, pick: impl Fn(&OtlpSpan) -> bool) -> (OtlpSpan, ExportTraceServiceRequest) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut checked = 0;
        loop {
            for request in &self.seen[checked..] {
                let spans = request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
                if let Some(span) = spans.into_iter().find(|s| pick(s)) {
                    return (span.clone(), request.clone());
                }
            }
            checked = self.seen.len();
            let request =
                tokio::time::timeout_at(deadline, self.rx.recv()).await.expect("a span exported within 10 s").unwrap();
            self.seen.push(request);
        }
    }
}

pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;

/// A parsed `traceparent`: (trace id, parent id, flags), as lowercase hex.
pub fn traceparent_parts(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    assert!(parts[1].len() == 32 && parts[2].len() == 16 && parts[3].len() == 2, "{value}");
    assert!(value.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{value}");
    assert!(parts[1] != "0".repeat(32) && parts[2] != "0".repeat(16), "{value}");
    (parts[1].to_owned(), parts[2].to_owned(), parts[3].to_owned())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The log of this test binary: the process-wide subscriber, as the binary installs it,
/// writing into a buffer (a thread's own default would race with the binary's other
/// tests over tracing's per-callsite interest cache).
pub fn global_log() -> &'static Captured {
    static LINES: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Captured::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(isthmus::logging::Lines::default())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this test binary");
        lines
    })
}

/// A `tracing` writer into a shared buffer, for tests that read the log.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// The first line logged that holds `needle`.
    pub fn line_with(&self, needle: &str) -> Option<String> {
        self.line_with_all(&[needle])
    }

    /// The first line logged that holds every one of `needles`.
    pub fn line_with_all(&self, needles: &[&str]) -> Option<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().find(|line| needles.iter().all(|n| line.contains(n))).map(str::to_owned)
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// A WebSocket upstream on a fresh loopback port that echoes every text and binary
/// message, until the test ends. Its handshake answer names each request header it got
/// in an `x-seen` field, and its own address in `x-served-by`.
pub async fn websocket_echo() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::server::{Request as Handshake, Response as Answer};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                #[allow(clippy::result_large_err, reason = "the signature of tungstenite's handshake callback")]
                let report = |req: &Handshake, mut answer: Answer| {
                    answer.headers_mut().insert("x-served-by", addr.to_string().parse().unwrap());
                    for name in req.headers().keys() {
                        answer.headers_mut().append("x-seen", name.as_str().parse().unwrap());
                    }
                    Ok(answer)
                };
                let mut ws = tokio_tungstenite::accept_hdr_async(stream, report).await.unwrap();
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        ws.send(msg).await.unwrap();
                    }
                }
            });
        }
    });
    addr
}
