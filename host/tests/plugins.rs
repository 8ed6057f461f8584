//! The plugin runtime against the real guest components of `guest-plugins/`
//! (`prefix_router.wasm`, `test_hostile.wasm`). Run `guest-plugins/build.sh` first.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{variant, Captured};
use isthmus::config::Config;
use isthmus::plugin::cache::CacheMeta;
use isthmus::plugin::{CacheOutcome, PluginError, PluginHost, WasmRouter};
use isthmus::policy::{Decision, Forward, Outcome, PolicyFailure, Reply, RouteRequest, Router, RouterChain};
use isthmus::reload::{spawn_reloader, Reload};

fn built(file: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins").join(file);
    assert!(path.is_file(), "{} is missing: run guest-plugins/build.sh first", path.display());
    path
}

struct Env {
    dir: tempfile::TempDir,
    config: Config,
}

impl Env {
    fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }
    fn cache(&self) -> PathBuf {
        self.config.cache_dir()
    }
}

/// A temp folder with both components in `plugins/` and a config whose
/// `[routing]` table ends with `routing` (`[[routing.routers]]` entries, …).
fn env(routing: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for file in ["prefix_router.wasm", "test_hostile.wasm"] {
        std::fs::copy(built(file), plugins.join(file)).unwrap();
    }
    let text = format!(
        r#"
[listen]
addr = "127.0.0.1:0"
workers = 2

[upstreams.django]
url = "http://127.0.0.1:8000"

[upstreams.reflex]
url = "http://127.0.0.1:8001"

[routing]
plugins_dir = "plugins"
{routing}
"#
    );
    let config = Config::parse(&text, &dir.path().join("isthmus.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Env { dir, config }
}

/// One `[[routing.routers]]` entry of test_hostile in `mode`, plus extra TOML lines.
/// Unless `extra` sets one, the deadline is generous: these tests run a debug build on
/// a shared machine, and only the deadline tests are about the deadline.
fn hostile(name: &str, mode: &str, extra: &str) -> String {
    let extra = if extra.contains("deadline") { extra.to_owned() } else { format!("deadline = \"2s\"\n{extra}") };
    format!("[[routing.routers]]\nplugin = \"test_hostile.wasm\"\nname = \"{name}\"\n{extra}\nconfig = {{ mode = \"{mode}\" }}\n")
}

fn load(env: &Env) -> Vec<Arc<WasmRouter>> {
    PluginHost::new().unwrap().load(&env.config, None).map(|p| p.routers).unwrap_or_else(|e| panic!("{e}"))
}

fn req(path: &str) -> Arc<RouteRequest> {
    Arc::new(RouteRequest {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "example.test".into(),
        path: path.into(),
        query: String::new(),
        headers: vec![("accept".into(), "*/*".into())],
        client_ip: "127.0.0.1".into(),
    })
}

fn body(d: Result<Decision, PolicyFailure>) -> String {
    match d {
        Ok(Decision::Reply(Reply { status: 200, body, .. })) => String::from_utf8(body).unwrap(),
        other => panic!("expected a 200 reply, got {other:?}"),
    }
}

fn forward(upstream: &str) -> Decision {
    Decision::Forward(Forward { upstream: upstream.into(), path: None, set_headers: vec![], remove_headers: vec![] })
}

#[test]
fn prefix_router_decides() {
    let env = env(r#"[[routing.routers]]
plugin = "prefix_router.wasm"
deadline = "2s"
config = { django_prefixes = ["/admin", "/api", "/webhooks"] }
"#);
    let routers = load(&env);
    let r = &routers[0];
    assert_eq!(r.name(), "prefix_router");
    for (path, want) in [
        ("/admin", forward("django")),
        ("/admin/login/", forward("django")),
        ("/api/users", forward("django")),
        ("/webhooks/stripe", forward("django")),
        ("/static/app.css", forward("django")),
        ("/_event", forward("reflex")),
        ("/_upload", forward("reflex")),
        ("/ping", forward("reflex")),
        ("/api/_event", forward("django")),
        ("/administrator", Decision::ServeStatic("frontend".into())),
        ("/", Decision::ServeStatic("frontend".into())),
        ("/Admin", Decision::ServeStatic("frontend".into())),
    ] {
        assert_eq!(r.route(&req(path), None), Ok(want), "{path}");
    }
    // Many calls on warm instances.
    for _ in 0..1000 {
        assert_eq!(r.route(&req("/api/x"), None), Ok(forward("django")));
    }
    assert_eq!(r.warm_instances(), 1);
}

#[test]
fn prefix_router_bad_config_is_a_load_error_naming_the_plugin() {
    let env = env(r#"[[routing.routers]]
plugin = "prefix_router.wasm"
name = "front"
deadline = "2s"
config = { django_prefixes = ["/_event"] }
"#);
    let err = PluginHost::new().unwrap().load(&env.config, None).map(|p| p.routers).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("plugin `front`: setup failed: "), "{text}");
    assert!(text.contains("/_event"), "{text}");
}

/// Load a hostile router beside a well-behaved `counter` one, on the same engine.
fn hostile_and_counter(mode: &str, extra: &str) -> (Env, Arc<WasmRouter>, Arc<WasmRouter>) {
    let env = env(&(hostile("bad", mode, extra) + &hostile("good", "counter", "")));
    let mut routers = load(&env);
    let good = routers.pop().unwrap();
    let bad = routers.pop().unwrap();
    (env, bad, good)
}

/// After a failure the instance is gone, the next call starts a fresh one and fails
/// the same way (not with a poisoned-store error), and neighbours are unaffected.
fn assert_contained(bad: &WasmRouter, good: &WasmRouter, check: impl Fn(PolicyFailure)) {
    assert_eq!(bad.warm_instances(), 0, "a failed instance must not go back to the pool");
    assert_eq!(body(good.route(&req("/"), None)), "1");
    check(bad.route(&req("/"), None).unwrap_err());
    assert_eq!(bad.warm_instances(), 0);
    assert_eq!(body(good.route(&req("/"), None)), "2");
}

#[test]
fn loop_hits_the_deadline() {
    let (_env, bad, good) = hostile_and_counter("loop", "deadline = \"20ms\"");
    // Idle long enough for the epoch thread to park (it ticks only while a call may
    // run): the spinning call must wake it.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    // On a thread: a call that is never stopped fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let spinning = bad.clone();
    std::thread::spawn(move || tx.send(spinning.route(&req("/"), None)));
    let failure = rx.recv_timeout(Duration::from_secs(5)).expect("the spinning call was never stopped").unwrap_err();
    let took = start.elapsed();
    assert_eq!(failure, PolicyFailure::Deadline(Duration::from_millis(20)));
    eprintln!("loop stopped after {took:?} (deadline 20ms)");
    assert!(took >= Duration::from_millis(19), "stopped before the deadline: {took:?}");
    assert!(took < Duration::from_millis(500), "stopped far past the deadline: {took:?}");
    assert_contained(&bad, &good, |f| assert_eq!(f, PolicyFailure::Deadline(Duration::from_millis(20))));
}

#[test]
fn memory_hits_the_cap() {
    let (_env, bad, good) = hostile_and_counter("memory", "max_memory = 8388608");
    let start = Instant::now();
    assert_eq!(bad.route(&req("/"), None).unwrap_err(), PolicyFailure::MemoryCap(8 << 20));
    eprintln!("memory cap reached after {:?}", start.elapsed());
    assert_contained(&bad, &good, |f| assert_eq!(f, PolicyFailure::MemoryCap(8 << 20)));
}

#[test]
fn trap_is_a_trap() {
    let (_env, bad, good) = hostile_and_counter("trap", "");
    match bad.route(&req("/"), None).unwrap_err() {
        PolicyFailure::Trap(msg) => assert!(msg.contains("unreachable"), "{msg}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_contained(&bad, &good, |f| assert!(matches!(f, PolicyFailure::Trap(_)), "{f:?}"));
}

#[test]
fn unknown_upstream_is_a_decision_for_the_dispatcher() {
    let env = env(&hostile("u", "unknown-upstream", ""));
    let r = &load(&env)[0];
    assert_eq!(r.route(&req("/"), None), Ok(forward("nowhere")));
}

#[test]
fn reply_and_pass() {
    let env = env(&(hostile("reply", "reply", "") + &hostile("pass", "pass", "")));
    let routers = load(&env);
    assert_eq!(
        routers[0].route(&req("/"), None),
        Ok(Decision::Reply(Reply {
            status: 418,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"teapot".to_vec()
        }))
    );
    assert_eq!(routers[1].route(&req("/"), None), Ok(Decision::Pass));
}

#[test]
fn setup_error_names_the_plugin_and_carries_the_guest_text() {
    let env = env(&hostile("picky", "setup-error", ""));
    let err = PluginHost::new().unwrap().load(&env.config, None).map(|p| p.routers).unwrap_err();
    assert!(matches!(err, PluginError::Setup { .. }), "{err:?}");
    assert_eq!(err.to_string(), "plugin `picky`: setup failed: refusing: test setup error");
}

#[test]
fn setup_trap_and_setup_loop_are_load_errors() {
    let e = env(&hostile("t", "setup-trap", ""));
    let err = PluginHost::new().unwrap().load(&e.config, None).map(|p| p.routers).unwrap_err();
    assert!(matches!(err, PluginError::SetupFailed { failure: PolicyFailure::Trap(_), .. }), "{err:?}");
    assert!(err.to_string().starts_with("plugin `t`: setup trapped"), "{err}");

    let e = env(&hostile("l", "setup-loop", "deadline = \"20ms\""));
    let start = Instant::now();
    let err = PluginHost::new().unwrap().load(&e.config, None).map(|p| p.routers).unwrap_err();
    assert!(matches!(err, PluginError::SetupFailed { failure: PolicyFailure::Deadline(_), .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn not_a_component_is_a_load_error() {
    let env = env(&hostile("junk", "pass", ""));
    std::fs::write(env.plugins().join("test_hostile.wasm"), b"\0asm\x01\0\0\0 not really").unwrap();
    let err = PluginHost::new().unwrap().load(&env.config, None).map(|p| p.routers).unwrap_err();
    assert!(matches!(err, PluginError::Compile { .. }), "{err:?}");
    assert!(err.to_string().starts_with("plugin `junk`: "), "{err}");
}

#[test]
fn print_reaches_the_log() {
    let env = env(&hostile("chatty", "print", "instance = \"fresh\""));
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let r = &load(&env)[0];
        for _ in 0..3 {
            assert_eq!(r.route(&req("/"), None), Ok(Decision::Pass));
        }
    });
    // On a tokio worker thread, where the gateway calls routers: wasmtime-wasi's own
    // sync WASI would panic here ("Cannot start a runtime from within a runtime").
    let r = load(&env).pop().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let on_worker = rt.block_on(async move { tokio::spawn(async move { r.route(&req("/"), None) }).await.unwrap() });
    assert_eq!(on_worker, Ok(Decision::Pass));
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let stdout: Vec<&str> = log.lines().filter(|l| l.contains("test-hostile: a line on stdout")).collect();
    let stderr: Vec<&str> = log.lines().filter(|l| l.contains("test-hostile: a line on stderr")).collect();
    // Built for wasm32-unknown-unknown (build.sh's Debian route), the guest has no WASI
    // and prints nowhere; then only check that nothing broke.
    if !stdout.is_empty() {
        assert_eq!(stdout.len(), 3, "{log}");
        assert_eq!(stderr.len(), 3, "{log}");
        assert!(stdout[0].contains("isthmus::plugin") && stdout[0].contains("plugin=\"chatty\""), "{log}");
        assert!(stdout[0].contains("INFO") && stderr[0].contains("WARN"), "{log}");
    } else {
        eprintln!("test_hostile.wasm prints nowhere (no WASI); only checked that print does not break");
    }
}

#[test]
fn fail_open_and_closed_through_the_chain() {
    let env = env(&(hostile("trap-open", "trap", "fail = \"open\"")
        + &hostile("trap-closed", "trap", "")
        + &hostile("teapot", "reply", "")));
    let routers = load(&env);
    let as_dyn = |i: usize| routers[i].clone() as Arc<dyn Router>;

    let open = RouterChain::new(vec![as_dyn(0), as_dyn(2)]);
    let mut trace = Vec::new();
    match open.route(&req("/"), None, Some(&mut trace)) {
        Outcome::Decided { router, decision: Decision::Reply(r) } => {
            assert_eq!(router, "teapot");
            assert_eq!(r.status, 418);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&trace[0].1, isthmus::policy::Step::FailedOpen(PolicyFailure::Trap(_))), "{trace:?}");

    let closed = RouterChain::new(vec![as_dyn(1), as_dyn(2)]);
    match closed.route(&req("/"), None, None) {
        Outcome::Failed { router, failure: PolicyFailure::Trap(_) } => assert_eq!(router, "trap-closed"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pooled_instances_are_reused_fresh_ones_are_not() {
    let env = env(&(hostile("pooled", "counter", "")
        + &hostile("fresh", "counter", "instance = \"fresh\"")
        + &hostile("recycled", "counter", "recycle_after = 3")));
    let routers = load(&env);
    let seq = |r: &WasmRouter, n: usize| (0..n).map(|_| body(r.route(&req("/"), None))).collect::<Vec<_>>().join(",");
    assert_eq!(seq(&routers[0], 5), "1,2,3,4,5");
    assert_eq!(seq(&routers[1], 5), "1,1,1,1,1");
    assert_eq!(routers[1].warm_instances(), 0);
    assert_eq!(seq(&routers[2], 7), "1,2,3,1,2,3,1");
}

#[test]
fn concurrent_calls_use_several_instances_and_the_pool_is_bounded() {
    let env = env(&hostile("c", "counter", ""));
    let r = load(&env).pop().unwrap();
    let total = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..500 {
                    body(r.route(&req("/"), None));
                    total.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(total.into_inner(), 4000);
    // workers = 2 in the config: at most 4 idle instances kept.
    assert!((1..=4).contains(&r.warm_instances()), "{}", r.warm_instances());
}

/// Replace a file the way editors and deploy scripts do: write aside, rename over.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn hot_reload_under_load() {
    let env = env(&(hostile("v", "version", "")
        .replace("config = { mode = \"version\" }", "config = { mode = \"version\", version = \"v1\" }")));
    let r = load(&env).pop().unwrap();
    let file = r.file().unwrap().to_owned();
    let original = std::fs::read(&file).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let reloader = rt.block_on(async { spawn_reloader(vec![r.clone() as Arc<dyn Reload>], vec![]) });

    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let generations_seen = Mutex::new(std::collections::BTreeSet::new());
    /// Stops the callers even when an assertion below panics (else the scope would
    /// wait for them forever).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let generation = r.load_info().unwrap().generation;
                    match r.route(&req("/"), None) {
                        Ok(Decision::Reply(reply)) if reply.status == 200 && reply.body == b"v1" => {}
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                    generations_seen.lock().unwrap().insert(generation);
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // (Not necessarily 1: the SIGHUP test in this process may reload it too.)
        let mut generation = r.load_info().unwrap().generation;
        for step in 0..3 {
            // A valid new version (other bytes, same behaviour) is picked up by the watcher.
            let bytes = variant(&original, &format!("v{step}"));
            let sha = isthmus_sha256(&bytes);
            replace(&file, &bytes);
            // A debug-build compile on a loaded 2-core machine can take many seconds.
            wait_for("the reload", Duration::from_secs(120), || r.load_info().unwrap().source_sha256 == sha);
            let info = r.load_info().unwrap();
            assert!(info.generation > generation, "{info:?}");
            generation = info.generation;

            if step == 1 {
                // A broken file is refused; the version serving stays.
                replace(&file, &original[..original.len() / 2]);
                std::thread::sleep(isthmus::limits::RELOAD_DEBOUNCE * 4);
                assert!(r.reload().is_err());
                assert_eq!(r.load_info().unwrap().source_sha256, sha);
            }
            if step == 2 {
                // A valid component that refuses this config is refused too.
                replace(&file, &std::fs::read(built("prefix_router.wasm")).unwrap());
                std::thread::sleep(isthmus::limits::RELOAD_DEBOUNCE * 4);
                let err = r.reload().unwrap_err();
                assert!(err.to_string().starts_with("plugin `v`: setup failed: "), "{err}");
                assert_eq!(r.load_info().unwrap().source_sha256, sha);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    rt.block_on(reloader.stop());
    let failures = failures.into_inner().unwrap();
    let calls = calls.into_inner();
    let seen = generations_seen.into_inner().unwrap();
    eprintln!("{calls} calls during reloads, generations seen {seen:?}");
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(seen.len() >= 3, "{seen:?}"); // of generations 1..=4 (start + 3 reloads)
    assert!(seen.iter().all(|g| (1..=5).contains(g)), "{seen:?}"); // refused versions take no number (5: a SIGHUP from that test)
    assert!(calls > 100, "{calls}");
}

#[allow(unsafe_code)]
#[test]
fn sighup_reloads_every_router() {
    let env = env(&(hostile("a", "counter", "") + &hostile("b", "pass", "")));
    let routers = load(&env);
    assert_eq!(body(routers[0].route(&req("/"), None)), "1");
    assert_eq!(body(routers[0].route(&req("/"), None)), "2");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reloader =
        rt.block_on(async { spawn_reloader(vec![], routers.iter().map(|r| r.clone() as Arc<dyn Reload>).collect()) });
    // SAFETY: sending a signal to this very process; spawn_reloader has installed the
    // SIGHUP handler before returning.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    rt.block_on(async {
        let start = Instant::now();
        while !routers.iter().all(|r| r.load_info().unwrap().generation >= 2) {
            assert!(start.elapsed() < Duration::from_secs(10), "SIGHUP did not reload every router");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    // Unchanged files are reloaded anyway on SIGHUP, and fresh instances serve.
    assert_eq!(body(routers[0].route(&req("/"), None)), "1");
    rt.block_on(reloader.stop());
}

fn isthmus_sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[test]
fn reload_of_unchanged_file_is_a_no_op_and_sighup_style_reload_is_not() {
    let env = env(&hostile("c", "counter", ""));
    let r = load(&env).pop().unwrap();
    assert_eq!(body(r.route(&req("/"), None)), "1");
    assert!(!r.reload_if_changed().unwrap());
    assert_eq!(body(r.route(&req("/"), None)), "2");
    r.reload().unwrap();
    assert_eq!(r.load_info().unwrap().generation, 2);
    assert_eq!(r.load_info().unwrap().cache, CacheOutcome::Hit);
    assert_eq!(body(r.route(&req("/"), None)), "1", "a reload starts fresh instances");
}

fn cache_files(dir: &Path) -> (PathBuf, PathBuf) {
    let mut cwasm = None;
    let mut meta = None;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("cwasm") => assert!(cwasm.replace(path).is_none(), "two .cwasm files"),
            Some("meta") => assert!(meta.replace(path).is_none(), "two .meta files"),
            // The plugin's last good version, for start-ups that find a new one.
            Some("last") => {}
            _ => panic!("unexpected file in the cache: {}", path.display()),
        }
    }
    (cwasm.expect("no .cwasm"), meta.expect("no .meta"))
}

#[test]
fn cache_hit_and_corrupt_entries() {
    let env = env(&hostile("c", "reply", ""));
    let check = |want: CacheOutcome| {
        let r = load(&env).pop().unwrap();
        let info = r.load_info().unwrap();
        assert_eq!(info.cache, want, "{info:?}");
        assert_eq!(r.route(&req("/"), None).unwrap(), load_reply());
        info
    };
    let cold = check(CacheOutcome::Miss);
    let hit = check(CacheOutcome::Hit);
    eprintln!("compile cold {:?}, from cache {:?}", cold.compile_time, hit.compile_time);
    let (cwasm, meta) = cache_files(&env.cache());
    let good_cwasm = std::fs::read(&cwasm).unwrap();
    let good_meta = std::fs::read(&meta).unwrap();

    // Truncated .cwasm.
    std::fs::write(&cwasm, &good_cwasm[..good_cwasm.len() / 3]).unwrap();
    check(CacheOutcome::Rejected);
    assert_eq!(std::fs::read(&cwasm).unwrap(), good_cwasm, "entry rewritten");
    check(CacheOutcome::Hit);

    // Flipped bytes in the code.
    let mut flipped = good_cwasm.clone();
    for i in (flipped.len() / 2..flipped.len() / 2 + 64).step_by(7) {
        flipped[i] ^= 0xff;
    }
    std::fs::write(&cwasm, &flipped).unwrap();
    check(CacheOutcome::Rejected);
    check(CacheOutcome::Hit);

    // Garbage meta, empty meta.
    std::fs::write(&meta, b"\xff\xff\xff\xff garbage \x00\x01").unwrap();
    check(CacheOutcome::Rejected);
    std::fs::write(&meta, b"").unwrap();
    check(CacheOutcome::Rejected);
    assert_eq!(std::fs::read(&meta).unwrap(), good_meta);

    // Missing .cwasm with its meta.
    std::fs::remove_file(&cwasm).unwrap();
    check(CacheOutcome::Rejected);

    // Garbage .cwasm whose meta matches it (the checksum cannot catch this one;
    // wasmtime's own header check must).
    let garbage = vec![0x5a_u8; 4096];
    let mut m: CacheMeta = postcard::from_bytes(&good_meta).unwrap();
    m.cwasm_len = garbage.len() as u64;
    m.cwasm_sha256 = isthmus_sha256(&garbage);
    std::fs::write(&cwasm, &garbage).unwrap();
    std::fs::write(&meta, postcard::to_stdvec(&m).unwrap()).unwrap();
    check(CacheOutcome::Rejected);
    check(CacheOutcome::Hit);
}

#[test]
fn stale_cache_entry_from_another_engine_is_recompiled() {
    let env = env(&hostile("c", "reply", ""));
    let r = load(&env).pop().unwrap();
    assert_eq!(r.load_info().unwrap().cache, CacheOutcome::Miss);
    let (_, meta) = cache_files(&env.cache());
    let good: CacheMeta = postcard::from_bytes(&std::fs::read(&meta).unwrap()).unwrap();
    for stale in [
        CacheMeta { engine_hash: [7; 32], ..good.clone() },
        CacheMeta { format: good.format + 1, ..good.clone() },
        CacheMeta { source_sha256: [1; 32], ..good.clone() },
    ] {
        std::fs::write(&meta, postcard::to_stdvec(&stale).unwrap()).unwrap();
        let r = load(&env).pop().unwrap();
        assert_eq!(r.load_info().unwrap().cache, CacheOutcome::Rejected);
        assert_eq!(r.route(&req("/"), None).unwrap(), load_reply());
        let now: CacheMeta = postcard::from_bytes(&std::fs::read(&meta).unwrap()).unwrap();
        assert_eq!(now, good, "entry rewritten");
    }
}

#[test]
fn unwritable_cache_dir_only_costs_compile_time() {
    let env = env(&hostile("c", "reply", ""));
    // A cache "folder" below a regular file can never be created, even as root.
    std::fs::write(env.dir.path().join("not-a-dir"), b"").unwrap();
    let host = PluginHost::new().unwrap();
    let entry = &env.config.routing.routers[0];
    for _ in 0..2 {
        let r = host
            .load_router(entry, &env.config.routing.plugins_dir, Some(env.dir.path().join("not-a-dir/cache")), 2)
            .unwrap();
        assert_eq!(r.load_info().unwrap().cache, CacheOutcome::Miss);
        assert_eq!(r.route(&req("/"), None).unwrap(), load_reply());
    }
}

fn load_reply() -> Decision {
    Decision::Reply(Reply {
        status: 418,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: b"teapot".to_vec(),
    })
}

#[test]
fn max_memory_above_the_host_limit_is_refused() {
    let env =
        env(&hostile("big", "pass", &format!("max_memory = {}", isthmus::limits::PLUGIN_SLOT_MAX_MEMORY + 65536)));
    let err = PluginHost::new().unwrap().load(&env.config, None).map(|p| p.routers).unwrap_err();
    assert!(matches!(err, PluginError::Settings { .. }), "{err:?}");
}

#[test]
fn routers_outlive_their_host() {
    let env = env(&hostile("loop", "loop", "deadline = \"20ms\""));
    let r = {
        let host = PluginHost::new().unwrap();
        host.load(&env.config, None).map(|p| p.routers).unwrap().pop().unwrap()
    };
    // The epoch ticker must still run, or this would never return.
    assert_eq!(r.route(&req("/"), None).unwrap_err(), PolicyFailure::Deadline(Duration::from_millis(20)));
}

/// `load` with a zero wait: start-up does not wait for a compile. The router fails as
/// `Starting` (503 with Retry-After at the gateway) until its first version serves.
#[test]
fn startup_serves_while_a_plugin_compiles() {
    let env = env(&hostile("slow", "reply", ""));
    let started = Instant::now();
    let r = PluginHost::new().unwrap().load(&env.config, Some(Duration::ZERO)).unwrap().routers.pop().unwrap();
    // A cold compile (no cache yet) takes far longer than returning did.
    assert_eq!(r.route(&req("/"), None), Err(PolicyFailure::Starting), "after {:?}", started.elapsed());
    assert_eq!(r.load_info(), None);
    wait_for("the first version", Duration::from_secs(120), || r.load_info().is_some());
    let info = r.load_info().unwrap();
    assert_eq!((info.generation, info.cache), (1, CacheOutcome::Miss));
    assert!(r.route(&req("/"), None).is_ok());
}

/// A start-up that finds a new version not compiled yet serves the version that loaded
/// last time (generation 0, from the cache) until the new one is ready.
#[test]
fn startup_serves_the_previous_version_until_the_new_one_compiles() {
    let env = env(&(hostile("v", "version", "")
        .replace("config = { mode = \"version\" }", "config = { mode = \"version\", version = \"v1\" }")));
    let first = load(&env).pop().unwrap();
    let old_sha = first.load_info().unwrap().source_sha256;
    let file = first.file().unwrap().to_owned();
    drop(first);
    let new = variant(&std::fs::read(&file).unwrap(), "new");
    replace(&file, &new);

    let r = PluginHost::new().unwrap().load(&env.config, Some(Duration::ZERO)).unwrap().routers.pop().unwrap();
    let info = r.load_info().expect("the previous version serves at once");
    assert_eq!((info.generation, info.source_sha256, info.cache), (0, old_sha, CacheOutcome::Hit));
    assert!(r.route(&req("/"), None).is_ok());
    wait_for("the new version", Duration::from_secs(120), || r.load_info().unwrap().generation == 1);
    assert_eq!(r.load_info().unwrap().source_sha256, sha256(&new));
    assert!(r.route(&req("/"), None).is_ok());
}

/// Within the wait a load error stops the start-up as always; past it the plugin fails
/// as `NotLoaded` (a generic 503); a reload that works would install a version.
#[test]
fn a_plugin_failing_after_the_wait_is_not_loaded() {
    let env = env(&hostile("bad", "setup-error", ""));
    let err = PluginHost::new().unwrap().load(&env.config, Some(Duration::from_secs(120))).map(|p| p.routers);
    assert!(matches!(err, Err(PluginError::Setup { .. })), "{err:?}");

    // Compiled now, so make the start-up miss the cache again: another variant.
    let file = env.plugins().join("test_hostile.wasm");
    replace(&file, &variant(&std::fs::read(&file).unwrap(), "again"));
    let r = PluginHost::new().unwrap().load(&env.config, Some(Duration::ZERO)).unwrap().routers.pop().unwrap();
    wait_for("the load to fail", Duration::from_secs(120), || r.route(&req("/"), None) != Err(PolicyFailure::Starting));
    assert_eq!(r.route(&req("/"), None), Err(PolicyFailure::NotLoaded));
    assert_eq!(r.load_info(), None);
}

#[test]
fn builtins_load_by_name() {
    let env = env("[[routing.routers]]\nplugin = \"builtin:prefix-router\"\n");
    let r = load(&env).pop().unwrap();
    assert_eq!((r.name(), r.file()), ("prefix-router", None));
    assert!(matches!(r.route(&req("/api/x"), None), Ok(Decision::Forward(_))));
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
