//! The `kiln` command line: flags to library calls, results to the terminal.
use clap::Parser;

/// kiln: build container images from Dockerfiles without a daemon.
#[derive(Parser)]
#[command(name = "kiln", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
