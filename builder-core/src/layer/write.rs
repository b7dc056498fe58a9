//! Ordering entries and streaming them out as tar.
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::tarfmt::{self, Header};
use super::LayerError;
use crate::fsentry::{Content, Entry, Kind};

/// Settings for [`write_tar`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TarOptions {
    /// Clamp mtimes to this (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
}

/// A cleaned relative path: no leading `/` or `./`, no `.` components;
/// `..` is an error. The root itself is the empty path.
fn clean(p: &Path) -> Result<PathBuf, LayerError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(LayerError::BadPath(p.to_path_buf()))
            }
        }
    }
    Ok(out)
}

/// [`clean`] without a new allocation for a path that is clean already
/// (every path a `LayerBuilder` hands over).
fn clean_in_place(p: &mut PathBuf) -> Result<(), LayerError> {
    let b = p.as_os_str().as_bytes();
    let is_clean = !b.is_empty()
        && b.split(|&c| c == b'/')
            .all(|part| !part.is_empty() && part != b"." && part != b"..");
    if !is_clean {
        *p = clean(p)?;
    }
    Ok(())
}

/// The name an entry has in the tar, without a directory's trailing `/`;
/// borrowed from the path except for whiteout and opaque markers.
fn tar_name(e: &Entry) -> Cow<'_, [u8]> {
    let p = e.path.as_os_str().as_bytes();
    match e.kind {
        Kind::Whiteout => {
            let (dir, base) = match p.iter().rposition(|&b| b == b'/') {
                Some(i) => (
                    p.get(..=i).unwrap_or_default(),
                    p.get(i + 1..).unwrap_or_default(),
                ),
                None => (&[][..], p),
            };
            Cow::Owned([dir, b".wh.", base].concat())
        }
        Kind::Opaque if p.is_empty() => Cow::Borrowed(b".wh..wh..opq"),
        Kind::Opaque => Cow::Owned([p, b"/.wh..wh..opq"].concat()),
        _ => Cow::Borrowed(p),
    }
}

// Component-wise bytewise order == bytewise order with '/' below every
// other byte (components never contain '/' or NUL). Compared on the fly:
// a sort key per entry would copy every path of a large layer once more.
//
// A whiteout sorts where the path it deletes would (before an entry of
// the same name), and an opaque marker right after its directory, before
// the children: a diff walk (containerd's double walk, BuildKit's overlay
// differ, docker's pkg/archive) emits them there, not at their `.wh.`
// names.
fn tar_order(a: &Entry, b: &Entry) -> Ordering {
    sort_name(a)
        .cmp(sort_name(b))
        .then_with(|| rank(a).cmp(&rank(b)))
}

fn sort_name(e: &Entry) -> impl Iterator<Item = u8> + '_ {
    let key = |b: &u8| if *b == b'/' { 0 } else { *b };
    let opaque = matches!(e.kind, Kind::Opaque).then_some(0u8);
    e.path.as_os_str().as_bytes().iter().map(key).chain(opaque)
}

fn rank(e: &Entry) -> u8 {
    u8::from(!matches!(e.kind, Kind::Whiteout))
}

/// Cleans paths, sorts, drops duplicates (the last one given wins) and the
/// root directory, and moves each hardlink group's content to the member
/// that sorts first. The result is what [`write_tar`] expects.
pub fn prepare_entries<I: IntoIterator<Item = Entry>>(
    entries: I,
) -> Result<Vec<Entry>, LayerError> {
    // One pass that maps and filters without a second vector: fed from a
    // `Vec` (as `write_layer`'s callers do), std collects in place, so a
    // large layer's entries are never held twice.
    let mut bad = None;
    let mut out: Vec<Entry> = entries
        .into_iter()
        .filter_map(|mut e| {
            if bad.is_some() {
                return None;
            }
            let cleaned = clean_in_place(&mut e.path).and_then(|()| {
                if let Kind::Hardlink { target } = &e.kind {
                    e.kind = Kind::Hardlink {
                        target: clean(target)?,
                    };
                }
                Ok(())
            });
            if let Err(err) = cleaned {
                bad = Some(err);
                return None;
            }
            // The root directory is never an entry of a layer.
            (!e.path.as_os_str().is_empty() || matches!(e.kind, Kind::Opaque)).then_some(e)
        })
        .collect();
    if let Some(err) = bad {
        return Err(err);
    }
    // Stable, so entries with the same name stay in the order given.
    out.sort_by(tar_order);
    // `dedup_by` keeps the earlier of two equal neighbours: swapping moves
    // the later one into the kept slot, so the last one given wins.
    out.dedup_by(|later, kept| {
        let same = tar_order(later, kept) == Ordering::Equal;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    fix_hardlinks(&mut out)?;
    Ok(out)
}

fn fix_hardlinks(entries: &mut [Entry]) -> Result<(), LayerError> {
    // The path index below copies every path: only build it when needed.
    if !entries
        .iter()
        .any(|e| matches!(e.kind, Kind::Hardlink { .. }))
    {
        return Ok(());
    }
    let index: HashMap<PathBuf, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.clone(), i))
        .collect();
    // For each link target, the first member of its group in sorted order.
    let mut first: HashMap<usize, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Kind::Hardlink { target } = &e.kind {
            let t = index
                .get(target)
                .copied()
                .filter(|&t| matches!(entries.get(t).map(|e| &e.kind), Some(Kind::File { .. })))
                .ok_or_else(|| LayerError::HardlinkTarget {
                    link: e.path.clone(),
                    target: target.clone(),
                })?;
            let f = first.entry(t).or_insert(t);
            *f = (*f).min(i);
        }
    }
    for (t, f) in first {
        if f == t {
            continue;
        }
        // Swap roles: the first member carries the content, the rest link to it.
        let (Some(te), Some(fe)) = (entries.get(t).cloned(), entries.get(f).cloned()) else {
            continue;
        };
        let old_target = te.path.clone();
        let new_target = fe.path.clone();
        for e in entries.iter_mut() {
            if matches!(&e.kind, Kind::Hardlink { target } if *target == old_target) {
                e.kind = Kind::Hardlink {
                    target: new_target.clone(),
                };
            }
        }
        if let Some(slot) = entries.get_mut(f) {
            slot.kind = te.kind.clone();
        }
        if let Some(slot) = entries.get_mut(t) {
            slot.kind = Kind::Hardlink { target: new_target };
        }
    }
    Ok(())
}

