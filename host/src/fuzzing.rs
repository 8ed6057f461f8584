//! The oracles of the fuzz targets (`host/fuzz/`) and the property tests
//! (`tests/properties.rs`): each function takes one input, runs a parser on it and
//! panics when an invariant breaks. They live in the library, as linkerd's do, so
//! the checks are reviewed and built with the code they check, and so the fuzz
//! targets stay one line each. Not an API: hidden from the docs.

use std::path::Path;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::bridge::judge::ReflexEvent;
use crate::bridge::raw::push_json_string;
use crate::bridge::socketio::{self, Packet};
use crate::config::Config;
use crate::identity::{browsers, cookie_in};
use crate::request::canonical_path::canonicalize;
use crate::static_files::conditional::{entity_tags, Precondition, Validators};
use crate::static_files::range::{parse_value, ByteRange};

/// `canonicalize` is idempotent, and what it returns is absolute, has no dot segment,
/// no empty segment but a trailing one, no encoded slash or backslash, no backslash,
/// no control byte, and no escape of an unreserved character left encoded.
pub fn canonical_path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(path) = canonicalize(raw) else { return };
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        assert!(*seg != "." && *seg != "..", "dot segment in {path:?} from {raw:?}");
        assert!(!seg.is_empty() || i == segments.len() - 1, "empty segment in {path:?} from {raw:?}");
    }
    let upper = path.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C"), "encoded separator in {path:?} from {raw:?}");
    assert!(!path.contains('\\') && !path.bytes().any(|b| b < 0x20 || b == 0x7f), "{path:?} from {raw:?}");
    for escape in path.split('%').skip(1) {
        let hex = escape.get(..2).expect("escapes are whole");
        let byte = u8::from_str_radix(hex, 16).expect("escapes are hex");
        assert!(!(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)), "{path:?} keeps %{hex} encoded");
        assert_eq!(hex, hex.to_ascii_uppercase(), "escapes are upper-case in {path:?}");
    }
    assert_eq!(canonicalize(&path).as_deref(), Ok(path.as_str()), "not idempotent on {raw:?}");
}

/// A client frame that parses is encoded back (`encode_event` / `encode_connect`) to a
/// frame that parses to the same packet, and each argument is the JSON the frame held.
pub fn socketio(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match socketio::parse(text) {
        Ok(Packet::Event { namespace, ack, attachments, args }) => {
            let raw: Vec<&str> = args.iter().map(|a| a.get()).collect();
            let encoded = socketio::encode_event(namespace, ack, attachments, &raw);
            let Ok(Packet::Event { namespace: n2, ack: a2, attachments: at2, args: args2 }) = socketio::parse(&encoded)
            else {
                panic!("{text:?} encodes to {encoded:?}, which does not parse back");
            };
            let raw2: Vec<&str> = args2.iter().map(|a| a.get()).collect();
            assert_eq!((namespace, ack, attachments, &raw), (n2, a2, at2, &raw2), "{text:?} -> {encoded:?}");
            // serde_json reads the frame's array to the same values as the raw arguments.
            if let Some(array) = text.find('[').and_then(|i| serde_json::from_str::<Vec<Value>>(&text[i..]).ok()) {
                let values: Vec<Value> = raw.iter().map(|a| serde_json::from_str(a).expect("raw JSON")).collect();
                assert_eq!(array, values, "{text:?}");
            }
            let reply = socketio::server_event(namespace, &raw);
            assert!(socketio::parse(&reply).is_ok(), "{reply:?}");
        }
        Ok(Packet::Connect { namespace, auth }) => {
            let encoded = socketio::encode_connect(namespace, auth.map(RawValue::get));
            let Ok(Packet::Connect { namespace: n2, auth: auth2 }) = socketio::parse(&encoded) else {
                panic!("{text:?} encodes to {encoded:?}, which does not parse back");
            };
            assert_eq!((namespace, auth.map(RawValue::get)), (n2, auth2.map(RawValue::get)), "{encoded:?}");
            let error = socketio::connect_error(namespace, text);
            let prefix = if namespace == "/" { "44".len() } else { "44".len() + namespace.len() + ",".len() };
            let json = &error[prefix..];
            assert_eq!(serde_json::from_str::<Value>(json).expect("JSON")["message"], text, "{error:?}");
        }
        Ok(Packet::Relay) | Err(_) => {}
    }
}

