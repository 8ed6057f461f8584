//! `isthmus.toml`: parsing and validation. Every error names the file, the key and
//! what is wrong; unknown keys are errors. Relative paths are taken from the
//! config file's folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::limits;
use crate::policy::FailMode;
pub use crate::upstream::balance::HashKey;
pub use crate::upstream::Address;

#[derive(Debug, thiserror::Error)]
#[error("{}: {key}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the offending key, e.g. `upstreams.django.url`.
    pub key: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Listen,
    #[serde(default)]
    pub timeouts: Timeouts,
    pub upstreams: BTreeMap<String, Upstream>,
    #[serde(default, rename = "static")]
    pub static_mounts: BTreeMap<String, StaticMount>,
    pub routing: Routing,
    /// The event bridge on Reflex's WebSocket; absent: `/_event` is a plain tunnel.
    pub bridge: Option<BridgeConfig>,
    /// What `isthmus run --dev` changes: a dev server in place of a static mount.
    pub dev: Option<Dev>,
    /// The metrics listener (Prometheus, liveness, readiness); absent: none.
    pub metrics: Option<MetricsConfig>,
    /// W3C trace context and OTLP span export (off unless `[tracing.otlp]` is given).
    #[serde(default)]
    pub tracing: Tracing,
    /// How log lines are written.
    #[serde(default)]
    pub log: Log,
    /// Which client request headers are removed before any router or upstream.
    #[serde(default)]
    pub headers: Headers,
    /// Several gateways: logins and logouts told to the others through Redis; absent: none.
    pub redis: Option<RedisConfig>,
    /// The Django project `isthmus check` and `isthmus run` ask for its URL prefixes (to
    /// name the prefixes the router's config no longer matches); absent: no comparison.
    pub django: Option<DjangoProject>,
    /// Folder of the config file; relative paths below were joined to it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub addr: SocketAddr,
    /// Tokio worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Proxies in front of the gateway whose X-Forwarded-* headers are kept.
    #[serde(default)]
    pub trusted_hops: usize,
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Streams one HTTP/2 connection may have open at once.
    #[serde(default = "default_http2_max_concurrent_streams")]
    pub http2_max_concurrent_streams: u32,
    /// Client connections open at once; past it new ones are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Client connections one address may hold; 0 = no cap. Unset: the default, or no
    /// cap behind trusted proxies (`per_ip_cap`).
    pub max_connections_per_ip: Option<usize>,
    /// Upgraded connections (WebSockets) open at once; past it upgrades get 503.
    #[serde(default = "default_max_websockets")]
    pub max_websockets: usize,
    /// `[listen.tls]`: serve HTTPS on `addr` (HTTP/2 and HTTP/1.1 by ALPN).
    pub tls: Option<Tls>,
}

/// `[headers]`: client request headers removed at the door, before any router or
/// upstream sees the request. The gateway's own namespace, `x-isthmus-*`, is always
/// removed; so are the identity headers of `limits::IDENTITY_HEADERS` not in `keep`,
/// the names in `remove`, and names with `_` unless `allow_underscores`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    /// Removed too, beside the default identity headers.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Default identity headers let through: a trusted proxy in front of the gateway
    /// authenticates users and sets them.
    #[serde(default)]
    pub keep: Vec<String>,
    /// ASGI and WSGI servers fold `_` and `-` together (`X_User` reads as `X-User`), so
    /// names with `_` are dropped, as nginx and Django's runserver do, unless this is set.
    #[serde(default)]
    pub allow_underscores: bool,
}

impl Listen {
    /// The per-address connection cap, if any. Behind trusted proxies every client
    /// arrives from a proxy's address, so the default cap would cap the proxy.
    pub fn per_ip_cap(&self) -> Option<usize> {
        let cap = self.max_connections_per_ip.unwrap_or(match self.trusted_hops {
            0 => limits::MAX_CONNECTIONS_PER_IP,
            _ => 0,
        });
        (cap > 0).then_some(cap)
    }
}

