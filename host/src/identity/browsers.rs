//! Which open bridged pages belong to one browser, so that a login or logout through
//! the gateway reaches every open page of that browser.
//!
//! The gateway gives each browser a random id in its own cookie (HttpOnly,
//! SameSite=Lax, `__Host-` prefixed and Secure over https). The id only says which
//! pages to *ask*: when a response changes the session cookie, each open page of the
//! browser (and each page holding the old session value) is asked to re-read its
//! browser's session by a same-origin request to the rebind path, carrying a token only
//! that page's WebSocket was told. The session a page uses from then on is the cookie
//! that request carries: what the browser really holds, never what a cookie copied
//! from another browser or anything else the client sends claims. The one change made
//! without asking is the safe one: a deleted session is dropped at once from the pages
//! that held it.
//!
//! Pages are found by their cookies' keys (`keys`): with `[redis]`, digests, so that a
//! change another gateway saw (`peers`) finds the pages here the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cookie::time::OffsetDateTime;
use http::header::{self, HeaderValue};
use http::HeaderMap;
use tokio::sync::mpsc;

use super::cookie_value;
use super::keys::{Key, Keys};
use crate::limits::{BROWSER_CONTROL_QUEUE, BROWSER_REBIND_RETRY};

/// What the gateway tells one open page's relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The browser's session cookie changed: ask the page to re-read it. `drop_session`:
    /// the page's session was deleted; stop using it now.
    Rebind { drop_session: bool },
    /// The page re-read its browser's session cookie: use this one.
    Rebound(Option<String>),
    /// Run this script in the page (a login redirect for a refused upload).
    Script(String),
}

pub struct Browsers {
    /// The cookie's name over http; over https it is `__Host-` + this.
    cookie: String,
    /// What pages' browser ids and sessions are found by.
    keys: Keys,
    pages: Mutex<Pages>,
}

#[derive(Default)]
struct Pages {
    next: u64,
    open: HashMap<u64, Page>,
}

struct Page {
    browser: Option<Key>,
    session: Option<Key>,
    rebind_token: String,
    reflex_token: Option<String>,
    control: mpsc::Sender<Control>,
    /// When the page was last asked to re-read its session, until it does: a flood of
    /// changes asks it once (again only after `BROWSER_REBIND_RETRY`).
    asked: Option<Instant>,
}

/// An open page, registered until dropped.
pub struct Registration {
    id: u64,
    browsers: Arc<Browsers>,
    /// The token the page presents to the rebind path.
    pub rebind_token: String,
    pub control: mpsc::Receiver<Control>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.browsers.lock().open.remove(&self.id);
    }
}

