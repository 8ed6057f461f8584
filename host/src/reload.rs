//! Reloading what the gateway reads from files while it serves: plugins and TLS
//! certificates. A file watcher on the folders of their files (events debounced,
//! since editors and certificate tools write a temporary file and rename it) and
//! SIGHUP (everything) trigger reloads, which run on tokio's blocking pool, off the
//! request path. What to do with the new files, and what to keep when they are bad,
//! is each item's own business (`Reload::refresh`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::limits::RELOAD_DEBOUNCE as DEBOUNCE;

/// Something served from files that can be swapped while serving.
pub trait Reload: Send + Sync {
    /// The files it is read from; none (a built-in) means SIGHUP alone reloads it.
    fn files(&self) -> Vec<PathBuf>;
    /// Blocking; logs its own outcome and keeps serving the old version on error.
    /// With `only_if_changed`, files holding what serves already are not reloaded.
    fn refresh(&self, only_if_changed: bool);
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

/// Reload each of `watched` when one of its files changes, and every item of
/// `watched` and `sighup_only` on SIGHUP. Must be called within a tokio runtime.
pub fn spawn_reloader(watched: Vec<Arc<dyn Reload>>, sighup_only: Vec<Arc<dyn Reload>>) -> ReloaderHandle {
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
    let files: Vec<(usize, WatchedFile)> = watched
        .iter()
        .enumerate()
        .flat_map(|(i, item)| item.files().into_iter().filter_map(move |f| WatchedFile::new(&f).map(|w| (i, w))))
        .collect();
    let dirs: BTreeSet<PathBuf> = files.iter().map(|(_, f)| f.dir.clone()).collect();
    let watcher = if dirs.is_empty() { None } else { start_watcher(&dirs, tx) };
    // Registered here, not in the task: a SIGHUP right after this returns must not
    // find the default action (terminate) still in place.
    let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP");
            None
        }
    };
    let items = watched.into_iter().chain(sighup_only).collect();
    let task = tokio::spawn(run(items, files, rx, watcher, hangup, cancel.clone()));
    ReloaderHandle { cancel, task: Some(task) }
}

/// A file as the watcher reports it: its folder (canonical, since the watcher may
/// spell it differently) and its name.
struct WatchedFile {
    dir: PathBuf,
    name: std::ffi::OsString,
}

impl WatchedFile {
    fn new(file: &Path) -> Option<WatchedFile> {
        let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Some(WatchedFile { dir: parent.canonicalize().ok()?, name: file.file_name()?.to_owned() })
    }

    /// Whether a watcher event on `path` may have changed this file: the file itself,
    /// or a hidden entry of its folder, which is how Kubernetes swaps mounted secrets
    /// and config maps (`..data` is a symlink renamed over; the files link through it).
    fn touched_by(&self, path: &Path) -> bool {
        let Some(name) = path.file_name() else { return false };
        let in_dir = path.parent().and_then(|p| p.canonicalize().ok()).is_some_and(|p| p == self.dir);
        in_dir && (name == self.name || name.as_encoded_bytes().starts_with(b".."))
    }
}

fn start_watcher(dirs: &BTreeSet<PathBuf>, tx: mpsc::UnboundedSender<PathBuf>) -> Option<notify::RecommendedWatcher> {
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
        Err(e) => tracing::warn!(error = %e, "file watcher error"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch files for changes; reload with SIGHUP");
            return None;
        }
    };
    for dir in dirs {
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => tracing::debug!(dir = %dir.display(), "watching for changes"),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot watch this folder; reload with SIGHUP"),
        }
    }
    Some(watcher)
}

async fn run(
    items: Vec<Arc<dyn Reload>>,
    files: Vec<(usize, WatchedFile)>,
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
                    let before = pending.len();
                    pending.extend(files.iter().filter(|(_, f)| f.touched_by(&path)).map(|(i, _)| *i));
                    if pending.len() > before {
                        quiet_until = tokio::time::Instant::now() + DEBOUNCE;
                    }
                }
                None => events_open = false,
            },
            _ = tokio::time::sleep_until(quiet_until), if !pending.is_empty() => {
                for i in std::mem::take(&mut pending) {
                    reload_off_path(items[i].clone(), true).await;
                }
            },
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: reloading every plugin and certificate");
                pending.clear();
                for item in &items {
                    reload_off_path(item.clone(), false).await;
                }
            },
        }
    }
}

async fn reload_off_path(item: Arc<dyn Reload>, only_if_changed: bool) {
    let _ = tokio::task::spawn_blocking(move || item.refresh(only_if_changed)).await;
}
