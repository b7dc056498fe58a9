//! The persistent stat cache: (path, device, inode, size, mtime, ctime,
//! mode) → digest, so a rebuild with nothing changed reads no file.
//!
//! One file per context directory under the cache directory, in a small
//! versioned binary format. It is written to a temporary file and renamed
//! into place, so a reader sees either the old or the new file whole, and
//! two builds racing just make the last rename win. A file that does not
//! parse (other version, truncated, foreign) is treated as empty.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::digest::Digest;

const MAGIC: &[u8; 8] = b"KILNSC01";

/// What identifies an unchanged file. The ctime catches edits that keep
/// size and mtime (`touch -r`, a fast same-size rewrite), since no user
/// call can set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub ctime: i64,
    pub ctime_nsec: u32,
    pub mode: u32,
}

/// One cached entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub key: StatKey,
    pub digest: Digest,
    /// The `security.capability` xattr, kept so a hit needs no syscall.
    pub capability: Option<Vec<u8>>,
}

/// The cache as loaded: context-relative path bytes → record.
#[derive(Debug, Default)]
pub(crate) struct StatCache {
    pub map: HashMap<Vec<u8>, Record>,
}

/// The cache file for a context directory.
pub(crate) fn cache_file(cache_dir: &Path, context_root: &Path) -> PathBuf {
    let mut h = super::digest::ContentHasher::new();
    h.update(context_root.as_os_str().as_encoded_bytes());
    let hex = h.finish().hex();
    cache_dir.join(format!("{}.bin", hex.get(..32).unwrap_or(&hex)))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

impl StatCache {
    /// Loads the cache; a missing or unreadable file is an empty cache.
    pub(crate) fn load(file: &Path) -> StatCache {
        match std::fs::read(file) {
            Ok(bytes) => Self::parse(&bytes).unwrap_or_default(),
            Err(_) => StatCache::default(),
        }
    }

    fn parse(bytes: &[u8]) -> Option<StatCache> {
        let mut r = Reader(bytes);
        if r.take(8)? != MAGIC {
            return None;
        }
        let count = r.u64()?;
        // Each record takes at least 100 bytes: refuse absurd counts.
        if count > (bytes.len() as u64) / 64 {
            return None;
        }
        let mut map = HashMap::with_capacity(count as usize);
        for _ in 0..count {
            let plen = r.u32()? as usize;
            let path = r.take(plen)?.to_vec();
            let key = StatKey {
                dev: r.u64()?,
                ino: r.u64()?,
                size: r.u64()?,
                mtime: r.u64()? as i64,
                mtime_nsec: r.u32()?,
                ctime: r.u64()? as i64,
                ctime_nsec: r.u32()?,
                mode: r.u32()?,
            };
            let digest = Digest(r.take(32)?.try_into().ok()?);
            let caplen = r.u32()?;
            let capability = if caplen == u32::MAX {
                None
            } else {
                Some(r.take(caplen as usize)?.to_vec())
            };
            map.insert(
                path,
                Record {
                    key,
                    digest,
                    capability,
                },
            );
        }
        if !r.0.is_empty() {
            return None;
        }
        Some(StatCache { map })
    }

    fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.map.len() * 128);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (path, rec) in &self.map {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path);
            let k = &rec.key;
            for v in [k.dev, k.ino, k.size, k.mtime as u64] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&k.mtime_nsec.to_le_bytes());
            out.extend_from_slice(&(k.ctime as u64).to_le_bytes());
            out.extend_from_slice(&k.ctime_nsec.to_le_bytes());
            out.extend_from_slice(&k.mode.to_le_bytes());
            out.extend_from_slice(&rec.digest.0);
            match &rec.capability {
                Some(cap) => {
                    out.extend_from_slice(&(cap.len() as u32).to_le_bytes());
                    out.extend_from_slice(cap);
                }
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
        }
        out
    }

    /// Writes the cache next to `file` and renames it into place.
    pub(crate) fn save(&self, file: &Path) -> std::io::Result<()> {
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(&self.serialize())?;
        tmp.as_file().sync_data()?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.bin");
        let mut c = StatCache::default();
        let key = StatKey {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: 4,
            mtime_nsec: 5,
            ctime: 6,
            ctime_nsec: 7,
            mode: 0o100644,
        };
        c.map.insert(
            b"a/b".to_vec(),
            Record {
                key,
                digest: Digest([9; 32]),
                capability: Some(vec![1, 2]),
            },
        );
        c.map.insert(
            b"x".to_vec(),
            Record {
                key,
                digest: Digest([8; 32]),
                capability: None,
            },
        );
        c.save(&file).unwrap();
        let back = StatCache::load(&file);
        assert_eq!(back.map, c.map);

        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
        assert!(StatCache::load(&file).map.is_empty(), "truncated file");
        std::fs::write(&file, b"KILNSC00garbage").unwrap();
        assert!(StatCache::load(&file).map.is_empty(), "other version");
    }
}
