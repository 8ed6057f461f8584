//! The one wasmtime `Engine` of the gateway: pooling allocator, epoch interruption
//! and the thread that ticks the epoch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::PluginError;
use super::store::HostState;
use crate::limits;

/// Largest linear memory the pool reserves per instance; `max_memory` of a plugin
/// may not exceed it.
pub const SLOT_MAX_MEMORY: usize = 1 << 30;
/// Component instances alive at once, all routers and versions together (warm pools
/// hold at most about workers×2 per router).
const POOL_INSTANCES: u32 = 1000;
/// Bytes of linear memory (1/16 of it for tables) reset in place rather than
/// madvise'd away when a slot is reused: keeps a small guest's pages resident, which
/// makes a fresh instance cheaper (no page faults). Measured with prefix_router: tables
/// not kept resident cost +10 µs per fresh instance.
const KEEP_RESIDENT: usize = 1 << 20;

/// Engine, linker and epoch ticker, shared by the `PluginHost` and every router.
/// The ticker thread stops once the last owner of this is dropped.
pub(crate) struct EngineShared {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    pub ticker: Arc<Ticker>,
}

/// When the epoch thread ticks. Ticking only matters while a guest call may be running,
/// so each call says how many ticks its whole budget spans (`need`) and the thread
/// parks once they are done: an idle gateway is not woken 1000 times a second, and a
/// busy one pays an atomic max per call (a wake-up only for the first call after idle).
#[derive(Default)]
pub(crate) struct Ticker {
    /// Ticks done: the engine's epoch, which only the ticker thread advances.
    epoch: AtomicU64,
    /// Keep ticking until the epoch reaches this.
    until: AtomicU64,
    /// The thread is parked, or about to park; a caller raising `until` wakes it.
    parked: AtomicBool,
    thread: std::sync::OnceLock<Thread>,
}

impl Ticker {
    /// A guest call begins that may run until `ticks` more epoch ticks have passed.
    pub fn need(&self, ticks: u64) {
        // +1: the epoch read may be one tick behind the engine's.
        let until = self.epoch.load(Ordering::SeqCst).saturating_add(ticks).saturating_add(1);
        self.until.fetch_max(until, Ordering::SeqCst);
        // SeqCst pairs with the thread's store to `parked` then load of `until`: either
        // it sees this `until` or this sees `parked` (and the unpark token is kept).
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    fn idle(&self) -> bool {
        self.epoch.load(Ordering::SeqCst) >= self.until.load(Ordering::SeqCst)
    }
}

impl Drop for EngineShared {
    /// The ticker thread holds only a weak reference; a parked one must be woken to see it gone.
    fn drop(&mut self) {
        self.ticker.wake();
    }
}

impl EngineShared {
    pub fn new() -> Result<Arc<EngineShared>, PluginError> {
        let engine = match Engine::new(&engine_config(true)) {
            Ok(engine) => engine,
            Err(e) => {
                // The pool reserves (not commits) some TiB of address space up front;
                // under an address-space limit (ulimit -v) that fails. Instances then
                // come from plain mmap: slower to create, same isolation.
                tracing::warn!(error = %super::error::chain(&e), "cannot reserve the instance pool; allocating plugin instances on demand");
                Engine::new(&engine_config(false)).map_err(|e| PluginError::Engine(super::error::chain(&e)))?
            }
        };
        let mut linker = Linker::new(&engine);
        super::wasi::add_to_linker(&mut linker).map_err(|e| PluginError::Engine(super::error::chain(&e)))?;
        super::bindings::users::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(super::error::chain(&e)))?;
        let ticker = Arc::new(Ticker::default());
        let shared = Arc::new(EngineShared { engine, linker, ticker: ticker.clone() });
        spawn_ticker(Arc::downgrade(&shared), ticker).map_err(|e| PluginError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(shared)
    }