impl Browsers {
    pub fn new(cookie: &str, keys: Keys) -> Browsers {
        Browsers { cookie: cookie.to_owned(), keys, pages: Mutex::new(Pages::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pages> {
        self.pages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cookie_name(&self, scheme: &str) -> String {
        if scheme == "https" {
            format!("__Host-{}", self.cookie)
        } else {
            self.cookie.clone()
        }
    }

    /// The browser id a request carries, if well formed (anything else is ignored, as
    /// if absent).
    pub fn id_of(&self, headers: &HeaderMap, scheme: &str) -> Option<String> {
        cookie_value(headers, &self.cookie_name(scheme)).filter(|id| is_id(id))
    }

    /// A new browser id and the Set-Cookie header that gives it to the browser. It
    /// lasts as long as the browser session: it is not worth keeping longer.
    pub fn new_id(&self, scheme: &str) -> (String, HeaderValue) {
        let id = random_token();
        let secure = if scheme == "https" { "; Secure" } else { "" };
        let value = format!("{}={id}; Path=/; HttpOnly; SameSite=Lax{secure}", self.cookie_name(scheme));
        (id, HeaderValue::from_str(&value).expect("a cookie of token characters"))
    }

    /// Register an open page of `browser` whose socket uses `session` (and whose Reflex
    /// client token is `reflex_token`).
    pub fn register(
        self: &Arc<Self>,
        browser: Option<String>,
        session: Option<String>,
        reflex_token: Option<String>,
    ) -> Registration {
        let (control, rx) = mpsc::channel(BROWSER_CONTROL_QUEUE);
        let rebind_token = random_token();
        let (browser, session) = (browser.map(|b| self.keys.of(&b)), session.map(|s| self.keys.of(&s)));
        let mut pages = self.lock();
        pages.next += 1;
        let id = pages.next;
        let page = Page { browser, session, rebind_token: rebind_token.clone(), reflex_token, control, asked: None };
        pages.open.insert(id, page);
        Registration { id, browsers: self.clone(), rebind_token, control: rx }
    }

    /// A response to a request of `browser` carrying session `old` (keys, as `keys`
    /// makes them) set or deleted the session cookie (`deleted`: it only deleted it).
    /// Every open page of that browser, and every page using `old`, is asked to re-read
    /// its session; pages using `old` drop it at once when it was deleted. Returns how
    /// many pages were asked.
    pub fn session_changed(&self, browser: Option<&Key>, old: Option<&Key>, deleted: bool) -> usize {
        let mut pages = self.lock();
        let mut asked = 0;
        for page in pages.open.values_mut() {
            let same_session = old.is_some() && page.session.as_ref() == old;
            if !same_session && (browser.is_none() || page.browser.as_ref() != browser) {
                continue;
            }
            let drop_session = same_session && deleted;
            if drop_session {
                page.session = None;
            } else if page.asked.is_some_and(|at| at.elapsed() < BROWSER_REBIND_RETRY) {
                continue; // it has yet to answer the last request, which reads the newest cookie
            }
            // A full queue already holds a rebind: the page re-reads once either way.
            if page.control.try_send(Control::Rebind { drop_session }).is_ok() {
                page.asked = Some(Instant::now());
                asked += 1;
            }
        }
        asked
    }

    /// The page holding `token` re-read its browser's session: `session` is the session
    /// cookie of that request. False when no open page holds the token.
    pub fn rebind(&self, token: &str, session: Option<String>) -> bool {
        let mut pages = self.lock();
        let Some(page) = pages.open.values_mut().find(|p| constant_time_eq(&p.rebind_token, token)) else {
            return false;
        };
        page.session = session.as_deref().map(|s| self.keys.of(s));
        page.asked = None;
        page.control.try_send(Control::Rebound(session)).is_ok()
    }

    /// Run `script` in the open page of Reflex client `reflex_token`, if there is one.
    pub fn run_in_page(&self, reflex_token: &str, script: String) {
        let pages = self.lock();
        if let Some(page) = pages.open.values().find(|p| p.reflex_token.as_deref() == Some(reflex_token)) {
            let _ = page.control.try_send(Control::Script(script));
        }
    }
}

/// Whether `set_cookie` headers set (or delete) cookie `name`: `None` when they do not
/// touch it, `Some(true)` when every one of them deletes it (empty value or already
/// expired), `Some(false)` when one sets a value.
pub fn touches_cookie(headers: &HeaderMap, name: &str) -> Option<bool> {
    let mut touched = None;
    for value in headers.get_all(header::SET_COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        let Ok(cookie) = cookie::Cookie::parse(text) else { continue };
        if cookie.name() != name {
            continue;
        }
        let expired = cookie.max_age().is_some_and(|age| age.is_zero() || age.is_negative())
            || cookie.expires_datetime().is_some_and(|at| at <= OffsetDateTime::now_utc());
        let deletes = cookie.value().is_empty() || cookie.value() == "\"\"" || expired;
        touched = Some(touched.unwrap_or(true) && deletes);
    }
    touched
}

/// 128 random bits in hex: 32 characters.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(set_cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in set_cookies {
            h.append(header::SET_COOKIE, c.parse().unwrap());
        }
        h
    }

    #[test]
    fn set_cookie_headers_are_read_as_browsers_read_them() {
        assert_eq!(touches_cookie(&headers(&["csrftoken=x; Path=/"]), "sessionid"), None);
        assert_eq!(touches_cookie(&headers(&["sessionid=abc; HttpOnly; Path=/"]), "sessionid"), Some(false));
        assert_eq!(touches_cookie(&headers(&["sessionid=\"\"; Max-Age=0; Path=/"]), "sessionid"), Some(true));
        let django_logout = "sessionid=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax";
        assert_eq!(touches_cookie(&headers(&[django_logout]), "sessionid"), Some(true));
        assert_eq!(touches_cookie(&headers(&["sessionid=abc; Max-Age=0"]), "sessionid"), Some(true));
        // Several: deleted only if every one deletes.
        assert_eq!(touches_cookie(&headers(&[django_logout, "sessionid=new; Path=/"]), "sessionid"), Some(false));
        assert_eq!(touches_cookie(&headers(&["sessionidx=1", "xsessionid=2"]), "sessionid"), None);
    }

    #[test]
    fn browser_ids_are_fresh_well_formed_and_prefixed_over_https() {
        let b = Browsers::new("isthmus_browser", Keys::plain());
        let (id, cookie) = b.new_id("http");
        assert!(is_id(&id));
        assert_eq!(cookie.to_str().unwrap(), format!("isthmus_browser={id}; Path=/; HttpOnly; SameSite=Lax"));
        let (id2, cookie) = b.new_id("https");
        assert_ne!(id, id2);
        assert!(cookie.to_str().unwrap().starts_with("__Host-isthmus_browser="));
        assert!(cookie.to_str().unwrap().ends_with("; Secure"));

        let mut h = HeaderMap::new();
        h.append(header::COOKIE, format!("isthmus_browser={id}; __Host-isthmus_browser={id2}").parse().unwrap());
        assert_eq!(b.id_of(&h, "http"), Some(id));
        assert_eq!(b.id_of(&h, "https"), Some(id2), "over https only the __Host- cookie counts");
        let mut forged = HeaderMap::new();
        forged.append(header::COOKIE, "isthmus_browser=../../etc".parse().unwrap());
        assert_eq!(b.id_of(&forged, "http"), None);
    }

    #[tokio::test]
    async fn a_change_asks_the_browsers_pages_and_only_a_rebind_moves_a_session() {
        // Alone, pages are found by their values; with `[redis]`, by their digests.
        for keys in [Keys::plain(), Keys::digested(b"a site's identity secret, 32 chars or more")] {
            changes_ask_pages(keys).await;
        }
    }

    async fn changes_ask_pages(keys: Keys) {
        let key = |value: &str| keys.of(value);
        let b = Arc::new(Browsers::new("isthmus_browser", keys.clone()));
        let mut tab1 = b.register(Some("A".into()), Some("s1".into()), Some("t1".into()));
        let mut tab2 = b.register(Some("A".into()), None, None);
        let mut other = b.register(Some("B".into()), None, None);
        let mut stale = b.register(None, Some("s1".into()), None);

        // Logout of s1 in browser A: its pages are asked; those using s1 drop it now.
        assert_eq!(b.session_changed(Some(&key("A")), Some(&key("s1")), true), 3);
        assert_eq!(tab1.control.recv().await, Some(Control::Rebind { drop_session: true }));
        assert_eq!(tab2.control.recv().await, Some(Control::Rebind { drop_session: false }));
        assert_eq!(stale.control.recv().await, Some(Control::Rebind { drop_session: true }));
        assert!(other.control.try_recv().is_err(), "another browser is not asked");

        // Only the holder of the token moves, to the session its request carried.
        assert!(!b.rebind("not-a-token", Some("s2".into())));
        assert!(b.rebind(&tab2.rebind_token, Some("s2".into())));
        assert_eq!(tab2.control.recv().await, Some(Control::Rebound(Some("s2".into()))));
        assert!(tab1.control.try_recv().is_err());

        // Pages are found by their session value too, and forgotten when dropped.
        assert_eq!(b.session_changed(None, Some(&key("s2")), false), 1);
        assert_eq!(tab2.control.recv().await, Some(Control::Rebind { drop_session: false }));
        drop(tab2);
        assert_eq!(b.session_changed(None, Some(&key("s2")), false), 0);

        // A flood of changes asks a page once until it answers.
        for _ in 0..100 {
            b.session_changed(Some(&key("B")), None, false);
        }
        assert_eq!(other.control.recv().await, Some(Control::Rebind { drop_session: false }));
        assert!(other.control.try_recv().is_err(), "asked once");
        assert!(b.rebind(&other.rebind_token, None));
        assert_eq!(other.control.recv().await, Some(Control::Rebound(None)));
        assert_eq!(b.session_changed(Some(&key("B")), None, false), 1, "answered: asked again on the next change");

        b.run_in_page("t1", "alert(1)".into());
        assert_eq!(tab1.control.recv().await, Some(Control::Script("alert(1)".into())));
    }
}
