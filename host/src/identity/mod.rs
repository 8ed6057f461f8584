//! The Django user behind a request: the session cookie's value, resolved through the
//! companion app's identity endpoint on Django (never from anything the client
//! claims), cached per cookie value (`cache`), and forgotten at once when a Django
//! response through the gateway sets or deletes that cookie (login, logout), or when
//! another gateway sharing Redis saw that happen (`peers`). Used by dispatch for
//! routers that need the user, and by the event bridge.

pub mod browsers;
mod cache;
mod keys;
pub mod written;

use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Uri};
use http_body_util::BodyExt;

pub use cache::{IdentityCache, IdentityError, IdentitySource, Origin};
pub use keys::{Key, Keys};

use crate::body;
use crate::config::{BridgeConfig, IdentityFailure, RedisConfig};
use crate::limits;
use crate::metrics::Metrics;
use crate::peers::{Change, Link, Listener};
use crate::policy::{Identity, Resolved};
use crate::upstream::headers::{latin1, IDENTITY_SECRET, X_FORWARDED_PROTO};
use crate::upstream::Pool;

pub struct Identities {
    cache: IdentityCache<DjangoIdentity>,
    on_error: IdentityFailure,
    session_cookie: String,
    /// What sessions and browsers are found by: the cookies' values, or with `[redis]`
    /// their digests, which is what the other gateways are told.
    keys: Keys,
    /// The open bridged pages of each browser, told when its session changes.
    pub browsers: Arc<browsers::Browsers>,
    /// The other gateways (`[redis]`).
    peers: Option<Link>,
    /// `bridge.identity_secret`, which opens Django's word that it wrote a session (`written`).
    secret: Box<[u8]>,
}

impl Identities {
    /// From the `[bridge]` section's identity settings; `upstream` is the pool of
    /// `bridge.identity_upstream`. With `redis`, the link to the other gateways is
    /// started (`peers`).
    pub fn new(
        config: &BridgeConfig,
        redis: Option<&RedisConfig>,
        upstream: Arc<Pool>,
        metrics: Arc<Metrics>,
    ) -> Arc<Identities> {
        let secret = config.identity_secret.expose();
        let keys = match redis {
            Some(_) => Keys::digested(secret),
            None => Keys::plain(),
        };
        let source = DjangoIdentity {
            upstream,
            uri: Uri::try_from(config.identity_path.as_str()).expect("validated path"),
            secret: HeaderValue::from_bytes(config.identity_secret.expose()).ok(),
            cookie_name: config.session_cookie.clone(),
            timeout: config.identity_timeout,
        };
        let cache = IdentityCache::new(source, config.identity_ttl, limits::IDENTITY_CACHE_ENTRIES).keyed(keys.clone());
        let browsers = Arc::new(browsers::Browsers::new(&config.browser_cookie, keys.clone()));
        Arc::new_cyclic(|me: &Weak<Identities>| {
            let listener: Weak<dyn Listener> = me.clone();
            let peers = redis.map(|redis| Link::start(redis, secret, listener, metrics.redis()));
            Identities {
                cache: cache.measured(metrics),
                on_error: config.on_identity_error,
                session_cookie: config.session_cookie.clone(),
                keys,
                browsers,
                peers,
                secret: secret.into(),
            }
        })
    }

    /// The session cookie's value in a request's Cookie headers.
    pub fn session_cookie(&self, headers: &HeaderMap) -> Option<String> {
        cookie_value(headers, &self.session_cookie)
    }

    /// The user of `cookie` now. When Django cannot say, `on_identity_error` decides:
    /// anonymous, or `None`: refuse without asking any policy.
    pub async fn resolve(&self, cookie: Option<&str>, origin: &Origin) -> Option<Arc<Resolved>> {
        match self.cache.get(cookie, origin).await {
            Ok(who) => Some(who),
            Err(e) => {
                tracing::warn!(target: "isthmus::identity", error = %e, mode = ?self.on_error, "identity unavailable");
                match self.on_error {
                    IdentityFailure::Anonymous => Some(Resolved::anonymous()),
                    IdentityFailure::Deny => None,
                }
            }
        }
    }

    /// A response to a request of `browser` carrying session `old` passed through: when
    /// it sets or deletes the session cookie, the cached identity of `old` is dropped and
    /// the browser's open pages are told (see `browsers`), here and on the other gateways.
    pub fn observe_response(&self, browser: Option<&str>, old: Option<&str>, response_headers: &HeaderMap) {
        let Some(deleted) = browsers::touches_cookie(response_headers, &self.session_cookie) else { return };
        let (browser, old) = (browser.map(|b| self.keys.of(b)), old.map(|o| self.keys.of(o)));
        if let Some(peers) = &self.peers {
            // A request with neither cookie names nothing another gateway holds.
            if browser.is_some() || old.is_some() {
                let (session, browser) = (old.as_ref().and_then(Key::digest), browser.as_ref().and_then(Key::digest));
                peers.tell(Change { session, browser, deleted });
            }
        }
        let asked = self.session_changed(browser.as_ref(), old.as_ref(), deleted);
        tracing::debug!(target: "isthmus::identity", deleted, pages = asked, "session cookie changed");
    }

