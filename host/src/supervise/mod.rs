//! `isthmus run`: starts the upstreams that have a command (once per endpoint of a
//! pool: `replicas`), waits for each to be healthy before its pool sends it work,
//! restarts one that exits (with exponential backoff) and, when the gateway stops,
//! drains each (no new work, what it has finished) and stops it, process group by
//! process group. On SIGHUP (reload) the replicas of each upstream that has several
//! are restarted one at a time, each drained first and the next only once it is
//! healthy again, so that new code is picked up without a failed request.

mod child;
pub mod command;
mod health;
mod readiness;
pub mod sockets;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use readiness::Readiness;

use crate::config::{Address, Config, Upstream};
use crate::limits;
use crate::metrics::Metrics;
use crate::upstream::{Endpoint, Upstreams};
use child::{Running, Spec};

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("{file}: upstreams.{name}.{field}: {message}")]
    Command { file: String, name: String, field: &'static str, message: String },
    #[error("{file}: upstreams.{name}.{field}: cannot start `{program}`: {error}")]
    Spawn { file: String, name: String, field: &'static str, program: String, error: std::io::Error },
    #[error("cannot create a folder for the upstreams' Unix sockets in {dir}: {error}")]
    SocketDir { dir: String, error: std::io::Error },
}

pub struct Supervisor {
    readiness: Arc<Readiness>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// One supervised endpoint of an upstream: started by us, or only watched.
struct Watched {
    upstream: String,
    endpoint: Arc<Endpoint>,
    address: Address,
    health: Option<String>,
}

impl Supervisor {
    /// Starts every upstream whose command for this mode exists (`dev_run` with
    /// `dev`, else `run`), and watches the health of those that have no command at
    /// all but a `health` path. A command that cannot be started the first time is
    /// an error (the children already started are stopped first); later it is retried.
    pub async fn start(
        config: &Config,
        dev: bool,
        upstreams: &Upstreams,
        metrics: Arc<Metrics>,
    ) -> Result<Supervisor, SuperviseError> {
        let file = config.file.display().to_string();
        let dev_only = config.dev.as_ref().filter(|_| !dev).map(|d| d.upstream.as_str());
        let mut started = Vec::new();
        let mut watched = Vec::new();
        let mut supervised = Vec::new();
        for (name, upstream) in &config.upstreams {
            let (field, command) = match (dev, &upstream.dev_run, &upstream.run) {
                (true, Some(c), _) => ("dev_run", Some(c)),
                (_, _, Some(c)) => ("run", Some(c)),
                _ => ("run", None),
            };
            let watch_only = upstream.health.is_some() && upstream.dev_run.is_none() && dev_only != Some(name);
            if command.is_none() && !watch_only {
                continue;
            }
            let pool = upstreams.get(name).expect("every configured upstream has a pool");
            supervised.push((name.clone(), pool.endpoints().to_vec()));
            for (endpoint, address) in pool.endpoints().iter().zip(&upstream.addresses) {
                let w = Watched {
                    upstream: name.clone(),
                    endpoint: endpoint.clone(),
                    address: address.clone(),
                    health: upstream.health.as_ref().map(|h| h.path.clone()),
                };
                match command {
                    Some(command) => {
                        let spec = spec(&w, command, upstream, config).map_err(|message| SuperviseError::Command {
                            file: file.clone(),
                            name: name.clone(),
                            field,
                            message,
                        })?;
                        started.push((w, field, spec));
                    }
                    None => watched.push(w),
                }
            }
        }
        let readiness = Arc::new(Readiness::new(supervised).measured(metrics.clone()));
        let stop = CancellationToken::new();
        let mut running = Vec::new();
        for (w, field, spec) in started {
            match spec.spawn() {
                Ok(r) => {
                    tracing::info!(upstream = %w.endpoint.name(), pid = r.pid(), command = %spec.argv.join(" "), "started");
                    running.push((w, spec, r));
                }
                Err(error) => {
                    for (_, _, r) in running {
                        r.stop(limits::CHILD_STOP_GRACE).await;
                    }
                    let (name, program) = (w.upstream, spec.argv[0].clone());
                    return Err(SuperviseError::Spawn { file, name, field, program, error });
                }
            }
        }
        let mut tasks = JoinSet::new();
        let mut replicas: Vec<(String, Vec<Restart>)> = Vec::new();
        for (w, spec, r) in running {
            let (tx, rx) = mpsc::channel(1);
            match replicas.last_mut() {
                Some((upstream, senders)) if *upstream == w.upstream => senders.push(tx),
                _ => replicas.push((w.upstream.clone(), vec![tx])),
            }
            tasks.spawn(keep_running(w, spec, r, rx, readiness.clone(), stop.clone(), metrics.clone()));
        }
        replicas.retain(|(_, senders)| senders.len() > 1);
        if !replicas.is_empty() {
            tasks.spawn(roll_on_hangup(replicas, stop.clone()));
        }
        for w in watched {
            let (readiness, stop) = (readiness.clone(), stop.clone());
            tasks.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    took = health::wait_healthy(w.endpoint.name(), &w.address, w.health.as_deref()) => mark_ready(&readiness, &w, took),
                }
            });
        }
        Ok(Supervisor { readiness, stop, tasks })
    }

    pub fn readiness(&self) -> Arc<Readiness> {
        self.readiness.clone()
    }

    /// Stops every child (SIGTERM to its group, SIGKILL after the grace) and waits.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

