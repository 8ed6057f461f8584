//! `WasmPlugin<W>`: a policy component of one world of `isthmus:policy` (`router`,
//! `bridge`), whatever its exports.
//!
//! The plugin holds its current `Version` (compiled component, pre-instantiated, and
//! a pool of warm instances) in an `ArcSwap`; a call loads it, takes a warm instance
//! (or makes one: instantiate + `setup`), calls one of the world's exports, and gives
//! the instance back unless the call failed or the instance reached `recycle_after`
//! calls. A reload swaps the version; calls in flight finish on the old one.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

use super::cache::{self, CacheOutcome};
use super::contract;
use super::engine::EngineShared;
use super::error::{chain, PluginError};
use super::store::{begin_call, new_store, HostState, MemoryCapHit};
use super::wasi::HostWaitDeadline;
use crate::config::{InstanceMode, PluginEntry};
use crate::limits::PLUGIN_SLOT_MAX_MEMORY as SLOT_MAX_MEMORY;
use crate::metrics::{CallOutcome, Metrics, PluginSeries};
use crate::policy::{FailMode, PolicyFailure};

/// One world of the WIT package, through its generated bindings.
pub trait World: Send + Sync + 'static {
    /// The world's name, for messages.
    const NAME: &'static str;
    /// The generated pre-instantiation type: the component linked and its exports
    /// found and type-checked, once per component.
    type Pre: Send + Sync + 'static;
    /// The generated exports of one instance.
    type Exports: Send + 'static;
    /// What the world's `setup` answers when it succeeds.
    type Setup: Clone + Send + Sync + 'static;
    fn pre(instance_pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self::Exports>;
    /// The world's `setup` export.
    fn setup(
        exports: &Self::Exports,
        store: &mut Store<HostState>,
        config_json: &str,
    ) -> wasmtime::Result<Result<Self::Setup, String>>;
}

/// `World` for a world's generated bindings: `$pre` (its `…Pre<HostState>`) makes
/// `$exports` instances, whose `setup` (`call_setup`) answers `$setup`.
macro_rules! world {
    ($world:ident, $name:literal, $pre:ty, $exports:ty, $setup:ty) => {
        pub struct $world;

        impl $crate::plugin::component::World for $world {
            const NAME: &'static str = $name;
            type Pre = $pre;
            type Exports = $exports;
            type Setup = $setup;

            fn pre(
                instance_pre: wasmtime::component::InstancePre<$crate::plugin::store::HostState>,
            ) -> wasmtime::Result<Self::Pre> {
                <$pre>::new(instance_pre)
            }

            fn instantiate(
                pre: &Self::Pre,
                store: &mut wasmtime::Store<$crate::plugin::store::HostState>,
            ) -> wasmtime::Result<Self::Exports> {
                pre.instantiate(store)
            }

            fn setup(
                exports: &Self::Exports,
                store: &mut wasmtime::Store<$crate::plugin::store::HostState>,
                config_json: &str,
            ) -> wasmtime::Result<Result<Self::Setup, String>> {
                exports.call_setup(store, config_json)
            }
        }
    };
}
pub(super) use world;

/// A policy component of world `W`.
pub struct WasmPlugin<W: World> {
    pub(super) settings: Settings,
    pub(super) shared: Arc<EngineShared>,
    /// `None` until the first version loads (see `startup`).
    pub(super) current: ArcSwapOption<Version<W>>,
    /// Set until the first version serves or fails to load.
    starting: AtomicBool,
    /// Serializes reloads of this plugin.
    pub(super) reload_lock: Mutex<()>,
    /// Where its calls and reloads are counted, once `measure`d.
    pub(super) series: OnceLock<PluginSeries>,
}

/// The parts of a `PluginEntry` a plugin runs by.
pub(super) struct Settings {
    pub name: Arc<str>,
    pub source: Source,
    pub cache_dir: Option<PathBuf>,
    pub fail: FailMode,
    pub deadline: Duration,
    pub ticks: u64,
    pub max_memory: usize,
    pub mode: InstanceMode,
    pub recycle_after: u64,
    pub config_json: String,
    /// Warm instances kept per version.
    pub max_warm: usize,
}