    /// A response that says Django wrote a session (a Reflex handler's `update_session`,
    /// `written`): as for a session cookie Django set, that session's cached identity is
    /// dropped and its pages told, here and on the other gateways, so the next event sees
    /// the new values. The header is taken out of the response either way.
    pub fn observe_written(&self, response_headers: &mut HeaderMap) {
        let Some(sealed) = response_headers.remove(&written::SESSION_WRITTEN) else { return };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let Some(session) = sealed.to_str().ok().and_then(|v| written::open(&self.secret, v, now)) else {
            tracing::debug!(target: "isthmus::identity", "a session-written header that does not open; ignored");
            return;
        };
        let old = self.keys.of(&session);
        if let Some(peers) = &self.peers {
            peers.tell(Change { session: old.digest(), browser: None, deleted: false });
        }
        let asked = self.session_changed(None, Some(&old), false);
        tracing::debug!(target: "isthmus::identity", pages = asked, "session written through Django");
    }

    /// Drop `old`'s cached identity and tell the pages concerned; how many were asked.
    fn session_changed(&self, browser: Option<&Key>, old: Option<&Key>, deleted: bool) -> usize {
        if let Some(old) = old {
            self.cache.invalidate(old);
        }
        self.browsers.session_changed(browser, old, deleted)
    }

    /// Close the link to the other gateways (shutdown).
    pub fn shutdown(&self) {
        if let Some(peers) = &self.peers {
            peers.shutdown();
        }
    }
}

/// Another gateway saw a login or logout: the same as one seen here. Safe whoever sent
/// it: a page only ever re-reads the session its own browser holds (`browsers`), so the
/// worst a forged message could do is have identities fetched again and pages asked to
/// re-read, and the messages are signed (`peers`).
impl Listener for Identities {
    fn heard(&self, change: &Change) {
        let (browser, old) = (change.browser.map(Key::Digest), change.session.map(Key::Digest));
        let asked = self.session_changed(browser.as_ref(), old.as_ref(), change.deleted);
        tracing::debug!(target: "isthmus::identity", deleted = change.deleted, pages = asked, "session cookie changed on another gateway");
    }
}

/// The value of cookie `name` in Cookie headers, as Django reads it (see `cookie_in`);
/// values are latin-1, as ASGI servers decode them, so no header is skipped.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_in(headers.get_all(header::COOKIE).iter().map(latin1), name)
}

/// The value of cookie `name` in these Cookie header values, exactly as Django's
/// `parse_cookie` reads it (the session cookie's value is what the identity cache is
/// keyed on, and it must be the session Django's views see): split on `;`, then on the
/// first `=`; both sides stripped of Python's whitespace; the last duplicate wins; the
/// value unquoted as `http.cookies` does. An empty value is none.
pub fn cookie_in(values: impl Iterator<Item = impl AsRef<str>>, name: &str) -> Option<String> {
    let mut found = None;
    for value in values {
        for chunk in value.as_ref().split(';') {
            let (key, value) = chunk.split_once('=').unwrap_or(("", chunk));
            if py_strip(key) == name {
                found = Some(py_unquote(py_strip(value)));
            }
        }
    }
    found.filter(|v| !v.is_empty())
}

/// Python's `str.strip()`: `str.isspace` characters at both ends (latin-1 text holds no
/// others than these, Rust's whitespace and the four separators U+001C..U+001F).
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// `http.cookies._unquote`: a value in double quotes loses them, and its `\ooo` octal
/// and `\c` escapes are decoded.
fn py_unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest = chars.clone().take(3).collect::<Vec<char>>();
        let octal =
            rest.len() == 3 && ('0'..='3').contains(&rest[0]) && rest[1..].iter().all(|d| ('0'..='7').contains(d));
        if octal {
            let code = rest.iter().fold(0u32, |n, d| n * 8 + d.to_digit(8).expect("octal digit"));
            out.push(char::from_u32(code).expect("below 256"));
            chars.nth(2);
        } else {
            // Python's `.` matches anything but a newline; a lone backslash stays.
            match chars.next_if(|&n| n != '\n') {
                Some(escaped) => out.push(escaped),
                None => out.push('\\'),
            }
        }
    }
    out
}

