//! The `isthmus` command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::dispatch::{Gateway, Supervised};
use crate::plugin::{self, PluginError, PluginHost, Plugins, Reload, WasmBridge, WasmRouter};
use crate::policy::{BridgePolicy, Decision, Outcome, Refusal, Resolved, Router, RouterChain, Step};
use crate::request;
use crate::server::{self, ServerSettings};
use crate::supervise::{SuperviseError, Supervisor};

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
    /// Validate the config and load and init every plugin; exit 0 when all is well.
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
}

impl Loaded {
    /// `wait`: see `PluginHost::load`.
    fn new(config_path: &Path, wait: impl FnOnce(&Config) -> Option<Duration>) -> Result<Loaded, CliError> {
        let config = Config::load(config_path)?;
        let host = PluginHost::new()?;
        let Plugins { routers, bridge } = host.load(&config, wait(&config))?;
        let chain = RouterChain::new(routers.iter().map(|r| r.clone() as Arc<dyn Router>).collect());
        Ok(Loaded { config, routers, bridge, chain })
    }

    fn gateway(&self) -> Result<Gateway, CliError> {
        let policy = self.bridge.clone().map(|b| b as Arc<dyn BridgePolicy>);
        Gateway::new(&self.config, self.chain.clone(), policy)
            .map_err(|e| CliError::Io(format!("{}: {e}", self.config.file.display())))
    }

    /// Every plugin, for the hot reloader.
    fn reloadable(&self) -> Vec<Arc<dyn Reload>> {
        let routers = self.routers.iter().map(|r| r.clone() as Arc<dyn Reload>);
        routers.chain(self.bridge.iter().map(|b| b.clone() as Arc<dyn Reload>)).collect()
    }
}

/// `isthmus serve` (`run` = None) or `isthmus run` (`run` = Some(dev)).
fn serve(config_path: &Path, run: Option<bool>) -> Result<(), CliError> {
    // A plugin still compiling after `startup_wait` does not hold up serving.
    let loaded = Loaded::new(config_path, |config| Some(config.routing.startup_wait))?;
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
    runtime.block_on(async {
        let mut gateway = loaded.gateway()?;
        let listener = tokio::net::TcpListener::bind(config.listen.addr)
            .await
            .map_err(|e| CliError::Io(format!("{file}: listen.addr: cannot listen on {}: {e}", config.listen.addr)))?;
        // Children only once the port is ours: a second `isthmus run` fails before starting any.
        let supervisor = match run {
            Some(dev_mode) => Some(Supervisor::start(config, dev_mode).await?),
            None => None,
        };
        if let Some(s) = &supervisor {
            gateway = gateway.supervised(Supervised { readiness: s.readiness(), dev });
        }
        // Watching before announcing readiness: a change right after it is not missed.
        let _reloader = plugin::spawn_reloader(loaded.reloadable(), config.routing.plugins_dir.clone(), config.routing.hot_reload);
        tracing::info!(addr = %config.listen.addr, routers = loaded.routers.len(), bridge = loaded.bridge.is_some(), "isthmus listening");
        server::serve(listener, Arc::new(gateway), ServerSettings::from_config(config), server::shutdown_signal()).await;
        if let Some(s) = supervisor {
            s.stop().await;
        }
        tracing::info!("isthmus stopped");
        Ok(())
    })
}

fn check(config_path: &Path) -> Result<(), CliError> {
    let loaded = Loaded::new(config_path, |_| None)?;
    loaded.gateway()?;
    let config = &loaded.config;
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

fn route(config_path: &Path, method: &str, target: &str, host: &str, headers: &[String]) -> Result<(), CliError> {
    let Loaded { config, chain, .. } = Loaded::new(config_path, |_| None)?;
    let mut builder = http::Request::builder()
        .method(method.to_ascii_uppercase().as_str())
        .uri(target)
        .header(http::header::HOST, host);
    for h in headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| CliError::Usage(format!("header `{h}` is not `Name: value`")))?;
        builder = builder.header(name.trim(), value.trim());
    }
    let req = builder.body(()).map_err(|e| CliError::Usage(format!("not a valid request: {e}")))?;

    println!("{} {}", req.method(), req.uri());
    let canonical = match request::canonicalize(&req, "127.0.0.1", 0, None) {
        Ok(c) => c,
        Err(e) => {
            println!("  refused with 400 before routing: {e}");
            return Ok(());
        }
    };
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
                Some(u) => format!("at {}", u.url),
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
