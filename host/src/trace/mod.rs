//! Traces: every request and every bridged event gets a span of the gateway's own, in
//! the trace its W3C `traceparent` names (when `tracing.trust_client`) or in a new one.
//! Upstreams get a `traceparent` naming the gateway's span as their parent, so Django's
//! and Reflex's own spans join the trace. Spans are recorded and exported over OTLP
//! only when `[tracing.otlp]` is configured and the trace is sampled; otherwise a
//! request costs two random numbers and a 55-byte header.

mod context;
mod export;

use std::time::{Instant, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Tracing;
pub use context::{parse_traceparent, SpanContext};
pub use export::{Exporter, Value};
use export::{Kind, SpanRecord};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

pub struct Tracer {
    trust_client: bool,
    /// A new trace is sampled when the low 64 bits of its id are below this (the
    /// OpenTelemetry TraceIdRatioBased rule); `u64::MAX` with ratio 1: all are.
    sample_below: u64,
    exporter: Option<Exporter>,
}

/// One span of the gateway: its ids, its remote parent, and when it is recorded, its start.
pub struct Span {
    pub context: SpanContext,
    /// The span of the caller (client or proxy) this one continues, when honoured.
    pub parent: Option<u64>,
    /// The caller's `tracestate`, passed on with the trace it belongs to.
    pub tracestate: Option<String>,
    /// Some while the span is recorded for export.
    start: Option<(SystemTime, Instant)>,
}

impl Span {
    pub fn traceparent(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.context.traceparent()).expect("hex and dashes are a valid header value")
    }

    /// Set this span's `traceparent` and `tracestate` on a request going upstream,
    /// replacing the client's.
    pub fn write(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT.clone(), self.traceparent());
        match self.tracestate.as_deref().map(HeaderValue::from_str) {
            Some(Ok(state)) => {
                headers.insert(TRACESTATE.clone(), state);
            }
            _ => {
                headers.remove(&TRACESTATE);
            }
        }
    }
}

/// How a finished span is described in the export.
pub struct Ending<'a> {
    pub name: String,
    pub attributes: Vec<(&'static str, Value)>,
    /// A span the ended one is linked to (an event's WebSocket handshake).
    pub link: Option<&'a SpanContext>,
    pub error: bool,
}

impl Tracer {
    /// From `[tracing]`; the exporter's task is spawned on the current tokio runtime.
    pub fn new(config: &Tracing) -> Tracer {
        // `as` saturates: ratio 1.0 gives u64::MAX.
        let sample_below = (config.sample_ratio * u64::MAX as f64) as u64;
        Tracer { trust_client: config.trust_client, sample_below, exporter: config.otlp.as_ref().map(Exporter::start) }
    }

    /// The gateway's span for a request with these headers.
    pub fn request(&self, headers: &HeaderMap) -> Span {
        let remote = if self.trust_client {
            // A repeated traceparent is invalid (the spec allows one): start anew.
            let mut all = headers.get_all(&TRACEPARENT).iter();
            match (all.next(), all.next()) {
                (Some(value), None) => parse_traceparent(value.as_bytes()),
                _ => None,
            }
        } else {
            None
        };
        let tracestate =
            remote.and_then(|_| context::tracestate(headers.get_all(&TRACESTATE).iter().map(|v| v.as_bytes())));
        self.start(remote, tracestate)
    }

    /// The gateway's span for a bridged event whose top-level `traceparent` and
    /// `tracestate` members are these (what Reflex would read).
    pub fn event(&self, traceparent: Option<&str>, tracestate: Option<&str>) -> Span {
        let remote = traceparent.filter(|_| self.trust_client).and_then(|t| parse_traceparent(t.as_bytes()));
        let tracestate = remote.and(tracestate).and_then(|s| context::tracestate(std::iter::once(s.as_bytes())));
        self.start(remote, tracestate)
    }

    fn start(&self, remote: Option<SpanContext>, tracestate: Option<String>) -> Span {
        let (trace_id, sampled) = match remote {
            Some(parent) => (parent.trace_id, parent.sampled),
            None => {
                let id = context::new_trace_id();
                (id, id as u64 <= self.sample_below && self.sample_below > 0)
            }
        };
        let context = SpanContext { trace_id, span_id: context::new_span_id(), sampled };
        let start = (sampled && self.exporter.is_some()).then(|| (SystemTime::now(), Instant::now()));
        Span { context, parent: remote.map(|r| r.span_id), tracestate, start }
    }

    /// Whether spans are built for export (else `end` is a no-op and attributes need
    /// not be gathered).
    pub fn records(&self, span: &Span) -> bool {
        span.start.is_some()
    }

    /// End a request's span (kind server) or an event's (kind producer: the gateway
    /// hands the event on to Reflex and does not wait for its handling).
    pub fn end(&self, span: &Span, server: bool, ending: Ending<'_>) {
        let (Some(exporter), Some((wall, start))) = (&self.exporter, span.start) else { return };
        let start_ns = wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        exporter.record(SpanRecord {
            context: span.context,
            parent: span.parent,
            tracestate: span.tracestate.clone(),
            name: ending.name,
            kind: if server { Kind::Server } else { Kind::Producer },
            start_ns,
            end_ns: start_ns + start.elapsed().as_nanos() as u64,
            attributes: ending.attributes,
            link: ending.link.copied(),
            error: ending.error,
        });
    }

    /// Export what is queued, within `limits::OTLP_SHUTDOWN_FLUSH`.
    pub async fn shutdown(&self) {
        if let Some(exporter) = &self.exporter {
            exporter.shutdown().await;
        }
    }

    /// Spans dropped because the export queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.exporter.as_ref().map_or(0, Exporter::dropped)
    }
}
