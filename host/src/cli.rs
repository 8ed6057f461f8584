//! The `isthmus` command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::caps::ConnectionCaps;
use crate::config::{Address, Config, ConfigError};
use crate::dispatch::{Gateway, Supervised};
use crate::metrics::listener::ReadyCheck;
use crate::metrics::{self, Metrics};
use crate::plugin::{PluginError, PluginHost, Plugins, WasmBridge, WasmRouter};
use crate::policy::{BridgePolicy, Decision, Outcome, Refusal, Resolved, Router, RouterChain, Step};
use crate::redirect::Redirect;
use crate::reload::{spawn_reloader, Reload};
use crate::request::{self, Peer};
use crate::server::{self, ServerSettings};
use crate::supervise::sockets::SocketDir;
use crate::supervise::{Readiness, SuperviseError, Supervisor};
use crate::tls::{Tls, TlsError};
use crate::upstream::headers::ClientHeaders;

#[derive(Debug, Parser)]
#[command(name = "isthmus", version, about = "One origin for a Django project and a Reflex app")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway only (Django and Reflex already running).
    Serve {
        #[arg(long, short, default_value = "isthmus.toml")]
        config: PathBuf,
    },
    /// Start every upstream that has a `run` command, wait for each to be healthy, and
    /// serve; restart one that exits; stop them all on SIGINT/SIGTERM.
    Run {
        #[arg(long, short, default_value = "isthmus.toml")]
        config: PathBuf,
        /// Start each upstream's `dev_run` instead of `run`, and proxy the `[dev]`
        /// dev server (with its hot-reload WebSocket) instead of its static mount.
        #[arg(long)]
        dev: bool,
    },
    /// Validate the config and load and init every plugin, and (with a `[django]` section)
    /// compare the prefix router's Django prefixes with what Django reports now; exit 0
    /// when all is well.
    Check {
        #[arg(long, short, default_value = "isthmus.toml")]
        config: PathBuf,
    },
    /// Show where a request would go, and which router decided.
    Route {
        #[arg(long, short, default_value = "isthmus.toml")]
        config: PathBuf,
        /// HTTP method, e.g. GET.
        method: String,
        /// Request path, optionally with `?query`.
        path: String,
        /// Host header the request carries.
        #[arg(long, default_value = "localhost")]
        host: String,
        /// Extra request header, `Name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
    },
    /// Write, test and measure policies (WebAssembly components of `wit/policy.wit`).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Write isthmus.toml (and the secrets in isthmus.env) for a folder holding a Django
    /// project (manage.py) and a Reflex app (rxconfig.py); never overwrites either file.
    Init {
        /// The project folder: manage.py and rxconfig.py in it or its immediate subfolders.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The project's Python, which runs `manage.py isthmus_prefixes` [default: $VIRTUAL_ENV/bin/python, else python3]
        #[arg(long)]
        python: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write a new policy project in DIR: a template of LANG for WORLD, with its own copy
    /// of the contract (and, for Rust, of the SDK), unit tests and a cases.toml.
    New {
        /// rust, python, js or c.
        #[arg(long)]
        lang: String,
        /// router or bridge.
        #[arg(long)]
        world: String,
        dir: PathBuf,
    },
    /// Run the cases of CASES (TOML) against PLUGIN (a component), loaded as the gateway
    /// loads it; exit 1 when any answer differs from the expected one.
    Test { plugin: PathBuf, cases: PathBuf },
    /// Time PLUGIN on the first case of CASES: compiling (without and with the cache),
    /// the memory an instance starts with, and the cost per call on a reused instance
    /// and on a new one.
    Bench { plugin: PathBuf, cases: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Init(#[from] crate::init::InitError),
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
    #[error(transparent)]
    Scaffold(#[from] crate::scaffold::ScaffoldError),
    #[error(transparent)]
    Harness(#[from] crate::harness::HarnessError),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Usage(String),
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { config } => serve(&config, None),
        Command::Run { config, dev } => serve(&config, Some(dev)),
        Command::Check { config } => check(&config),
        Command::Route { config, method, path, host, headers } => route(&config, &method, &path, &host, &headers),
        Command::Init { dir, python } => Ok(crate::init::run(&dir, python.as_deref())?),
        Command::Plugin { command: PluginCommand::New { lang, world, dir } } => plugin_new(&lang, &world, &dir),
        Command::Plugin { command: PluginCommand::Test { plugin, cases } } => plugin_test(&plugin, &cases),
        Command::Plugin { command: PluginCommand::Bench { plugin, cases } } => plugin_bench(&plugin, &cases),
    }
}

/// The config and every plugin it names, loaded and `init`ed.
struct Loaded {
    config: Config,
    routers: Vec<Arc<WasmRouter>>,
    bridge: Option<Arc<WasmBridge>>,
    chain: RouterChain,
    /// `[listen.tls]`'s certificates, read and checked.
    tls: Option<Tls>,
    metrics: Arc<Metrics>,
}

impl Loaded {
    /// `wait`: see `PluginHost::load`.
    fn new(config_path: &Path, wait: impl FnOnce(&Config) -> Option<Duration>) -> Result<Loaded, CliError> {
        let config = Config::load(config_path)?;
        let metrics = Arc::new(Metrics::new(&config));
        let tls = match &config.listen.tls {
            Some(tls_config) => Some(Tls::new(tls_config, &metrics).map_err(|e| {
                let key = match &e {
                    TlsError::File { path, .. } | TlsError::Mismatch { key: path, .. } => tls_config.key_of(path),
                };
                ConfigError { file: config.file.clone(), key, message: e.to_string() }
            })?),
            None => None,
        };
        let host = PluginHost::new()?;
        let Plugins { routers, bridge } = host.load(&config, wait(&config))?;
        let chain = RouterChain::new(routers.iter().map(|r| r.clone() as Arc<dyn Router>).collect());
        routers.iter().for_each(|r| r.measure(&metrics));
        if let Some(b) = &bridge {
            b.measure(&metrics);
        }
        Ok(Loaded { config, routers, bridge, chain, tls, metrics })
    }

    fn gateway(&self) -> Result<Gateway, CliError> {
        let policy = self.bridge.clone().map(|b| b as Arc<dyn BridgePolicy>);
        Gateway::new(&self.config, self.chain.clone(), policy, self.metrics.clone())
            .map_err(|e| CliError::Io(format!("{}: {e}", self.config.file.display())))
    }

    /// `/readyz`: every plugin serves a version, every supervised upstream is ready,
    /// and the gateway is not draining.
    fn ready_check(&self, readiness: Option<Arc<Readiness>>, draining: CancellationToken) -> ReadyCheck {
        let (routers, bridge) = (self.routers.clone(), self.bridge.clone());
        Box::new(move || {
            if draining.is_cancelled() {
                return Err("shutting down".into());
            }
            let not_serving = routers.iter().find(|r| r.load_info().is_none()).map(|r| r.name());
            if let Some(name) = not_serving.or(bridge.as_ref().filter(|b| b.load_info().is_none()).map(|b| b.name())) {
                return Err(format!("plugin `{name}` is not loaded yet (compiling, or its first version failed)"));
            }
            let waiting: Vec<&str> = readiness.iter().flat_map(|r| r.waiting()).collect();
            match waiting.is_empty() {
                true => Ok(()),
                false => Err(format!("upstreams not ready yet: {}", waiting.join(", "))),
            }
        })
    }

    /// Reload on file change: the certificates, and the plugins with `routing.hot_reload`;
    /// SIGHUP reloads all of them.
    fn start_reloader(&self) -> crate::reload::ReloaderHandle {
        let routers = self.routers.iter().map(|r| r.clone() as Arc<dyn Reload>);
        let plugins: Vec<_> = routers.chain(self.bridge.iter().map(|b| b.clone() as Arc<dyn Reload>)).collect();
        let certificates = self.tls.iter().map(Tls::reloadable);
        let (watched, sighup_only) =
            if self.config.routing.hot_reload { (plugins, Vec::new()) } else { (Vec::new(), plugins) };
        spawn_reloader(watched.into_iter().chain(certificates).collect(), sighup_only)
    }

    fn peer(&self) -> Peer {
        Peer { ip: "127.0.0.1".into(), tls: self.tls.is_some() }
    }
}

/// `isthmus serve` (`run` = None) or `isthmus run` (`run` = Some(dev)).
fn serve(config_path: &Path, run: Option<bool>) -> Result<(), CliError> {
    // A plugin still compiling after `startup_wait` does not hold up serving.
    let mut loaded = Loaded::new(config_path, |config| Some(config.routing.startup_wait))?;
    // The sockets `isthmus run` picks exist before the pools that connect to them; the
    // folder goes when this returns, after the children are stopped.
    let _sockets = match run {
        Some(_) => SocketDir::place(&mut loaded.config)?,
        None => match loaded.config.upstreams.iter().find(|(_, u)| u.picks_sockets) {
            Some((name, _)) => {
                return Err(CliError::Usage(format!(
                    "{}: upstreams.{name}: its Unix socket is picked by `isthmus run` (`{{uds}}` in its command, no `url`), so `serve` cannot reach it; use `isthmus run`, or start it yourself and give `url = \"unix:/path/to/{name}.sock\"`",
                    loaded.config.file.display()
                )))
            }
            None => None,
        },
    };
    let config = &loaded.config;
    crate::logging::set_format(config.log.format);
    let file = config.file.display();
    let dev = match (run, &config.dev) {
        (Some(true), None) => {
            return Err(CliError::Usage(format!(
                "{file}: --dev needs a [dev] section (which static mount the dev server replaces)"
            )))
        }
        (Some(true), Some(dev)) => Some((dev.static_mount.clone(), dev.upstream.clone())),
        _ => None,
    };
    // One worker: a current-thread runtime does the same work without cross-thread
    // wakeups or work-stealing bookkeeping.
    let mut runtime = match config.listen.workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        n => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(n);
            runtime
        }
    };
    let runtime = runtime.enable_all().build().map_err(|e| CliError::Io(format!("cannot start the runtime: {e}")))?;
    crate::caps::raise_file_limit(config.listen.max_connections);
    runtime.block_on(async {
        let mut gateway = loaded.gateway()?;
        let listener = tokio::net::TcpListener::bind(config.listen.addr)
            .await
            .map_err(|e| CliError::Io(format!("{file}: listen.addr: cannot listen on {}: {e}", config.listen.addr)))?;
        let metrics_listener = match &config.metrics {
            Some(m) => Some(tokio::net::TcpListener::bind(m.listen).await.map_err(|e| {
                CliError::Io(format!("{file}: metrics.listen: cannot listen on {}: {e}", m.listen))
            })?),
            None => None,
        };
        // Children only once the ports are ours: a second `isthmus run` fails before starting any.
        let supervisor = match run {
            Some(dev_mode) => {
                Some(Supervisor::start(config, dev_mode, gateway.upstreams(), loaded.metrics.clone()).await?)
            }
            None => None,
        };
        if let Some(s) = &supervisor {
            gateway = gateway.supervised(Supervised { readiness: s.readiness(), dev });
        }
        let caps = ConnectionCaps::from_config(&config.listen, &loaded.metrics);
        let redirect = match config.listen.tls.as_ref().and_then(|t| t.redirect_addr.map(|a| (t, a))) {
            Some((tls, addr)) => {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    CliError::Io(format!("{file}: listen.tls.redirect_addr: cannot listen on {addr}: {e}"))
                })?;
                let redirect = Redirect::new(
                    config.listen.addr.port(),
                    tls.acme_challenge_dir.clone(),
                    &config.timeouts,
                    caps.clone(),
                );
                Some((listener, redirect))
            }
            None => None,
        };
        let (draining, stopped) = (CancellationToken::new(), CancellationToken::new());
        let metrics_server = metrics_listener.map(|listener| {
            let ready = loaded.ready_check(supervisor.as_ref().map(Supervisor::readiness), draining.clone());
            let stopped = stopped.clone();
            tracing::info!(addr = %listener.local_addr().map_or(String::new(), |a| a.to_string()), "metrics listening");
            tokio::spawn(metrics::listener::serve(listener, loaded.metrics.clone(), ready, async move {
                stopped.cancelled().await
            }))
        });
        // Watching before announcing readiness: a change right after it is not missed.
        let _reloader = loaded.start_reloader();
        if let Some((listener, redirect)) = redirect {
            tracing::info!(addr = %listener.local_addr().map_or(String::new(), |a| a.to_string()), "redirecting plain HTTP to https");
            tokio::spawn(Arc::new(redirect).serve(listener, draining.clone().cancelled_owned()));
        }
        let tls = loaded.tls.as_ref().map(Tls::acceptor);
        if run.is_some() {
            // Django's prefixes now against the config's, in the background: a warning, never a wait.
            crate::init::drift::warn_in_background(config);
        }
        tracing::info!(addr = %config.listen.addr, tls = tls.is_some(), routers = loaded.routers.len(), bridge = loaded.bridge.is_some(), "isthmus listening");
        let gateway = Arc::new(gateway);
        // A pool that may not serve (Reflex replicas without Redis) stops the gateway
        // with its reason, as a bad config would have.
        let refused = std::sync::OnceLock::new();
        let shutdown = async {
            tokio::select! {
                () = server::shutdown_signal() => {}
                why = gateway.upstreams().refused() => {
                    let _ = refused.set(why);
                }
            }
            draining.cancel();
        };
        server::serve(listener, tls, gateway.clone(), ServerSettings::from_config(config), caps, shutdown).await;
        if let Some(s) = supervisor {
            s.stop().await;
        }
        stopped.cancel();
        if let Some(task) = metrics_server {
            let _ = task.await;
        }
        if let Some(why) = refused.into_inner() {
            return Err(CliError::Failed(format!("{file}: {why}")));
        }
        tracing::info!("isthmus stopped");
        Ok(())
    })
}

