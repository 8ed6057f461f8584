//! The allocation guard (issue #18): heap allocations per request on the gateway's hot
//! paths, compared with the committed baseline `bench/alloc-baseline.toml`. A path that
//! allocates more than its baseline fails the test command. Allocations, unlike time, do
//! not depend on the machine's load, so the check is exact where a timed test could not be.
//!
//! Paths, each driven as its criterion bench drives it (`benches/fixtures`):
//! - `proxied`: a browser's GET of `/api/items/1` through a gateway with the built-in
//!   prefix router (`workers = 1`, access log on) to an upstream answering 200 "ok", over
//!   one keep-alive connection;
//! - `static`: the same gateway serving a 2 KiB file of the SPA mount;
//! - `bridged_event`: one Reflex event through the event bridge, as `bridge_event`
//!   times it: judged by the built-in django-bridge, its identity signed and spliced in.
//!
//! What is counted: each call into the allocator (alloc, alloc_zeroed, realloc) and the
//! bytes it asks for (a realloc: what it adds), on every thread of the process except
//! the test's own — the client, the upstream and the identity endpoint run on a runtime
//! whose threads are left out. So the gateway's request thread, its blocking threads
//! (file reads) and the log writer are counted. Per request: after a warm-up, batches of
//! requests, each batch's total divided by its size (rounded up), the median batch; the
//! process is idle between batches, so a batch holds its requests' whole work and nothing
//! else. The median batch is the same in every run; a single batch now and then has a
//! few allocations more, which the median leaves out.
//!
//! The check: no path may make more allocations than its baseline; its bytes may exceed
//! the baseline by `BYTES_TOLERANCE` at most (the access-log line, copied to the writer
//! thread, grows by a byte with each digit of the request's duration).
//!
//! `cargo test -p isthmus --test allocations` checks; add `-- --update-baseline` to
//! write today's numbers as the new baseline (after a change that allocates more on
//! purpose, or less). The baseline is of the debug build the test command runs.
#![allow(unsafe_code)] // a global allocator is an unsafe trait

mod common;
#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use isthmus::bridge::{judge, Judged};
use isthmus::config::Config;
use isthmus::dispatch::Gateway;
use isthmus::plugin::PluginHost;
use isthmus::policy::{Router, RouterChain};

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// `System`, counting the calls and bytes of every thread not left out.
    pub struct Counting;

    static CALLS: AtomicU64 = AtomicU64::new(0);
    static BYTES: AtomicU64 = AtomicU64::new(0);

    thread_local! {
        // `const` and without Drop: reading it never allocates, so the allocator may.
        static LEFT_OUT: Cell<bool> = const { Cell::new(false) };
    }

    /// This thread's allocations are not counted from now on.
    pub fn leave_out_this_thread() {
        LEFT_OUT.with(|l| l.set(true));
    }

    /// (calls, bytes) counted since the start.
    pub fn totals() -> (u64, u64) {
        (CALLS.load(Relaxed), BYTES.load(Relaxed))
    }

    fn count(bytes: usize) {
        if !LEFT_OUT.with(Cell::get) {
            CALLS.fetch_add(1, Relaxed);
            BYTES.fetch_add(bytes as u64, Relaxed);
        }
    }

    // SAFETY: every call goes to `System` unchanged, with the caller's guarantees.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            // SAFETY: as this function's contract.
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            // SAFETY: as this function's contract.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(new_size.saturating_sub(layout.size()));
            // SAFETY: as this function's contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as this function's contract.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

const WARM_UP: usize = 200;
const BATCHES: usize = 7;
const BATCH: u64 = 100;
/// Long enough for the gateway to finish what a request left (the log line written, the
/// upstream connection back in the pool) before the counters are read.
const SETTLE: Duration = Duration::from_millis(20);
/// Bytes per request a path may ask for above its baseline: the access-log line has a
/// byte per digit of the request's duration in µs, 3 or 4 here, a few more under load.
const BYTES_TOLERANCE: u64 = 8;

/// Allocations per request on one path.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Counts {
    allocations: u64,
    bytes: u64,
}

