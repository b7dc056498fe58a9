//! The context walk: every entry a build may read, with its digest.
//!
//! The walk goes through directory handles only (`openat` with
//! `O_NOFOLLOW` relative to the parent's descriptor), so a directory
//! swapped for a symlink mid-walk fails to open instead of leading
//! outside. Directories are walked and files hashed in parallel on rayon's
//! pool; the output is still in a fixed order (depth first, names sorted
//! bytewise), as Go's `filepath.WalkDir` gives BuildKit.
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::digest::{self, ContentHasher, Digest, Header, TypeTag};
use super::error::ContextError;
use super::ignore::{Decision, IgnoreRules};
use super::statcache::{Record, StatCache, StatKey};

/// The type of a context entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link, kept as a link.
    Symlink {
        /// The target, byte for byte.
        target: PathBuf,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// One entry of the context that a build may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Context-relative path, `/`-separated, no leading `/`.
    pub path: PathBuf,
    /// Type.
    pub kind: NodeKind,
    /// Permission bits plus setuid, setgid and sticky.
    pub mode: u32,
    /// Size in bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Modification time, seconds (kept for COPY, not for digests).
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nanos: u32,
    /// The `security.capability` extended attribute, if set.
    pub capability: Option<Vec<u8>>,
    /// Content digest (`None` when the walk did not hash).
    pub digest: Option<Digest>,
}

/// Options of [`super::BuildContext::walk`].
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Compute digests (files are read unless the stat cache vouches).
    pub hash: bool,
    /// Directory of the persistent stat cache (for example
    /// `<store root>/cache/context-v1`); `None` disables it.
    pub cache_dir: Option<PathBuf>,
}

/// Counters of one walk, for benchmarks and `--verbose` output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Non-directory entries listed.
    pub files: u64,
    /// Directories listed.
    pub dirs: u64,
    /// Regular files whose content was read and hashed.
    pub hashed_files: u64,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// Entries whose digest came from the stat cache.
    pub cache_hits: u64,
}

/// Everything a build may read from a context, in walk order.
#[derive(Debug, Clone, Default)]
pub struct ContextListing {
    /// The entries, depth first with names sorted; a directory's
    /// descendants follow it contiguously. The root itself is not listed.
    pub nodes: Vec<Node>,
    /// Digest of the whole context (`None` when not hashed).
    pub root_digest: Option<Digest>,
    /// What the walk did.
    pub stats: WalkStats,
    pub(crate) index: OnceLock<HashMap<PathBuf, usize>>,
}

impl ContextListing {
    /// The entry at a context-relative path.
    pub fn get(&self, path: &Path) -> Option<&Node> {
        self.index().get(path).and_then(|i| self.nodes.get(*i))
    }

    /// Path → position, built on first use (a plain listing never needs it).
    fn index(&self) -> &HashMap<PathBuf, usize> {
        self.index.get_or_init(|| {
            self.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.path.clone(), i))
                .collect()
        })
    }

    /// The entry at `path` followed by everything below it (empty when the
    /// path is not listed). The empty path means the whole context.
    pub fn subtree(&self, path: &Path) -> &[Node] {
        if path.as_os_str().is_empty() {
            return &self.nodes;
        }
        let Some(&start) = self.index().get(path) else {
            return &[];
        };
        let prefix = path.as_os_str().as_bytes();
        let len = self
            .nodes
            .get(start + 1..)
            .unwrap_or(&[])
            .iter()
            .take_while(|n| {
                let b = n.path.as_os_str().as_bytes();
                b.len() > prefix.len()
                    && b.starts_with(prefix)
                    && b.get(prefix.len()) == Some(&b'/')
            })
            .count();
        self.nodes.get(start..start + 1 + len).unwrap_or(&[])
    }

    /// The listing as shared [`crate::fsentry::Entry`] values for COPY:
    /// owner 0:0, mtimes kept, file content read from under `root`.
    pub fn entries(&self, root: &Path) -> Vec<crate::fsentry::Entry> {
        self.nodes.iter().map(|n| n.to_entry(root)).collect()
    }
}

