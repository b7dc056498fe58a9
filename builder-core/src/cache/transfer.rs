//! Sharing a cache: `--cache-to` / `--cache-from` with `type=local` (an OCI
//! layout directory) or `type=registry` (a reference).
//!
//! An exported cache is an OCI image manifest whose config blob is the
//! cache bundle (media type [`BUNDLE_MEDIA_TYPE`]: entries, their inputs and
//! the step identities' recent keys) and whose layers are every blob the
//! entries use. Registries store it like any image; importing verifies the
//! manifest, the bundle and every blob against their digests before an
//! entry is written, and an imported entry never replaces a local one.
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::index::StepKeys;
use super::{CacheError, CacheIndex, CacheKey, CacheResult, InputsRecord};
use crate::digest::Digest;
use crate::image::{media, Descriptor, Manifest};
use crate::registry::{self, BlobSink, Client, OciDir, Platform, Reference};

/// The media type of the cache bundle (the exported manifest's config).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.kiln.build-cache.v1+json";
/// The tag a local export is listed under when none is given.
pub const DEFAULT_TAG: &str = "latest";

/// Which entries an export carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportMode {
    /// Only the steps of the exported image (BuildKit's default).
    #[default]
    Min,
    /// Every step of the build, intermediate stages included.
    Max,
}

/// Where a cache goes to or comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheLocation {
    /// An OCI layout directory, and the tag inside it.
    Local {
        /// The directory.
        dir: PathBuf,
        /// The tag (default [`DEFAULT_TAG`]).
        tag: Option<String>,
    },
    /// A registry reference.
    Registry {
        /// The reference as given.
        reference: String,
    },
}

/// A parsed `--cache-to` or `--cache-from` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSpec {
    /// Where.
    pub location: CacheLocation,
    /// Which entries (exports only).
    pub mode: ExportMode,
}

impl CacheSpec {
    /// Parses `--cache-to`: `type=local,dest=DIR` or
    /// `type=registry,ref=REF`, each with optional `mode=min|max`.
    pub fn parse_to(value: &str) -> Result<CacheSpec, CacheError> {
        CacheSpec::parse(value, "dest")
    }

    /// Parses `--cache-from`: `type=local,src=DIR`, `type=registry,ref=REF`
    /// or a bare reference.
    pub fn parse_from(value: &str) -> Result<CacheSpec, CacheError> {
        CacheSpec::parse(value, "src")
    }

    fn parse(value: &str, dir_key: &str) -> Result<CacheSpec, CacheError> {
        let bad = |reason: String| CacheError::Spec {
            value: value.to_string(),
            reason,
        };
        if !value.contains('=') {
            if value.is_empty() {
                return Err(bad("empty".into()));
            }
            return Ok(CacheSpec {
                location: CacheLocation::Registry {
                    reference: value.to_string(),
                },
                mode: ExportMode::Min,
            });
        }
        let (mut kind, mut dir, mut reference, mut tag, mut mode) =
            (None, None, None, None, ExportMode::Min);
        for part in value.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE")))?;
            match k {
                "type" => kind = Some(v),
                "ref" => reference = Some(v),
                "tag" => tag = Some(v.to_string()),
                "mode" => {
                    mode = match v {
                        "min" => ExportMode::Min,
                        "max" => ExportMode::Max,
                        _ => return Err(bad(format!("mode must be min or max, not {v:?}"))),
                    }
                }
                k if k == dir_key => dir = Some(v),
                // BuildKit's options kiln has no use for yet.
                "compression" | "compression-level" | "force-compression" | "oci-mediatypes"
                | "image-manifest" | "ignore-error" => {}
                _ => return Err(bad(format!("unknown option {k:?}"))),
            }
        }
        let location = match kind {
            Some("local") => CacheLocation::Local {
                dir: PathBuf::from(
                    dir.ok_or_else(|| bad(format!("type=local needs {dir_key}=DIR")))?,
                ),
                tag,
            },
            Some("registry") => CacheLocation::Registry {
                reference: reference
                    .ok_or_else(|| bad("type=registry needs ref=REFERENCE".into()))?
                    .to_string(),
            },
            Some(t) => return Err(bad(format!("unsupported type {t:?} (local or registry)"))),
            None => return Err(bad("missing type=local|registry".into())),
        };
        Ok(CacheSpec { location, mode })
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Entries exported.
    pub entries: usize,
    /// Blobs the entries use.
    pub blobs: usize,
    /// The manifest's digest.
    pub manifest: Option<Digest>,
}