fn spec(w: &Watched, command: &str, upstream: &Upstream, config: &Config) -> Result<Spec, String> {
    Ok(Spec {
        name: w.endpoint.name().to_owned(),
        argv: command::argv(command, &w.address, &|other| config.port_of(other))?,
        // As every relative path of the config: from the config's folder.
        cwd: Some(upstream.cwd.clone().unwrap_or_else(|| config.base_dir.to_owned())),
        address: w.address.clone(),
        env: gateway_env(config),
    })
}

/// What the companion in a supervised process needs to know of the gateway:
/// `ISTHMUS_CONFIG`, the config file (whose page guards `isthmus_reflex.guard_pages`
/// reads), and `ISTHMUS_SESSION_URL`, where session writes go (through the gateway's
/// plain listener, on loopback; with TLS on the listener the operator sets it). Values
/// already in the environment win.
fn gateway_env(config: &Config) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if std::env::var_os("ISTHMUS_CONFIG").is_none() {
        let file = std::path::absolute(&config.file).unwrap_or_else(|_| config.file.clone());
        env.push(("ISTHMUS_CONFIG", file.display().to_string()));
    }
    if std::env::var_os("ISTHMUS_SESSION_URL").is_none() && config.listen.tls.is_none() {
        let mut addr = config.listen.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
        }
        env.push(("ISTHMUS_SESSION_URL", format!("http://{addr}/_isthmus/session")));
    }
    env
}

enum Ended {
    Exited(String),
    Stopping,
    /// A rolling restart asks for this replica; told back once it is healthy again.
    Restarting(oneshot::Sender<()>),
}

/// Asks one replica's task to restart it; the answer comes once it is healthy again.
type Restart = mpsc::Sender<oneshot::Sender<()>>;

/// On each SIGHUP, restarts the replicas of each upstream one after the other.
async fn roll_on_hangup(replicas: Vec<(String, Vec<Restart>)>, stop: CancellationToken) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => return tracing::warn!(error = %e, "cannot listen for SIGHUP: no rolling restarts"),
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = hangup.recv() => {}
        }
        for (upstream, senders) in &replicas {
            tracing::info!(%upstream, replicas = senders.len(), "rolling restart");
            for (i, restart) in senders.iter().enumerate() {
                let (done, healthy) = oneshot::channel();
                let back = async { restart.send(done).await.is_ok() && healthy.await.is_ok() };
                let back = tokio::select! {
                    _ = stop.cancelled() => return,
                    back = back => back,
                };
                if !back {
                    tracing::warn!(%upstream, replica = i + 1, "a replica did not come back: rolling restart stopped, the others keep running");
                    break;
                }
            }
            tracing::info!(%upstream, "rolling restart done");
        }
    }
}