/// `[listen.tls]`. PEM files; relative paths are joined to the config's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// More certificates, each chosen when the client's SNI matches one of its names;
    /// `cert`/`key` serves every other name and clients without SNI.
    #[serde(default)]
    pub certificates: Vec<CertificatePair>,
    /// A plain-HTTP listener that answers 308 to the https origin.
    pub redirect_addr: Option<SocketAddr>,
    /// Files served at `/.well-known/acme-challenge/` by the redirect listener, for an
    /// external ACME client (certbot `--webroot`, lego `--http.webroot`).
    pub acme_challenge_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    /// Every pair, the default first.
    pub fn pairs(&self) -> impl Iterator<Item = (&Path, &Path)> {
        std::iter::once((self.cert.as_path(), self.key.as_path()))
            .chain(self.certificates.iter().map(|p| (p.cert.as_path(), p.key.as_path())))
    }

    /// The key that names `file`, for errors about it.
    pub fn key_of(&self, file: &Path) -> String {
        self.pairs()
            .enumerate()
            .find_map(|(i, (cert, key))| {
                let prefix =
                    if i == 0 { "listen.tls".to_owned() } else { format!("listen.tls.certificates[{}]", i - 1) };
                (cert == file)
                    .then(|| format!("{prefix}.cert"))
                    .or_else(|| (key == file).then(|| format!("{prefix}.key")))
            })
            .unwrap_or_else(|| "listen.tls".to_owned())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    #[serde(with = "humantime_serde")]
    pub response_header: Duration,
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    #[serde(with = "humantime_serde")]
    pub client_header: Duration,
    #[serde(with = "humantime_serde")]
    pub pool_idle: Duration,
    #[serde(with = "humantime_serde")]
    pub client_body: Duration,
    #[serde(with = "humantime_serde")]
    pub client_send: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: limits::CONNECT_TIMEOUT,
            response_header: limits::RESPONSE_HEADER_TIMEOUT,
            idle: limits::IDLE_TIMEOUT,
            client_header: limits::CLIENT_HEADER_TIMEOUT,
            pool_idle: limits::POOL_IDLE_TIMEOUT,
            client_body: limits::CLIENT_BODY_TIMEOUT,
            client_send: limits::CLIENT_SEND_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `http://host:port`, no path, or a Unix socket `unix:PATH`: the upstream's one
    /// endpoint (with `replicas`, the first).
    pub url: Option<String>,
    /// A pool of several endpoints (same form as `url`), instead of `url`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// `isthmus run` starts this many copies of `run`, on `url`'s port and the ports
    /// after it (or, with `{uds}` and no `url`, on sockets it picks), all of them
    /// endpoints of the pool.
    pub replicas: Option<usize>,
    /// How a pool's endpoints share the work.
    #[serde(default)]
    pub balance: Balance,
    /// With `balance = "hash"`: the request attributes hashed, the first present wins
    /// (`query:NAME`, `header:NAME`); a request with none is balanced by least connections.
    #[serde(default, deserialize_with = "one_or_many")]
    pub hash_key: Vec<String>,
    /// Command `isthmus run` starts (once per endpoint); `{port}` is replaced by the
    /// endpoint's port, `{uds}` by its socket's path.
    pub run: Option<String>,
    /// Command `isthmus run --dev` starts instead of `run`.
    pub dev_run: Option<String>,
    pub cwd: Option<PathBuf>,
    /// Path answering 2xx once the upstream is ready, probed at start and while serving.
    #[serde(default, deserialize_with = "health_check")]
    pub health: Option<HealthCheck>,
    /// Connections open to each endpoint at once (in use, idle, tunnels).
    #[serde(default = "default_upstream_max_connections")]
    pub max_connections: usize,
    /// Every endpoint, parsed: `endpoints`, or `url` and its replicas' ports. When
    /// `isthmus run` picks the sockets (`picks_sockets`), their file names, relative
    /// until it creates their folder (`supervise::sockets`).
    #[serde(skip)]
    pub addresses: Vec<Address>,
    /// `{uds}` in a command and no `url` or `endpoints`: `isthmus run` picks a socket
    /// per replica in a private folder; `serve` cannot reach the upstream.
    #[serde(skip)]
    pub picks_sockets: bool,
    /// `hash_key`, parsed.
    #[serde(skip)]
    pub hash_keys: Vec<HashKey>,
}

/// The placeholder of a command for its endpoint's Unix socket.
pub const UDS_PLACEHOLDER: &str = "{uds}";

/// `upstreams.<name>.balance`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// The endpoint with the fewest requests and tunnels in progress.
    #[default]
    LeastConn,
    RoundRobin,
    /// Rendezvous hashing of `hash_key`: every gateway with the same endpoints picks the
    /// same one for a key, and an endpoint leaving moves only its own keys.
    Hash,
}

/// `upstreams.<name>.health`: `"/path"`, or a table with the probe's timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub path: String,
    #[serde(default = "default_health_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_health_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

fn health_check<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<HealthCheck>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a path such as \"/ping\", or a table { path, interval, timeout, healthy_threshold, unhealthy_threshold }"
    )]
    enum Form {
        Path(String),
        Check(HealthCheck),
    }
    Ok(Some(match Form::deserialize(d)? {
        Form::Path(path) => HealthCheck {
            path,
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            healthy_threshold: default_healthy_threshold(),
            unhealthy_threshold: default_unhealthy_threshold(),
        },
        Form::Check(check) => check,
    }))
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or a list of strings")]
    enum Form {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Form::deserialize(d)? {
        Form::One(one) => vec![one],
        Form::Many(many) => many,
    })
}

/// `[dev]`: in `isthmus run --dev`, requests a router sends to static mount `static`
/// go to upstream `upstream` instead (Reflex's frontend dev server with hot reload).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tracing {
    /// Continue the trace of a valid incoming `traceparent` (and a bridged event's own);
    /// `false`: every request and event starts a new trace.
    pub trust_client: bool,
    /// Share of new traces (no sampled parent) that are recorded and marked sampled.
    pub sample_ratio: f64,
    /// Where spans are exported; absent: none are built.
    pub otlp: Option<Otlp>,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing { trust_client: true, sample_ratio: limits::TRACE_SAMPLE_RATIO, otlp: None }
    }
}

/// OTLP/HTTP protobuf export of the gateway's spans.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Otlp {
    /// The collector's traces URL, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: String,
    #[serde(default = "default_service_name")]
    pub service_name: String,
    #[serde(default = "default_queue_spans")]
    pub queue_spans: usize,
    #[serde(default = "default_batch_spans")]
    pub batch_spans: usize,
    #[serde(default = "default_export_interval", with = "humantime_serde")]
    pub export_interval: Duration,
    #[serde(default = "default_export_timeout", with = "humantime_serde")]
    pub export_timeout: Duration,
    #[serde(skip, default = "default_uri")]
    pub uri: http::Uri,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, fields as keys (access lines carry `trace_id` and `span_id`).
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dev {
    #[serde(rename = "static")]
    pub static_mount: String,
    pub upstream: String,
}

