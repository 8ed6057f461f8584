//! What one plugin instance's `Store` holds: its WASI context, its memory cap and the
//! state of the current call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::output::{LogSink, Stream};
use super::ticker::Ticker;
use crate::limits;

/// Per-instance state: the data of every plugin instance's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    stdout: LogSink,
    stderr: LogSink,
    /// Until when a host-side wait (`poll`, a blocking write) may last in this call.
    wait_deadline: Instant,
    origin: Instant,
    /// The current call's deadline, for the epoch callback.
    clock: DeadlineClock,
    /// Told of each call's budget, so that it ticks while the call may run.
    ticker: Arc<Ticker>,
    /// Inside a call, counted by the ticker (`begin_call` to `end_call`, or the drop of
    /// a store whose call failed to start).
    calling: bool,
}

/// The deadline of guest code, beyond the plain epoch deadline: when it expires, the
/// call is stopped only if the thread really ran the guest. A worker thread that the
/// OS preempted (an overloaded machine) must not fail a call that took microseconds of
/// CPU. So at expiry the thread's CPU clock is read and the call gets a probe window of
/// a quarter deadline; if the thread used at least half of that window's CPU, the guest
/// is spinning and the call ends (`Trap::Interrupt`, i.e. `PolicyFailure::Deadline`);
/// otherwise it gets another window, up to a hard cap of `1 + MAX_PROBES/4` deadlines
/// of wall-clock time. Costs nothing until a deadline expires.
#[derive(Default)]
struct DeadlineClock {
    probe_ticks: u64,
    probe_window: Duration,
    /// Thread CPU time when the current probe window began.
    probe_start: Option<Duration>,
    probes: u32,
}

/// Probe windows (a quarter deadline each) before a call is stopped whatever its CPU use.
const MAX_PROBES: u32 = 12;

#[allow(unsafe_code)]
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::MAX; // treated as "spinning": the deadline applies as is
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn on_deadline(state: &mut HostState) -> wasmtime::UpdateDeadline {
    let c = &mut state.clock;
    let now = thread_cpu_time();
    match c.probe_start {
        Some(start) if now.saturating_sub(start) >= c.probe_window / 2 || c.probes >= MAX_PROBES => {
            wasmtime::UpdateDeadline::Interrupt
        }
        _ if now == Duration::MAX => wasmtime::UpdateDeadline::Interrupt,
        _ => {
            c.probe_start = Some(now);
            c.probes += 1;
            let window = c.probe_ticks;
            // The window runs from the epoch now, which a starved thread may reach well
            // past the call's original deadline: the ticker must tick through it, or a
            // spinning guest would never be stopped once the ticker parks.
            state.ticker.need(window);
            wasmtime::UpdateDeadline::Continue(window)
        }
    }
}

/// `StoreLimits` for tables and counts, plus a memory cap whose hit is remembered, so
/// that the trap it causes is told apart from any other trap.
pub(crate) struct Limiter {
    max_memory: usize,
    /// Set when the guest tried to grow past `max_memory`.
    pub memory_cap_hit: bool,
    /// Linear memory the instance holds, all its memories together (initial sizes included).
    pub memory_bytes: usize,
    inner: StoreLimits,
}

/// The error a memory growth past the cap traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory growth to {desired} bytes exceeds the cap of {max} bytes")]
pub(crate) struct MemoryCapHit {
    pub desired: usize,
    pub max: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.memory_cap_hit = true;
            return Err(MemoryCapHit { desired, max: self.max_memory }.into());
        }
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes += desired.saturating_sub(current);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pool slot or the OS refused memory below the cap: still a memory trap.
        self.memory_cap_hit = true;
        Err(error.context("memory growth failed"))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