impl Settings {
    pub(super) fn new(
        entry: &PluginEntry,
        plugins_dir: &Path,
        cache_dir: Option<PathBuf>,
        max_warm: usize,
    ) -> Result<Settings, PluginError> {
        let name: Arc<str> = entry.display_name().into();
        if entry.max_memory > SLOT_MAX_MEMORY {
            return Err(PluginError::Settings {
                plugin: name.to_string(),
                message: format!("max_memory {} is over the host's limit of {SLOT_MAX_MEMORY} bytes", entry.max_memory),
            });
        }
        let source = match crate::builtin::named(&entry.plugin) {
            Some(Ok(builtin)) => Source::Builtin(builtin),
            Some(Err(message)) => return Err(PluginError::Settings { plugin: name.to_string(), message }),
            None => Source::File(plugins_dir.join(&entry.plugin)),
        };
        Ok(Settings {
            source,
            cache_dir,
            fail: entry.fail,
            deadline: entry.deadline,
            ticks: EngineShared::ticks(entry.deadline),
            max_memory: entry.max_memory,
            mode: entry.instance,
            recycle_after: entry.recycle_after.max(1),
            config_json: entry.config_json(),
            max_warm: max_warm.max(1),
            name,
        })
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// A file under `plugins_dir`, read again on every reload.
    File(PathBuf),
    /// A default policy compiled into the binary.
    Builtin(crate::builtin::Builtin),
}

impl Source {
    /// The component's bytes.
    fn read(&self) -> std::io::Result<Cow<'static, [u8]>> {
        match self {
            Source::File(path) => std::fs::read(path).map(Cow::Owned),
            Source::Builtin(builtin) => Ok(Cow::Borrowed(builtin.bytes)),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Builtin(builtin) => write!(f, "{}{}", crate::builtin::PREFIX, builtin.name),
        }
    }
}

/// How the version now serving was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadInfo {
    /// 1 for the version loaded at start-up, +1 for every successful reload.
    pub generation: u64,
    /// SHA-256 of the component file.
    pub source_sha256: [u8; 32],
    /// Whether the compiled code came from the disk cache.
    pub cache: CacheOutcome,
    /// Time to compile (or, on a cache hit, to deserialize) the component.
    pub compile_time: Duration,
    /// Time to instantiate and `setup` the first instance.
    pub setup_time: Duration,
    pub loaded_at: SystemTime,
}

/// One loaded component: everything needed to make instances, plus the warm ones.
pub(super) struct Version<W: World> {
    pre: W::Pre,
    pool: Mutex<Vec<Warm<W>>>,
    /// Set once a newer version serves: instances coming back from calls in flight
    /// are dropped instead of pooled.
    retired: AtomicBool,
    /// What the first instance's `setup` answered.
    pub setup: W::Setup,
    pub info: LoadInfo,
}

/// An instance that passed `setup`.
struct Warm<W: World> {
    store: Store<HostState>,
    exports: W::Exports,
    calls: u64,
}

impl<W: World> Version<W> {
    /// Compile (through the cache), link, and prove the component by instantiating and
    /// `setup`ing one instance, which becomes the first warm one.
    pub(super) fn load(
        shared: &EngineShared,
        s: &Settings,
        bytes: &[u8],
        generation: u64,
    ) -> Result<Version<W>, PluginError> {
        let source_sha256 = cache::sha256(bytes);
        let loaded =
            cache::load_or_compile(&shared.engine, s.cache_dir.as_deref(), &s.name, bytes, &source_sha256).map_err(
                |e| PluginError::Compile { plugin: s.name.to_string(), from: s.source.to_string(), reason: chain(&e) },
            )?;
        Self::prepare(shared, s, loaded, source_sha256, generation)
    }

