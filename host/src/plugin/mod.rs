//! The WebAssembly runtime behind `crate::policy`: router and bridge policies as
//! components (`WasmRouter`, `WasmBridge`), their engine, their compiled-plugin cache
//! and their hot reload.
//!
//! ```text
//! PluginHost::new()            one Engine (pooling allocator, epoch ticker), one Linker
//!   .load(&config, wait)       compile (disk cache) + setup every routing.routers entry
//!                              and [bridge.policy], waiting at most `wait` (`startup`)
//! (crate::reload)              file watcher + SIGHUP → `Reload::refresh` off the request path
//! ```
//!
//! Modules, each using only those after it: `reload` (a new version swapped in),
//! `startup` (first loads that do not hold up serving) →
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
mod startup;
mod store;
mod ticker;
mod wasi;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use self::bridge::WasmBridge;
pub use self::cache::CacheOutcome;
pub use self::component::{LoadInfo, WasmPlugin};
pub use self::error::PluginError;
pub use self::router::WasmRouter;

use self::component::{Settings, World};
use self::startup::Starting;
use crate::config::{Config, PluginEntry};

/// The plugin runtime: one wasmtime engine with its epoch ticker. Routers it loads
/// keep the engine (and the ticker) alive on their own.
pub struct PluginHost {
    shared: Arc<engine::EngineShared>,
}

/// Every plugin of a config.
pub struct Plugins {
    pub routers: Vec<Arc<WasmRouter>>,
    pub bridge: Option<Arc<WasmBridge>>,
}

impl PluginHost {
    pub fn new() -> Result<PluginHost, PluginError> {
        Ok(PluginHost { shared: engine::EngineShared::new()? })
    }

    /// Load every plugin of `config` (routers in order, then the bridge policy), all
    /// at once, each on a thread of its own. `wait`: how long to wait for them (then
    /// those not loaded yet serve as `startup` describes); `None`: until all are loaded.
    pub fn load(&self, config: &Config, wait: Option<Duration>) -> Result<Plugins, PluginError> {
        let deadline = wait.map(|wait| Instant::now() + wait);
        let (dir, cache) = (&config.routing.plugins_dir, Some(config.cache_dir()));
        let routers: Vec<Starting<_>> = config
            .routing
            .routers
            .iter()
            .map(|entry| self.begin(entry, dir, cache.clone(), max_warm(config)))
            .collect::<Result<_, _>>()?;
        let bridge = match &config.bridge {
            Some(bridge) => Some(self.begin(&bridge.policy, dir, cache.clone(), max_warm(config))?),
            None => None,
        };
        Ok(Plugins {
            routers: routers.into_iter().map(|r| r.wait(deadline)).collect::<Result<_, _>>()?,
            bridge: bridge.map(|b| b.wait(deadline)).transpose()?,
        })
    }

    /// Load one router: `entry.plugin` (under `plugins_dir`, or a built-in), compiled
    /// through the cache in `cache_dir` (none: always compile), keeping at most
    /// `max_warm` idle instances.
    pub fn load_router(
        &self,
        entry: &PluginEntry,
        plugins_dir: &Path,
        cache_dir: Option<PathBuf>,
        max_warm: usize,
    ) -> Result<Arc<WasmRouter>, PluginError> {
        self.begin(entry, plugins_dir, cache_dir, max_warm)?.wait(None)
    }

    /// Load one bridge policy, as `load_router` loads a router.
    pub fn load_bridge(
        &self,
        entry: &PluginEntry,
        plugins_dir: &Path,
        cache_dir: Option<PathBuf>,
        max_warm: usize,
    ) -> Result<Arc<WasmBridge>, PluginError> {
        self.begin(entry, plugins_dir, cache_dir, max_warm)?.wait(None)
    }

    fn begin<W: World>(
        &self,
        entry: &PluginEntry,
        plugins_dir: &Path,
        cache_dir: Option<PathBuf>,
        max_warm: usize,
    ) -> Result<Starting<W>, PluginError> {
        Starting::begin(self.shared.clone(), Settings::new(entry, plugins_dir, cache_dir, max_warm)?)
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