/// `http.cookies._quote`, which Django's `parse_cookie` undoes: `value` as it must be
/// written in a Cookie header for Django to read exactly `value`.
fn py_quote(value: &str) -> String {
    const LEGAL: &str = "!#$%&'*+-.^_`|~:";
    const UNESCAPED: &str = " ()/<=>?@[]{}";
    let legal = |c: char| c.is_ascii_alphanumeric() || LEGAL.contains(c);
    if !value.is_empty() && value.chars().all(legal) {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if legal(c) || UNESCAPED.contains(c) => out.push(c),
            c => {
                let _ = write!(out, "\\{:03o}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// The companion Django app's identity endpoint.
struct DjangoIdentity {
    upstream: Arc<Pool>,
    /// Origin-form: the path and query.
    uri: Uri,
    secret: Option<HeaderValue>,
    cookie_name: String,
    timeout: Duration,
}

impl IdentitySource for DjangoIdentity {
    async fn fetch(&self, session_cookie: &str, origin: &Origin) -> Result<Identity, IdentityError> {
        let cookie = HeaderValue::from_str(&format!("{}={}", self.cookie_name, py_quote(session_cookie)))
            .map_err(|e| IdentityError::Malformed(e.to_string()))?;
        let mut req =
            Request::get(self.uri.clone()).header(header::COOKIE, cookie).body(body::empty()).expect("valid request");
        for (name, value) in [(header::HOST, &origin.host), (X_FORWARDED_PROTO.clone(), &origin.scheme)] {
            if let Ok(value) = HeaderValue::from_str(value) {
                if !value.is_empty() {
                    req.headers_mut().insert(name, value);
                }
            }
        }
        if let Some(secret) = &self.secret {
            req.headers_mut().insert(IDENTITY_SECRET.clone(), secret.clone());
        }
        let fetch = async {
            let res = self.upstream.send(req, None).await.map_err(|e| IdentityError::Unreachable(e.to_string()))?;
            if !res.status().is_success() {
                return Err(IdentityError::Status(res.status().as_u16()));
            }
            let body: Bytes = http_body_util::Limited::new(res.into_body(), limits::IDENTITY_MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| IdentityError::Unreachable(e.to_string()))?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| IdentityError::Malformed(e.to_string()))
        };
        tokio::time::timeout(self.timeout, fetch).await.map_err(|_| IdentityError::Timeout(self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_are_found_among_others_and_the_last_duplicate_wins() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "csrftoken=x; sessionid=abc123; theme=dark".parse().unwrap());
        assert_eq!(cookie_value(&h, "sessionid").as_deref(), Some("abc123"));
        assert_eq!(cookie_value(&h, "session"), None);
        h.append(header::COOKIE, "other=1; sessionid=\"def\"".parse().unwrap());
        assert_eq!(cookie_value(&h, "other").as_deref(), Some("1"));
        assert_eq!(cookie_value(&h, "sessionid").as_deref(), Some("def"), "Django reads the last of duplicates");
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, "sessionid=".parse().unwrap());
        assert_eq!(cookie_value(&empty, "sessionid"), None);
    }

    /// Each expectation is what `django.http.cookie.parse_cookie(header).get("sessionid")`
    /// returns (Django 5.2, Python 3.11), checked by hand in that interpreter.
    #[test]
    fn cookies_are_read_exactly_as_django_parses_them() {
        let read = |header: &str| cookie_in(std::iter::once(header), "sessionid");
        let cases: [(&str, Option<&str>); 15] = [
            ("sessionid=abc", Some("abc")),
            ("sessionid=first; sessionid=last", Some("last")),
            ("sessionid=kept; sessionid=", None),
            ("sessionid =spaced", Some("spaced")),
            ("  sessionid\t=\t padded  ", Some("padded")),
            ("sessionid=\"quoted\"", Some("quoted")),
            ("sessionid=\"\"doubled\"\"", Some("\"doubled\"")),
            ("sessionid=\"a\\\"b\\\\c\"", Some("a\"b\\c")),
            ("sessionid=\"\\073\\101\"", Some(";A")),
            ("sessionid=\"\\400\"", Some("400")),
            ("sessionid=\"", Some("\"")),
            ("sessionid=a=b", Some("a=b")),
            ("sessionidx=1; xsessionid=2", None),
            ("sessionid", None),
            ("a=1;;sessionid=\u{a0}nbsp\u{a0}", Some("nbsp")),
        ];
        for (header, django) in cases {
            assert_eq!(read(header).as_deref(), django, "{header}");
        }
        // Fields of their own (HTTP/1.1 clients may send several): joined as Django's
        // ASGI handler joins them, so the last field's copy wins.
        assert_eq!(cookie_in(["sessionid=one", "sessionid=two"].into_iter(), "sessionid").as_deref(), Some("two"));
    }

    #[test]
    fn a_cookie_header_that_is_not_ascii_is_read_as_latin_1_as_django_reads_it() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_bytes(b"theme=\xe9t\xe9; sessionid=abc").unwrap());
        assert_eq!(cookie_value(&h, "sessionid").as_deref(), Some("abc"));
        assert_eq!(cookie_value(&h, "theme").as_deref(), Some("\u{e9}t\u{e9}"));
    }

    #[test]
    fn the_value_sent_to_django_reads_back_as_the_same_value() {
        for value in
            ["abc123", "a b", "semi;colon", "quo\"te", "back\\slash", "\u{e9}", " lead", "tab\there", "=", "\u{7f}"]
        {
            let header = format!("sessionid={}", py_quote(value));
            assert!(header.is_ascii(), "{header}");
            assert_eq!(cookie_in(std::iter::once(header.as_str()), "sessionid").as_deref(), Some(value), "{header}");
        }
        assert_eq!(py_quote("abc123"), "abc123", "legal values are sent as they are");
    }
}
