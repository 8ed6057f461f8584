//! The thread that ticks the engine's epoch, the clock of plugin deadlines.
//!
//! Ticking only matters while a guest call may be running, so each call says how many
//! ticks its whole budget spans (`need`) and the thread parks once they are done: an
//! idle gateway is not woken 1000 times a second, and a busy one pays an atomic max per
//! call (a wake-up only for the first call after idle). Between calls (`enter`/`leave`
//! count those in progress) it ticks at the slower `EPOCH_QUIET_TICK`: a busy gateway's
//! calls take microseconds, and a tick every millisecond preempted whatever ran on the
//! gateway's core, the upstreams too.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

use wasmtime::Engine;

use crate::limits;

#[derive(Default)]
pub(crate) struct Ticker {
    /// Ticks done: the engine's epoch, which only the ticker thread advances.
    epoch: AtomicU64,
    /// Keep ticking until the epoch reaches this.
    until: AtomicU64,
    /// Guest calls in progress: ticks come every `EPOCH_TICK` while there is one.
    calling: AtomicUsize,
    /// The thread is parked, or about to park; a caller raising `until` wakes it.
    parked: AtomicBool,
    /// Set by `stop`: the thread exits.
    stopped: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Ticker {
    /// Start the thread ticking `engine`'s epoch. It holds the engine weakly and exits
    /// on `stop` or once the engine is gone.
    pub fn start(engine: &Engine) -> std::io::Result<Arc<Ticker>> {
        let ticker = Arc::new(Ticker::default());
        let (engine, this) = (engine.weak(), ticker.clone());
        std::thread::Builder::new().name("isthmus-epoch".into()).spawn(move || {
            // Set before the first look at `stopped`: `stop` then always finds a thread to wake.
            let _ = this.thread.set(std::thread::current());
            loop {
                if this.stopped.load(Ordering::SeqCst) {
                    return;
                }
                if this.idle() {
                    this.parked.store(true, Ordering::SeqCst);
                    // Re-checked after `parked` is published: see `need`.
                    if this.idle() && !this.stopped.load(Ordering::SeqCst) {
                        std::thread::park();
                    }
                    this.parked.store(false, Ordering::SeqCst);
                    continue;
                }
                // Ticks are never closer than `EPOCH_TICK`, so no call is stopped early.
                let pace = match this.calling.load(Ordering::SeqCst) {
                    0 => limits::EPOCH_QUIET_TICK,
                    _ => limits::EPOCH_TICK,
                };
                std::thread::sleep(pace);
                let Some(engine) = engine.upgrade() else { return };
                engine.increment_epoch();
                this.epoch.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        Ok(ticker)
    }

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

    /// A guest call starts: tick at full pace until it `leave`s.
    pub fn enter(&self) {
        self.calling.fetch_add(1, Ordering::SeqCst);
    }

    /// A call that `enter`ed is over.
    pub fn leave(&self) {
        self.calling.fetch_sub(1, Ordering::SeqCst);
    }

    /// End the thread, parked or ticking.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    /// Ticks done (the engine's epoch, as far as this thread advanced it).
    #[cfg(test)]
    pub fn ticks(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Calls in progress.
    #[cfg(test)]
    pub fn calling(&self) -> usize {
        self.calling.load(Ordering::SeqCst)
    }

    /// The tick the thread runs until.
    #[cfg(test)]
    pub fn until(&self) -> u64 {
        self.until.load(Ordering::SeqCst)
    }

    fn idle(&self) -> bool {
        self.epoch.load(Ordering::SeqCst) >= self.until.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn epoch(ticker: &Ticker) -> u64 {
        ticker.epoch.load(Ordering::SeqCst)
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
    fn ticker_stops_parked_or_ticking_and_with_its_engine() {
        for ticking in [false, true] {
            let engine = Engine::default();
            let ticker = Ticker::start(&engine).unwrap();
            if ticking {
                ticker.need(1_000_000);
                wait_for("ticks", || epoch(&ticker) > 2);
            } else {
                wait_for("parks", || ticker.parked.load(Ordering::SeqCst));
            }
            ticker.stop();
            wait_for("the ticker thread exits", || ticker_thread_gone(&ticker));
        }
        let engine = Engine::default();
        let ticker = Ticker::start(&engine).unwrap();
        ticker.need(1_000_000);
        drop(engine);
        wait_for("the ticker thread exits once its engine is gone", || ticker_thread_gone(&ticker));
    }

    /// Idle, it does not tick; a call's need makes it tick that many ticks, then it
    /// parks again; and a need while parked wakes it.
    #[test]
    fn ticker_ticks_only_while_a_call_may_run() {
        let engine = Engine::default();
        let ticker = Ticker::start(&engine).unwrap();
        wait_for("parks", || ticker.parked.load(Ordering::SeqCst));
        let before = epoch(&ticker);
        std::thread::sleep(limits::EPOCH_TICK * 30);
        assert_eq!(epoch(&ticker), before, "no call: no tick");
        for round in 0..3 {
            let start = epoch(&ticker);
            ticker.need(5);
            wait_for("ticks the need", || epoch(&ticker) >= start + 5);
            wait_for("parks again", || ticker.parked.load(Ordering::SeqCst) && ticker.idle());
            let done = epoch(&ticker);
            assert!(done <= start + 6, "round {round}: ticked {} for a need of 5", done - start);
            std::thread::sleep(limits::EPOCH_TICK * 10);
            assert_eq!(epoch(&ticker), done, "round {round}: parked");
        }
        ticker.stop();
    }
}
