//! W3C trace context through the gateway: what upstreams are sent, what the gateway's
//! spans export to an OTLP collector, and that a dead or silent collector costs
//! requests nothing.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use hyper::body::Incoming;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An upstream that answers the `traceparent` and `tracestate` it got, as `tp|ts`.
async fn echo_trace() -> std::net::SocketAddr {
    upstream(|req: Request<Incoming>| async move {
        let h = |name: &str| req.headers().get(name).map_or("", |v| v.to_str().unwrap()).to_owned();
        text(format!("{}|{}", h("traceparent"), h("tracestate")))
    })
    .await
}

async fn gateway(extra: &str) -> (RunningGateway, Site, Arc<isthmus::dispatch::Gateway>) {
    let app = echo_trace().await;
    let site = Site::new();
    let config = site.config(&[("app", app)], extra);
    let (gw, gateway) = serve(&config).await;
    (gw, site, gateway)
}

/// A gateway of `config` sending everything to its upstream `app`.
async fn serve(config: &isthmus::config::Config) -> (RunningGateway, Arc<isthmus::dispatch::Gateway>) {
    let chain = isthmus::policy::RouterChain::new(vec![router("r", |_| Ok(forward("app")))]);
    let gateway = Arc::new(isthmus::dispatch::Gateway::new(config, chain, None, metrics(config)).unwrap());
    (start_with(gateway.clone(), config).await, gateway)
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> (String, String) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, _, body) = send(req.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(status, 200);
    let body = String::from_utf8(body.to_vec()).unwrap();
    let (tp, ts) = body.split_once('|').unwrap();
    (tp.to_owned(), ts.to_owned())
}

#[tokio::test]
async fn a_valid_traceparent_is_continued_with_the_gateways_span_as_parent() {
    let (gw, _site, _) = gateway("").await;
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (tp, ts) = get_with(&gw.url("/x"), &[("traceparent", &client), ("tracestate", "vendor=abc")]).await;
    let (trace, parent, flags) = traceparent_parts(&tp);
    assert_eq!(trace, CLIENT_TRACE, "same trace");
    assert_ne!(parent, CLIENT_SPAN, "the gateway's span is the upstream's parent");
    assert_eq!(flags, "01", "the client's sampling decision is kept");
    assert_eq!(ts, "vendor=abc", "tracestate goes with its trace");

    let unsampled = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00");
    let (tp, _) = get_with(&gw.url("/x"), &[("traceparent", &unsampled)]).await;
    assert_eq!(traceparent_parts(&tp).2, "00");
}

#[tokio::test]
async fn without_a_valid_traceparent_a_new_trace_starts() {
    let (gw, _site, _) = gateway("").await;
    let (tp, ts) = get_with(&gw.url("/x"), &[]).await;
    let (first, _, flags) = traceparent_parts(&tp);
    assert_eq!((flags.as_str(), ts.as_str()), ("01", ""), "sampled at the default ratio 1");
    let (tp, _) = get_with(&gw.url("/x"), &[]).await;
    assert_ne!(traceparent_parts(&tp).0, first, "each request its own trace");
    for bad in [
        format!("00-{}-{CLIENT_SPAN}-01", CLIENT_TRACE.to_uppercase()),
        format!("00-{}-{CLIENT_SPAN}-01", "0".repeat(32)),
        format!("ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
        format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01-extra"),
    ] {
        let (tp, ts) = get_with(&gw.url("/x"), &[("traceparent", &bad), ("tracestate", "vendor=abc")]).await;
        assert_ne!(traceparent_parts(&tp).0, CLIENT_TRACE.to_lowercase(), "{bad}");
        assert_eq!(ts, "", "a tracestate without a valid traceparent is dropped: {bad}");
    }
    // Two traceparent fields: which to believe is undefined, so neither is.
    let mut req = Request::get(gw.url("/x"));
    req = req.header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"));
    req = req.header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"));
    let (_, _, body) = send(req.body(Full::new(Bytes::new())).unwrap()).await;
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert_ne!(traceparent_parts(body.split('|').next().unwrap()).0, CLIENT_TRACE);
}

#[tokio::test]
async fn trust_client_false_starts_a_new_trace_for_every_request() {
    let (gw, _site, _) = gateway("[tracing]\ntrust_client = false\nsample_ratio = 0.0\n").await;
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (tp, ts) = get_with(&gw.url("/x"), &[("traceparent", &client), ("tracestate", "vendor=abc")]).await;
    let (trace, _, flags) = traceparent_parts(&tp);
    assert_ne!(trace, CLIENT_TRACE);
    assert_eq!(flags, "00", "ratio 0: not sampled");
    assert_eq!(ts, "");
}

#[tokio::test]
async fn the_gateways_span_is_exported_with_its_parent() {
    let (collector, mut exports) = collector().await;
    let (gw, _site, _) = gateway(&format!(
        "[tracing.otlp]\nendpoint = \"http://{collector}/v1/traces\"\nservice_name = \"edge\"\nexport_interval = \"50ms\"\n"
    ))
    .await;
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (tp, _) = get_with(&gw.url("/shop?page=2"), &[("traceparent", &client), ("tracestate", "v=1")]).await;
    let (_, upstream_parent, _) = traceparent_parts(&tp);
    let (span, request) = exports.span(|s| hex(&s.trace_id) == CLIENT_TRACE).await;
    assert_eq!(hex(&span.span_id), upstream_parent, "the span the upstream was told is its parent");
    assert_eq!(hex(&span.parent_span_id), CLIENT_SPAN, "a child of the client's span");
    assert_eq!(span.kind, 2, "server");
    assert_eq!(span.name, "GET upstream:app");
    assert_eq!(span.trace_state, "v=1");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano && span.start_time_unix_nano > 0);
    let attribute = |key: &str| {
        span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()).and_then(|v| v.value)
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    assert_eq!(attribute("url.path"), Some(Value::StringValue("/shop".into())));
    assert_eq!(attribute("http.response.status_code"), Some(Value::IntValue(200)));
    assert_eq!(attribute("http.request.method"), Some(Value::StringValue("GET".into())));
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    assert!(resource.attributes.iter().any(|kv| kv.key == "service.name"
        && kv.value.as_ref().and_then(|v| v.value.clone()) == Some(Value::StringValue("edge".into()))));

    // A new trace is exported as a root span.
    let (tp, _) = get_with(&gw.url("/y"), &[]).await;
    let (trace, _, _) = traceparent_parts(&tp);
    let (span, _) = exports.span(|s| hex(&s.trace_id) == trace).await;
    assert!(span.parent_span_id.is_empty(), "a root span");
}

