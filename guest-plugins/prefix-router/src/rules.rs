//! reflex-django's dispatch rules, free of any WebAssembly binding so that they can be
//! tested natively with `cargo test`.
//!
//! Rules, first match wins (matching is case-sensitive, on the canonical path):
//! 1. Reflex's reserved paths ([`RESERVED`]) → forward to `reflex_upstream`, for every
//!    method and for WebSocket upgrades alike.
//! 2. `static_prefix` → serve from `static_mount` when it is set, otherwise forward to
//!    `django_upstream` (Django serves its own `STATIC_URL`, as in reflex-django).
//! 3. `media_prefix` → serve from `media_mount` (Django's MEDIA_ROOT): both or neither.
//! 4. Each of `django_prefixes` → forward to `django_upstream`.
//! 5. Everything else → forward to `frontend_upstream` when it is set (dev mode), else
//!    serve from `spa_mount`, else (`spa_mount: null`) pass to the next router.
//!
//! Page guards (`pages`): a request that rule 5 would send to the single-page app (a
//! Reflex page's first load, before any of its code runs) is first judged by the first
//! entry of `pages` whose glob matches its path; a visitor who fails it is refused (302
//! to `login_url` with `?next=`, or 403), and the SPA is never served to them. Django's
//! and Reflex's own paths are not judged here: Django guards its views itself, and the
//! event bridge guards Reflex's handlers.
//!
//! A path is "under" a prefix `p` when it equals `p` or starts with `p + "/"`, so
//! `/administrator` is not under `/admin`.

use isthmus_policy::access::{kind, login_url, Pages, Who, DEFAULT_LOGIN_URL};
use isthmus_policy::Refusal;
use serde_json::{Map, Value};

/// Paths the Reflex backend answers itself; reflex-django always sends them to Reflex.
pub const RESERVED: [&str; 6] = isthmus_policy::REFLEX_PATHS;

/// Every key `init` accepts, in documentation order.
pub const KEYS: [&str; 12] = [
    "django_upstream",
    "reflex_upstream",
    "django_prefixes",
    "static_prefix",
    "static_mount",
    "media_prefix",
    "media_mount",
    "spa_mount",
    "frontend_upstream",
    "pages",
    "login_url",
    "raise_exception",
];

pub const DEFAULT_DJANGO_UPSTREAM: &str = "django";
pub const DEFAULT_REFLEX_UPSTREAM: &str = "reflex";
pub const DEFAULT_DJANGO_PREFIXES: [&str; 2] = ["/admin", "/api"];
pub const DEFAULT_STATIC_PREFIX: &str = "/static";
pub const DEFAULT_SPA_MOUNT: &str = "frontend";

/// Where a request goes; the component turns this into a WIT `decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Forward to the named upstream, path and query unchanged.
    Forward(&'a str),
    /// Serve the request path from the named static mount.
    ServeStatic(&'a str),
    /// No opinion: the next router decides.
    Pass,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub django_upstream: String,
    pub reflex_upstream: String,
    pub django_prefixes: Vec<String>,
    pub static_prefix: Option<String>,
    pub static_mount: Option<String>,
    /// MEDIA_URL without its trailing slash, served from `media_mount`.
    pub media_prefix: Option<String>,
    pub media_mount: Option<String>,
    pub spa_mount: Option<String>,
    pub frontend_upstream: Option<String>,
    /// Guards on the first load of the SPA's pages.
    pub pages: Pages,
    /// Where refused anonymous visitors are sent (`?next=` appended by the gateway).
    pub login_url: String,
    /// Refuse logged-in visitors who lack a requirement with 403 instead of sending them
    /// to `login_url` (Django's `raise_exception=True`).
    pub raise_exception: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            django_upstream: DEFAULT_DJANGO_UPSTREAM.into(),
            reflex_upstream: DEFAULT_REFLEX_UPSTREAM.into(),
            django_prefixes: DEFAULT_DJANGO_PREFIXES.iter().map(|p| p.to_string()).collect(),
            static_prefix: Some(DEFAULT_STATIC_PREFIX.into()),
            static_mount: None,
            media_prefix: None,
            media_mount: None,
            spa_mount: Some(DEFAULT_SPA_MOUNT.into()),
            frontend_upstream: None,
            pages: Pages::default(),
            login_url: DEFAULT_LOGIN_URL.into(),
            raise_exception: false,
        }
    }
}

