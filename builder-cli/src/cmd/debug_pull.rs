//! `kiln debug pull REFERENCE DIR`: pulls one image into an OCI layout
//! directory (drives the pull benchmark until builds use the store).
use std::path::PathBuf;
use std::process::ExitCode;

use builder_core::registry::{Client, OciDir, Platform, Reference};

use super::progress::internal_step;
use super::registry_flags::RegistryFlags;
use crate::render::ProgressMode;

/// Flags of `kiln debug pull`.
#[derive(clap::Args)]
pub struct Args {
    /// The image (`busybox`, `registry/repo:tag`, `name@sha256:...`).
    pub reference: String,
    /// The OCI layout directory to fill (created if missing).
    pub dir: PathBuf,
    /// The platform to pick from an index (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print nothing but the manifest digest (and errors).
    #[arg(short, long)]
    pub quiet: bool,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// Runs the subcommand.
pub fn run(args: Args, flags: &RegistryFlags) -> Result<ExitCode, String> {
    let reference = Reference::parse(&args.reference).map_err(|e| e.to_string())?;
    let platform = match &args.platform {
        Some(p) => p.parse::<Platform>().map_err(|e| e.to_string())?,
        None => Platform::host(),
    };
    let layout = OciDir::create(&args.dir).map_err(|e| e.to_string())?;
    let client = Client::new(flags.client_options()?).map_err(|e| e.to_string())?;
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
    };
    let pulled = internal_step(mode, &format!("pull {reference}"), |progress| {
        client.pull(&reference, &platform, &layout, progress)
    })
    .map_err(|e| format!("kiln debug pull: {e}"))?;
    let tag = reference
        .tag
        .clone()
        .unwrap_or_else(|| pulled.manifest_digest.hex().to_string());
    layout
        .set_ref(&tag, &pulled.manifest_descriptor())
        .map_err(|e| e.to_string())?;
    println!("{}", pulled.manifest_digest);
    Ok(ExitCode::SUCCESS)
}