/// What `per_request` measured: the median batch, and the spread over batches.
struct Measured {
    median: Counts,
    allocations: (u64, u64),
    bytes: (u64, u64),
}

/// `one()` WARM_UP times, then BATCHES batches of BATCH; allocations per request of each
/// batch. Runs on a counted thread too (the bridged event): allocates nothing itself.
fn per_request(mut one: impl FnMut()) -> Measured {
    for _ in 0..WARM_UP {
        one();
    }
    let mut batches = [(0, 0); BATCHES];
    for batch in &mut batches {
        std::thread::sleep(SETTLE);
        let (calls, bytes) = counting::totals();
        for _ in 0..BATCH {
            one();
        }
        std::thread::sleep(SETTLE);
        let (calls_after, bytes_after) = counting::totals();
        // Rounded up: an allocation more every few requests shows.
        *batch = ((calls_after - calls).div_ceil(BATCH), (bytes_after - bytes).div_ceil(BATCH));
    }
    let spread = |mut v: [u64; BATCHES]| {
        v.sort_unstable();
        (v[BATCHES / 2], v[0], v[BATCHES - 1])
    };
    let (allocations, min_a, max_a) = spread(batches.map(|b| b.0));
    let (bytes, min_b, max_b) = spread(batches.map(|b| b.1));
    Measured { median: Counts { allocations, bytes }, allocations: (min_a, max_a), bytes: (min_b, max_b) }
}

/// The gateway of `site`, with the built-in prefix router, forwarding Django's and
/// Reflex's paths to `upstream` and serving the rest from `site/frontend`; served on a
/// thread of its own, as `isthmus serve` with `workers = 1` serves.
fn start_gateway(site: &Path, upstream: SocketAddr) -> SocketAddr {
    let text = format!(
        r#"[listen]
addr = "127.0.0.1:0"
workers = 1
[upstreams.django]
url = "http://{upstream}"
[upstreams.reflex]
url = "http://{upstream}"
[static.frontend]
root = "frontend"
fallback = "index.html"
[[routing.routers]]
plugin = "builtin:prefix-router"
"#
    );
    let config = Config::parse(&text, &site.join("isthmus.toml")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let metrics = common::metrics(&config);
        let routers = PluginHost::new().unwrap().load(&config, None).unwrap().routers;
        routers.iter().for_each(|r| r.measure(&metrics));
        let chain = RouterChain::new(routers.into_iter().map(|r| r as Arc<dyn Router>).collect());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let gateway = Arc::new(Gateway::new(&config, chain, None, metrics).unwrap());
            let running = common::start_with(gateway, &config).await;
            tx.send(running.addr).unwrap();
            running.done.await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// One keep-alive HTTP/1.1 connection to `addr`.
async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    send
}

/// A browser's GET of `path`, read to the end; its body's length.
async fn get(send: &mut SendRequest<Empty<Bytes>>, path: &str) -> usize {
    let req = fixtures::BROWSER_HEADERS.iter().fold(Request::get(path), |req, &(name, value)| req.header(name, value));
    send.ready().await.unwrap();
    let res = send.send_request(req.body(Empty::new()).unwrap()).await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.into_body().collect().await.unwrap().to_bytes().len()
}

/// One event through the event bridge, judged and signed on a counted thread of its own.
fn bridged_event(fixture: &tokio::runtime::Runtime, dir: &Path) -> Measured {
    let django = fixture.block_on(fixtures::identity_stub());
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let bridge = fixtures::bridge(&dir, django);
        let mut session = fixtures::session(&bridge, "clerk");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let first = rt.block_on(judge(&mut session, fixtures::EVENT)).unwrap_or_else(|c| panic!("closed: {c:?}"));
        assert!(
            matches!(&first, Judged::Forward(out) if out.contains(r#""isthmus":{"payload":"#)),
            "allowed and signed: {first:?}"
        );
        drop(first);
        per_request(|| drop(rt.block_on(judge(&mut session, fixtures::EVENT))))
    })
    .join()
    .unwrap()
}

fn measure() -> BTreeMap<&'static str, Measured> {
    counting::leave_out_this_thread();
    let fixture = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(counting::leave_out_this_thread)
        .enable_all()
        .build()
        .unwrap();
    let site = tempfile::tempdir().unwrap();
    let mut measured = BTreeMap::new();
    // First, while no gateway runs whose timers could fire during its batches.
    measured.insert("bridged_event", bridged_event(&fixture, site.path()));

    let asset = "console.log('isthmus');\n".repeat(2048 / 24);
    for (file, contents) in
        [("frontend/index.html", "<!doctype html><title>shop</title>"), ("frontend/assets/app.js", &asset)]
    {
        let path = site.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    let upstream = fixture.block_on(common::upstream(|_| async { common::text("ok") }));
    let gateway = start_gateway(site.path(), upstream);
    let mut client = fixture.block_on(connect(gateway));
    let mut path = |path: &str, body_len: usize| {
        per_request(|| assert_eq!(fixture.block_on(get(&mut client, path)), body_len, "GET {path}"))
    };
    measured.insert("proxied", path("/api/items/1", 2));
    measured.insert("static", path("/assets/app.js", asset.len()));
    measured
}

fn baseline_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("bench/alloc-baseline.toml")
}

