//! Hot reload: a new version of a plugin is read, compiled (through the cache),
//! instantiated and `setup` once to prove it works, then swapped in atomically.
//! Calls in flight finish on the old version. A version that fails any step is
//! refused and logged, and the old one keeps serving. `crate::reload` decides when
//! (file watcher, SIGHUP); compilation runs off the request path.

use std::path::PathBuf;

use super::component::{read_plugin, Version, WasmPlugin, World};
use super::error::PluginError;
use crate::reload::Reload;

impl<W: World> Reload for WasmPlugin<W> {
    fn files(&self) -> Vec<PathBuf> {
        self.file().map(|f| vec![f.to_owned()]).unwrap_or_default()
    }

    fn refresh(&self, only_if_changed: bool) {
        // Errors are logged by `reload_inner`.
        let _ = self.reload_inner(only_if_changed);
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
