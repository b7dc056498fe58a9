//! `kiln push SOURCE DESTINATION`: uploads an image to a registry. Until the
//! content store lands, SOURCE is `oci-layout://PATH[:TAG]`.
use std::process::ExitCode;

use builder_core::registry::manifest::{self, Manifest};
use builder_core::registry::sink::read_blob;
use builder_core::registry::{Client, OciDir, PushImage, Reference};

use super::progress::Printer;
use super::registry_flags::RegistryFlags;

/// Flags of `kiln push`.
#[derive(clap::Args)]
pub struct Args {
    /// The image: `oci-layout://PATH[:TAG]`.
    pub source: String,
    /// Where to push it (`registry/repository:tag`); repeatable.
    #[arg(required = true)]
    pub destinations: Vec<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Splits `oci-layout://PATH[:TAG]`.
pub fn parse_layout_source(source: &str) -> Result<(String, Option<String>), String> {
    let rest = source.strip_prefix("oci-layout://").ok_or_else(|| {
        format!("{source}: expected oci-layout://PATH[:TAG] (store names are not supported yet)")
    })?;
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !tag.is_empty() => {
            Ok((path.to_string(), Some(tag.to_string())))
        }
        _ => Ok((rest.to_string(), None)),
    }
}

/// Runs the subcommand.
pub fn run(args: Args, flags: &RegistryFlags) -> Result<ExitCode, String> {
    let (path, tag) = parse_layout_source(&args.source)?;
    let layout = OciDir::open_existing(path.as_ref()).map_err(|e| e.to_string())?;
    let desc = layout.find(tag.as_deref()).map_err(|e| e.to_string())?;
    let bytes = read_blob(&layout, &desc.digest).map_err(|e| e.to_string())?;
    let (media_type, parsed) =
        manifest::parse(&args.source, Some(&desc.media_type), &bytes).map_err(|e| e.to_string())?;
    let Manifest::Image(image) = parsed else {
        return Err(format!(
            "{}: pushing a multi-platform index is not supported yet",
            args.source
        ));
    };
    let destinations = args
        .destinations
        .iter()
        .map(|d| Reference::parse(d).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let push = PushImage {
        manifest: bytes,
        media_type,
        config: image.config,
        layers: image.layers,
        sources: Vec::new(),
    };
    let client = Client::new(flags.client_options()?).map_err(|e| e.to_string())?;
    let printer = Printer { quiet: args.quiet };
    let digest = client
        .push(&push, &destinations, &layout, &printer)
        .map_err(|e| format!("kiln push: {e}"))?;
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}
