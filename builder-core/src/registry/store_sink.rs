//! The content store as a [`BlobSink`]: pulls write straight into
//! `blobs/sha256/` through the store's own atomic writer (temp file in the
//! store, fsync, digest check, rename), and pushes read from it.
use std::io::{self, Read, Write};

use super::error::{Error, Result};
use super::sink::{check, BlobSink, BlobWriter};
use crate::digest::Digest;
use crate::store::{self, Store, StoreError};

impl BlobSink for Store {
    fn has(&self, digest: &Digest) -> bool {
        self.has_blob(digest)
    }

    fn begin(&self) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(StoreBlob(self.blob_writer()?)))
    }

    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.open_blob(digest)?))
    }
}

/// A blob on its way into the store. Dropped uncommitted (or refused), the
/// store's writer removes its temp file, so nothing partial remains.
struct StoreBlob(store::BlobWriter);

impl Write for StoreBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl BlobWriter for StoreBlob {
    fn written(&self) -> u64 {
        self.0.written()
    }

    fn commit(self: Box<Self>, digest: &Digest, size: u64) -> Result<()> {
        let written = self.0.written();
        if written != size {
            // The digest cannot match either; say what is known to differ.
            // `self` drops here, and with it the temp file.
            return check(digest, size, digest, written);
        }
        self.0.commit(Some(digest))?;
        Ok(())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::DigestMismatch { expected, actual } => Error::DigestMismatch {
                digest: expected.to_string(),
                reason: format!("content hashes to {actual}"),
            },
            StoreError::BlobNotFound(d) => Error::BlobMissing(d.to_string()),
            other => Error::Store(other),
        }
    }
}
