//! One `route` call into `prefix_router.wasm`: on a warm (pooled) instance and on a
//! fresh instance (instantiate + `init` + `route`), with the request lowered and the
//! decision lifted; and loading the component: compiling vs. a cache hit.
//!
//! `cargo bench -p isthmus --bench route_call` (run `guest-plugins/build.sh` first).

mod fixtures;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use isthmus::config::Config;
use isthmus::plugin::PluginHost;
use isthmus::policy::{RouteRequest, Router};

use fixtures::BROWSER_HEADERS;

fn component() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/prefix_router.wasm");
    assert!(path.is_file(), "{} is missing: run guest-plugins/build.sh first", path.display());
    path
}

/// A config with one prefix_router entry (`instance = <mode>`), in a temp folder.
fn config(dir: &Path, mode: &str) -> Config {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(component(), plugins.join("prefix_router.wasm")).unwrap();
    let text = format!(
        r#"
[listen]
addr = "127.0.0.1:0"
[upstreams.django]
url = "http://127.0.0.1:8000"
[routing]
plugins_dir = "plugins"
[[routing.routers]]
plugin = "prefix_router.wasm"
instance = "{mode}"
config = {{ django_prefixes = ["/admin", "/api", "/webhooks"] }}
"#
    );
    Config::parse(&text, &dir.join("isthmus.toml")).unwrap()
}

/// A browser's request (`fixtures::BROWSER_HEADERS`).
fn request(path: &str) -> RouteRequest {
    RouteRequest {
        method: "GET".into(),
        scheme: "https".into(),
        authority: "app.example.com".into(),
        path: path.into(),
        query: "page=2".into(),
        headers: BROWSER_HEADERS.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect(),
        client_ip: "203.0.113.7".into(),
    }
}

fn route_call(c: &mut Criterion) {
    let host = PluginHost::new().unwrap();
    let mut group = c.benchmark_group("route_call");
    for mode in ["pooled", "fresh"] {
        let dir = tempfile::tempdir().unwrap();
        let router = host.load(&config(dir.path(), mode), None).unwrap().routers.pop().unwrap();
        for (label, path) in [("forward", "/api/users/42"), ("static", "/dashboard")] {
            let req = Arc::new(request(path));
            assert!(router.route(&req, None).is_ok());
            let name = format!("{}/{label}", if mode == "pooled" { "warm" } else { "fresh" });
            group.bench_function(name, |b| b.iter(|| black_box(router.route(black_box(&req), None).unwrap())));
        }
        if mode == "pooled" {
            let bare = Arc::new(RouteRequest { path: "/api/users/42".into(), ..RouteRequest::default() });
            group.bench_function("warm/forward-no-headers", |b| {
                b.iter(|| black_box(router.route(black_box(&bare), None).unwrap()))
            });
        }
    }
    group.finish();
}

fn load(c: &mut Criterion) {
    let host = PluginHost::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "pooled");
    let entry = &config.routing.routers[0];
    let plugins = &config.routing.plugins_dir;
    let mut group = c.benchmark_group("load");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("compile", |b| b.iter(|| host.load_router(entry, plugins, None, 1).unwrap()));
    let cache = dir.path().join("cache");
    host.load_router(entry, plugins, Some(cache.clone()), 1).unwrap();
    group.bench_function("cache-hit", |b| {
        b.iter(|| {
            let r = host.load_router(entry, plugins, Some(cache.clone()), 1).unwrap();
            assert_eq!(r.load_info().unwrap().cache, isthmus::plugin::CacheOutcome::Hit);
            r
        })
    });
    group.finish();
}

criterion_group!(benches, route_call, load);
criterion_main!(benches);
