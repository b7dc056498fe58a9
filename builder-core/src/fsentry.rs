//! The one description of a filesystem entry that every layer producer and
//! consumer shares: COPY/ADD, the RUN diff, archive extraction and the tar
//! writer all speak in [`Entry`] values, so none of them needs to know the
//! others.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat};

/// Where a regular file's bytes come from when a layer is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Read from this path on the host when the layer is written.
    Path(PathBuf),
    /// Held in memory (heredocs, small generated files).
    Bytes(Arc<[u8]>),
    /// Read from `path` below an open directory handle when the layer is
    /// written, resolved inside it (see [`RootDir::open_file`]), so a
    /// directory swapped for a symlink after the walk cannot lead the read
    /// outside that directory (the build context).
    InRoot {
        /// The directory the read is confined to.
        root: Arc<RootDir>,
        /// Path relative to `root`.
        path: PathBuf,
    },
}

impl Content {
    /// Opens file-backed content for reading (confined for
    /// [`Content::InRoot`]); bytes held in memory have no file to open.
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        match self {
            Content::Path(p) => std::fs::File::open(p),
            Content::InRoot { root, path } => root.open_file(path),
            Content::Bytes(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "content is held in memory, not in a file",
            )),
        }
    }

    /// The host path file-backed content reads, for messages.
    pub fn host_path(&self) -> Option<PathBuf> {
        match self {
            Content::Path(p) => Some(p.clone()),
            Content::InRoot { root, path } => Some(root.path().join(path)),
            Content::Bytes(_) => None,
        }
    }
}

/// An open directory whose lookups are confined to it: every path is
/// resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so `..`
/// and symlinks (absolute or relative, even ones swapped in while a build
/// runs) are clamped at the directory instead of reaching the host.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Two handles are the same root when they were opened from the same path;
/// what matters for comparing [`Content`] values is which files they name.
impl PartialEq for RootDir {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for RootDir {}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl RootDir {
    /// Opens `path` (following symlinks, once, now) as the root.
    pub fn open(path: &Path) -> std::io::Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The host path the root was opened from (for messages only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the regular file at `rel` for reading. A final symlink is not
    /// followed (`O_NOFOLLOW`): the copy already resolved it, so finding
    /// one now means the context changed.
    /// A file the calling user owns but may not read (mode 0200, say) is
    /// opened through [`crate::sandbox::Opener::for_process`], as the
    /// owner could after a `chmod`.
    pub fn open_file(&self, rel: &Path) -> std::io::Result<std::fs::File> {
        match rustix::fs::openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        ) {
            Ok(fd) => Ok(std::fs::File::from(fd)),
            Err(e) => {
                crate::sandbox::Opener::for_process().retry_at(e.into(), self.fd.as_fd(), rel, true)
            }
        }
    }

    /// The directory holding `rel`'s last component, and that component;
    /// `None` for the root itself.
    fn parent_of<'a>(&self, rel: &'a Path) -> std::io::Result<Option<(OwnedFd, &'a Path)>> {
        let mut comps = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => comps.push(n),
                Component::RootDir | Component::CurDir => {}
                // Callers resolve `..` themselves; one here would let a
                // lookup relative to the parent handle climb out.
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{}: `..` in a root-relative path", rel.display()),
                    ))
                }
            }
        }
        let Some((&name, dirs)) = comps.split_last() else {
            return Ok(None);
        };
        let dir: PathBuf = dirs.iter().collect();
        let fd = rustix::fs::openat2(
            &self.fd,
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &dir
            },
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )?;
        Ok(Some((fd, Path::new(name))))
    }

    /// Metadata of `rel` without following its last component.
    pub fn lstat(&self, rel: &Path) -> std::io::Result<Stat> {
        match self.parent_of(rel)? {
            None => Ok(rustix::fs::fstat(&self.fd)?),
            Some((dir, name)) => Ok(rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?),
        }
    }

    /// The target of the symlink at `rel`.
    pub fn read_link(&self, rel: &Path) -> std::io::Result<PathBuf> {
        match self.parent_of(rel)? {
            None => Err(std::io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            )),
            Some((dir, name)) => {
                let t = rustix::fs::readlinkat(&dir, name, Vec::new())?;
                Ok(PathBuf::from(OsString::from_vec(t.into_bytes())))
            }
        }
    }

    /// The names in the directory at `rel` (without `.` and `..`), unsorted.
    /// A final symlink is not followed.
    pub fn read_dir(&self, rel: &Path) -> std::io::Result<Vec<OsString>> {
        let fd = rustix::fs::openat2(
            &self.fd,
            if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            },
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )?;
        let mut names = Vec::new();
        for ent in rustix::fs::Dir::read_from(&fd)? {
            let name = ent?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        Ok(names)
    }
}

/// The type of an entry and what only that type carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes.
    File {
        /// Where the bytes are.
        content: Content,
        /// Length in bytes.
        size: u64,
    },
    /// A symbolic link; the target is kept byte for byte.
    Symlink {
        /// The link target, as stored in the link.
        target: PathBuf,
    },
    /// A hard link to an entry written earlier in the same layer.
    Hardlink {
        /// Layer-relative path of the first entry with this inode.
        target: PathBuf,
    },
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// Deletes the lower layers' entry at this path (written as `.wh.NAME`).
    Whiteout,
    /// Hides everything the lower layers hold below this directory (written
    /// as `DIR/.wh..wh..opq`); the directory itself is a separate [`Kind::Dir`] entry.
    Opaque,
}

/// One entry of a layer, with a path relative to the image root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the root, no leading `/`, components separated by `/`.
    pub path: PathBuf,
    /// Type and type-specific data.
    pub kind: Kind,
    /// Permission bits plus setuid, setgid and sticky (`0o7777` at most).
    pub mode: u32,
    /// Owner user id, numeric.
    pub uid: u32,
    /// Owner group id, numeric.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nanos: u32,
    /// Extended attributes to record (for example `security.capability`).
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    /// A whiteout or opaque marker at `path`: everything but the path and
    /// kind is zero, as layer writers expect of markers.
    pub fn marker(path: impl Into<PathBuf>, kind: Kind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nanos: 0,
            xattrs: BTreeMap::new(),
        }
    }
}
