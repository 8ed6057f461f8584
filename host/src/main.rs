use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use isthmus::cli::{self, Cli, Command};
use isthmus::limits;

// glibc's malloc was about a tenth of a proxied request's instructions; mimalloc's
// per-thread free lists cost a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    // The explaining commands print their answer; logs below warnings would drown it.
    let default_level =
        if matches!(cli.command, Command::Serve { .. } | Command::Run { .. }) { "info" } else { "warn" };
    // Log lines (one per request) are written by a thread of their own, batched, so a
    // request never waits on stderr; a full queue drops lines rather than block.
    let (writer, flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(limits::LOG_QUEUE_LINES)
        .lossy(true)
        .finish(std::io::BufWriter::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(isthmus::logging::Lines::default())
        .init();
    let result = cli::run(cli);
    drop(flush_on_exit);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
