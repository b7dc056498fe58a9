//! The persistent cache index, under the store's `build-cache-v1` cache
//! directory:
//!
//! * `entries/<key hex>.json`: the result of the step with that key;
//! * `records/<key hex>.json`: the [`InputsRecord`] the key was made from;
//! * `steps/<sha256(identity) hex>.json`: the most recent keys of one
//!   step identity, newest first, to find the closest earlier build;
//! * `index.lock`: taken exclusively around read-modify-writes of `steps/`.
//!
//! Every file is written temp-then-rename through the store, so a crash
//! leaves either the old or the new version. An entry is written only after
//! its blobs are in the store and after its record, so an entry on disk
//! always has both.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::explain::{diff, distance, MissExplanation};
use super::key::{CacheKey, InputsRecord};
use super::CacheError;
use crate::digest::Digest;
use crate::image::Descriptor;
use crate::store::Store;

/// The store cache directory name.
pub const CACHE_DIR: &str = "build-cache-v1";
/// The GC-root owner name the cache registers its blobs under.
pub const ROOT_OWNER: &str = "build-cache";
/// Keys remembered per step identity.
const RECENT: usize = 8;

/// A layer a cached step produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The (compressed) blob in the store.
    pub descriptor: Descriptor,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// What a step produced, enough to reuse it without running it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheResult {
    /// The layer, or None for a step that changed no files.
    pub layer: Option<CachedLayer>,
    /// A config blob in the store (e.g. the whole config after the step),
    /// when the engine keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Digest>,
    /// Anything else the engine needs to replay the step (a config delta,
    /// the history entry); the cache stores it as it is.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

