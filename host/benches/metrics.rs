//! What recording costs on the request path, per request and per bridged event, as the
//! gateway records it (`isthmus::metrics`): the target's series found by name, a status
//! class counted and the duration observed; a connection opened and closed; a bridge
//! verdict; a plugin call; an identity lookup. And one scrape, which is off the path.
//!
//! `cargo bench -p isthmus --bench metrics`

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::StatusCode;
use isthmus::config::Config;
use isthmus::metrics::{BridgeKind, BridgeVerdict, CallOutcome, Lookup, Metrics, Target, TargetKind};

fn config(dir: &std::path::Path) -> Config {
    std::fs::create_dir_all(dir.join("spa")).unwrap();
    let text = r#"[listen]
addr = "127.0.0.1:0"
[upstreams.django]
url = "http://127.0.0.1:8001"
[upstreams.reflex]
url = "http://127.0.0.1:8000"
[static.frontend]
root = "spa"
[[routing.routers]]
plugin = "builtin:prefix-router"
name = "prefix_router"
"#;
    Config::parse(text, &dir.join("isthmus.toml")).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(&config(dir.path()));
    let took = Duration::from_micros(180);
    c.bench_function("metrics: one request (target by name, status class, duration)", |b| {
        // The target as dispatch makes it (the access log's name for it, too).
        b.iter(|| {
            let target = Target::new(TargetKind::Upstream, black_box("django"));
            metrics.request(&target, black_box(StatusCode::OK), black_box(took));
        });
    });
    c.bench_function("metrics: one connection opened and closed", |b| {
        b.iter(|| drop(black_box(metrics.connection_opened())));
    });
    c.bench_function("metrics: one bridged event (verdict, duration)", |b| {
        b.iter(|| metrics.bridge_event(BridgeKind::Event, black_box(BridgeVerdict::Allowed), black_box(took)));
    });
    let plugin = metrics.plugin("prefix_router", "router");
    c.bench_function("metrics: one plugin call (outcome, duration)", |b| {
        b.iter(|| plugin.call(black_box(CallOutcome::Ok), black_box(took)));
    });
    c.bench_function("metrics: one identity lookup", |b| {
        b.iter(|| metrics.identity(black_box(Lookup::Hit)));
    });
    c.bench_function("metrics: one scrape (Prometheus text)", |b| {
        b.iter(|| black_box(metrics.encode(false)));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
