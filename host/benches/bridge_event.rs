//! The gateway's own work on one Reflex event through the event bridge, without the
//! network: parse the Socket.IO packet, look up the session's cached identity, ask
//! `django_bridge.wasm` (examples/shop's rules), sign the identity into `router_data`
//! and encode what goes upstream. The WebSocket framing and the syscalls around it are
//! measured end to end by bench/ws.
//!
//! `cargo bench -p isthmus --bench bridge_event`; `tests/allocations.rs` counts the
//! allocations of the same event.

mod fixtures;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use isthmus::bridge::{judge, Judged};

use fixtures::{bridge, identity_stub, session, EVENT};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let django = rt.block_on(identity_stub());
    let bridge = bridge(dir.path(), django);
    for (who, cookie) in [("a clerk", "clerk"), ("staff with 160 permissions", "staff")] {
        let mut session = session(&bridge, cookie);
        let first = rt.block_on(judge(&mut session, EVENT)).unwrap_or_else(|c| panic!("closed: {c:?}"));
        assert!(
            matches!(&first, Judged::Forward(out) if out.contains(r#""isthmus":{"payload":"#)),
            "allowed and signed: {first:?}"
        );
        c.bench_function(&format!("bridge: judge + inject one event of {who} (django_bridge.wasm)"), |b| {
            b.iter(|| rt.block_on(judge(&mut session, black_box(EVENT))).unwrap());
        });
    }
    let mut session = session(&bridge, "clerk");
    c.bench_function("bridge: relay an Engine.IO pong", |b| {
        b.iter(|| rt.block_on(judge(&mut session, black_box("3"))).unwrap());
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
