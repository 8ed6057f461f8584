use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use isthmus::cli::{self, Cli, Command};

// glibc's malloc was about a tenth of a proxied request's instructions; mimalloc's
// per-thread free lists cost a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    // The explaining commands print their answer; logs below warnings would drown it.
    let default_level =
        if matches!(cli.command, Command::Serve { .. } | Command::Run { .. }) { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let flush_on_exit = isthmus::logging::install(filter, std::io::stderr(), std::io::stderr().is_terminal());
    let result = cli::run(cli);
    drop(flush_on_exit);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