impl CacheResult {
    /// The blobs this result needs in the store.
    pub fn blobs(&self) -> Vec<&Digest> {
        let mut v: Vec<&Digest> = self.layer.iter().map(|l| &l.descriptor.digest).collect();
        v.extend(self.config.iter());
        v
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct Entry {
    pub key: CacheKey,
    pub result: CacheResult,
}

#[derive(Serialize, Deserialize, Default)]
pub(super) struct StepKeys {
    pub identity: String,
    pub keys: Vec<CacheKey>,
}

/// The build cache of one store.
pub struct CacheIndex<'s> {
    store: &'s Store,
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, CacheError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| CacheError::Json {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

impl<'s> CacheIndex<'s> {
    /// Opens (creating if needed) the cache of `store`.
    pub fn open(store: &'s Store) -> Result<CacheIndex<'s>, CacheError> {
        let dir = store.cache_dir(CACHE_DIR)?;
        for sub in ["entries", "records", "steps"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        Ok(CacheIndex { store, dir })
    }

    /// The store the cached blobs live in.
    pub fn store(&self) -> &'s Store {
        self.store
    }

    fn entry_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join("entries").join(format!("{}.json", key.hex()))
    }

    fn record_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join("records").join(format!("{}.json", key.hex()))
    }

    fn steps_path(&self, identity: &str) -> PathBuf {
        let h = Digest::of(identity.as_bytes());
        self.dir.join("steps").join(format!("{}.json", h.hex()))
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), CacheError> {
        let bytes = serde_json::to_vec(value).map_err(|source| CacheError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        self.store.write_file_atomic(path, &bytes)?;
        Ok(())
    }

    /// The cached result for `key`, if there is one whose blobs are all
    /// still in the store. Reads one small file; extracts nothing.
    pub fn lookup(&self, key: &CacheKey) -> Result<Option<CacheResult>, CacheError> {
        let Some(entry) = read_json::<Entry>(&self.entry_path(key))? else {
            return Ok(None);
        };
        if entry.result.blobs().iter().all(|d| self.store.has_blob(d)) {
            Ok(Some(entry.result))
        } else {
            Ok(None)
        }
    }

    /// The inputs `key` was made from, if recorded.
    pub fn inputs(&self, key: &CacheKey) -> Result<Option<InputsRecord>, CacheError> {
        read_json(&self.record_path(key))
    }

    /// Records that the step `identity` built `key` (made from `inputs`)
    /// with `result`, whose blobs must already be in the store.
    pub fn record(
        &self,
        identity: &str,
        inputs: &InputsRecord,
        result: &CacheResult,
    ) -> Result<CacheKey, CacheError> {
        let key = inputs.key();
        for d in result.blobs() {
            if !self.store.has_blob(d) {
                return Err(CacheError::BlobMissing(d.clone()));
            }
        }
        self.write_json(&self.record_path(&key), inputs)?;
        self.write_json(
            &self.entry_path(&key),
            &Entry {
                key: key.clone(),
                result: result.clone(),
            },
        )?;
        self.touch(identity, &key)?;
        Ok(key)
    }

    /// Makes `key` the most recent build of step `identity` (after a hit,
    /// so the next miss compares with what was really used). Writes nothing
    /// when it already is.
    pub fn touch(&self, identity: &str, key: &CacheKey) -> Result<(), CacheError> {
        self.update_steps(identity, |keys| {
            if keys.first() == Some(key) {
                return false;
            }
            keys.retain(|k| k != key);
            keys.insert(0, key.clone());
            keys.truncate(RECENT);
            true
        })
    }

    /// Adds `key` as the oldest known build of `identity` (imports: a
    /// local build stays the first one compared against).
    pub(super) fn add_oldest(&self, identity: &str, key: &CacheKey) -> Result<(), CacheError> {
        self.update_steps(identity, |keys| {
            if keys.contains(key) || keys.len() >= RECENT {
                return false;
            }
            keys.push(key.clone());
            true
        })
    }

    fn update_steps(
        &self,
        identity: &str,
        change: impl FnOnce(&mut Vec<CacheKey>) -> bool,
    ) -> Result<(), CacheError> {
        let path = self.steps_path(identity);
        let _lock = self.lock()?;
        let mut steps: StepKeys = read_json(&path)?.unwrap_or_default();
        steps.identity = identity.to_string();
        if change(&mut steps.keys) {
            self.write_json(&path, &steps)?;
        }
        Ok(())
    }

    /// The most recent keys of step `identity`, newest first.
    pub fn recent(&self, identity: &str) -> Result<Vec<CacheKey>, CacheError> {
        Ok(read_json::<StepKeys>(&self.steps_path(identity))?
            .map(|s| s.keys)
            .unwrap_or_default())
    }

    /// Every step identity with its keys (for export).
    pub(super) fn all_steps(&self) -> Result<Vec<StepKeys>, CacheError> {
        let dir = self.dir.join("steps");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            if e.file_name().to_string_lossy().ends_with(".json") {
                if let Some(s) = read_json::<StepKeys>(&e.path())? {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// Why `inputs` (of step `identity`) missed: the differences from the
    /// closest of its recent builds (fewest differing inputs, newest on a
    /// tie).
    pub fn explain_miss(
        &self,
        identity: &str,
        inputs: &InputsRecord,
    ) -> Result<MissExplanation, CacheError> {
        let mut best: Option<(usize, InputsRecord)> = None;
        for k in self.recent(identity)? {
            if let Some(r) = self.inputs(&k)? {
                let d = distance(&r, inputs);
                if best.as_ref().is_none_or(|(bd, _)| d < *bd) {
                    best = Some((d, r));
                }
            }
        }
        Ok(match best {
            None => MissExplanation::first_build(&inputs.label),
            Some((_, before)) => {
                let mut e = diff(&before, inputs);
                if e.changed.is_empty() && e.added.is_empty() && e.removed.is_empty() {
                    e.result_missing = before.kind == inputs.kind;
                }
                e
            }
        })
    }

    /// Every key with an entry.
    pub fn keys(&self) -> Result<Vec<CacheKey>, CacheError> {
        let dir = self.dir.join("entries");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Ok(k) = format!("sha256:{hex}").parse::<CacheKey>() {
                out.push(k);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The entry of `key` even when its blobs are gone (for export checks).
    pub(super) fn entry(&self, key: &CacheKey) -> Result<Option<CacheResult>, CacheError> {
        Ok(read_json::<Entry>(&self.entry_path(key))?.map(|e| e.result))
    }

    /// Writes an imported entry unless one exists for `key`.
    pub(super) fn insert_imported(
        &self,
        inputs: Option<&InputsRecord>,
        key: &CacheKey,
        result: &CacheResult,
    ) -> Result<bool, CacheError> {
        if self.entry_path(key).exists() {
            return Ok(false);
        }
        if let Some(r) = inputs {
            if &r.key() != key {
                return Err(CacheError::Corrupt(format!(
                    "imported inputs of {key} hash to {}",
                    r.key()
                )));
            }
            self.write_json(&self.record_path(key), r)?;
        }
        self.write_json(
            &self.entry_path(key),
            &Entry {
                key: key.clone(),
                result: result.clone(),
            },
        )?;
        Ok(true)
    }

    /// Registers every cached blob as a GC root of the store, so
    /// `kiln prune` keeps them. Call once at the end of a build.
    pub fn update_roots(&self) -> Result<(), CacheError> {
        let mut roots: Vec<Digest> = Vec::new();
        for k in self.keys()? {
            if let Some(r) = self.entry(&k)? {
                roots.extend(r.blobs().into_iter().cloned());
            }
        }
        roots.sort();
        roots.dedup();
        self.store.set_roots(ROOT_OWNER, &roots)?;
        Ok(())
    }

    fn lock(&self) -> Result<LockGuard, CacheError> {
        let path = self.dir.join("index.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(LockGuard { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_err(&path)(e.into())),
            }
        }
    }
}

/// Closing the file releases the flock.
struct LockGuard {
    _file: fs::File,
}
