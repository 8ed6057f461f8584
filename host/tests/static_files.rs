//! `static_files::Mount` against a real folder: types, validators, ranges,
//! precompressed siblings, caching, the SPA fallback, and every way out of the
//! root we could think of.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use isthmus::config::StaticMount;
use isthmus::static_files::Mount;

const HELLO: &[u8] = b"hello world\n";
const SECRET: &[u8] = b"TOP SECRET";
const INDEX: &[u8] = b"<!doctype html><title>spa</title>";
/// 2001-09-09T01:46:40Z, the mtime every fixture file gets.
const MTIME: u64 = 1_000_000_000;
const MTIME_HTTP: &str = "Sun, 09 Sep 2001 01:46:40 GMT";
const BIG_LEN: usize = 3 * 1024 * 1024 + 17;

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
    /// `/static` prefix, no fallback (Django's STATIC_ROOT).
    assets: Mount,
    /// No prefix, `index.html` fallback (an exported SPA).
    spa: Mount,
}

fn write(path: &Path, contents: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME)).unwrap();
}

fn big_contents() -> Vec<u8> {
    (0..BIG_LEN).map(|i| (i % 251) as u8).collect()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    write(&outside.join("secret.txt"), SECRET);
    write(&outside.join("secret.js.br"), SECRET);

    write(&root.join("hello.txt"), HELLO);
    write(&root.join("empty.txt"), b"");
    write(&root.join("data.unknownext"), b"raw");
    write(&root.join("index.html"), INDEX);
    write(&root.join("docs/index.html"), b"docs index");
    write(&root.join("a b/index.html"), b"spaced index");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    write(&root.join("app.js"), b"console.log('plain app');\n");
    write(&root.join("app.js.br"), b"BR-BYTES");
    write(&root.join("app.js.gz"), b"GZ-BYTES-LONGER");
    write(&root.join("style.css"), b"body { color: red }\n");
    write(&root.join("style.css.gz"), b"GZ-STYLE");
    write(&root.join("trick.js"), b"trick plain");
    symlink(outside.join("secret.js.br"), root.join("trick.js.br")).unwrap();
    write(&root.join("assets/index-BxYz12Ab.js"), b"hashed js");
    write(&root.join("main.3f2a9c1d.css"), b"hashed css");
    write(&root.join("chunk-4KQ2ZJ7M.mjs"), b"hashed mjs");
    write(&root.join(".env"), b"SECRET=1");
    write(&root.join(".git/config"), b"[core]");
    write(&root.join(".well-known/security.txt"), b"Contact: mailto:sec@example.com\n");
    write(&root.join("big.bin"), &big_contents());
    symlink("hello.txt", root.join("alias.txt")).unwrap();
    symlink(".env", root.join("visible-to-hidden.txt")).unwrap();
    symlink("../outside/secret.txt", root.join("leak.txt")).unwrap();
    symlink(outside.join("secret.txt"), root.join("abs-leak")).unwrap();
    symlink("../outside", root.join("out")).unwrap();

    let assets =
        Mount::new("assets", &StaticMount { root: root.clone(), fallback: None, strip_prefix: Some("/static".into()) })
            .unwrap();
    let spa =
        Mount::new("spa", &StaticMount { root: root.clone(), fallback: Some("index.html".into()), strip_prefix: None })
            .unwrap();
    Fixture { _dir: dir, root, outside, assets, spa }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn request(mount: &Mount, method: Method, path: &str, headers: &[(HeaderName, &str)]) -> Reply {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let res = mount.serve(&method, path, query, &map).await;
    let (parts, body) = res.into_parts();
    Reply { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

async fn get(mount: &Mount, path: &str, headers: &[(HeaderName, &str)]) -> Reply {
    request(mount, Method::GET, path, headers).await
}

// --- plain files -------------------------------------------------------------

#[tokio::test]
async fn serves_a_file_with_type_length_and_validators() {
    let f = fixture();
    let r = get(&f.assets, "/static/hello.txt", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, HELLO);
    assert_eq!(r.header(header::CONTENT_TYPE), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header(header::CONTENT_LENGTH), Some("12"));
    assert_eq!(r.header(header::ACCEPT_RANGES), Some("bytes"));
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-cache"));
    assert_eq!(r.header(header::LAST_MODIFIED), Some(MTIME_HTTP));
    let etag = r.header(header::ETAG).unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2, "{etag}");
    assert_eq!(r.header(header::VARY), None, "no sibling, no Vary");
    assert_eq!(r.header(header::CONTENT_ENCODING), None);
}

#[tokio::test]
async fn etag_changes_with_the_file() {
    let f = fixture();
    let before = get(&f.assets, "/static/hello.txt", &[]).await;
    write(&f.root.join("hello.txt"), b"hello there\n");
    let file = fs::File::options().write(true).open(f.root.join("hello.txt")).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME + 60)).unwrap();
    let after = get(&f.assets, "/static/hello.txt", &[]).await;
    assert_eq!(after.body, &b"hello there\n"[..]);
    assert_ne!(before.header(header::ETAG), after.header(header::ETAG));
    assert_ne!(before.header(header::LAST_MODIFIED), after.header(header::LAST_MODIFIED));
}

