//! `kiln logout [REGISTRY]`: forgets what `kiln login` stored.
use std::process::ExitCode;

use builder_core::registry::Credentials;

/// Flags of `kiln logout`.
#[derive(clap::Args)]
pub struct Args {
    /// The registry (default: Docker Hub).
    #[arg(default_value = "docker.io")]
    pub registry: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let registry = super::login::normalize(&args.registry);
    let removed = Credentials::from_env()
        .erase(&registry)
        .map_err(|e| format!("kiln logout: {e}"))?;
    if removed {
        eprintln!("Removing login credentials for {registry}");
    } else {
        eprintln!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