/// `[metrics]`: `/metrics`, `/livez` and `/readyz` on an address of their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
    /// A `listen` address other machines can reach is refused unless this is set: the
    /// metrics tell the upstreams, plugins and traffic of the gateway.
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[django]`: where `manage.py isthmus_prefixes` is run to compare Django's URL prefixes
/// with the prefix router's `django_prefixes` (written by `isthmus init`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DjangoProject {
    /// The project's `manage.py`, relative to the config's folder.
    pub manage: PathBuf,
    /// The interpreter that runs it: a path (relative to the config's folder) or a name
    /// looked up on PATH; absent: `$VIRTUAL_ENV/bin/python`, else `python3`.
    pub python: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMount {
    pub root: PathBuf,
    /// File under `root` served for paths that match no file (an SPA's index.html).
    pub fallback: Option<String>,
    /// URL prefix removed before looking up the file, e.g. `/static`.
    pub strip_prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    #[serde(default = "default_plugins_dir")]
    pub plugins_dir: PathBuf,
    /// Where compiled plugins are cached; defaults to `<plugins_dir>/.cache`.
    pub cache_dir: Option<PathBuf>,
    /// Watch plugin files and reload them when they change.
    #[serde(default = "default_true")]
    pub hot_reload: bool,
    /// How long `isthmus serve` waits for plugins to load before serving without them.
    #[serde(default = "default_startup_wait", with = "humantime_serde")]
    pub startup_wait: Duration,
    pub routers: Vec<PluginEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceMode {
    /// Warm instances reused across calls, recycled after `recycle_after` calls or a trap.
    #[default]
    Pooled,
    /// A fresh instance for every call.
    Fresh,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// File name under `plugins_dir`, or `builtin:NAME` for a policy the binary ships.
    pub plugin: String,
    /// Name in logs and replies; defaults to the file name without `.wasm`.
    pub name: Option<String>,
    #[serde(default)]
    pub fail: FailMode,
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// Linear memory cap in bytes.
    #[serde(default = "default_max_memory")]
    pub max_memory: usize,
    #[serde(default)]
    pub instance: InstanceMode,
    #[serde(default = "default_recycle_after")]
    pub recycle_after: u64,
    /// Handed to the plugin's `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
}

impl PluginEntry {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or_else(|| {
            let plugin = self.plugin.strip_prefix(crate::builtin::PREFIX).unwrap_or(&self.plugin);
            plugin.strip_suffix(".wasm").unwrap_or(plugin)
        })
    }

    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).expect("a TOML table is always valid JSON")
    }
}

/// What the bridge does when the identity endpoint is down or slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityFailure {
    /// Judge the event as anonymous: rules that need a login refuse it.
    #[default]
    Anonymous,
    /// Refuse every event until the endpoint answers again.
    Deny,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Path of Reflex's Socket.IO endpoint; WebSockets on it or under it are bridged.
    #[serde(default = "default_bridge_path")]
    pub path: String,
    /// Upstream serving the identity endpoint (the Django app with `isthmus_django`).
    #[serde(default = "default_identity_upstream")]
    pub identity_upstream: String,
    #[serde(default = "default_identity_path")]
    pub identity_path: String,
    /// Shared with Django (`ISTHMUS_IDENTITY_SECRET`); `env:NAME` reads an environment variable.
    pub identity_secret: Secret,
    /// Shared with the Reflex process (`ISTHMUS_BRIDGE_SECRET`) to sign the injected identity.
    pub bridge_secret: Secret,
    /// Django's SESSION_COOKIE_NAME.
    #[serde(default = "default_session_cookie")]
    pub session_cookie: String,
    #[serde(default = "default_identity_ttl", with = "humantime_serde")]
    pub identity_ttl: Duration,
    #[serde(default = "default_identity_timeout", with = "humantime_serde")]
    pub identity_timeout: Duration,
    #[serde(default)]
    pub on_identity_error: IdentityFailure,
    /// Key of `router_data` that carries the signed identity.
    #[serde(default = "default_inject_key")]
    pub inject_key: String,
    /// Largest WebSocket message a client may send.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// The gateway's own cookie telling which open pages belong to one browser
    /// (`__Host-` prefixed over https). Never an identity by itself.
    #[serde(default = "default_browser_cookie")]
    pub browser_cookie: String,
    /// Where an open page re-reads the browser's session cookie when it changed
    /// (the gateway answers it; no router sees it).
    #[serde(default = "default_rebind_path")]
    pub rebind_path: String,
    /// Full name of a Reflex handler the gateway sends to each open page of a browser
    /// whose Django user changed, e.g. `reflex___state____state.app___state____user_state.on_identity_change`.
    pub on_identity_change: Option<String>,
    /// Reflex's upload endpoint (as sent upstream): judged by the bridge policy.
    #[serde(default = "default_upload_path")]
    pub upload_path: String,
    /// Largest upload body; larger ones get 413.
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: u64,
    /// The bridge policy plugin (world `bridge`).
    pub policy: PluginEntry,
}

/// `[redis]`: the gateways sharing this Redis drop a session's cached identity (and ask
/// their open pages of it to re-read their session) as soon as one of them sees a login
/// or logout (`peers`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]` or `redis+unix:///path`; `env:NAME`
    /// reads an environment variable (a URL may hold a password).
    pub url: Secret,
    /// The pub/sub channel; gateways of one site must use the same.
    #[serde(default = "default_redis_channel")]
    pub channel: String,
}

fn default_redis_channel() -> String {
    limits::REDIS_CHANNEL.into()
}

/// A secret given inline or as `env:NAME`; resolved at load, never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret as text (a Redis URL).
    pub fn expose_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