#[tokio::test]
async fn content_types() {
    let f = fixture();
    for (path, ty) in [
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/chunk-4KQ2ZJ7M.mjs", "text/javascript; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
        ("/static/index.html", "text/html; charset=utf-8"),
        ("/static/data.unknownext", "application/octet-stream"),
        ("/static/big.bin", "application/octet-stream"),
    ] {
        let r = get(&f.assets, path, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header(header::CONTENT_TYPE), Some(ty), "{path}");
    }
}

#[tokio::test]
async fn empty_file() {
    let f = fixture();
    let r = get(&f.assets, "/static/empty.txt", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CONTENT_LENGTH), Some("0"));
    assert!(r.body.is_empty());
}

// --- prefix and directories ----------------------------------------------------

#[tokio::test]
async fn paths_outside_the_prefix_are_404() {
    let f = fixture();
    for path in ["/staticfoo/hello.txt", "/other/hello.txt", "/hello.txt", "/stati", "/"] {
        let r = get(&f.assets, path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.header(header::CONTENT_TYPE), Some("text/plain; charset=utf-8"));
    }
}

#[tokio::test]
async fn directories_serve_their_index_or_redirect_to_the_slash() {
    let f = fixture();
    let r = get(&f.assets, "/static/docs/", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, &b"docs index"[..]);
    assert_eq!(r.header(header::CONTENT_TYPE), Some("text/html; charset=utf-8"));
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-cache"));

    let r = get(&f.assets, "/static/docs", &[]).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.header(header::LOCATION), Some("/static/docs/"));

    // The prefix itself is the root directory.
    let r = get(&f.assets, "/static", &[]).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.header(header::LOCATION), Some("/static/"));
    let r = get(&f.assets, "/static/", &[]).await;
    assert_eq!(r.body, INDEX);

    let r = get(&f.assets, "/static/a b", &[]).await;
    assert_eq!(r.header(header::LOCATION), Some("/static/a%20b/"), "Location is percent-encoded");
    assert_eq!(get(&f.assets, "/static/a b/", &[]).await.body, &b"spaced index"[..]);

    let r = get(&f.spa, "/docs", &[]).await;
    assert_eq!(r.header(header::LOCATION), Some("/docs/"));
    let r = get(&f.spa, "/docs?next=/shop%3Fx%3D1&a=b", &[]).await;
    assert_eq!(r.header(header::LOCATION), Some("/docs/?next=/shop%3Fx%3D1&a=b"), "the query is kept");
    let r = get(&f.spa, "/", &[]).await;
    assert_eq!(r.body, INDEX);
}

#[tokio::test]
async fn redirect_location_stays_on_this_origin() {
    let f = fixture();
    // A doubled slash the caller failed to merge must not become `//docs/`.
    let r = get(&f.spa, "//docs", &[]).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.header(header::LOCATION), Some("/docs/"));
}