/// True when `path` equals `prefix` or lies under `prefix + "/"`.
pub fn is_under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Prefix `p` overlaps reserved path `r` when either lies under the other.
pub fn overlaps(p: &str, r: &str) -> bool {
    is_under(p, r) || is_under(r, p)
}

impl Config {
    /// Parse and validate the JSON handed to `init`. Every error names the key.
    pub fn from_json(text: &str) -> Result<Config, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err(format!("config must be a JSON object, got {}", kind(&value)));
        };
        Config::from_map(&map)
    }

    fn from_map(map: &Map<String, Value>) -> Result<Config, String> {
        for key in map.keys() {
            if !KEYS.contains(&key.as_str()) {
                return Err(format!("unknown key `{key}` (known keys: {})", KEYS.join(", ")));
            }
        }
        let mut config = Config::default();
        if let Some(v) = map.get("django_upstream") {
            config.django_upstream = name(v, "django_upstream")?;
        }
        if let Some(v) = map.get("reflex_upstream") {
            config.reflex_upstream = name(v, "reflex_upstream")?;
        }
        if let Some(v) = map.get("django_prefixes") {
            let Value::Array(items) = v else {
                return Err(format!("django_prefixes: expected a list of strings, got {}", kind(v)));
            };
            config.django_prefixes.clear();
            for (i, item) in items.iter().enumerate() {
                let key = format!("django_prefixes[{i}]");
                let Value::String(p) = item else {
                    return Err(format!("{key}: expected a string, got {}", kind(item)));
                };
                check_prefix(&key, p)?;
                if config.django_prefixes.contains(p) {
                    return Err(format!("{key}: `{p}` is listed twice"));
                }
                config.django_prefixes.push(p.clone());
            }
        }
        if let Some(v) = map.get("static_prefix") {
            config.static_prefix = optional_string(v, "static_prefix")?;
        }
        if let Some(p) = &config.static_prefix {
            check_prefix("static_prefix", p)?;
            if config.django_prefixes.contains(p) {
                return Err(format!("static_prefix: `{p}` is also listed in django_prefixes"));
            }
        }
        if let Some(v) = map.get("static_mount") {
            config.static_mount = optional_name(v, "static_mount")?;
        }
        if let Some(v) = map.get("media_prefix") {
            config.media_prefix = optional_string(v, "media_prefix")?;
        }
        if let Some(v) = map.get("media_mount") {
            config.media_mount = optional_name(v, "media_mount")?;
        }
        match (&config.media_prefix, &config.media_mount) {
            (Some(p), Some(_)) => {
                check_prefix("media_prefix", p)?;
                if config.static_prefix.as_ref() == Some(p) || config.django_prefixes.contains(p) {
                    return Err(format!("media_prefix: `{p}` is also static_prefix or listed in django_prefixes"));
                }
            }
            (None, None) => {}
            (Some(_), None) => return Err("media_prefix: needs media_mount (the static mount of MEDIA_ROOT)".into()),
            (None, Some(_)) => return Err("media_mount: needs media_prefix (MEDIA_URL)".into()),
        }
        if let Some(v) = map.get("spa_mount") {
            config.spa_mount = optional_name(v, "spa_mount")?;
        }
        if let Some(v) = map.get("frontend_upstream") {
            config.frontend_upstream = optional_name(v, "frontend_upstream")?;
        }
        if let Some(v) = map.get("pages") {
            config.pages = Pages::from_value(v, "pages")?;
        }
        if let Some(v) = map.get("login_url") {
            config.login_url = login_url(v)?;
        }
        if let Some(v) = map.get("raise_exception") {
            let Value::Bool(b) = v else {
                return Err(format!("raise_exception: expected true or false, got {}", kind(v)));
            };
            config.raise_exception = *b;
        }
        Ok(config)
    }

    /// Where a request for the canonical `path` goes. The method does not matter:
    /// WebSocket upgrades follow the same rules as every other request.
    pub fn route(&self, path: &str) -> Target<'_> {
        if RESERVED.iter().any(|r| is_under(path, r)) {
            return Target::Forward(&self.reflex_upstream);
        }
        if let Some(prefix) = &self.static_prefix {
            if is_under(path, prefix) {
                return match &self.static_mount {
                    Some(mount) => Target::ServeStatic(mount),
                    None => Target::Forward(&self.django_upstream),
                };
            }
        }
        if let (Some(prefix), Some(mount)) = (&self.media_prefix, &self.media_mount) {
            if is_under(path, prefix) {
                return Target::ServeStatic(mount);
            }
        }
        if self.django_prefixes.iter().any(|p| is_under(path, p)) {
            return Target::Forward(&self.django_upstream);
        }
        if let Some(upstream) = &self.frontend_upstream {
            return Target::Forward(upstream);
        }
        match &self.spa_mount {
            Some(mount) => Target::ServeStatic(mount),
            None => Target::Pass,
        }
    }
}