impl Node {
    /// This entry as a shared [`crate::fsentry::Entry`]; a regular file's
    /// content is `root` joined with its path.
    pub fn to_entry(&self, root: &Path) -> crate::fsentry::Entry {
        use crate::fsentry::{Content, Entry, Kind};
        let kind = match &self.kind {
            NodeKind::Dir => Kind::Dir,
            NodeKind::File => Kind::File {
                content: Content::Path(root.join(&self.path)),
                size: self.size,
            },
            NodeKind::Symlink { target } => Kind::Symlink {
                target: target.clone(),
            },
            NodeKind::CharDevice { major, minor } => Kind::CharDevice {
                major: *major,
                minor: *minor,
            },
            NodeKind::BlockDevice { major, minor } => Kind::BlockDevice {
                major: *major,
                minor: *minor,
            },
            NodeKind::Fifo => Kind::Fifo,
        };
        let mut xattrs = std::collections::BTreeMap::new();
        if let Some(cap) = &self.capability {
            xattrs.insert("security.capability".to_string(), cap.clone());
        }
        Entry {
            path: self.path.clone(),
            kind,
            mode: self.mode,
            uid: 0,
            gid: 0,
            mtime: self.mtime,
            mtime_nanos: self.mtime_nanos,
            xattrs,
        }
    }
}

/// Shared state of one walk.
pub(crate) struct Walker<'a> {
    pub ignore: &'a IgnoreRules,
    pub hash: bool,
    pub old: &'a StatCache,
    /// Entries changed at or after this time (nanoseconds since the epoch)
    /// are not cached: an edit in the same timestamp tick as our read
    /// would otherwise go unnoticed.
    pub racy_from: i128,
    /// Stat-cache records of this walk (hits and fresh ones).
    pub records: Mutex<Vec<Record>>,
    /// Counters, summed across threads.
    pub files: AtomicU64,
    pub dirs: AtomicU64,
    pub hashed_files: AtomicU64,
    pub hashed_bytes: AtomicU64,
    pub cache_hits: AtomicU64,
}

/// What opening a subdirectory found.
enum Opened {
    Dir(OwnedFd),
    /// Gone (or unreadable and excluded): list nothing.
    Gone,
    /// No longer a directory (a swap): look again with a stat.
    NotDir,
}

/// A listed entry and, for a directory, its listed children in name order.
pub(crate) struct Tree {
    pub node: Node,
    pub children: Vec<Tree>,
}

/// Appends trees depth first, each entry before its children.
pub(crate) fn flatten(trees: Vec<Tree>, out: &mut Vec<Node>) {
    for t in trees {
        out.push(t.node);
        flatten(t.children, out);
    }
}

/// Digest of a directory from its listed children.
pub(crate) fn digest_of_children(mode: u32, children: &[Tree]) -> Digest {
    digest::dir_digest(
        mode,
        children.iter().filter_map(|t| {
            let name = t.node.path.file_name()?.as_bytes();
            Some((name, t.node.digest.as_ref()?))
        }),
    )
}

fn io_err(path: &[u8], e: impl Into<std::io::Error>) -> ContextError {
    ContextError::io(PathBuf::from(OsStr::from_bytes(path)), e.into())
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(rel.len() + 1 + name.len());
    p.extend_from_slice(rel);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

fn key_of(st: &rustix::fs::Stat) -> StatKey {
    StatKey {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
        ctime: st.st_ctime,
        ctime_nsec: st.st_ctime_nsec as u32,
        mode: st.st_mode,
    }
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 1 << 18]);
}

/// Reads the `security.capability` xattr of an open file, if any.
fn capability(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    match rustix::fs::fgetxattr(fd, "security.capability", &mut buf[..]) {
        Ok(n) => Some(buf.get(..n).unwrap_or(&[]).to_vec()),
        Err(_) => None,
    }
}