/// What an import added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries in the imported cache.
    pub entries: usize,
    /// Entries written into the local index (new to it).
    pub added: usize,
    /// Blobs in the imported cache.
    pub blobs: usize,
}

#[derive(Serialize, Deserialize)]
struct Bundle {
    version: u32,
    entries: Vec<BundleEntry>,
    #[serde(default)]
    steps: Vec<StepKeys>,
}

#[derive(Serialize, Deserialize)]
struct BundleEntry {
    key: CacheKey,
    result: CacheResult,
    #[serde(default)]
    inputs: Option<InputsRecord>,
}

fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> CacheError + '_ {
    move |source| CacheError::Json {
        path: PathBuf::from(what),
        source,
    }
}

/// The bundle for `keys` and the descriptors of every blob it needs.
fn collect(
    index: &CacheIndex,
    keys: &[CacheKey],
) -> Result<(Vec<u8>, Vec<Descriptor>, usize), CacheError> {
    let store = index.store();
    let wanted: BTreeSet<&CacheKey> = keys.iter().collect();
    let mut entries = Vec::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut seen: BTreeSet<Digest> = BTreeSet::new();
    for key in &wanted {
        let Some(mut result) = index.lookup(key)? else {
            continue;
        };
        if let Some(l) = &mut result.layer {
            // A layer built for the store alone travels gzip-compressed.
            let gzip = crate::layer::variants::compressed_if_plain(
                store,
                &l.descriptor,
                &crate::layer::CompressionOptions::default(),
            )
            .map_err(|e| CacheError::Layer {
                digest: l.descriptor.digest.clone(),
                reason: e.to_string(),
            })?;
            if let Some(d) = gzip {
                l.descriptor = d;
            }
            if seen.insert(l.descriptor.digest.clone()) {
                blobs.push(l.descriptor.clone());
            }
        }
        if let Some(c) = &result.config {
            if seen.insert(c.clone()) {
                let p = store.blob_path(c);
                let size = std::fs::metadata(&p)
                    .map_err(|source| CacheError::Io { path: p, source })?
                    .len();
                blobs.push(Descriptor::new(media::OCI_CONFIG, c.clone(), size));
            }
        }
        entries.push(BundleEntry {
            key: (*key).clone(),
            result,
            inputs: index.inputs(key)?,
        });
    }
    let exported: BTreeSet<&CacheKey> = entries.iter().map(|e| &e.key).collect();
    let steps = index
        .all_steps()?
        .into_iter()
        .filter_map(|mut s| {
            s.keys.retain(|k| exported.contains(k));
            (!s.keys.is_empty()).then_some(s)
        })
        .collect();
    let n = entries.len();
    let bundle = Bundle {
        version: 1,
        entries,
        steps,
    };
    let bytes = serde_json::to_vec(&bundle).map_err(json_err("cache bundle"))?;
    Ok((bytes, blobs, n))
}

fn manifest_for(bundle: &[u8], blobs: &[Descriptor]) -> Result<(Vec<u8>, Descriptor), CacheError> {
    let config = Descriptor::new(BUNDLE_MEDIA_TYPE, Digest::of(bundle), bundle.len() as u64);
    let m = Manifest::oci(config.clone(), blobs.to_vec());
    let bytes = m.to_json().map_err(json_err("cache manifest"))?;
    Ok((bytes, config))
}

