//! The WebAssembly runtime behind `crate::policy`: router and bridge policies as
//! components (`WasmRouter`, `WasmBridge`), their engine, their compiled-plugin cache
//! and their hot reload.
//!
//! ```text
//! PluginHost::new()            one Engine (pooling allocator, epoch ticker), one Linker
//!   .load_routers(&config)     compile (disk cache) + setup every routing.routers entry
//!   .load_bridge(&config)      the same for [bridge.policy]
//! spawn_reloader(plugins, …)   file watcher + SIGHUP → reload off the request path
//! ```
//!
//! Modules, each using only those after it: `reload` (file watcher, SIGHUP) →
//! `router`, `bridge` (the worlds behind the policy traits; `decision` checks what a
//! router returns, `lend` answers the lent request, user and event, `contract` checks a component against the WIT's version) → `component` (`WasmPlugin`:
//! versions, warm instances, calls) → `cache` (precompiled components on disk),
//! `engine` (Engine and Linker) → `store` (per-instance state, memory cap, deadlines)
//! → `wasi` (WASI p2 with nothing granted), `output` (guest stdout/stderr into
//! tracing), `ticker` (the epoch thread); `bindings` (generated from the WIT) and
//! `error` beside them.

mod bindings;
mod bridge;
pub mod cache;
mod component;
mod contract;
mod decision;
mod engine;
mod error;
mod lend;
mod output;
mod reload;
mod router;
mod store;
mod ticker;
mod wasi;

use std::path::PathBuf;
use std::sync::Arc;

pub use self::bridge::WasmBridge;
pub use self::cache::CacheOutcome;
pub use self::component::{LoadInfo, WasmPlugin};
pub use self::error::PluginError;
pub use self::reload::{spawn_reloader, Reload, ReloaderHandle};
pub use self::router::WasmRouter;

use crate::config::{Config, PluginEntry};

/// The plugin runtime: one wasmtime engine with its epoch ticker. Routers it loads
/// keep the engine (and the ticker) alive on their own.
pub struct PluginHost {
    shared: Arc<engine::EngineShared>,
}

impl PluginHost {
    pub fn new() -> Result<PluginHost, PluginError> {
        Ok(PluginHost { shared: engine::EngineShared::new()? })
    }

    /// Compile (through the cache) and set up every router of `config.routing.routers`, in order.
    pub fn load_routers(&self, config: &Config) -> Result<Vec<Arc<WasmRouter>>, PluginError> {
        let cache_dir = config.cache_dir();
        config
            .routing
            .routers
            .iter()
            .map(|entry| {
                self.load_router(entry, &config.routing.plugins_dir, Some(cache_dir.clone()), max_warm(config))
            })
            .collect()
    }

    /// Compile and set up the bridge policy, when the config has a `[bridge]` section.
    pub fn load_bridge(&self, config: &Config) -> Result<Option<Arc<WasmBridge>>, PluginError> {
        let Some(bridge) = &config.bridge else { return Ok(None) };
        let (dir, cache) = (&config.routing.plugins_dir, Some(config.cache_dir()));
        self.load_bridge_entry(&bridge.policy, dir, cache, max_warm(config)).map(Some)
    }

    /// Load one bridge policy, as `load_router` loads a router.
    pub fn load_bridge_entry(
        &self,
        entry: &PluginEntry,
        plugins_dir: &std::path::Path,
        cache_dir: Option<PathBuf>,
        max_warm: usize,
    ) -> Result<Arc<WasmBridge>, PluginError> {
        let settings = component::Settings::new(entry, plugins_dir, cache_dir, max_warm)?;
        Ok(Arc::new(WasmPlugin::new(self.shared.clone(), settings)?))
    }

    /// Load one router: `entry.plugin` under `plugins_dir`, compiled through the cache in
    /// `cache_dir` (none: always compile), keeping at most `max_warm` idle instances.
    pub fn load_router(
        &self,
        entry: &PluginEntry,
        plugins_dir: &std::path::Path,
        cache_dir: Option<PathBuf>,
        max_warm: usize,
    ) -> Result<Arc<WasmRouter>, PluginError> {
        let settings = component::Settings::new(entry, plugins_dir, cache_dir, max_warm)?;
        Ok(Arc::new(WasmPlugin::new(self.shared.clone(), settings)?))
    }
}

/// Idle instances kept per plugin: two per worker thread.
fn max_warm(config: &Config) -> usize {
    let workers = match config.listen.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    workers * 2
}