fn default_bridge_path() -> String {
    "/_event".into()
}
fn default_identity_upstream() -> String {
    "django".into()
}
fn default_identity_path() -> String {
    "/_isthmus/identity".into()
}
fn default_session_cookie() -> String {
    "sessionid".into()
}
fn default_identity_ttl() -> Duration {
    limits::IDENTITY_TTL
}
fn default_identity_timeout() -> Duration {
    limits::IDENTITY_TIMEOUT
}
fn default_inject_key() -> String {
    "isthmus".into()
}
fn default_max_frame_bytes() -> usize {
    limits::BRIDGE_MAX_FRAME_BYTES
}
fn default_browser_cookie() -> String {
    "isthmus_browser".into()
}
fn default_rebind_path() -> String {
    "/_isthmus/rebind".into()
}
fn default_upload_path() -> String {
    "/_upload".into()
}
fn default_max_upload_bytes() -> u64 {
    limits::BRIDGE_MAX_UPLOAD_BYTES
}

fn default_service_name() -> String {
    limits::OTLP_SERVICE_NAME.into()
}
fn default_queue_spans() -> usize {
    limits::OTLP_QUEUE_SPANS
}
fn default_batch_spans() -> usize {
    limits::OTLP_BATCH_SPANS
}
fn default_export_interval() -> Duration {
    limits::OTLP_EXPORT_INTERVAL
}
fn default_export_timeout() -> Duration {
    limits::OTLP_EXPORT_TIMEOUT
}
fn default_uri() -> http::Uri {
    http::Uri::from_static("/")
}

fn default_grace() -> Duration {
    limits::SHUTDOWN_GRACE
}
fn default_max_header_bytes() -> usize {
    limits::MAX_HEADER_BYTES
}
fn default_max_headers() -> usize {
    limits::MAX_HEADERS
}
fn default_http2_max_concurrent_streams() -> u32 {
    limits::HTTP2_MAX_CONCURRENT_STREAMS
}
fn default_max_connections() -> usize {
    limits::MAX_CONNECTIONS
}
fn default_max_websockets() -> usize {
    limits::MAX_WEBSOCKETS
}
fn default_upstream_max_connections() -> usize {
    limits::UPSTREAM_MAX_CONNECTIONS
}
fn default_health_interval() -> Duration {
    limits::HEALTH_CHECK_INTERVAL
}
fn default_health_timeout() -> Duration {
    limits::HEALTH_CHECK_TIMEOUT
}
fn default_healthy_threshold() -> u32 {
    limits::HEALTH_HEALTHY_THRESHOLD
}
fn default_unhealthy_threshold() -> u32 {
    limits::HEALTH_UNHEALTHY_THRESHOLD
}
fn default_startup_wait() -> Duration {
    limits::PLUGIN_STARTUP_WAIT
}

fn default_plugins_dir() -> PathBuf {
    PathBuf::from("plugins")
}
fn default_metrics_listen() -> SocketAddr {
    limits::METRICS_LISTEN.parse().expect("a socket address")
}
fn default_true() -> bool {
    true
}
fn default_deadline() -> Duration {
    limits::PLUGIN_DEADLINE
}
fn default_max_memory() -> usize {
    limits::PLUGIN_MAX_MEMORY
}
fn default_recycle_after() -> u64 {
    limits::PLUGIN_RECYCLE_AFTER
}

