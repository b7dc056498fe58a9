//! The image's filesystem: layers applied in order with whiteouts honoured,
//! into a directory (`type=local`) or re-tarred (`type=tar`). Extraction is
//! confined: no entry may land outside the destination (`..` is refused and
//! nothing is ever written through a symlink).
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::atomic::{io_err, make_writable_and_remove, with_temp_dir, OutFile};
use super::{Dest, ExportError, ExportOptions, OutputSpec};
use crate::fsentry::Kind;
use crate::image::Manifest;
use crate::layer::{
    decompressing_reader, entries_from_dir, prepare_entries, write_tar, TarOptions,
};
use crate::store::Store;

/// Why a layer could not be applied; the message names the entry's path.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// Ownership and type as the layers say, for what the host could not
/// reproduce (owners when not root, device nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: i64,
    /// Set for device nodes, which an unprivileged extraction cannot create.
    pub device: Option<Kind>,
}

/// The state of a flattening in progress.
#[derive(Debug, Default)]
pub struct FlattenReport {
    /// Final metadata per path.
    pub meta: BTreeMap<PathBuf, Meta>,
    /// Directories whose mode and mtime are applied at the end.
    dirs: Vec<PathBuf>,
    /// Whether ownership could be applied (running as root).
    chown: bool,
}

fn clean(name: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Makes sure every parent of `rel` under `root` is a real directory (never
/// a symlink), creating missing ones.
fn ensure_parents(root: &Path, rel: &Path, r: &mut FlattenReport) -> Result<(), String> {
    let mut cur = PathBuf::new();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        let full = root.join(&cur);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "{}: parent {} is not a directory (refusing to write through it)",
                    rel.display(),
                    cur.display()
                ))
            }
            Err(_) => {
                fs::create_dir(&full).map_err(|e| format!("{}: {e}", full.display()))?;
                r.meta.insert(
                    cur.clone(),
                    Meta {
                        uid: 0,
                        gid: 0,
                        mode: 0o755,
                        mtime: 0,
                        device: None,
                    },
                );
            }
        }
    }
    Ok(())
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = make_writable_and_remove(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}

fn forget_below(r: &mut FlattenReport, rel: &Path, keep: &HashSet<PathBuf>, including: bool) {
    r.meta
        .retain(|p, _| keep.contains(p) || !(p.starts_with(rel) && (including || p != rel)));
}

/// Applies one (possibly compressed) layer tar onto `root`.
pub fn apply_layer<R: Read>(
    root: &Path,
    layer: R,
    r: &mut FlattenReport,
) -> Result<(), ApplyError> {
    apply_inner(root, layer, r).map_err(ApplyError)
}

