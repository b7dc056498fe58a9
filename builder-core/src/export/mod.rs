//! Exporters, in buildx's `-o/--output` syntax: `type=oci` (archive or
//! directory), `type=docker` (what `docker load`/`podman load` take),
//! `type=local` (the flattened filesystem in a directory) and `type=tar`
//! (the same as a tar), plus the `--iidfile`/`--metadata-file` writers.
//! Every output appears atomically: written beside its destination under a
//! temporary name and renamed into place.
//!
//! The whole path from entries to an output, as the build engine uses it:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use builder_core::{export, image, layer, store::Store};
//! let store = Store::open(&Store::default_root())?;
//! let entries: Vec<builder_core::fsentry::Entry> = Vec::new(); // from COPY
//! let epoch = image::source_date_epoch();
//! let opts = layer::LayerOptions { source_date_epoch: epoch, ..Default::default() };
//! let l = layer::write_layer(&store, entries, &opts)?;
//! let mut cfg = image::ImageConfig::scratch(&image::Platform::host());
//! let created = image::created_timestamp(epoch);
//! cfg.created = Some(created.clone());
//! cfg.add_history("COPY . /", Some("buildkit.dockerfile.v0"), Some(&created), Some(l.diff_id));
//! let manifest = store.put_image(&cfg, &[l.descriptor])?;
//! store.tag("app:latest", &manifest)?;
//! let spec = export::parse_output("type=oci,dest=app.tar")?;
//! let opts = export::ExportOptions { names: vec!["app:latest".into()], ..Default::default() };
//! let report = export::export(&store, &manifest, &spec, &opts)?;
//! export::write_iidfile(std::path::Path::new("iid"), &report, false)?;
//! # Ok(()) }
//! ```
mod archive;
mod atomic;
mod flatten;
mod lookup;
mod meta;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

pub use flatten::{apply_layer, ApplyError, FlattenReport, Meta};
pub use lookup::read_image_file;
pub use meta::{metadata_json, write_iidfile, write_metadata_file};

use crate::image::Descriptor;
use crate::layer::{Compression, LayerError};
use crate::store::{Store, StoreError};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// OCI image layout, as a tar archive or a directory.
    Oci,
    /// docker-archive (`manifest.json`, `repositories`, blobs).
    Docker,
    /// The image's filesystem in a directory.
    Local,
    /// The image's filesystem as a tar.
    Tar,
}

/// Where an output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file or directory.
    Path(PathBuf),
    /// Standard output (`dest=-`).
    Stdout,
}

/// One parsed `-o` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// The format.
    pub kind: OutputKind,
    /// The destination.
    pub dest: Dest,
    /// For `type=oci`: false writes a directory instead of a tar.
    pub tar: bool,
    /// Layer compression wanted (`compression=`); `None` keeps layers as stored.
    pub compression: Option<Compression>,
    /// `compression-level=`.
    pub compression_level: Option<i32>,
    /// `force-compression=true`: recompress base layers too.
    pub force_compression: bool,
    /// `name=` (comma-free list separated by `,` is not possible; repeat -t instead).
    pub name: Option<String>,
    /// Keys kiln does not act on, kept for the caller to warn about.
    pub other: BTreeMap<String, String>,
}

