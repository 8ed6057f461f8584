//! wsbench: the WebSocket load generator and the upstreams of bench/ws.
//!
//! - `serve`: a WebSocket upstream on one thread: `echo` (every text/binary message
//!   sent back) or `sio`, shaped like Reflex 0.10.1's backend (Engine.IO v4 open, namespace
//!   CONNECT answered with a sid and, when the CONNECT carries the first event, the
//!   `is_hydrated` update; every EVENT answered with one delta update). `--identity ADDR` also serves
//!   a stub of Django's `/_isthmus/identity` (a fixed logged-in user) over HTTP/1.1.
//! - `load`: N connections in a closed loop (one message in flight per connection),
//!   a warm-up that is discarded, then a timed window: messages per second, latency
//!   percentiles, and the CPU time that the given server processes (with their
//!   descendants) and the load generator itself spent in that window.
//! - `hold`: opens N connections, completes their handshakes, holds them idle, and
//!   reports how much the given processes' resident memory grew.
//!
//! Everything is bounded in time and meant for loopback addresses only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Plain WebSocket text messages, echoed.
    Echo,
    /// Socket.IO over Engine.IO v4, as Reflex's frontend and backend speak it.
    Sio,
}

#[derive(Parser)]
#[command(about = "WebSocket load generator and upstreams for bench/ws")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an upstream (and optionally the identity stub) until killed.
    Serve {
        #[arg(long)]
        listen: String,
        #[arg(long, value_enum)]
        mode: Mode,
        /// Also answer HTTP requests on this address with a fixed Django identity.
        #[arg(long)]
        identity: Option<String>,
    },
    /// Closed-loop load: throughput, latency and CPU per message.
    Load {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value_t = 32)]
        conns: usize,
        /// Seconds of warm-up (discarded).
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Seconds measured.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Server processes whose CPU time (with their descendants) is read around the window.
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
    },
    /// Open and hold idle connections; report the growth of the processes' RSS.
    Hold {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value_t = 5000)]
        conns: usize,
        /// Seconds to hold the connections idle before reading RSS.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
    },
}

#[derive(Args, Clone)]
struct ClientArgs {
    /// ws:// URL; for `sio`, `&token=<uuid>` is appended per connection.
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Cookie header sent with the handshake (the Django session).
    #[arg(long)]
    cookie: Option<String>,
    /// Sec-WebSocket-Protocol (Reflex's frontend sends its version).
    #[arg(long)]
    protocol: Option<String>,
    /// Socket.IO namespace.
    #[arg(long, default_value = "/_event")]
    namespace: String,
    /// The event handler each message calls.
    #[arg(long, default_value = "reflex___state____state.bench___bench____bench_state.tick")]
    event: String,
    /// The first event, carried in the CONNECT packet's auth object.
    #[arg(long, default_value = "reflex___state____state.hydrate_and_load")]
    hydrate: String,
    /// Page the events come from (router_data).
    #[arg(long, default_value = "/?tab=all")]
    page: String,
    /// Size of an echo message in bytes.
    #[arg(long, default_value_t = 128)]
    echo_bytes: usize,
    /// A reply to an event is the first update containing this (Reflex 0.10.1 sends no
    /// `final` flag: a trivial handler's event gets exactly one update, with its delta).
    #[arg(long, default_value = "n_rx_state_")]
    reply_marker: String,
    /// The first event (hydrate) is done with the update containing this.
    #[arg(long, default_value = r#""is_hydrated_rx_state_":true"#)]
    hydrated_marker: String,
    /// Count replies containing this text (proof of what the upstream saw).
    #[arg(long)]
    expect: Option<String>,
    /// Seconds to wait for any one reply or handshake step.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let code = rt.block_on(async move {
        match cli.cmd {
            Cmd::Serve { listen, mode, identity } => serve(listen, mode, identity).await,
            Cmd::Load { client, conns, warmup, duration, pids } => load(client, conns, warmup, duration, pids).await,
            Cmd::Hold { client, conns, settle, pids } => hold(client, conns, settle, pids).await,
        }
    });
    std::process::exit(code);
}