/// One child's life: healthy → ready; exited → not ready, group cleared, restarted
/// after a backoff that doubles up to [`limits::RESTART_BACKOFF_MAX`] and starts over
/// once a run lasted [`limits::RESTART_RESET_AFTER`].
async fn keep_running(
    w: Watched,
    spec: Spec,
    mut running: Running,
    mut restart: mpsc::Receiver<oneshot::Sender<()>>,
    readiness: Arc<Readiness>,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
) {
    let mut backoff = limits::RESTART_BACKOFF_MIN;
    let mut restarts = 0u32;
    let mut told_when_ready = None;
    loop {
        let started = Instant::now();
        let ended = tokio::select! {
            _ = stop.cancelled() => Ended::Stopping,
            Some(done) = restart.recv() => Ended::Restarting(done),
            status = run_until_exit(&w, &mut running, &readiness, &mut told_when_ready) => Ended::Exited(status),
        };
        // Why it is restarted, and whether the backoff starts over (a run that lasted).
        let (status, reset) = match ended {
            Ended::Stopping => return drain_and_stop(&w, running, &readiness).await,
            Ended::Restarting(done) => {
                drain_and_stop(&w, running, &readiness).await;
                match spec.spawn() {
                    Ok(r) => {
                        tracing::info!(upstream = %w.endpoint.name(), pid = r.pid(), "started again (rolling restart)");
                        running = r;
                        told_when_ready = Some(done);
                        continue;
                    }
                    // Dropping `done` tells the rolling restart to go no further.
                    Err(e) => (format!("stopped for a rolling restart, then could not be started: {e}"), false),
                }
            }
            Ended::Exited(status) => {
                readiness.set(&w.upstream, &w.endpoint, false);
                running.clear_group().await;
                (status, started.elapsed() >= limits::RESTART_RESET_AFTER)
            }
        };
        if reset {
            backoff = limits::RESTART_BACKOFF_MIN;
        }
        running = loop {
            restarts += 1;
            tracing::warn!(upstream = %w.endpoint.name(), restart = restarts, in_ms = backoff.as_millis() as u64, "exited ({status}); restarting");
            if !sleep_unless(&stop, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(limits::RESTART_BACKOFF_MAX);
            match spec.spawn() {
                Ok(r) => {
                    metrics.child_restarted(&w.upstream);
                    tracing::info!(upstream = %w.endpoint.name(), pid = r.pid(), restart = restarts, "restarted");
                    break r;
                }
                Err(e) => tracing::error!(upstream = %w.endpoint.name(), "cannot start `{}`: {e}", spec.argv[0]),
            }
        };
    }
}

/// Drained (no new work; what it has finished, up to the grace), then stopped.
async fn drain_and_stop(w: &Watched, running: Running, readiness: &Readiness) {
    if tokio::time::timeout(limits::CHILD_STOP_GRACE, w.endpoint.drain()).await.is_err() {
        tracing::warn!(upstream = %w.endpoint.name(), in_flight = w.endpoint.in_flight(), "still busy after {:?} of draining: stopping it anyway", limits::CHILD_STOP_GRACE);
    }
    readiness.set(&w.upstream, &w.endpoint, false);
    let pid = running.pid();
    if running.stop(limits::CHILD_STOP_GRACE).await {
        tracing::warn!(upstream = %w.endpoint.name(), pid, "did not stop within {:?} of SIGTERM: killed", limits::CHILD_STOP_GRACE);
    } else {
        tracing::info!(upstream = %w.endpoint.name(), pid, "stopped");
    }
}

/// Waits for the child to be healthy (then marks it ready, and tells `told_when_ready`)
/// and for it to exit.
async fn run_until_exit(
    w: &Watched,
    running: &mut Running,
    readiness: &Readiness,
    told_when_ready: &mut Option<oneshot::Sender<()>>,
) -> String {
    let became_ready = async {
        let took = health::wait_healthy(w.endpoint.name(), &w.address, w.health.as_deref()).await;
        mark_ready(readiness, w, took);
        if let Some(done) = told_when_ready.take() {
            let _ = done.send(());
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        status = running.wait() => match status {
            Ok(s) => s.to_string(),
            Err(e) => format!("wait failed: {e}"),
        },
        _ = became_ready => unreachable!("pending never completes"),
    }
}

fn mark_ready(readiness: &Readiness, w: &Watched, took: Duration) {
    w.endpoint.undrain();
    readiness.set(&w.upstream, &w.endpoint, true);
    tracing::info!(upstream = %w.endpoint.name(), after_ms = took.as_millis() as u64, "ready");
    if readiness.all_ready() {
        tracing::info!("all upstreams ready");
    }
}

/// Sleeps `d`; false if told to stop first.
async fn sleep_unless(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
