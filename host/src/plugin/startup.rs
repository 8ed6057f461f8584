//! The first load of a plugin, on a thread of its own, so that compiling a large
//! component (an 18 MB Python one takes seconds) never keeps the gateway from serving.
//!
//! `begin` starts loading; `wait` waits for it until a deadline. Within the deadline
//! the outcome is the caller's, errors included (a bad plugin stops the start-up, as
//! it always did). Past it the plugin serves without its new version: the version of
//! it that loaded last time, if the compiled-plugin cache still holds it (generation
//! 0), or nothing, its calls failing as `PolicyFailure::Starting` (the gateway answers
//! 503 with Retry-After). The thread installs the new version when it is ready, like a
//! reload; if it fails then, the failure is logged and whatever serves keeps serving.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::cache;
use super::component::{read_plugin, Settings, Version, WasmPlugin, World};
use super::engine::EngineShared;
use super::error::PluginError;

/// A plugin whose first version is loading.
pub(super) struct Starting<W: World> {
    plugin: Arc<WasmPlugin<W>>,
    handoff: Arc<Handoff>,
    source_sha256: [u8; 32],
}

/// Where the loading thread leaves its outcome while someone waits for it.
struct Handoff {
    state: Mutex<FirstLoad>,
    done: Condvar,
}

enum FirstLoad {
    Loading,
    Loaded,
    /// For the waiter to return.
    Failed(PluginError),
    /// Nobody waits any more: the thread reports by itself.
    Detached,
}

impl<W: World> Starting<W> {
    /// Read the plugin and start loading it.
    pub(super) fn begin(shared: Arc<EngineShared>, settings: Settings) -> Result<Starting<W>, PluginError> {
        let bytes = read_plugin(&settings)?;
        let source_sha256 = cache::sha256(&bytes);
        let plugin = Arc::new(WasmPlugin::unloaded(shared, settings));
        let handoff = Arc::new(Handoff { state: Mutex::new(FirstLoad::Loading), done: Condvar::new() });
        let (loader, report) = (plugin.clone(), handoff.clone());
        std::thread::Builder::new()
            .name(format!("isthmus-load-{}", plugin.name()))
            .spawn(move || {
                // Under the reload lock: a reload waits for this load, then compares with it.
                let _serial = loader.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
                let result =
                    catch_unwind(AssertUnwindSafe(|| Version::<W>::load(&loader.shared, &loader.settings, &bytes, 1)))
                        .unwrap_or_else(|_| {
                            Err(PluginError::Instantiate {
                                plugin: loader.name().to_owned(),
                                reason: "the gateway panicked while loading it (see the log)".into(),
                            })
                        });
                report.finish(&loader, result);
            })
            .map_err(|e| PluginError::Engine(format!("cannot start a thread to load a plugin: {e}")))?;
        Ok(Starting { plugin, handoff, source_sha256 })
    }

    /// Wait for the load until `deadline` (`None`: until it ends). Past the deadline,
    /// serve the plugin's previous version if the cache has it, or nothing yet.
    pub(super) fn wait(self, deadline: Option<Instant>) -> Result<Arc<WasmPlugin<W>>, PluginError> {
        let handoff = &self.handoff;
        let mut state = handoff.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if !matches!(*state, FirstLoad::Loading) {
                break;
            }
            state = match deadline {
                None => handoff.done.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    handoff.done.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
        match std::mem::replace(&mut *state, FirstLoad::Detached) {
            FirstLoad::Loaded => Ok(self.plugin),
            FirstLoad::Failed(e) => Err(e),
            FirstLoad::Loading | FirstLoad::Detached => {
                // Under the handoff lock: the thread cannot install the new version meanwhile.
                let previous = self.previous();
                let plugin = &self.plugin;
                match previous {
                    Some(version) => {
                        plugin.install(version, "plugin still compiling; its previous version serves meanwhile")
                    }
                    None => tracing::warn!(
                        plugin = plugin.name(),
                        "plugin still compiling; its calls fail as starting (503) until it is ready"
                    ),
                }
                Ok(self.plugin)
            }
        }
    }

    /// The version of this plugin that loaded last, if it is another one and the
    /// cache still holds it compiled, set up with today's settings.
    fn previous(&self) -> Option<Version<W>> {
        let plugin = &self.plugin;
        let dir = plugin.settings.cache_dir.as_deref()?;
        let sha = cache::previous(dir, &plugin.cache_name()).filter(|sha| *sha != self.source_sha256)?;
        let loaded = cache::load_cached(&plugin.shared.engine, dir, plugin.name(), &sha)?;
        Version::prepare(&plugin.shared, &plugin.settings, loaded, sha, 0)
            .inspect_err(|e| tracing::warn!(plugin = plugin.name(), error = %e, "the previous version cannot serve"))
            .ok()
    }
}

impl Handoff {
    /// The loading thread's outcome: installed, handed to the waiter, or logged.
    fn finish<W: World>(&self, plugin: &WasmPlugin<W>, result: Result<Version<W>, PluginError>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let waited = matches!(*state, FirstLoad::Loading);
        match result {
            Ok(version) => {
                plugin.install(version, "plugin loaded");
                if waited {
                    *state = FirstLoad::Loaded;
                }
            }
            Err(e) if waited => *state = FirstLoad::Failed(e),
            Err(e) => {
                if plugin.load_info().is_some() {
                    tracing::error!(plugin = plugin.name(), error = %e, "plugin failed to load; its previous version keeps serving");
                } else {
                    tracing::error!(plugin = plugin.name(), error = %e, "plugin failed to load; its calls fail (503) until a reload fixes it");
                    plugin.first_load_failed();
                }
            }
        }
        self.done.notify_all();
    }
}
