//! The reply for a file found on disk: which representation (the file or a
//! precompressed sibling), its validators and the client's preconditions, the
//! byte range, the headers, and the streamed body.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use http::header::{
    HeaderMap, HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, VARY,
};
use http::{Response, StatusCode};
use tokio::fs::File;

use super::conditional::{Precondition, Validators};
use super::content_type;
use super::encoding::{self, Encoding};
use super::file_body;
use super::range::{self, ByteRange};
use super::resolve::Root;
use crate::body::{self, Body};

const BYTES: HeaderValue = HeaderValue::from_static("bytes");

/// `logical` is the path as requested (its name gives the Content-Type, and
/// `logical.br`/`logical.gz` are its precompressed siblings); `canonical` is
/// the file to open.
pub(super) async fn respond(
    root: &Root,
    req: &HeaderMap,
    logical: &Path,
    canonical: &Path,
    cache_control: HeaderValue,
) -> Response<Body> {
    let siblings = precompressed_siblings(root, logical).await;
    let Some((file, meta, encoding)) = open_representation(req, canonical, &siblings).await else {
        // Removed since it was looked up.
        return super::not_found();
    };
    let validators = Validators::new(&meta, encoding.map(Encoding::token));
    let mut headers = HeaderMap::new();
    validators.write(&mut headers);
    headers.insert(CACHE_CONTROL, cache_control);
    if !siblings.is_empty() {
        // Caches must key on Accept-Encoding even when this client got the plain file.
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    match validators.evaluate(req) {
        Precondition::Proceed => {}
        Precondition::NotModified => return with_headers(StatusCode::NOT_MODIFIED, headers, body::empty()),
        Precondition::Failed => return body::text(StatusCode::PRECONDITION_FAILED, "precondition failed"),
    }
    headers.insert(ACCEPT_RANGES, BYTES);

    let size = meta.len();
    // A range of a variant counts compressed bytes, which a client seeking in
    // media or resuming a download does not mean; variants are sent whole.
    let range =
        if encoding.is_none() && validators.if_range_allows(req) { range::parse(req, size) } else { ByteRange::Whole };
    let (status, start, len) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { start, end } => {
            let content_range = format!("bytes {start}-{end}/{size}");
            headers
                .insert(CONTENT_RANGE, HeaderValue::from_str(&content_range).expect("digits are a valid header value"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        ByteRange::Unsatisfiable => {
            let mut res = body::text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            res.headers_mut().extend(headers);
            let content_range = format!("bytes */{size}");
            res.headers_mut()
                .insert(CONTENT_RANGE, HeaderValue::from_str(&content_range).expect("digits are a valid header value"));
            return res;
        }
    };

    let name = logical.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    headers.insert(CONTENT_TYPE, content_type::for_name(name));
    if let Some(encoding) = encoding {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    match file_body::stream(file, start, len).await {
        Ok(body) => with_headers(status, headers, body),
        Err(e) => {
            tracing::warn!(path = %canonical.display(), error = %e, "static file unreadable");
            body::text(StatusCode::INTERNAL_SERVER_ERROR, "file could not be read")
        }
    }
}

/// `logical.br` and `logical.gz`, where they are regular files inside the root
/// (a sibling that is a symlink leading out is ignored like any other).
async fn precompressed_siblings(root: &Root, logical: &Path) -> Vec<(Encoding, PathBuf)> {
    let mut found = Vec::new();
    for encoding in Encoding::ALL {
        let mut name = logical.as_os_str().to_owned();
        name.push(encoding.suffix());
        if let Some(canonical) = root.regular_file(Path::new(&name)).await {
            found.push((encoding, canonical));
        }
    }
    found
}

/// The negotiated sibling, or the file itself if none is acceptable or the
/// sibling cannot be opened. Metadata comes from the open handle, so validators
/// and Content-Length describe exactly the bytes that will be sent.
async fn open_representation(
    req: &HeaderMap,
    canonical: &Path,
    siblings: &[(Encoding, PathBuf)],
) -> Option<(File, Metadata, Option<Encoding>)> {
    let available: Vec<Encoding> = siblings.iter().map(|(e, _)| *e).collect();
    let chosen = encoding::negotiate(req, &available).and_then(|c| siblings.iter().find(|(e, _)| *e == c));
    if let Some((encoding, path)) = chosen {
        if let Some((file, meta)) = open(path).await {
            return Some((file, meta, Some(*encoding)));
        }
    }
    open(canonical).await.map(|(file, meta)| (file, meta, None))
}

async fn open(path: &Path) -> Option<(File, Metadata)> {
    let file = File::open(path).await.ok()?;
    let meta = file.metadata().await.ok()?;
    meta.is_file().then_some((file, meta))
}

fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}
