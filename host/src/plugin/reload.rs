//! Hot reload: a new version of a plugin is read, compiled (through the cache),
//! instantiated and `setup` once to prove it works, then swapped in atomically.
//! Calls in flight finish on the old version. A version that fails any step is
//! refused and logged, and the old one keeps serving.
//!
//! `spawn_reloader` triggers reloads from a file watcher on `plugins_dir` (events
//! debounced, since editors write a temporary file and rename it) and from SIGHUP
//! (every router). Compilation runs on tokio's blocking pool, off the request path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::component::{read_plugin, Version, WasmPlugin, World};
use super::error::PluginError;
use crate::limits::PLUGIN_RELOAD_DEBOUNCE as DEBOUNCE;

/// A plugin the reloader can reload, whatever its world.
pub trait Reload: Send + Sync {
    /// `None` for a built-in, which SIGHUP alone reloads.
    fn file(&self) -> Option<&Path>;
    /// Blocking (it compiles); `Ok(false)` when `only_if_changed` and nothing changed.
    fn reload_inner(&self, only_if_changed: bool) -> Result<bool, PluginError>;
}

impl<W: World> Reload for WasmPlugin<W> {
    fn file(&self) -> Option<&Path> {
        WasmPlugin::file(self)
    }

    fn reload_inner(&self, only_if_changed: bool) -> Result<bool, PluginError> {
        WasmPlugin::reload_inner(self, only_if_changed)
    }
}

impl<W: World> WasmPlugin<W> {
    /// Re-read the plugin file, load it and swap it in. Blocking (it compiles): call it
    /// off the request path (`spawn_blocking`). On error the old version keeps serving.
    pub fn reload(&self) -> Result<(), PluginError> {
        self.reload_inner(false).map(|_| ())
    }

    /// Like `reload`, but does nothing (returns `Ok(false)`) when the file's content is
    /// that of the version serving.
    pub fn reload_if_changed(&self) -> Result<bool, PluginError> {
        self.reload_inner(true)
    }

    fn reload_inner(&self, only_if_changed: bool) -> Result<bool, PluginError> {
        let name = &*self.settings.name;
        let _serial = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = (|| {
            let bytes = read_plugin(&self.settings)?;
            let serving = self.load_info();
            if only_if_changed && serving.as_ref().is_some_and(|s| super::cache::sha256(&bytes) == s.source_sha256) {
                return Ok(None);
            }
            // Under `reload_lock`: no other reload can take this number.
            let generation = serving.map_or(1, |s| s.generation + 1);
            Version::<W>::load(&self.shared, &self.settings, &bytes, generation).map(Some)
        })();
        match result {
            Ok(None) => {
                tracing::debug!(plugin = name, "plugin file unchanged; not reloaded");
                Ok(false)
            }
            Ok(Some(version)) => {
                self.install(version, "plugin reloaded");
                if let Some(series) = self.series.get() {
                    series.reload(true);
                }
                Ok(true)
            }
            Err(e) => {
                if let Some(series) = self.series.get() {
                    series.reload(false);
                }
                tracing::error!(plugin = name, error = %e, "plugin reload refused; the previous version keeps serving");
                Err(e)
            }
        }
    }
}

/// Stops the reloader when dropped (or with `stop`).
pub struct ReloaderHandle {
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ReloaderHandle {
    /// Stop watching and wait for a reload in progress to finish.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ReloaderHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Reload plugins when their file in `plugins_dir` changes (if `watch_files`) and all
/// of them on SIGHUP. Must be called within a tokio runtime.
pub fn spawn_reloader(routers: Vec<Arc<dyn Reload>>, plugins_dir: PathBuf, watch_files: bool) -> ReloaderHandle {
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
    let watcher = if watch_files { start_watcher(&plugins_dir, tx) } else { None };
    // Registered here, not in the task: a SIGHUP right after this returns must not
    // find the default action (terminate) still in place.
    let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP");
            None
        }
    };
    let task = tokio::spawn(run(routers, rx, watcher, hangup, cancel.clone()));
    ReloaderHandle { cancel, task: Some(task) }
}

fn start_watcher(dir: &Path, tx: mpsc::UnboundedSender<PathBuf>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
        Err(e) => tracing::warn!(error = %e, "plugin file watcher error"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch plugin files; reload with SIGHUP");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the plugins folder; reload with SIGHUP");
        return None;
    }
    tracing::debug!(dir = %dir.display(), "watching plugin files");
    Some(watcher)
}

async fn run(
    routers: Vec<Arc<dyn Reload>>,
    mut events: mpsc::UnboundedReceiver<PathBuf>,
    watcher: Option<notify::RecommendedWatcher>,
    mut hangup: Option<tokio::signal::unix::Signal>,
    cancel: CancellationToken,
) {
    let _watcher = watcher; // dropped (unwatched) when this task ends
    let mut pending: BTreeSet<usize> = BTreeSet::new();
    let mut quiet_until = tokio::time::Instant::now();
    let mut events_open = true;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv(), if events_open => match event {
                Some(path) => {
                    let hit: Vec<usize> = routers.iter().enumerate().filter(|(_, r)| r.file().is_some_and(|file| same_file(&path, file))).map(|(i, _)| i).collect();
                    if !hit.is_empty() {
                        pending.extend(hit);
                        quiet_until = tokio::time::Instant::now() + DEBOUNCE;
                    }
                }
                None => events_open = false,
            },
            _ = tokio::time::sleep_until(quiet_until), if !pending.is_empty() => {
                for i in std::mem::take(&mut pending) {
                    reload_off_path(routers[i].clone(), true).await;
                }
            },
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: reloading every plugin");
                pending.clear();
                for router in &routers {
                    reload_off_path(router.clone(), false).await;
                }
            },
        }
    }
}

/// Whether an event path names the router's file (compared by file name within the
/// watched folder, since the watcher may report a differently spelled folder).
fn same_file(event_path: &Path, file: &Path) -> bool {
    event_path == file || (event_path.file_name().is_some() && event_path.file_name() == file.file_name())
}

async fn reload_off_path(router: Arc<dyn Reload>, only_if_changed: bool) {
    // Errors are logged by `reload_inner`.
    let _ = tokio::task::spawn_blocking(move || router.reload_inner(only_if_changed)).await;
}
