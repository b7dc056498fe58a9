//! `kiln push SOURCE [DESTINATION...]`: uploads an image to a registry.
//! SOURCE is an image in the store (name, digest or digest prefix) or
//! `oci-layout://PATH[:TAG]`; DESTINATION defaults to SOURCE's name.
use std::path::PathBuf;
use std::process::ExitCode;

use builder_core::registry::manifest::{self, ServedManifest};
use builder_core::registry::sink::read_blob;
use builder_core::registry::{push_from_store, Client, OciDir, PushImage, Reference};
use builder_core::store::{normalize_name, Store};

use super::progress::internal_step;
use super::registry_flags::RegistryFlags;
use crate::render::ProgressMode;
use builder_core::registry::Progress;

/// Flags of `kiln push`.
#[derive(clap::Args)]
pub struct Args {
    /// The image: a name or digest in the store, or `oci-layout://PATH[:TAG]`.
    pub source: String,
    /// Where to push it (`registry/repository:tag`); repeatable. Default:
    /// the store name SOURCE gives.
    pub destinations: Vec<String>,
    /// Print nothing but the digest (and errors).
    #[arg(short, long)]
    pub quiet: bool,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// Splits `oci-layout://PATH[:TAG]`; `None` for anything else.
pub fn parse_layout_source(source: &str) -> Option<(String, Option<String>)> {
    let rest = source.strip_prefix("oci-layout://")?;
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !tag.is_empty() => {
            Some((path.to_string(), Some(tag.to_string())))
        }
        _ => Some((rest.to_string(), None)),
    }
}

/// Runs the subcommand.
pub fn run(root: Option<PathBuf>, args: Args, flags: &RegistryFlags) -> Result<ExitCode, String> {
    let mut destinations = args
        .destinations
        .iter()
        .map(|d| Reference::parse(d).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let client = Client::new(flags.client_options()?).map_err(|e| e.to_string())?;
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
    };
    let text = format!("push {}", args.source);
    let digest = match parse_layout_source(&args.source) {
        Some((path, tag)) => {
            if destinations.is_empty() {
                return Err(format!(
                    "kiln push {}: name a DESTINATION for an OCI layout source",
                    args.source
                ));
            }
            internal_step(mode, &text, |progress| {
                push_layout(&client, &path, tag.as_deref(), &destinations, progress)
            })?
        }
        None => {
            let root = root.unwrap_or_else(Store::default_root);
            let store = Store::open(&root).map_err(|e| format!("opening store: {e}"))?;
            if destinations.is_empty() {
                destinations.push(default_destination(&store, &args.source)?);
            }
            internal_step(mode, &text, |progress| {
                push_from_store(&client, &store, &args.source, &destinations, progress)
                    .map_err(|e| format!("kiln push: {e}"))
            })?
        }
    };
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}

/// The registry name SOURCE stands for, when SOURCE is a name (not a digest).
fn default_destination(store: &Store, source: &str) -> Result<Reference, String> {
    let record = store
        .resolve(source)
        .map_err(|e| format!("kiln push: {e}"))?;
    let is_name = normalize_name(source).is_ok_and(|n| n == record.name);
    if !is_name {
        return Err(format!(
            "kiln push {source}: name a DESTINATION when pushing by digest"
        ));
    }
    Reference::parse(&record.name).map_err(|e| e.to_string())
}

fn push_layout(
    client: &Client,
    path: &str,
    tag: Option<&str>,
    destinations: &[Reference],
    progress: &dyn Progress,
) -> Result<builder_core::digest::Digest, String> {
    let layout = OciDir::open_existing(path.as_ref()).map_err(|e| e.to_string())?;
    let desc = layout.find(tag).map_err(|e| e.to_string())?;
    let bytes = read_blob(&layout, &desc.digest).map_err(|e| e.to_string())?;
    let (media_type, parsed) =
        manifest::parse(path, Some(&desc.media_type), &bytes).map_err(|e| e.to_string())?;
    let ServedManifest::Image(image) = parsed else {
        return Err(format!(
            "{path}: pushing a multi-platform index from an OCI layout is not supported yet"
        ));
    };
    let push = PushImage {
        manifest: bytes,
        media_type,
        config: image.config,
        layers: image.layers,
        sources: Vec::new(),
    };
    client
        .push(&push, destinations, &layout, progress)
        .map_err(|e| format!("kiln push: {e}"))
}
