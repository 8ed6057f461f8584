//! Files from disk: Django's STATIC_ROOT and an exported single-page app.
//!
//! The rules a mount follows:
//!
//! - `strip_prefix` is removed first; a path that is neither the prefix nor
//!   `prefix/…` is 404.
//! - Only GET and HEAD; anything else is 405 with `Allow: GET, HEAD`. HEAD gets
//!   the GET reply's status and headers (Content-Length included) and no body.
//! - A path that tries to leave the root as text — a `.` or `..` segment, a
//!   backslash, a NUL or other control character — is 400: the caller has
//!   already canonicalized the path, so such a path means a step before was
//!   bypassed. The path is taken as decoded text: `%` is an ordinary character,
//!   so `%2e%2e` names a file literally called that, which is not there (404).
//! - Everything else that is not a regular file inside the canonical root is
//!   absent, and all absences look alike: missing files, symlinks resolving
//!   outside the root (symlinks inside it are followed), hidden names (a segment
//!   starting with `.`, in the request or in the resolved path, except
//!   `.well-known`), directories without `index.html`, and a file asked for
//!   with a trailing slash. Absent is 404, or the SPA fallback.
//! - `dir/` serves `dir/index.html`; `dir` without the slash is redirected
//!   (307) to `dir/` when that index exists, so the page's relative links
//!   resolve. Directories are never listed.
//! - SPA fallback: when the mount has `fallback` and the path is absent, the
//!   fallback file is served (200, `Cache-Control: no-cache`) unless the last
//!   segment has an extension with a known media type (`.js`, `.css`, `.png`,
//!   `.html`, …): a missing asset must be a 404, not HTML the browser would try
//!   to run as a script. `/dashboard`, `/users/john.smith` and `/v1.2` fall back.
//! - Content negotiation, validators, ranges and caching: see `file_response`
//!   and the modules it uses.

mod cache_control;
pub(crate) mod conditional;
mod content_type;
mod encoding;
mod file_body;
mod file_response;
pub(crate) mod range;
mod resolve;

use std::path::PathBuf;

use http::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_LENGTH, LOCATION};
use http::{Method, Response, StatusCode};
use http_body::Body as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::body::{self, Body};
use crate::config::StaticMount;
use resolve::{Lookup, PathError, RequestPath, Root};

/// One `[static.<name>]` mount.
#[derive(Debug)]
pub struct Mount {
    name: String,
    root: Root,
    strip_prefix: Option<String>,
    /// The fallback file as a path under the root, resolved again per request
    /// so that a redeployed export is picked up.
    fallback: Option<PathBuf>,
}

impl Mount {
    /// Canonicalizes the root once; fails if it is not a directory or the
    /// fallback is not a file inside it.
    pub fn new(name: &str, config: &StaticMount) -> std::io::Result<Mount> {
        let err = |kind, message: String| std::io::Error::new(kind, format!("static mount `{name}`: {message}"));
        let root =
            Root::new(&config.root).map_err(|e| err(e.kind(), format!("root `{}`: {e}", config.root.display())))?;
        let fallback = match &config.fallback {
            None => None,
            Some(fallback) => {
                let path = root.path().join(fallback);
                match std::fs::canonicalize(&path) {
                    Ok(canonical) if root.contains(&canonical) && canonical.is_file() => Some(path),
                    _ => {
                        return Err(err(
                            std::io::ErrorKind::InvalidInput,
                            format!("fallback `{fallback}` is not a file inside the root"),
                        ))
                    }
                }
            }
        };
        Ok(Mount { name: name.to_owned(), root, strip_prefix: config.strip_prefix.clone(), fallback })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `path` is the request path, percent-decoded and without dot segments;
    /// it is checked again all the same. `query` (canonical, without `?`) is kept on a
    /// redirect.
    pub async fn serve(&self, method: &Method, path: &str, query: &str, headers: &HeaderMap) -> Response<Body> {
        let res = self.respond(method, path, query, headers).await;
        if method == Method::HEAD {
            without_body(res)
        } else {
            res
        }
    }

    async fn respond(&self, method: &Method, path: &str, query: &str, headers: &HeaderMap) -> Response<Body> {
        let req = match RequestPath::parse(path, self.strip_prefix.as_deref()) {
            Ok(req) => req,
            Err(PathError::NotUnderPrefix) => return not_found(),
            Err(PathError::Malformed) => return body::text(StatusCode::BAD_REQUEST, "bad request path"),
        };
        if method != Method::GET && method != Method::HEAD {
            let mut res = body::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            res.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        match self.root.lookup(&req).await {
            Lookup::File { logical, canonical } => {
                let name = logical.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let cache = cache_control::for_name(name);
                file_response::respond(&self.root, headers, &logical, &canonical, cache).await
            }
            Lookup::AddSlash => self.add_slash(&req, query),
            Lookup::Absent => self.fallback(&req, headers).await,
        }
    }

    async fn fallback(&self, req: &RequestPath<'_>, headers: &HeaderMap) -> Response<Body> {
        let Some(logical) = &self.fallback else {
            return not_found();
        };
        if content_type::is_known_extension(req.last()) {
            return not_found();
        }
        match self.root.regular_file(logical).await {
            // no-cache even if the fallback's name looks hashed: it answers for
            // every client route and changes with every deploy.
            Some(canonical) => {
                file_response::respond(&self.root, headers, logical, &canonical, cache_control::NO_CACHE).await
            }
            None => not_found(),
        }
    }

    /// 307 rather than 301: a permanent redirect is cached by browsers for good,
    /// and the next deploy may turn the directory into a file or a client route.
    /// The Location is rebuilt from the checked segments, so it is always a path
    /// on this origin (never `//host`), followed by the request's query.
    fn add_slash(&self, req: &RequestPath<'_>, query: &str) -> Response<Body> {
        let mut location = self.strip_prefix.as_deref().filter(|p| *p != "/").unwrap_or_default().to_owned();
        for segment in &req.segments {
            location.push('/');
            location.extend(utf8_percent_encode(segment, PATH_SEGMENT));
        }
        location.push('/');
        if !query.is_empty() {
            location.push('?');
            location.push_str(query);
        }
        let mut res = body::text(StatusCode::TEMPORARY_REDIRECT, format!("see {location}"));
        res.headers_mut()
            .insert(LOCATION, HeaderValue::from_str(&location).expect("percent-encoded ASCII is a valid header value"));
        res
    }
}

/// What cannot stand literally in a URL path segment; `%` included, since the
/// segment is decoded text.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn not_found() -> Response<Body> {
    body::text(StatusCode::NOT_FOUND, "not found")
}

/// HEAD: the GET reply without its body. Content-Length stays what GET would
/// send; the file, if one was opened, is closed here unread.
fn without_body(res: Response<Body>) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    if parts.status != StatusCode::NOT_MODIFIED && !parts.headers.contains_key(CONTENT_LENGTH) {
        if let Some(len) = body.size_hint().exact() {
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    Response::from_parts(parts, body::empty())
}
