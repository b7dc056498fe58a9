//! Where pulled blobs go and pushed blobs come from. The registry client only
//! needs these few operations, so the content store implements this trait;
//! [`OciDir`] implements it for a plain OCI image layout directory.
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{Error, Result};
use crate::digest::{Digest, DigestWriter};
use crate::image::media::ANNOTATION_REF_NAME as REF_NAME;
use crate::image::Descriptor;

/// A content-addressed blob store.
pub trait BlobSink: Sync {
    /// Whether the blob is held (complete and verified).
    fn has(&self, digest: &Digest) -> bool;
    /// Starts writing a new blob; nothing is visible until
    /// [`BlobWriter::commit`] has checked it.
    fn begin(&self) -> Result<Box<dyn BlobWriter>>;
    /// Reads a blob.
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>>;
}

/// A blob being written. Dropping it without committing discards it.
pub trait BlobWriter: Write + Send {
    /// Bytes written so far (where a resumed download continues from).
    fn written(&self) -> u64;
    /// Keeps the blob if its content has exactly `digest` and `size`;
    /// otherwise discards it and fails with [`Error::DigestMismatch`].
    fn commit(self: Box<Self>, digest: &Digest, size: u64) -> Result<()>;
}

/// Reads a whole (small) blob, such as a manifest or config.
pub fn read_blob(sink: &dyn BlobSink, digest: &Digest) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    sink.open(digest)?
        .read_to_end(&mut out)
        .map_err(|e| Error::Transport {
            url: digest.to_string(),
            detail: e.to_string(),
        })?;
    Ok(out)
}

/// Writes bytes whose digest the caller computed as one blob.
pub fn write_blob(sink: &dyn BlobSink, bytes: &[u8]) -> Result<Digest> {
    let digest = Digest::of(bytes);
    if sink.has(&digest) {
        return Ok(digest);
    }
    let mut w = sink.begin()?;
    w.write_all(bytes).map_err(|e| Error::io("blob", e))?;
    w.commit(&digest, bytes.len() as u64)?;
    Ok(digest)
}

/// An OCI image layout directory (`oci-layout`, `index.json`,
/// `blobs/sha256/<hex>`), written temp-then-rename so a reader never sees a
/// partial or unverified blob.
pub struct OciDir {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl OciDir {
    /// Opens `root`, creating an empty layout if it does not exist.
    pub fn create(root: &Path) -> Result<OciDir> {
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            atomic_write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            atomic_write(&index, br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#)?;
        }
        Ok(OciDir {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing layout for reading.
    pub fn open_existing(root: &Path) -> Result<OciDir> {
        if !root.join("index.json").is_file() {
            return Err(Error::Layout {
                path: root.to_path_buf(),
                reason: "not an OCI image layout (no index.json)".into(),
            });
        }
        Ok(OciDir {
            root: root.to_path_buf(),
        })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    fn index(&self) -> Result<serde_json::Value> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: path.display().to_string(),
            source,
        })
    }

    /// The manifests listed in `index.json`.
    pub fn manifests(&self) -> Result<Vec<Descriptor>> {
        let index = self.index()?;
        let list = index.get("manifests").cloned().unwrap_or_default();
        serde_json::from_value(list).map_err(|source| Error::Json {
            what: self.root.join("index.json").display().to_string(),
            source,
        })
    }

    /// The manifest named `tag` (the `org.opencontainers.image.ref.name`
    /// annotation), or the only one when `tag` is `None`.
    pub fn find(&self, tag: Option<&str>) -> Result<Descriptor> {
        let all = self.manifests()?;
        let found: Vec<&Descriptor> = match tag {
            Some(t) => all
                .iter()
                .filter(|d| {
                    d.annotations
                        .as_ref()
                        .and_then(|a| a.get(REF_NAME))
                        .map(String::as_str)
                        == Some(t)
                })
                .collect(),
            None => all.iter().collect(),
        };
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::Layout {
                path: self.root.clone(),
                reason: format!("no manifest named {:?}", tag.unwrap_or("")),
            }),
            _ => Err(Error::Layout {
                path: self.root.clone(),
                reason: "several manifests; name one with PATH:TAG".into(),
            }),
        }
    }