pub(crate) fn new_store(
    engine: &Engine,
    ticker: &Arc<Ticker>,
    plugin: &Arc<str>,
    max_memory: usize,
) -> Store<HostState> {
    let stdout = LogSink::new(plugin.clone(), Stream::Stdout);
    let stderr = LogSink::new(plugin.clone(), Stream::Stderr);
    let inner = StoreLimitsBuilder::new()
        .memory_size(max_memory)
        .table_elements(limits::PLUGIN_MAX_TABLE_ELEMENTS)
        .trap_on_grow_failure(true)
        .build();
    let now = Instant::now();
    let state = HostState {
        wasi: super::wasi::ctx(&stdout, &stderr),
        table: ResourceTable::new(),
        limiter: Limiter { max_memory, memory_cap_hit: false, memory_bytes: 0, inner },
        stdout,
        stderr,
        wait_deadline: now,
        origin: now,
        clock: DeadlineClock::default(),
        ticker: ticker.clone(),
        calling: false,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(|mut ctx| Ok(on_deadline(ctx.data_mut())));
    store
}

/// Arm a call's deadline: `ticks` epoch ticks (see `EngineShared::ticks`) for guest
/// code, `deadline` of wall-clock time for host-side waits.
pub(crate) fn begin_call(store: &mut Store<HostState>, deadline: Duration, ticks: u64) {
    store.set_epoch_deadline(ticks);
    let state = store.data_mut();
    state.wait_deadline = Instant::now() + deadline;
    let probe_ticks = (ticks / 4).max(2);
    state.clock.probe_ticks = probe_ticks;
    state.clock.probe_window = deadline / 4;
    state.clock.probe_start = None;
    state.clock.probes = 0;
    if !state.calling {
        state.calling = true;
        state.ticker.enter();
    }
    // The deadline; each probe window `on_deadline` grants asks for its own ticks.
    state.ticker.need(ticks);
}

impl HostState {
    /// Report output dropped over the per-call budget and reset it.
    pub fn end_call(&mut self) {
        self.stdout.end_call();
        self.stderr.end_call();
        self.leave();
    }

    fn leave(&mut self) {
        if std::mem::take(&mut self.calling) {
            self.ticker.leave();
        }
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        self.leave();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl super::wasi::PluginWasiView for HostState {
    fn wait_deadline(&self) -> Instant {
        self.wait_deadline
    }
    fn clock_origin(&self) -> Instant {
        self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However late the deadline callback runs (a starved thread: the epoch far past the
    /// call's deadline), the window it grants is ticked through, so the call still ends.
    #[test]
    fn a_probe_window_is_ticked_through_whenever_it_is_granted() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let ticker = Ticker::start(&engine).unwrap();
        let mut store = new_store(&engine, &ticker, &Arc::from("t"), 1 << 20);
        begin_call(&mut store, Duration::from_millis(4), 5);
        let state = store.data_mut();
        // The first expiry opens a probe window; a later one, with the thread idle all the
        // while (no CPU used: starved), opens another.
        for _ in 0..3 {
            let before = ticker.ticks();
            assert!(matches!(on_deadline(state), wasmtime::UpdateDeadline::Continue(2)));
            assert!(ticker.until() > before + 2, "the ticker runs until the window has passed");
            while ticker.ticks() < ticker.until() {
                std::thread::sleep(limits::EPOCH_TICK);
            }
        }
        ticker.stop();
    }

    /// A call counts as in progress from its start to its end, or to the drop of a
    /// store whose call never ended (instantiation failed), however often it was begun.
    #[test]
    fn calls_in_progress_are_counted_until_they_end_or_their_store_goes() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let ticker = Ticker::start(&engine).unwrap();
        let mut ended = new_store(&engine, &ticker, &Arc::from("t"), 1 << 20);
        let mut dropped = new_store(&engine, &ticker, &Arc::from("t"), 1 << 20);
        begin_call(&mut ended, Duration::from_millis(4), 5);
        begin_call(&mut ended, Duration::from_millis(4), 5);
        begin_call(&mut dropped, Duration::from_millis(4), 5);
        assert_eq!(ticker.calling(), 2);
        ended.data_mut().end_call();
        ended.data_mut().end_call();
        assert_eq!(ticker.calling(), 1);
        drop(dropped);
        drop(ended);
        assert_eq!(ticker.calling(), 0);
        ticker.stop();
    }
}
