//! WASI p2 for plugins, with nothing granted: no preopened directories, no sockets,
//! no name lookup, no environment, no arguments, stdin closed; stdout and stderr go
//! to the log (see `output`).
//!
//! Why not simply `wasmtime_wasi::p2::add_to_linker_sync`: its blocking functions
//! (`blocking-write-and-flush`, stream drops, `poll`, `pollable.block`, UDP socket
//! creation, …) run their async implementation through `Handle::block_on` on the
//! ambient tokio runtime, and that panics when called from a tokio worker thread,
//! which is exactly where routers run. A guest that does `println!` would take the
//! request task down with it. So this module links wasmtime-wasi's implementations
//! of every interface that never blocks, and its own synchronous `wasi:io/poll`,
//! `wasi:io/streams`, `wasi:clocks/monotonic-clock` and `wasi:sockets/udp-create-socket`
//! that never touch tokio: they poll the future once and, if it is not ready, wait
//! for it on this thread up to the call's deadline (a guest may sleep a little, it
//! may not block a worker past its deadline).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{self, sync};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, SocketResult, StreamResult};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiView};

use super::output::LogSink;

/// A host-side wait that ran past the call's deadline: reported as
/// `PolicyFailure::Deadline`, like an epoch interruption.
#[derive(Debug, thiserror::Error)]
#[error("blocked in a host call past the deadline")]
pub(crate) struct HostWaitDeadline;

/// The WASI context of one instance: nothing granted, output to the log.
pub(crate) fn ctx(stdout: &LogSink, stderr: &LogSink) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone()).stderr(stderr.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    b.build()
}

/// What the WASI shims need from the store's data.
pub(crate) trait PluginWasiView: WasiView {
    /// Wall-clock instant past which a host-side wait gives up.
    fn wait_deadline(&self) -> Instant;
    /// Monotonic clock origin of this instance.
    fn clock_origin(&self) -> Instant;
}

pub(crate) fn add_to_linker<T: PluginWasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use bindings::{cli, clocks, filesystem, random, sockets};
    let l = linker;
    // Interfaces whose wasmtime-wasi implementation never blocks.
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::network::add_to_linker::<T, WasiSockets>(l, &Default::default(), T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    // Only reachable through a descriptor or a socket, which a guest cannot obtain
    // (no preopens, TCP/UDP denied); linked so that components importing them load.
    sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    sync::sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sync::sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    // Our own, tokio-free.
    bindings::io::error::add_to_linker::<T, Io>(l, |t| Shim::of(t))?;
    sync::io::poll::add_to_linker::<T, Io>(l, |t| Shim::of(t))?;
    sync::io::streams::add_to_linker::<T, Io>(l, |t| Shim::of(t))?;
    clocks::monotonic_clock::add_to_linker::<T, Io>(l, |t| Shim::of(t))?;
    sync::sockets::udp_create_socket::add_to_linker::<T, Io>(l, |t| Shim::of(t))?;
    Ok(())
}

struct Io;

impl HasData for Io {
    type Data<'a> = Shim<'a>;
}

pub(crate) struct Shim<'a> {
    table: &'a mut ResourceTable,
    deadline: Instant,
    origin: Instant,
}

impl<'a> Shim<'a> {
    fn of<T: PluginWasiView>(t: &'a mut T) -> Shim<'a> {
        let deadline = t.wait_deadline();
        let origin = t.clock_origin();
        Shim { table: t.ctx().table, deadline, origin }
    }
}

/// Run a host future to completion on this thread, without tokio: poll it; while it
/// is pending, sleep briefly and poll again, until the call's deadline.
fn drive<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, HostWaitDeadline> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let mut pause = Duration::from_micros(10);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Ok(out);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HostWaitDeadline);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_micros(500));
    }
}

fn drive_stream<T>(deadline: Instant, fut: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    drive(deadline, fut).map_err(|e| wasmtime_wasi::p2::StreamError::Trap(e.into()))?
}

fn drive_trap<T>(deadline: Instant, fut: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    drive(deadline, fut)?
}

use wasmtime_wasi::p2::bindings::io::poll::{Host as AsyncPoll, HostPollable as AsyncPollable};
use wasmtime_wasi::p2::bindings::io::streams::{
    Host as AsyncStreams, HostInputStream as AsyncInput, HostOutputStream as AsyncOutput,
};

impl bindings::io::error::Host for Shim<'_> {}

impl bindings::io::error::HostError for Shim<'_> {
    fn drop(&mut self, err: Resource<bindings::io::error::Error>) -> wasmtime::Result<()> {
        bindings::io::error::HostError::drop(self.table, err)
    }
    fn to_debug_string(&mut self, err: Resource<bindings::io::error::Error>) -> wasmtime::Result<String> {
        bindings::io::error::HostError::to_debug_string(self.table, err)
    }
}

