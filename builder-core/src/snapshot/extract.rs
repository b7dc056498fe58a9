//! Safe layer extraction: members never land outside the layer directory,
//! whiteouts become what overlayfs understands (a 0/0 character device, an
//! opaque xattr), and owners are container ids (set from inside the user
//! namespace when kiln is unprivileged).
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, Timespec, Timestamps, CWD};

use super::{io_err, SnapshotError, SnapshotWarning};
use crate::sandbox::{self, IdMap};

/// The xattr that marks an opaque directory for this process's overlay mounts.
pub(crate) fn opaque_xattr(idmap: &IdMap) -> &'static str {
    if idmap.needs_userns() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

fn decompress<'a>(blob: &'a mut dyn Read) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::new(blob);
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    })
}

struct Ctx<'a> {
    root: &'a Path,
    diff_id: &'a str,
    idmap: &'a IdMap,
    /// Directories known to be real (not symlinks) below the root.
    real_dirs: HashSet<PathBuf>,
    /// (path, mode, mtime) of directories, applied after their contents.
    dirs: Vec<(PathBuf, u32, i64)>,
    /// Owners to set from inside the user namespace.
    chowns: Vec<(PathBuf, u32, u32, Option<u32>)>,
    /// `security.capability` values to set inside the user namespace
    /// (unprivileged: the host user may not set them), after the chowns,
    /// which would clear them.
    caps: Vec<(PathBuf, Vec<u8>)>,
    warnings: Vec<SnapshotWarning>,
}

impl Ctx<'_> {
    fn bad(&self, path: &Path, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::BadLayer {
            diff_id: self.diff_id.to_owned(),
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// The member's path relative to the root, with `..` refused.
    fn clean(&self, raw: &Path) -> Result<PathBuf, SnapshotError> {
        let mut out = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(self.bad(raw, "path leaves the layer root"))
                }
            }
        }
        Ok(out)
    }

    /// Makes sure every ancestor of `rel` is a real directory (created 0755
    /// when missing), so writing `rel` cannot follow a symlink out.
    fn parents(&mut self, rel: &Path) -> Result<(), SnapshotError> {
        let mut cur = PathBuf::new();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for c in parent.components() {
            cur.push(c);
            if self.real_dirs.contains(&cur) {
                continue;
            }
            let full = self.root.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(self.bad(rel, format!("{} is not a directory", cur.display()))),
                Err(_) => fs::create_dir(&full).map_err(io_err("creating", &full))?,
            }
            self.real_dirs.insert(cur.clone());
        }
        Ok(())
    }

    fn owner(
        &mut self,
        full: &Path,
        uid: u32,
        gid: u32,
        mode: Option<u32>,
    ) -> Result<(), SnapshotError> {
        match self.idmap {
            IdMap::Host => {
                rfs::chownat(
                    CWD,
                    full,
                    Some(rfs::Uid::from_raw(uid)),
                    Some(rfs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io_err("changing owner of", full)(e.into()))?;
                if let Some(m) = mode {
                    fs::set_permissions(full, fs::Permissions::from_mode(m))
                        .map_err(io_err("chmod", full))?;
                }
            }
            map if uid == 0 && gid == 0 => {
                let _ = map;
                if let Some(m) = mode {
                    fs::set_permissions(full, fs::Permissions::from_mode(m))
                        .map_err(io_err("chmod", full))?;
                }
            }
            map if map.is_single() => {
                self.warnings.push(SnapshotWarning::Skipped {
                    path: full.display().to_string(),
                    reason: format!("owner {uid}:{gid} needs subordinate ids; left as root"),
                });
                if let Some(m) = mode {
                    fs::set_permissions(full, fs::Permissions::from_mode(m))
                        .map_err(io_err("chmod", full))?;
                }
            }
            _ => self.chowns.push((full.to_owned(), uid, gid, mode)),
        }
        Ok(())
    }

    fn remove_existing(&self, full: &Path, keep_dir: bool) -> Result<(), SnapshotError> {
        match fs::symlink_metadata(full) {
            Ok(m) if m.is_dir() && keep_dir => Ok(()),
            Ok(m) if m.is_dir() => fs::remove_dir_all(full).map_err(io_err("replacing", full)),
            Ok(_) => fs::remove_file(full).map_err(io_err("replacing", full)),
            Err(_) => Ok(()),
        }
    }
}

fn set_mtime(full: &Path, mtime: i64) {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let _ = rfs::utimensat(
        CWD,
        full,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    );
}