impl Walker<'_> {
    /// A walker over `ignore`, reusing `old` cache records.
    pub(crate) fn new<'a>(
        ignore: &'a IgnoreRules,
        hash: bool,
        old: &'a StatCache,
        racy_from: i128,
    ) -> Walker<'a> {
        Walker {
            ignore,
            hash,
            old,
            racy_from,
            records: Mutex::new(Vec::new()),
            files: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            hashed_files: AtomicU64::new(0),
            hashed_bytes: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        }
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> WalkStats {
        WalkStats {
            files: self.files.load(Ordering::Relaxed),
            dirs: self.dirs.load(Ordering::Relaxed),
            hashed_files: self.hashed_files.load(Ordering::Relaxed),
            hashed_bytes: self.hashed_bytes.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }

    /// Walks the directory open as `dir`, at context path `rel`; returns
    /// its listed children in name order.
    pub(crate) fn walk_dir(
        &self,
        mut dir: rustix::fs::Dir,
        rel: &[u8],
    ) -> Result<Vec<Tree>, ContextError> {
        let mut names: Vec<(Vec<u8>, FileType)> = Vec::new();
        for entry in &mut dir {
            let entry = entry.map_err(|e| io_err(rel, e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push((name.to_vec(), entry.file_type()));
            }
        }
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let fd = dir.fd().map_err(|e| io_err(rel, e))?;
        let outs: Vec<Option<Tree>> = names
            .par_iter()
            .map(|(name, hint)| self.child(fd, rel, name, *hint))
            .collect::<Result<_, _>>()?;
        Ok(outs.into_iter().flatten().collect())
    }

    fn child(
        &self,
        parent: BorrowedFd<'_>,
        rel: &[u8],
        name: &[u8],
        hint: FileType,
    ) -> Result<Option<Tree>, ContextError> {
        let path = join(rel, name);
        let cname = OsStr::from_bytes(name);
        // A name that is not UTF-8 goes in whole (see `crate::bytename`);
        // the rules read each raw byte as the U+FFFD Go's regexp sees.
        let decision = if self.ignore.rules.is_empty() {
            Decision::default()
        } else {
            self.ignore.decide(&crate::bytename::from_bytes(&path))
        };
        // The reference's walk enters an excluded directory only for an
        // exception spelled out below it, and then lists the directory
        // itself even if nothing inside is left.
        let enter = !decision.excluded
            || self
                .ignore
                .must_descend_excluded(&crate::bytename::from_bytes(&path));
        // getdents said "directory": open it straight away (O_NOFOLLOW |
        // O_DIRECTORY make a swapped-in link or file fail) and skip the stat.
        if hint == FileType::Directory {
            if !enter {
                return Ok(None);
            }
            match self.open_dir(parent, cname, &path, decision.excluded)? {
                Opened::Dir(fd) => return self.dir(fd, path),
                Opened::Gone => return Ok(None),
                Opened::NotDir => {}
            }
        }
        let st = match rustix::fs::statat(parent, cname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Deleted since the directory was read: it is simply not there.
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let ftype = FileType::from_raw_mode(st.st_mode);
        if ftype == FileType::Directory {
            if !enter {
                return Ok(None);
            }
            return match self.open_dir(parent, cname, &path, decision.excluded)? {
                Opened::Dir(fd) => self.dir(fd, path),
                Opened::Gone => Ok(None),
                Opened::NotDir => Err(io_err(
                    &path,
                    std::io::Error::other("changed type while the context was read"),
                )),
            };
        }
        if decision.excluded || ftype == FileType::Socket || ftype == FileType::Unknown {
            return Ok(None);
        }
        self.files.fetch_add(1, Ordering::Relaxed);
        let node = self.leaf(parent, path, cname, &st, ftype)?;
        Ok(Some(Tree {
            node,
            children: Vec::new(),
        }))
    }

    /// Opens a subdirectory without following a link.
    fn open_dir(
        &self,
        parent: BorrowedFd<'_>,
        cname: &OsStr,
        path: &[u8],
        excluded: bool,
    ) -> Result<Opened, ContextError> {
        match rustix::fs::openat(
            parent,
            cname,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Opened::Dir(fd)),
            Err(rustix::io::Errno::NOENT) => Ok(Opened::Gone),
            Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => Ok(Opened::NotDir),
            // As fsutil: an unreadable directory that is excluded anyway
            // (entered only in case an exception matches) is skipped.
            Err(rustix::io::Errno::ACCESS) if excluded => Ok(Opened::Gone),
            Err(e) => Err(io_err(path, e)),
        }
    }

    /// Walks an opened subdirectory and makes its node.
    fn dir(&self, fd: OwnedFd, path: Vec<u8>) -> Result<Option<Tree>, ContextError> {
        let dst = rustix::fs::fstat(&fd).map_err(|e| io_err(&path, e))?;
        let dir = rustix::fs::Dir::new(fd).map_err(|e| io_err(&path, e))?;
        let children = self.walk_dir(dir, &path)?;
        let mode = dst.st_mode & 0o7777;
        let digest = self.hash.then(|| digest_of_children(mode, &children));
        self.dirs.fetch_add(1, Ordering::Relaxed);
        let node = Node {
            path: PathBuf::from(OsString::from_vec(path)),
            kind: NodeKind::Dir,
            mode,
            size: 0,
            mtime: dst.st_mtime,
            mtime_nanos: dst.st_mtime_nsec as u32,
            capability: None,
            digest,
        };
        Ok(Some(Tree { node, children }))
    }

    /// Lists (and hashes) a non-directory entry.
    fn leaf(
        &self,
        parent: BorrowedFd<'_>,
        path: Vec<u8>,
        cname: &OsStr,
        st: &rustix::fs::Stat,
        ftype: FileType,
    ) -> Result<Node, ContextError> {
        let path_ref = path.as_slice();
        let mut st = *st;
        let mut target = Vec::new();
        if ftype == FileType::Symlink {
            target = rustix::fs::readlinkat(parent, cname, Vec::new())
                .map_err(|e| io_err(path_ref, e))?
                .into_bytes();
        }
        let rdev = st.st_rdev;
        let kind = match ftype {
            FileType::Symlink => NodeKind::Symlink {
                target: PathBuf::from(OsStr::from_bytes(&target)),
            },
            FileType::CharacterDevice => NodeKind::CharDevice {
                major: rustix::fs::major(rdev),
                minor: rustix::fs::minor(rdev),
            },
            FileType::BlockDevice => NodeKind::BlockDevice {
                major: rustix::fs::major(rdev),
                minor: rustix::fs::minor(rdev),
            },
            FileType::Fifo => NodeKind::Fifo,
            _ => NodeKind::File,
        };
        let mut capability_xattr = None;
        let mut digest = None;
        if self.hash {
            let key = key_of(&st);
            let cached = self
                .old
                .map
                .get(&(key.dev, key.ino))
                .filter(|r| r.key == key);
            if let Some(rec) = cached {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                digest = Some(rec.digest);
                capability_xattr = rec.capability.clone();
                self.push_record(rec.clone());
            } else {
                let content = if ftype == FileType::RegularFile {
                    let (c, fst, cap) = hash_file(parent, cname, path_ref)?;
                    // Describe what was actually read.
                    st = fst;
                    capability_xattr = cap;
                    self.hashed_files.fetch_add(1, Ordering::Relaxed);
                    self.hashed_bytes
                        .fetch_add(st.st_size as u64, Ordering::Relaxed);
                    Some(c)
                } else {
                    None
                };
                let tag = match ftype {
                    FileType::Symlink => TypeTag::Symlink,
                    FileType::CharacterDevice => TypeTag::Char,
                    FileType::BlockDevice => TypeTag::Block,
                    FileType::Fifo => TypeTag::Fifo,
                    _ => TypeTag::File,
                };
                let size = if tag == TypeTag::File {
                    st.st_size as u64
                } else {
                    0
                };
                let is_dev = matches!(tag, TypeTag::Char | TypeTag::Block);
                let d = digest::entry_digest(
                    &Header {
                        tag,
                        mode: st.st_mode,
                        size,
                        link_target: &target,
                        capability: capability_xattr.as_deref(),
                        rdev: if is_dev { rdev } else { 0 },
                    },
                    content.as_ref(),
                );
                digest = Some(d);
                let ns = |s: i64, n: u64| i128::from(s) * 1_000_000_000 + i128::from(n);
                let changed =
                    ns(st.st_mtime, st.st_mtime_nsec).max(ns(st.st_ctime, st.st_ctime_nsec));
                if changed < self.racy_from {
                    self.push_record(Record {
                        key: key_of(&st),
                        digest: d,
                        capability: capability_xattr.clone(),
                    });
                }
            }
        }
        let size = if ftype == FileType::RegularFile {
            st.st_size as u64
        } else {
            0
        };
        Ok(Node {
            path: PathBuf::from(OsString::from_vec(path)),
            kind,
            mode: st.st_mode & 0o7777,
            size,
            mtime: st.st_mtime,
            mtime_nanos: st.st_mtime_nsec as u32,
            capability: capability_xattr,
            digest,
        })
    }

    fn push_record(&self, record: Record) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }
}