impl sync::io::poll::Host for Shim<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        drive_trap(self.deadline, AsyncPoll::poll(self.table, pollables))
    }
}

impl sync::io::poll::HostPollable for Shim<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        drive_trap(self.deadline, AsyncPollable::ready(self.table, pollable))
    }
    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        drive_trap(self.deadline, AsyncPollable::block(self.table, pollable))
    }
    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        AsyncPollable::drop(self.table, pollable)
    }
}

impl sync::io::streams::Host for Shim<'_> {
    fn convert_stream_error(
        &mut self,
        err: wasmtime_wasi::p2::StreamError,
    ) -> wasmtime::Result<sync::io::streams::StreamError> {
        Ok(match AsyncStreams::convert_stream_error(self.table, err)? {
            bindings::io::streams::StreamError::LastOperationFailed(e) => {
                sync::io::streams::StreamError::LastOperationFailed(e)
            }
            bindings::io::streams::StreamError::Closed => sync::io::streams::StreamError::Closed,
        })
    }
}

impl sync::io::streams::HostOutputStream for Shim<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        drive_trap(self.deadline, AsyncOutput::drop(self.table, stream))
    }
    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        AsyncOutput::check_write(self.table, stream)
    }
    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        AsyncOutput::write(self.table, stream, bytes)
    }
    fn blocking_write_and_flush(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        drive_stream(self.deadline, AsyncOutput::blocking_write_and_flush(self.table, stream, bytes))
    }
    fn blocking_write_zeroes_and_flush(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        drive_stream(self.deadline, AsyncOutput::blocking_write_zeroes_and_flush(self.table, stream, len))
    }
    fn subscribe(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncOutput::subscribe(self.table, stream)
    }
    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        AsyncOutput::write_zeroes(self.table, stream, len)
    }
    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        AsyncOutput::flush(self.table, stream)
    }
    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        drive_stream(self.deadline, AsyncOutput::blocking_flush(self.table, stream))
    }
    fn splice(&mut self, dst: Resource<DynOutputStream>, src: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        AsyncOutput::splice(self.table, dst, src, len)
    }
    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        drive_stream(self.deadline, AsyncOutput::blocking_splice(self.table, dst, src, len))
    }
}

impl sync::io::streams::HostInputStream for Shim<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        drive_trap(self.deadline, AsyncInput::drop(self.table, stream))
    }
    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        AsyncInput::read(self.table, stream, len)
    }
    fn blocking_read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        drive_stream(self.deadline, AsyncInput::blocking_read(self.table, stream, len))
    }
    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        AsyncInput::skip(self.table, stream, len)
    }
    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        drive_stream(self.deadline, AsyncInput::blocking_skip(self.table, stream, len))
    }
    fn subscribe(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncInput::subscribe(self.table, stream)
    }
}

/// A monotonic-clock deadline that needs no timer driver: ready once `Instant::now()`
/// reaches it (`drive` polls it again after short sleeps).
struct ClockDeadline(Instant);

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for ClockDeadline {
    async fn ready(&mut self) {
        let at = self.0;
        std::future::poll_fn(move |_| if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending }).await
    }
}

impl Shim<'_> {
    fn subscribe_at(&mut self, at: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        let r = self.table.push(ClockDeadline(at))?;
        wasmtime_wasi::p2::subscribe(self.table, r)
    }
}

impl bindings::clocks::monotonic_clock::Host for Shim<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }
    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        // Far-future instants saturate: the wait is cut by the call deadline anyway.
        let at =
            self.origin.checked_add(Duration::from_nanos(when)).unwrap_or(self.deadline + Duration::from_secs(3600));
        self.subscribe_at(at)
    }
    fn subscribe_duration(&mut self, duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let at = Instant::now()
            .checked_add(Duration::from_nanos(duration))
            .unwrap_or(self.deadline + Duration::from_secs(3600));
        self.subscribe_at(at)
    }
}

impl sync::sockets::udp_create_socket::Host for Shim<'_> {
    fn create_udp_socket(
        &mut self,
        _family: sync::sockets::udp_create_socket::IpAddressFamily,
    ) -> SocketResult<Resource<wasmtime_wasi::p2::UdpSocket>> {
        Err(bindings::sockets::network::ErrorCode::AccessDenied.into())
    }
}

impl bindings::sockets::network::Host for Shim<'_> {
    fn convert_error_code(
        &mut self,
        error: wasmtime_wasi::p2::SocketError,
    ) -> wasmtime::Result<bindings::sockets::network::ErrorCode> {
        error.downcast()
    }
    fn network_error_code(
        &mut self,
        _err: Resource<bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<bindings::sockets::network::ErrorCode>> {
        Ok(None)
    }
}

impl bindings::sockets::network::HostNetwork for Shim<'_> {
    fn drop(&mut self, this: Resource<wasmtime_wasi::p2::Network>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