    /// Epoch ticks to allow a call that must run at least `deadline`: the first tick
    /// may come at once, so one more than the deadline's length in ticks.
    pub fn ticks(deadline: Duration) -> u64 {
        let tick = limits::EPOCH_TICK.as_nanos().max(1);
        u64::try_from(deadline.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX / 2).saturating_add(1)
    }
}

fn engine_config(pooling: bool) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES * 4)
        .max_memory_size(SLOT_MAX_MEMORY)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        // Linux ≥ 6.7: reset only the pages an instance dirtied (measured: a fresh
        // prefix_router call 38 µs → 12.5 µs). Older kernels: memset + madvise.
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config
        .allocation_strategy(if pooling { InstanceAllocationStrategy::Pooling(pool) } else { InstanceAllocationStrategy::OnDemand })
        .epoch_interruption(true)
        .parallel_compilation(true);
    config
}

fn spawn_ticker(shared: Weak<EngineShared>, ticker: Arc<Ticker>) -> std::io::Result<()> {
    std::thread::Builder::new().name("isthmus-epoch".into()).spawn(move || {
        // Set before the first look at `shared`: its drop then always finds a thread to wake.
        let _ = ticker.thread.set(std::thread::current());
        loop {
            if shared.strong_count() == 0 {
                return;
            }
            if ticker.idle() {
                ticker.parked.store(true, Ordering::SeqCst);
                // Re-checked after `parked` is published: see `Ticker::need`.
                if ticker.idle() {
                    std::thread::park();
                }
                ticker.parked.store(false, Ordering::SeqCst);
                continue;
            }
            std::thread::sleep(limits::EPOCH_TICK);
            let Some(shared) = shared.upgrade() else { return };
            shared.engine.increment_epoch();
            ticker.epoch.fetch_add(1, Ordering::SeqCst);
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_deadline() {
        assert_eq!(EngineShared::ticks(Duration::from_millis(10)), 11);
        assert_eq!(EngineShared::ticks(Duration::from_micros(1)), 2);
        assert!(EngineShared::ticks(Duration::MAX) > 1 << 40);
    }

    fn epoch(shared: &EngineShared) -> u64 {
        shared.ticker.epoch.load(Ordering::SeqCst)
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The thread holds the ticker's only other reference until it exits.
    fn ticker_thread_gone(ticker: &Arc<Ticker>) -> bool {
        Arc::strong_count(ticker) == 1
    }

    #[test]
    fn ticker_stops_with_its_owner_parked_or_ticking() {
        for ticking in [false, true] {
            let shared = EngineShared::new().unwrap();
            let ticker = shared.ticker.clone();
            if ticking {
                shared.ticker.need(1_000_000);
                wait_for("ticks", || epoch(&shared) > 2);
            } else {
                wait_for("parks", || ticker.parked.load(Ordering::SeqCst));
            }
            drop(shared);
            wait_for("the ticker thread exits", || ticker_thread_gone(&ticker));
        }
    }

    /// Idle, it does not tick; a call's need makes it tick that many ticks, then it
    /// parks again; and a need while parked wakes it.
    #[test]
    fn ticker_ticks_only_while_a_call_may_run() {
        let shared = EngineShared::new().unwrap();
        wait_for("parks", || shared.ticker.parked.load(Ordering::SeqCst));
        let before = epoch(&shared);
        std::thread::sleep(limits::EPOCH_TICK * 30);
        assert_eq!(epoch(&shared), before, "no call: no tick");
        for round in 0..3 {
            let start = epoch(&shared);
            shared.ticker.need(5);
            wait_for("ticks the need", || epoch(&shared) >= start + 5);
            wait_for("parks again", || shared.ticker.parked.load(Ordering::SeqCst) && shared.ticker.idle());
            let done = epoch(&shared);
            assert!(done <= start + 6, "round {round}: ticked {} for a need of 5", done - start);
            std::thread::sleep(limits::EPOCH_TICK * 10);
            assert_eq!(epoch(&shared), done, "round {round}: parked");
        }
    }
}
