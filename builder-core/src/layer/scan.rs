//! Building entries from a directory on the host, with hardlinks detected by
//! (device, inode): the first path of an inode (in layer order) carries the
//! content, later ones become [`Kind::Hardlink`]s to it.
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::fsentry::{Content, Entry, Kind};

/// Why a directory could not be scanned.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ScanError {
    /// The path that failed.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// Every entry below `root` (not `root` itself), paths relative to it, in
/// layer order, with owners, modes, mtimes and `security.capability` as on
/// disk. Sockets are skipped, as containerd does.
pub fn entries_from_dir(root: &Path) -> Result<Vec<Entry>, ScanError> {
    let mut out = Vec::new();
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    walk(root, Path::new(""), &mut out, &mut inodes)?;
    Ok(out)
}

fn walk(
    root: &Path,
    rel: &Path,
    out: &mut Vec<Entry>,
    inodes: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), ScanError> {
    let dir = root.join(rel);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScanError { path, source }
    };
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(err(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(err(&dir))?;
    // Sorted like the tar writer sorts, so the first path of an inode here
    // is the first one in the layer too.
    names.sort_by(|a, b| {
        use std::os::unix::ffi::OsStrExt;
        a.as_bytes().cmp(b.as_bytes())
    });
    for name in names {
        let rel_path = rel.join(&name);
        let full = root.join(&rel_path);
        let md = fs::symlink_metadata(&full).map_err(err(&full))?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            let key = (md.dev(), md.ino());
            match (md.nlink() > 1).then(|| inodes.get(&key)).flatten() {
                Some(first) => Kind::Hardlink {
                    target: first.clone(),
                },
                None => {
                    if md.nlink() > 1 {
                        inodes.insert(key, rel_path.clone());
                    }
                    Kind::File {
                        content: Content::Path(full.clone()),
                        size: md.len(),
                    }
                }
            }
        } else if ft.is_symlink() {
            Kind::Symlink {
                target: fs::read_link(&full).map_err(err(&full))?,
            }
        } else if ft.is_char_device() {
            Kind::CharDevice {
                major: rustix::fs::major(md.rdev()),
                minor: rustix::fs::minor(md.rdev()),
            }
        } else if ft.is_block_device() {
            Kind::BlockDevice {
                major: rustix::fs::major(md.rdev()),
                minor: rustix::fs::minor(md.rdev()),
            }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            continue;
        };
        let mut xattrs = BTreeMap::new();
        if !ft.is_symlink() {
            let mut buf = [0u8; 256];
            if let Ok(n) = rustix::fs::lgetxattr(&full, "security.capability", &mut buf) {
                if n > 0 {
                    xattrs.insert(
                        "security.capability".to_string(),
                        buf.get(..n).unwrap_or_default().to_vec(),
                    );
                }
            }
        }
        let is_dir = matches!(kind, Kind::Dir);
        out.push(Entry {
            path: rel_path.clone(),
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            mtime_nanos: u32::try_from(md.mtime_nsec()).unwrap_or(0),
            xattrs,
        });
        if is_dir {
            walk(root, &rel_path, out, inodes)?;
        }
    }
    Ok(())
}