/// tungstenite 0.27 zero-fills its whole read buffer (128 KiB by default) before every
/// read: a memset per message that would load every case alike. The tools use 8 KiB
/// (larger frames are still read whole, in several reads).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024)
}

// ---------------------------------------------------------------------------------------
// Upstreams

async fn serve(listen: String, mode: Mode, identity: Option<String>) -> i32 {
    if let Some(addr) = identity {
        let l = TcpListener::bind(&addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { continue };
                tokio::spawn(identity_conn(s));
            }
        });
    }
    let l = TcpListener::bind(&listen).await.unwrap_or_else(|e| panic!("bind {listen}: {e}"));
    eprintln!("wsbench serve: {mode:?} on {listen}");
    let mut n: u64 = 0;
    loop {
        let Ok((s, _)) = l.accept().await else { continue };
        let _ = s.set_nodelay(true);
        n += 1;
        tokio::spawn(upstream_conn(s, mode, n));
    }
}

const IDENTITY: &str = r#"{"authenticated":true,"user_id":"7","username":"benchuser","email":"bench@example.org","is_staff":false,"is_superuser":false,"groups":["clerks"],"permissions":["shop.view_product"],"session":{}}"#;

/// The identity stub: every request head gets the same identity (HTTP/1.1 keep-alive).
async fn identity_conn(mut s: TcpStream) {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: {}\r\n\r\n{IDENTITY}",
        IDENTITY.len()
    );
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut tmp = [0u8; 4096];
    loop {
        let n = match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            eprintln!("wsbench identity: request answered");
            if s.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
        if buf.len() > 65536 {
            return;
        }
    }
}

fn accept_protocol(req: &Request, mut resp: Response) -> Result<Response, tokio_tungstenite::tungstenite::handshake::server::ErrorResponse> {
    if let Some(p) = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()) {
        let first = p.split(',').next().unwrap_or("").trim().to_owned();
        if let Ok(v) = HeaderValue::from_str(&first) {
            resp.headers_mut().insert("sec-websocket-protocol", v);
        }
    }
    Ok(resp)
}

