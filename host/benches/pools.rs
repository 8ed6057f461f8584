//! What choosing an endpoint costs on the request path (`isthmus::upstream::balance`): the
//! request's hash key found (`affinity`) and an endpoint chosen among 1, 2 and 8, by
//! least connections, round robin and rendezvous hashing of the Reflex token.
//!
//! `cargo bench -p isthmus --bench pools`

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use isthmus::config::{Balance, Config};
use isthmus::metrics::Metrics;
use isthmus::upstream::balance::{self, Turns};
use isthmus::upstream::{Endpoint, Upstreams};

/// The endpoints of an upstream of `n` (not started: nothing is sent).
fn endpoints(dir: &std::path::Path, n: usize) -> Vec<Arc<Endpoint>> {
    let text = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[upstreams.reflex]\nurl = \"http://127.0.0.1:8000\"\nreplicas = {n}\n\
         run = \"reflex run --backend-port {{port}}\"\n[[routing.routers]]\nplugin = \"builtin:prefix-router\"\n"
    );
    let config = Config::parse(&text, &dir.join("isthmus.toml")).unwrap();
    let upstreams = Upstreams::new(&config, Arc::new(Metrics::new(&config)));
    upstreams.get("reflex").unwrap().endpoints().to_vec()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keys = ["query:token", "header:reflex-client-token"].map(|k| balance::HashKey::parse(k).unwrap());
    let query = "EIO=4&transport=websocket&token=0b4c3e1e-6f5b-4c4e-9b59-8d3f2c8e6a41";
    let headers = HeaderMap::new();
    c.bench_function("pools: the hash key of an /_event request (query token)", |b| {
        b.iter(|| balance::affinity(black_box(&keys), black_box(query), black_box(&headers)))
    });
    let turns = Turns::default();
    for n in [1, 2, 8] {
        let all = endpoints(dir.path(), n);
        let key = balance::affinity(&keys, query, &headers);
        for (name, balance, affinity) in [
            ("least_conn", Balance::LeastConn, None),
            ("round_robin", Balance::RoundRobin, None),
            ("hash", Balance::Hash, key),
        ] {
            c.bench_function(&format!("pools: choose among {n} by {name}"), |b| {
                b.iter(|| {
                    let available = all.iter().filter(|e| e.available());
                    balance::choose(black_box(balance), available, black_box(affinity), &turns).in_flight()
                })
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
