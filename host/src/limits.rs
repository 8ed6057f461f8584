//! Every limit and default the gateway applies, in one place. Config keys that
//! override them are named beside each.

use std::time::Duration;

/// `timeouts.connect`: TCP connect to an upstream. Past it: 504.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `timeouts.response_header`: from request sent to upstream response head. Past it: 504.
pub const RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// `timeouts.idle`: no byte moved on a proxied body or tunnel for this long ends it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// `timeouts.client_header`: a client must send a complete request head within this; a
/// new connection must also send its first bytes within it (`upstream::idle::ClientIo`).
pub const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// `timeouts.client_body`: a client sending a request body must deliver a byte at least
/// this often, else the request ends with 408 (nginx's `client_body_timeout`).
pub const CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// `timeouts.client_send`: a write to a client (a response, a tunnel's bytes) that makes
/// no progress for this long closes the connection: a client that stops reading would
/// otherwise hold it forever, since a body nobody reads is never polled and so never
/// meets `timeouts.idle` (nginx's `send_timeout`).
pub const CLIENT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// `timeouts.pool_idle`: an idle pooled upstream connection is closed after this.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// `listen.shutdown_grace`: in-flight requests get this long after SIGINT/SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// `listen.max_header_bytes`: a larger request head is refused with 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// `listen.max_headers`: more header fields than this are refused with 431.
pub const MAX_HEADERS: usize = 100;
/// `listen.http2_max_concurrent_streams`: streams one HTTP/2 client connection may have
/// open at once (hyper's default is 200; Envoy and nginx use 100–128).
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// `listen.max_connections`: client connections open at once, across the public
/// listener (TLS included). Past it a new connection is accepted and closed at once
/// (plain HTTP: after a 503 written without reading), so the kernel's backlog never
/// fills with clients waiting blind. Each proxied connection costs two descriptors:
/// keep it under half of `ulimit -n`.
pub const MAX_CONNECTIONS: usize = 20_000;
/// `listen.max_connections_per_ip`: client connections one address may hold open
/// (nginx's `limit_conn`). Past it: closed at once (plain HTTP: after a 429). It counts
/// the TCP peer, so with `listen.trusted_hops` > 0 (a proxy in front) it is off unless
/// set. 0 turns it off.
pub const MAX_CONNECTIONS_PER_IP: usize = 256;
/// `listen.max_websockets`: upgraded connections (bridged and plain tunnels) open at
/// once. Past it an upgrade request gets 503 before the upstream sees it.
pub const MAX_WEBSOCKETS: usize = 16_384;
/// `upstreams.<name>.max_connections`: connections open to one endpoint of an upstream,
/// in use, idle and tunnels together. A request finding none free waits up to `timeouts.connect`
/// for one, then gets 503. Bridged WebSockets hold one each: keep it above
/// `listen.max_websockets` for the Reflex upstream.
pub const UPSTREAM_MAX_CONNECTIONS: usize = 20_000;
/// `upstreams.<name>.health.interval`: how often each endpoint of an upstream with a
/// `health` path is probed while serving (active health checks).
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// `upstreams.<name>.health.timeout`: one probe (connect and answer) must finish within this.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// `upstreams.<name>.health.unhealthy_threshold`: probes failing in a row that take an
/// endpoint out of its pool (Envoy's and HAProxy's default: 3 and 2).
pub const HEALTH_UNHEALTHY_THRESHOLD: u32 = 3;
/// `upstreams.<name>.health.healthy_threshold`: probes passing in a row that bring it back.
pub const HEALTH_HEALTHY_THRESHOLD: u32 = 2;
/// An endpoint that refused a connection (or did not accept one in time) gets no new
/// work for this long (passive ejection, as nginx's `fail_timeout`); the request that
/// met it goes to another endpoint, since nothing was sent yet. An endpoint alone in
/// its pool is never ejected (nginx's rule too): there is nowhere else to send.
pub const EJECTION_TIME: Duration = Duration::from_secs(10);
/// `isthmus run`, `replicas`: most copies of one upstream's command.
pub const MAX_REPLICAS: usize = 64;
/// A refused connection or request is logged at most this often per limit (the rest
/// are counted in the metrics and summed in the next line), so an attack cannot flood
/// the log.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Streams a client may open and reset before the gateway accepts them: past it the
/// connection is closed (the "rapid reset" attack, CVE-2023-44487).
pub const HTTP2_MAX_PENDING_RESET_STREAMS: usize = 20;
/// Streams the gateway may reset because the client broke the protocol on them, per
/// connection: past it the connection is closed ("MadeYouReset", CVE-2025-8671).
pub const HTTP2_MAX_LOCAL_ERROR_RESETS: usize = 256;
/// A TLS client must finish its handshake within this, or the connection is closed.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `isthmus check` names a certificate expiring within this; the log warns at start.
pub const TLS_EXPIRY_WARNING: Duration = Duration::from_secs(21 * 24 * 3600);
/// Largest file the redirect listener serves from `listen.tls.acme_challenge_dir`
/// (an ACME key authorization is under 100 bytes).
pub const ACME_CHALLENGE_MAX_BYTES: u64 = 4096;
/// A listener whose accept failed (EMFILE and friends) tries again after this.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// Idle pooled connections kept per upstream endpoint.
pub const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// Log lines queued for the log-writer thread; past this, new lines are dropped so a
/// slow stderr never holds up requests.
pub const LOG_QUEUE_LINES: usize = 128_000;

