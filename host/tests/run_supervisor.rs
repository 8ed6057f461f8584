//! `isthmus run`: the real binary starting real child processes (small Python HTTP
//! servers standing in for Django and Reflex): 503 until healthy, restart with backoff,
//! `--dev`, bad commands, and no process left behind after SIGTERM or SIGKILL.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A child: records `pid pgid` per start, starts a grandchild in its process group
/// (as uvicorn's and Reflex's workers are), waits `delay` s, then serves HTTP:
/// `/health` 200, `…/crash` answers then exits 3, `…/port` answers its port, `…/slow`
/// answers after 1.5 s, an Upgrade request is switched and echoed, anything else
/// `<name> <path>`.
const UPSTREAM_PY: &str = r#"
import os, socket, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
name, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
assert os.environ["PORT"] == str(port) and os.environ["HOST"] == "127.0.0.1"
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(os.environ["STATE_DIR"], name + ".pids"), "a") as f:
    f.write(f"{os.getpid()} {os.getpgid(0)}\n")
print(f"{name} starting", flush=True)
time.sleep(delay)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.headers.get("Upgrade"):
            self.send_response(101); self.send_header("Upgrade", "websocket"); self.send_header("Connection", "Upgrade"); self.end_headers()
            self.wfile.flush()
            data = self.connection.recv(64); self.connection.sendall(b"echo:" + data); return
        if self.path.endswith("/slow"):
            time.sleep(1.5)
        health = os.path.join(os.environ["STATE_DIR"], "reflex_health.json")
        if self.path == "/_health" and os.path.exists(health):
            body = open(health, "rb").read()
            self.send_response(200); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body); return
        body = b"ok" if self.path == "/health" else str(port).encode() if self.path.endswith("/port") else f"{name} {self.path}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body); self.wfile.flush()
        if self.path.endswith("/crash"):
            os._exit(3)
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

struct Run {
    child: Child,
    log: Arc<Mutex<String>>,
    site: Site,
    port: u16,
}

