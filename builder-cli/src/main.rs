//! The `kiln` command line: flags to library calls, results to the terminal.
//!
//! Each subcommand lives in its own file under `cmd/`; this file only wires
//! them to clap and turns their errors into an exit status.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// kiln: build container images from Dockerfiles without a daemon.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<cmd::build::Args>),
    /// Inspect what kiln makes of its inputs.
    #[command(subcommand)]
    Debug(DebugCommand),
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Print a Dockerfile's parse tree in BuildKit's dump format.
    Parse(cmd::debug_parse::Args),
    /// List what a build of a context may read, or `--why` a path is in or out.
    Context(cmd::debug_context::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => cmd::build::run(*args),
        Command::Debug(DebugCommand::Parse(args)) => cmd::debug_parse::run(args),
        Command::Debug(DebugCommand::Context(args)) => cmd::debug_context::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
