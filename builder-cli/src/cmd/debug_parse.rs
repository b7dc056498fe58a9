//! `kiln debug parse [FILE|-]`: the parse tree in BuildKit's dump format.
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `kiln debug parse`.
#[derive(clap::Args)]
pub struct Args {
    /// The Dockerfile to parse, or `-` for standard input.
    #[arg(default_value = "Dockerfile")]
    pub file: PathBuf,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<ExitCode, String> {
    Err(format!(
        "{}: parsing is not written yet",
        args.file.display()
    ))
}