fn apply_inner<R: Read>(root: &Path, layer: R, r: &mut FlattenReport) -> Result<(), String> {
    let mut archive = tar::Archive::new(layer);
    let mut created: HashSet<PathBuf> = HashSet::new();
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let raw = entry.path().map_err(|e| e.to_string())?.into_owned();
        let rel = clean(&raw).ok_or_else(|| format!("{}: path leaves the root", raw.display()))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        // Bytes: a whiteout of a name that is not UTF-8 names it exactly.
        let base = rel.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        if base == b".wh..wh..opq" {
            ensure_parents(root, &rel, r)?;
            let dir = root.join(&parent);
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let child = parent.join(e.file_name());
                    if !created.contains(&child) {
                        remove_any(&e.path());
                        forget_below(r, &child, &created, true);
                    }
                }
            }
            continue;
        }
        if let Some(victim) = base.strip_prefix(b".wh.") {
            ensure_parents(root, &rel, r)?;
            let v = parent.join(std::ffi::OsStr::from_bytes(victim));
            remove_any(&root.join(&v));
            forget_below(r, &v, &HashSet::new(), true);
            continue;
        }
        ensure_parents(root, &rel, r)?;
        let full = root.join(&rel);
        let h = entry.header();
        let et = h.entry_type();
        let mode = h.mode().map_err(|e| e.to_string())? & 0o7777;
        let uid = h.uid().map_err(|e| e.to_string())? as u32;
        let gid = h.gid().map_err(|e| e.to_string())? as u32;
        let mtime = h.mtime().map_err(|e| e.to_string())? as i64;
        let existing = fs::symlink_metadata(&full).ok();
        if !(et.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir())) && existing.is_some() {
            remove_any(&full);
            forget_below(r, &rel, &created, false);
        }
        let ferr = |e: io::Error| format!("{}: {e}", rel.display());
        let mut device = None;
        if et.is_dir() {
            if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                fs::create_dir(&full).map_err(ferr)?;
            }
            r.dirs.push(rel.clone());
        } else if et.is_file() {
            let mut f = File::create(&full).map_err(ferr)?;
            io::copy(&mut entry, &mut f).map_err(ferr)?;
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(ferr)?;
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64);
            let _ = f.set_modified(t);
        } else if et.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            std::os::unix::fs::symlink(&target, &full).map_err(ferr)?;
        } else if et.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let t = clean(&target)
                .ok_or_else(|| format!("{}: hardlink target leaves the root", rel.display()))?;
            ensure_parents(root, &t, r)?;
            let tfull = root.join(&t);
            if fs::symlink_metadata(&tfull).is_ok_and(|m| m.is_dir()) {
                return Err(format!("{}: hardlink to a directory", rel.display()));
            }
            fs::hard_link(&tfull, &full).map_err(ferr)?;
            if let Some(m) = r.meta.get(&t).cloned() {
                r.meta.insert(rel.clone(), m);
                created.insert(rel);
                continue;
            }
        } else if et.is_character_special() || et.is_block_special() || et.is_fifo() {
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            let (ft, kind) = if et.is_fifo() {
                (rustix::fs::FileType::Fifo, Kind::Fifo)
            } else if et.is_character_special() {
                (
                    rustix::fs::FileType::CharacterDevice,
                    Kind::CharDevice { major, minor },
                )
            } else {
                (
                    rustix::fs::FileType::BlockDevice,
                    Kind::BlockDevice { major, minor },
                )
            };
            let made = rustix::fs::mknodat(
                rustix::fs::CWD,
                &full,
                ft,
                rustix::fs::Mode::from_raw_mode(mode),
                rustix::fs::makedev(major, minor),
            );
            if made.is_err() || !et.is_fifo() {
                device = Some(kind);
            }
        } else {
            // Sockets and unknown types are not part of an image's filesystem.
            continue;
        }
        if r.chown {
            let _ = std::os::unix::fs::lchown(&full, Some(uid), Some(gid));
            if et.is_file() && mode & 0o7000 != 0 {
                // chown clears setuid/setgid; put them back.
                let _ = fs::set_permissions(&full, fs::Permissions::from_mode(mode));
            }
        }
        r.meta.insert(
            rel.clone(),
            Meta {
                uid,
                gid,
                mode,
                mtime,
                device,
            },
        );
        created.insert(rel);
    }
    Ok(())
}

fn finish_dirs(root: &Path, r: &mut FlattenReport) {
    // Deepest first, so setting a parent's mtime comes after its children change.
    let mut dirs = std::mem::take(&mut r.dirs);
    dirs.sort();
    dirs.dedup();
    for d in dirs.iter().rev() {
        let Some(m) = r.meta.get(d) else { continue };
        let full = root.join(d);
        let _ = fs::set_permissions(&full, fs::Permissions::from_mode(m.mode));
        if let Ok(f) = File::open(&full) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.mtime.max(0) as u64);
            let _ = f.set_modified(t);
        }
    }
}

fn flatten_into(
    store: &Store,
    manifest: &Manifest,
    root: &Path,
) -> Result<FlattenReport, ExportError> {
    let mut r = FlattenReport {
        chown: rustix::process::geteuid().is_root(),
        ..FlattenReport::default()
    };
    for l in &manifest.layers {
        let f = store.open_blob(&l.digest)?;
        let reader = decompressing_reader(io::BufReader::with_capacity(256 * 1024, f))
            .map_err(io_err(&store.blob_path(&l.digest)))?;
        apply_layer(root, reader, &mut r).map_err(|e| ExportError::BadLayer {
            digest: l.digest.to_string(),
            reason: e.0,
        })?;
    }
    finish_dirs(root, &mut r);
    Ok(r)
}

