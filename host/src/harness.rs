//! `isthmus plugin test PLUGIN.wasm CASES.toml`: a table of requests or events, each
//! with the user it comes from, run against a component loaded exactly as the gateway
//! loads it, and each answer compared with the expected one. Language-neutral: every
//! template's `cases.toml` is run by it.
//!
//! ```toml
//! world = "router"                       # or "bridge"
//! config = { prefixes = ["/api"] }       # handed to setup as JSON
//! max_memory = 67108864                  # optional, as in isthmus.toml
//! deadline = "50ms"                      # optional
//! [[case]]
//! name = "admin goes to Django"
//! request = { method = "GET", path = "/admin/", query = "", headers = [["cookie", "sessionid=abc"]] }
//! user = { authenticated = true, username = "ann", is_staff = true }   # default: anonymous
//! expect = { forward = { upstream = "django" } }                        # keys given are compared
//! ```
//!
//! Router expectations: `"pass"`, `{ forward = {…} }`, `{ serve_static = "mount" }`,
//! `{ reply = { status, headers, body } }`, `{ refuse = { login_required = "url" } }` or
//! `{ refuse = { forbidden = "reason" } }`. Bridge cases have `connect = { path,
//! query, headers }` or `event = { kind, name, route, query, payload }` and expect
//! `{ allow = { field = "value" } }` (the fields given must be among the verdict's),
//! `{ refuse = {…} }` or `{ close = "reason" }`. Any case may expect `"fail"`: the
//! policy traps, overruns its deadline or memory, or answers something invalid.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use serde::Deserialize;
use toml::Value;

use crate::config::PluginEntry;
use crate::plugin::{PluginError, PluginHost};
use crate::policy::{
    BridgeEvent, BridgePolicy, Decision, EventKind, Identity, PolicyFailure, Refusal, Resolved, RouteRequest, Router,
    Verdict,
};

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{file}: {message}")]
    Cases { file: String, message: String },
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    world: World,
    #[serde(default)]
    config: toml::Table,
    max_memory: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    deadline: Option<Duration>,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum World {
    Router,
    Bridge,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    request: Option<Req>,
    connect: Option<Req>,
    event: Option<Ev>,
    #[serde(default)]
    user: User,
    expect: Value,
}

/// A case's user: the identity's fields, every one optional (default: anonymous), a
/// misspelt one an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct User {
    authenticated: bool,
    user_id: Option<String>,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    is_staff: bool,
    is_superuser: bool,
    groups: Vec<String>,
    permissions: Vec<String>,
    session: std::collections::BTreeMap<String, String>,
}