/// The identity splice (`ReflexEvent::forwarded`: `router_data[field]` set, the trace
/// context replaced, all else as sent, written from raw slices) gives the same JSON as
/// doing it on a tree with serde_json, whose duplicate keys also end with the last one.
/// The input is the event text, then optionally a NUL and the tracestate to write.
pub fn splice(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (input, tracestate) = match text.split_once('\0') {
        Some((input, state)) => (input, Some(state)),
        None => (text, None),
    };
    let mut state_json = String::new();
    if let Some(state) = tracestate {
        push_json_string(&mut state_json, state);
        assert_eq!(serde_json::from_str::<String>(&state_json).ok().as_deref(), Some(state), "{state_json}");
    }
    splice_matches_serde_json(input, SPLICE_SIGNED, SPLICE_TRACEPARENT, tracestate);
}

/// What the fuzz target splices in: a signed value with escapes, as `Injector::sign` writes.
pub const SPLICE_SIGNED: &str = r#"{"payload":"{\"v\":1}","sig":"ab"}"#;
pub const SPLICE_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";

/// The splice of `input` (an event the bridge accepts, else nothing is checked) against
/// serde_json; the client's own `isthmus` copy and trace context never survive.
pub fn splice_matches_serde_json(input: &str, signed: &str, traceparent: &str, tracestate: Option<&str>) {
    const FIELD: &str = "isthmus";
    let Ok(raw) = serde_json::from_str::<&RawValue>(input) else { return };
    let Ok(event) = ReflexEvent::parse(raw) else { return };
    let out = event.forwarded(FIELD, signed, traceparent, tracestate);
    if let Err(e) = serde_json::from_str::<&RawValue>(&out) {
        panic!("not JSON ({e}): {out}\nfrom {input}");
    }
    // Numbers serde_json's tree cannot hold (1e400) are the only inputs it cannot judge.
    let Ok(mut expected) = serde_json::from_str::<Value>(input) else { return };
    let parsed: Value = serde_json::from_str(&out).expect("JSON whose numbers serde_json holds, as the input's");
    let object = expected.as_object_mut().expect("the bridge accepts objects only");
    let mut router_data = match object.remove("router_data") {
        Some(Value::Object(r)) => r,
        _ => serde_json::Map::new(),
    };
    router_data.insert(FIELD.into(), serde_json::from_str(signed).expect("signed value is JSON"));
    object.insert("router_data".into(), Value::Object(router_data));
    object.insert("traceparent".into(), Value::String(traceparent.into()));
    match tracestate {
        Some(state) => object.insert("tracestate".into(), Value::String(state.into())),
        None => object.remove("tracestate"),
    };
    assert_eq!(parsed, expected, "{input} with {tracestate:?}");
}

/// `Range` and the conditional headers on a file of some size with some validators.
/// Input: 8 bytes of size, 8 of modification time, then header lines `Name: value`.
/// Checks: a byte range lies inside the file (or is refused on a non-empty one); a
/// precondition only answers 304/412 when a header asking for it is there; our own
/// ETag in If-None-Match / If-Range is recognised; entity tags are quoted slices.
pub fn range_conditional(data: &[u8]) {
    let Some((size, rest)) = data.split_first_chunk::<8>() else { return };
    let Some((mtime, rest)) = rest.split_first_chunk::<8>() else { return };
    // Nanoseconds since the epoch, up to the year 2262 (HTTP dates end in 9999).
    let (size, mtime) = (u64::from_le_bytes(*size), Duration::from_nanos(u64::from_le_bytes(*mtime)));
    let validators = Validators::of(mtime, size, None);
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        headers.append(name, value);
    }
    for value in headers.get_all(http::header::RANGE).iter().filter_map(|v| v.to_str().ok()) {
        match parse_value(value, size) {
            ByteRange::Whole => {}
            ByteRange::Part { start, end } => assert!(start <= end && end < size, "{value:?} on {size}"),
            ByteRange::Unsatisfiable => assert!(size > 0, "{value:?} on an empty file"),
        }
    }
    for value in headers.values().filter_map(|v| v.to_str().ok()) {
        for tag in entity_tags(value).into_iter().flatten() {
            assert!(tag.quoted.len() >= 2 && tag.quoted.starts_with('"') && tag.quoted.ends_with('"'), "{value:?}");
            assert!(!tag.quoted[1..tag.quoted.len() - 1].contains('"'), "{value:?}");
        }
    }
    use http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE};
    match validators.evaluate(&headers) {
        Precondition::Proceed => {}
        Precondition::Failed => {
            assert!(headers.contains_key(IF_MATCH) || headers.contains_key(IF_UNMODIFIED_SINCE), "{headers:?}")
        }
        Precondition::NotModified => {
            assert!(headers.contains_key(IF_NONE_MATCH) || headers.contains_key(IF_MODIFIED_SINCE), "{headers:?}")
        }
    }
    validators.if_range_allows(&headers);
    // Our own validators, asked for, always match.
    let mut ours = HeaderMap::new();
    validators.write(&mut ours);
    let etag = ours.get(http::header::ETAG).expect("an ETag").clone();
    let last_modified = ours.get(http::header::LAST_MODIFIED).expect("a date").clone();
    let only = |name, value: &HeaderValue| HeaderMap::from_iter([(name, value.clone())]);
    assert_eq!(validators.evaluate(&only(IF_NONE_MATCH, &etag)), Precondition::NotModified);
    assert_eq!(validators.evaluate(&only(IF_MODIFIED_SINCE, &last_modified)), Precondition::NotModified);
    assert_eq!(validators.evaluate(&only(IF_MATCH, &etag)), Precondition::Proceed);
    assert!(
        validators.if_range_allows(&only(IF_RANGE, &etag))
            && validators.if_range_allows(&only(IF_RANGE, &last_modified))
    );
}

