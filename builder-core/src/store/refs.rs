//! Names and GC roots: `kiln/v1/refs.json` is the source of truth, and
//! `index.json` is regenerated from it on every change so OCI tools see the
//! same names (annotation `org.opencontainers.image.ref.name`).
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::lock::{Guard, Lock};
use super::{io_err, name::normalize_name, Store, StoreError};
use crate::digest::Digest;
use crate::image::{media, to_canonical_json, Descriptor, ImageConfig, Index, Manifest};

/// One named image in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// Full name (`docker.io/library/x:latest`).
    pub name: String,
    /// The manifest (or index) it points at.
    pub descriptor: Descriptor,
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs deleted.
    pub blobs_removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Refs {
    #[serde(default)]
    images: BTreeMap<String, Descriptor>,
    #[serde(default)]
    roots: BTreeMap<String, BTreeSet<Digest>>,
}

impl Store {
    fn refs_path(&self) -> PathBuf {
        self.root.join("kiln/v1/refs.json")
    }

    pub(super) fn meta_lock(&self) -> Result<Guard, StoreError> {
        let l = Lock::open(&self.root.join("kiln/v1/refs.lock"))?;
        l.exclusive()?;
        Ok(Guard(l))
    }

    pub(super) fn refs_exist(&self) -> bool {
        self.refs_path().exists()
    }

