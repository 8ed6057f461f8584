//! The process's log: the subscriber, and the format of its lines, `[log] format`: text
//! (default) or one JSON object per line. The subscriber is installed before the config
//! is read (its errors are logged too), so the format is a switch read per line and set
//! once the config is loaded.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::limits;

static JSON: AtomicBool = AtomicBool::new(false);

/// Install the process's subscriber, writing `Lines` to `out`. Lines (one per request)
/// are written by a thread of their own, batched, so a request never waits on `out`; a
/// full queue drops lines rather than block. Dropping the guard flushes what is queued.
pub fn install(filter: EnvFilter, out: impl std::io::Write + Send + 'static, ansi: bool) -> WorkerGuard {
    let (writer, flush_on_drop) = NonBlockingBuilder::default()
        .buffered_lines_limit(limits::LOG_QUEUE_LINES)
        .lossy(true)
        .finish(std::io::BufWriter::new(out));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .event_format(Lines::default())
        .init();
    flush_on_drop
}

pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// Formats each line as text or JSON, whichever `set_format` chose last. JSON lines
/// carry the event's fields at the top level (`method`, `status`, `trace_id`, …); the
/// gateway logs no spans, so none are formatted.
pub struct Lines {
    text: Format<Full>,
    json: Format<Json>,
}

impl Default for Lines {
    fn default() -> Self {
        let json =
            tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false).with_span_list(false);
        Lines { text: Format::default(), json }
    }
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        if JSON.load(Ordering::Relaxed) {
            self.json.format_event(ctx, writer, event)
        } else {
            self.text.format_event(ctx, writer, event)
        }
    }
}