impl Run {
    fn start(site: Site, port: u16, args: &[&str]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_isthmus"))
            .arg("run")
            .arg("--config")
            .arg(site.path().join("isthmus.toml"))
            .args(args)
            .env("STATE_DIR", site.path())
            // Sockets `isthmus run` picks go in the site: a failed test leaves none behind.
            .env("XDG_RUNTIME_DIR", site.path())
            .env("RUST_LOG", "isthmus=info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Run { child, log, site, port }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_log(&self, needle: &str, count: usize, timeout: Duration) {
        let start = Instant::now();
        while self.log().matches(needle).count() < count {
            assert!(start.elapsed() < timeout, "no {count}× `{needle}` in the log after {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        raw_get(self.port, path)
    }

    /// Polls `path` until it answers 200; returns how many 503s came first.
    fn until_ok(&self, path: &str, timeout: Duration) -> (usize, String) {
        let start = Instant::now();
        let mut unavailable = 0;
        loop {
            match self.get(path) {
                (200, _, body) => return (unavailable, body),
                (503, head, _) => {
                    assert!(head.to_ascii_lowercase().contains("retry-after: 2"), "{head}");
                    unavailable += 1;
                }
                (0 | 502, ..) => {}
                other => panic!("{path}: unexpected {other:?}"),
            }
            assert!(start.elapsed() < timeout, "{path} not 200 after {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[allow(unsafe_code)]
    fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(start.elapsed() < timeout, "isthmus run did not exit within {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every process group a child was started in, from the children's own records.
    fn groups(&self, name: &str) -> Vec<i32> {
        let text = std::fs::read_to_string(self.site.path().join(format!("{name}.pids"))).unwrap_or_default();
        text.lines().map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap()).collect()
    }
}

impl Drop for Run {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // A failed test must not leave its children behind either.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for name in ["django", "reflex", "devserver"] {
            for pgid in self.groups(name) {
                // SAFETY: killpg has no memory-safety preconditions.
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
            }
        }
    }
}

/// (status, head, body) of `GET path`; status 0 when nothing answered.
fn raw_get(port: u16, path: &str) -> (u16, String, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new(), String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Live processes (not zombies) whose process group is `pgid`.
fn members(pgid: i32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp …; comm may hold spaces, so split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            found.push(stat);
        }
    }
    found
}

fn wait_gone(pgid: i32, timeout: Duration) {
    let start = Instant::now();
    while !members(pgid).is_empty() {
        assert!(start.elapsed() < timeout, "process group {pgid} still has {:?}", members(pgid));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn site(port: u16, django_delay: f64, extra: &str) -> Site {
    let site = Site::new();
    site.write("upstream.py", UPSTREAM_PY);
    let (django, reflex) = (free_port(), free_port());
    write_router_config(
        &site,
        &format!(
            r#"
[listen]
addr = "127.0.0.1:{port}"
shutdown_grace = "2s"

[upstreams.django]
url = "http://127.0.0.1:{django}"
run = "python3 upstream.py django {{port}} {django_delay}"
health = "/health"

[upstreams.reflex]
url = "http://localhost:{reflex}"
run = "python3 '{dir}/upstream.py' reflex {{port}} 0"
cwd = "spa"
"#,
            dir = site.path().display()
        ),
        extra,
    );
    site
}

/// The prefix router and an exported SPA on `site`, with `upstreams` (the config above
/// them) and `extra` (below) in its isthmus.toml.
fn write_router_config(site: &Site, upstreams: &str, extra: &str) {
    std::fs::copy(plugin_path("prefix_router.wasm"), site.path().join("plugins/prefix_router.wasm")).unwrap();
    site.write("spa/index.html", "<h1>exported spa</h1>");
    site.write(
        "isthmus.toml",
        format!(
            r#"{upstreams}
[static.frontend]
root = "spa"
fallback = "index.html"

[[routing.routers]]
plugin = "prefix_router.wasm"
config = {{ django_prefixes = ["/api"], spa_mount = "frontend" }}
{extra}"#
        ),
    );
}

#[test]
fn starts_children_answers_503_until_ready_restarts_and_stops_every_process() {
    let port = free_port();
    let mut run = Run::start(site(port, 2.0, ""), port, &[]);
    run.wait_log("isthmus listening", 1, Duration::from_secs(60));

    // Django sleeps 2 s before listening: its routes answer 503 + Retry-After meanwhile,
    // while the SPA (static) is served at once.
    let (status, head, body) = run.get("/api/items");
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(body.starts_with("503 Service Unavailable\nrequest id: "), "{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 2"), "{head}");
    assert_eq!(run.get("/").0, 200);
    let (unavailable, body) = run.until_ok("/api/items", Duration::from_secs(30));
    assert!(unavailable > 0);
    assert_eq!(body, "django /api/items");
    // Reflex has no health path: ready once it accepts connections.
    assert_eq!(run.until_ok("/ping", Duration::from_secs(30)).1, "reflex /ping");
    let log = run.log();
    assert!(
        log.contains("django | django starting") && log.contains("reflex | reflex starting"),
        "output is prefixed and forwarded:\n{log}"
    );
    run.wait_log("ready", 2, Duration::from_secs(5));

    // A crash: logged, the upstream is unavailable again, then restarted; the crashed
    // process's grandchild went with its group.
    let first = run.groups("django");
    assert_eq!(first.len(), 1);
    assert_eq!(run.get("/api/crash").2, "django /api/crash");
    run.wait_log("restarting", 1, Duration::from_secs(10));
    assert!(run.log().contains("exited (exit status: 3)"), "{}", run.log());
    wait_gone(first[0], Duration::from_secs(10));
    assert_eq!(run.until_ok("/api/again", Duration::from_secs(30)).1, "django /api/again");
    run.wait_log("restarted", 1, Duration::from_secs(5));
    let groups = [run.groups("django"), run.groups("reflex")].concat();
    assert_eq!(groups.len(), 3, "{groups:?}");

    // SIGTERM: the gateway and every child and grandchild stop; exit 0.
    run.signal(libc::SIGTERM);
    assert_eq!(run.exit_code(Duration::from_secs(20)), Some(0));
    for pgid in groups {
        wait_gone(pgid, Duration::from_secs(5));
    }
    assert!(run.log().contains("isthmus stopped"));
}

#[test]
fn sigint_stops_everything_too() {
    let port = free_port();
    let mut run = Run::start(site(port, 0.0, ""), port, &[]);
    run.until_ok("/api/x", Duration::from_secs(60));
    let groups = [run.groups("django"), run.groups("reflex")].concat();
    run.signal(libc::SIGINT);
    assert_eq!(run.exit_code(Duration::from_secs(20)), Some(0));
    for pgid in groups {
        wait_gone(pgid, Duration::from_secs(5));
    }
}

#[test]
fn a_killed_supervisor_takes_its_children_with_it() {
    let port = free_port();
    let mut run = Run::start(site(port, 0.0, ""), port, &[]);
    run.until_ok("/api/x", Duration::from_secs(60));
    let leaders: Vec<i32> = run.groups("django");
    run.signal(libc::SIGKILL);
    run.exit_code(Duration::from_secs(10));
    // The direct child is told (PR_SET_PDEATHSIG) and exits; its port is free again.
    let start = Instant::now();
    while members(leaders[0]).iter().any(|m| m.starts_with(&format!("{} ", leaders[0]))) {
        assert!(start.elapsed() < Duration::from_secs(10), "django outlived a SIGKILLed isthmus");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dev_mode_runs_dev_commands_and_proxies_the_dev_server_with_its_websocket() {
    let dev_port = free_port();
    let extra = format!(
        r#"
[upstreams.devserver]
url = "http://127.0.0.1:{dev_port}"
dev_run = "python3 upstream.py devserver {{port}} 0.5"
health = "/health"

[dev]
static = "frontend"
upstream = "devserver"
"#
    );
    // Without --dev: the exported SPA, and the dev server is not started.
    let port = free_port();
    let mut run = Run::start(site(port, 0.0, &extra), port, &[]);
    run.until_ok("/api/x", Duration::from_secs(60));
    let (status, _, body) = run.get("/some/page");
    assert_eq!((status, body.as_str()), (200, "<h1>exported spa</h1>"));
    assert!(run.groups("devserver").is_empty());
    run.signal(libc::SIGTERM);
    assert_eq!(run.exit_code(Duration::from_secs(20)), Some(0));

    let port = free_port();
    let run = Run::start(site(port, 0.0, &extra), port, &["--dev"]);
    let (_, body) = run.until_ok("/some/page", Duration::from_secs(60));
    assert_eq!(body, "devserver /some/page");
    assert_eq!(run.until_ok("/api/x", Duration::from_secs(30)).1, "django /api/x");
    // The hot-reload WebSocket goes through to the dev server.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /hmr HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s.write_all(b"reload?").unwrap();
    let mut echo = [0u8; 12];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"echo:reload?");
}

fn check_error(config_extra: &str, replace: (&str, &str), args: &[&str]) -> String {
    let port = free_port();
    let site = site(port, 0.0, config_extra);
    let path = site.path().join("isthmus.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(replace.0, replace.1);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_isthmus"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("STATE_DIR", site.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Nothing listens after the error.
    assert_eq!(raw_get(port, "/").0, 0);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config error: refused before any child is started.
fn config_error(config_extra: &str, replace: (&str, &str), args: &[&str]) -> String {
    let e = check_error(config_extra, replace, args);
    assert!(!e.contains("started upstream"), "{e}");
    e
}

#[test]
fn bad_commands_are_refused_naming_the_key() {
    let e = config_error("", ("django {port}", "django 8001"), &[]);
    assert!(e.contains("upstreams.django.run") && e.contains("{port}"), "{e}");
    let e = config_error("", ("python3 upstream.py django", "python3 'upstream.py django"), &[]);
    assert!(e.contains("upstreams.django.run") && e.contains("unbalanced quote"), "{e}");
    let e = config_error("", ("url = \"http://127.0.0.1:", "url = \"http://10.1.2.3:"), &[]);
    assert!(e.contains("upstreams.django.url") && e.contains("127.0.0.1"), "{e}");
    let e = config_error("", ("", ""), &["--dev"]);
    assert!(e.contains("--dev needs a [dev] section"), "{e}");
    let e = config_error("\n[dev]\nstatic = \"nope\"\nupstream = \"django\"\n", ("", ""), &[]);
    assert!(e.contains("dev.static") && e.contains("nope"), "{e}");
}

#[test]
fn a_program_that_does_not_exist_is_an_error_and_nothing_keeps_running() {
    let e = check_error("", ("python3 '", "no-such-program-isthmus '"), &[]);
    assert!(e.contains("upstreams.reflex.run") && e.contains("cannot start `no-such-program-isthmus`"), "{e}");
    // Django was started before reflex failed: isthmus stopped its group before exiting.
    let pid: i32 = e
        .split("started upstream=django pid=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{e}"));
    assert!(members(pid).is_empty(), "django's process group outlived isthmus: {:?}", members(pid));
}

/// `[metrics]` under `isthmus run`: `/readyz` says which upstreams are not ready (503)
/// until they are (200), the health and restarts are exported, and the public port
/// routes `/metrics` like any path.
#[test]
fn the_metrics_listener_reports_readiness_health_and_restarts() {
    let (port, metrics_port) = (free_port(), free_port());
    let extra = format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    let mut run = Run::start(site(port, 10.0, &extra), port, &[]);
    run.wait_log("isthmus listening", 1, Duration::from_secs(60));
    let scrape = || raw_get(metrics_port, "/metrics").2;
    let value = |series: &str| sample(&scrape(), series);
    let ready = r#"isthmus_upstream_ready{upstream="django"}"#;

    assert_eq!(value(ready), Some(0.0), "Django sleeps 10 s before listening");
    assert_eq!(raw_get(metrics_port, "/livez").0, 200);
    assert_eq!(raw_get(metrics_port, "/other").0, 404);

    // 503 with the reason until ready: while Django sleeps, and while the router still
    // compiles should that outlast `startup_wait` (it can on a loaded machine).
    let (start, mut reasons) = (Instant::now(), Vec::<String>::new());
    loop {
        let (status, _, body) = raw_get(metrics_port, "/readyz");
        if status == 200 {
            assert_eq!(body, "ready\n");
            break;
        }
        assert_eq!(status, 503, "{body}");
        if reasons.last() != Some(&body) {
            reasons.push(body);
        }
        assert!(start.elapsed() < Duration::from_secs(60), "not ready within 60 s: {reasons:?}\n{}", run.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let waiting = |r: &String| r.starts_with("upstreams not ready yet: ") && r.contains("django");
    let compiling = |r: &String| r.starts_with("plugin `prefix_router` is not loaded yet");
    assert!(reasons.iter().any(waiting) && reasons.iter().all(|r| waiting(r) || compiling(r)), "{reasons:?}");
    run.wait_log("all upstreams ready", 1, Duration::from_secs(5));
    assert_eq!(value(ready), Some(1.0));
    let (status, _, body) = run.get("/metrics");
    assert_eq!((status, body.as_str()), (200, "<h1>exported spa</h1>"), "the SPA's fallback, not the exporter");
    run.until_ok("/api/items", Duration::from_secs(30));
    let calls = r#"isthmus_plugin_calls_total{plugin="prefix_router",world="router",outcome="ok"}"#;
    assert!(value(calls).is_some_and(|n| n >= 2.0), "{}", scrape());

    assert_eq!(run.get("/api/crash").2, "django /api/crash");
    run.wait_log("restarted", 1, Duration::from_secs(10));
    assert_eq!(value(r#"isthmus_child_restarts_total{upstream="django"}"#), Some(1.0), "{}", scrape());
    run.signal(libc::SIGTERM);
    assert_eq!(run.exit_code(Duration::from_secs(20)), Some(0));
    assert_eq!(raw_get(metrics_port, "/livez").0, 0, "the metrics listener stops with the gateway");
}

/// Upstream `name` of the site's config with 2 replicas (and `fields`) on two ports in
/// a row that were free a moment ago; returns the first.
fn with_replicas(site: &Site, name: &str, fields: &str) -> u16 {
    let first = free_pair();
    let toml = std::fs::read_to_string(site.path().join("isthmus.toml")).unwrap();
    let section = format!("[upstreams.{name}]");
    let (before, after) = toml.split_once(&section).unwrap();
    let (fields_now, rest) = after.split_once("\n\n").unwrap();
    let kept: Vec<&str> = fields_now.lines().filter(|l| !l.starts_with("url = ")).collect();
    let fields = format!("url = \"http://127.0.0.1:{first}\"\nreplicas = 2\n{fields}{}", kept.join("\n"));
    site.write("isthmus.toml", format!("{before}{section}\n{fields}\n\n{rest}"));
    first
}

/// Two loopback ports in a row that were free a moment ago.
fn free_pair() -> u16 {
    loop {
        let first = free_port();
        if std::net::TcpListener::bind(("127.0.0.1", first + 1)).is_ok() {
            return first;
        }
    }
}

/// `replicas = 2`: both copies serve (round robin), a crashed one gets no work while
/// the other answers everything, it comes back; SIGHUP restarts them one at a time
/// without a failed request; SIGTERM drains them: a request in progress is answered
/// before the replicas stop.
#[test]
fn replicas_share_the_work_survive_a_crash_roll_on_sighup_and_drain_on_shutdown() {
    let port = free_port();
    let site = site(port, 0.0, "");
    let django = with_replicas(&site, "django", "balance = \"round_robin\"");
    let mut run = Run::start(site, port, &[]);
    let both = [django.to_string(), (django + 1).to_string()];
    let start = Instant::now();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "both replicas never answered: {seen:?}\n{}", run.log());
        if let (200, _, body) = run.get("/api/port") {
            assert!(both.contains(&body), "{body}");
            seen.insert(body);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(run.log().contains(&format!("django (127.0.0.1:{}) | django starting", django + 1)), "{}", run.log());

    // One crashes: no request fails while it is restarted, and it comes back.
    assert_eq!(run.get("/api/crash").2, "django /api/crash");
    run.wait_log("restarting", 1, Duration::from_secs(10));
    for _ in 0..20 {
        let (status, _, body) = run.get("/api/port");
        assert_eq!(status, 200, "{body}\n{}", run.log());
    }
    run.wait_log("restarted", 1, Duration::from_secs(10));
    let start = Instant::now();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "the crashed replica never came back: {seen:?}");
        seen.insert(run.get("/api/port").2);
    }

    // SIGHUP: a rolling restart under steady traffic, slow requests included.
    let before = run.groups("django").len();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = ["/api/port", "/api/port", "/api/slow"]
        .into_iter()
        .map(|path| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && answers.len() < 10_000 {
                    answers.push(raw_get(port, path).0);
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    run.signal(libc::SIGHUP);
    run.wait_log("rolling restart done", 1, Duration::from_secs(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses: Vec<u16> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert!(statuses.len() > 20, "{}", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a request failed during the rolling restart: {statuses:?}\n{}",
        run.log()
    );
    assert_eq!(run.groups("django").len(), before + 2, "each replica was started again once");
    assert_eq!(run.log().matches("started again (rolling restart)").count(), 2);

    // SIGTERM with a request in progress: it is answered, then everything stops.
    let slow = std::thread::spawn(move || raw_get(port, "/api/slow"));
    std::thread::sleep(Duration::from_millis(400));
    let groups = run.groups("django");
    run.signal(libc::SIGTERM);
    let (status, _, body) = slow.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "django /api/slow"), "{}", run.log());
    assert_eq!(run.exit_code(Duration::from_secs(20)), Some(0));
    for pgid in groups {
        wait_gone(pgid, Duration::from_secs(5));
    }
    let log = run.log();
    for p in both {
        let replica = format!("django (127.0.0.1:{p})");
        assert!(log.lines().any(|l| l.contains(&replica) && l.contains("stopped")), "{replica} not stopped:\n{log}");
    }
}

/// Reflex replicas keep state in memory unless they share Redis: a pool of them whose
/// `/_health` names no `redis` is refused, the reason naming the key; with Redis it runs.
#[test]
fn reflex_replicas_without_redis_are_refused_with_redis_they_run() {
    let port = free_port();
    let site = site(port, 0.0, "");
    with_replicas(&site, "reflex", "");
    site.write("reflex_health.json", r#"{"status": true}"#);
    let mut run = Run::start(site, port, &[]);
    assert_eq!(run.exit_code(Duration::from_secs(60)), Some(1), "{}", run.log());
    let log = run.log();
    assert!(
        log.contains("upstreams.reflex: its 2 endpoints are Reflex backends without Redis")
            && log.contains("REFLEX_REDIS_URL"),
        "{log}"
    );
    for pgid in [run.groups("django"), run.groups("reflex")].concat() {
        wait_gone(pgid, Duration::from_secs(10));
    }

    let site = std::mem::replace(&mut run.site, Site::new());
    drop(run);
    site.write("reflex_health.json", r#"{"status": true, "db": "NA", "redis": true}"#);
    let mut run = Run::start(site, port, &[]);
    assert_eq!(run.until_ok("/ping", Duration::from_secs(60)).1, "reflex /ping");
    std::thread::sleep(Duration::from_secs(2));
    assert!(run.child.try_wait().unwrap().is_none(), "still serving:\n{}", run.log());
    run.signal(libc::SIGTERM);
    assert_eq!(run.exit_code(Duration::from_secs(20)), Some(0));
}

/// A manage.py answering `isthmus_prefixes` after a pause, as the companion would for a
/// project whose urls.py gained `/shop` since the config was written.
const DRIFTED_MANAGE_PY: &str = r#"
import json, sys, time
assert sys.argv[1:] == ["isthmus_prefixes"], sys.argv
time.sleep(1.5)
print(json.dumps({"prefixes": ["/api", "/ping", "/shop"], "static_url": "/static/", "static_root": None}))
"#;

#[test]
fn run_warns_of_prefix_drift_in_the_background_and_serves() {
    let port = free_port();
    let site = site(port, 0.0, "\n[django]\nmanage = \"backend/manage.py\"\npython = \"python3\"\n");
    site.write("backend/manage.py", DRIFTED_MANAGE_PY);
    let run = Run::start(site, port, &[]);
    run.wait_log("routing.routers[0].config.django_prefixes", 1, Duration::from_secs(30));
    let log = run.log();
    assert!(log.contains("missing here (requests there go to the SPA, not Django): /shop;"), "{log}");
    assert!(!log.contains("gone from Django"), "{log}");
    // Listening came first: the 1.5 s manage.py held nothing up.
    let (listening, drift) = (log.find("isthmus listening").unwrap(), log.find("django_prefixes").unwrap());
    assert!(listening < drift, "{log}");
    assert_eq!(run.until_ok("/index.html", Duration::from_secs(30)).1, "<h1>exported spa</h1>");
}

/// A child on the Unix socket it is given: records `pid pgid`, answers `/health` 200,
/// `…/crash` answers then exits 3, anything else `<name> <socket> <path>`. Python's
/// server binds without removing a stale socket file, as uvicorn with --workers does.
const UDS_PY: &str = r#"
import os, socketserver, sys
from http.server import BaseHTTPRequestHandler
name, path = sys.argv[1], sys.argv[2]
assert "PORT" not in os.environ and "HOST" not in os.environ
with open(os.path.join(os.environ["STATE_DIR"], name + ".pids"), "a") as f:
    f.write(f"{os.getpid()} {os.getpgid(0)}\n")
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def address_string(self): return "unix"
    def log_message(self, *a): pass
    def do_GET(self):
        body = b"ok" if self.path == "/health" else f"{name} {path} {self.path}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body); self.wfile.flush()
        if self.path.endswith("/crash"):
            os._exit(3)
socketserver.ThreadingUnixStreamServer(path, H).serve_forever()
"#;

#[test]
fn sockets_run_picks_are_private_per_replica_survive_a_restart_and_go_at_exit() {
    use std::os::unix::fs::PermissionsExt;
    let port = free_port();
    let site = Site::new();
    site.write("uds.py", UDS_PY);
    write_router_config(
        &site,
        &format!(
            r#"
[listen]
addr = "127.0.0.1:{port}"
shutdown_grace = "2s"

[upstreams.django]
replicas = 2
run = "python3 uds.py django {{uds}}"
health = "/health"

[upstreams.reflex]
url = "http://127.0.0.1:{reflex}"
"#,
            reflex = free_port()
        ),
        "",
    );
    let mut run = Run::start(site, port, &[]);
    run.wait_log("all upstreams ready", 1, Duration::from_secs(30));
    let sockets: std::collections::BTreeSet<String> = (0..4)
        .map(|_| run.until_ok("/api/x", Duration::from_secs(5)).1.split(' ').nth(1).unwrap().to_owned())
        .collect();
    let sockets: Vec<_> = sockets.iter().map(std::path::PathBuf::from).collect();
    assert_eq!(sockets.len(), 2, "one socket per replica: {sockets:?}");
    let folder = sockets[0].parent().unwrap().to_owned();
    assert_eq!(sockets[0], folder.join("django-0.sock"));
    assert_eq!(sockets[1], folder.join("django-1.sock"));
    assert!(folder.file_name().unwrap().to_str().unwrap().starts_with("isthmus-"), "{folder:?}");
    assert_eq!(folder.parent(), Some(run.site.path()), "under $XDG_RUNTIME_DIR");
    assert_eq!(std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777, 0o700);

    // A replica that exits is started again on its socket, its old socket file removed first.
    let _ = run.get("/api/crash");
    run.wait_log("restarted", 1, Duration::from_secs(10));
    // Each replica ready says so at start (2), then the restarted one again.
    run.wait_log("all upstreams ready", 3, Duration::from_secs(10));
    let seen: std::collections::BTreeSet<String> =
        (0..4).map(|_| run.until_ok("/api/x", Duration::from_secs(5)).1).collect();
    assert_eq!(seen.len(), 2, "both replicas answer again: {seen:?}\n{}", run.log());

    run.signal(libc::SIGTERM);
    assert_eq!(run.exit_code(Duration::from_secs(20)), Some(0), "{}", run.log());
    assert!(!folder.exists(), "the socket folder is removed at exit");
}