impl Config {
    /// Whether a router with this config needs each request's Django user: only to
    /// judge page guards (a router without them costs no identity lookup).
    pub fn needs_identity(&self) -> bool {
        !self.pages.is_empty()
    }

    /// The refusal of a request for `path` that `route` sent to `target`, when `target`
    /// is the single-page app and a page guard refuses `who`.
    pub fn page_refusal(&self, target: Target<'_>, path: &str, who: &(impl Who + ?Sized)) -> Option<Refusal> {
        let spa = match target {
            Target::Forward(upstream) => self.frontend_upstream.as_deref() == Some(upstream),
            Target::ServeStatic(mount) => self.spa_mount.as_deref() == Some(mount),
            Target::Pass => false,
        };
        if !spa {
            return None;
        }
        let (_, require) = self.pages.select(path)?;
        require.refusal(who, &self.login_url, self.raise_exception)
    }
}

/// Checks a URL prefix: `/x` or `/x/y`, never `/`, never a trailing `/`, nothing that a
/// canonical path cannot contain, and no overlap with a reserved Reflex path.
fn check_prefix(key: &str, p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err(format!("{key}: must not be empty"));
    }
    if p == "/" {
        return Err(format!("{key}: `/` is not allowed: it would match every path"));
    }
    if !p.starts_with('/') {
        return Err(format!("{key}: `{p}` must start with `/`"));
    }
    if p.ends_with('/') {
        return Err(format!("{key}: `{p}` must not end with `/` (write `{}`)", p.trim_end_matches('/')));
    }
    if let Some(c) = p.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\')) {
        return Err(format!("{key}: `{}` must not contain {c:?}", p.escape_debug()));
    }
    for segment in p[1..].split('/') {
        if segment.is_empty() {
            return Err(format!("{key}: `{p}` must not contain an empty segment (`//`)"));
        }
        if segment == "." || segment == ".." {
            return Err(format!("{key}: `{p}` must not contain a `{segment}` segment"));
        }
    }
    if let Some(r) = RESERVED.iter().find(|r| overlaps(p, r)) {
        return Err(format!("{key}: `{p}` overlaps Reflex's reserved path `{r}` (reserved: {})", RESERVED.join(", ")));
    }
    Ok(())
}

/// An upstream or mount name: a non-empty string.
fn name(v: &Value, key: &str) -> Result<String, String> {
    match v {
        Value::String(s) if s.is_empty() => Err(format!("{key}: must not be empty")),
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("{key}: expected a string, got {}", kind(v))),
    }
}

fn optional_name(v: &Value, key: &str) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(_) => name(v, key).map(Some),
        _ => Err(format!("{key}: expected a string or null, got {}", kind(v))),
    }
}