fn check(config_path: &Path) -> Result<(), CliError> {
    let loaded = Loaded::new(config_path, |_| None)?;
    loaded.gateway()?;
    let config = &loaded.config;
    if let Some(tls) = &loaded.tls {
        check_certificates(tls, &config.file)?;
    }
    crate::init::drift::check(config)
        .map_err(|drift| CliError::Failed(format!("{}: {drift}", config.file.display())))?;
    let bridge = match &loaded.bridge {
        Some(b) => format!(
            ", bridge on {} with policy {}",
            config.bridge.as_ref().map_or("", |c| c.path.as_str()),
            BridgePolicy::name(b.as_ref())
        ),
        None => String::new(),
    };
    println!(
        "{}: ok ({} upstreams, {} static mounts, routers: {}{bridge})",
        config_path.display(),
        config.upstreams.len(),
        config.static_mounts.len(),
        loaded.routers.iter().map(|r| Router::name(r.as_ref()).to_owned()).collect::<Vec<_>>().join(" → ")
    );
    Ok(())
}

/// Each certificate's names and expiry; an expired or not yet valid one fails the
/// check, one expiring within `limits::TLS_EXPIRY_WARNING` is named.
fn check_certificates(tls: &Tls, file: &Path) -> Result<(), CliError> {
    let now = std::time::SystemTime::now();
    let mut bad = Vec::new();
    for c in tls.certificates() {
        let expires = httpdate::fmt_http_date(c.not_after);
        match c.validity(now, crate::limits::TLS_EXPIRY_WARNING) {
            Ok(None) => println!(
                "certificate {} ({}): key matches, expires {expires}",
                c.cert_file.display(),
                c.names.join(", ")
            ),
            Ok(Some(soon)) => println!("warning: certificate {soon}: renew it"),
            Err(problem) => bad.push(format!("certificate {problem}")),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!("{}: listen.tls: {}", file.display(), bad.join("; "))))
    }
}

