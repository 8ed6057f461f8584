//! What the gateway counts, for Prometheus: one `Metrics` built at start from the
//! config, shared (`Arc`) and handed down to the layers that record, never global.
//! `listener` serves it, with the orchestrators' liveness and readiness, on an
//! address of its own (`[metrics]`).
//!
//! Labels are bounded: names from the config (upstreams, static mounts, plugins),
//! fixed words (target kind, status class, verdict, outcome). Never a path, a user
//! or a token: a name the config lacks (a router naming an unknown upstream) is
//! recorded with an empty `name`.
//!
//! The request path never looks a label set up: every series a request or an event
//! can touch is prepared at start (`Series`, made in its family on first use, so
//! nothing unused is exported), and recording is an index and an atomic add.

pub mod listener;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::config::Config;
use crate::limits::METRICS_DURATION_BUCKETS;

/// Where a request went, as the access log and the metrics name it: a kind and, for
/// most kinds, the name from the config (upstream, static mount or router).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: TargetKind,
    /// Empty for kinds that name nothing.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Upstream,
    Static,
    Reply,
    /// A router refused it, or (unnamed) the gateway did before routing.
    Refused,
    Failed,
    Starting,
    Rebind,
    /// No router decided.
    None,
}

impl TargetKind {
    const ALL: [TargetKind; 8] = [
        TargetKind::Upstream,
        TargetKind::Static,
        TargetKind::Reply,
        TargetKind::Refused,
        TargetKind::Failed,
        TargetKind::Starting,
        TargetKind::Rebind,
        TargetKind::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Upstream => "upstream",
            TargetKind::Static => "static",
            TargetKind::Reply => "reply",
            TargetKind::Refused => "refused",
            TargetKind::Failed => "failed",
            TargetKind::Starting => "starting",
            TargetKind::Rebind => "rebind",
            TargetKind::None => "none",
        }
    }
}

impl Target {
    pub fn new(kind: TargetKind, name: impl Into<String>) -> Target {
        Target { kind, name: name.into() }
    }

    /// A kind that names nothing.
    pub fn bare(kind: TargetKind) -> Target {
        Target { kind, name: String::new() }
    }
}

/// As in the access log: `upstream:django`, `static:frontend`, `none`.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name.is_empty() {
            true => f.write_str(self.kind.as_str()),
            false => write!(f, "{}:{}", self.kind.as_str(), self.name),
        }
    }
}

/// What a bridge policy was asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeKind {
    Connect,
    Event,
    IdentityChange,
    Upload,
}

impl BridgeKind {
    const ALL: [BridgeKind; 4] =
        [BridgeKind::Connect, BridgeKind::Event, BridgeKind::IdentityChange, BridgeKind::Upload];

    fn as_str(self) -> &'static str {
        match self {
            BridgeKind::Connect => "connect",
            BridgeKind::Event => "event",
            BridgeKind::IdentityChange => "identity_change",
            BridgeKind::Upload => "upload",
        }
    }
}

/// The verdict a bridged event got (a failed policy's verdict is its fail mode's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeVerdict {
    Allowed,
    Refused,
    Closed,
}

impl BridgeVerdict {
    const ALL: [BridgeVerdict; 3] = [BridgeVerdict::Allowed, BridgeVerdict::Refused, BridgeVerdict::Closed];

    fn as_str(self) -> &'static str {
        match self {
            BridgeVerdict::Allowed => "allowed",
            BridgeVerdict::Refused => "refused",
            BridgeVerdict::Closed => "closed",
        }
    }
}

/// How one call into a plugin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    Trap,
    /// Interrupted at its deadline (epoch interruption or a host wait).
    Deadline,
    MemoryCap,
    /// No version serves yet (still compiling, or its first load failed).
    NotLoaded,
}

impl CallOutcome {
    const ALL: [CallOutcome; 5] =
        [CallOutcome::Ok, CallOutcome::Trap, CallOutcome::Deadline, CallOutcome::MemoryCap, CallOutcome::NotLoaded];

    fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Trap => "trap",
            CallOutcome::Deadline => "deadline",
            CallOutcome::MemoryCap => "memory_cap",
            CallOutcome::NotLoaded => "not_loaded",
        }
    }
}