#[tokio::test]
async fn no_listing_and_no_trailing_slash_on_files() {
    let f = fixture();
    for path in ["/static/empty-dir/", "/static/empty-dir", "/static/hello.txt/", "/static/docs/index.html/"] {
        assert_eq!(get(&f.assets, path, &[]).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}

// --- methods and HEAD ------------------------------------------------------------

#[tokio::test]
async fn only_get_and_head() {
    let f = fixture();
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        for (mount, path) in [(&f.assets, "/static/hello.txt"), (&f.spa, "/dashboard")] {
            let r = request(mount, method.clone(), path, &[]).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(r.header(header::ALLOW), Some("GET, HEAD"));
        }
    }
}

#[tokio::test]
async fn head_has_the_get_headers_and_no_body() {
    let f = fixture();
    for (path, headers) in [
        ("/static/hello.txt", vec![]),
        ("/static/hello.txt", vec![(header::RANGE, "bytes=0-4")]),
        ("/static/hello.txt", vec![(header::RANGE, "bytes=50-")]),
        ("/static/app.js", vec![(header::ACCEPT_ENCODING, "br")]),
        ("/static/big.bin", vec![]),
        ("/static/missing.txt", vec![]),
        ("/static/docs", vec![]),
    ] {
        let g = get(&f.assets, path, &headers).await;
        let h = request(&f.assets, Method::HEAD, path, &headers).await;
        assert_eq!(h.status, g.status, "{path}");
        assert!(h.body.is_empty(), "{path}");
        for name in [
            header::CONTENT_TYPE,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CACHE_CONTROL,
            header::ACCEPT_RANGES,
            header::CONTENT_RANGE,
            header::CONTENT_ENCODING,
            header::VARY,
            header::LOCATION,
        ] {
            assert_eq!(h.header(name.clone()), g.header(name.clone()), "{path} {name}");
        }
        let get_len = g.header(header::CONTENT_LENGTH).map(str::to_owned).unwrap_or_else(|| g.body.len().to_string());
        assert_eq!(h.header(header::CONTENT_LENGTH), Some(get_len.as_str()), "{path}");
        assert_eq!(get_len, g.body.len().to_string(), "{path}");
    }
    let h = request(&f.assets, Method::HEAD, "/static/hello.txt", &[(header::IF_NONE_MATCH, "*")]).await;
    assert_eq!(h.status, StatusCode::NOT_MODIFIED);
    assert_eq!(h.header(header::CONTENT_LENGTH), None);
}

// --- conditional requests --------------------------------------------------------

async fn etag_of(mount: &Mount, path: &str, headers: &[(HeaderName, &str)]) -> String {
    get(mount, path, headers).await.header(header::ETAG).unwrap().to_owned()
}

#[tokio::test]
async fn if_none_match_gives_304() {
    let f = fixture();
    let etag = etag_of(&f.assets, "/static/hello.txt", &[]).await;
    let weak = format!("W/{etag}");
    let list = format!("\"nope\", W/\"other\",{etag}");
    for inm in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let r = get(&f.assets, "/static/hello.txt", &[(header::IF_NONE_MATCH, inm)]).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header(header::ETAG), Some(etag.as_str()));
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-cache"));
        assert_eq!(r.header(header::LAST_MODIFIED), Some(MTIME_HTTP));
        assert_eq!(r.header(header::CONTENT_LENGTH), None);
    }
    for inm in ["\"nope\"", "W/\"nope\", \"nope2\"", "garbage"] {
        let r = get(&f.assets, "/static/hello.txt", &[(header::IF_NONE_MATCH, inm)]).await;
        assert_eq!(r.status, StatusCode::OK, "{inm}");
        assert_eq!(r.body, HELLO);
    }
    // Several header lines form one list.
    let r = get(&f.assets, "/static/hello.txt", &[(header::IF_NONE_MATCH, "\"nope\""), (header::IF_NONE_MATCH, &etag)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn if_modified_since_gives_304() {
    let f = fixture();
    let later = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(MTIME + 3600));
    let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(MTIME - 1));
    for (ims, status) in [
        (MTIME_HTTP, StatusCode::NOT_MODIFIED),
        (later.as_str(), StatusCode::NOT_MODIFIED),
        (earlier.as_str(), StatusCode::OK),
        ("not a date", StatusCode::OK),
    ] {
        let r = get(&f.assets, "/static/hello.txt", &[(header::IF_MODIFIED_SINCE, ims)]).await;
        assert_eq!(r.status, status, "{ims}");
    }
}

