//! Layers as they leave the store.
//!
//! A build whose image stays in the store keeps its layers as plain tar, as
//! Docker's image store does: compressing is most of the CPU a build spends
//! on its own, and nothing local needs it. A layer is compressed when it
//! leaves the store (an OCI or docker archive, a push, a cache export), and
//! the compressed blob is remembered by source digest and settings, so the
//! second push or export of the same layer costs nothing. gzip output is
//! deterministic, so remembered or not, the digest is the same.
use std::fs;
use std::path::PathBuf;

use super::{recompress, Compression, CompressionOptions, LayerError};
use crate::digest::Digest;
use crate::image::Descriptor;
use crate::store::Store;

/// The store directory of remembered conversions.
const BUCKET: &str = "layer-variants-v1";

/// `layer` in the compression `to` asks for: itself when it already is,
/// else a blob converted once and remembered (written to the store).
/// Annotations are kept; the media type is the OCI one.
pub fn compressed(
    store: &Store,
    layer: &Descriptor,
    to: &CompressionOptions,
) -> Result<Descriptor, LayerError> {
    if Compression::from_media_type(&layer.media_type) == Some(to.compression) {
        return Ok(layer.clone());
    }
    let memo = memo_path(store, &layer.digest, to)?;
    let mut out = match remembered(store, &memo) {
        Some((digest, size)) => Descriptor::new(to.compression.oci_media_type(), digest, size),
        None => {
            let d = recompress(store, layer, to)?;
            remember(store, &memo, &d);
            d
        }
    };
    out.annotations = layer.annotations.clone();
    Ok(out)
}

/// [`compressed`] for a plain tar layer (one built for the store alone)
/// and a compressing `to`; `None` when nothing is to change.
pub fn compressed_if_plain(
    store: &Store,
    layer: &Descriptor,
    to: &CompressionOptions,
) -> Result<Option<Descriptor>, LayerError> {
    if !is_uncompressed(layer) || to.compression == Compression::Uncompressed {
        return Ok(None);
    }
    compressed(store, layer, to).map(Some)
}

/// Whether `layer` must be compressed before it leaves the store with no
/// compression asked for: a plain tar built for the store alone.
pub fn is_uncompressed(layer: &Descriptor) -> bool {
    Compression::from_media_type(&layer.media_type) == Some(Compression::Uncompressed)
}

fn memo_path(
    store: &Store,
    source: &Digest,
    to: &CompressionOptions,
) -> Result<PathBuf, LayerError> {
    let name = match to.compression {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::Uncompressed => "tar",
    };
    let level = to.level.unwrap_or(to.compression.default_level());
    let dir = store.cache_dir(BUCKET)?;
    Ok(dir.join(format!(
        "{}-{}-{name}-{level}",
        source.algorithm(),
        source.hex()
    )))
}

/// The remembered blob, when the note parses and the blob is still there
/// (`kiln prune` may have removed it).
fn remembered(store: &Store, memo: &PathBuf) -> Option<(Digest, u64)> {
    let text = fs::read_to_string(memo).ok()?;
    let (digest, size) = text.trim().split_once(' ')?;
    let digest: Digest = digest.parse().ok()?;
    let size: u64 = size.parse().ok()?;
    let on_disk = fs::metadata(store.blob_path(&digest)).ok()?.len();
    (on_disk == size).then_some((digest, size))
}

/// Notes the conversion; a note that cannot be written only costs a
/// conversion next time.
fn remember(store: &Store, memo: &PathBuf, d: &Descriptor) {
    let Some(name) = memo.file_name() else {
        return;
    };
    let tmp = store
        .temp_dir()
        .join(format!("{}.{}", name.to_string_lossy(), std::process::id()));
    let note = format!("{} {}\n", d.digest, d.size);
    if fs::write(&tmp, note).is_ok() && fs::rename(&tmp, memo).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}