    /// Link a compiled component and prove it as `load` does.
    pub(super) fn prepare(
        shared: &EngineShared,
        s: &Settings,
        loaded: cache::Loaded,
        source_sha256: [u8; 32],
        generation: u64,
    ) -> Result<Version<W>, PluginError> {
        let plugin = s.name.to_string();
        let component = loaded.component;
        let inst_err = |reason: String| PluginError::Instantiate { plugin: plugin.clone(), reason };

        contract::check::<W>(&shared.engine, &component).map_err(inst_err)?;

        let instance_pre = match shared.linker.instantiate_pre(&component) {
            Ok(pre) => pre,
            Err(missing) => {
                // Imports beyond what the gateway provides: they trap if called, rather
                // than refusing the component. Only as a fallback: the stubs are matched
                // by exact version and would shadow WASI functions that the linker
                // otherwise finds by semver.
                let foreign = contract::foreign_imports(&shared.engine, &component);
                let mut linker = shared.linker.clone();
                let stubbed = linker
                    .define_unknown_imports_as_traps(&component)
                    .and_then(|()| linker.instantiate_pre(&component));
                let pre = stubbed.map_err(|e| inst_err(contract::explain(&foreign, &chain(&e))))?;
                tracing::warn!(plugin, imports = %foreign.join(", "), reason = %chain(&missing), "the component imports functions the gateway does not provide; calling them traps");
                pre
            }
        };
        // The world's exports, found and type-checked once for every instance.
        let pre = W::pre(instance_pre).map_err(|e| {
            inst_err(format!("{}: is it built for the `{}` world of isthmus:policy?", chain(&e), W::NAME))
        })?;
        let setup_start = Instant::now();
        let (warm, setup) = Self::instantiate_with(&pre, shared, s).map_err(|failure| match failure {
            LoadFailure::Setup(message) => PluginError::Setup { plugin: plugin.clone(), message },
            LoadFailure::Instantiate(PolicyFailure::Trap(reason)) => inst_err(reason),
            LoadFailure::Instantiate(failure) | LoadFailure::SetupCall(failure) => {
                PluginError::SetupFailed { plugin: plugin.clone(), failure }
            }
        })?;
        let version = Version {
            pre,
            pool: Mutex::new(if s.mode == InstanceMode::Pooled { vec![warm] } else { Vec::new() }),
            retired: AtomicBool::new(false),
            setup,
            info: LoadInfo {
                generation,
                source_sha256,
                cache: loaded.outcome,
                compile_time: loaded.elapsed,
                setup_time: setup_start.elapsed(),
                loaded_at: SystemTime::now(),
            },
        };
        Ok(version)
    }

    /// A new instance, `setup`.
    fn instantiate(&self, shared: &EngineShared, s: &Settings) -> Result<Warm<W>, LoadFailure> {
        Self::instantiate_with(&self.pre, shared, s).map(|(warm, _)| warm)
    }

    fn instantiate_with(pre: &W::Pre, shared: &EngineShared, s: &Settings) -> Result<(Warm<W>, W::Setup), LoadFailure> {
        let mut store = new_store(&shared.engine, &shared.ticker, &s.name, s.max_memory);
        // Instantiation may run guest code (start functions): bound it too.
        begin_call(&mut store, s.deadline, s.ticks);
        let exports =
            W::instantiate(pre, &mut store).map_err(|e| LoadFailure::Instantiate(load_failure(&store, e, s)))?;
        begin_call(&mut store, s.deadline, s.ticks);
        let result = W::setup(&exports, &mut store, &s.config_json);
        store.data_mut().end_call();
        match result {
            Ok(Ok(setup)) => Ok((Warm { store, exports, calls: 0 }, setup)),
            Ok(Err(message)) => Err(LoadFailure::Setup(message)),
            Err(e) => Err(LoadFailure::SetupCall(call_failure(&store, e, s))),
        }
    }

