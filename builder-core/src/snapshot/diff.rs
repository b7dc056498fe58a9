//! The diff of a step: walk only the overlay upper directory and describe
//! each change as an [`Entry`], the way BuildKit's overlay differ and
//! containerd's archive writer do (unchanged copied-up directories are left
//! out, whiteouts only for paths that exist below, parents of changes
//! included).
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{io_err, SnapshotError};
use crate::fsentry::{Content, Entry, Kind};
use crate::sandbox::IdMap;

/// The capability a layer records for one read on the host side of a
/// rootless step. What container root writes (a step's `setcap`, `cp -a`,
/// or the extraction of a lower layer) the kernel stores as a namespaced
/// (v3) capability carrying the namespace's root id, the calling user;
/// steps see it as the plain (v2) one, and so must the image: a v3 value
/// with a host uid applies to nobody in another container.
fn container_capability(cap: Vec<u8>, idmap: &IdMap) -> Vec<u8> {
    const REVISION_MASK: u32 = 0xFF00_0000;
    const REVISION_2: u32 = 0x0200_0000;
    const REVISION_3: u32 = 0x0300_0000;
    let word = |i: usize| {
        cap.get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let (Some(magic), Some(rootid)) = (word(0), word(20)) else {
        return cap;
    };
    if !idmap.needs_userns()
        || cap.len() != 24
        || magic & REVISION_MASK != REVISION_3
        || idmap.host_uid(0) != Some(rootid)
    {
        return cap;
    }
    let mut v2 = cap.get(..20).unwrap_or_default().to_vec();
    if let Some(m) = v2.get_mut(..4) {
        m.copy_from_slice(&((magic & !REVISION_MASK) | REVISION_2).to_le_bytes());
    }
    v2
}

pub(super) fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Some(buf);
            }
            Err(rustix::io::Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(_) => return None,
        }
    }
}

/// fuse-overlayfs's marker file of an opaque directory (the OCI name).
const FUSE_OPAQUE_FILE: &str = ".wh..wh..opq";

pub(super) fn is_opaque(path: &Path) -> bool {
    // fuse-overlayfs also sets its own xattr (when it cannot set the
    // overlay ones) and writes a marker file; kernel layers never have either.
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|k| xattr(path, k).as_deref() == Some(b"y"))
        || xattr(path, "user.fuseoverlayfs.opaque").is_some()
        || fs::symlink_metadata(path.join(FUSE_OPAQUE_FILE)).is_ok()
}

/// In a fuse-overlayfs upper directory, what a `.wh.` name stands for:
/// `None` for an ordinary name, `Some(None)` for a marker to leave out
/// (the opaque marker file, and the `.wh..opq` whiteout fuse-overlayfs
/// writes next to it), `Some(Some(name))` for a whiteout of `name`.
fn fuse_whiteout(name: &std::ffi::OsStr) -> Option<Option<std::ffi::OsString>> {
    let rest = name.as_encoded_bytes().strip_prefix(b".wh.")?;
    if name == FUSE_OPAQUE_FILE || rest == b".opq" || rest.is_empty() {
        return Some(None);
    }
    Some(Some(std::ffi::OsStr::from_bytes(rest).to_owned()))
}

/// Looks paths up in the read-only layers as overlayfs would show them.
pub(super) struct Lower<'a> {
    pub(super) layers: &'a [PathBuf],
}

impl Lower<'_> {
    /// The full path and metadata of `rel` in the merged lower layers.
    pub(super) fn lookup(&self, rel: &Path) -> Option<(PathBuf, Metadata)> {
        let comps: Vec<_> = rel.components().collect();
        'layers: for layer in self.layers {
            let mut cur = layer.clone();
            let mut opaque_above = false;
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                let m = fs::symlink_metadata(&cur).ok();
                let last = i + 1 == comps.len();
                match m {
                    // Below an opaque directory the lower layers are hidden.
                    None if opaque_above => return None,
                    None => continue 'layers,
                    Some(m) if is_whiteout(&m) => return None,
                    Some(m) if last => return Some((cur, m)),
                    Some(m) if !m.is_dir() => return None,
                    Some(_) => opaque_above |= is_opaque(&cur),
                }
            }
            if opaque_above {
                return None;
            }
        }
        None
    }
}

/// Looks `rel` up in the overlay view of `upper` over `lowers` (topmost
/// first), as the step saw it.
pub(super) fn merged_lookup(
    upper: &Path,
    lowers: &[PathBuf],
    rel: &Path,
) -> Option<(PathBuf, Metadata)> {
    let mut layers = Vec::with_capacity(lowers.len() + 1);
    layers.push(upper.to_path_buf());
    layers.extend_from_slice(lowers);
    Lower { layers: &layers }.lookup(rel)
}