#[tokio::test]
async fn if_none_match_takes_precedence_over_if_modified_since() {
    let f = fixture();
    let etag = etag_of(&f.assets, "/static/hello.txt", &[]).await;
    let old = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(MTIME - 3600));
    let r = get(
        &f.assets,
        "/static/hello.txt",
        &[(header::IF_NONE_MATCH, "\"stale\""), (header::IF_MODIFIED_SINCE, MTIME_HTTP)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, HELLO);
    let r =
        get(&f.assets, "/static/hello.txt", &[(header::IF_NONE_MATCH, &etag), (header::IF_MODIFIED_SINCE, &old)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn if_match_and_if_unmodified_since_give_412() {
    let f = fixture();
    let etag = etag_of(&f.assets, "/static/hello.txt", &[]).await;
    let weak = format!("W/{etag}");
    let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(MTIME - 1));
    for (name, value, status) in [
        (header::IF_MATCH, etag.as_str(), StatusCode::OK),
        (header::IF_MATCH, "*", StatusCode::OK),
        (header::IF_MATCH, "\"nope\"", StatusCode::PRECONDITION_FAILED),
        (header::IF_MATCH, weak.as_str(), StatusCode::PRECONDITION_FAILED),
        (header::IF_UNMODIFIED_SINCE, MTIME_HTTP, StatusCode::OK),
        (header::IF_UNMODIFIED_SINCE, earlier.as_str(), StatusCode::PRECONDITION_FAILED),
    ] {
        let r = get(&f.assets, "/static/hello.txt", &[(name.clone(), value)]).await;
        assert_eq!(r.status, status, "{name}: {value}");
    }
}

// --- ranges ------------------------------------------------------------------------

#[tokio::test]
async fn single_byte_ranges_give_206() {
    let f = fixture();
    for (range, body, content_range) in [
        ("bytes=0-4", &b"hello"[..], "bytes 0-4/12"),
        ("bytes=6-", &b"world\n"[..], "bytes 6-11/12"),
        ("bytes=-3", &b"ld\n"[..], "bytes 9-11/12"),
        ("bytes=5-100", &b" world\n"[..], "bytes 5-11/12"),
        ("bytes=-100", HELLO, "bytes 0-11/12"),
        ("bytes=11-11", &b"\n"[..], "bytes 11-11/12"),
    ] {
        let r = get(&f.assets, "/static/hello.txt", &[(header::RANGE, range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(r.body, body, "{range}");
        assert_eq!(r.header(header::CONTENT_RANGE), Some(content_range), "{range}");
        assert_eq!(r.header(header::CONTENT_LENGTH), Some(body.len().to_string().as_str()), "{range}");
        assert_eq!(r.header(header::ACCEPT_RANGES), Some("bytes"));
        assert_eq!(r.header(header::CONTENT_TYPE), Some("text/plain; charset=utf-8"));
    }
}

#[tokio::test]
async fn unsatisfiable_ranges_give_416() {
    let f = fixture();
    for range in ["bytes=12-", "bytes=100-200", "bytes=-0"] {
        let r = get(&f.assets, "/static/hello.txt", &[(header::RANGE, range)]).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.header(header::CONTENT_RANGE), Some("bytes */12"), "{range}");
        assert_eq!(r.header(header::ACCEPT_RANGES), Some("bytes"));
    }
}

#[tokio::test]
async fn malformed_and_multiple_ranges_serve_the_whole_file() {
    let f = fixture();
    for range in ["bytes=5-2", "bytes=0-1,3-4", "items=0-1", "bytes=x-", "bytes", "bytes=--1"] {
        let r = get(&f.assets, "/static/hello.txt", &[(header::RANGE, range)]).await;
        assert_eq!(r.status, StatusCode::OK, "{range}");
        assert_eq!(r.body, HELLO, "{range}");
        assert_eq!(r.header(header::CONTENT_RANGE), None, "{range}");
    }
    let r = get(&f.assets, "/static/empty.txt", &[(header::RANGE, "bytes=0-")]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn if_range_is_honoured() {
    let f = fixture();
    let etag = etag_of(&f.assets, "/static/hello.txt", &[]).await;
    let weak = format!("W/{etag}");
    let other_date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(MTIME + 1));
    for (if_range, status) in [
        (etag.as_str(), StatusCode::PARTIAL_CONTENT),
        (MTIME_HTTP, StatusCode::PARTIAL_CONTENT),
        ("\"stale\"", StatusCode::OK),
        (weak.as_str(), StatusCode::OK),
        (other_date.as_str(), StatusCode::OK),
        ("garbage", StatusCode::OK),
    ] {
        let r =
            get(&f.assets, "/static/hello.txt", &[(header::RANGE, "bytes=0-4"), (header::IF_RANGE, if_range)]).await;
        assert_eq!(r.status, status, "{if_range}");
        let expected = if status == StatusCode::OK { HELLO } else { &b"hello"[..] };
        assert_eq!(r.body, expected, "{if_range}");
    }
}

#[tokio::test]
async fn ranges_deep_in_a_large_file() {
    let f = fixture();
    let big = big_contents();
    let r = get(&f.assets, "/static/big.bin", &[(header::RANGE, "bytes=2000000-2100009")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &big[2_000_000..=2_100_009]);
    assert_eq!(r.header(header::CONTENT_RANGE), Some(format!("bytes 2000000-2100009/{BIG_LEN}").as_str()));
    let r = get(&f.assets, "/static/big.bin", &[(header::RANGE, "bytes=-5")]).await;
    assert_eq!(r.body, &big[BIG_LEN - 5..]);
}

// --- streaming ----------------------------------------------------------------------

#[tokio::test]
async fn bodies_are_streamed_in_bounded_chunks() {
    let f = fixture();
    let res = f.assets.serve(&Method::GET, "/static/big.bin", "", &HeaderMap::new()).await;
    assert_eq!(res.headers()[header::CONTENT_LENGTH], BIG_LEN.to_string().as_str());
    let mut body = res.into_body();
    let (mut frames, mut received) = (0, Vec::new());
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        assert!(data.len() <= 64 * 1024, "chunk of {} bytes", data.len());
        received.extend_from_slice(&data);
        frames += 1;
    }
    assert!(frames >= BIG_LEN / (64 * 1024), "{frames} frames");
    assert_eq!(received, big_contents());
}

// --- precompressed siblings ----------------------------------------------------------

#[tokio::test]
async fn precompressed_siblings_are_negotiated() {
    let f = fixture();
    for (accept, body, encoding) in [
        (Some("gzip, deflate, br"), &b"BR-BYTES"[..], Some("br")),
        (Some("br;q=0.5, gzip;q=0.5"), &b"BR-BYTES"[..], Some("br")),
        (Some("gzip"), &b"GZ-BYTES-LONGER"[..], Some("gzip")),
        (Some("br;q=0, gzip"), &b"GZ-BYTES-LONGER"[..], Some("gzip")),
        (Some("gzip;q=1, br;q=0.5"), &b"GZ-BYTES-LONGER"[..], Some("gzip")),
        (Some("*"), &b"BR-BYTES"[..], Some("br")),
        (Some("*;q=0"), &b"console.log('plain app');\n"[..], None),
        (Some("identity"), &b"console.log('plain app');\n"[..], None),
        (Some("deflate"), &b"console.log('plain app');\n"[..], None),
        (None, &b"console.log('plain app');\n"[..], None),
    ] {
        let headers: Vec<_> = accept.map(|a| (header::ACCEPT_ENCODING, a)).into_iter().collect();
        let r = get(&f.assets, "/static/app.js", &headers).await;
        assert_eq!(r.status, StatusCode::OK, "{accept:?}");
        assert_eq!(r.body, body, "{accept:?}");
        assert_eq!(r.header(header::CONTENT_ENCODING), encoding, "{accept:?}");
        assert_eq!(r.header(header::CONTENT_TYPE), Some("text/javascript; charset=utf-8"), "{accept:?}");
        assert_eq!(r.header(header::VARY), Some("Accept-Encoding"), "{accept:?}");
        assert_eq!(r.header(header::CONTENT_LENGTH), Some(body.len().to_string().as_str()), "{accept:?}");
    }
}

#[tokio::test]
async fn only_existing_siblings_are_used() {
    let f = fixture();
    let r = get(&f.assets, "/static/style.css", &[(header::ACCEPT_ENCODING, "br")]).await;
    assert_eq!(r.body, &b"body { color: red }\n"[..]);
    assert_eq!(r.header(header::CONTENT_ENCODING), None);
    assert_eq!(r.header(header::VARY), Some("Accept-Encoding"), "a sibling exists, so the reply varies");
    let r = get(&f.assets, "/static/style.css", &[(header::ACCEPT_ENCODING, "br, gzip")]).await;
    assert_eq!(r.body, &b"GZ-STYLE"[..]);
    assert_eq!(r.header(header::CONTENT_ENCODING), Some("gzip"));
    assert_eq!(r.header(header::CONTENT_TYPE), Some("text/css; charset=utf-8"));
    let r = get(&f.assets, "/static/hello.txt", &[(header::ACCEPT_ENCODING, "br, gzip")]).await;
    assert_eq!(r.header(header::VARY), None);
}

#[tokio::test]
async fn a_sibling_leading_out_of_the_root_is_ignored() {
    let f = fixture();
    let r = get(&f.assets, "/static/trick.js", &[(header::ACCEPT_ENCODING, "br")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, &b"trick plain"[..]);
    assert_eq!(r.header(header::CONTENT_ENCODING), None);
    assert_eq!(r.header(header::VARY), None);
}

#[tokio::test]
async fn variants_have_their_own_etag() {
    let f = fixture();
    let plain = etag_of(&f.assets, "/static/app.js", &[]).await;
    let br = etag_of(&f.assets, "/static/app.js", &[(header::ACCEPT_ENCODING, "br")]).await;
    let gz = etag_of(&f.assets, "/static/app.js", &[(header::ACCEPT_ENCODING, "gzip")]).await;
    assert!(plain != br && br != gz && plain != gz);
    let r = get(&f.assets, "/static/app.js", &[(header::ACCEPT_ENCODING, "br"), (header::IF_NONE_MATCH, &br)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.header(header::VARY), Some("Accept-Encoding"));
    let r = get(&f.assets, "/static/app.js", &[(header::IF_NONE_MATCH, &br)]).await;
    assert_eq!(r.status, StatusCode::OK, "a brotli ETag does not validate the plain file");
}

#[tokio::test]
async fn ranges_do_not_apply_to_variants() {
    let f = fixture();
    let r = get(&f.assets, "/static/app.js", &[(header::ACCEPT_ENCODING, "gzip"), (header::RANGE, "bytes=0-1")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, &b"GZ-BYTES-LONGER"[..]);
    assert_eq!(r.header(header::CONTENT_RANGE), None);
    let r = get(&f.assets, "/static/app.js", &[(header::ACCEPT_ENCODING, "gzip"), (header::RANGE, "bytes=500-")]).await;
    assert_eq!(r.status, StatusCode::OK, "not even a 416");
    let r = get(&f.assets, "/static/app.js", &[(header::RANGE, "bytes=0-6")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &b"console"[..]);
}

// --- caching ---------------------------------------------------------------------------

#[tokio::test]
async fn hashed_names_are_immutable_and_the_rest_revalidates() {
    let f = fixture();
    for path in ["/static/assets/index-BxYz12Ab.js", "/static/main.3f2a9c1d.css", "/static/chunk-4KQ2ZJ7M.mjs"] {
        let r = get(&f.assets, path, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header(header::CACHE_CONTROL), Some("public, max-age=31536000, immutable"), "{path}");
    }
    for path in ["/static/index.html", "/static/", "/static/app.js", "/static/hello.txt"] {
        let r = get(&f.assets, path, &[]).await;
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-cache"), "{path}");
    }
}

// --- SPA fallback -------------------------------------------------------------------------

#[tokio::test]
async fn client_routes_get_the_fallback() {
    let f = fixture();
    for path in ["/dashboard", "/users/42/", "/users/john.smith", "/docs/v1.2", "/deep/client/route"] {
        let r = get(&f.spa, path, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body, INDEX, "{path}");
        assert_eq!(r.header(header::CONTENT_TYPE), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-cache"), "{path}");
        assert!(r.header(header::ETAG).is_some(), "{path}");
    }
    let etag = etag_of(&f.spa, "/dashboard", &[]).await;
    let r = get(&f.spa, "/settings", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn missing_assets_are_404_even_with_a_fallback() {
    let f = fixture();
    for path in ["/assets/missing.js", "/missing.css", "/logo.png", "/page.html", "/assets/index-XXXXXXX1.js"] {
        assert_eq!(get(&f.spa, path, &[]).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn real_files_win_over_the_fallback() {
    let f = fixture();
    assert_eq!(get(&f.spa, "/hello.txt", &[]).await.body, HELLO);
    assert_eq!(get(&f.spa, "/docs/", &[]).await.body, &b"docs index"[..]);
    let r = get(&f.spa, "/assets/index-BxYz12Ab.js", &[]).await;
    assert_eq!(r.header(header::CACHE_CONTROL), Some("public, max-age=31536000, immutable"));
}

#[tokio::test]
async fn no_fallback_means_404() {
    let f = fixture();
    assert_eq!(get(&f.assets, "/static/dashboard", &[]).await.status, StatusCode::NOT_FOUND);
}

// --- no way out ------------------------------------------------------------------------------

fn assert_no_secret(r: &Reply, what: &str) {
    assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET), "{what} leaked the secret");
    assert!(!r.body.windows(8).any(|w| w == b"SECRET=1"), "{what} leaked .env");
}

#[tokio::test]
async fn textual_escapes_are_400() {
    let f = fixture();
    for (mount, prefix) in [(&f.assets, "/static"), (&f.spa, "")] {
        for rest in [
            "/../outside/secret.txt",
            "/docs/../../outside/secret.txt",
            "/..",
            "/./hello.txt",
            "/docs/.",
            "/..\\outside\\secret.txt",
            "/docs\\..\\..\\outside\\secret.txt",
            "/hello.txt\0",
            "/hello\0.txt",
            "/hello.txt\n",
        ] {
            let path = format!("{prefix}{rest}");
            for method in [Method::GET, Method::HEAD] {
                let r = request(mount, method.clone(), &path, &[]).await;
                assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method} {path:?}");
                assert_no_secret(&r, &path);
            }
        }
    }
}

#[tokio::test]
async fn encoded_dots_are_literal_names() {
    let f = fixture();
    for path in [
        "/static/%2e%2e/outside/secret.txt",
        "/static/%2E%2E/%2e%2e/outside/secret.txt",
        "/static/%2e%2e%2foutside%2fsecret.txt",
        "/static/..%2foutside%2fsecret.txt",
        "/static/%252e%252e/outside/secret.txt",
        "/static/..%5coutside%5csecret.txt",
    ] {
        let r = get(&f.assets, path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_no_secret(&r, path);
    }
    let r = get(&f.spa, "/%2e%2e/outside/secret.txt", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn symlinks_leading_out_are_absent() {
    let f = fixture();
    for path in ["/static/leak.txt", "/static/abs-leak", "/static/out/secret.txt", "/static/out/", "/static/out"] {
        for method in [Method::GET, Method::HEAD] {
            let r = request(&f.assets, method.clone(), path, &[(header::RANGE, "bytes=0-3")]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_no_secret(&r, path);
        }
    }
    // With a fallback they look like any other absent path: the SPA for a
    // client route, 404 for an asset name; never the target.
    let r = get(&f.spa, "/abs-leak", &[]).await;
    assert_eq!(r.body, INDEX);
    let r = get(&f.spa, "/out/secret.txt", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_no_secret(&r, "/out/secret.txt");
}

#[tokio::test]
async fn symlinks_inside_the_root_are_followed() {
    let f = fixture();
    let r = get(&f.assets, "/static/alias.txt", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, HELLO);
    assert_eq!(r.header(header::CONTENT_TYPE), Some("text/plain; charset=utf-8"));
}

#[tokio::test]
async fn absolute_paths_and_doubled_slashes_stay_inside() {
    let f = fixture();
    let secret = f.outside.join("secret.txt");
    for path in [
        format!("/static/{}", secret.display()),
        format!("/static//{}", secret.display()),
        "//etc/passwd".into(),
        "/static//etc/passwd".into(),
    ] {
        let r = get(&f.assets, &path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_no_secret(&r, &path);
    }
    assert_eq!(get(&f.assets, "/static//hello.txt", &[]).await.body, HELLO);
}

#[tokio::test]
async fn hidden_files_are_absent_except_well_known() {
    let f = fixture();
    for path in ["/static/.env", "/static/.git/config", "/static/.git/", "/static/visible-to-hidden.txt"] {
        let r = get(&f.assets, path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_no_secret(&r, path);
    }
    let r = get(&f.spa, "/.env", &[]).await;
    assert_eq!(r.body, INDEX, "absent like any other client route");
    let r = get(&f.assets, "/static/.well-known/security.txt", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, &b"Contact: mailto:sec@example.com\n"[..]);
}

// --- construction --------------------------------------------------------------------------

#[test]
fn new_checks_root_and_fallback() {
    let f = fixture();
    let mount = |root: &Path, fallback: Option<&str>| {
        Mount::new(
            "m",
            &StaticMount { root: root.to_owned(), fallback: fallback.map(str::to_owned), strip_prefix: None },
        )
    };
    assert_eq!(mount(&f.root, Some("index.html")).unwrap().name(), "m");
    assert_eq!(f.spa.name(), "spa");
    assert!(mount(&f.root.join("missing"), None).is_err());
    assert!(mount(&f.root.join("hello.txt"), None).is_err(), "root is a file");
    let secret = f.outside.join("secret.txt");
    for fallback in ["missing.html", "docs", "../outside/secret.txt", "leak.txt", ".env", secret.to_str().unwrap()] {
        let err = mount(&f.root, Some(fallback)).unwrap_err();
        assert!(err.to_string().contains("static mount `m`"), "{err}");
    }
    // A root reached through a symlink is canonicalized once and works.
    let link = f.root.parent().unwrap().join("root-link");
    symlink(&f.root, &link).unwrap();
    assert!(mount(&link, Some("index.html")).is_ok());
}

#[tokio::test]
async fn a_root_behind_a_symlink_serves_its_files() {
    let f = fixture();
    let link = f.root.parent().unwrap().join("root-link");
    symlink(&f.root, &link).unwrap();
    let m = Mount::new("m", &StaticMount { root: link, fallback: None, strip_prefix: None }).unwrap();
    assert_eq!(get(&m, "/hello.txt", &[]).await.body, HELLO);
    assert_eq!(get(&m, "/leak.txt", &[]).await.status, StatusCode::NOT_FOUND);
}
