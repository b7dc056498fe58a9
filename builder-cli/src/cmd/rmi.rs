//! `kiln rmi NAME…`: untag images; their blobs go at the next `kiln prune`.
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `kiln rmi`.
#[derive(clap::Args)]
pub struct Args {
    /// Image names to remove.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Runs the subcommand.
pub fn run(root: Option<PathBuf>, args: Args) -> Result<ExitCode, String> {
    let store = super::open_store(root)?;
    let mut failed = false;
    for n in &args.names {
        match store.untag(n) {
            Ok(r) => println!("Untagged: {} ({})", r.name, r.descriptor.digest),
            Err(e) => {
                eprintln!("kiln rmi: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