/// The Cookie header reading: no panic, and it agrees with `reference_cookie` (Django's
/// `parse_cookie`).
/// Input: the cookie name, a NUL, then Cookie header values one a line; after a second
/// NUL, Set-Cookie values one a line for `browsers::touches_cookie`.
pub fn cookies(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\0');
    let (Some(name), Some(cookie_lines)) = (parts.next(), parts.next()) else { return };
    // Cookie names are tokens (RFC 6265 §4.1.1); the session cookie's name is one.
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) {
        return;
    }
    let values: Vec<&str> = cookie_lines.split('\n').filter(|v| HeaderValue::from_str(v).is_ok()).collect();
    let found = cookie_in(values.iter().copied(), name);
    assert_eq!(found, reference_cookie(&values, name), "{name:?} in {values:?}");
    let mut headers = HeaderMap::new();
    for line in parts.next().unwrap_or_default().split('\n') {
        if let Ok(value) = HeaderValue::from_str(line) {
            headers.append(SET_COOKIE, value);
        }
    }
    if browsers::touches_cookie(&headers, name).is_some() {
        let named = |v: &HeaderValue| {
            v.to_str().ok().and_then(|t| cookie::Cookie::parse(t).ok()).is_some_and(|c| c.name() == name)
        };
        assert!(headers.get_all(SET_COOKIE).iter().any(named), "{name:?} in {headers:?}");
    }
}

/// Django's `parse_cookie` for one name, written independently of `cookie_in` and the way
/// CPython writes it: the fields joined with `; ` (Django's ASGI handler), split on `;`,
/// then on the first `=`; name and value stripped; the last of duplicates wins; the value
/// unquoted by `http.cookies._unquote`; an empty value is none. (The inputs are visible
/// ASCII, so `str.strip()` is `trim()` here.) Fuzzing found `cookie_in` reading
/// `sessionid =a` and `sessionid= a` unlike Django; it reads them as Django does now.
pub fn reference_cookie(values: &[&str], name: &str) -> Option<String> {
    let joined = values.join("; ");
    let mut found = None;
    for chunk in joined.split(';') {
        let (key, value) = match chunk.find('=') {
            Some(at) => (&chunk[..at], &chunk[at + 1..]),
            None => ("", chunk),
        };
        if key.trim() == name {
            found = Some(value.trim());
        }
    }
    found.map(python_unquote).filter(|v| !v.is_empty())
}

/// `http.cookies._unquote`: `re.sub(r'\\(?:([0-3][0-7][0-7])|(.))', …)` over what is inside
/// the double quotes of a value that starts and ends with one (ASCII input).
fn python_unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() < 2 || bytes[0] != b'"' || bytes[bytes.len() - 1] != b'"' {
        return value.to_owned();
    }
    let inner = &bytes[1..bytes.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let octal = inner
            .get(i + 1..i + 4)
            .filter(|d| (b'0'..=b'3').contains(&d[0]) && d[1..].iter().all(|c| (b'0'..=b'7').contains(c)));
        match (inner[i], octal, inner.get(i + 1)) {
            (b'\\', Some(d), _) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b'\\', None, Some(&c)) if c != b'\n' => {
                out.push(c);
                i += 2;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Octal escapes above 0x7f are latin-1 characters, as in Python.
    out.iter().map(|&b| char::from(b)).collect()
}

/// `Config::parse` on any text: no panic, and a refused file names a key and a reason.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::parse(text, Path::new("/nonexistent/isthmus.toml")) {
        assert!(!e.key.is_empty() && !e.message.is_empty(), "{e:?}");
    }
}
