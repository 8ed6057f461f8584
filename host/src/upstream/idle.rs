//! Idle timeouts for streamed bodies and tunnels: a transfer that moves no byte for
//! the configured time is ended, so a stalled peer cannot hold a connection forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

#[derive(Debug, thiserror::Error)]
#[error("no data for {0:?}: idle timeout")]
pub struct IdleTimeout(pub Duration);

pin_project! {
    /// A body that fails with `IdleTimeout` when no frame arrives for `timeout`.
    pub struct IdleBody<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        timeout: Duration,
    }
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self { inner, sleep: tokio::time::sleep(timeout), timeout }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep.as_mut().reset(Instant::now() + *this.timeout);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(IdleTimeout(*this.timeout).into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Last time (ms since `epoch`) either side of a tunnel moved a byte.
#[derive(Clone)]
pub struct Activity {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    /// Activity from now on.
    fn default() -> Self {
        Self { epoch: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

pin_project! {
    /// An IO stream that records activity on every read or write.
    pub struct ActiveIo<T> {
        #[pin]
        inner: T,
        activity: Activity,
    }
}

impl<T> ActiveIo<T> {
    pub fn new(inner: T, activity: Activity) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead> AsyncRead for ActiveIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        res
    }
}

impl<T: AsyncWrite> AsyncWrite for ActiveIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// The first bytes of a connection: as many as HTTP/2's preface, the most hyper reads to
/// tell HTTP/1 from HTTP/2 before any timeout of its own runs.
const OPENING_BYTES: usize = 24;

/// A client connection's stream, with the two timeouts hyper does not keep:
/// - its opening: the first `OPENING_BYTES` must come within `opening` (hyper reads them
///   with no timer, so a client sending nothing, or half a preface, held its connection
///   for good; from then on hyper's own header timeout applies);
/// - every write: one that makes no progress for `send` fails with `TimedOut` (a client
///   that stops reading would otherwise hold its connection for good, since the body it
///   does not read is not polled, so no idle timer runs).
pub struct ClientIo<T> {
    inner: T,
    /// Until the opening is in: its deadline and how many bytes are still missing.
    opening: Option<(Pin<Box<Sleep>>, usize)>,
    send: Duration,
    /// Armed when a write is held up; made on the first one (most connections never are).
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
}

impl<T> ClientIo<T> {
    pub fn new(inner: T, opening: Duration, send: Duration) -> Self {
        let opening = Some((Box::pin(tokio::time::sleep(opening)), OPENING_BYTES));
        Self { inner, opening, send, stall: None, stalled: false }
    }

    /// `Ready(Err)` when the write held up by `res` has waited out the send timeout.
    fn judge<R>(&mut self, cx: &mut Context<'_>, res: Poll<std::io::Result<R>>) -> Poll<std::io::Result<R>> {
        if res.is_ready() {
            self.stalled = false;
            return res;
        }
        let deadline = Instant::now() + self.send;
        let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled {
            stall.as_mut().reset(deadline);
            self.stalled = true;
        }
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out(format!("the client read nothing for {:?}", self.send)))),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn timed_out(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, message)
}

impl<T: AsyncRead + Unpin> AsyncRead for ClientIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some((deadline, missing)) = &mut this.opening {
            *missing = missing.saturating_sub(buf.filled().len() - before);
            if *missing == 0 {
                this.opening = None;
            } else if res.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(timed_out("the client sent no request in time".into())));
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClientIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.judge(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.judge(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_flush(cx);
        this.judge(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.judge(cx, res)
    }
}
