//! The store as a registry [`BlobSink`], so cache blobs go to and come from
//! registries verified like any pulled blob. A wrapper rather than an impl
//! on `Store` itself, which belongs to the store's own module.
use std::io::{Read, Write};

use crate::registry::{self, BlobSink, BlobWriter};
use crate::store::Store;

/// Borrows a [`Store`] as a [`BlobSink`].
pub struct StoreSink<'s>(pub &'s Store);

fn to_store_digest(d: &registry::Digest) -> Option<crate::digest::Digest> {
    d.to_string().parse().ok()
}

impl BlobSink for StoreSink<'_> {
    fn has(&self, digest: &registry::Digest) -> bool {
        to_store_digest(digest).is_some_and(|d| self.0.has_blob(&d))
    }

    fn begin(&self) -> registry::Result<Box<dyn BlobWriter>> {
        let w = self
            .0
            .blob_writer()
            .map_err(|e| registry::Error::io("store", std::io::Error::other(e.to_string())))?;
        Ok(Box::new(SinkWriter(w)))
    }

    fn open(&self, digest: &registry::Digest) -> registry::Result<Box<dyn Read + Send>> {
        let d = to_store_digest(digest)
            .ok_or_else(|| registry::Error::BlobMissing(digest.to_string()))?;
        match self.0.open_blob(&d) {
            Ok(f) => Ok(Box::new(f)),
            Err(crate::store::StoreError::BlobNotFound(_)) => {
                Err(registry::Error::BlobMissing(digest.to_string()))
            }
            Err(e) => Err(registry::Error::io(
                self.0.blob_path(&d),
                std::io::Error::other(e.to_string()),
            )),
        }
    }
}

struct SinkWriter(crate::store::BlobWriter);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl BlobWriter for SinkWriter {
    fn written(&self) -> u64 {
        self.0.written()
    }

    fn commit(self: Box<Self>, digest: &registry::Digest, size: u64) -> registry::Result<()> {
        let mismatch = |reason: String| registry::Error::DigestMismatch {
            digest: digest.to_string(),
            reason,
        };
        let expected = to_store_digest(digest).ok_or_else(|| mismatch("not sha256".into()))?;
        let written = self.0.written();
        if written != size {
            return Err(mismatch(format!("expected {size} bytes, got {written}")));
        }
        self.0
            .commit(Some(&expected))
            .map(|_| ())
            .map_err(|e| mismatch(e.to_string()))
    }
}
