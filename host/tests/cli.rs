//! The real `isthmus` binary: check, route, serve with the default prefix-router
//! plugin, access logs, signals, and constant memory on huge bodies.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::pki::{self, Pki};
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

fn isthmus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isthmus"))
}

/// A site using the real prefix-router component, with Django and Reflex at the given addresses.
fn site_with_prefix_router(django: std::net::SocketAddr, reflex: std::net::SocketAddr, listen: &str) -> Site {
    let site = Site::new();
    std::fs::copy(plugin_path("prefix_router.wasm"), site.path().join("plugins/prefix_router.wasm")).unwrap();
    site.write("spa/index.html", "<h1>spa</h1>");
    site.write("staticfiles/admin/base.css", "body{}");
    site.write(
        "isthmus.toml",
        format!(
            r#"
[listen]
addr = "{listen}"
shutdown_grace = "3s"

[upstreams.django]
url = "http://{django}"

[upstreams.reflex]
url = "http://{reflex}"

[static.frontend]
root = "spa"
fallback = "index.html"

[static.django_static]
root = "staticfiles"
strip_prefix = "/static"

[[routing.routers]]
plugin = "prefix_router.wasm"
config = {{ django_prefixes = ["/admin", "/api", "/webhooks"], static_prefix = "/static", static_mount = "django_static", spa_mount = "frontend" }}
"#
        ),
    );
    site
}

fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_has_help() {
    for sub in [&["--help"][..], &["serve", "--help"], &["check", "--help"], &["route", "--help"]] {
        let (code, out, _) = output(isthmus().args(sub));
        assert_eq!(code, 0);
        assert!(out.contains("Usage"), "{out}");
    }
}