fn optional_string(v: &Value, key: &str) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(format!("{key}: expected a string or null, got {}", kind(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Target::*;

    const FULL: &str = r#"{"django_upstream":"django","reflex_upstream":"reflex",
        "django_prefixes":["/admin","/api","/webhooks"],"static_prefix":"/static",
        "static_mount":"django_static","spa_mount":"frontend","frontend_upstream":null}"#;

    fn cfg(json: &str) -> Config {
        Config::from_json(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn err(json: &str) -> String {
        match Config::from_json(json) {
            Ok(c) => panic!("{json} was accepted: {c:?}"),
            Err(e) => e,
        }
    }

    fn assert_err(json: &str, needles: &[&str]) {
        let e = err(json);
        for n in needles {
            assert!(e.contains(n), "error for {json} is {e:?}, expected it to contain {n:?}");
        }
    }

    // ---- parsing and defaults ----

    #[test]
    fn empty_object_gives_defaults() {
        let c = cfg("{}");
        assert_eq!(c, Config::default());
        assert_eq!(c.django_upstream, "django");
        assert_eq!(c.reflex_upstream, "reflex");
        assert_eq!(c.django_prefixes, vec!["/admin", "/api"]);
        assert_eq!(c.static_prefix.as_deref(), Some("/static"));
        assert_eq!(c.static_mount, None);
        assert_eq!(c.spa_mount.as_deref(), Some("frontend"));
        assert_eq!(c.frontend_upstream, None);
    }

    #[test]
    fn full_example_parses() {
        let c = cfg(FULL);
        assert_eq!(c.django_prefixes, vec!["/admin", "/api", "/webhooks"]);
        assert_eq!(c.static_mount.as_deref(), Some("django_static"));
        assert_eq!(c.frontend_upstream, None);
    }

    #[test]
    fn every_key_is_read() {
        let c = cfg(r#"{"django_upstream":"dj","reflex_upstream":"rx","django_prefixes":["/x"],
            "static_prefix":"/assets","static_mount":"sm","media_prefix":"/media","media_mount":"mm",
            "spa_mount":"spa","frontend_upstream":"vite","pages":[{"page":"/o*","require":"staff"}],
            "login_url":"/accounts/login/","raise_exception":true}"#);
        assert_eq!(
            c,
            Config {
                django_upstream: "dj".into(),
                reflex_upstream: "rx".into(),
                django_prefixes: vec!["/x".into()],
                static_prefix: Some("/assets".into()),
                static_mount: Some("sm".into()),
                media_prefix: Some("/media".into()),
                media_mount: Some("mm".into()),
                spa_mount: Some("spa".into()),
                frontend_upstream: Some("vite".into()),
                pages: Pages::from_value(&serde_json::json!([{"page": "/o*", "require": "staff"}]), "pages").unwrap(),
                login_url: "/accounts/login/".into(),
                raise_exception: true,
            }
        );
    }

    #[test]
    fn media_prefix_is_served_from_its_mount_before_django() {
        let c =
            cfg(r#"{"django_prefixes":["/admin","/uploads"],"media_prefix":"/uploads/files","media_mount":"media"}"#);
        assert_eq!(c.route("/uploads/files/a.png"), ServeStatic("media"));
        assert_eq!(c.route("/uploads/other"), Forward("django"));
        assert_eq!(c.route("/uploads/filesx"), Forward("django"));
        assert_err(r#"{"media_prefix":"/media"}"#, &["media_prefix", "needs media_mount"]);
        assert_err(r#"{"media_mount":"media"}"#, &["media_mount", "needs media_prefix"]);
        assert_err(r#"{"media_prefix":"/static","media_mount":"m"}"#, &["media_prefix", "also static_prefix"]);
        assert_err(r#"{"media_prefix":"/_upload","media_mount":"m"}"#, &["media_prefix", "reserved"]);
    }

    #[test]
    fn empty_prefix_list_is_allowed() {
        let c = cfg(r#"{"django_prefixes":[]}"#);
        assert!(c.django_prefixes.is_empty());
        assert_eq!(c.route("/admin"), ServeStatic("frontend"));
    }

    #[test]
    fn nulls_disable_optional_rules() {
        let c = cfg(r#"{"static_prefix":null,"static_mount":null,"spa_mount":null,"frontend_upstream":null}"#);
        assert_eq!(c.static_prefix, None);
        assert_eq!(c.spa_mount, None);
        assert_eq!(c.route("/static/app.css"), Pass);
        assert_eq!(c.route("/"), Pass);
        assert_eq!(c.route("/admin"), Forward("django"));
    }

    #[test]
    fn multi_segment_prefix_is_allowed() {
        let c = cfg(r#"{"django_prefixes":["/api/v2"]}"#);
        assert_eq!(c.route("/api/v2"), Forward("django"));
        assert_eq!(c.route("/api/v2/users"), Forward("django"));
        assert_eq!(c.route("/api"), ServeStatic("frontend"));
        assert_eq!(c.route("/api/v3"), ServeStatic("frontend"));
    }

    #[test]
    fn nested_django_prefixes_are_not_duplicates() {
        let c = cfg(r#"{"django_prefixes":["/api","/api/v2"]}"#);
        assert_eq!(c.route("/api/v2/x"), Forward("django"));
    }

    // ---- rule 1: reserved Reflex paths ----

    #[test]
    fn reserved_paths_go_to_reflex() {
        let c = cfg(FULL);
        for r in RESERVED {
            assert_eq!(c.route(r), Forward("reflex"), "{r}");
            assert_eq!(c.route(&format!("{r}/")), Forward("reflex"), "{r}/");
            assert_eq!(c.route(&format!("{r}/deeper/path")), Forward("reflex"), "{r}/deeper/path");
        }
    }

    #[test]
    fn event_socket_path_goes_to_reflex() {
        let c = cfg(FULL);
        assert_eq!(c.route("/_event/"), Forward("reflex"));
        assert_eq!(c.route("/_event"), Forward("reflex"));
        assert_eq!(c.route("/_upload"), Forward("reflex"));
        assert_eq!(c.route("/ping"), Forward("reflex"));
    }

    #[test]
    fn reserved_names_only_match_whole_segments() {
        let c = cfg(FULL);
        for p in [
            "/_events",
            "/_event-x",
            "/pingpong",
            "/ping.txt",
            "/_healthz",
            "/_uploads",
            "/auth-codespaces",
            "/_all_routes2",
        ] {
            assert_eq!(c.route(p), ServeStatic("frontend"), "{p}");
        }
    }

    #[test]
    fn reserved_paths_are_matched_only_at_the_root() {
        let c = cfg(FULL);
        // A WebSocket to /api/_event belongs to Django, like any other /api path.
        assert_eq!(c.route("/api/_event"), Forward("django"));
        assert_eq!(c.route("/api/_event/"), Forward("django"));
        assert_eq!(c.route("/foo/ping"), ServeStatic("frontend"));
    }

    #[test]
    fn reserved_paths_win_over_frontend_upstream() {
        let c = cfg(r#"{"frontend_upstream":"vite"}"#);
        assert_eq!(c.route("/_event/"), Forward("reflex"));
        assert_eq!(c.route("/_health"), Forward("reflex"));
    }

    #[test]
    fn reserved_paths_use_the_configured_reflex_upstream() {
        let c = cfg(r#"{"reflex_upstream":"backend"}"#);
        assert_eq!(c.route("/_event/"), Forward("backend"));
    }

    // ---- rule 2: static prefix ----

    #[test]
    fn static_prefix_with_mount_is_served() {
        let c = cfg(FULL);
        assert_eq!(c.route("/static"), ServeStatic("django_static"));
        assert_eq!(c.route("/static/"), ServeStatic("django_static"));
        assert_eq!(c.route("/static/admin/css/base.css"), ServeStatic("django_static"));
        assert_eq!(c.route("/staticfiles/x"), ServeStatic("frontend"));
        assert_eq!(c.route("/Static/x"), ServeStatic("frontend"));
    }

    #[test]
    fn static_prefix_without_mount_goes_to_django() {
        let c = cfg("{}");
        assert_eq!(c.route("/static/admin/css/base.css"), Forward("django"));
        assert_eq!(c.route("/static"), Forward("django"));
        assert_eq!(c.route("/statics"), ServeStatic("frontend"));
    }

    #[test]
    fn static_prefix_is_configurable() {
        let c = cfg(r#"{"static_prefix":"/assets/dj","static_mount":"dj"}"#);
        assert_eq!(c.route("/assets/dj/x.js"), ServeStatic("dj"));
        assert_eq!(c.route("/assets/x.js"), ServeStatic("frontend"));
        assert_eq!(c.route("/static/x.js"), ServeStatic("frontend"));
    }

    #[test]
    fn static_prefix_wins_over_an_enclosing_django_prefix() {
        let c = cfg(r#"{"django_prefixes":["/admin"],"static_prefix":"/admin/static","static_mount":"s"}"#);
        assert_eq!(c.route("/admin/static/x.css"), ServeStatic("s"));
        assert_eq!(c.route("/admin/login/"), Forward("django"));
    }

    // ---- rule 3: Django prefixes ----

    #[test]
    fn django_prefixes_go_to_django() {
        let c = cfg(FULL);
        for p in [
            "/admin",
            "/admin/",
            "/admin/login/",
            "/api",
            "/api/",
            "/api/x",
            "/api/x/y?z",
            "/webhooks",
            "/webhooks/stripe",
        ] {
            assert_eq!(c.route(p), Forward("django"), "{p}");
        }
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let c = cfg(FULL);
        assert_eq!(c.route("/administrator"), ServeStatic("frontend"));
        assert_eq!(c.route("/admin2"), ServeStatic("frontend"));
        assert_eq!(c.route("/apis"), ServeStatic("frontend"));
        assert_eq!(c.route("/api-docs"), ServeStatic("frontend"));
        assert_eq!(c.route("/api.json"), ServeStatic("frontend"));
        assert_eq!(c.route("/webhook"), ServeStatic("frontend"));
    }

    #[test]
    fn matching_is_case_sensitive() {
        let c = cfg(FULL);
        assert_eq!(c.route("/Admin"), ServeStatic("frontend"));
        assert_eq!(c.route("/ADMIN/"), ServeStatic("frontend"));
        assert_eq!(c.route("/API/x"), ServeStatic("frontend"));
        assert_eq!(c.route("/_EVENT/"), ServeStatic("frontend"));
        assert_eq!(c.route("/Ping"), ServeStatic("frontend"));
        assert_eq!(c.route("/STATIC/x"), ServeStatic("frontend"));
        let upper = cfg(r#"{"django_prefixes":["/Admin"]}"#);
        assert_eq!(upper.route("/Admin/x"), Forward("django"));
        assert_eq!(upper.route("/admin/x"), ServeStatic("frontend"));
    }

    #[test]
    fn django_prefixes_use_the_configured_upstream() {
        let c = cfg(r#"{"django_upstream":"web","django_prefixes":["/admin"]}"#);
        assert_eq!(c.route("/admin/"), Forward("web"));
        assert_eq!(c.route("/static/x"), Forward("web"));
    }

    #[test]
    fn non_ascii_prefix_matches() {
        let c = cfg(r#"{"django_prefixes":["/café"]}"#);
        assert_eq!(c.route("/café/x"), Forward("django"));
        assert_eq!(c.route("/cafe/x"), ServeStatic("frontend"));
    }

    // ---- rule 4: the fallback ----

    #[test]
    fn everything_else_is_the_spa() {
        let c = cfg(FULL);
        for p in ["/", "/about", "/dashboard/42", "/_next/static/chunk.js", "/favicon.ico", "", "//admin"] {
            assert_eq!(c.route(p), ServeStatic("frontend"), "{p:?}");
        }
    }

    #[test]
    fn spa_mount_is_configurable() {
        let c = cfg(r#"{"spa_mount":"web"}"#);
        assert_eq!(c.route("/"), ServeStatic("web"));
    }

    #[test]
    fn frontend_upstream_replaces_the_spa_mount() {
        let c = cfg(r#"{"frontend_upstream":"vite","django_prefixes":["/admin"],"static_mount":"s"}"#);
        assert_eq!(c.route("/"), Forward("vite"));
        assert_eq!(c.route("/about"), Forward("vite"));
        assert_eq!(c.route("/_next/webpack-hmr"), Forward("vite"));
        assert_eq!(c.route("/admin/"), Forward("django"));
        assert_eq!(c.route("/static/x"), ServeStatic("s"));
        // Even with spa_mount explicitly set, dev mode wins.
        let both = cfg(r#"{"frontend_upstream":"vite","spa_mount":"web"}"#);
        assert_eq!(both.route("/"), Forward("vite"));
    }

    #[test]
    fn no_spa_mount_and_no_frontend_passes() {
        let c = cfg(r#"{"spa_mount":null}"#);
        assert_eq!(c.route("/"), Pass);
        assert_eq!(c.route("/api/x"), Forward("django"));
        assert_eq!(c.route("/_event/"), Forward("reflex"));
    }

    // ---- helpers ----

    #[test]
    fn is_under_and_overlaps() {
        assert!(is_under("/a", "/a"));
        assert!(is_under("/a/", "/a"));
        assert!(is_under("/a/b", "/a"));
        assert!(!is_under("/ab", "/a"));
        assert!(!is_under("/", "/a"));
        assert!(!is_under("/a", "/a/b"));
        assert!(overlaps("/_event", "/_event"));
        assert!(overlaps("/_event/x", "/_event"));
        assert!(overlaps("/a", "/a/b"));
        assert!(!overlaps("/_", "/_event"));
        assert!(!overlaps("/_events", "/_event"));
    }

    // ---- init errors ----

    #[test]
    fn malformed_json_is_refused() {
        for bad in ["", "{", "{\"django_prefixes\":[\"/a\",]}", "not json", "{'a':1}"] {
            assert_err(bad, &["not valid JSON"]);
        }
    }

    #[test]
    fn non_object_is_refused() {
        assert_err("[]", &["must be a JSON object", "a list"]);
        assert_err("null", &["must be a JSON object", "null"]);
        assert_err("\"x\"", &["must be a JSON object", "a string"]);
        assert_err("3", &["must be a JSON object", "a number"]);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert_err(r#"{"django_prefix":["/admin"]}"#, &["unknown key `django_prefix`", "django_prefixes"]);
        assert_err(r#"{"Django_upstream":"x"}"#, &["unknown key `Django_upstream`"]);
        assert_err(r#"{"mode":"x","django_upstream":"d"}"#, &["unknown key `mode`"]);
    }

    #[test]
    fn bad_page_guards_name_the_key() {
        assert_err(r#"{"pages":[{"page":"/x","require":"staf"}]}"#, &["pages[0].require: unknown requirement"]);
        assert_err(r#"{"pages":{"page":"/x"}}"#, &["pages: expected a list"]);
        assert_err(r#"{"login_url":"login"}"#, &["login_url", "must start with"]);
        assert_err(r#"{"raise_exception":"yes"}"#, &["raise_exception: expected true or false"]);
    }

    #[test]
    fn wrong_types_name_the_key() {
        assert_err(r#"{"django_upstream":1}"#, &["django_upstream", "expected a string", "a number"]);
        assert_err(r#"{"django_upstream":null}"#, &["django_upstream", "expected a string", "null"]);
        assert_err(r#"{"reflex_upstream":true}"#, &["reflex_upstream", "a boolean"]);
        assert_err(r#"{"django_prefixes":"/admin"}"#, &["django_prefixes", "expected a list of strings", "a string"]);
        assert_err(r#"{"django_prefixes":null}"#, &["django_prefixes", "expected a list"]);
        assert_err(r#"{"django_prefixes":["/a",3]}"#, &["django_prefixes[1]", "expected a string", "a number"]);
        assert_err(r#"{"static_prefix":["/s"]}"#, &["static_prefix", "expected a string or null", "a list"]);
        assert_err(r#"{"static_mount":{}}"#, &["static_mount", "an object"]);
        assert_err(r#"{"spa_mount":0}"#, &["spa_mount", "a number"]);
        assert_err(r#"{"frontend_upstream":false}"#, &["frontend_upstream", "a boolean"]);
    }

    #[test]
    fn empty_names_are_refused() {
        for key in ["django_upstream", "reflex_upstream", "static_mount", "spa_mount", "frontend_upstream"] {
            assert_err(&format!(r#"{{"{key}":""}}"#), &[key, "must not be empty"]);
        }
    }

    #[test]
    fn root_prefix_is_refused() {
        assert_err(r#"{"django_prefixes":["/"]}"#, &["django_prefixes[0]", "`/`", "every path"]);
        assert_err(r#"{"static_prefix":"/"}"#, &["static_prefix", "every path"]);
    }

    #[test]
    fn empty_prefix_is_refused() {
        assert_err(r#"{"django_prefixes":["/admin",""]}"#, &["django_prefixes[1]", "must not be empty"]);
        assert_err(r#"{"static_prefix":""}"#, &["static_prefix", "must not be empty"]);
    }

    #[test]
    fn prefix_without_leading_slash_is_refused() {
        assert_err(r#"{"django_prefixes":["admin"]}"#, &["django_prefixes[0]", "`admin`", "must start with `/`"]);
        assert_err(r#"{"static_prefix":"static"}"#, &["static_prefix", "must start with `/`"]);
    }

    #[test]
    fn prefix_with_trailing_slash_is_refused() {
        assert_err(r#"{"django_prefixes":["/admin/"]}"#, &["django_prefixes[0]", "must not end with `/`", "`/admin`"]);
        assert_err(r#"{"django_prefixes":["/api/v2/"]}"#, &["django_prefixes[0]", "must not end with `/`"]);
        assert_err(r#"{"static_prefix":"/static/"}"#, &["static_prefix", "must not end with `/`"]);
    }

    #[test]
    fn prefix_with_odd_segments_is_refused() {
        assert_err(r#"{"django_prefixes":["//admin"]}"#, &["django_prefixes[0]", "empty segment"]);
        assert_err(r#"{"django_prefixes":["/a//b"]}"#, &["django_prefixes[0]", "empty segment"]);
        assert_err(r#"{"django_prefixes":["/a/../b"]}"#, &["django_prefixes[0]", "`..` segment"]);
        assert_err(r#"{"django_prefixes":["/."]}"#, &["django_prefixes[0]", "`.` segment"]);
        assert_err(r#"{"django_prefixes":["/a?b"]}"#, &["django_prefixes[0]", "'?'"]);
        assert_err(r#"{"django_prefixes":["/a#b"]}"#, &["django_prefixes[0]", "'#'"]);
        assert_err(r#"{"django_prefixes":["/a b"]}"#, &["django_prefixes[0]", "' '"]);
        assert_err(r#"{"django_prefixes":["/a\\b"]}"#, &["django_prefixes[0]", "'\\\\'"]);
        assert_err(r#"{"django_prefixes":["/a\u0000"]}"#, &["django_prefixes[0]", "must not contain"]);
    }

    #[test]
    fn prefix_equal_to_a_reserved_path_is_refused() {
        for r in RESERVED {
            assert_err(
                &format!(r#"{{"django_prefixes":["/admin","{r}"]}}"#),
                &["django_prefixes[1]", &format!("`{r}`"), "overlaps Reflex's reserved path"],
            );
            assert_err(&format!(r#"{{"static_prefix":"{r}"}}"#), &["static_prefix", "reserved"]);
        }
    }

    #[test]
    fn prefix_under_a_reserved_path_is_refused() {
        assert_err(r#"{"django_prefixes":["/_event/x"]}"#, &["django_prefixes[0]", "`/_event/x`", "`/_event`"]);
        assert_err(r#"{"django_prefixes":["/ping/a/b"]}"#, &["django_prefixes[0]", "`/ping`"]);
        assert_err(r#"{"static_prefix":"/_upload/static"}"#, &["static_prefix", "`/_upload`"]);
    }

    #[test]
    fn prefixes_that_only_share_characters_with_reserved_paths_are_fine() {
        let c = cfg(r#"{"django_prefixes":["/_","/_events","/pin","/pings","/auth","/_event-log"]}"#);
        assert_eq!(c.route("/_"), Forward("django"));
        assert_eq!(c.route("/_/x"), Forward("django"));
        assert_eq!(c.route("/_events/1"), Forward("django"));
        assert_eq!(c.route("/auth/login"), Forward("django"));
        // The reserved paths still go to Reflex.
        assert_eq!(c.route("/_event/"), Forward("reflex"));
        assert_eq!(c.route("/ping"), Forward("reflex"));
        assert_eq!(c.route("/auth-codespace"), Forward("reflex"));
    }

    #[test]
    fn duplicate_prefixes_are_refused() {
        assert_err(r#"{"django_prefixes":["/admin","/api","/admin"]}"#, &["django_prefixes[2]", "`/admin`", "twice"]);
        assert_err(
            r#"{"django_prefixes":["/static"],"static_mount":"s"}"#,
            &["static_prefix", "`/static`", "django_prefixes"],
        );
        assert_err(
            r#"{"django_prefixes":["/assets"],"static_prefix":"/assets"}"#,
            &["static_prefix", "django_prefixes"],
        );
    }

    #[test]
    fn static_prefix_null_allows_static_in_django_prefixes() {
        let c = cfg(r#"{"django_prefixes":["/static"],"static_prefix":null}"#);
        assert_eq!(c.route("/static/x"), Forward("django"));
    }

    #[test]
    fn default_prefixes_are_valid() {
        for p in DEFAULT_DJANGO_PREFIXES.iter().chain([&DEFAULT_STATIC_PREFIX]) {
            check_prefix("default", p).unwrap();
        }
    }
}