/// What the identity cache answered a lookup with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    Error,
}

/// Tunnels by what they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    /// Any upgraded connection relayed as bytes (WebSockets to Django, the dev server…).
    Plain,
    /// Reflex's event WebSocket, judged frame by frame.
    Bridged,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    target: &'static str,
    name: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    upstream: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    /// The config key of the cap, e.g. `listen.max_connections`.
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TunnelLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BridgeLabels {
    kind: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BridgeKindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    world: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCallLabels {
    plugin: String,
    world: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    plugin: String,
    world: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    certificate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// Histograms of durations in seconds, with the buckets of `limits`.
#[derive(Clone, Copy)]
struct Durations;

impl MetricConstructor<Histogram> for Durations {
    fn new_metric(&self) -> Histogram {
        Histogram::new(METRICS_DURATION_BUCKETS.iter().copied())
    }
}

type Histograms<L> = Family<L, Histogram, Durations>;

/// One series of a family, its label set prepared; made in the family on first use
/// (an unused one is not exported), then reached without a lookup.
struct Series<L, M, C = fn() -> M> {
    family: Family<L, M, C>,
    labels: L,
    handle: OnceLock<M>,
}

impl<L, M, C> Series<L, M, C>
where
    L: Clone + std::hash::Hash + Eq,
    M: Clone,
    C: MetricConstructor<M>,
{
    fn new(family: &Family<L, M, C>, labels: L) -> Self
    where
        C: Clone,
    {
        Series { family: family.clone(), labels, handle: OnceLock::new() }
    }

    fn get(&self) -> &M {
        self.handle.get_or_init(|| self.family.get_or_create_owned(&self.labels))
    }
}

/// The series of one request target.
struct TargetSeries {
    /// By status class, 1xx to 5xx.
    by_class: [Series<RequestLabels, Counter>; 5],
    duration: Series<TargetLabels, Histogram, Durations>,
}

/// The series of one plugin, handed to it (`plugin::WasmPlugin::measure`).
pub struct PluginSeries {
    calls: [Series<PluginCallLabels, Counter>; 5],
    duration: Series<PluginLabels, Histogram, Durations>,
    reloads: [Series<ReloadLabels, Counter>; 2],
}

impl PluginSeries {
    /// A call that took `took` and ended as `outcome`.
    pub fn call(&self, outcome: CallOutcome, took: Duration) {
        self.calls[outcome as usize].get().inc();
        self.duration.get().observe(took.as_secs_f64());
    }

    /// A reload of the plugin: swapped in (`true`) or refused.
    pub fn reload(&self, ok: bool) {
        self.reloads[usize::from(!ok)].get().inc();
    }
}

pub struct Metrics {
    registry: Registry,
    /// By kind (index of `TargetKind::ALL`), then by name; "" for names the config lacks.
    targets: Vec<HashMap<String, TargetSeries>>,
    connections: Gauge,
    tunnels: [Gauge; 2],
    connect_errors: Family<UpstreamLabels, Counter>,
    refusals: Family<LimitLabels, Counter>,
    upstream_ready: Family<UpstreamLabels, Gauge>,
    endpoint_up: Family<EndpointLabels, Gauge>,
    ejections: Family<EndpointLabels, Counter>,
    restarts: Family<UpstreamLabels, Counter>,
    bridge: Vec<[Series<BridgeLabels, Counter>; 3]>,
    bridge_duration: Vec<Series<BridgeKindLabels, Histogram, Durations>>,
    plugin_calls: Family<PluginCallLabels, Counter>,
    plugin_duration: Histograms<PluginLabels>,
    reloads: Family<ReloadLabels, Counter>,
    identity: [Counter; 3],
    certificates: Family<CertificateLabels, Gauge>,
    redis: RedisSeries,
}

impl Metrics {
    /// The families, every series the config's names can reach prepared.
    pub fn new(config: &Config) -> Metrics {
        let mut registry = Registry::with_prefix("isthmus");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests answered, by target, its name and status class", requests.clone());
        let request_duration = Histograms::<TargetLabels>::new_with_constructor(Durations);
        registry.register_with_unit(
            "request_duration",
            "Time from the request head to the response head, by target",
            Unit::Seconds,
            request_duration.clone(),
        );
        let connections = Gauge::default();
        registry.register("open_connections", "Client connections open", connections.clone());
        let tunnel_family = Family::<TunnelLabels, Gauge>::default();
        registry.register(
            "open_tunnels",
            "Upgraded connections (WebSockets) open: kind plain is relayed as bytes, bridged is Reflex's judged event socket",
            tunnel_family.clone(),
        );
        let tunnels = ["plain", "bridged"].map(|kind| tunnel_family.get_or_create_owned(&TunnelLabels { kind }));
        let connect_errors = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_connect_errors",
            "Connections to an upstream refused or timed out",
            connect_errors.clone(),
        );
        let refusals = Family::<LimitLabels, Counter>::default();
        registry.register(
            "limit_refusals",
            "Connections and requests refused because a cap was reached, by the cap's config key",
            refusals.clone(),
        );
        let upstream_ready = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "upstream_ready",
            "Under isthmus run: 1 while a supervised upstream answers its health check, else 0",
            upstream_ready.clone(),
        );
        let endpoint_up = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "upstream_endpoint_up",
            "1 while an upstream endpoint's process runs (under isthmus run) and its active health checks pass, else 0",
            endpoint_up.clone(),
        );
        let ejections = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "upstream_ejections",
            "Times an upstream endpoint was taken out of its pool for a while after a failed connect",
            ejections.clone(),
        );
        let restarts = Family::<UpstreamLabels, Counter>::default();
        registry.register("child_restarts", "Restarts of a supervised upstream's process", restarts.clone());
        let bridge_family = Family::<BridgeLabels, Counter>::default();
        registry.register(
            "bridge_events",
            "Bridged packets judged by the bridge policy, by kind and verdict",
            bridge_family.clone(),
        );
        let bridge_durations = Histograms::<BridgeKindLabels>::new_with_constructor(Durations);
        registry.register_with_unit(
            "bridge_event_duration",
            "Time the bridge policy took to judge a packet",
            Unit::Seconds,
            bridge_durations.clone(),
        );
        let plugin_calls = Family::<PluginCallLabels, Counter>::default();
        registry.register("plugin_calls", "Calls into a plugin, by plugin, world and outcome", plugin_calls.clone());
        let plugin_duration = Histograms::<PluginLabels>::new_with_constructor(Durations);
        registry.register_with_unit(
            "plugin_call_duration",
            "Time of a call into a plugin, a new instance's setup included",
            Unit::Seconds,
            plugin_duration.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register("plugin_reloads", "Plugin reloads, swapped in (ok) or refused", reloads.clone());
        let identity_family = Family::<ResultLabels, Counter>::default();
        registry.register(
            "identity_lookups",
            "Session identity lookups: hit (cached), miss (asked Django), error (Django could not say)",
            identity_family.clone(),
        );
        let identity =
            ["hit", "miss", "error"].map(|result| identity_family.get_or_create_owned(&ResultLabels { result }));
        let certificates = Family::<CertificateLabels, Gauge>::default();
        registry.register_with_unit(
            "tls_certificate_expiry_timestamp",
            "When a served TLS certificate expires, as a Unix time",
            Unit::Seconds,
            certificates.clone(),
        );
        let redis = RedisSeries::new();
        if config.redis.is_some() {
            redis.register(&mut registry);
        }
        let build = Family::<VersionLabels, Gauge>::default();
        registry.register("build_info", "The gateway's version, as a label; always 1", build.clone());
        build.get_or_create(&VersionLabels { version: env!("CARGO_PKG_VERSION") }).set(1);

        let names = |kind: TargetKind| -> Vec<&str> {
            let names: Vec<&str> = match kind {
                TargetKind::Upstream => config.upstreams.keys().map(String::as_str).collect(),
                TargetKind::Static => config.static_mounts.keys().map(String::as_str).collect(),
                TargetKind::Reply | TargetKind::Refused | TargetKind::Failed | TargetKind::Starting => {
                    config.routing.routers.iter().map(|r| r.display_name()).collect()
                }
                TargetKind::Rebind | TargetKind::None => Vec::new(),
            };
            names.into_iter().chain([""]).collect()
        };
        let targets = TargetKind::ALL
            .iter()
            .map(|&kind| {
                let target = kind.as_str();
                names(kind)
                    .into_iter()
                    .map(|name| {
                        let series = TargetSeries {
                            by_class: ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|status| {
                                Series::new(&requests, RequestLabels { target, name: name.to_owned(), status })
                            }),
                            duration: Series::new(&request_duration, TargetLabels { target, name: name.to_owned() }),
                        };
                        (name.to_owned(), series)
                    })
                    .collect()
            })
            .collect();
        let bridge = BridgeKind::ALL
            .iter()
            .map(|kind| {
                BridgeVerdict::ALL.map(|verdict| {
                    Series::new(&bridge_family, BridgeLabels { kind: kind.as_str(), verdict: verdict.as_str() })
                })
            })
            .collect();
        let bridge_duration = BridgeKind::ALL
            .iter()
            .map(|kind| Series::new(&bridge_durations, BridgeKindLabels { kind: kind.as_str() }))
            .collect();
        Metrics {
            registry,
            targets,
            connections,
            tunnels,
            connect_errors,
            refusals,
            upstream_ready,
            endpoint_up,
            ejections,
            restarts,
            bridge,
            bridge_duration,
            plugin_calls,
            plugin_duration,
            reloads,
            identity,
            certificates,
            redis,
        }
    }

    /// A request answered with `status` after `took`.
    pub fn request(&self, target: &Target, status: StatusCode, took: Duration) {
        let by_name = &self.targets[target.kind as usize];
        let Some(series) = by_name.get(&target.name).or_else(|| by_name.get("")) else { return };
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        series.by_class[class].get().inc();
        series.duration.get().observe(took.as_secs_f64());
    }

    /// The open-connections gauge: up on accept, down when the connection ends.
    pub fn connection_opened(&self) -> OpenGuard {
        OpenGuard::new(&self.connections)
    }

    /// The open-tunnels gauge of `kind`, held while the tunnel runs.
    pub fn tunnel_opened(&self, kind: TunnelKind) -> OpenGuard {
        OpenGuard::new(&self.tunnels[kind as usize])
    }

    /// The counter of connections to `upstream` refused or timed out, for its pool.
    pub fn connect_errors(&self, upstream: &str) -> Counter {
        self.connect_errors.get_or_create_owned(&UpstreamLabels { upstream: upstream.to_owned() })
    }

    /// The counter of refusals by the cap of config key `limit`, for its owner.
    pub fn refusals(&self, limit: &str) -> Counter {
        self.refusals.get_or_create_owned(&LimitLabels { limit: limit.to_owned() })
    }

    /// A supervised upstream's health (`isthmus run`).
    pub fn upstream_ready(&self, upstream: &str, ready: bool) {
        self.upstream_ready.get_or_create(&UpstreamLabels { upstream: upstream.to_owned() }).set(i64::from(ready));
    }

    /// The up gauge of one endpoint of `upstream`, for the endpoint.
    pub fn endpoint_up(&self, upstream: &str, endpoint: &str) -> Gauge {
        self.endpoint_up
            .get_or_create_owned(&EndpointLabels { upstream: upstream.to_owned(), endpoint: endpoint.to_owned() })
    }

    /// The ejections counter of one endpoint of `upstream`, for the endpoint.
    pub fn endpoint_ejections(&self, upstream: &str, endpoint: &str) -> Counter {
        self.ejections
            .get_or_create_owned(&EndpointLabels { upstream: upstream.to_owned(), endpoint: endpoint.to_owned() })
    }

    /// A supervised upstream's process restarted.
    pub fn child_restarted(&self, upstream: &str) {
        self.restarts.get_or_create(&UpstreamLabels { upstream: upstream.to_owned() }).inc();
    }

    /// A bridged packet judged.
    pub fn bridge_event(&self, kind: BridgeKind, verdict: BridgeVerdict, took: Duration) {
        self.bridge[kind as usize][verdict as usize].get().inc();
        self.bridge_duration[kind as usize].get().observe(took.as_secs_f64());
    }

    /// The series of plugin `plugin` of world `world`.
    pub fn plugin(&self, plugin: &str, world: &'static str) -> PluginSeries {
        let plugin = plugin.to_owned();
        PluginSeries {
            calls: CallOutcome::ALL.map(|outcome| {
                Series::new(
                    &self.plugin_calls,
                    PluginCallLabels { plugin: plugin.clone(), world, outcome: outcome.as_str() },
                )
            }),
            duration: Series::new(&self.plugin_duration, PluginLabels { plugin: plugin.clone(), world }),
            reloads: ["ok", "refused"]
                .map(|result| Series::new(&self.reloads, ReloadLabels { plugin: plugin.clone(), world, result })),
        }
    }

    /// An identity lookup's result.
    pub fn identity(&self, lookup: Lookup) {
        self.identity[lookup as usize].inc();
    }

    /// The Redis link's series (`peers`): exported only with `[redis]`.
    pub fn redis(&self) -> &RedisSeries {
        &self.redis
    }

    /// Record when the TLS certificate `certificate` expires (`not_after`, as a Unix
    /// time in seconds). `certificate` is its configured name (or its first DNS name):
    /// a bounded label. Call it when the certificate is loaded and on each reload.
    pub fn tls_certificate_expiry(&self, certificate: &str, not_after_unix_s: i64) {
        self.certificates
            .get_or_create(&CertificateLabels { certificate: certificate.to_owned() })
            .set(not_after_unix_s);
    }

    /// The text of a scrape: OpenMetrics when `openmetrics`, else Prometheus' text
    /// format 0.0.4.
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let encoded = match openmetrics {
            true => prometheus_client::encoding::text::encode(&mut out, &self.registry),
            false => prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry),
        };
        // Writing into a String fails only on a metric's own encoding error, which
        // these families (fixed types, valid names) do not have.
        encoded.expect("metrics encode");
        out
    }
}

