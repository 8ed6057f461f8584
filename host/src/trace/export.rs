//! OTLP/HTTP protobuf export of finished spans: a bounded queue the request path only
//! ever `try_send`s into (a full queue drops the span and counts it), and one task that
//! sends batches to the collector with the gateway's own hyper client. The messages are
//! the few of `opentelemetry/proto/trace/v1` the gateway fills, with their field numbers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::SpanContext;
use crate::config::Otlp;
use crate::limits;

/// A span attribute's value.
#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Int(i64),
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Server = 2,
    Producer = 4,
}

/// A finished span waiting for export.
pub struct SpanRecord {
    pub context: SpanContext,
    pub parent: Option<u64>,
    pub tracestate: Option<String>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub link: Option<SpanContext>,
    pub error: bool,
}

pub struct Exporter {
    queue: mpsc::Sender<SpanRecord>,
    dropped: Arc<AtomicU64>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Exporter {
    /// Spawn the export task on the current tokio runtime, if any.
    pub fn start(config: &Otlp) -> Exporter {
        let (queue, spans) = mpsc::channel(config.queue_spans);
        let dropped = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let sender = Sender {
            client: Client::builder(TokioExecutor::new()).build_http(),
            uri: config.uri.clone(),
            timeout: config.export_timeout,
            resource: resource(&config.service_name),
        };
        // `isthmus check` builds the gateway outside a runtime and serves nothing.
        let task = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| rt.spawn(run(spans, sender, config.clone(), dropped.clone(), stop.clone())));
        Exporter { queue, dropped, stop, task: Mutex::new(task) }
    }

    /// Queue a finished span; never waits.
    pub fn record(&self, span: SpanRecord) {
        if self.queue.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.task.lock().expect("not poisoned").take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(limits::OTLP_SHUTDOWN_FLUSH, task).await;
        }
    }
}

struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    timeout: Duration,
    resource: Resource,
}

/// Batches of up to `batch_spans`, sent when full or `export_interval` after their
/// first span. After a failed export the task waits an interval (spans meanwhile queue
/// and then drop), so a dead collector costs one attempt and one log line per interval.
async fn run(
    mut spans: mpsc::Receiver<SpanRecord>,
    sender: Sender,
    config: Otlp,
    dropped: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let max = config.batch_spans;
    let mut batch = Vec::with_capacity(max);
    let mut reported_drops = 0;
    loop {
        let stopping = tokio::select! {
            n = spans.recv_many(&mut batch, max) => n == 0,
            () = stop.cancelled() => true,
        };
        if !stopping {
            let deadline = tokio::time::Instant::now() + config.export_interval;
            while batch.len() < max {
                let room = max - batch.len();
                tokio::select! {
                    result = tokio::time::timeout_at(deadline, spans.recv_many(&mut batch, room)) => {
                        if !matches!(result, Ok(n) if n > 0) { break }
                    }
                    () = stop.cancelled() => break,
                }
            }
        }
        if stopping || stop.is_cancelled() {
            // What is queued goes in one last request; anything else is dropped.
            while batch.len() < config.queue_spans {
                let Ok(span) = spans.try_recv() else { break };
                batch.push(span);
            }
        }
        if !batch.is_empty() {
            if let Err(e) = sender.send(&batch).await {
                tracing::warn!(target: "isthmus::trace", spans = batch.len(), error = %e, endpoint = %sender.uri, "span export failed; spans dropped");
                if !stop.is_cancelled() {
                    tokio::select! {
                        () = tokio::time::sleep(config.export_interval) => {}
                        () = stop.cancelled() => {}
                    }
                }
            }
            batch.clear();
        }
        let total = dropped.load(Ordering::Relaxed);
        if total > reported_drops {
            tracing::warn!(target: "isthmus::trace", dropped = total - reported_drops, queue_spans = config.queue_spans, "spans dropped: the export queue was full");
            reported_drops = total;
        }
        if stopping || stop.is_cancelled() {
            return;
        }
    }
}

impl Sender {
    async fn send(&self, batch: &[SpanRecord]) -> Result<(), String> {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "isthmus".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    }),
                    spans: batch.iter().map(span).collect(),
                }],
            }],
        };
        let req = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(Bytes::from(request.encode_to_vec())))
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| e.to_string())?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("collector answered {}", res.status()))
        }
    }
}

fn resource(service_name: &str) -> Resource {
    Resource { attributes: vec![attribute("service.name", &Value::Str(service_name.to_owned()))] }
}

fn attribute(key: &str, value: &Value) -> KeyValue {
    let value = match value {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Int(n) => any_value::Value::IntValue(*n),
    };
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }) }
}

fn span(record: &SpanRecord) -> Span {
    let SpanContext { trace_id, span_id, sampled } = record.context;
    Span {
        trace_id: trace_id.to_be_bytes().to_vec(),
        span_id: span_id.to_be_bytes().to_vec(),
        trace_state: record.tracestate.clone().unwrap_or_default(),
        parent_span_id: record.parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: record.name.clone(),
        kind: record.kind as i32,
        start_time_unix_nano: record.start_ns,
        end_time_unix_nano: record.end_ns,
        attributes: record.attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
        links: record
            .link
            .iter()
            .map(|l| Link { trace_id: l.trace_id.to_be_bytes().to_vec(), span_id: l.span_id.to_be_bytes().to_vec() })
            .collect(),
        status: record.error.then_some(Status { code: 2 }),
        flags: u32::from(sampled),
    }
}

// opentelemetry/proto/collector/trace/v1/trace_service.proto and trace/v1/trace.proto,
// common/v1/common.proto, resource/v1/resource.proto: only the fields the gateway sets.

#[derive(Clone, PartialEq, Message)]
struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Span>,
}

#[derive(Clone, PartialEq, Message)]
struct InstrumentationScope {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, Message)]
struct Span {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    trace_state: String,
    #[prost(bytes = "vec", tag = "4")]
    parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    name: String,
    #[prost(int32, tag = "6")]
    kind: i32,
    #[prost(fixed64, tag = "7")]
    start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    attributes: Vec<KeyValue>,
    #[prost(message, repeated, tag = "13")]
    links: Vec<Link>,
    #[prost(message, optional, tag = "15")]
    status: Option<Status>,
    #[prost(fixed32, tag = "16")]
    flags: u32,
}

#[derive(Clone, PartialEq, Message)]
struct Link {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Status {
    /// 2: error.
    #[prost(int32, tag = "3")]
    code: i32,
}

#[derive(Clone, PartialEq, Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 3")]
    value: Option<any_value::Value>,
}

mod any_value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(int64, tag = "3")]
        IntValue(i64),
    }
}