pub(super) fn export_fs(
    store: &Store,
    manifest: &Manifest,
    spec: &OutputSpec,
    opts: &ExportOptions,
) -> Result<(), ExportError> {
    match (spec.kind, &spec.dest) {
        (super::OutputKind::Local, Dest::Path(p)) => with_temp_dir(p, |dir| {
            flatten_into(store, manifest, dir)?;
            Ok(())
        }),
        (_, dest) => {
            let tmp = store
                .temp_dir()
                .join(format!("flatten-{}", std::process::id()));
            let _ = make_writable_and_remove(&tmp);
            fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
            let result = (|| {
                let r = flatten_into(store, manifest, &tmp)?;
                let mut entries = entries_from_dir(&tmp).map_err(|e| ExportError::Io {
                    path: e.path,
                    source: e.source,
                })?;
                for e in &mut entries {
                    if let Some(m) = r.meta.get(&e.path) {
                        e.uid = m.uid;
                        e.gid = m.gid;
                        e.mode = m.mode;
                        e.mtime = m.mtime;
                        if let Some(k) = &m.device {
                            e.kind = k.clone();
                        }
                    }
                }
                let have: HashSet<PathBuf> = entries.iter().map(|e| e.path.clone()).collect();
                for (p, m) in &r.meta {
                    if let (Some(k), false) = (&m.device, have.contains(p)) {
                        entries.push(crate::fsentry::Entry {
                            path: p.clone(),
                            kind: k.clone(),
                            mode: m.mode,
                            uid: m.uid,
                            gid: m.gid,
                            mtime: m.mtime,
                            mtime_nanos: 0,
                            xattrs: BTreeMap::new(),
                        });
                    }
                }
                let prepared = prepare_entries(entries)?;
                let mut out = OutFile::create(dest)?;
                let topts = TarOptions {
                    source_date_epoch: opts.source_date_epoch,
                };
                write_tar(&prepared, &topts, &mut out)?;
                out.commit()
            })();
            let _ = make_writable_and_remove(&tmp);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::tarfmt::{self, Header};

    fn raw_tar(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
        let none = BTreeMap::new();
        let mut out = Vec::new();
        for (name, flag, link, data) in entries {
            tarfmt::encode(
                &Header {
                    name: name.as_bytes(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    size: data.len() as u64,
                    mtime: 0,
                    typeflag: *flag,
                    linkname: link.as_bytes(),
                    devmajor: 0,
                    devminor: 0,
                    xattrs: &none,
                },
                &mut out,
            );
            out.extend_from_slice(data);
            tarfmt::pad(&mut out, data.len() as u64);
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    fn sandbox(tag: &str) -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!("kiln-flat-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let root = base.join("root");
        let _ = fs::create_dir_all(&root);
        (base, root)
    }

    fn apply(root: &Path, t: &[u8]) -> Result<(), ApplyError> {
        apply_layer(root, t, &mut FlattenReport::default())
    }

    fn only_root_inside(base: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(base)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn dotdot_and_absolute_paths_stay_inside() {
        let (base, root) = sandbox("dotdot");
        let t = raw_tar(&[("../evil", tarfmt::REG, "", b"x")]);
        assert!(apply(&root, &t).is_err());
        let t = raw_tar(&[("a/../../evil", tarfmt::REG, "", b"x")]);
        assert!(apply(&root, &t).is_err());
        let t = raw_tar(&[("/abs", tarfmt::REG, "", b"x")]);
        assert!(apply(&root, &t).is_ok());
        assert!(root.join("abs").is_file());
        assert_eq!(only_root_inside(&base), ["root"]);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn nothing_is_written_through_symlinks_or_linked_from_outside() {
        let (base, root) = sandbox("links");
        let outside = base.join("outside");
        let _ = fs::create_dir_all(&outside);
        let target = outside.display().to_string();
        let t = raw_tar(&[
            ("l", tarfmt::SYMLINK, target.as_str(), b""),
            ("l/x", tarfmt::REG, "", b"x"),
        ]);
        assert!(apply(&root, &t).is_err());
        let t = raw_tar(&[
            ("up", tarfmt::SYMLINK, "..", b""),
            ("up/y", tarfmt::REG, "", b"y"),
        ]);
        assert!(apply(&root, &t).is_err());
        let t = raw_tar(&[("h", tarfmt::LINK, "../outside/secret", b"")]);
        assert!(apply(&root, &t).is_err());
        let t = raw_tar(&[("h2", tarfmt::LINK, "up/y", b"")]);
        assert!(apply(&root, &t).is_err());
        assert_eq!(fs::read_dir(&outside).map(|r| r.count()).ok(), Some(0));
        assert_eq!(only_root_inside(&base), ["outside", "root"]);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn whiteouts_and_opaque_dirs_remove_lower_content() {
        let (base, root) = sandbox("wh");
        let lower = raw_tar(&[
            ("d/", tarfmt::DIR, "", b""),
            ("d/a", tarfmt::REG, "", b"a"),
            ("d/b", tarfmt::REG, "", b"b"),
            ("e/", tarfmt::DIR, "", b""),
            ("e/c", tarfmt::REG, "", b"c"),
        ]);
        let upper = raw_tar(&[
            ("d/", tarfmt::DIR, "", b""),
            ("d/.wh..wh..opq", tarfmt::REG, "", b""),
            ("d/new", tarfmt::REG, "", b"n"),
            ("e/.wh.c", tarfmt::REG, "", b""),
        ]);
        let mut r = FlattenReport::default();
        assert!(apply_layer(&root, &lower[..], &mut r).is_ok());
        assert!(apply_layer(&root, &upper[..], &mut r).is_ok());
        assert!(root.join("d/new").is_file());
        assert!(!root.join("d/a").exists() && !root.join("d/b").exists());
        assert!(!root.join("e/c").exists());
        assert!(!r.meta.contains_key(Path::new("e/c")));
        let _ = fs::remove_dir_all(&base);
    }
}