impl Config {
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_owned(),
            key: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, file)
    }

    /// Parse and validate `text` as if read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let key = key_path(e.path());
            let inner = e.into_inner();
            ConfigError {
                file: file.to_owned(),
                key,
                message: inner.message().to_owned() + &line_of(text, inner.span()),
            }
        })?;
        config.file = file.to_owned();
        config.base_dir = file.parent().map(Path::to_owned).unwrap_or_default();
        if config.base_dir.as_os_str().is_empty() {
            config.base_dir = PathBuf::from(".");
        }
        config.resolve().and_then(|()| config.check()).map_err(|(key, message)| ConfigError {
            file: file.to_owned(),
            key,
            message,
        })?;
        Ok(config)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.routing.cache_dir.clone().unwrap_or_else(|| self.routing.plugins_dir.join(".cache"))
    }

    /// Turn the text the file holds into the values the gateway runs by: relative
    /// paths joined to the config's folder, upstream URLs parsed, secrets read.
    fn resolve(&mut self) -> Result<(), (String, String)> {
        let base = self.base_dir.clone();
        for (name, upstream) in &mut self.upstreams {
            let key = |field: &str| format!("upstreams.{name}.{field}");
            check_name(name).map_err(|m| (format!("upstreams.{name}"), m))?;
            (upstream.addresses, upstream.picks_sockets) =
                endpoint_addresses(name, upstream, &base).map_err(|(field, m)| (key(field), m))?;
            upstream.hash_keys = (upstream.hash_key.iter().map(|k| HashKey::parse(k)).collect::<Result<_, _>>())
                .map_err(|m| (key("hash_key"), m))?;
            if let Some(cwd) = &mut upstream.cwd {
                *cwd = base.join(&*cwd);
            }
        }
        for mount in self.static_mounts.values_mut() {
            mount.root = base.join(&mount.root);
        }
        if let Some(otlp) = self.tracing.otlp.as_mut() {
            otlp.uri = parse_otlp_endpoint(&otlp.endpoint).map_err(|m| ("tracing.otlp.endpoint".to_owned(), m))?;
        }
        self.routing.plugins_dir = base.join(&self.routing.plugins_dir);
        if let Some(django) = &mut self.django {
            django.manage = base.join(&django.manage);
            // A bare name (`python3`) is looked up on PATH, as a shell would.
            if let Some(python) = django.python.as_mut().filter(|p| p.components().count() > 1) {
                *python = base.join(&*python);
            }
        }
        if let Some(tls) = &mut self.listen.tls {
            for path in [&mut tls.cert, &mut tls.key].into_iter().chain(tls.acme_challenge_dir.as_mut()) {
                *path = base.join(&*path);
            }
            for pair in &mut tls.certificates {
                pair.cert = base.join(&pair.cert);
                pair.key = base.join(&pair.key);
            }
        }
        if let Some(cache) = &mut self.routing.cache_dir {
            *cache = base.join(&*cache);
        }
        if let Some(bridge) = self.bridge.as_mut() {
            for (field, secret) in
                [("identity_secret", &mut bridge.identity_secret), ("bridge_secret", &mut bridge.bridge_secret)]
            {
                resolve_secret(secret).map_err(|m| (format!("bridge.{field}"), m))?;
            }
        }
        if let Some(redis) = self.redis.as_mut() {
            resolve_env(&mut redis.url).map_err(|m| ("redis.url".to_owned(), m))?;
        }
        Ok(())
    }

    /// Every rule the resolved config must keep; the first one broken names its key.
    fn check(&self) -> Result<(), (String, String)> {
        self.check_listen()?;
        self.check_upstreams()?;
        self.check_static()?;
        self.check_routing()?;
        self.check_dev()?;
        self.check_tracing()?;
        self.check_bridge()?;
        self.check_headers()?;
        self.check_redis()?;
        self.check_metrics()
    }

    fn check_redis(&self) -> Result<(), (String, String)> {
        let Some(redis) = &self.redis else { return Ok(()) };
        if self.bridge.is_none() {
            return Err((
                "redis".into(),
                "tells other gateways of logins and logouts, which only a gateway with a [bridge] section sees; add one or remove [redis]".into(),
            ));
        }
        // The URL may hold a password: never quoted in an error.
        let url = redis.url.expose_str();
        if url.starts_with("rediss://") || url.starts_with("valkeys://") {
            return Err((
                "redis.url".into(),
                "TLS to Redis is not supported: reach it on loopback or a private network (redis://), or through a local TLS tunnel".into(),
            ));
        }
        if let Err(e) = redis::Client::open(url) {
            return Err((
                "redis.url".into(),
                format!("is not a Redis URL (redis://[user:password@]host[:port][/db] or redis+unix:///path): {e}"),
            ));
        }
        if redis.channel.is_empty() || redis.channel.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err((
                "redis.channel".into(),
                "must be a non-empty name without spaces or control characters".into(),
            ));
        }
        Ok(())
    }

    fn check_headers(&self) -> Result<(), (String, String)> {
        for (field, names) in [("remove", &self.headers.remove), ("keep", &self.headers.keep)] {
            for (i, name) in names.iter().enumerate() {
                let key = format!("headers.{field}[{i}]");
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err((key, format!("`{name}` is not a header name")));
                }
                let lower = name.to_ascii_lowercase();
                if field == "keep" && !limits::IDENTITY_HEADERS.contains(&lower.as_str()) {
                    return Err((
                        key,
                        format!(
                            "`{name}` is not one of the identity headers removed by default; only those can be kept"
                        ),
                    ));
                }
                if lower.starts_with("x-isthmus-") {
                    return Err((key, format!("`{name}` is in the gateway's own namespace, which is always removed")));
                }
            }
        }
        Ok(())
    }

    fn check_metrics(&self) -> Result<(), (String, String)> {
        let Some(metrics) = &self.metrics else { return Ok(()) };
        let (addr, public) = (metrics.listen, self.listen.addr);
        // Port 0 picks a free port: never the public one.
        if addr.port() != 0 && addr.port() == public.port() {
            return Err((
                "metrics.listen".into(),
                format!("`{addr}` uses the port of listen.addr (`{public}`): the metrics need a port of their own, never the public one"),
            ));
        }
        if !addr.ip().is_loopback() && !metrics.allow_remote {
            return Err((
                "metrics.listen".into(),
                format!("`{addr}` is reachable from other machines; use a loopback address (127.0.0.1, ::1) or set metrics.allow_remote = true"),
            ));
        }
        Ok(())
    }

    fn check_tracing(&self) -> Result<(), (String, String)> {
        let ratio = self.tracing.sample_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(("tracing.sample_ratio".into(), format!("{ratio} must be between 0 and 1")));
        }
        let Some(otlp) = &self.tracing.otlp else { return Ok(()) };
        if otlp.service_name.is_empty() {
            return Err(("tracing.otlp.service_name".into(), "must not be empty".into()));
        }
        if otlp.queue_spans == 0 {
            return Err(("tracing.otlp.queue_spans".into(), "must be greater than zero".into()));
        }
        if otlp.batch_spans == 0 || otlp.batch_spans > otlp.queue_spans {
            return Err(("tracing.otlp.batch_spans".into(), "must be between 1 and `queue_spans`".into()));
        }
        for (key, value) in [
            ("tracing.otlp.export_interval", otlp.export_interval),
            ("tracing.otlp.export_timeout", otlp.export_timeout),
        ] {
            if value.is_zero() {
                return Err((key.into(), "must be greater than zero".into()));
            }
        }
        Ok(())
    }

    fn check_listen(&self) -> Result<(), (String, String)> {
        // hyper's smallest read buffer.
        if self.listen.max_header_bytes < 8192 {
            return Err(("listen.max_header_bytes".into(), "must be at least 8192".into()));
        }
        for (key, value) in [
            ("timeouts.connect", self.timeouts.connect),
            ("timeouts.response_header", self.timeouts.response_header),
            ("timeouts.idle", self.timeouts.idle),
            ("timeouts.client_header", self.timeouts.client_header),
            ("timeouts.client_body", self.timeouts.client_body),
            ("timeouts.client_send", self.timeouts.client_send),
        ] {
            if value.is_zero() {
                return Err((key.into(), "must be greater than zero".into()));
            }
        }
        for (key, value) in [
            ("listen.max_connections", self.listen.max_connections),
            ("listen.max_websockets", self.listen.max_websockets),
        ] {
            if value == 0 {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        if self.listen.http2_max_concurrent_streams == 0 {
            return Err(("listen.http2_max_concurrent_streams".into(), "must be at least 1".into()));
        }
        let Some(tls) = &self.listen.tls else { return Ok(()) };
        if let Some(redirect) = tls.redirect_addr {
            if redirect.port() == self.listen.addr.port()
                && (redirect.ip() == self.listen.addr.ip()
                    || redirect.ip().is_unspecified()
                    || self.listen.addr.ip().is_unspecified())
            {
                return Err((
                    "listen.tls.redirect_addr".into(),
                    format!("`{redirect}` is the address HTTPS is served on (listen.addr); give the plain-HTTP redirect its own port"),
                ));
            }
        }
        if let Some(dir) = &tls.acme_challenge_dir {
            if tls.redirect_addr.is_none() {
                return Err((
                    "listen.tls.acme_challenge_dir".into(),
                    "is served by the plain-HTTP listener: set listen.tls.redirect_addr too".into(),
                ));
            }
            if !dir.is_dir() {
                return Err((
                    "listen.tls.acme_challenge_dir".into(),
                    format!("`{}` is not a directory", dir.display()),
                ));
            }
        }
        Ok(())
    }

    fn check_upstreams(&self) -> Result<(), (String, String)> {
        if self.upstreams.is_empty() {
            return Err(("upstreams".into(), "at least one upstream is required".into()));
        }
        for (name, upstream) in &self.upstreams {
            let key = |field: &str| format!("upstreams.{name}.{field}");
            if upstream.max_connections == 0 {
                return Err((key("max_connections"), "must be at least 1".into()));
            }
            if let Some(health) = &upstream.health {
                if !health.path.starts_with('/') {
                    return Err((key("health"), format!("`{}` must be a path starting with `/`", health.path)));
                }
                if health.interval.is_zero() || health.timeout.is_zero() {
                    return Err((key("health"), "`interval` and `timeout` must be longer than 0".into()));
                }
                if health.healthy_threshold == 0 || health.unhealthy_threshold == 0 {
                    return Err((
                        key("health"),
                        "`healthy_threshold` and `unhealthy_threshold` must be at least 1".into(),
                    ));
                }
            }
            match (upstream.balance, upstream.hash_keys.is_empty()) {
                (Balance::Hash, true) => {
                    return Err((
                        key("hash_key"),
                        "`balance = \"hash\"` needs the attribute to hash, e.g. \"query:token\"".into(),
                    ))
                }
                (Balance::LeastConn | Balance::RoundRobin, false) => {
                    return Err((key("hash_key"), "is only read with `balance = \"hash\"`".into()))
                }
                _ => {}
            }
            if upstream.replicas.is_some() && upstream.run.is_none() {
                return Err((key("replicas"), "needs `run`: the command `isthmus run` starts once per replica".into()));
            }
            if upstream.dev_run.is_some() && upstream.addresses.len() > 1 {
                return Err((
                    key("dev_run"),
                    "starts one process (with hot reload): give a pool of several endpoints `run` only".into(),
                ));
            }
            for (field, command) in [("run", &upstream.run), ("dev_run", &upstream.dev_run)] {
                let Some(command) = command else { continue };
                if command.trim().is_empty() {
                    return Err((key(field), "must not be empty".into()));
                }
                for address in &upstream.addresses {
                    let (placeholder, listens) = match address {
                        Address::Tcp { .. } => ("{port}", "where `url` says"),
                        Address::Unix(_) => (UDS_PLACEHOLDER, "on its Unix socket"),
                    };
                    if !command.contains(placeholder) {
                        return Err((
                            key(field),
                            format!("`{command}` must contain `{placeholder}`, so that the process listens {listens}"),
                        ));
                    }
                }
                if let Some(address) = upstream.addresses.iter().find(|a| !a.is_local()) {
                    let at = if upstream.url.is_some() { "url" } else { "endpoints" };
                    return Err((key(at), format!("`{address}` must be on 127.0.0.1, ::1, localhost or a Unix socket: `isthmus run` starts `{field}` on this machine and keeps it off the network")));
                }
            }
            let at = if upstream.url.is_some() { "url" } else { "endpoints" };
            for address in upstream.addresses.iter().filter(|_| !upstream.picks_sockets) {
                check_socket(address).map_err(|m| (key(at), m))?;
            }
            if let Some(cwd) = &upstream.cwd {
                if !cwd.is_dir() {
                    return Err((key("cwd"), format!("`{}` is not a directory", cwd.display())));
                }
            }
        }
        // Commands once every url is known: `{port:NAME}` names another upstream.
        for (name, upstream) in &self.upstreams {
            for (field, command) in [("run", &upstream.run), ("dev_run", &upstream.dev_run)] {
                let Some(command) = command else { continue };
                for address in &upstream.addresses {
                    crate::supervise::command::argv(command, address, &|other| self.port_of(other))
                        .map_err(|m| (format!("upstreams.{name}.{field}"), m))?;
                }
            }
        }
        // Two started processes cannot listen on one port (whatever the host) or one socket.
        let mut started: Vec<(&str, &Address)> = Vec::new();
        for (name, upstream) in self.upstreams.iter().filter(|(_, u)| u.run.is_some() || u.dev_run.is_some()) {
            for address in upstream.addresses.iter().filter(|_| !upstream.picks_sockets) {
                let same = |(_, other): &&(&str, &Address)| match (address.port(), other.port()) {
                    (Some(port), Some(other)) => port == other,
                    _ => address == *other,
                };
                if let Some((other, _)) = started.iter().find(same) {
                    let field = if upstream.replicas.is_some() { "replicas" } else { "url" };
                    let what = match address.port() {
                        Some(port) => format!("port {port}"),
                        None => format!("`{address}`"),
                    };
                    return Err((
                        format!("upstreams.{name}.{field}"),
                        format!("{what} is also where `isthmus run` starts upstream `{other}`"),
                    ));
                }
                started.push((name, address));
            }
        }
        Ok(())
    }

    /// The port of upstream `name`'s first endpoint, for `{port:NAME}`.
    pub fn port_of(&self, name: &str) -> Result<u16, String> {
        let upstream = self.upstreams.get(name).ok_or_else(|| format!("`{name}` is not in [upstreams]"))?;
        upstream
            .addresses
            .first()
            .and_then(Address::port)
            .ok_or_else(|| format!("upstream `{name}` listens on a Unix socket, not a port"))
    }

    fn check_static(&self) -> Result<(), (String, String)> {
        for (name, mount) in &self.static_mounts {
            let key = |field: &str| format!("static.{name}.{field}");
            check_name(name).map_err(|m| (format!("static.{name}"), m))?;
            if !mount.root.is_dir() {
                return Err((key("root"), format!("`{}` is not a directory", mount.root.display())));
            }
            if let Some(fallback) = &mount.fallback {
                if fallback.contains("..") || fallback.starts_with('/') || !mount.root.join(fallback).is_file() {
                    return Err((key("fallback"), format!("`{fallback}` is not a file under the root")));
                }
            }
            if let Some(prefix) = &mount.strip_prefix {
                if !prefix.starts_with('/') || (prefix.len() > 1 && prefix.ends_with('/')) {
                    return Err((key("strip_prefix"), format!("`{prefix}` must start with `/` and not end with `/`")));
                }
            }
        }
        Ok(())
    }

    fn check_routing(&self) -> Result<(), (String, String)> {
        if self.routing.routers.is_empty() {
            return Err(("routing.routers".into(), "at least one router plugin is required".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, entry) in self.routing.routers.iter().enumerate() {
            let prefix = format!("routing.routers[{i}]");
            self.check_plugin(entry, &prefix, "router")?;
            if !seen.insert(entry.display_name().to_owned()) {
                return Err((
                    format!("{prefix}.name"),
                    format!("`{}` names two routers; give one a distinct `name`", entry.display_name()),
                ));
            }
        }
        Ok(())
    }

    fn check_dev(&self) -> Result<(), (String, String)> {
        let Some(dev) = &self.dev else { return Ok(()) };
        if !self.static_mounts.contains_key(&dev.static_mount) {
            return Err(("dev.static".into(), format!("`{}` is not in [static]", dev.static_mount)));
        }
        if !self.upstreams.contains_key(&dev.upstream) {
            return Err(("dev.upstream".into(), format!("`{}` is not in [upstreams]", dev.upstream)));
        }
        Ok(())
    }

    fn check_bridge(&self) -> Result<(), (String, String)> {
        let Some(bridge) = &self.bridge else { return Ok(()) };
        let key = |field: &str| format!("bridge.{field}");
        let paths = [
            ("path", &bridge.path),
            ("identity_path", &bridge.identity_path),
            ("rebind_path", &bridge.rebind_path),
            ("upload_path", &bridge.upload_path),
        ];
        for (field, path) in paths {
            if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') {
                return Err((key(field), format!("`{path}` must start with `/`, not end with `/` and not be `/`")));
            }
        }
        if !self.upstreams.contains_key(&bridge.identity_upstream) {
            return Err((key("identity_upstream"), format!("`{}` is not in [upstreams]", bridge.identity_upstream)));
        }
        for (field, name) in [("session_cookie", &bridge.session_cookie), ("browser_cookie", &bridge.browser_cookie)] {
            if name.is_empty() || name.bytes().any(|b| b <= b' ' || b >= 0x7f || b"=;,\"()<>@:\\/[]?{}".contains(&b)) {
                return Err((key(field), format!("`{name}` is not a cookie name")));
            }
        }
        if bridge.browser_cookie == bridge.session_cookie || bridge.browser_cookie.starts_with("__") {
            return Err((key("browser_cookie"), "must differ from session_cookie and not start with `__`".into()));
        }
        if let Some(handler) = &bridge.on_identity_change {
            if handler.is_empty() || handler.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\') {
                return Err((key("on_identity_change"), format!("`{handler}` is not a Reflex handler name")));
            }
        }
        if bridge.inject_key.is_empty() {
            return Err((key("inject_key"), "must not be empty".into()));
        }
        if bridge.identity_timeout.is_zero() {
            return Err((key("identity_timeout"), "must be greater than zero".into()));
        }
        if bridge.max_frame_bytes < 1024 {
            return Err((key("max_frame_bytes"), "must be at least 1024".into()));
        }
        self.check_plugin(&bridge.policy, "bridge.policy", "bridge")
    }

    /// `world`: the one the entry's place in the config asks for.
    fn check_plugin(&self, entry: &PluginEntry, prefix: &str, world: &str) -> Result<(), (String, String)> {
        let key = |field: &str| format!("{prefix}.{field}");
        match crate::builtin::named(&entry.plugin) {
            Some(Err(message)) => return Err((key("plugin"), message)),
            Some(Ok(builtin)) if builtin.world != world => {
                return Err((
                    key("plugin"),
                    format!("`{}` is a {} policy; this entry takes a {world} policy", entry.plugin, builtin.world),
                ))
            }
            Some(Ok(_)) => {}
            None if entry.plugin.contains('/') || entry.plugin.contains("..") => {
                return Err((key("plugin"), format!("`{}` must be a file name inside plugins_dir", entry.plugin)));
            }
            None => {
                let path = self.routing.plugins_dir.join(&entry.plugin);
                if !path.is_file() {
                    return Err((key("plugin"), format!("`{}` does not exist", path.display())));
                }
            }
        }
        if entry.deadline.is_zero() {
            return Err((key("deadline"), "must be greater than zero".into()));
        }
        if entry.max_memory < 64 * 1024 {
            return Err((key("max_memory"), "must be at least 65536 (one wasm page)".into()));
        }
        if entry.recycle_after == 0 {
            return Err((key("recycle_after"), "must be at least 1".into()));
        }
        Ok(())
    }
}

/// `env:NAME` becomes the variable's value; every secret must be long enough to resist guessing.
fn resolve_secret(secret: &mut Secret) -> Result<(), String> {
    resolve_env(secret)?;
    if secret.0.len() < 32 {
        return Err("must be at least 32 characters (generate one with `openssl rand -hex 32`)".into());
    }
    Ok(())
}

/// `env:NAME` becomes the variable's value.
fn resolve_env(secret: &mut Secret) -> Result<(), String> {
    if let Some(var) = secret.0.strip_prefix("env:") {
        secret.0 = std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set"))?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid name (letters, digits, `_`, `-`)"))
    }
}

