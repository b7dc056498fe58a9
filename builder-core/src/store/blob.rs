//! Writing blobs: temp file in the store, hash while writing (whole chunks
//! with `O_DIRECT`, see `direct.rs`), fsync, verify,
//! rename into `blobs/sha256/`, fsync the directory.
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::direct::DirectWriter;
use super::{io_err, sync_dir, Store, StoreError};
use crate::digest::{Digest, DigestWriter};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob being written. Dropping it without [`commit`](Self::commit)
/// removes the temp file.
pub struct BlobWriter {
    inner: Option<DigestWriter<DirectWriter>>,
    tmp: PathBuf,
    blobs: PathBuf,
}

impl BlobWriter {
    pub(super) fn create(store: &Store) -> Result<BlobWriter, StoreError> {
        let dir = store.temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!("blob-{}-{n}-{nanos}", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => {
                    return Ok(BlobWriter {
                        inner: Some(DigestWriter::new(DirectWriter::new(f))),
                        tmp,
                        blobs: store.root().join("blobs/sha256"),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&tmp)(e)),
            }
        }
    }

    /// The temp file's path, for error messages.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.inner.as_ref().map(|w| w.size()).unwrap_or(0)
    }

    fn finish_file(&mut self) -> Result<(Digest, u64), StoreError> {
        let w = self.inner.take().ok_or_else(|| StoreError::Io {
            path: self.tmp.clone(),
            source: io::Error::other("blob writer already finished"),
        })?;
        let (buf, digest, size) = w.finish();
        let file = buf.finish().map_err(io_err(&self.tmp))?;
        file.sync_all().map_err(io_err(&self.tmp))?;
        Ok((digest, size))
    }

    /// Finishes the blob: fsync, compare with `expected` (if given), rename
    /// to its digest. A blob already present is kept and the temp removed.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let (digest, size) = self.finish_file()?;
        if let Some(e) = expected {
            if *e != digest {
                return Err(StoreError::DigestMismatch {
                    expected: e.clone(),
                    actual: digest,
                });
            }
        }
        let dest = self.blobs.join(digest.hex());
        fs::rename(&self.tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(&self.blobs)?;
        Ok((digest, size))
    }

    /// Finishes the file and renames it to `path` instead of a blob name
    /// (metadata files); same atomicity.
    pub(crate) fn persist_to(mut self, path: &Path) -> Result<(), StoreError> {
        self.finish_file()?;
        fs::rename(&self.tmp, path).map_err(io_err(path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