/// Extracts a layer stream into the empty directory `root`.
pub(crate) fn extract(
    blob: &mut dyn Read,
    root: &Path,
    diff_id: &str,
    idmap: &IdMap,
) -> Result<Vec<SnapshotWarning>, SnapshotError> {
    let reader = decompress(blob).map_err(io_err("reading layer", root))?;
    let mut archive = tar::Archive::new(reader);
    let mut cx = Ctx {
        root,
        diff_id,
        idmap,
        real_dirs: HashSet::new(),
        dirs: Vec::new(),
        chowns: Vec::new(),
        caps: Vec::new(),
        warnings: Vec::new(),
    };
    let bad_tar = |e: std::io::Error| SnapshotError::BadLayer {
        diff_id: diff_id.to_owned(),
        path: String::new(),
        reason: e.to_string(),
    };
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let raw = entry.path().map_err(bad_tar)?.into_owned();
        let rel = cx.clean(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        cx.parents(&rel)?;
        // Bytes, not `str`: a whiteout of a name that is not UTF-8 is
        // still a whiteout.
        let name = rel.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        if name == b".wh..wh..opq" {
            let dir = root.join(parent_rel);
            rfs::lsetxattr(&dir, opaque_xattr(idmap), b"y", rfs::XattrFlags::empty())
                .map_err(|e| io_err("marking opaque", &dir)(e.into()))?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let full = root.join(parent_rel).join(OsStr::from_bytes(hidden));
            cx.remove_existing(&full, false)?;
            rfs::mknodat(
                CWD,
                &full,
                FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .map_err(|e| {
                // An overlayfs (a container's root) refuses whiteout devices.
                let what = if e == rustix::io::Errno::PERM {
                    "creating whiteout (the store's filesystem refuses whiteout devices; \
                     in a container, put the store (--root) on a volume)"
                } else {
                    "creating whiteout"
                };
                io_err(what, &full)(e.into())
            })?;
            continue;
        }
        let full = root.join(&rel);
        let h = entry.header().clone();
        let mode = h.mode().map_err(bad_tar)? & 0o7777;
        let uid = h.uid().map_err(bad_tar)? as u32;
        let gid = h.gid().map_err(bad_tar)? as u32;
        let mtime = h.mtime().map_err(bad_tar)? as i64;
        let kind = h.entry_type();
        let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions() {
            Ok(Some(exts)) => exts
                .filter_map(Result::ok)
                .filter_map(|e| {
                    Some((
                        e.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_owned(),
                        e.value_bytes().to_vec(),
                    ))
                })
                .collect(),
            _ => Vec::new(),
        };
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                cx.remove_existing(&full, true)?;
                if !full.is_dir() {
                    fs::create_dir(&full).map_err(io_err("creating", &full))?;
                }
                cx.real_dirs.insert(rel.clone());
                cx.owner(&full, uid, gid, None)?;
                cx.dirs.push((full.clone(), mode, mtime));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                cx.remove_existing(&full, false)?;
                let mut f = fs::File::create(&full).map_err(io_err("creating", &full))?;
                std::io::copy(&mut entry, &mut f).map_err(io_err("writing", &full))?;
                drop(f);
                cx.owner(&full, uid, gid, Some(mode))?;
                set_mtime(&full, mtime);
            }
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(bad_tar)?
                    .ok_or_else(|| cx.bad(&rel, "symlink without target"))?;
                cx.remove_existing(&full, false)?;
                std::os::unix::fs::symlink(&target, &full).map_err(io_err("creating", &full))?;
                cx.owner(&full, uid, gid, None)?;
                set_mtime(&full, mtime);
            }
            T::Link => {
                let target = entry
                    .link_name()
                    .map_err(bad_tar)?
                    .ok_or_else(|| cx.bad(&rel, "hard link without target"))?;
                let target_rel = cx.clean(&target)?;
                cx.parents(&target_rel)?;
                let src = root.join(&target_rel);
                match fs::symlink_metadata(&src) {
                    Ok(m) if !m.is_dir() => {}
                    _ => {
                        return Err(cx.bad(
                            &rel,
                            format!("hard link to missing {}", target_rel.display()),
                        ))
                    }
                }
                cx.remove_existing(&full, false)?;
                fs::hard_link(&src, &full).map_err(io_err("linking", &full))?;
                continue;
            }
            T::Char | T::Block | T::Fifo => {
                cx.remove_existing(&full, false)?;
                let (ft, dev) = match kind {
                    T::Char => (FileType::CharacterDevice, true),
                    T::Block => (FileType::BlockDevice, true),
                    _ => (FileType::Fifo, false),
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let r = rfs::mknodat(
                    CWD,
                    &full,
                    ft,
                    Mode::from_raw_mode(mode),
                    rfs::makedev(major, minor),
                );
                if let Err(e) = r {
                    if dev && idmap.needs_userns() {
                        cx.warnings.push(SnapshotWarning::Skipped {
                            path: rel.display().to_string(),
                            reason: format!("device node: {e}"),
                        });
                        continue;
                    }
                    return Err(io_err("creating", &full)(e.into()));
                }
                cx.owner(&full, uid, gid, Some(mode))?;
                set_mtime(&full, mtime);
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            other => {
                cx.warnings.push(SnapshotWarning::Skipped {
                    path: rel.display().to_string(),
                    reason: format!("unsupported member type {other:?}"),
                });
                continue;
            }
        }
        for (k, v) in xattrs {
            if k == "security.capability" && idmap.needs_userns() {
                cx.caps.push((full.clone(), v));
                continue;
            }
            if let Err(e) = rfs::lsetxattr(&full, k.as_str(), &v, rfs::XattrFlags::empty()) {
                cx.warnings.push(SnapshotWarning::Skipped {
                    path: rel.display().to_string(),
                    reason: format!("xattr {k}: {e}"),
                });
            }
        }
    }
    // Directory modes and times last: their contents are written by now, and
    // a read-only directory would have refused them.
    for (full, mode, mtime) in cx.dirs.iter().rev() {
        fs::set_permissions(full, fs::Permissions::from_mode(*mode))
            .map_err(io_err("chmod", full))?;
        set_mtime(full, *mtime);
    }
    if !cx.chowns.is_empty() {
        sandbox::chown_in_userns(idmap, &cx.chowns)?;
    }
    if !cx.caps.is_empty() {
        if let Err(e) = sandbox::set_capabilities_in_userns(idmap, &cx.caps) {
            cx.warnings.push(SnapshotWarning::Skipped {
                path: cx
                    .caps
                    .first()
                    .map(|(p, _)| p.display().to_string())
                    .unwrap_or_default(),
                reason: format!("xattr security.capability: {e}"),
            });
        }
    }
    Ok(cx.warnings)
}