/// An upstream's endpoints: `url` (and, with `replicas`, the ports after its own),
/// `endpoints`, or, with `{uds}` in a command and neither, one socket per replica that
/// `isthmus run` picks (true: their names, relative to the folder it creates).
fn endpoint_addresses(
    name: &str,
    upstream: &Upstream,
    base: &Path,
) -> Result<(Vec<Address>, bool), (&'static str, String)> {
    let picks =
        [&upstream.run, &upstream.dev_run].iter().any(|c| c.as_ref().is_some_and(|c| c.contains(UDS_PLACEHOLDER)));
    let n = upstream.replicas.unwrap_or(1);
    if !(1..=limits::MAX_REPLICAS).contains(&n) {
        return Err(("replicas", format!("must be from 1 to {}", limits::MAX_REPLICAS)));
    }
    let addresses = match (&upstream.url, upstream.endpoints.as_slice(), upstream.replicas) {
        (Some(_), [_, ..], _) => return Err(("endpoints", "give either `url` or `endpoints`, not both".into())),
        (None, [], _) if picks => {
            let sockets = (0..n).map(|i| Address::Unix(format!("{name}-{i}.sock").into())).collect();
            return Ok((sockets, true));
        }
        (None, [], _) => {
            return Err((
                "url",
                "required (or `endpoints`, for a pool, or `{uds}` in `run` for a Unix socket `isthmus run` picks)"
                    .into(),
            ))
        }
        (None, [_, ..], Some(_)) => {
            return Err(("replicas", "goes with `url` (the first replica's address), not `endpoints`".into()))
        }
        (None, endpoints, None) => endpoints
            .iter()
            .map(|e| Address::parse(e, base))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ("endpoints", m))?,
        (Some(url), [], _) => match Address::parse(url, base).map_err(|m| ("url", m))? {
            Address::Tcp { host, port } => {
                let last = usize::from(port) + n - 1;
                if last > usize::from(u16::MAX) {
                    return Err(("replicas", format!("{n} replicas from port {port} go past port 65535")));
                }
                (0..n as u16).map(|i| Address::Tcp { host: host.clone(), port: port + i }).collect()
            }
            socket if n == 1 => vec![socket],
            _ => {
                return Err((
                    "replicas",
                    format!("`{url}` is one socket: leave `url` out and put `{UDS_PLACEHOLDER}` in `run`, and `isthmus run` picks a socket per replica"),
                ))
            }
        },
    };
    for (i, address) in addresses.iter().enumerate() {
        if addresses[..i].contains(address) {
            return Err(("endpoints", format!("`{address}` is listed twice")));
        }
    }
    Ok((addresses, false))
}