/// `headers.keep` / `headers.remove`: request headers that name an authenticated user
/// (or carry a client certificate) to some upstream, set by an authenticating proxy or a
/// platform's front end (Apache and nginx auth modules, oauth2-proxy, Envoy, AWS ALB,
/// Google IAP, Cloudflare Access, Azure App Service, Authelia). isthmus never sets them, so a
/// client's copy is removed before any router or upstream sees the request: an app that
/// trusts one (a Django `RemoteUserMiddleware` subclass reading `HTTP_X_FORWARDED_USER`)
/// cannot be told who is asking by a client.
pub const IDENTITY_HEADERS: [&str; 39] = [
    "remote-user",
    "remote-email",
    "remote-groups",
    "remote-name",
    "x-remote-user",
    "x-remote-email",
    "x-remote-group",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    "x-auth-request-access-token",
    "x-authenticated-user",
    "x-authenticated-userid",
    "x-webauth-user",
    "x-user",
    "x-username",
    "x-goog-authenticated-user-email",
    "x-goog-authenticated-user-id",
    "x-goog-iap-jwt-assertion",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-data",
    "x-amzn-oidc-accesstoken",
    "cf-access-authenticated-user-email",
    "cf-access-jwt-assertion",
    "x-ms-client-principal",
    "x-ms-client-principal-name",
    "x-ms-client-principal-id",
    "x-forwarded-client-cert",
    "x-client-cert",
    "x-ssl-client-cert",
    "x-ssl-client-verify",
    "x-ssl-client-dn",
    "ssl-client-cert",
];

