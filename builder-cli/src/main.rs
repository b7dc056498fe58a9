//! The `kiln` command line: flags to library calls, results to the terminal.
//!
//! Each subcommand lives in its own file under `cmd/`; this file only wires
//! them to clap and turns their errors into an exit status.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod render;

/// kiln: build container images from Dockerfiles without a daemon.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    /// The image store (default: $XDG_DATA_HOME/kiln, ~/.local/share/kiln,
    /// or /var/lib/kiln for root).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<std::path::PathBuf>,
    #[command(flatten)]
    registry: cmd::registry_flags::RegistryFlags,
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
    /// Log in to a registry (checked, then stored in Docker's config.json).
    Login(cmd::login::Args),
    /// Log out of a registry.
    Logout(cmd::logout::Args),
    /// Pull an image into the store and record its tag's digest.
    Pull(cmd::pull::Args),
    /// Push an image from the store (or an OCI layout) to registry names.
    Push(cmd::push::Args),
    /// List the images in the store.
    Images(cmd::images::Args),
    /// Remove image names from the store (blobs go at the next prune).
    Rmi(cmd::rmi::Args),
    /// Show an image's manifest and config as JSON.
    Inspect(cmd::inspect::Args),
    /// Delete every blob no image or cache refers to.
    Prune(cmd::prune::Args),
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Print a Dockerfile's parse tree in BuildKit's dump format.
    Parse(cmd::debug_parse::Args),
    /// List what a build of a context may read, or `--why` a path is in or out.
    Context(cmd::debug_context::Args),
    /// Pull an image into an OCI layout directory.
    Pull(cmd::debug_pull::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => cmd::build::run(*args, &cli.registry),
        Command::Debug(DebugCommand::Parse(args)) => cmd::debug_parse::run(args),
        Command::Debug(DebugCommand::Context(args)) => cmd::debug_context::run(args),
        Command::Debug(DebugCommand::Pull(args)) => cmd::debug_pull::run(args, &cli.registry),
        Command::Login(args) => cmd::login::run(args, &cli.registry),
        Command::Logout(args) => cmd::logout::run(args),
        Command::Images(args) => cmd::images::run(cli.root, args),
        Command::Rmi(args) => cmd::rmi::run(cli.root, args),
        Command::Inspect(args) => cmd::inspect::run(cli.root, args),
        Command::Prune(args) => cmd::prune::run(cli.root, args),
        Command::Pull(args) => cmd::pull::run(cli.root, args, &cli.registry),
        Command::Push(args) => cmd::push::run(cli.root, args, &cli.registry),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
