//! Layers: a reproducible tar writer of our own over [`Entry`] values, and
//! one streaming pass that yields the diff_id (uncompressed sha256), the
//! compressed blob's digest and size, writing straight into the store.
//!
//! Entries are sorted component-wise bytewise (a directory's children follow
//! it directly, as Go's `filepath.Walk` visits them), a whiteout where the
//! path it deletes would be and an opaque marker right after its directory
//! (where a diff walk emits them), duplicates keep the last one given, and a
//! hardlink group's content goes with whichever member sorts first. Headers match Go's `archive/tar` in PAX mode (see `tarfmt.rs`).
mod compress;
mod pgzip;
mod scan;
pub(crate) mod tarfmt;
mod threaded;
pub mod variants;
mod write;

use std::io;
use std::path::{Path, PathBuf};

pub use compress::{
    decompressing_reader, Compression, CompressionOptions, Encoder, UnknownCompression,
};
pub use pgzip::ParGzEncoder;
pub use scan::{entries_from_dir, HardlinkDetector, ScanError};
pub use threaded::ThreadedWriter;
pub use write::{prepare_entries, write_tar, write_tar_with, TarOptions};

use crate::digest::{Digest, DigestWriter};
use crate::fsentry::Entry;
use crate::image::Descriptor;
use crate::store::{Store, StoreError};

/// What went wrong writing a layer, with the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A path is absolute after cleaning, escapes the root with `..`, or is empty.
    #[error("invalid path {0:?} in layer: must be relative and stay inside the root")]
    BadPath(PathBuf),
    /// A hardlink's target is not in the same layer.
    #[error("hardlink {link:?} points to {target:?}, which is not in the layer")]
    HardlinkTarget {
        /// The link.
        link: PathBuf,
        /// Its missing target.
        target: PathBuf,
    },
    /// A source file's size changed between scanning and writing.
    #[error("{path}: size changed while writing the layer (expected {expected} bytes)")]
    SizeChanged {
        /// The host file.
        path: PathBuf,
        /// The size the entry announced.
        expected: u64,
    },
    /// Reading a source file failed.
    #[error("{path}: {source}")]
    Read {
        /// The host file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing the tar or compressed stream failed.
    #[error("writing layer: {0}")]
    Write(io::Error),
    /// The store refused the blob.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings for [`write_layer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerOptions {
    /// Compression of the stored blob.
    pub compression: CompressionOptions,
    /// `SOURCE_DATE_EPOCH`: mtimes later than it are clamped to it.
    pub source_date_epoch: Option<i64>,
}

/// A layer written to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// sha256 of the uncompressed tar (goes into the config's rootfs).
    pub diff_id: Digest,
    /// The stored (compressed) blob, with the OCI media type.
    pub descriptor: Descriptor,
    /// How the blob is compressed.
    pub compression: Compression,
    /// Length of the uncompressed tar.
    pub uncompressed_size: u64,
}

/// Writes `entries` as one layer into `store`: tar, hash, compress and store
/// in one streaming pass (temp file, fsync, rename).
///
/// Parent directories are not invented: include a [`Kind::Dir`] entry for
/// every parent the layer should record (containerd's differ, and so
/// BuildKit, writes the parents of every changed path). Whiteouts take their
/// mode/owner/mtime from the entry; containerd ≥ 2.0 uses 0 for all three.
///
/// [`Kind::Dir`]: crate::fsentry::Kind::Dir
pub fn write_layer<I: IntoIterator<Item = Entry>>(
    store: &Store,
    entries: I,
    opts: &LayerOptions,
) -> Result<Layer, LayerError> {
    write_layer_with(store, entries, opts, &|p: &Path| std::fs::File::open(p))
}

/// [`write_layer`] opening [`Content::Path`](crate::fsentry::Content::Path)
/// files with `open`: pass [`crate::sandbox::Opener::open`] for a step's
/// upper directory, whose files may belong to subordinate ids the
/// unprivileged user cannot read.
pub fn write_layer_with<I: IntoIterator<Item = Entry>>(
    store: &Store,
    entries: I,
    opts: &LayerOptions,
    open: &dyn Fn(&Path) -> io::Result<std::fs::File>,
) -> Result<Layer, LayerError> {
    let entries = prepare_entries(entries)?;
    let tar_opts = TarOptions {
        source_date_epoch: opts.source_date_epoch,
    };
    let compression = opts.compression.compression;
    if compression == Compression::Uncompressed {
        // The blob is the tar: the store's hash of it is the diff_id, so
        // the bytes are hashed once, not twice, on a second thread.
        let mut out = ThreadedWriter::new(store.blob_writer()?).map_err(LayerError::Write)?;
        write_tar_with(&entries, &tar_opts, &mut out, open)?;
        let blob = out.finish().map_err(LayerError::Write)?;
        let (digest, size) = blob.commit(None)?;
        return Ok(Layer {
            diff_id: digest.clone(),
            descriptor: Descriptor::new(compression.oci_media_type(), digest, size),
            compression,
            uncompressed_size: size,
        });
    }
    let blob = store.blob_writer()?;
    let enc = Encoder::new(blob, &opts.compression).map_err(LayerError::Write)?;
    let mut tar = DigestWriter::new(enc);
    write_tar_with(&entries, &tar_opts, &mut tar, open)?;
    let (enc, diff_id, uncompressed_size) = tar.finish();
    let blob = enc.finish().map_err(LayerError::Write)?;
    let (digest, size) = blob.commit(None)?;
    Ok(Layer {
        diff_id,
        descriptor: Descriptor::new(compression.oci_media_type(), digest, size),
        compression,
        uncompressed_size,
    })
}

/// Recompresses a stored layer blob into `to`, returning the new blob's
/// descriptor (OCI media type); the diff_id is unchanged by construction.
pub fn recompress(
    store: &Store,
    layer: &Descriptor,
    to: &CompressionOptions,
) -> Result<Descriptor, LayerError> {
    let src = store.open_blob(&layer.digest)?;
    let mut r = decompressing_reader(io::BufReader::with_capacity(256 * 1024, src))
        .map_err(LayerError::Write)?;
    let blob = store.blob_writer()?;
    let mut enc = Encoder::new(blob, to).map_err(LayerError::Write)?;
    io::copy(&mut r, &mut enc).map_err(LayerError::Write)?;
    let blob = enc.finish().map_err(LayerError::Write)?;
    let (digest, size) = blob.commit(None)?;
    Ok(Descriptor::new(
        to.compression.oci_media_type(),
        digest,
        size,
    ))
}

#[cfg(test)]
mod tests;
