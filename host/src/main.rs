use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use isthmus::cli::{self, Cli, Command};

fn main() {
    let cli = Cli::parse();
    // The explaining commands print their answer; logs below warnings would drown it.
    let default_level = if matches!(cli.command, Command::Serve { .. } | Command::Run { .. }) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
