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
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::digest::{self, ContentHasher, Digest, Header, TypeTag};
use super::error::ContextError;
use super::ignore::{IgnoreRules, ParentMatches};
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

impl WalkStats {
    fn add(&mut self, o: &WalkStats) {
        self.files += o.files;
        self.dirs += o.dirs;
        self.hashed_files += o.hashed_files;
        self.hashed_bytes += o.hashed_bytes;
        self.cache_hits += o.cache_hits;
    }
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
    pub(crate) index: HashMap<PathBuf, usize>,
}

impl ContextListing {
    /// The entry at a context-relative path.
    pub fn get(&self, path: &Path) -> Option<&Node> {
        self.index.get(path).and_then(|i| self.nodes.get(*i))
    }

    /// The entry at `path` followed by everything below it (empty when the
    /// path is not listed). The empty path means the whole context.
    pub fn subtree(&self, path: &Path) -> &[Node] {
        if path.as_os_str().is_empty() {
            return &self.nodes;
        }
        let Some(&start) = self.index.get(path) else {
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

    pub(crate) fn build_index(&mut self) {
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.path.clone(), i))
            .collect();
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
}

/// What walking one directory produced.
#[derive(Default)]
pub(crate) struct DirOut {
    pub nodes: Vec<Node>,
    /// (name, digest) of the included children, sorted by name.
    pub children: Vec<(Vec<u8>, Digest)>,
    pub records: Vec<(Vec<u8>, Record)>,
    pub stats: WalkStats,
}

/// One child's contribution.
#[derive(Default)]
struct ChildOut {
    nodes: Vec<Node>,
    digest: Option<Digest>,
    records: Vec<(Vec<u8>, Record)>,
    stats: WalkStats,
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
    /// Walks the directory open as `fd`, at context path `rel`.
    pub(crate) fn walk_dir(
        &self,
        fd: BorrowedFd<'_>,
        rel: &[u8],
        info: &ParentMatches,
    ) -> Result<DirOut, ContextError> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let dir = rustix::fs::Dir::read_from(fd).map_err(|e| io_err(rel, e))?;
        for entry in dir {
            let entry = entry.map_err(|e| io_err(rel, e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort_unstable();
        let outs: Vec<ChildOut> = names
            .par_iter()
            .map(|name| self.child(fd, rel, name, info))
            .collect::<Result<_, _>>()?;
        let mut out = DirOut::default();
        for (name, child) in names.into_iter().zip(outs) {
            out.nodes.extend(child.nodes);
            out.records.extend(child.records);
            out.stats.add(&child.stats);
            if let Some(d) = child.digest {
                out.children.push((name, d));
            }
        }
        Ok(out)
    }

    fn child(
        &self,
        parent: BorrowedFd<'_>,
        rel: &[u8],
        name: &[u8],
        info: &ParentMatches,
    ) -> Result<ChildOut, ContextError> {
        let path = join(rel, name);
        let cname = OsStr::from_bytes(name);
        let st = match rustix::fs::statat(parent, cname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Deleted since the directory was read: it is simply not there.
            Err(rustix::io::Errno::NOENT) => return Ok(ChildOut::default()),
            Err(e) => return Err(io_err(&path, e)),
        };
        let path_str = String::from_utf8_lossy(&path);
        let (decision, child_info) = self.ignore.decide_in_walk(&path_str, info);
        let ftype = FileType::from_raw_mode(st.st_mode);
        let mut out = ChildOut::default();
        if ftype == FileType::Directory {
            if decision.excluded && !self.ignore.must_descend_excluded(&path_str) {
                return Ok(out);
            }
            let fd = rustix::fs::openat(
                parent,
                cname,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(&path, e))?;
            let dst = rustix::fs::fstat(&fd).map_err(|e| io_err(&path, e))?;
            let sub = self.walk_dir(fd.as_fd(), &path, &child_info)?;
            drop(fd);
            if decision.excluded && sub.nodes.is_empty() {
                return Ok(out);
            }
            let mode = dst.st_mode & 0o7777;
            let digest = self.hash.then(|| {
                digest::dir_digest(mode, sub.children.iter().map(|(n, d)| (n.as_slice(), d)))
            });
            out.nodes.push(Node {
                path: PathBuf::from(OsStr::from_bytes(&path)),
                kind: NodeKind::Dir,
                mode,
                size: 0,
                mtime: dst.st_mtime,
                mtime_nanos: dst.st_mtime_nsec as u32,
                capability: None,
                digest,
            });
            out.nodes.extend(sub.nodes);
            out.records = sub.records;
            out.stats = sub.stats;
            out.stats.dirs += 1;
            out.digest = digest;
            return Ok(out);
        }
        if decision.excluded || ftype == FileType::Socket || ftype == FileType::Unknown {
            return Ok(out);
        }
        out.stats.files += 1;
        let (node, record) = self.leaf(parent, &path, cname, &st, ftype, &mut out.stats)?;
        out.digest = node.digest;
        out.nodes.push(node);
        out.records.extend(record.map(|r| (path, r)));
        Ok(out)
    }

    /// Lists (and hashes) a non-directory entry.
    fn leaf(
        &self,
        parent: BorrowedFd<'_>,
        path: &[u8],
        cname: &OsStr,
        st: &rustix::fs::Stat,
        ftype: FileType,
        stats: &mut WalkStats,
    ) -> Result<(Node, Option<Record>), ContextError> {
        let mut st = *st;
        let mut target = Vec::new();
        if ftype == FileType::Symlink {
            target = rustix::fs::readlinkat(parent, cname, Vec::new())
                .map_err(|e| io_err(path, e))?
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
        let mut record = None;
        if self.hash {
            let cached = self.old.map.get(path).filter(|r| r.key == key_of(&st));
            if let Some(rec) = cached {
                stats.cache_hits += 1;
                digest = Some(rec.digest);
                capability_xattr = rec.capability.clone();
                record = Some(rec.clone());
            } else {
                let content = if ftype == FileType::RegularFile {
                    let (c, fst, cap) = hash_file(parent, cname, path)?;
                    // Describe what was actually read.
                    st = fst;
                    capability_xattr = cap;
                    stats.hashed_files += 1;
                    stats.hashed_bytes += st.st_size as u64;
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
                    record = Some(Record {
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
        let node = Node {
            path: PathBuf::from(OsStr::from_bytes(path)),
            kind,
            mode: st.st_mode & 0o7777,
            size,
            mtime: st.st_mtime,
            mtime_nanos: st.st_mtime_nsec as u32,
            capability: capability_xattr,
            digest,
        };
        Ok((node, record))
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
    let fd: OwnedFd = rustix::fs::openat(
        parent,
        cname,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| io_err(path, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err(path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io_err(
            path,
            std::io::Error::other("changed type while the context was read"),
        ));
    }
    let mut hasher = ContentHasher::new();
    BUF.with(|buf| -> Result<(), ContextError> {
        let mut buf = buf.borrow_mut();
        loop {
            match rustix::io::read(&fd, &mut buf[..]) {
                Ok(0) => return Ok(()),
                Ok(n) => hasher.update(buf.get(..n).unwrap_or(&[])),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_err(path, e)),
            }
        }
    })?;
    let cap = capability(fd.as_fd());
    Ok((hasher.finish(), st, cap))
}