/// Writes prepared entries (see [`prepare_entries`]) as a tar stream to `out`,
/// ending with the two zero blocks and no further padding, as Go does.
pub fn write_tar<W: Write>(
    entries: &[Entry],
    opts: &TarOptions,
    out: &mut W,
) -> Result<(), LayerError> {
    write_tar_with(entries, opts, out, &|p: &Path| File::open(p))
}

/// [`write_tar`] opening [`Content::Path`] files with `open` (for example
/// [`crate::sandbox::Opener::open`], which can read files owned by
/// subordinate ids when kiln is unprivileged).
pub fn write_tar_with<W: Write>(
    entries: &[Entry],
    opts: &TarOptions,
    out: &mut W,
    open: &dyn Fn(&Path) -> std::io::Result<File>,
) -> Result<(), LayerError> {
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut copy_buf = vec![0u8; 256 * 1024];
    let w = |out: &mut W, buf: &mut Vec<u8>| -> Result<(), LayerError> {
        out.write_all(buf).map_err(LayerError::Write)?;
        buf.clear();
        Ok(())
    };
    for e in entries {
        let mut name = tar_name(e).into_owned();
        let mtime = match opts.source_date_epoch {
            Some(epoch) if e.mtime > epoch => epoch,
            _ => e.mtime,
        };
        let (typeflag, size, link, dev): (u8, u64, Vec<u8>, (u32, u32)) = match &e.kind {
            Kind::Dir => {
                name.push(b'/');
                (tarfmt::DIR, 0, Vec::new(), (0, 0))
            }
            Kind::File { size, .. } => (tarfmt::REG, *size, Vec::new(), (0, 0)),
            Kind::Symlink { target } => (
                tarfmt::SYMLINK,
                0,
                target.as_os_str().as_bytes().to_vec(),
                (0, 0),
            ),
            Kind::Hardlink { target } => (
                tarfmt::LINK,
                0,
                target.as_os_str().as_bytes().to_vec(),
                (0, 0),
            ),
            Kind::CharDevice { major, minor } => (tarfmt::CHAR, 0, Vec::new(), (*major, *minor)),
            Kind::BlockDevice { major, minor } => (tarfmt::BLOCK, 0, Vec::new(), (*major, *minor)),
            Kind::Fifo => (tarfmt::FIFO, 0, Vec::new(), (0, 0)),
            Kind::Whiteout | Kind::Opaque => (tarfmt::REG, 0, Vec::new(), (0, 0)),
        };
        tarfmt::encode(
            &Header {
                name: &name,
                mode: e.mode,
                uid: u64::from(e.uid),
                gid: u64::from(e.gid),
                size,
                mtime,
                typeflag,
                linkname: &link,
                devmajor: dev.0,
                devminor: dev.1,
                xattrs: &e.xattrs,
            },
            &mut buf,
        );
        if let Kind::File { content, size } = &e.kind {
            match content {
                Content::Bytes(b) => {
                    if b.len() as u64 != *size {
                        return Err(LayerError::SizeChanged {
                            path: e.path.clone(),
                            expected: *size,
                        });
                    }
                    buf.extend_from_slice(b);
                }
                Content::Path(p) => {
                    w(out, &mut buf)?;
                    copy_file(p, open(p), *size, out, &mut copy_buf)?;
                }
                Content::InRoot { root, path } => {
                    w(out, &mut buf)?;
                    let shown = root.path().join(path);
                    copy_file(&shown, root.open_file(path), *size, out, &mut copy_buf)?;
                }
            }
            tarfmt::pad(&mut buf, *size);
        }
        if buf.len() >= 128 * 1024 {
            w(out, &mut buf)?;
        }
    }
    buf.resize(buf.len() + 1024, 0);
    w(out, &mut buf)?;
    Ok(())
}

fn copy_file<W: Write>(
    path: &Path,
    opened: std::io::Result<File>,
    size: u64,
    out: &mut W,
    buf: &mut [u8],
) -> Result<(), LayerError> {
    let read_err = |source| LayerError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = opened.map_err(read_err)?;
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = f.read(chunk).map_err(read_err)?;
        if n == 0 {
            return Err(LayerError::SizeChanged {
                path: path.to_path_buf(),
                expected: size,
            });
        }
        out.write_all(chunk.get(..n).unwrap_or_default())
            .map_err(LayerError::Write)?;
        left -= n as u64;
    }
    // One more byte means the file grew: the header already promised `size`.
    let mut probe = [0u8; 1];
    if f.read(&mut probe).map_err(read_err)? != 0 {
        return Err(LayerError::SizeChanged {
            path: path.to_path_buf(),
            expected: size,
        });
    }
    Ok(())
}