/// Opens a regular file without following a link (a swap to a symlink
/// fails rather than reading elsewhere) and hashes it. Returns the content
/// digest, the stat of what was read, and its capability xattr.
fn hash_file(
    parent: BorrowedFd<'_>,
    cname: &OsStr,
    path: &[u8],
) -> Result<(Digest, rustix::fs::Stat, Option<Vec<u8>>), ContextError> {
    let fd: OwnedFd = match rustix::fs::openat(
        parent,
        cname,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // The user's own file of mode 0200 or 000: read it as its owner may.
        Err(e) => crate::sandbox::Opener::for_process()
            .retry_at(e.into(), parent, Path::new(cname), false)
            .map_err(|e| io_err(path, e))?
            .into(),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err(path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io_err(
            path,
            std::io::Error::other("changed type while the context was read"),
        ));
    }
    let mut hasher = ContentHasher::new();
    let size = st.st_size as u64;
    BUF.with(|buf| -> Result<(), ContextError> {
        let mut buf = buf.borrow_mut();
        let mut total = 0u64;
        loop {
            match rustix::io::read(&fd, &mut buf[..]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    hasher.update(buf.get(..n).unwrap_or(&[]));
                    total += n as u64;
                    // A short read that reaches the size fstat gave is the
                    // end: skip the extra read(2) that would return 0.
                    if n < buf.len() && total == size {
                        return Ok(());
                    }
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_err(path, e)),
            }
        }
    })?;
    let cap = capability(fd.as_fd());
    Ok((hasher.finish(), st, cap))
}