/// What happened to one message between gateways (`peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMessage {
    /// A login or logout seen here, published.
    Sent,
    /// Another gateway's, applied here.
    Received,
    /// Not published: the queue was full while the link was down.
    Dropped,
    /// Read from the channel but not a message of this site's gateways.
    Rejected,
}

impl PeerMessage {
    const ALL: [PeerMessage; 4] =
        [PeerMessage::Sent, PeerMessage::Received, PeerMessage::Dropped, PeerMessage::Rejected];

    fn as_str(self) -> &'static str {
        match self {
            PeerMessage::Sent => "sent",
            PeerMessage::Received => "received",
            PeerMessage::Dropped => "dropped",
            PeerMessage::Rejected => "rejected",
        }
    }
}

/// The link to the other gateways through Redis: whether it is up, and its messages.
#[derive(Clone)]
pub struct RedisSeries {
    up: Gauge,
    family: Family<OutcomeLabels, Counter>,
    /// By `PeerMessage`: every outcome exported from the start, zero until it happens.
    messages: [Counter; 4],
}

impl RedisSeries {
    fn new() -> RedisSeries {
        let family = Family::<OutcomeLabels, Counter>::default();
        let messages = PeerMessage::ALL.map(|m| family.get_or_create_owned(&OutcomeLabels { outcome: m.as_str() }));
        RedisSeries { up: Gauge::default(), family, messages }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "redis_up",
            "1 while the link to Redis (the other gateways' logins and logouts) is up, else 0: the identity cache then relies on its TTL alone",
            self.up.clone(),
        );
        registry.register(
            "redis_invalidations",
            "Logins and logouts between gateways: sent, received (from another gateway), dropped (queue full while the link was down), rejected (not signed by this site's gateways)",
            self.family.clone(),
        );
    }

    pub fn link(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    pub fn message(&self, message: PeerMessage) {
        self.messages[message as usize].inc();
    }
}

/// Holds one unit of an open-things gauge; gives it back when dropped.
pub struct OpenGuard(Gauge);

impl OpenGuard {
    fn new(gauge: &Gauge) -> OpenGuard {
        gauge.inc();
        OpenGuard(gauge.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