/// What went wrong exporting, naming the destination, blob or option.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The `-o` value is malformed.
    #[error("invalid --output {value:?}: {reason}")]
    Spec {
        /// The text given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the destination failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A layer in the image is malformed or would write outside the destination.
    #[error("layer {digest}: {reason}")]
    BadLayer {
        /// The layer blob.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recompressing a layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Encoding JSON failed.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Parses buildx's `-o` syntax: `type=T,dest=D,k=v…`; a bare `DIR` means
/// `type=local,dest=DIR` and a bare `-` means `type=tar,dest=-`.
pub fn parse_output(value: &str) -> Result<OutputSpec, ExportError> {
    let bad = |reason: &str| ExportError::Spec {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    if !value.contains('=') {
        kv.insert(
            "type".into(),
            if value == "-" { "tar" } else { "local" }.into(),
        );
        kv.insert("dest".into(), value.into());
    } else {
        for part in value.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(&format!("{part:?} is not key=value")))?;
            kv.insert(k.trim().to_ascii_lowercase(), v.to_string());
        }
    }
    let kind = match kv.remove("type").as_deref() {
        Some("oci") => OutputKind::Oci,
        Some("docker") => OutputKind::Docker,
        Some("local") => OutputKind::Local,
        Some("tar") => OutputKind::Tar,
        Some(other) => return Err(bad(&format!("unsupported type {other:?}"))),
        None => return Err(bad("type= is required")),
    };
    let dest = match kv.remove("dest").as_deref() {
        Some("-") => Dest::Stdout,
        Some("") | None => return Err(bad("dest= is required")),
        Some(p) => Dest::Path(PathBuf::from(p)),
    };
    let flag = |v: Option<String>, default: bool| -> Result<bool, ExportError> {
        match v.as_deref() {
            None => Ok(default),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(o) => Err(bad(&format!("expected true or false, got {o:?}"))),
        }
    };
    let tar = flag(kv.remove("tar"), true)?;
    let force_compression = flag(kv.remove("force-compression"), false)?;
    let compression = kv
        .remove("compression")
        .map(|c| c.parse::<Compression>().map_err(|e| bad(&e.to_string())))
        .transpose()?;
    let compression_level = kv
        .remove("compression-level")
        .map(|l| {
            l.parse::<i32>()
                .map_err(|_| bad("compression-level must be an integer"))
        })
        .transpose()?;
    let name = kv.remove("name");
    if dest == Dest::Stdout && (kind == OutputKind::Local || (kind == OutputKind::Oci && !tar)) {
        return Err(bad("a directory output cannot go to stdout"));
    }
    Ok(OutputSpec {
        kind,
        dest,
        tar,
        compression,
        compression_level,
        force_compression,
        name,
        other: kv,
    })
}

/// Settings the build engine passes besides the `-o` value.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Full or short image names to record in the output (`-t`).
    pub names: Vec<String>,
    /// How many leading layers come from the base image: these are never
    /// recompressed unless `force-compression` is set or the format needs it.
    pub base_layers: usize,
    /// Timestamp for archive entries (`SOURCE_DATE_EPOCH`); 0 when unset.
    pub source_date_epoch: Option<i64>,
    /// Threads for gzip (0 = all cores).
    pub threads: usize,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    /// The manifest as exported (it differs from the stored one when layers
    /// were recompressed).
    pub manifest: Descriptor,
    /// The config blob.
    pub config: Descriptor,
}

/// Writes the image whose manifest is `image` to `spec`'s destination.
pub fn export(
    store: &Store,
    image: &Descriptor,
    spec: &OutputSpec,
    opts: &ExportOptions,
) -> Result<ExportReport, ExportError> {
    let platform = crate::image::Platform::host();
    let (mdesc, manifest, _config) = store.load_image(image, &platform)?;
    let report = ExportReport {
        manifest: mdesc.clone(),
        config: manifest.config.clone(),
    };
    match spec.kind {
        OutputKind::Oci | OutputKind::Docker => {
            archive::export_image(store, &mdesc, &manifest, spec, opts)
        }
        OutputKind::Local | OutputKind::Tar => {
            flatten::export_fs(store, &manifest, spec, opts)?;
            Ok(report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_syntax() {
        let s = parse_output("type=oci,dest=out.tar,compression=zstd,compression-level=5");
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.kind, OutputKind::Oci);
        assert_eq!(s.dest, Dest::Path("out.tar".into()));
        assert_eq!(s.compression, Some(Compression::Zstd));
        assert_eq!(s.compression_level, Some(5));
        assert!(s.tar);
        let d = parse_output("outdir").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.kind, OutputKind::Local);
        assert_eq!(
            parse_output("-").ok().map(|s| s.kind),
            Some(OutputKind::Tar)
        );
        assert!(parse_output("type=local,dest=-").is_err());
        assert!(parse_output("type=registry,dest=x").is_err());
        assert!(parse_output("type=oci,dest=x,compression=lz4").is_err());
    }
}
