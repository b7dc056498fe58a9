//! The last-resort root filesystem when overlayfs cannot be mounted: the
//! layers copied into one directory, and a diff that compares that directory
//! with the layers (a double walk, like containerd's walking differ).
use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Timespec, Timestamps, CWD};

use super::diff::{entry, finish, is_opaque, is_whiteout, same, Lower};
use super::{io_err, SnapshotError};
use crate::fsentry::{Entry, Kind};
use crate::sandbox::{self, IdMap};

fn sorted_names(dir: &Path) -> Result<Vec<OsString>, SnapshotError> {
    let mut names = fs::read_dir(dir)
        .map_err(io_err("reading", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("reading", dir))?;
    names.sort();
    Ok(names)
}

fn remove_any(p: &Path) -> Result<(), SnapshotError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(io_err("removing", p)),
        Ok(_) => fs::remove_file(p).map_err(io_err("removing", p)),
        Err(_) => Ok(()),
    }
}

struct Assemble<'a> {
    idmap: &'a IdMap,
    own_uid: u32,
    own_gid: u32,
    chowns: Vec<(PathBuf, u32, u32, Option<u32>)>,
}

impl Assemble<'_> {
    fn meta(&mut self, dst: &Path, m: &fs::Metadata) -> Result<(), SnapshotError> {
        let symlink = m.file_type().is_symlink();
        let mode = m.mode() & 0o7777;
        if !symlink {
            fs::set_permissions(dst, fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", dst))?;
        }
        if matches!(self.idmap, IdMap::Host) {
            rfs::chownat(
                CWD,
                dst,
                Some(rfs::Uid::from_raw(m.uid())),
                Some(rfs::Gid::from_raw(m.gid())),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| io_err("changing owner of", dst)(e.into()))?;
            if !symlink {
                fs::set_permissions(dst, fs::Permissions::from_mode(mode))
                    .map_err(io_err("chmod", dst))?;
            }
        } else if (m.uid(), m.gid()) != (self.own_uid, self.own_gid) {
            let (u, g) = (
                self.idmap.container_uid(m.uid()),
                self.idmap.container_gid(m.gid()),
            );
            self.chowns
                .push((dst.to_owned(), u, g, (!symlink).then_some(mode)));
        }
        let ts = |s: i64, n: i64| Timespec {
            tv_sec: s,
            tv_nsec: n,
        };
        let times = Timestamps {
            last_access: ts(m.atime(), m.atime_nsec()),
            last_modification: ts(m.mtime(), m.mtime_nsec()),
        };
        let _ = rfs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW);
        Ok(())
    }

    fn layer(&mut self, src: &Path, dst: &Path) -> Result<(), SnapshotError> {
        for name in sorted_names(src)? {
            let (s, d) = (src.join(&name), dst.join(&name));
            let m = fs::symlink_metadata(&s).map_err(io_err("reading", &s))?;
            if is_whiteout(&m) {
                remove_any(&d)?;
                continue;
            }
            if m.is_dir() {
                if !fs::symlink_metadata(&d)
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
                {
                    remove_any(&d)?;
                    fs::create_dir(&d).map_err(io_err("creating", &d))?;
                } else if is_opaque(&s) {
                    for child in sorted_names(&d)? {
                        remove_any(&d.join(child))?;
                    }
                }
                fs::set_permissions(&d, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("chmod", &d))?;
                self.layer(&s, &d)?;
                self.meta(&d, &m)?;
                continue;
            }
            remove_any(&d)?;
            let ft = m.file_type();
            if ft.is_symlink() {
                let t = fs::read_link(&s).map_err(io_err("reading link", &s))?;
                std::os::unix::fs::symlink(t, &d).map_err(io_err("creating", &d))?;
            } else if ft.is_file() {
                fs::copy(&s, &d)
                    .map_err(io_err("copying (the copy fallback reads every file)", &s))?;
            } else {
                let kind = if ft.is_fifo() {
                    rfs::FileType::Fifo
                } else if ft.is_char_device() {
                    rfs::FileType::CharacterDevice
                } else {
                    rfs::FileType::BlockDevice
                };
                rfs::mknodat(
                    CWD,
                    &d,
                    kind,
                    rfs::Mode::from_raw_mode(m.mode() & 0o7777),
                    m.rdev(),
                )
                .map_err(|e| io_err("creating", &d)(e.into()))?;
            }
            self.meta(&d, &m)?;
        }
        Ok(())
    }
}