    /// Seeds `refs.json` from a foreign `index.json`: named entries become
    /// images (tag-only names are normalised), unnamed ones GC roots.
    pub(super) fn adopt_index(&self) -> Result<(), StoreError> {
        let p = self.root.join("index.json");
        let bytes = fs::read(&p).map_err(io_err(&p))?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            path: p.clone(),
            source,
        })?;
        let mut refs = Refs::default();
        for m in index.manifests {
            let name = m.annotations.as_ref().and_then(|a| {
                a.get(media::ANNOTATION_IMAGE_NAME)
                    .or_else(|| a.get(media::ANNOTATION_REF_NAME))
                    .and_then(|n| normalize_name(n).ok())
            });
            let mut d = m.clone();
            d.annotations = None;
            match name {
                Some(n) => {
                    refs.images.insert(n, d);
                }
                None => {
                    refs.roots
                        .entry("adopted-index".to_string())
                        .or_default()
                        .insert(d.digest);
                }
            }
        }
        self.write_refs(&refs)
    }

    fn read_refs(&self) -> Result<Refs, StoreError> {
        let p = self.refs_path();
        match fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|source| StoreError::Json { path: p, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Refs::default()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    fn write_refs(&self, refs: &Refs) -> Result<(), StoreError> {
        let p = self.refs_path();
        let json = to_canonical_json(refs).map_err(|source| StoreError::Json {
            path: p.clone(),
            source,
        })?;
        self.write_file_atomic(&p, &json)?;
        let list: Vec<(String, Descriptor)> = refs
            .images
            .iter()
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect();
        self.write_index(&list)
    }

    pub(super) fn write_index(&self, images: &[(String, Descriptor)]) -> Result<(), StoreError> {
        let manifests = images
            .iter()
            .map(|(name, d)| {
                let mut d = d.clone();
                d.annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(media::ANNOTATION_REF_NAME.to_string(), name.clone());
                d
            })
            .collect();
        let p = self.root.join("index.json");
        let json = Index::oci(manifests)
            .to_json()
            .map_err(|source| StoreError::Json {
                path: p.clone(),
                source,
            })?;
        self.write_file_atomic(&p, &json)
    }

    /// Stores `value` as canonical JSON and returns its descriptor.
    pub fn put_json<T: Serialize>(
        &self,
        media_type: &str,
        value: &T,
    ) -> Result<Descriptor, StoreError> {
        let bytes = to_canonical_json(value).map_err(|source| StoreError::Json {
            path: PathBuf::from(media_type),
            source,
        })?;
        let d = self.put_bytes(&bytes)?;
        Ok(Descriptor::new(media_type, d, bytes.len() as u64))
    }

    /// Names `descriptor` (a manifest or index already in the store) `name`,
    /// replacing what the name pointed at before. Returns the full name.
    pub fn tag(&self, name: &str, descriptor: &Descriptor) -> Result<String, StoreError> {
        let full = normalize_name(name)?;
        if !self.has_blob(&descriptor.digest) {
            return Err(StoreError::BlobNotFound(descriptor.digest.clone()));
        }
        let _g = self.meta_lock()?;
        let mut refs = self.read_refs()?;
        let mut d = descriptor.clone();
        d.annotations = None;
        refs.images.insert(full.clone(), d);
        self.write_refs(&refs)?;
        Ok(full)
    }

    /// Removes name `name`; the blobs stay until [`prune`](Self::prune).
    pub fn untag(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let full = normalize_name(name)?;
        let _g = self.meta_lock()?;
        let mut refs = self.read_refs()?;
        let descriptor = refs
            .images
            .remove(&full)
            .ok_or_else(|| StoreError::ImageNotFound(name.to_string()))?;
        self.write_refs(&refs)?;
        Ok(ImageRecord {
            name: full,
            descriptor,
        })
    }

    /// Every named image, sorted by name.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        Ok(self
            .read_refs()?
            .images
            .into_iter()
            .map(|(name, descriptor)| ImageRecord { name, descriptor })
            .collect())
    }

    /// Finds an image by name, full digest or a unique prefix (≥ 4 hex digits)
    /// of a named image's digest, as `docker inspect` does.
    pub fn resolve(&self, name_or_digest: &str) -> Result<ImageRecord, StoreError> {
        let images = self.images()?;
        if let Ok(full) = normalize_name(name_or_digest) {
            if let Some(r) = images.iter().find(|r| r.name == full) {
                return Ok(r.clone());
            }
        }
        let hex = name_or_digest
            .strip_prefix("sha256:")
            .unwrap_or(name_or_digest);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: BTreeSet<&Digest> = images
                .iter()
                .map(|r| &r.descriptor.digest)
                .filter(|d| d.hex().starts_with(hex))
                .collect();
            match hits.len() {
                0 => {}
                1 => {
                    if let Some(r) = images
                        .iter()
                        .find(|r| r.descriptor.digest.hex().starts_with(hex))
                    {
                        return Ok(r.clone());
                    }
                }
                _ => return Err(StoreError::Ambiguous(name_or_digest.to_string())),
            }
        }
        Err(StoreError::ImageNotFound(name_or_digest.to_string()))
    }

    /// Replaces the GC roots another module (e.g. the build cache) keeps
    /// under `owner`: blobs reachable from them survive [`prune`](Self::prune).
    pub fn set_roots(&self, owner: &str, digests: &[Digest]) -> Result<(), StoreError> {
        let _g = self.meta_lock()?;
        let mut refs = self.read_refs()?;
        if digests.is_empty() {
            refs.roots.remove(owner);
        } else {
            refs.roots
                .insert(owner.to_string(), digests.iter().cloned().collect());
        }
        self.write_refs(&refs)
    }

    /// Parses a JSON blob.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, d: &Digest) -> Result<T, StoreError> {
        let bytes = self.read_blob(d)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            path: self.blob_path(d),
            source,
        })
    }

    /// The manifest and config of a single-platform image; for an index, the
    /// entry for `platform` (or the first one when none matches).
    pub fn load_image(
        &self,
        descriptor: &Descriptor,
        platform: &crate::image::Platform,
    ) -> Result<(Descriptor, Manifest, ImageConfig), StoreError> {
        let mut d = descriptor.clone();
        for _ in 0..4 {
            if d.media_type == media::OCI_INDEX || d.media_type == media::DOCKER_MANIFEST_LIST {
                let idx: Index = self.read_json(&d.digest)?;
                let pick = idx
                    .manifests
                    .iter()
                    .find(|m| {
                        m.platform.as_ref().is_some_and(|p| {
                            p.os == platform.os && p.architecture == platform.architecture
                        })
                    })
                    .or_else(|| idx.manifests.first())
                    .cloned()
                    .ok_or_else(|| StoreError::ImageNotFound(d.digest.to_string()))?;
                d = pick;
                continue;
            }
            let m: Manifest = self.read_json(&d.digest)?;
            let c: ImageConfig = self.read_json(&m.config.digest)?;
            return Ok((d, m, c));
        }
        Err(StoreError::ImageNotFound(descriptor.digest.to_string()))
    }

    /// Deletes every blob not reachable from a named image or a GC root,
    /// and stale temp files. Waits until no other kiln process has the
    /// store open.
    ///
    /// Lock order: the store lock first, then the names lock, so a build that
    /// holds the store open can still tag (and then exit) while prune waits.
    /// Every other [`Store`] handle on this root, in this process too, must
    /// be dropped for prune to proceed.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        self.lock.exclusive()?;
        let result = self.meta_lock().and_then(|_g| self.sweep());
        let back = self.lock.shared();
        let report = result?;
        back?;
        Ok(report)
    }

    fn sweep(&self) -> Result<PruneReport, StoreError> {
        let refs = self.read_refs()?;
        let mut live: BTreeSet<Digest> = BTreeSet::new();
        let mut todo: Vec<Digest> = refs.images.values().map(|d| d.digest.clone()).collect();
        todo.extend(refs.roots.values().flatten().cloned());
        while let Some(d) = todo.pop() {
            if !live.insert(d.clone()) || !self.has_blob(&d) {
                continue;
            }
            todo.extend(children(self, &d));
        }
        let mut report = PruneReport::default();
        let dir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name();
            let keep = name
                .to_str()
                .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
                .is_some_and(|d| live.contains(&d));
            if !keep {
                let p = e.path();
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&p).map_err(io_err(&p))?;
                report.blobs_removed += 1;
                report.bytes_freed += len;
            }
        }
        super::sync_dir(&dir)?;
        let tmp = self.temp_dir();
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        Ok(report)
    }
}

