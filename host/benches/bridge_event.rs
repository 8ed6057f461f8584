//! The gateway's own work on one Reflex event through the event bridge, without the
//! network: parse the Socket.IO packet, look up the session's cached identity, ask
//! `django_bridge.wasm` (examples/shop's rules), sign the identity into `router_data`
//! and encode what goes upstream. The WebSocket framing and the syscalls around it are
//! measured end to end by bench/ws.
//!
//! `cargo bench -p isthmus --bench bridge_event` (run `guest-plugins/build.sh` first).

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use isthmus::bridge::{judge, Bridge, Judged, Session};
use isthmus::config::Config;
use isthmus::identity::Identities;
use isthmus::metrics::Metrics;
use isthmus::plugin::PluginHost;
use isthmus::policy::RouteRequest;
use isthmus::trace::{SpanContext, Tracer};
use isthmus::upstream::Upstreams;

/// What the companion's identity endpoint answers for a logged-in clerk (as bench/ws's stub).
const IDENTITY: &str = r#"{"authenticated":true,"user_id":"7","username":"benchuser","email":"bench@example.org","is_staff":false,"is_superuser":false,"groups":["clerks"],"permissions":["shop.view_product","shop.change_product"],"session":{}}"#;

/// What Reflex 0.10.1's frontend sends for a handler call (../shared/DESIGN.md); the shop
/// lets it through for members of `clerks`, its fourth rule.
const EVENT: &str = r#"42/_event,["event",{"name":"reflex___state____state.shop_frontend___state____whoami_state.clerk_action","payload":{"note":"from the bench"},"router_data":{"pathname":"/","asPath":"/?tab=all","query":{"tab":"all"}}}]"#;

/// A staff member with the permissions of a mid-sized project's admin (4 per model, 40
/// models): Django's identity endpoint lists every one, and the policy is handed them all.
fn staff_identity() -> String {
    let perms: Vec<String> = (0..160)
        .map(|i| format!("\"app{}.{}_model{}\"", i / 16, ["add", "change", "delete", "view"][i % 4], i / 4))
        .collect();
    IDENTITY
        .replace(r#""is_staff":false"#, r#""is_staff":true"#)
        .replace(r#"["shop.view_product","shop.change_product"]"#, &format!("[{}]", perms.join(",")))
}

/// Django's identity endpoint: `clerk` and `staff` session cookies get those identities
/// (each asked once: the gateway caches them per cookie for the TTL, an hour here).
async fn identity_stub() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let cookie = req.headers().get("cookie").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
                let body = if cookie.ends_with(b"=staff") { staff_identity() } else { IDENTITY.to_owned() };
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}

fn bridge(dir: &Path, django: std::net::SocketAddr) -> (Arc<Bridge>, Arc<Identities>) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    for name in ["django_bridge.wasm", "prefix_router.wasm"] {
        let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins").join(name);
        assert!(wasm.is_file(), "{} is missing: run guest-plugins/build.sh first", wasm.display());
        std::fs::copy(&wasm, dir.join("plugins").join(name)).unwrap();
    }
    let shop =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop/isthmus.toml")).unwrap();
    let rules = &shop[shop.find("[bridge.policy.config]").expect("the shop's bridge rules")..];
    let text = format!(
        r#"[listen]
addr = "127.0.0.1:0"
[upstreams.django]
url = "http://{django}"
[upstreams.reflex]
url = "http://127.0.0.1:9"
[[routing.routers]]
plugin = "prefix_router.wasm"
config = {{ django_prefixes = ["/admin"] }}
[bridge]
identity_secret = "0123456789abcdef0123456789abcdef"
bridge_secret = "fedcba9876543210fedcba9876543210"
identity_ttl = "1h"
[bridge.policy]
plugin = "django_bridge.wasm"
{rules}"#
    );
    let config = Config::parse(&text, &dir.join("isthmus.toml")).unwrap();
    let policy = PluginHost::new().unwrap().load(&config, None).unwrap().bridge.expect("a bridge policy");
    // Counted as the gateway counts them: the verdict, the plugin call, the identity lookup.
    let metrics = Arc::new(Metrics::new(&config));
    policy.measure(&metrics);
    let bridge_config = config.bridge.as_ref().unwrap();
    let django = Upstreams::new(&config, metrics.clone()).get("django").unwrap();
    let identities = Identities::new(bridge_config, None, django, metrics.clone());
    let tracer = Arc::new(Tracer::new(&config.tracing));
    (Arc::new(Bridge::new(bridge_config, identities.clone(), policy, metrics, tracer)), identities)
}

fn session((bridge, identities): &(Arc<Bridge>, Arc<Identities>), cookie: &str) -> Session {
    let handshake = RouteRequest {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "127.0.0.1:3000".into(),
        path: "/_event/".into(),
        query: "EIO=4&transport=websocket".into(),
        headers: vec![],
        client_ip: "127.0.0.1".into(),
    };
    // An open page of a browser, as the bridge registers each.
    let page = identities.browsers.register(Some("0123456789abcdef0123456789abcdef".into()), Some(cookie.into()), None);
    let handshake_span = SpanContext { trace_id: 1, span_id: 1, sampled: true };
    Session::new(bridge.clone(), Arc::new(handshake), Some(cookie.into()), page, handshake_span)
}

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
