//! Guest stdout/stderr into `tracing`: line-buffered, bounded.
//!
//! Every complete line becomes one event with target `isthmus::plugin` and field
//! `plugin = <name>` (stdout at INFO, stderr at WARN). A line longer than
//! `MAX_LINE` is cut into pieces of that size. Each instance may log at most
//! `BUDGET_PER_CALL` bytes per call (and per `init`); past that, output is dropped
//! and one warning says how much. So a guest printing without end costs a bounded
//! buffer and a bounded number of log lines until its deadline stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::limits::{PLUGIN_LOG_BYTES_PER_CALL as BUDGET_PER_CALL, PLUGIN_LOG_MAX_LINE as MAX_LINE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

struct LineBuf {
    plugin: Arc<str>,
    stream: Stream,
    line: Vec<u8>,
    budget: usize,
    dropped: usize,
}

impl LineBuf {
    fn emit(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let (plugin, stream) = (&*self.plugin, self.stream.as_str());
        match self.stream {
            Stream::Stdout => tracing::info!(target: "isthmus::plugin", plugin, stream, "{text}"),
            Stream::Stderr => tracing::warn!(target: "isthmus::plugin", plugin, stream, "{text}"),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        if bytes.len() > self.budget {
            self.dropped += bytes.len() - self.budget;
            bytes = &bytes[..self.budget];
        }
        self.budget -= bytes.len();
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let room = MAX_LINE - self.line.len();
                    let piece = &bytes[..i];
                    if self.line.is_empty() && piece.len() <= MAX_LINE {
                        self.emit(piece);
                    } else {
                        self.append(piece, room);
                        let line = std::mem::take(&mut self.line);
                        self.emit(&line);
                        self.line = line;
                        self.line.clear();
                    }
                    bytes = &bytes[i + 1..];
                }
                None => {
                    let room = MAX_LINE - self.line.len();
                    self.append(bytes, room);
                    bytes = &[];
                }
            }
        }
    }

    /// Append to the pending line, emitting full `MAX_LINE` pieces as they fill.
    fn append(&mut self, mut bytes: &[u8], mut room: usize) {
        while bytes.len() > room {
            self.line.extend_from_slice(&bytes[..room]);
            let line = std::mem::take(&mut self.line);
            self.emit(&line);
            self.line = line;
            self.line.clear();
            bytes = &bytes[room..];
            room = MAX_LINE;
        }
        self.line.extend_from_slice(bytes);
    }

    fn flush_partial(&mut self) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.emit(&line);
        }
    }

    fn end_call(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(
                target: "isthmus::plugin",
                plugin = &*self.plugin,
                stream = self.stream.as_str(),
                dropped_bytes = self.dropped,
                "plugin output over {BUDGET_PER_CALL} bytes in one call; the rest was dropped"
            );
        }
        self.dropped = 0;
        self.budget = BUDGET_PER_CALL;
    }
}

impl Drop for LineBuf {
    fn drop(&mut self) {
        self.flush_partial();
        self.end_call();
    }
}

/// One guest output stream (stdout or stderr) of one instance.
#[derive(Clone)]
pub(crate) struct LogSink(Arc<Inner>);

struct Inner {
    /// Set by every write, so that `end_call` costs one atomic op when nothing was printed.
    touched: AtomicBool,
    buf: Mutex<LineBuf>,
}

impl LogSink {
    pub(crate) fn new(plugin: Arc<str>, stream: Stream) -> LogSink {
        let buf = LineBuf { plugin, stream, line: Vec::new(), budget: BUDGET_PER_CALL, dropped: 0 };
        LogSink(Arc::new(Inner { touched: AtomicBool::new(false), buf: Mutex::new(buf) }))
    }

    fn with<R>(&self, f: impl FnOnce(&mut LineBuf) -> R) -> R {
        let mut guard = self.0.buf.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Report dropped output and reset the budget; called after every call.
    pub(crate) fn end_call(&self) {
        if !self.0.touched.swap(false, Ordering::Relaxed) {
            return;
        }
        self.with(|b| if b.dropped > 0 { b.end_call() } else { b.budget = BUDGET_PER_CALL })
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.touched.store(true, Ordering::Relaxed);
        self.with(|b| b.push(&bytes));
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE * 4)
    }
}

impl tokio::io::AsyncWrite for LogSink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.touched.store(true, Ordering::Relaxed);
        self.with(|b| b.push(buf));
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines_and_budget() {
        let sink = LogSink::new("t".into(), Stream::Stdout);
        let mut s = sink.clone();
        OutputStream::write(&mut s, Bytes::from_static(b"hello\nwor")).unwrap();
        OutputStream::write(&mut s, Bytes::from(vec![b'x'; 3 * MAX_LINE])).unwrap();
        sink.with(|b| assert!(b.line.len() <= MAX_LINE));
        OutputStream::write(&mut s, Bytes::from(vec![b'y'; 2 * BUDGET_PER_CALL])).unwrap();
        sink.with(|b| {
            assert_eq!(b.budget, 0);
            assert!(b.dropped > 0);
            assert!(b.line.len() <= MAX_LINE);
        });
        sink.end_call();
        sink.with(|b| assert_eq!((b.budget, b.dropped), (BUDGET_PER_CALL, 0)));
    }
}