fn route(config_path: &Path, method: &str, target: &str, host: &str, headers: &[String]) -> Result<(), CliError> {
    let loaded = Loaded::new(config_path, |_| None)?;
    let peer = loaded.peer();
    let Loaded { config, chain, .. } = loaded;
    let mut builder = http::Request::builder()
        .method(method.to_ascii_uppercase().as_str())
        .uri(target)
        .header(http::header::HOST, host);
    for h in headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| CliError::Usage(format!("header `{h}` is not `Name: value`")))?;
        builder = builder.header(name.trim(), value.trim());
    }
    let mut req = builder.body(()).map_err(|e| CliError::Usage(format!("not a valid request: {e}")))?;

    println!("{} {}", req.method(), req.uri());
    let sent: Vec<http::HeaderName> = req.headers().keys().cloned().collect();
    let clean = ClientHeaders::new(&config.headers);
    let canonical = match request::canonicalize(&mut req, &peer, 0, &clean, None) {
        Ok(c) => c,
        Err(e) => {
            println!("  refused with 400 before routing: {e}");
            return Ok(());
        }
    };
    let removed: Vec<&str> =
        sent.iter().filter(|name| !req.headers().contains_key(*name)).map(http::HeaderName::as_str).collect();
    if !removed.is_empty() {
        println!("  removed at the door ([headers]): {}", removed.join(", "));
    }
    if canonical.route.path != req.uri().path() {
        println!("  canonical path: {}", canonical.route.path);
    }
    let mut trace = Vec::new();
    // Routers that need the user are lent an anonymous visitor.
    let who = chain.needs_identity().then(Resolved::anonymous);
    let outcome = chain.route(&canonical.route, who.as_ref(), Some(&mut trace));
    for (i, (router, step)) in trace.iter().enumerate() {
        let what = match step {
            Step::Decided(d) => describe(&config, d),
            Step::Passed => "pass".to_owned(),
            Step::FailedOpen(f) => format!("failed ({f}); fail = \"open\", so the next router decides"),
            Step::FailedClosed(f) => format!("failed ({f}); fail = \"closed\""),
        };
        println!("  {}. {router}: {what}", i + 1);
    }
    match outcome {
        Outcome::Decided { router, decision } => println!("→ {} (decided by `{router}`)", describe(&config, &decision)),
        Outcome::Failed { router, .. } => println!("→ 503 Service Unavailable (router `{router}` failed closed)"),
        Outcome::NoRoute => println!("→ 404 Not Found (every router passed)"),
    }
    Ok(())
}

