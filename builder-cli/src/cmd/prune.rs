//! `kiln prune`: delete blobs nothing refers to.
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `kiln prune`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(root: Option<PathBuf>, _args: Args) -> Result<ExitCode, String> {
    let store = super::open_store(root)?;
    let r = store.prune().map_err(|e| e.to_string())?;
    println!(
        "Deleted {} blobs, {} bytes reclaimed",
        r.blobs_removed, r.bytes_freed
    );
    Ok(ExitCode::SUCCESS)
}