#[tokio::test]
async fn unsampled_traces_are_not_exported() {
    let (collector, mut exports) = collector().await;
    let (gw, _site, _) = gateway(&format!(
        "[tracing]\nsample_ratio = 0.0\n[tracing.otlp]\nendpoint = \"http://{collector}/v1/traces\"\nexport_interval = \"20ms\"\n"
    ))
    .await;
    let unsampled = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00");
    get_with(&gw.url("/x"), &[("traceparent", &unsampled)]).await;
    get_with(&gw.url("/x"), &[]).await;
    // A parent's sampled flag wins over the ratio.
    let sampled = format!("00-{}-{CLIENT_SPAN}-01", "1".repeat(32));
    get_with(&gw.url("/x"), &[("traceparent", &sampled)]).await;
    let (span, request) = exports.span(|_| true).await;
    assert_eq!(hex(&span.trace_id), "1".repeat(32), "only the sampled parent's trace");
    assert_eq!(request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum::<usize>(), 1);
}

/// Requests through a gateway whose collector is `endpoint` stay fast, and the spans
/// that cannot be sent are dropped and counted.
async fn requests_stay_fast(endpoint: &str) {
    let (gw, _site, gateway) = gateway(&format!(
        "[tracing.otlp]\nendpoint = \"{endpoint}\"\nqueue_spans = 4\nbatch_spans = 2\nexport_interval = \"200ms\"\nexport_timeout = \"10s\"\n"
    ))
    .await;
    let client = client();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        let res = client.request(Request::get(gw.url("/x")).body(Full::new(Bytes::new())).unwrap()).await.unwrap();
        assert_eq!(res.status(), 200);
        slowest = slowest.max(t.elapsed());
    }
    let total = started.elapsed();
    assert!(slowest < Duration::from_millis(500), "slowest request {slowest:?}");
    assert!(total < Duration::from_secs(10), "300 requests took {total:?}");
    assert!(gateway.spans_dropped() > 0, "a full queue drops spans");
}

#[tokio::test]
async fn a_dead_collector_slows_no_request() {
    requests_stay_fast(&format!("http://{}/v1/traces", dead_port().await)).await;
}

#[tokio::test]
async fn a_collector_that_never_answers_slows_no_request() {
    // Accepts connections and reads nothing: each export waits its whole timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            keep.lock().unwrap().push(stream);
        }
    });
    requests_stay_fast(&format!("http://{addr}/v1/traces")).await;
    assert!(!held.lock().unwrap().is_empty(), "the exporter did try");
}

#[tokio::test]
async fn spans_queued_at_shutdown_are_exported() {
    let (collector, mut exports) = collector().await;
    let (mut gw, _site, _) =
        gateway(&format!("[tracing.otlp]\nendpoint = \"http://{collector}/v1/traces\"\nexport_interval = \"1h\"\n"))
            .await;
    let (tp, _) = get_with(&gw.url("/x"), &[]).await;
    let (trace, _, _) = traceparent_parts(&tp);
    gw.stop();
    (&mut gw.done).await.unwrap();
    exports.span(|s| hex(&s.trace_id) == trace).await;
}

#[tokio::test]
async fn json_access_lines_carry_the_trace_and_span_ids() {
    let lines = global_log();
    let site = Site::new();
    let config = site.config(&[("app", echo_trace().await)], "[log]\nformat = \"json\"\n");
    assert_eq!(config.log.format, isthmus::config::LogFormat::Json);
    isthmus::logging::set_format(config.log.format);
    let (gw, _) = serve(&config).await;
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (tp, _) = get_with(&gw.url("/logged"), &[("traceparent", &client)]).await;
    let (_, span_id, _) = traceparent_parts(&tp);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    // Other tests log here too, in either format: this request's line is the one read.
    let access: serde_json::Value = text
        .lines()
        .filter(|l| l.contains("/logged"))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .find(|v| v["target"] == "isthmus::access")
        .unwrap_or_else(|| panic!("no access line in {text}"));
    assert_eq!(access["path"], "/logged");
    assert_eq!(access["status"], 200);
    assert_eq!(access["trace_id"], CLIENT_TRACE);
    assert_eq!(access["span_id"], span_id.as_str());
    assert_eq!(access["level"], "INFO");
    isthmus::logging::set_format(isthmus::config::LogFormat::Text);
}