/// `routing.routers[].deadline`: wall-clock budget for one plugin call.
pub const PLUGIN_DEADLINE: Duration = Duration::from_millis(10);
/// `routing.routers[].max_memory`: linear memory one plugin instance may grow to.
pub const PLUGIN_MAX_MEMORY: usize = 16 * 1024 * 1024;
/// `routing.routers[].recycle_after`: a warm instance is replaced after this many calls.
pub const PLUGIN_RECYCLE_AFTER: u64 = 100_000;
/// Largest linear memory the instance pool reserves per instance: no plugin's
/// `max_memory` may exceed it.
pub const PLUGIN_SLOT_MAX_MEMORY: usize = 1 << 30;
/// Plugin instances alive at once, all plugins and versions together (warm pools hold
/// at most about workers×2 per plugin).
pub const PLUGIN_POOL_INSTANCES: u32 = 1000;
/// Largest table a guest may grow (function references; generous).
pub const PLUGIN_MAX_TABLE_ELEMENTS: usize = 100_000;
/// Longest line of a plugin's stdout/stderr logged in one piece.
pub const PLUGIN_LOG_MAX_LINE: usize = 4096;
/// Bytes of output an instance may log per call; past it, output is dropped and counted.
pub const PLUGIN_LOG_BYTES_PER_CALL: usize = 64 * 1024;
/// Quiet time after the last change to a plugin or certificate file before it is
/// reloaded (editors and certificate tools write a temporary file and rename it).
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(150);
/// `routing.startup_wait`: how long `isthmus serve` waits for a plugin to load before
/// it serves without it (its calls fail as `Starting`, or its previous version cached
/// from an earlier run serves, until it is ready). A plugin that fails to load within
/// it stops the start-up, as every load error did before.
pub const PLUGIN_STARTUP_WAIT: Duration = Duration::from_secs(2);
/// Compiled plugins kept on disk (`.cwasm` bytes, every plugin and version together);
/// past it the least recently used are removed. A Python component compiles to ~36 MB.
pub const PLUGIN_CACHE_MAX_BYTES: u64 = 1 << 30;
/// How often the epoch ticker advances while a guest call is in progress; the
/// granularity of plugin deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);
/// How often it advances while calls may start but none is in progress (a busy gateway
/// between its calls of a few µs). A call starting then is ticked every `EPOCH_TICK`
/// from the next tick on: never stopped early, a runaway one at most this much later.
/// Ticking every `EPOCH_TICK` all along woke the thread 1000 times a second on the
/// gateway's core (BENCHMARKS.md, "uvicorn upstreams").
pub const EPOCH_QUIET_TICK: Duration = Duration::from_millis(10);
/// Largest Reply body or header list a plugin may return before the gateway refuses it.
pub const PLUGIN_MAX_REPLY_BYTES: usize = 1024 * 1024;

/// `bridge.identity_ttl`: how long a session's identity is reused before Django is asked again.
pub const IDENTITY_TTL: Duration = Duration::from_secs(5);
/// `bridge.identity_timeout`: the identity endpoint must answer within this.
pub const IDENTITY_TIMEOUT: Duration = Duration::from_secs(2);
/// After the identity endpoint fails, identity misses fail at once for this long
/// (then `bridge.on_identity_error` applies) instead of each waiting on Django.
pub const IDENTITY_FAILURE_BACKOFF: Duration = Duration::from_secs(1);
/// Distinct session cookies whose identities are cached at once.
pub const IDENTITY_CACHE_ENTRIES: usize = 100_000;
/// Largest answer of the identity endpoint read.
pub const IDENTITY_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Read buffer of each side of a bridged WebSocket. tungstenite's default (128 KiB) is
/// zero-filled before every read and stays resident: measured by bench/ws, a quarter of
/// the bridge's CPU went to that memset and each idle bridged connection held about
/// 260 KiB. Larger messages are still read whole, in several reads.
pub const BRIDGE_READ_BUFFER: usize = 8 * 1024;
/// `bridge.max_frame_bytes`: largest client WebSocket message on the bridge (Reflex's maxPayload).
pub const BRIDGE_MAX_FRAME_BYTES: usize = 1_000_000;
/// `bridge.max_upload_bytes`: largest upload body (declared by Content-Length).
pub const BRIDGE_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// Messages (rebind requests, scripts) queued for one open page; past it they are
/// dropped (a queued rebind already makes the page re-read its session).
pub const BROWSER_CONTROL_QUEUE: usize = 4;
/// A page asked to re-read its browser's session is not asked again until it does, or
/// until this long has passed (a page that never answers is asked on later changes).
pub const BROWSER_REBIND_RETRY: Duration = Duration::from_secs(5);