#[test]
fn check_accepts_a_good_config_and_refuses_a_bad_one() {
    let site = site_with_prefix_router("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap(), "127.0.0.1:0");
    let config = site.path().join("isthmus.toml");
    let (code, out, err) = output(isthmus().arg("check").arg("--config").arg(&config));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok") && out.contains("prefix_router"), "{out}");

    let text = std::fs::read_to_string(&config).unwrap().replace("shutdown_grace", "shutdown_grase");
    std::fs::write(&config, text).unwrap();
    let (code, _, err) = output(isthmus().arg("check").arg("--config").arg(&config));
    assert_eq!(code, 1);
    assert!(err.contains("isthmus.toml") && err.contains("shutdown_grase"), "{err}");
}

/// `[listen.tls]` with the pair `tls/site.pem`/`tls/site.key` added to a site's config.
fn with_tls(site: &Site, extra: &str) {
    let config = std::fs::read_to_string(site.path().join("isthmus.toml")).unwrap();
    let tls = format!("[listen.tls]\ncert = \"tls/site.pem\"\nkey = \"tls/site.key\"\n{extra}");
    site.write("isthmus.toml", config.replacen("\n[upstreams.django]", &format!("{tls}\n[upstreams.django]"), 1));
}

#[test]
fn check_verifies_certificates_and_names_expired_and_expiring_ones() {
    let pki = Pki::new();
    let site = site_with_prefix_router("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap(), "127.0.0.1:0");
    with_tls(&site, "");
    let config = site.path().join("isthmus.toml");
    let check = || output(isthmus().arg("check").arg("--config").arg(&config));

    site.write_pair("site", &pki.leaf(&["shop.example"]));
    let (code, out, err) = check();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("shop.example") && out.contains("key matches, expires"), "{out}");

    let soon = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    site.write_pair("site", &pki.leaf_until(&["shop.example"], soon));
    let (code, out, err) = check();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning: certificate") && out.contains("expires in 9 days") && out.contains("renew"),
        "{out}"
    );

    site.write_pair("site", &pki.leaf_until(&["shop.example"], rcgen::date_time_ymd(2021, 3, 1)));
    let (code, _, err) = check();
    assert_eq!(code, 1);
    assert!(err.contains("listen.tls") && err.contains("shop.example") && err.contains("expired on"), "{err}");

    let other = pki.leaf(&["shop.example"]);
    site.write_pair("site", &pki.leaf(&["shop.example"]));
    site.write("tls/site.key", &other.key_pem);
    let (code, _, err) = check();
    assert_eq!(code, 1);
    assert!(err.contains("listen.tls.key") && err.contains("does not belong to the certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_redirects_plain_http_and_reloads_certificates_on_sighup() {
    let pki = Pki::new();
    let django = upstream(|req: Request<hyper::body::Incoming>| async move {
        let proto = req.headers().get("x-forwarded-proto").map(|v| v.to_str().unwrap().to_owned());
        text(format!("django saw {} over {}", req.uri(), proto.unwrap_or_default()))
    })
    .await;
    let reflex = dead_port().await;
    let port = free_port();
    let redirect_port = free_port();
    let site = site_with_prefix_router(django, reflex, &format!("127.0.0.1:{port}"));
    // The certificate is a link into another folder, as certbot's live/ links into
    // archive/: rewriting the target is seen by no watcher, SIGHUP alone reloads it.
    let first = pki.leaf(&["localhost"]);
    site.write("archive/site.pem", &first.cert_pem);
    site.write("tls/site.key", &first.key_pem);
    std::os::unix::fs::symlink(site.path().join("archive/site.pem"), site.path().join("tls/site.pem")).unwrap();
    with_tls(&site, &format!("redirect_addr = \"127.0.0.1:{redirect_port}\"\n"));
    let server = Server::start(&site);
    let connector = pki.client(&[b"h2"]);

    let stream = pki::connect(server.addr, &connector, "localhost").await;
    assert_eq!(pki::presented(&stream), first.der);
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://localhost/admin/").body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let res = h2.send_request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"django saw /admin/ over https");

    let req = Request::get(format!("http://127.0.0.1:{redirect_port}/admin/?x=1"))
        .header("host", "localhost")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, _) = send(req).await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (StatusCode::PERMANENT_REDIRECT, &*format!("https://localhost:{port}/admin/?x=1"))
    );

    // A renewed certificate with the same key, written into the link's target.
    let renewed = pki.leaf_with_key(&["localhost"], &first);
    std::fs::write(site.path().join("archive/site.pem"), &renewed.cert_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stream = pki::connect(server.addr, &connector, "localhost").await;
    assert_eq!(pki::presented(&stream), first.der, "no watcher sees a change behind a link");
    server.sighup();
    let start = Instant::now();
    while pki::presented(&pki::connect(server.addr, &connector, "localhost").await) != renewed.der {
        assert!(start.elapsed() < Duration::from_secs(10), "SIGHUP did not reload the certificate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The HTTP/2 connection made before the reload still serves.
    let req = Request::get("https://localhost/api/after").body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let body = h2.send_request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"django saw /api/after over https");
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("TLS certificate reloaded"), "{log}");
}

#[test]
fn check_reports_a_plugin_setup_error_with_the_guest_text() {
    let site = site_with_prefix_router("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap(), "127.0.0.1:0");
    let config = site.path().join("isthmus.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(r#""/webhooks""#, r#""/_event""#);
    std::fs::write(&config, text).unwrap();
    let (code, _, err) = output(isthmus().arg("check").arg("--config").arg(&config));
    assert_eq!(code, 1);
    assert!(err.contains("prefix_router") && err.contains("/_event"), "{err}");
}

#[test]
fn route_explains_each_decision() {
    let site = site_with_prefix_router("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap(), "127.0.0.1:0");
    let config = site.path().join("isthmus.toml");
    let route = |method: &str, path: &str| {
        let (code, out, err) = output(isthmus().args(["route", "--config"]).arg(&config).args([method, path]));
        assert_eq!(code, 0, "{err}");
        out
    };
    let out = route("GET", "/admin/login/");
    assert!(out.contains("prefix_router") && out.contains("forward to upstream `django`"), "{out}");
    let out = route("GET", "/%61dmin/");
    assert!(out.contains("canonical path: /admin/") && out.contains("upstream `django`"), "{out}");
    let out = route("GET", "/_event/../admin/");
    assert!(out.contains("upstream `django`"), "{out}");
    let out = route("GET", "/_event/?EIO=4&transport=websocket");
    assert!(out.contains("upstream `reflex`"), "{out}");
    let out = route("GET", "/static/admin/base.css");
    assert!(out.contains("static mount `django_static`"), "{out}");
    let out = route("GET", "/products");
    assert!(out.contains("static mount `frontend`"), "{out}");
    let out = route("GET", "/administrator");
    assert!(out.contains("static mount `frontend`"), "{out}");
    let out = route("GET", "/a%2Fb");
    assert!(out.contains("400"), "{out}");
    let (code, out, err) = output(isthmus().args(["route", "--config"]).arg(&config).args([
        "GET",
        "/admin/",
        "-H",
        "Remote-User: admin",
        "-H",
        "X_Api: 1",
        "-H",
        "Accept: */*",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed at the door ([headers]): remote-user, x_api\n"), "{out}");
}

struct Server {
    child: Child,
    addr: std::net::SocketAddr,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn start(site: &Site) -> Server {
        let mut child = isthmus()
            .arg("serve")
            .arg("--config")
            .arg(site.path().join("isthmus.toml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                sink.lock().unwrap().push(line);
            }
        });
        // Owned from here on, so the child is killed even if waiting for it fails.
        let mut server = Server { child, addr: "0.0.0.0:0".parse().unwrap(), log };
        // The listener's address comes from the config; wait for the ready line.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("gateway never said it was listening");
            if let Some(addr) = line.split("addr=").nth(1).filter(|_| line.contains("isthmus listening")) {
                server.addr = addr.split_whitespace().next().unwrap().parse().unwrap();
                return server;
            }
        }
    }

    fn rss_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status.lines().find(|l| l.starts_with(field)).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    fn sigterm(&self) {
        self.signal("TERM");
    }

    fn sighup(&self) {
        self.signal("HUP");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_routes_logs_and_stops_cleanly_on_sigterm() {
    let django =
        upstream(|req: Request<hyper::body::Incoming>| async move { text(format!("django saw {}", req.uri())) }).await;
    let reflex =
        upstream(|req: Request<hyper::body::Incoming>| async move { text(format!("reflex saw {}", req.uri())) }).await;
    let site = site_with_prefix_router(django, reflex, &format!("127.0.0.1:{}", free_port()));
    // One worker: the single-threaded runtime (the other tests here run the multi-threaded one).
    let config = std::fs::read_to_string(site.path().join("isthmus.toml")).unwrap();
    site.write("isthmus.toml", config.replace("[listen]\n", "[listen]\nworkers = 1\n"));
    let mut server = Server::start(&site);
    let url = |p: &str| format!("http://{}{}", server.addr, p);

    let (status, _, body) = get(&url("/admin/login/?next=/")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"django saw /admin/login/?next=/"[..]));
    let (_, _, body) = get(&url("/%61pi/x")).await;
    assert_eq!(&body[..], b"django saw /api/x");
    let (_, _, body) = get(&url("/ping")).await;
    assert_eq!(&body[..], b"reflex saw /ping");
    let (_, _, body) = get(&url("/static/admin/base.css")).await;
    assert_eq!(&body[..], b"body{}");
    let (_, _, body) = get(&url("/products/42")).await;
    assert_eq!(&body[..], b"<h1>spa</h1>");

    let log = server.log.lock().unwrap().join("\n");
    let line = log.lines().find(|l| l.contains("/admin/login/")).unwrap_or_else(|| panic!("no access line:\n{log}"));
    for field in ["method=GET", "status=200", "target=upstream:django", "duration_us=", "request_id="] {
        assert!(line.contains(field), "{field} missing from {line}");
    }

    server.sigterm();
    let start = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "exit 0 after SIGTERM");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_each_way_does_not_grow_memory() {
    const GIB: usize = 1 << 30;
    const CHUNK: usize = 256 * 1024;
    let django = upstream(|req: Request<hyper::body::Incoming>| async move {
        if req.method() == http::Method::POST {
            let mut body = req.into_body();
            let mut n = 0usize;
            while let Some(frame) = body.frame().await {
                n += frame.unwrap().data_ref().map_or(0, |d| d.len());
            }
            text(n.to_string())
        } else {
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let stream = futures_util::stream::iter(
                (0..GIB / CHUNK).map(move |_| Ok::<_, isthmus::body::BoxError>(Frame::data(chunk.clone()))),
            );
            Response::new(StreamBody::new(stream).boxed_unsync())
        }
    })
    .await;
    let site = site_with_prefix_router(django, dead_port().await, &format!("127.0.0.1:{}", free_port()));
    let server = Server::start(&site);
    // Warm up so pools and buffers exist before the baseline.
    get(&format!("http://{}/api/warm", server.addr)).await;
    let baseline = server.rss_kib("VmRSS:");
    // Reset the peak so start-up (plugin compilation) does not count.
    std::fs::write(format!("/proc/{}/clear_refs", server.child.id()), "5").unwrap();

    let chunk = Bytes::from(vec![b'u'; CHUNK]);
    let upload = futures_util::stream::iter(
        (0..GIB / CHUNK).map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone()))),
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let res = client
        .request(Request::post(format!("http://{}/api/upload", server.addr)).body(StreamBody::new(upload)).unwrap())
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), GIB.to_string());

    let res = common::client()
        .request(
            Request::get(format!("http://{}/api/download", server.addr))
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = res.into_body();
    let mut n = 0usize;
    while let Some(frame) = body.frame().await {
        n += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(n, GIB);

    let peak = server.rss_kib("VmHWM:");
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!("gateway RSS: baseline {} MiB, peak {} MiB", baseline / 1024, peak / 1024);
    assert!(grown_mib < 64, "RSS grew by {grown_mib} MiB while 2 GiB passed through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_fails_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let django = upstream(|_| async { text("ok") }).await;
    let site = site_with_prefix_router(django, dead_port().await, &format!("127.0.0.1:{}", free_port()));
    let server = Server::start(&site);
    let plugin = site.path().join("plugins/prefix_router.wasm");
    let original = std::fs::read(&plugin).unwrap();
    let url = format!("http://{}/api/items", server.addr);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.clone());
            tokio::spawn(async move {
                let client = client();
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let req = Request::get(&url).body(http_body_util::Full::new(Bytes::new())).unwrap();
                    match client.request(req).await {
                        Ok(res) if res.status() == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // Atomic replacement (write + rename), as deploy tools do.
    let replace = |bytes: &[u8]| {
        let tmp = site.path().join("plugins/.prefix_router.wasm.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &plugin).unwrap();
    };
    // Each change is awaited in the log: a compile can outlast any fixed pause on a
    // slow machine, and two quick writes would then coalesce into one reload.
    let count = |what: &str| server.log.lock().unwrap().iter().filter(|l| l.contains(what)).count();
    let await_log = |what: &'static str, n: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(what) < n {
            assert!(Instant::now() < deadline, "no `{what}` #{n} in the log within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    for round in 0..3 {
        replace(&variant(&original, &format!("v{round}")));
        await_log("plugin reloaded", round + 1).await;
    }
    replace(b"not a component");
    await_log("plugin reload refused", 1).await;
    server.sighup();
    await_log("plugin reload refused", 2).await;
    replace(&original);
    await_log("plugin reloaded", 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    let log = server.log.lock().unwrap().join("\n");
    let reloaded = log.matches("plugin reloaded").count();
    let refused = log.matches("plugin reload refused").count();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("hot reload under load: {ok} requests ok, {failed} failed, {reloaded} reloads, {refused} refused");
    assert_eq!(failed, 0, "no request may fail during reloads\n{log}");
    assert!(ok > 200, "the load ran ({ok} requests)");
    assert!(reloaded >= 4, "three new versions and the original came back: {reloaded}\n{log}");
    assert!(refused >= 2, "the broken file was refused, on change and on SIGHUP: {refused}\n{log}");
}

/// `isthmus plugin test`: every case run on the real component, a diff for each answer
/// that differs, the plain summary line, exit 1 on any failure.
#[test]
fn plugin_test_runs_a_table_of_cases_against_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("prefix_router.wasm");
    std::fs::copy(plugin_path("prefix_router.wasm"), &wasm).unwrap();
    let cases = dir.path().join("cases.toml");
    let write = |extra: &str| {
        std::fs::write(
            &cases,
            format!(
                r#"world = "router"
config = {{ django_prefixes = ["/admin"] }}
[[case]]
name = "the admin goes to Django"
request = {{ path = "/admin/login/", headers = [["cookie", "sessionid=x"]] }}
expect = {{ forward = {{ upstream = "django" }} }}
[[case]]
name = "pages are the SPA's"
request = {{ path = "/shop" }}
expect = {{ serve_static = "frontend" }}
{extra}"#
            ),
        )
        .unwrap()
    };
    write("");
    let (code, stdout, stderr) = output(isthmus().args(["plugin", "test"]).arg(&wasm).arg(&cases));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ok     the admin goes to Django") && stdout.ends_with("2 passed, 0 failed\n"), "{stdout}");

    write("[[case]]\nname = \"a wrong expectation\"\nrequest = { path = \"/_event/\" }\nexpect = { forward = { upstream = \"django\" } }\n");
    let (code, stdout, stderr) = output(isthmus().args(["plugin", "test"]).arg(&wasm).arg(&cases));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAILED a wrong expectation"), "{stdout}");
    assert!(stdout.contains(r#"expected forward.upstream = "django", got "reflex""#), "{stdout}");
    assert!(stdout.ends_with("2 passed, 1 failed\n") && stderr.contains("1 of 3 cases failed"), "{stdout}{stderr}");

    write("[[case]]\nname = \"a typo\"\nrequest = { path = \"/\" }\nuser = { is_stuff = true }\nexpect = \"pass\"\n");
    let (code, _, stderr) = output(isthmus().args(["plugin", "test"]).arg(&wasm).arg(&cases));
    assert_eq!(code, 1);
    assert!(stderr.contains("is_stuff"), "a misspelt key is named: {stderr}");
}

/// The bridge world: events and connects, with users, through the identity echo.
#[test]
fn plugin_test_judges_bridge_cases_with_their_users() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("echo.wasm");
    std::fs::copy(plugin_path("test_identity_echo.wasm"), &wasm).unwrap();
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        r#"world = "bridge"
[[case]]
name = "anyone connects"
connect = { path = "/_event/" }
expect = { allow = {} }
[[case]]
name = "the user and the event reach the policy"
event = { kind = "identity_change", name = "state.me.refresh", route = "/me", payload = "editors" }
user = { authenticated = true, username = "sue", first_name = "Sue", groups = ["editors"] }
expect = { allow = { username = "sue", first-name = "Sue", in-group = "true", kind = "IdentityChange", route = "/me" } }
[[case]]
name = "anonymous by default"
event = { name = "state.x" }
expect = { allow = { authenticated = "false", user-id = "none" } }
"#,
    )
    .unwrap();
    let (code, stdout, stderr) = output(isthmus().args(["plugin", "test"]).arg(&wasm).arg(&cases));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.ends_with("3 passed, 0 failed\n"), "{stdout}");
}

/// `isthmus plugin new` writes a self-contained project with the gateway's own WIT.
#[test]
fn plugin_new_writes_a_project_with_its_own_contract() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("policy");
    let (code, stdout, stderr) =
        output(isthmus().args(["plugin", "new", "--lang", "python", "--world", "bridge"]).arg(&project));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let wit = std::fs::read_to_string(project.join("wit/policy.wit")).unwrap();
    assert_eq!(wit, std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/policy.wit")).unwrap());
    for file in ["app.py", "cases.toml", "README.md", "build.sh", "test.sh"] {
        assert!(project.join(file).is_file(), "{file} is missing");
    }
    let (code, _, stderr) =
        output(isthmus().args(["plugin", "new", "--lang", "python", "--world", "bridge"]).arg(&project));
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists and is not empty"), "{stderr}");
    let (code, _, stderr) =
        output(isthmus().args(["plugin", "new", "--lang", "go", "--world", "router"]).arg(dir.path().join("g")));
    assert_eq!(code, 1);
    assert!(stderr.contains("--lang must be one of rust, python, js, c"), "{stderr}");
}

/// `isthmus plugin bench`: compile times with and without the cache, the memory an
/// instance starts with, and the cost per call, reused and new.
#[test]
fn plugin_bench_times_the_first_case() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("prefix_router.wasm");
    std::fs::copy(plugin_path("prefix_router.wasm"), &wasm).unwrap();
    let cases = dir.path().join("cases.toml");
    let case = "[[case]]\nname = \"admin\"\nrequest = { path = \"/admin/\" }\nexpect = \"pass\"\n";
    std::fs::write(&cases, format!("world = \"router\"\n{case}")).unwrap();
    let (code, stdout, stderr) = output(isthmus().args(["plugin", "bench"]).arg(&wasm).arg(&cases));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let number = |prefix: &str| -> f64 {
        let line = stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {stdout}"));
        line[prefix.len()..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(number("compile: ") > 0.0);
    assert!(number("memory at start: ") > 0.0, "{stdout}");
    assert!(number("per call, reused instance: ") > 0.0);
    assert!(number("per call, new instance: ") > number("per call, reused instance: "), "{stdout}");
    std::fs::write(&cases, "world = \"bridge\"\n").unwrap();
    let (code, _, stderr) = output(isthmus().args(["plugin", "bench"]).arg(&wasm).arg(&cases));
    assert_eq!(code, 1);
    assert!(stderr.contains("missing field `case`") || stderr.contains("no case"), "{stderr}");
}