/// The digests a blob refers to, if it is a manifest or index. Anything
/// else (layers, configs, unparsable blobs) refers to nothing.
pub(super) fn children(store: &Store, d: &Digest) -> Vec<Digest> {
    #[derive(Deserialize)]
    struct Refd {
        digest: Digest,
    }
    #[derive(Deserialize)]
    struct Node {
        #[serde(default)]
        config: Option<Refd>,
        #[serde(default)]
        layers: Vec<Refd>,
        #[serde(default)]
        manifests: Vec<Refd>,
        #[serde(default)]
        subject: Option<Refd>,
    }
    // Layers can be huge; only small blobs can be manifests.
    let small = fs::metadata(store.blob_path(d)).is_ok_and(|m| m.len() < 4 << 20);
    if !small {
        return Vec::new();
    }
    let Ok(node) = store.read_json::<Node>(d) else {
        return Vec::new();
    };
    let mut out: Vec<Digest> = node.config.into_iter().map(|r| r.digest).collect();
    out.extend(node.layers.into_iter().map(|r| r.digest));
    out.extend(node.manifests.into_iter().map(|r| r.digest));
    out.extend(node.subject.into_iter().map(|r| r.digest));
    out
}

impl Store {
    /// Stores `config` and an OCI manifest over `layers` (already in the
    /// store), returning the manifest's descriptor, ready for [`Store::tag`].
    pub fn put_image(
        &self,
        config: &ImageConfig,
        layers: &[Descriptor],
    ) -> Result<Descriptor, StoreError> {
        for l in layers {
            if !self.has_blob(&l.digest) {
                return Err(StoreError::BlobNotFound(l.digest.clone()));
            }
        }
        let cfg = self.put_json(media::OCI_CONFIG, config)?;
        let manifest = Manifest::oci(cfg, layers.to_vec());
        let mut d = self.put_json(media::OCI_MANIFEST, &manifest)?;
        d.platform = Some(config.platform.clone());
        Ok(d)
    }
}
