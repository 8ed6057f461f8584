//! The one wasmtime `Engine` of the gateway: pooling allocator, epoch interruption
//! and the thread that ticks the epoch.

use std::sync::{Arc, Weak};
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
        let shared = Arc::new(EngineShared { engine, linker });
        spawn_ticker(Arc::downgrade(&shared)).map_err(|e| PluginError::Engine(format!("cannot start the epoch thread: {e}")))?;
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

fn spawn_ticker(shared: Weak<EngineShared>) -> std::io::Result<()> {
    std::thread::Builder::new().name("isthmus-epoch".into()).spawn(move || loop {
        std::thread::sleep(limits::EPOCH_TICK);
        match shared.upgrade() {
            Some(shared) => shared.engine.increment_epoch(),
            None => return,
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

    #[test]
    fn ticker_stops_with_its_owner() {
        let shared = EngineShared::new().unwrap();
        let weak = Arc::downgrade(&shared);
        drop(shared);
        std::thread::sleep(limits::EPOCH_TICK * 5);
        assert!(weak.upgrade().is_none());
    }
}