/// Copies the layers (topmost first) into the empty directory `dest`,
/// applying whiteouts and opaque directories, keeping owners (set inside the
/// user namespace when unprivileged), modes and times. Hard links become
/// separate files, as overlayfs copy-up makes them, so that both modes diff
/// the same way.
pub(crate) fn assemble(
    lowers: &[PathBuf],
    dest: &Path,
    idmap: &IdMap,
) -> Result<(), SnapshotError> {
    let mut a = Assemble {
        idmap,
        own_uid: rustix::process::getuid().as_raw(),
        own_gid: rustix::process::getgid().as_raw(),
        chowns: Vec::new(),
    };
    for layer in lowers.iter().rev() {
        a.layer(layer, dest)?;
    }
    if !a.chowns.is_empty() {
        sandbox::chown_in_userns(idmap, &a.chowns)?;
    }
    Ok(())
}

/// The names a directory holds in the merged layers.
fn lower_names(layers: &[PathBuf], rel: &Path) -> BTreeSet<OsString> {
    let mut names = BTreeSet::new();
    let mut deleted = HashSet::new();
    for layer in layers {
        let p = layer.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                for e in fs::read_dir(&p).into_iter().flatten().flatten() {
                    let name = e.file_name();
                    let wh = e.metadata().map(|m| is_whiteout(&m)).unwrap_or(false);
                    if wh {
                        deleted.insert(name);
                    } else if !deleted.contains(&name) {
                        names.insert(name);
                    }
                }
                if is_opaque(&p) {
                    break;
                }
            }
            Ok(_) => break,
            Err(_) => {}
        }
    }
    names
}

/// Diffs a copied root against the layers it was copied from (topmost
/// first); same output rules as [`super::diff_upper`].
pub fn diff_copy(
    root: &Path,
    lowers: &[PathBuf],
    idmap: &IdMap,
) -> Result<Vec<Entry>, SnapshotError> {
    let lower = Lower { layers: lowers };
    let mut out = Vec::new();
    walk(root, Path::new(""), &lower, true, idmap, &mut out)?;
    finish(out, root, idmap)
}

fn walk(
    root: &Path,
    rel: &Path,
    lower: &Lower,
    below: bool,
    idmap: &IdMap,
    out: &mut Vec<Entry>,
) -> Result<(), SnapshotError> {
    let here: BTreeSet<OsString> = sorted_names(&root.join(rel))?.into_iter().collect();
    let mut all = here.clone();
    if below {
        all.extend(lower_names(lower.layers, rel));
    }
    for name in all {
        let r = rel.join(&name);
        if !here.contains(&name) {
            out.push(Entry::marker(r, Kind::Whiteout));
            continue;
        }
        let full = root.join(&r);
        let m = fs::symlink_metadata(&full).map_err(io_err("reading", &full))?;
        let base = if below { lower.lookup(&r) } else { None };
        match &base {
            Some((lp, lm)) if lm.is_dir() == m.is_dir() => {
                if !same(lp, lm, &full, &m) {
                    out.extend(entry(&r, &full, &m, idmap)?);
                }
                if m.is_dir() {
                    walk(root, &r, lower, true, idmap, out)?;
                }
            }
            _ => {
                out.extend(entry(&r, &full, &m, idmap)?);
                if m.is_dir() {
                    walk(root, &r, lower, false, idmap, out)?;
                }
            }
        }
    }
    Ok(())
}