/// BuildKit's `sameDirent`: same type, mode, owner, device and capabilities;
/// for non-directories also size and mtime (content when both mtimes lack
/// nanoseconds).
pub(super) fn same(lower: &Path, lm: &Metadata, upper: &Path, um: &Metadata) -> bool {
    if lm.mode() != um.mode()
        || lm.uid() != um.uid()
        || lm.gid() != um.gid()
        || lm.rdev() != um.rdev()
    {
        return false;
    }
    if xattr(lower, "security.capability") != xattr(upper, "security.capability") {
        return false;
    }
    if lm.is_dir() {
        return true;
    }
    if lm.size() != um.size() || lm.mtime() != um.mtime() {
        return false;
    }
    if lm.mtime_nsec() != 0 || um.mtime_nsec() != 0 {
        return lm.mtime_nsec() == um.mtime_nsec();
    }
    if lm.file_type().is_symlink() {
        return fs::read_link(lower).ok() == fs::read_link(upper).ok();
    }
    // Only regular files have content to compare: opening a fifo or a
    // device (a base image's /dev/console, in the copy fallback's root)
    // would block or read the device.
    if !lm.file_type().is_file() {
        return true;
    }
    same_content(lower, upper).unwrap_or(false)
}

fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 32768], vec![0u8; 32768]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let r = f.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(n)
}

/// The layer entry of one file of a step's result; `None` for a socket,
/// which no layer can hold: BuildKit's differs leave sockets out (a step
/// that leaves one behind still succeeds; docker 20.10 checked).
pub(super) fn entry(
    rel: &Path,
    full: &Path,
    m: &Metadata,
    idmap: &IdMap,
) -> Result<Option<Entry>, SnapshotError> {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink {
            target: crate::sandbox::Opener::new(idmap)
                .read_link(full)
                .map_err(io_err("reading link", full))?,
        }
    } else if ft.is_file() {
        Kind::File {
            content: Content::Path(full.to_owned()),
            size: m.size(),
        }
    } else if ft.is_char_device() {
        Kind::CharDevice {
            major: rustix::fs::major(m.rdev()),
            minor: rustix::fs::minor(m.rdev()),
        }
    } else if ft.is_block_device() {
        Kind::BlockDevice {
            major: rustix::fs::major(m.rdev()),
            minor: rustix::fs::minor(m.rdev()),
        }
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        return Ok(None);
    };
    let mut xattrs = BTreeMap::new();
    if let Some(cap) = xattr(full, "security.capability") {
        xattrs.insert(
            "security.capability".to_owned(),
            container_capability(cap, idmap),
        );
    }
    Ok(Some(Entry {
        path: rel.to_owned(),
        kind,
        mode: m.mode() & 0o7777,
        uid: idmap.container_uid(m.uid()),
        gid: idmap.container_gid(m.gid()),
        mtime: m.mtime(),
        mtime_nanos: m.mtime_nsec() as u32,
        xattrs,
    }))
}

struct Walk<'a> {
    /// Understand fuse-overlayfs's `.wh.` files as well.
    fuse: bool,
    opener: crate::sandbox::Opener,
    upper: &'a Path,
    lower: Lower<'a>,
    idmap: &'a IdMap,
    out: Vec<Entry>,
}

impl Walk<'_> {
    fn dir(&mut self, rel: &Path, under_opaque: bool) -> Result<(), SnapshotError> {
        let full = self.upper.join(rel);
        // The opener reads directories the step gave to other ids.
        let mut names = self
            .opener
            .read_dir(&full)
            .map_err(io_err("reading", &full))?;
        names.sort();
        for name in names {
            if self.fuse {
                match fuse_whiteout(&name) {
                    Some(None) => continue,
                    Some(Some(target)) => {
                        let rel = rel.join(target);
                        if !under_opaque && self.lower.lookup(&rel).is_some() {
                            self.out.push(Entry::marker(rel, Kind::Whiteout));
                        }
                        continue;
                    }
                    None => {}
                }
            }
            let rel = rel.join(&name);
            let full = self.upper.join(&rel);
            let m = self
                .opener
                .symlink_metadata(&full)
                .map_err(io_err("reading", &full))?;
            if is_whiteout(&m) {
                if !under_opaque && self.lower.lookup(&rel).is_some() {
                    self.out.push(Entry::marker(rel, Kind::Whiteout));
                }
                continue;
            }
            let below = if under_opaque {
                None
            } else {
                self.lower.lookup(&rel)
            };
            let opaque =
                m.is_dir() && below.as_ref().is_some_and(|(_, lm)| lm.is_dir()) && is_opaque(&full);
            let unchanged = !opaque
                && below
                    .as_ref()
                    .is_some_and(|(lp, lm)| same(lp, lm, &full, &m));
            if !unchanged {
                self.out.extend(entry(&rel, &full, &m, self.idmap)?);
            }
            if opaque {
                self.out.push(Entry::marker(rel.clone(), Kind::Opaque));
            }
            if m.is_dir() {
                self.dir(&rel, under_opaque || opaque || below.is_none())?;
            }
        }
        Ok(())
    }
}

/// Diffs an overlay upper directory against its lower layers (topmost
/// first). Entries come sorted by path, a directory before its opaque
/// marker; every changed entry's parent directories are included; hard links
/// within the upper directory point at the first path of their inode;
/// owners are container ids.
pub fn diff_upper(
    upper: &Path,
    lowers: &[PathBuf],
    idmap: &IdMap,
) -> Result<Vec<Entry>, SnapshotError> {
    walk(false, upper, lowers, idmap)
}

