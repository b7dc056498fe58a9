//! `kiln pull NAME`: pulls an image into the store and records its tag, as
//! a build's FROM does (so the next build needs no network).
use std::path::PathBuf;
use std::process::ExitCode;

use builder_core::registry::{pull_into_store, Client, Platform, PullPolicy, Reference};
use builder_core::store::Store;

use super::progress::internal_step;
use super::registry_flags::RegistryFlags;
use crate::render::ProgressMode;

/// Flags of `kiln pull`.
#[derive(clap::Args)]
pub struct Args {
    /// The image (`busybox`, `registry/repo:tag`, `name@sha256:...`).
    pub reference: String,
    /// The platform to pick from an index (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Use the digest the store recorded for the tag, if any, instead of
    /// asking the registry again.
    #[arg(long)]
    pub if_missing: bool,
    /// Print nothing but the manifest digest (and errors).
    #[arg(short, long)]
    pub quiet: bool,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// Runs the subcommand.
pub fn run(root: Option<PathBuf>, args: Args, flags: &RegistryFlags) -> Result<ExitCode, String> {
    let reference = Reference::parse(&args.reference).map_err(|e| e.to_string())?;
    let platform = match &args.platform {
        Some(p) => p.parse::<Platform>().map_err(|e| e.to_string())?,
        None => Platform::host(),
    };
    let policy = if args.if_missing {
        PullPolicy::IfMissing
    } else {
        PullPolicy::Always
    };
    let root = root.unwrap_or_else(Store::default_root);
    let store = Store::open(&root).map_err(|e| format!("opening store: {e}"))?;
    let client = Client::new(flags.client_options()?).map_err(|e| e.to_string())?;
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
    };
    let pulled = internal_step(mode, &format!("pull {reference}"), |progress| {
        pull_into_store(&client, &store, &reference, &platform, policy, progress)
    })
    .map_err(|e| format!("kiln pull: {e}"))?;
    if !args.quiet {
        eprintln!(
            "{}: {}",
            pulled.record.name, pulled.record.descriptor.digest
        );
    }
    println!("{}", pulled.image.manifest_digest);
    Ok(ExitCode::SUCCESS)
}
