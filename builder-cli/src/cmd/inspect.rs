//! `kiln inspect NAME`: the image's descriptor, manifest and config as JSON.
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `kiln inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// Image name, digest or digest prefix.
    pub name: String,
}

/// Runs the subcommand.
pub fn run(root: Option<PathBuf>, args: Args) -> Result<ExitCode, String> {
    let store = super::open_store(root)?;
    let rec = store.resolve(&args.name).map_err(|e| e.to_string())?;
    let (desc, manifest, config) = store
        .load_image(&rec.descriptor, &builder_core::image::Platform::host())
        .map_err(|e| e.to_string())?;
    let out = serde_json::json!({
        "Name": rec.name,
        "Descriptor": desc,
        "Manifest": manifest,
        "Config": config,
    });
    let text = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
