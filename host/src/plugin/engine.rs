//! The one wasmtime `Engine` of the gateway: pooling allocator, epoch interruption
//! (ticked by `super::ticker`), and the linker every plugin is instantiated with.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::PluginError;
use super::store::HostState;
use super::ticker::Ticker;
use crate::limits::{self, PLUGIN_POOL_INSTANCES as POOL_INSTANCES, PLUGIN_SLOT_MAX_MEMORY as SLOT_MAX_MEMORY};

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

impl Drop for EngineShared {
    /// The ticker thread holds the engine only weakly; it must be told to stop.
    fn drop(&mut self) {
        self.ticker.stop();
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
        link_contract(&mut linker).map_err(|e| PluginError::Engine(super::error::chain(&e)))?;
        let ticker =
            Ticker::start(&engine).map_err(|e| PluginError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Arc::new(EngineShared { engine, linker, ticker }))
    }

    /// Epoch ticks to allow a call that must run at least `deadline`: the first tick
    /// may come at once, so one more than the deadline's length in ticks.
    pub fn ticks(deadline: Duration) -> u64 {
        let tick = limits::EPOCH_TICK.as_nanos().max(1);
        u64::try_from(deadline.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX / 2).saturating_add(1)
    }
}

/// The contract's resources (request, identity, event), answered by `super::lend`.
fn link_contract(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use super::bindings::{bridging, http, users};
    use wasmtime::component::HasSelf;
    http::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    users::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    bridging::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
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
        .allocation_strategy(if pooling {
            InstanceAllocationStrategy::Pooling(pool)
        } else {
            InstanceAllocationStrategy::OnDemand
        })
        .epoch_interruption(true)
        .parallel_compilation(true);
    config
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
}