const HEADER: &str = "\
# Heap allocations per request on the gateway's hot paths, debug build: calls into the
# allocator and the bytes they ask for (host/tests/allocations.rs says what is counted).
# The test command fails when a path makes more allocations than written here.
# Written by `cargo test -p isthmus --test allocations -- --update-baseline`.
";

fn main() {
    let update = std::env::args().any(|a| a == "--update-baseline");
    if !cfg!(debug_assertions) {
        println!("allocation guard: the baseline is of the debug build; not checked in this one");
        return;
    }
    let _flush = isthmus::logging::install(EnvFilter::new("info"), std::io::sink(), false);
    let measured = measure();
    println!("allocations per request (median of {BATCHES} batches of {BATCH} after {WARM_UP}; min-max over batches):");
    for (path, m) in &measured {
        println!(
            "  {path:<14} {:>5} allocations ({}-{})  {:>7} bytes ({}-{})",
            m.median.allocations, m.allocations.0, m.allocations.1, m.median.bytes, m.bytes.0, m.bytes.1
        );
    }
    let now: BTreeMap<&str, Counts> = measured.iter().map(|(&path, m)| (path, m.median)).collect();
    let file = baseline_file();
    if update {
        std::fs::write(&file, format!("{HEADER}\n{}", toml::to_string(&now).unwrap())).unwrap();
        println!("allocation guard: baseline written to {}", file.display());
        return;
    }
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let baseline: BTreeMap<String, Counts> =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut failures = Vec::new();
    for (path, counts) in &now {
        let Some(base) = baseline.get(*path) else {
            failures.push(format!("path `{path}` has no baseline"));
            continue;
        };
        if counts.allocations > base.allocations {
            failures.push(format!(
                "path `{path}` makes {} allocations per request; the baseline is {}",
                counts.allocations, base.allocations
            ));
        }
        if counts.bytes > base.bytes + BYTES_TOLERANCE {
            failures.push(format!(
                "path `{path}` asks for {} bytes per request; the baseline is {} (+{BYTES_TOLERANCE} allowed)",
                counts.bytes, base.bytes
            ));
        }
        if counts.allocations < base.allocations {
            println!(
                "allocation guard: `{path}` allocates less than its baseline ({} < {}): \
                 `-- --update-baseline` keeps the gain from being given back unnoticed",
                counts.allocations, base.allocations
            );
        }
    }
    if !failures.is_empty() {
        eprintln!("allocation guard failed ({}):", file.display());
        for f in &failures {
            eprintln!("  {f}");
        }
        eprintln!(
            "if the change allocates more on purpose: cargo test -p isthmus --test allocations -- --update-baseline"
        );
        std::process::exit(1);
    }
    println!("allocation guard: every path within its baseline ({})", file.display());
}