impl User {
    fn resolved(self) -> Arc<Resolved> {
        let User {
            authenticated,
            user_id,
            username,
            email,
            first_name,
            last_name,
            is_staff,
            is_superuser,
            groups,
            permissions,
            session,
        } = self;
        // A logged-in user has a primary key, as every Django user does.
        let user_id = user_id.or_else(|| authenticated.then(|| "1".to_owned()));
        Resolved::new(Identity {
            authenticated,
            user_id,
            username,
            email,
            first_name,
            last_name,
            is_staff,
            is_superuser,
            groups,
            permissions,
            session,
            session_ref: None,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Req {
    method: Option<String>,
    scheme: Option<String>,
    authority: Option<String>,
    path: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    client_ip: Option<String>,
}

impl Req {
    fn route_request(self) -> RouteRequest {
        RouteRequest {
            method: self.method.unwrap_or_else(|| "GET".into()).to_ascii_uppercase(),
            scheme: self.scheme.unwrap_or_else(|| "http".into()),
            authority: self.authority.unwrap_or_else(|| "localhost".into()),
            path: self.path,
            query: self.query,
            headers: self.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
            client_ip: self.client_ip.unwrap_or_else(|| "127.0.0.1".into()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ev {
    #[serde(default)]
    kind: Option<String>,
    name: String,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    query: String,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    traceparent: Option<String>,
}

impl Ev {
    fn event(self) -> Result<BridgeEvent, String> {
        let kind = match self.kind.as_deref().map(|k| k.replace('_', "-")).as_deref() {
            None | Some("client") => EventKind::Client,
            Some("upload") => EventKind::Upload,
            Some("identity-change") => EventKind::IdentityChange,
            Some(other) => return Err(format!("event kind `{other}` is not client, upload or identity-change")),
        };
        Ok(BridgeEvent {
            kind,
            name: self.name,
            payload_json: self.payload.unwrap_or_else(|| "{}".into()),
            route: self.route.unwrap_or_else(|| "/".into()),
            query: self.query,
            traceparent: self.traceparent,
        })
    }
}

/// What one case came to.
pub struct Outcome {
    pub name: String,
    /// `None` when the answer matched; else what differs.
    pub mismatch: Option<String>,
}

/// The cases file and the plugin entry it describes.
fn read(plugin: &Path, cases_file: &Path) -> Result<(Cases, PluginEntry), HarnessError> {
    let bad = |message: String| HarnessError::Cases { file: cases_file.display().to_string(), message };
    let text = std::fs::read_to_string(cases_file).map_err(|e| bad(format!("cannot read: {e}")))?;
    let cases: Cases = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let entry = entry(plugin, &cases).map_err(|e| bad(e.to_string()))?;
    Ok((cases, entry))
}

fn plugin_dir(plugin: &Path) -> &Path {
    plugin.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Compiled plugins are cached as the gateway caches them: a second run starts at once.
fn shared_cache() -> Option<PathBuf> {
    Some(std::env::temp_dir().join("isthmus-plugin-cache"))
}

/// Run every case of `cases_file` against the component `plugin`.
pub fn run(plugin: &Path, cases_file: &Path) -> Result<Vec<Outcome>, HarnessError> {
    let bad = |message: String| HarnessError::Cases { file: cases_file.display().to_string(), message };
    let (cases, entry) = read(plugin, cases_file)?;
    let dir = plugin_dir(plugin);
    let host = PluginHost::new()?;
    let cache = shared_cache();
    let mut outcomes = Vec::new();
    match cases.world {
        World::Router => {
            let router = host.load_router(&entry, dir, cache, 1)?;
            for case in cases.cases {
                let Some(req) = case.request else {
                    return Err(bad(format!("case `{}`: a router case needs `request`", case.name)));
                };
                let who = router.needs().identity.then(|| case.user.resolved());
                let got = router.route(&Arc::new(req.route_request()), who.as_ref());
                outcomes.push(Outcome { mismatch: judge(&case.expect, got, decision_value), name: case.name });
            }
        }
        World::Bridge => {
            let policy = host.load_bridge(&entry, dir, cache, 1)?;
            for case in cases.cases {
                let who = case.user.resolved();
                let got = match (case.connect, case.event) {
                    (Some(req), None) => policy.on_connect(&Arc::new(req.route_request()), &who),
                    (None, Some(ev)) => policy.on_event(&Arc::new(ev.event().map_err(&bad)?), &who),
                    _ => {
                        return Err(bad(format!(
                            "case `{}`: a bridge case needs one of `connect` and `event`",
                            case.name
                        )))
                    }
                };
                outcomes.push(Outcome { mismatch: judge(&case.expect, got, verdict_value), name: case.name });
            }
        }
    }
    Ok(outcomes)
}

/// What `isthmus plugin bench` measured of a component.
pub struct Bench {
    pub world: &'static str,
    pub file_bytes: u64,
    /// Compiling the component (no cache), and loading it from the compiled cache.
    pub compile: Duration,
    pub cache_hit: Duration,
    /// Linear memory of an instance once `setup` ran.
    pub memory_at_start: Option<usize>,
    /// Per call on a reused instance: median, min, max over batches.
    pub reused: [Duration; 3],
    /// Per call on a new instance each time (instantiate + setup + call).
    pub fresh: [Duration; 3],
}

/// Batches of calls on a reused instance, and calls each on a new one.
const BATCHES: usize = 21;
const CALLS_PER_BATCH: usize = 200;
const FRESH_CALLS: usize = 31;

/// Time the first case of `cases_file` on `plugin`: compile, start memory, per-call cost.
pub fn bench(plugin: &Path, cases_file: &Path) -> Result<Bench, HarnessError> {
    let bad = |message: String| HarnessError::Cases { file: cases_file.display().to_string(), message };
    let (mut cases, entry) = read(plugin, cases_file)?;
    if cases.cases.is_empty() {
        return Err(bad("no case to time".into()));
    }
    let case = cases.cases.swap_remove(0);
    let dir = plugin_dir(plugin);
    let host = PluginHost::new()?;
    let cold = tempfile_dir().map_err(|e| bad(format!("cannot make a cache folder: {e}")))?;
    let fresh_entry = PluginEntry { instance: crate::config::InstanceMode::Fresh, ..entry.clone() };
    let file_bytes = std::fs::metadata(plugin).map(|m| m.len()).unwrap_or(0);
    let Case { name, request, connect, event, user, .. } = case;
    let who = user.resolved();
    let load = |entry: &PluginEntry| -> Result<Loaded, HarnessError> {
        Ok(match cases.world {
            World::Router => Loaded::Router(host.load_router(entry, dir, Some(cold.clone()), 1)?),
            World::Bridge => Loaded::Bridge(host.load_bridge(entry, dir, Some(cold.clone()), 1)?),
        })
    };
    let first = load(&entry)?;
    let (compile, memory_at_start) = (first.info().compile_time, first.memory());
    let reused = load(&entry)?;
    let cache_hit = reused.info().compile_time;
    let fresh = load(&fresh_entry)?;
    let _ = std::fs::remove_dir_all(&cold);
    let call = Call::of(&name, request, connect, event).map_err(&bad)?;
    let check = |plugin: &Loaded| plugin.call(&call, &who).map_err(|f| bad(format!("the timed case failed: {f}")));
    check(&reused)?;
    let mut per_call: Vec<Duration> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS_PER_BATCH {
                let _ = reused.call(&call, &who);
            }
            start.elapsed() / CALLS_PER_BATCH as u32
        })
        .collect();
    let mut each: Vec<Duration> = (0..FRESH_CALLS)
        .map(|_| {
            let start = Instant::now();
            let _ = fresh.call(&call, &who);
            start.elapsed()
        })
        .collect();
    Ok(Bench {
        world: if cases.world == World::Router { "router" } else { "bridge" },
        file_bytes,
        compile,
        cache_hit,
        memory_at_start,
        reused: spread(&mut per_call),
        fresh: spread(&mut each),
    })
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("isthmus-bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Median, min and max.
fn spread(samples: &mut [Duration]) -> [Duration; 3] {
    samples.sort();
    [samples[samples.len() / 2], samples[0], samples[samples.len() - 1]]
}

enum Loaded {
    Router(Arc<crate::plugin::WasmRouter>),
    Bridge(Arc<crate::plugin::WasmBridge>),
}

/// The timed case's input, built once.
enum Call {
    Route(Arc<RouteRequest>),
    Connect(Arc<RouteRequest>),
    Event(Arc<BridgeEvent>),
}

impl Call {
    fn of(name: &str, request: Option<Req>, connect: Option<Req>, event: Option<Ev>) -> Result<Call, String> {
        Ok(match (request, connect, event) {
            (Some(req), None, None) => Call::Route(Arc::new(req.route_request())),
            (None, Some(req), None) => Call::Connect(Arc::new(req.route_request())),
            (None, None, Some(ev)) => Call::Event(Arc::new(ev.event()?)),
            _ => return Err(format!("case `{name}`: give one of `request`, `connect` and `event`")),
        })
    }
}

impl Loaded {
    /// Loaded completely (`load_router`, `load_bridge`): a version serves.
    fn info(&self) -> crate::plugin::LoadInfo {
        match self {
            Loaded::Router(r) => r.load_info(),
            Loaded::Bridge(b) => b.load_info(),
        }
        .expect("loaded")
    }

    fn memory(&self) -> Option<usize> {
        match self {
            Loaded::Router(r) => r.warm_memory(),
            Loaded::Bridge(b) => b.warm_memory(),
        }
    }

    fn call(&self, call: &Call, who: &Arc<Resolved>) -> Result<(), PolicyFailure> {
        match (self, call) {
            (Loaded::Router(r), Call::Route(req)) => r.route(req, r.needs().identity.then_some(who)).map(drop),
            (Loaded::Bridge(b), Call::Connect(req)) => b.on_connect(req, who).map(drop),
            (Loaded::Bridge(b), Call::Event(ev)) => b.on_event(ev, who).map(drop),
            _ => Err(PolicyFailure::Invalid("the case does not fit the world".into())),
        }
    }
}

/// The plugin entry the cases describe, as if written in isthmus.toml.
fn entry(plugin: &Path, cases: &Cases) -> Result<PluginEntry, toml::de::Error> {
    let mut table = toml::Table::new();
    let file = plugin.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    table.insert("plugin".into(), file.into());
    table.insert("config".into(), cases.config.clone().into());
    if let Some(max) = cases.max_memory {
        table.insert("max_memory".into(), (max as i64).into());
    }
    if let Some(deadline) = cases.deadline {
        table.insert("deadline".into(), format!("{}ms", deadline.as_millis()).into());
    }
    table.try_into()
}

/// `None` when the answer is what `expect` says (`"fail"`: the policy failed), else the diff.
fn judge<T>(expect: &Value, got: Result<T, PolicyFailure>, value: fn(&T) -> Value) -> Option<String> {
    let got = match got {
        Ok(answer) => answer,
        Err(_) if expect.as_str() == Some("fail") => return None,
        Err(failure) => return Some(format!("expected {expect}, but the policy failed: {failure}")),
    };
    let actual = value(&got);
    compare(expect, &actual).map(|diff| format!("{diff}\n      got: {actual}"))
}

fn refusal_value(r: &Refusal) -> Value {
    let (k, v) = match r {
        Refusal::LoginRequired(url) => ("login_required", url),
        Refusal::Forbidden(reason) => ("forbidden", reason),
    };
    table([(k, Value::from(v.as_str()))])
}

fn pairs(fields: &[(String, String)]) -> Value {
    Value::Array(fields.iter().map(|(k, v)| Value::Array(vec![k.as_str().into(), v.as_str().into()])).collect())
}

fn decision_value(d: &Decision) -> Value {
    match d {
        Decision::Pass => "pass".into(),
        Decision::ServeStatic(mount) => table([("serve_static", mount.as_str().into())]),
        Decision::Refuse(r) => table([("refuse", refusal_value(r))]),
        Decision::Forward(f) => table([(
            "forward",
            table([
                ("upstream", f.upstream.as_str().into()),
                ("path", f.path.as_deref().unwrap_or("").into()),
                ("set_headers", pairs(&f.set_headers)),
                ("remove_headers", Value::Array(f.remove_headers.iter().map(|h| h.as_str().into()).collect())),
            ]),
        )]),
        Decision::Reply(r) => table([(
            "reply",
            table([
                ("status", i64::from(r.status).into()),
                ("headers", pairs(&r.headers)),
                ("body", String::from_utf8_lossy(&r.body).into_owned().into()),
            ]),
        )]),
    }
}

fn verdict_value(v: &Verdict) -> Value {
    match v {
        Verdict::Allow(fields) => {
            table([("allow", Value::Table(fields.iter().map(|(k, v)| (k.clone(), v.as_str().into())).collect()))])
        }
        Verdict::Refuse(r) => table([("refuse", refusal_value(r))]),
        Verdict::Close(reason) => table([("close", reason.as_str().into())]),
    }
}

fn table<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Table(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// `None` when `actual` has everything `expect` says (tables: the keys given; other
/// values: equal), else where they first differ.
fn compare(expect: &Value, actual: &Value) -> Option<String> {
    compare_at("", expect, actual)
}

fn compare_at(at: &str, expect: &Value, actual: &Value) -> Option<String> {
    match (expect, actual) {
        (Value::Table(e), Value::Table(a)) => e.iter().find_map(|(k, ev)| {
            let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            match a.get(k) {
                Some(av) => compare_at(&path, ev, av),
                None => Some(format!("expected {path} = {ev}, which the answer does not have")),
            }
        }),
        (e, a) if e == a => None,
        (e, a) => {
            Some(format!("expected {}{e}, got {a}", if at.is_empty() { String::new() } else { format!("{at} = ") }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Value {
        toml::from_str::<toml::Table>(&format!("x = {text}")).unwrap().remove("x").unwrap()
    }

    #[test]
    fn expectations_compare_only_the_keys_given() {
        let forward = decision_value(&Decision::Forward(crate::policy::Forward {
            upstream: "django".into(),
            path: None,
            set_headers: vec![],
            remove_headers: vec!["x-remote-user".into()],
        }));
        assert_eq!(compare(&v(r#"{ forward = { upstream = "django" } }"#), &forward), None);
        assert_eq!(compare(&v(r#"{ forward = { remove_headers = ["x-remote-user"] } }"#), &forward), None);
        let diff = compare(&v(r#"{ forward = { upstream = "reflex" } }"#), &forward).unwrap();
        assert_eq!(diff, r#"expected forward.upstream = "reflex", got "django""#);
        assert!(compare(&v(r#"{ serve_static = "spa" }"#), &forward).unwrap().contains("does not have"));
        assert!(compare(&v(r#""pass""#), &forward).is_some());
        assert_eq!(compare(&v(r#""pass""#), &decision_value(&Decision::Pass)), None);
    }

    #[test]
    fn allow_fields_given_must_be_among_the_verdicts() {
        let allowed = verdict_value(&Verdict::Allow(vec![("rule".into(), "0".into()), ("x".into(), "1".into())]));
        assert_eq!(compare(&v("{ allow = {} }"), &allowed), None);
        assert_eq!(compare(&v(r#"{ allow = { rule = "0" } }"#), &allowed), None);
        assert!(compare(&v(r#"{ allow = { rule = "1" } }"#), &allowed).is_some());
        assert!(compare(&v(r#"{ refuse = { forbidden = "x" } }"#), &allowed).is_some());
    }
}