fn copy_blob(
    from: &dyn BlobSink,
    to: &dyn BlobSink,
    digest: &Digest,
    size: u64,
) -> Result<(), CacheError> {
    if to.has(digest) {
        return Ok(());
    }
    let mut r = from.open(digest)?;
    let mut w = to.begin()?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| registry::Error::io(digest.to_string(), e))?;
        if n == 0 {
            break;
        }
        w.write_all(buf.get(..n).unwrap_or(&[]))
            .map_err(|e| registry::Error::io(digest.to_string(), e))?;
    }
    w.commit(digest, size)?;
    Ok(())
}

/// Writes the entries of `keys` (those still whole in the store) to an OCI
/// layout at `dir`, listed under `tag`.
pub fn export_local(
    index: &CacheIndex,
    keys: &[CacheKey],
    dir: &Path,
    tag: Option<&str>,
) -> Result<ExportReport, CacheError> {
    let (bundle, blobs, entries) = collect(index, keys)?;
    let layout = OciDir::create(dir)?;
    for b in &blobs {
        copy_blob(index.store(), &layout, &b.digest, b.size)?;
    }
    let (manifest, _) = manifest_for(&bundle, &blobs)?;
    registry::sink::write_blob(&layout, &bundle)?;
    let md = registry::sink::write_blob(&layout, &manifest)?;
    let desc = Descriptor::new(media::OCI_MANIFEST, md, manifest.len() as u64);
    layout.set_ref(tag.unwrap_or(DEFAULT_TAG), &desc)?;
    Ok(ExportReport {
        entries,
        blobs: blobs.len(),
        manifest: Some(Digest::of(&manifest)),
    })
}

/// Pushes the entries of `keys` to `reference`.
pub fn export_registry(
    index: &CacheIndex,
    keys: &[CacheKey],
    client: &Client,
    reference: &Reference,
    progress: &dyn registry::Progress,
) -> Result<ExportReport, CacheError> {
    let (bundle, blobs, entries) = collect(index, keys)?;
    let (manifest, config) = manifest_for(&bundle, &blobs)?;
    index.store().put_bytes(&bundle)?;
    let image = registry::PushImage {
        manifest: manifest.clone(),
        media_type: media::OCI_MANIFEST.to_string(),
        config,
        layers: blobs.clone(),
        sources: Vec::new(),
    };
    client.push(
        &image,
        std::slice::from_ref(reference),
        index.store(),
        progress,
    )?;
    Ok(ExportReport {
        entries,
        blobs: blobs.len(),
        manifest: Some(Digest::of(&manifest)),
    })
}

/// Checks the bundle and the blobs (already verified into the store) and
/// writes the entries whose blobs are all there.
fn merge(index: &CacheIndex, bundle: &[u8], blobs: usize) -> Result<ImportReport, CacheError> {
    let bundle: Bundle = serde_json::from_slice(bundle).map_err(json_err("cache bundle"))?;
    if bundle.version != 1 {
        return Err(CacheError::Corrupt(format!(
            "cache bundle version {} (this kiln reads 1)",
            bundle.version
        )));
    }
    let mut report = ImportReport {
        entries: bundle.entries.len(),
        blobs,
        ..ImportReport::default()
    };
    let mut present: BTreeSet<CacheKey> = BTreeSet::new();
    for e in &bundle.entries {
        if !e.result.blobs().iter().all(|d| index.store().has_blob(d)) {
            continue;
        }
        if index.insert_imported(e.inputs.as_ref(), &e.key, &e.result)? {
            report.added += 1;
        }
        present.insert(e.key.clone());
    }
    for s in &bundle.steps {
        for k in s.keys.iter().filter(|k| present.contains(*k)) {
            index.add_oldest(&s.identity, k)?;
        }
    }
    index.update_roots()?;
    Ok(report)
}