/// [`diff_upper`] for a fuse-overlayfs upper directory, which may also mark
/// whiteouts with `.wh.<name>` files and opaque directories with a
/// `.wh..wh..opq` file or the `user.fuseoverlayfs.opaque` xattr (when it
/// cannot create 0/0 devices or set overlay xattrs). Gives the same entries
/// as the kernel overlay diff of the same changes.
pub fn diff_fuse_upper(
    upper: &Path,
    lowers: &[PathBuf],
    idmap: &IdMap,
) -> Result<Vec<Entry>, SnapshotError> {
    walk(true, upper, lowers, idmap)
}

fn walk(
    fuse: bool,
    upper: &Path,
    lowers: &[PathBuf],
    idmap: &IdMap,
) -> Result<Vec<Entry>, SnapshotError> {
    let mut w = Walk {
        fuse,
        opener: crate::sandbox::Opener::new(idmap),
        upper,
        lower: Lower { layers: lowers },
        idmap,
        out: Vec::new(),
    };
    w.dir(Path::new(""), false)?;
    finish(w.out, upper, idmap)
}

/// Adds parents of changes, sorts, and turns repeated inodes into hard links.
pub(super) fn finish(
    mut out: Vec<Entry>,
    upper: &Path,
    idmap: &IdMap,
) -> Result<Vec<Entry>, SnapshotError> {
    let opener = crate::sandbox::Opener::new(idmap);
    // Parents of changes, as containerd's archive writer adds them.
    let mut have: std::collections::HashSet<PathBuf> = out
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| e.path.clone())
        .collect();
    let mut parents = Vec::new();
    for e in &out {
        let mut p = e.path.parent();
        while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
            if have.insert(dir.to_owned()) {
                let full = upper.join(dir);
                let m = opener
                    .symlink_metadata(&full)
                    .map_err(io_err("reading", &full))?;
                parents.extend(entry(dir, &full, &m, idmap)?);
            }
            p = dir.parent();
        }
    }
    out.extend(parents);
    out.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then_with(|| (a.kind == Kind::Opaque).cmp(&(b.kind == Kind::Opaque)))
    });
    // Hard links: the first path (in layer order) of an inode carries the data.
    let mut first: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for e in &mut out {
        if let Kind::File {
            content: Content::Path(p),
            ..
        } = &e.kind
        {
            let m = opener.symlink_metadata(p).map_err(io_err("reading", p))?;
            if m.nlink() > 1 {
                match first.get(&(m.dev(), m.ino())) {
                    Some(t) => e.kind = Kind::Hardlink { target: t.clone() },
                    None => {
                        first.insert((m.dev(), m.ino()), e.path.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_devices_compare_by_metadata_without_being_opened() {
        // Two fifos alike in every field, with whole-second mtimes (as a
        // layer's tar gives them): opening one would wait for a writer.
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        let t = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 0,
            },
        };
        for p in [&a, &b] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                p,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap();
            rustix::fs::utimensat(rustix::fs::CWD, p, &t, rustix::fs::AtFlags::empty()).unwrap();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (a2, b2) = (a.clone(), b.clone());
        std::thread::spawn(move || {
            let (am, bm) = (
                fs::symlink_metadata(&a2).unwrap(),
                fs::symlink_metadata(&b2).unwrap(),
            );
            let _ = tx.send(same(&a2, &am, &b2, &bm));
        });
        let r = rx.recv_timeout(std::time::Duration::from_secs(20));
        assert_eq!(r, Ok(true), "same() opened a fifo");
    }

    #[test]
    fn namespaced_capabilities_of_container_root_become_plain_ones() {
        let (user, _) = IdMap::for_user(
            1001,
            1001,
            Some("u"),
            "u:100000:65536\n",
            "u:100000:65536\n",
        );
        assert_eq!(user.host_uid(0), Some(1001));
        // cap_net_bind_service, effective; v3 with root id 1001.
        let mut v3 = vec![0x01, 0, 0, 0x03, 0, 0x04, 0, 0];
        v3.extend_from_slice(&[0; 12]);
        v3.extend_from_slice(&1001u32.to_le_bytes());
        let mut v2 = vec![0x01, 0, 0, 0x02, 0, 0x04, 0, 0];
        v2.extend_from_slice(&[0; 12]);
        assert_eq!(container_capability(v3.clone(), &user), v2);
        // Another root id, a plain value, or kiln as root: unchanged.
        let mut other = v3.clone();
        other[20..].copy_from_slice(&100_000u32.to_le_bytes());
        assert_eq!(container_capability(other.clone(), &user), other);
        assert_eq!(container_capability(v2.clone(), &user), v2);
        assert_eq!(container_capability(v3.clone(), &IdMap::Host), v3);
        assert_eq!(container_capability(vec![1, 2], &user), vec![1, 2]);
    }
}