/// A socket's folder must exist (the server only creates the socket), and a file
/// already there must be a socket: a typo fails here, not as a 502 on each request.
fn check_socket(address: &Address) -> Result<(), String> {
    let Address::Unix(path) = address else { return Ok(()) };
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return Err(format!("`{address}`: its folder `{}` does not exist", folder.display()));
    }
    match std::fs::metadata(path) {
        Ok(meta) if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            Err(format!("`{address}`: `{}` exists and is not a socket", path.display()))
        }
        _ => Ok(()),
    }
}

fn parse_otlp_endpoint(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "`{url}` must start with http:// (export over TLS through a local collector, e.g. the OpenTelemetry Collector)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if matches!(uri.path(), "" | "/") {
        return Err(format!("`{url}` has no path; OTLP/HTTP collectors take traces at `/v1/traces`"));
    }
    Ok(uri)
}

/// " (line N)" for a byte span into `text`, to point at the bad line.
/// The dotted path of the key a deserialization error is about, `(syntax)` for none. A
/// key that is empty or holds a dot is quoted, as TOML writes it: `"" = 1` would else
/// be named by an empty string (found by fuzzing), and `"a.b"` would read as a table.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                if key.is_empty() || key.contains('.') {
                    out.push_str(&format!("{key:?}"));
                } else {
                    out.push_str(key);
                }
            }
            Segment::Unknown => out.push('?'),
        }
    }
    if out.is_empty() {
        out.push_str("(syntax)");
    }
    out
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => format!(" (line {})", text[..span.start.min(text.len())].matches('\n').count() + 1),
        None => String::new(),
    }
}