    /// Lists `descriptor` in `index.json` under `tag`, replacing an entry with
    /// the same name.
    pub fn set_ref(&self, tag: &str, descriptor: &Descriptor) -> Result<()> {
        let mut index = self.index()?;
        let mut d = descriptor.clone();
        d.platform = None;
        d.annotations
            .get_or_insert_with(Default::default)
            .insert(REF_NAME.to_string(), tag.to_string());
        let entry = serde_json::to_value(&d).map_err(|source| Error::Json {
            what: "descriptor".into(),
            source,
        })?;
        let list = index
            .as_object_mut()
            .and_then(|o| {
                o.entry("manifests")
                    .or_insert_with(|| serde_json::Value::Array(vec![]));
                o.get_mut("manifests")
            })
            .and_then(|m| m.as_array_mut())
            .ok_or_else(|| Error::Layout {
                path: self.root.clone(),
                reason: "index.json is not an image index".into(),
            })?;
        list.retain(|m| {
            m.pointer("/annotations/org.opencontainers.image.ref.name")
                .and_then(|v| v.as_str())
                != Some(tag)
        });
        list.push(entry);
        let bytes = serde_json::to_vec(&index).map_err(|source| Error::Json {
            what: "index.json".into(),
            source,
        })?;
        atomic_write(&self.root.join("index.json"), &bytes)
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(path, e))
}

impl BlobSink for OciDir {
    fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    fn begin(&self) -> Result<Box<dyn BlobWriter>> {
        let dir = self.root.join("blobs").join("sha256");
        let tmp = dir.join(format!(
            ".partial-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Box::new(OciWriter {
            file: Some(DigestWriter::new(io::BufWriter::with_capacity(
                256 * 1024,
                file,
            ))),
            tmp,
            dir,
        }))
    }

    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobMissing(digest.to_string()))
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

struct OciWriter {
    file: Option<DigestWriter<io::BufWriter<File>>>,
    tmp: PathBuf,
    dir: PathBuf,
}

impl Write for OciWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer closed"))?
            .write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter for OciWriter {
    fn written(&self) -> u64 {
        self.file.as_ref().map_or(0, |f| f.size())
    }

    fn commit(mut self: Box<Self>, digest: &Digest, size: u64) -> Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::io(&self.tmp, io::Error::other("closed")))?;
        let (file, actual, written) = file.finish();
        check(digest, size, &actual, written)?;
        let file = file
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        let dest = self.dir.join(digest.hex());
        fs::rename(&self.tmp, &dest).map_err(|e| Error::io(&dest, e))?;
        Ok(())
    }
}

/// The error for content of `written` bytes hashing to `actual` where a
/// descriptor promised `size` bytes with `digest`.
pub(crate) fn check(digest: &Digest, size: u64, actual: &Digest, written: u64) -> Result<()> {
    if written != size {
        return Err(Error::DigestMismatch {
            digest: digest.to_string(),
            reason: format!("expected {size} bytes, got {written}"),
        });
    }
    if actual != digest {
        return Err(Error::DigestMismatch {
            digest: digest.to_string(),
            reason: format!("content hashes to {actual}"),
        });
    }
    Ok(())
}

impl Drop for OciWriter {
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_commit_and_refused_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let sink = OciDir::create(dir.path()).unwrap();
        let d = write_blob(&sink, b"hello").unwrap();
        assert!(sink.has(&d));
        assert_eq!(read_blob(&sink, &d).unwrap(), b"hello");

        let wrong = Digest::of(b"other");
        let mut w = sink.begin().unwrap();
        w.write_all(b"hellx").unwrap();
        let err = w.commit(&wrong, 5).unwrap_err().to_string();
        assert!(err.contains(&wrong.to_string()), "{err}");
        assert!(!sink.has(&wrong));
        let left: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .collect();
        assert_eq!(left.len(), 1, "only the good blob remains");

        let desc = Descriptor::new("x", d.clone(), 5);
        sink.set_ref("v1", &desc).unwrap();
        sink.set_ref("v1", &desc).unwrap();
        assert_eq!(sink.manifests().unwrap().len(), 1);
        assert_eq!(sink.find(Some("v1")).unwrap().digest, d);
        assert!(sink.find(Some("v2")).is_err());
    }
}