async fn upstream_conn(s: TcpStream, mode: Mode, conn: u64) {
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(s, accept_protocol, Some(ws_config())).await else { return };
    match mode {
        Mode::Echo => {
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Text(_) | Message::Binary(_) => {
                        if ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
        }
        Mode::Sio => {
            let open = format!(r#"0{{"sid":"bench-{conn}","upgrades":[],"pingTimeout":120000,"pingInterval":25000,"maxPayload":1000000}}"#);
            if ws.send(Message::text(open)).await.is_err() {
                return;
            }
            let mut n: u64 = 0;
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else {
                    if matches!(msg, Message::Close(_)) {
                        return;
                    }
                    continue;
                };
                let text = text.as_str();
                let (ns, rest) = namespace_of(text);
                if text.starts_with("40") {
                    let ok = ws.send(Message::text(format!("40{ns}{{\"sid\":\"ns-{conn}\"}}"))).await;
                    if ok.is_err() {
                        return;
                    }
                    if rest.contains("\"event\"") {
                        let hydrated = format!(r#"42{ns}["event",{{"delta":{{"reflex___state____state":{{"is_hydrated_rx_state_":true}}}}}}]"#);
                        if ws.send(Message::text(hydrated)).await.is_err() {
                            return;
                        }
                    }
                } else if text.starts_with("42") {
                    n += 1;
                    if ws.send(Message::text(update(ns, n, signed(rest)))).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// (`/_event,` or ``, the rest) of a Socket.IO packet `4x[/ns,]…`.
fn namespace_of(text: &str) -> (&str, &str) {
    let body = text.get(2..).unwrap_or("");
    if body.starts_with('/') {
        if let Some(c) = body.find(',') {
            return (&text[2..2 + c + 1], &body[c + 1..]);
        }
    }
    ("", body)
}

/// Whether the event reached us with the gateway's signed identity in router_data.
fn signed(text: &str) -> bool {
    text.contains(r#""isthmus":{"payload":""#)
}

/// The update Reflex sends for the benchmark app's `tick` (bench/ws/app); `who` says
/// whether the event arrived with the gateway's signed identity.
fn update(ns: &str, n: u64, signed: bool) -> String {
    let who = if signed { "injected" } else { "bare" };
    format!(r#"42{ns}["event",{{"delta":{{"reflex___state____state.bench___bench____bench_state":{{"n_rx_state_":{n},"who_rx_state_":"{who}#{n}"}}}}}}]"#)
}

// ---------------------------------------------------------------------------------------
// Clients

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn token(i: usize) -> String {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut x = seed ^ ((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ (std::process::id() as u64) << 32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (a, b, c) = (next(), next(), next());
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", a as u32, (a >> 32) as u16, b as u16 & 0xfff, (b >> 16) as u16 & 0xfff, c & 0xffff_ffff_ffff)
}

fn router_data(page: &str) -> Value {
    let (path, query) = page.split_once('?').unwrap_or((page, ""));
    let mut rd = json!({"pathname": path, "asPath": page});
    if !query.is_empty() {
        let q: serde_json::Map<String, Value> =
            query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), Value::String(v.to_owned()))).collect();
        rd["query"] = Value::Object(q);
    }
    rd
}

fn is_update_with(text: &str, marker: &str) -> bool {
    text.starts_with("42") && text.contains(marker)
}

/// Messages a connection sends, prepared once.
struct Script {
    event_prefix: String,
    event_suffix: String,
    echo: String,
}

impl Script {
    fn new(a: &ClientArgs) -> Script {
        let ev = json!({"name": a.event, "payload": {"k": 0}, "router_data": router_data(&a.page)}).to_string();
        // `"k":0` is replaced by a running number so every event differs.
        let (pre, post) = ev.split_once("\"k\":0").expect("marker");
        let ns = if a.namespace == "/" { String::new() } else { format!("{},", a.namespace) };
        Script {
            event_prefix: format!("42{ns}[\"event\",{pre}\"k\":"),
            event_suffix: format!("{post}]"),
            echo: "x".repeat(a.echo_bytes),
        }
    }
    fn message(&self, mode: Mode, i: u64) -> String {
        match mode {
            Mode::Echo => self.echo.clone(),
            Mode::Sio => format!("{}{i}{}", self.event_prefix, self.event_suffix),
        }
    }
}

/// Next text frame satisfying `want`; answers Engine.IO pings on the way.
async fn wait_text(ws: &mut Ws, timeout: Duration, mut want: impl FnMut(&str) -> Result<bool, String>) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.map_err(|_| "timed out waiting for a frame".to_owned())?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                let t = t.as_str();
                if t == "2" {
                    ws.send(Message::text("3")).await.map_err(|e| e.to_string())?;
                    continue;
                }
                if want(t)? {
                    return Ok(t.to_owned());
                }
            }
            Some(Ok(Message::Binary(b))) => {
                if want(&String::from_utf8_lossy(&b))? {
                    return Ok(String::new());
                }
            }
            Some(Ok(Message::Close(f))) => return Err(format!("closed by the server: {f:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

async fn open(a: &ClientArgs, i: usize) -> Result<Ws, String> {
    let url = match a.mode {
        Mode::Sio => format!("{}{}token={}", a.url, if a.url.contains('?') { '&' } else { '?' }, token(i)),
        Mode::Echo => a.url.clone(),
    };
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(c) = &a.cookie {
        req.headers_mut().insert("cookie", HeaderValue::from_str(c).map_err(|e| e.to_string())?);
    }
    if let Some(p) = &a.protocol {
        req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(p).map_err(|e| e.to_string())?);
    }
    let timeout = Duration::from_secs_f64(a.timeout);
    let (mut ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), true))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    if a.mode == Mode::Sio {
        wait_text(&mut ws, timeout, |t| Ok(t.starts_with('0'))).await?;
        let ns = if a.namespace == "/" { String::new() } else { format!("{},", a.namespace) };
        let auth = json!({"event": {"name": a.hydrate, "payload": {}, "router_data": router_data(&a.page)}});
        ws.send(Message::text(format!("40{ns}{auth}"))).await.map_err(|e| e.to_string())?;
        wait_text(&mut ws, timeout, |t| {
            if t.starts_with("44") {
                Err(format!("CONNECT refused: {t}"))
            } else {
                Ok(t.starts_with("40"))
            }
        })
        .await?;
        // The first event's (hydrate's) last update.
        wait_text(&mut ws, timeout, |t| Ok(is_update_with(t, &a.hydrated_marker))).await?;
    }
    Ok(ws)
}

#[derive(Default)]
struct ConnStats {
    count: u64,
    hits: u64,
    lat_us: Vec<u32>,
    error: Option<String>,
}

const WARM: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

async fn run_conn(a: Arc<ClientArgs>, script: Arc<Script>, i: usize, phase: Arc<AtomicU8>, ready: Arc<Barrier>, gate: Arc<Semaphore>) -> ConnStats {
    let mut st = ConnStats::default();
    let permit = gate.acquire().await;
    let ws = open(&a, i).await;
    drop(permit);
    ready.wait().await;
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            st.error = Some(e);
            return st;
        }
    };
    let timeout = Duration::from_secs_f64(a.timeout);
    let mut n: u64 = 0;
    loop {
        if phase.load(Ordering::Relaxed) == STOP {
            break;
        }
        n += 1;
        let msg = script.message(a.mode, n);
        let t0 = Instant::now();
        if let Err(e) = ws.send(Message::text(msg)).await {
            st.error = Some(format!("send: {e}"));
            return st;
        }
        let reply = match a.mode {
            Mode::Echo => wait_text(&mut ws, timeout, |_| Ok(true)).await,
            Mode::Sio => wait_text(&mut ws, timeout, |t| Ok(is_update_with(t, &a.reply_marker))).await,
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                st.error = Some(e);
                return st;
            }
        };
        if phase.load(Ordering::Relaxed) == MEASURE {
            st.count += 1;
            st.lat_us.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
            if a.expect.as_deref().is_some_and(|x| reply.contains(x)) {
                st.hits += 1;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    st
}

async fn load(a: ClientArgs, conns: usize, warmup: f64, duration: f64, pids: Vec<u32>) -> i32 {
    let a = Arc::new(a);
    let script = Arc::new(Script::new(&a));
    let phase = Arc::new(AtomicU8::new(WARM));
    let ready = Arc::new(Barrier::new(conns + 1));
    let gate = Arc::new(Semaphore::new(64));
    let tasks: Vec<_> = (0..conns)
        .map(|i| tokio::spawn(run_conn(a.clone(), script.clone(), i, phase.clone(), ready.clone(), gate.clone())))
        .collect();
    let t_connect = Instant::now();
    ready.wait().await;
    let connect_s = t_connect.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    let (srv0, me0) = (cpu_ticks_tree(&pids), cpu_ticks(std::process::id()).unwrap_or(0));
    let each0: Vec<u64> = pids.iter().map(|p| cpu_ticks_tree(&[*p])).collect();
    let t0 = Instant::now();
    phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(duration)).await;
    phase.store(STOP, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let (srv1, me1) = (cpu_ticks_tree(&pids), cpu_ticks(std::process::id()).unwrap_or(0));
    let each1: Vec<u64> = pids.iter().map(|p| cpu_ticks_tree(&[*p])).collect();

    let mut total = ConnStats::default();
    let mut errors: Vec<String> = Vec::new();
    let mut stuck = 0;
    // A connection still waiting for its last reply (a slow server: reflex-django at 32
    // connections answers in seconds) gets up to the reply timeout to finish.
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(a.timeout);
    for t in tasks {
        match tokio::time::timeout_at(deadline, t).await {
            Ok(Ok(st)) => {
                total.count += st.count;
                total.hits += st.hits;
                total.lat_us.extend(st.lat_us);
                errors.extend(st.error);
            }
            _ => stuck += 1,
        }
    }
    total.lat_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if total.lat_us.is_empty() {
            return f64::NAN;
        }
        let idx = ((total.lat_us.len() as f64 - 1.0) * p).round() as usize;
        total.lat_us[idx] as f64
    };
    let tick_us = 1e6 / clk_tck();
    let server_cpu_us = (srv1.saturating_sub(srv0)) as f64 * tick_us;
    let client_cpu_us = (me1.saturating_sub(me0)) as f64 * tick_us;
    let msgs = total.count as f64;
    let out = json!({
        "conns": conns,
        "msgs": total.count,
        "seconds": elapsed,
        "msgs_per_s": msgs / elapsed,
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "server_cpu_us": server_cpu_us,
        "server_cpu_us_per_msg": if msgs > 0.0 { server_cpu_us / msgs } else { f64::NAN },
        "server_cpu_util": server_cpu_us / (elapsed * 1e6),
        // Per given process (with its descendants), in the order given.
        "server_cpu_us_per_msg_each": each0.iter().zip(&each1).map(|(a, b)| if msgs > 0.0 { b.saturating_sub(*a) as f64 * tick_us / msgs } else { f64::NAN }).collect::<Vec<f64>>(),
        "client_cpu_util": client_cpu_us / (elapsed * 1e6),
        "expect_hits": total.hits,
        "connect_s": connect_s,
        "errors": errors.len(),
        "first_error": errors.first(),
        "stuck": stuck,
        "server_pids": tree(&pids),
    });
    println!("{out}");
    if errors.is_empty() && stuck == 0 && total.count > 0 {
        0
    } else {
        eprintln!("wsbench load: {} errors, {stuck} stuck, first: {:?}", errors.len(), errors.first());
        1
    }
}

async fn hold(a: ClientArgs, conns: usize, settle: f64, pids: Vec<u32>) -> i32 {
    let before = rss_kb_tree(&pids);
    let gate = Arc::new(Semaphore::new(100));
    let a = Arc::new(a);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let (a, gate) = (a.clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire().await;
                open(&a, i).await
            })
        })
        .collect();
    let mut held = Vec::with_capacity(conns);
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(ws)) => held.push(ws),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let connect_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let after = rss_kb_tree(&pids);
    let n = held.len();
    let out = json!({
        "conns": n,
        "errors": errors.len(),
        "first_error": errors.first(),
        "connect_s": connect_s,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "bytes_per_conn": if n > 0 { (after as f64 - before as f64) * 1024.0 / n as f64 } else { f64::NAN },
        "server_pids": tree(&pids),
    });
    println!("{out}");
    drop(held);
    if errors.is_empty() {
        0
    } else {
        eprintln!("wsbench hold: {} errors, first: {:?}", errors.len(), errors.first());
        1
    }
}

// ---------------------------------------------------------------------------------------
// /proc

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Fields of /proc/<pid>/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of a process (all its threads, live and exited), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The processes and all their descendants.
fn tree(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok())) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(p) = stack.pop() {
        if out.contains(&p) {
            continue;
        }
        out.push(p);
        stack.extend(children.get(&p).into_iter().flatten());
    }
    out
}

fn cpu_ticks_tree(roots: &[u32]) -> u64 {
    tree(roots).iter().filter_map(|&p| cpu_ticks(p)).sum()
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rss_kb_tree(roots: &[u32]) -> u64 {
    tree(roots).iter().filter_map(|&p| rss_kb(p)).sum()
}