fn parse_manifest(bytes: &[u8], what: &str) -> Result<Manifest, CacheError> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(json_err("cache manifest"))?;
    if m.config.media_type != BUNDLE_MEDIA_TYPE {
        return Err(CacheError::Corrupt(format!(
            "{what} is not a kiln cache (config media type {:?})",
            m.config.media_type
        )));
    }
    Ok(m)
}

/// Imports the cache stored in the OCI layout at `dir` under `tag` (or
/// its only manifest when `tag` is None).
pub fn import_local(
    index: &CacheIndex,
    dir: &Path,
    tag: Option<&str>,
) -> Result<ImportReport, CacheError> {
    let layout = OciDir::open_existing(dir)?;
    let desc = match tag {
        Some(t) => layout.find(Some(t))?,
        None => layout
            .find(Some(DEFAULT_TAG))
            .or_else(|_| layout.find(None))?,
    };
    let read = |d: &Digest| -> Result<Vec<u8>, CacheError> {
        let bytes = registry::sink::read_blob(&layout, d)?;
        if &Digest::of(&bytes) != d {
            return Err(CacheError::Corrupt(format!(
                "{}: blob {d} does not match its digest",
                dir.display()
            )));
        }
        Ok(bytes)
    };
    let manifest = read(&desc.digest)?;
    let m = parse_manifest(&manifest, &dir.display().to_string())?;
    let bundle = read(&m.config.digest)?;
    for l in &m.layers {
        copy_blob(&layout, index.store(), &l.digest, l.size)?;
    }
    merge(index, &bundle, m.layers.len())
}

/// Pulls the cache at `reference` into the store (every blob verified)
/// and merges its entries.
pub fn import_registry(
    index: &CacheIndex,
    client: &Client,
    reference: &Reference,
    progress: &dyn registry::Progress,
) -> Result<ImportReport, CacheError> {
    let pulled = client.resolve(reference, &Platform::host())?;
    let what = reference.to_string();
    let m = parse_manifest(&pulled.manifest, &what)?;
    if Digest::of(&pulled.config) != pulled.config_descriptor.digest {
        return Err(CacheError::Corrupt(format!(
            "{what}: cache bundle does not match its digest"
        )));
    }
    client.download_all(&pulled.reference, &pulled.layers, index.store(), progress)?;
    merge(index, &pulled.config, m.layers.len())
}

/// Exports per `spec`; `client` is needed for `type=registry`.
pub fn export(
    index: &CacheIndex,
    spec: &CacheSpec,
    keys: &[CacheKey],
    client: Option<&Client>,
    progress: &dyn registry::Progress,
) -> Result<ExportReport, CacheError> {
    match &spec.location {
        CacheLocation::Local { dir, tag } => export_local(index, keys, dir, tag.as_deref()),
        CacheLocation::Registry { reference } => {
            let (client, r) = registry_parts(client, reference)?;
            export_registry(index, keys, client, &r, progress)
        }
    }
}

/// Imports per `spec`; `client` is needed for `type=registry`.
pub fn import(
    index: &CacheIndex,
    spec: &CacheSpec,
    client: Option<&Client>,
    progress: &dyn registry::Progress,
) -> Result<ImportReport, CacheError> {
    match &spec.location {
        CacheLocation::Local { dir, tag } => import_local(index, dir, tag.as_deref()),
        CacheLocation::Registry { reference } => {
            let (client, r) = registry_parts(client, reference)?;
            import_registry(index, client, &r, progress)
        }
    }
}

fn registry_parts<'c>(
    client: Option<&'c Client>,
    reference: &str,
) -> Result<(&'c Client, Reference), CacheError> {
    let client = client.ok_or_else(|| CacheError::Spec {
        value: reference.to_string(),
        reason: "a registry cache needs a registry client".into(),
    })?;
    let r = Reference::parse(reference).map_err(|e| CacheError::Spec {
        value: reference.to_string(),
        reason: e.to_string(),
    })?;
    Ok((client, r))
}