fn describe(config: &Config, decision: &Decision) -> String {
    match decision {
        Decision::Forward(f) => {
            let at = match config.upstreams.get(&f.upstream) {
                Some(u) if u.picks_sockets => {
                    format!("at {} Unix socket(s) `isthmus run` picks", u.addresses.len())
                }
                Some(u) => {
                    let addresses: Vec<_> = u
                        .addresses
                        .iter()
                        .map(|a| match a {
                            Address::Tcp { .. } => format!("http://{a}"),
                            Address::Unix(_) => a.to_string(),
                        })
                        .collect();
                    format!("at {}", addresses.join(", "))
                }
                None => "which is not configured: 502".to_owned(),
            };
            let mut s = format!("forward to upstream `{}` {at}", f.upstream);
            if let Some(p) = &f.path {
                s += &format!(", path rewritten to {p}");
            }
            if !f.set_headers.is_empty() || !f.remove_headers.is_empty() {
                s += &format!(", set headers {:?}, remove headers {:?}", f.set_headers, f.remove_headers);
            }
            s
        }
        Decision::ServeStatic(mount) => match config.static_mounts.get(mount) {
            Some(m) => format!("serve from static mount `{mount}` ({})", m.root.display()),
            None => format!("serve from static mount `{mount}`, which is not configured: 502"),
        },
        Decision::Reply(r) => {
            format!("reply {} with {} header(s) and a {}-byte body", r.status, r.headers.len(), r.body.len())
        }
        Decision::Refuse(Refusal::LoginRequired(url)) => format!("refuse: 302 to the login page {url}"),
        Decision::Refuse(Refusal::Forbidden(reason)) => format!("refuse: 403 ({reason})"),
        Decision::Pass => "pass".to_owned(),
    }
}

