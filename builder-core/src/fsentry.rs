//! The one description of a filesystem entry that every layer producer and
//! consumer shares: COPY/ADD, the RUN diff, archive extraction and the tar
//! writer all speak in [`Entry`] values, so none of them needs to know the
//! others.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a regular file's bytes come from when a layer is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Read from this path on the host when the layer is written.
    Path(PathBuf),
    /// Held in memory (heredocs, small generated files).
    Bytes(Arc<[u8]>),
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
