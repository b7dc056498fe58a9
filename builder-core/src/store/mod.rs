//! The content store: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) that skopeo and umoci read as it is, plus kiln's own
//! metadata under `kiln/v1/` (names, GC roots, caches, temp files, locks).
//!
//! Every blob is written to a temp file inside the store, fsynced, checked
//! against its digest and renamed into place, so a blob's content always
//! matches its name. Each [`Store`] holds a shared `flock` for its lifetime;
//! metadata updates take a second, exclusive lock; [`Store::prune`] waits for
//! the store lock to be exclusive so it never sweeps a blob another process is
//! still about to reference.
mod blob;
mod direct;
mod import;
mod lock;
mod name;
mod refs;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use blob::BlobWriter;
pub use name::{familiar_name, normalize_name, NameError};
pub use refs::{ImageRecord, PruneReport};

use crate::digest::Digest;
use lock::Lock;

/// What went wrong in the store, with the path or digest concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Written content does not hash to the digest it was announced with.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// The blob is not in the store.
    #[error("blob {0} not found in the store")]
    BlobNotFound(Digest),
    /// No image has this name or digest.
    #[error("no image named {0:?} in the store")]
    ImageNotFound(String),
    /// A short digest matches several images.
    #[error("{0:?} matches more than one image")]
    Ambiguous(String),
    /// A name is malformed.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A metadata or manifest file is not valid JSON of the expected shape.
    #[error("{path}: {source}")]
    Json {
        /// The file (or blob) that failed to parse.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A name for a cache directory is not a single plain path component.
    #[error("invalid cache name {0:?}")]
    CacheName(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An open store. Cheap to share by reference; all methods take `&self`.
pub struct Store {
    root: PathBuf,
    // Held (shared) for the store's lifetime; see the module docs.
    lock: Lock,
}

impl Store {
    /// kiln's default root: `/var/lib/kiln` for root, else
    /// `$XDG_DATA_HOME/kiln`, else `~/.local/share/kiln`.
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/kiln");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("kiln");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        PathBuf::from(home).join(".local/share/kiln")
    }

    /// Opens the store at `root`, creating an empty layout there if needed.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let meta = root.join("kiln/v1");
        for d in [
            root.join("blobs/sha256"),
            meta.join("tmp"),
            meta.join("cache"),
        ] {
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let lock = Lock::open(&meta.join("lock"))?;
        lock.shared()?;
        let store = Store {
            root: root.to_path_buf(),
            lock,
        };
        let layout = root.join("oci-layout");
        if !layout.exists() {
            store.write_file_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let _g = store.meta_lock()?;
        if !root.join("index.json").exists() {
            store.write_index(&[])?;
        } else if !store.refs_exist() {
            // An OCI layout made by another tool: adopt its entries so the
            // first index.json rewrite does not drop them.
            store.adopt_index()?;
        }
        drop(_g);
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with digest `d` lives (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm()).join(d.hex())
    }

    /// Whether the store holds blob `d`.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens blob `d` for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<fs::File, StoreError> {
        let p = self.blob_path(d);
        fs::File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(d.clone()),
            _ => StoreError::Io { path: p, source: e },
        })
    }

    /// Reads a whole blob; meant for manifests and configs.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(d.clone()),
            _ => StoreError::Io { path: p, source: e },
        })
    }

    /// A writer for a new blob; call [`BlobWriter::commit`] to name it.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        BlobWriter::create(self)
    }

    /// Copies `reader` into a new blob, checking `expected` if given.
    pub fn put_blob<R: io::Read>(
        &self,
        mut reader: R,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let mut w = self.blob_writer()?;
        let tmp = w.temp_path().to_path_buf();
        io::copy(&mut reader, &mut w).map_err(io_err(&tmp))?;
        w.commit(expected)
    }

    /// Stores `bytes` as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::of(bytes);
        if !self.has_blob(&d) {
            self.put_blob(bytes, Some(&d))?;
        }
        Ok(d)
    }

    /// A directory under the store for another module's cache, created on
    /// first use. `name` must be one plain path component.
    pub fn cache_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('/')
            && !name.contains('\0');
        if !plain {
            return Err(StoreError::CacheName(name.to_string()));
        }
        let d = self.root.join("kiln/v1/cache").join(name);
        fs::create_dir_all(&d).map_err(io_err(&d))?;
        Ok(d)
    }

    /// The directory temp files live in (same filesystem as the blobs, so
    /// renames into place are atomic).
    pub fn temp_dir(&self) -> PathBuf {
        self.root.join("kiln/v1/tmp")
    }

    /// Writes `bytes` to `path` atomically: temp file, fsync, rename, dir
    /// fsync. A file that already holds exactly `bytes` is left alone: a
    /// no-op rebuild then costs no fsync (they dominate its time on a busy
    /// disk).
    pub fn write_file_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        if fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64)
            && fs::read(path).is_ok_and(|old| old == bytes)
        {
            return Ok(());
        }
        let mut w = self.blob_writer()?;
        let tmp = w.temp_path().to_path_buf();
        io::Write::write_all(&mut w, bytes).map_err(io_err(&tmp))?;
        w.persist_to(path)
    }
}

/// fsyncs a directory so a rename inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests;