fn plugin_new(lang: &str, world: &str, dir: &Path) -> Result<(), CliError> {
    let files = crate::scaffold::new_project(lang, world, dir)?;
    println!("wrote a {lang} {world} policy in {} ({} files); see its README.md", dir.display(), files.len());
    Ok(())
}

fn plugin_test(plugin: &Path, cases: &Path) -> Result<(), CliError> {
    let outcomes = crate::harness::run(plugin, cases)?;
    let failed = outcomes.iter().filter(|o| o.mismatch.is_some()).count();
    for outcome in &outcomes {
        match &outcome.mismatch {
            None => println!("ok     {}", outcome.name),
            Some(diff) => println!("FAILED {}\n      {diff}", outcome.name),
        }
    }
    println!("{} passed, {failed} failed", outcomes.len() - failed);
    if failed > 0 {
        return Err(CliError::Failed(format!("{failed} of {} cases failed", outcomes.len())));
    }
    Ok(())
}

fn plugin_bench(plugin: &Path, cases: &Path) -> Result<(), CliError> {
    let b = crate::harness::bench(plugin, cases)?;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("{} (world {}), {} bytes", plugin.display(), b.world, b.file_bytes);
    println!("compile: {:.0} ms without the cache, {:.1} ms from it", us(b.compile) / 1e3, us(b.cache_hit) / 1e3);
    match b.memory_at_start {
        Some(bytes) => println!("memory at start: {:.1} MiB of linear memory after setup", bytes as f64 / 1048576.0),
        None => println!("memory at start: unknown (no idle instance)"),
    }
    let [median, min, max] = b.reused;
    println!("per call, reused instance: {:.2} µs median [{:.2} … {:.2}]", us(median), us(min), us(max));
    let [median, min, max] = b.fresh;
    println!("per call, new instance: {:.1} µs median [{:.1} … {:.1}]", us(median), us(min), us(max));
    Ok(())
}