    fn take(&self) -> Option<Warm<W>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, warm: Warm<W>, max_warm: usize) {
        let surplus = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < max_warm && !self.retired.load(Ordering::Relaxed) {
                pool.push(warm);
                None
            } else {
                Some(warm)
            }
        };
        drop(surplus); // outside the lock
    }

    /// Stop pooling and drop the idle instances here (on the reloading thread) rather
    /// than on whichever request thread drops the last reference to this version.
    pub(super) fn retire(&self) {
        let idle = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            self.retired.store(true, Ordering::Relaxed);
            std::mem::take(&mut *pool)
        };
        drop(idle);
    }

    /// Linear memory of an idle warm instance, if there is one.
    pub(super) fn warm_memory(&self) -> Option<usize> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).first().map(|w| w.store.data().limiter.memory_bytes)
    }

    pub(super) fn warm_count(&self) -> usize {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Why a new instance could not be had.
enum LoadFailure {
    /// Instantiation trapped, ran out of time or memory.
    Instantiate(PolicyFailure),
    /// `setup` trapped, ran out of time or memory.
    SetupCall(PolicyFailure),
    /// `setup` returned `err` with this text.
    Setup(String),
}

impl From<LoadFailure> for PolicyFailure {
    /// On the request path, a new instance that cannot be had fails the call.
    fn from(failure: LoadFailure) -> PolicyFailure {
        match failure {
            LoadFailure::Instantiate(PolicyFailure::Trap(reason)) => {
                PolicyFailure::Trap(format!("cannot instantiate: {reason}"))
            }
            LoadFailure::Instantiate(failure) | LoadFailure::SetupCall(failure) => failure,
            LoadFailure::Setup(message) => PolicyFailure::Trap(format!("setup of a new instance failed: {message}")),
        }
    }
}

impl<W: World> Warm<W> {
    fn call<R>(
        &mut self,
        s: &Settings,
        f: impl FnOnce(&mut Store<HostState>, &W::Exports) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyFailure> {
        self.calls += 1;
        begin_call(&mut self.store, s.deadline, s.ticks);
        let result = f(&mut self.store, &self.exports);
        self.store.data_mut().end_call();
        result.map_err(|e| call_failure(&self.store, e, s))
    }
}

/// What a failed call into the guest amounts to.
fn call_failure(store: &Store<HostState>, e: wasmtime::Error, s: &Settings) -> PolicyFailure {
    if store.data().limiter.memory_cap_hit || e.is::<MemoryCapHit>() {
        return PolicyFailure::MemoryCap(s.max_memory);
    }
    if e.is::<HostWaitDeadline>() {
        return PolicyFailure::Deadline(s.deadline);
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        if *trap == Trap::Interrupt {
            return PolicyFailure::Deadline(s.deadline);
        }
        return PolicyFailure::Trap(trap.to_string());
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return PolicyFailure::Trap(format!("the guest called exit({})", exit.0));
    }
    // E.g. a host function's error (an import stubbed as a trap). The chain's outer
    // layers are the wasm backtrace; the root cause says what happened.
    tracing::debug!(plugin = &*s.name, error = %chain(&e), "plugin call failed");
    PolicyFailure::Trap(e.root_cause().to_string())
}

/// Like `call_failure`, for instantiation (start functions, memory initialization).
fn load_failure(store: &Store<HostState>, e: wasmtime::Error, s: &Settings) -> PolicyFailure {
    if store.data().limiter.memory_cap_hit || e.is::<MemoryCapHit>() {
        return PolicyFailure::MemoryCap(s.max_memory);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PolicyFailure::Deadline(s.deadline),
        Some(trap) => PolicyFailure::Trap(trap.to_string()),
        None => PolicyFailure::Trap(e.root_cause().to_string()),
    }
}

/// The plugin's component bytes.
pub(super) fn read_plugin(s: &Settings) -> Result<Cow<'static, [u8]>, PluginError> {
    s.source.read().map_err(|source| PluginError::Read {
        plugin: s.name.to_string(),
        from: s.source.to_string(),
        source,
    })
}

impl<W: World> WasmPlugin<W> {
    /// A plugin with no version yet: its calls fail with `PolicyFailure::Starting`
    /// until `install`, or with `NotLoaded` once `first_load_failed`.
    pub(super) fn unloaded(shared: Arc<EngineShared>, settings: Settings) -> WasmPlugin<W> {
        WasmPlugin {
            settings,
            shared,
            current: ArcSwapOption::empty(),
            starting: AtomicBool::new(true),
            reload_lock: Mutex::new(()),
            series: OnceLock::new(),
        }
    }

    /// Serve `version` from now on; calls in flight finish on the one it replaces.
    /// The cache remembers it as this plugin's last good version (see `startup`).
    pub(super) fn install(&self, version: Version<W>, what: &'static str) {
        let info = version.info.clone();
        if let Some(old) = self.current.swap(Some(Arc::new(version))) {
            old.retire();
        }
        self.starting.store(false, Ordering::Release);
        if let Some(dir) = &self.settings.cache_dir {
            cache::remember(dir, &self.cache_name(), &info.source_sha256);
        }
        tracing::info!(
            plugin = &*self.settings.name,
            source = %self.settings.source,
            generation = info.generation,
            cache = ?info.cache,
            compile_ms = info.compile_time.as_secs_f64() * 1e3,
            setup_ms = info.setup_time.as_secs_f64() * 1e3,
            mode = ?self.settings.mode,
            world = W::NAME,
            "{what}"
        );
    }

    /// Calls fail with `NotLoaded` (not `Starting`) until a reload succeeds.
    pub(super) fn first_load_failed(&self) {
        self.starting.store(false, Ordering::Release);
    }

    /// What the cache knows this plugin by: its world and where it comes from.
    pub(super) fn cache_name(&self) -> String {
        format!("{}:{}", W::NAME, self.settings.source)
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Count its calls (outcome, latency) and reloads in `metrics` from now on.
    pub fn measure(&self, metrics: &Metrics) {
        let _ = self.series.set(metrics.plugin(&self.settings.name, W::NAME));
    }

    pub fn fail_mode(&self) -> FailMode {
        self.settings.fail
    }

    /// The plugin's file; `None` for a built-in.
    pub fn file(&self) -> Option<&Path> {
        match &self.settings.source {
            Source::File(path) => Some(path),
            Source::Builtin(_) => None,
        }
    }

    /// What `setup` of the version now serving answered; `None` before one serves.
    pub(super) fn setup(&self) -> Option<W::Setup> {
        self.current.load().as_ref().map(|v| v.setup.clone())
    }

    /// How the version now serving was loaded; `None` before one serves.
    pub fn load_info(&self) -> Option<LoadInfo> {
        self.current.load().as_ref().map(|v| v.info.clone())
    }

    /// Linear memory an idle warm instance of the version serving holds (after setup
    /// and the calls it served), if one is idle.
    pub fn warm_memory(&self) -> Option<usize> {
        self.current.load().as_ref()?.warm_memory()
    }

    /// Warm instances now idle in the pool of the version serving.
    pub fn warm_instances(&self) -> usize {
        self.current.load().as_ref().map_or(0, |v| v.warm_count())
    }

    /// Run `f` with an instance's store and the world's exports (their types checked
    /// at load), bounded by the deadline and memory cap.
    pub(super) fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &W::Exports) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyFailure> {
        let Some(series) = self.series.get() else { return self.call_unmeasured(f) };
        let start = Instant::now();
        let result = self.call_unmeasured(f);
        let outcome = match &result {
            Ok(_) => CallOutcome::Ok,
            Err(PolicyFailure::Deadline(_)) => CallOutcome::Deadline,
            Err(PolicyFailure::MemoryCap(_)) => CallOutcome::MemoryCap,
            Err(PolicyFailure::Starting | PolicyFailure::NotLoaded) => CallOutcome::NotLoaded,
            Err(PolicyFailure::Trap(_) | PolicyFailure::Invalid(_)) => CallOutcome::Trap,
        };
        series.call(outcome, start.elapsed());
        result
    }

    fn call_unmeasured<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &W::Exports) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyFailure> {
        let current = self.current.load();
        let Some(version) = current.as_ref() else {
            return Err(if self.starting.load(Ordering::Acquire) {
                PolicyFailure::Starting
            } else {
                PolicyFailure::NotLoaded
            });
        };
        // A host function panicking under a guest call (it should not) fails this
        // call and discards the instance; it never takes the worker down.
        match catch_unwind(AssertUnwindSafe(|| self.call_on(version, f))) {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(plugin = &*self.settings.name, panic = %what, "host panicked during a plugin call");
                Err(PolicyFailure::Trap(format!("host error during the call: {what}")))
            }
        }
    }

    fn call_on<R>(
        &self,
        version: &Version<W>,
        f: impl FnOnce(&mut Store<HostState>, &W::Exports) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyFailure> {
        let s = &self.settings;
        let pooled = s.mode == InstanceMode::Pooled;
        let mut warm = match if pooled { version.take() } else { None } {
            Some(warm) => warm,
            None => version.instantiate(&self.shared, s)?,
        };
        let result = warm.call(s, f)?; // on failure the instance is dropped here
        if pooled && warm.calls < s.recycle_after {
            version.give_back(warm, s.max_warm);
        }
        Ok(result)
    }
}

impl<W: World> std::fmt::Debug for WasmPlugin<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("world", &W::NAME)
            .field("name", &self.settings.name)
            .field("source", &self.settings.source)
            .field("mode", &self.settings.mode)
            .finish_non_exhaustive()
    }
}