/// `redis.channel`: the pub/sub channel the gateways of one site tell each other of
/// logins and logouts on.
pub const REDIS_CHANNEL: &str = "isthmus:sessions";
/// Connecting to Redis, and each command on the link (a publish, a ping), must finish
/// within this, or the link is taken for down.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle link is pinged, so a Redis gone silent (no reset, no close) is
/// noticed within this plus `REDIS_TIMEOUT`.
pub const REDIS_PING_EVERY: Duration = Duration::from_secs(5);
/// After the link fails, first wait before connecting again; doubles each time…
pub const REDIS_RECONNECT_MIN: Duration = Duration::from_millis(100);
/// … up to this: a Redis back up is found again within it.
pub const REDIS_RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Logins and logouts waiting to be told to the other gateways; while the link is down
/// they wait here (and go out when it is back), past it they are dropped and counted.
/// Either way the others' `bridge.identity_ttl` bounds how long they miss one.
pub const REDIS_QUEUE: usize = 1024;
/// A message from Redis that is not a gateway's (malformed, or not signed with this
/// site's key) is counted always, and logged at most this often.
pub const REDIS_REJECT_LOG_EVERY: Duration = Duration::from_secs(60);

/// `isthmus run`: a child gets this long after SIGTERM (to its process group) before SIGKILL.
pub const CHILD_STOP_GRACE: Duration = Duration::from_secs(10);
/// `isthmus run`: what a child that exited left in its process group gets before SIGKILL.
pub const CHILD_LEFTOVER_GRACE: Duration = Duration::from_secs(2);
/// `isthmus run`: first wait before restarting a child that exited; doubles each time…
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// … up to this.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long before exiting is restarted after the shortest wait again.
pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(30);
/// `isthmus run`: first and longest pause between health probes of a starting upstream.
pub const HEALTH_POLL_MIN: Duration = Duration::from_millis(100);
pub const HEALTH_POLL_MAX: Duration = Duration::from_secs(1);
/// One health probe (connect, or connect and answer) must finish within this.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// While an upstream is not ready, why is logged this often.
pub const HEALTH_REPORT_EVERY: Duration = Duration::from_secs(10);
/// `Retry-After` of the 503 answered for an upstream that is not ready yet.
pub const NOT_READY_RETRY_AFTER_S: u32 = 2;

/// `metrics.listen`: where the metrics listener binds when `[metrics]` names no address.
pub const METRICS_LISTEN: &str = "127.0.0.1:9464";
/// Upper bounds (seconds) of every duration histogram (`isthmus_*_duration_seconds`):
/// from a plugin call's tens of microseconds to a slow upstream's seconds.
pub const METRICS_DURATION_BUCKETS: [f64; 17] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// The metrics listener: a scraper must send its request head within this.
pub const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `tracestate` passed on (request header or event field); a longer one is
/// dropped whole (W3C Trace Context allows dropping it; 512 is its suggested minimum).
pub const TRACESTATE_MAX_BYTES: usize = 512;
/// `tracing.sample_ratio`: share of new traces (no sampled parent) recorded and marked sampled.
pub const TRACE_SAMPLE_RATIO: f64 = 1.0;
/// `tracing.otlp.service_name`: the `service.name` of the gateway's spans.
pub const OTLP_SERVICE_NAME: &str = "isthmus";
/// `tracing.otlp.queue_spans`: finished spans waiting for export; past it new ones are
/// dropped (and counted in a warning), so a slow or dead collector never holds up requests.
pub const OTLP_QUEUE_SPANS: usize = 8192;
/// `tracing.otlp.batch_spans`: most spans sent in one export request.
pub const OTLP_BATCH_SPANS: usize = 512;
/// `tracing.otlp.export_interval`: a batch not yet full is sent after this.
pub const OTLP_EXPORT_INTERVAL: Duration = Duration::from_secs(1);
/// `tracing.otlp.export_timeout`: one export request must be answered within this.
pub const OTLP_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// On shutdown, the spans still queued get this long to be exported.
pub const OTLP_SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// How long `isthmus init`, `check` and `run` wait for `manage.py isthmus_prefixes` (it
/// imports the whole project: about 0.5 s for the shop example, seconds for a large one)
/// before stopping it.
pub const DJANGO_REPORT_TIMEOUT: Duration = Duration::from_secs(30);
