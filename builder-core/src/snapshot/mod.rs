//! Layer snapshots: each layer extracted once into the store and shared by
//! every build; a step's root is overlayfs of those directories under a fresh
//! upper directory, whose contents [`Workspace::diff`] turns into the layer's
//! [`Entry`](crate::fsentry::Entry) values.
mod copy;
mod diff;
mod durable;
mod extract;
mod scratch;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsentry::Entry;
use crate::sandbox::{self, IdMap, Rootfs, SandboxError};

pub use copy::diff_copy;
pub use diff::{diff_fuse_upper, diff_upper};
pub use scratch::{memory_scratch_base, ScratchLimits};

/// How a step's root filesystem is assembled from the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RootfsMode {
    /// Kernel overlayfs (`userxattr` inside a user namespace).
    #[default]
    KernelOverlay,
    /// fuse-overlayfs, mounted inside the step's namespaces: the fallback
    /// when kernel overlayfs is refused but `/dev/fuse` can be opened.
    FuseOverlay,
    /// A full copy of the layers; the diff compares it with them.
    Copy,
}

impl RootfsMode {
    /// Parses `overlay`, `fuse-overlayfs` or `copy` (for example the
    /// `KILN_ROOTFS_MODE` environment variable that forces a mode).
    pub fn parse(s: &str) -> Option<RootfsMode> {
        match s {
            "overlay" => Some(RootfsMode::KernelOverlay),
            "fuse-overlayfs" => Some(RootfsMode::FuseOverlay),
            "copy" => Some(RootfsMode::Copy),
            _ => None,
        }
    }
}

/// Error from the snapshot store, extraction or the diff.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file system operation on the store failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A layer tarball is malformed or tries to escape its root.
    #[error("layer {diff_id}: {path}: {reason}")]
    BadLayer {
        /// The layer's diff id.
        diff_id: String,
        /// The member's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A diff id that cannot name a store directory.
    #[error("invalid diff id {0:?} (expected sha256:<64 hex digits>)")]
    BadDiffId(String),
    /// Only kernel overlay workspaces can become snapshots directly.
    #[error("a copy or fuse-overlayfs workspace cannot be committed; extract the layer instead")]
    CommitUnsupported,
    /// The scratch directory given to [`Store::set_scratch`] cannot be used.
    #[error("scratch in {dir}: {reason}")]
    Scratch {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Changing owners inside the user namespace failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Something the caller should show the user about a snapshot operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotWarning {
    /// A layer member could not be reproduced exactly (a device node or an
    /// owner the unprivileged user cannot create).
    Skipped {
        /// The member's path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for SnapshotWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotWarning::Skipped { path, reason } => write!(
                f,
                "{path}: left out of the layer's extracted copy, so RUN steps do not see it \
                 (the image keeps it): {reason}"
            ),
        }
    }
}

/// The layer store: `<root>/snapshots/v1/layers/<algorithm>/<hex>/`.
/// Clones share the scratch ([`Store::set_scratch`]) and its volatile
/// snapshots.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    idmap: IdMap,
    mode: RootfsMode,
    scratch: Option<Arc<scratch::Scratch>>,
    /// `lock`, held shared while the store is open: whoever gets it
    /// exclusively is alone and may settle crash records (`durable`).
    _lock: Arc<fs::File>,
}

/// Marks a rootless store whose snapshots carry their layers' file
/// capabilities.
const ROOTLESS_CAPS_MARKER: &str = "rootless-caps-v1";

/// A rootless store's snapshots extracted before kiln set
/// `security.capability` inside the user namespace lack their layers' file
/// capabilities, and a step that touched such a file would write it into
/// its layer without one. Once per store, they go to the trash (extracted
/// again from their blobs on next use). Call only while no other process
/// uses the store.
fn discard_capless_snapshots(dir: &Path, idmap: &IdMap) {
    let marker = dir.join(ROOTLESS_CAPS_MARKER);
    if marker.exists() {
        return;
    }
    let mut all_moved = true;
    for algo in fs::read_dir(dir.join("layers"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for layer in fs::read_dir(algo.path()).into_iter().flatten().flatten() {
            let dest = dir.join("trash").join(format!(
                "precaps-{}-{}",
                algo.file_name().to_string_lossy(),
                layer.file_name().to_string_lossy()
            ));
            if sandbox::rename_dir(idmap, &layer.path(), &dest).is_err() {
                all_moved = false;
            }
        }
    }
    if all_moved {
        let _ = fs::write(&marker, b"");
    }
}

impl Store {
    /// Opens (creating) the store below `root` for a process with `idmap`
    /// (root and unprivileged stores differ in ownership and xattr names, so
    /// use one store per user).
    pub fn open(root: &Path, idmap: IdMap) -> Result<Store, SnapshotError> {
        let dir = root.join("snapshots").join("v1");
        for sub in ["layers", "tmp", "work", "trash"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        }
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        use rustix::fs::{flock, FlockOperation};
        if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
            // Discarded layers are extracted again when next used, as if
            // never extracted: nothing for the caller to do.
            durable::settle(&dir, &idmap, durable::SETTLE_AFTER);
            if idmap.needs_userns() {
                discard_capless_snapshots(&dir, &idmap);
            }
        }
        loop {
            match flock(&lock, FlockOperation::LockShared) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r.map_err(|e| io_err("locking", &lock_path)(e.into()))?,
            }
        }
        Ok(Store {
            dir,
            idmap,
            mode: RootfsMode::KernelOverlay,
            scratch: None,
            _lock: Arc::new(lock),
        })
    }

    /// Tries a kernel overlay mount the way steps do it; when it is refused
    /// tries fuse-overlayfs ([`RootfsMode::FuseOverlay`]), and picks
    /// [`RootfsMode::Copy`] when that fails too. Returns the kernel's
    /// refusal, if any, for the caller to report.
    pub fn detect_mode(&mut self) -> Result<Option<SandboxError>, SnapshotError> {
        let probe = self.unique(&self.dir.join("tmp"), "probe")?;
        match sandbox::probe_overlay(&self.idmap, &probe) {
            Ok(()) => {
                self.mode = RootfsMode::KernelOverlay;
                Ok(None)
            }
            Err(e @ SandboxError::UserNamespace { .. }) => Err(e.into()),
            Err(e) => {
                self.mode = match self.probe_fuse_overlay() {
                    Ok(()) => RootfsMode::FuseOverlay,
                    Err(_) => RootfsMode::Copy,
                };
                Ok(Some(e))
            }
        }
    }

    /// Whether fuse-overlayfs roots work here for this store's user (see
    /// [`sandbox::probe_fuse_overlay`]); the error says why not.
    pub fn probe_fuse_overlay(&self) -> Result<(), SnapshotError> {
        let probe = self.unique(&self.dir.join("tmp"), "probe")?;
        Ok(sandbox::probe_fuse_overlay(&self.idmap, &probe)?)
    }

    /// Deletes what [`Workspace::discard`] and failed extractions left;
    /// safe to call from a background thread while builds run.
    pub fn empty_trash(&self) -> Result<(), SnapshotError> {
        let trash = self.dir.join("trash");
        let entries = fs::read_dir(&trash).map_err(io_err("reading", &trash))?;
        for e in entries.flatten() {
            sandbox::remove_tree(&self.idmap, &e.path())?;
        }
        Ok(())
    }

    /// Chooses how workspaces are assembled.
    pub fn set_mode(&mut self, mode: RootfsMode) {
        self.mode = mode;
    }

    /// How workspaces are assembled.
    pub fn mode(&self) -> RootfsMode {
        self.mode
    }

    /// The id map the store was opened with.
    pub fn idmap(&self) -> &IdMap {
        &self.idmap
    }

    /// The directory that holds (or will hold) the layer `diff_id`: its
    /// volatile snapshot in the scratch when this build made one, else its
    /// directory in the store.
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, SnapshotError> {
        let persistent = self.persistent_dir(diff_id)?;
        Ok(self.volatile_dir(diff_id).unwrap_or(persistent))
    }

    /// The layer's directory in the store (checking the diff id's form).
    fn persistent_dir(&self, diff_id: &str) -> Result<PathBuf, SnapshotError> {
        let (algo, hex) = diff_id
            .split_once(':')
            .ok_or_else(|| SnapshotError::BadDiffId(diff_id.into()))?;
        let ok = matches!(algo, "sha256" | "sha512")
            && !hex.is_empty()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(SnapshotError::BadDiffId(diff_id.into()));
        }
        Ok(self.dir.join("layers").join(algo).join(hex))
    }

    /// True when the layer is already extracted.
    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_dir(diff_id).map(|d| d.is_dir()).unwrap_or(false)
    }

    /// Extracts the layer (a gzip, zstd or plain tar stream; the caller has
    /// verified `diff_id`) unless it is already in the store. Extraction goes
    /// to a temporary directory that is renamed into place when complete.
    pub fn ensure_layer(
        &self,
        diff_id: &str,
        blob: &mut dyn Read,
    ) -> Result<(PathBuf, Vec<SnapshotWarning>), SnapshotError> {
        let dest = self.layer_dir(diff_id)?;
        if dest.is_dir() {
            return Ok((dest, Vec::new()));
        }
        let tmp = self.unique(&self.dir.join("tmp"), "layer")?;
        let result = extract::extract(blob, &tmp, diff_id, &self.idmap);
        let warnings = match result {
            Ok(w) => w,
            Err(e) => {
                let _ = sandbox::remove_tree(&self.idmap, &tmp);
                return Err(e);
            }
        };
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        if let Err(e) = durable::record(&self.dir, diff_id) {
            let _ = sandbox::remove_tree(&self.idmap, &tmp);
            return Err(io_err("recording", &self.dir.join("pending"))(e));
        }
        if let Err(e) = sandbox::rename_dir(&self.idmap, &tmp, &dest) {
            let _ = sandbox::remove_tree(&self.idmap, &tmp);
            if !dest.is_dir() {
                return Err(e.into());
            }
        }
        Ok((dest, warnings))
    }

    /// A fresh upper and work directory over the layers `diff_ids` (bottom
    /// first, as in an image config), all of which must be in the store;
    /// in the scratch ([`Store::set_scratch`]) when it has room.
    pub fn workspace(&self, diff_ids: &[String]) -> Result<Workspace, SnapshotError> {
        self.make_workspace(diff_ids, true)
    }

    fn make_workspace(
        &self,
        diff_ids: &[String],
        may_use_scratch: bool,
    ) -> Result<Workspace, SnapshotError> {
        let mut lowers: Vec<PathBuf> = Vec::new();
        for id in diff_ids.iter().rev() {
            let d = self.layer_dir(id)?;
            if !d.is_dir() {
                return Err(io_err("finding layer", &d)(
                    std::io::ErrorKind::NotFound.into(),
                ));
            }
            // An image may hold one layer twice (two identical COPY steps,
            // a file written and removed then written again within one
            // second). overlayfs refuses a lower directory given twice
            // (ELOOP), and the lower copy changes nothing: every entry and
            // whiteout it has is repeated above it, so only the topmost
            // occurrence is kept.
            if !lowers.contains(&d) {
                lowers.push(d);
            }
        }
        let in_scratch = match may_use_scratch.then(|| self.scratch_for_step()) {
            // A scratch that cannot even take two directories: the disk.
            Some(Some((base, watch))) => self.workspace_dirs(&base).ok().map(|d| (d, watch)),
            _ => None,
        };
        let ((dir, upper, work), scratch) = match in_scratch {
            Some((dirs, watch)) => (dirs, Some(watch)),
            None => (self.workspace_dirs(&self.dir.join("work"))?, None),
        };
        let ws = Workspace {
            lowers,
            upper,
            work,
            dir,
            idmap: self.idmap.clone(),
            mode: self.mode,
            scratch,
        };
        if self.mode == RootfsMode::Copy {
            if let Err(e) = copy::assemble(&ws.lowers, &ws.upper, &self.idmap) {
                let _ = ws.remove();
                return Err(e);
            }
        }
        Ok(ws)
    }

    /// A new workspace directory in `base` with its `upper` and `work`.
    fn workspace_dirs(&self, base: &Path) -> Result<(PathBuf, PathBuf, PathBuf), SnapshotError> {
        let dir = self.unique(base, "ws")?;
        let upper = dir.join("upper");
        let work = dir.join("work");
        for p in [&upper, &work] {
            if let Err(e) = fs::create_dir(p) {
                let _ = fs::remove_dir_all(&dir);
                return Err(io_err("creating", p)(e));
            }
        }
        Ok((dir, upper, work))
    }

    /// Turns a finished overlay workspace into the snapshot of its layer
    /// without extracting the layer tarball again: the upper directory
    /// already is in the store's format (0/0 whiteouts, opaque xattrs).
    /// Call it after the layer has been written from [`Workspace::diff`]
    /// (whose entries point into the upper directory). Copy workspaces
    /// cannot be committed; extract the written layer with
    /// [`Store::ensure_layer`] instead. A workspace in the scratch becomes
    /// a volatile snapshot there (see [`Store::set_scratch`]).
    pub fn commit(&self, ws: Workspace, diff_id: &str) -> Result<PathBuf, SnapshotError> {
        let dest = self.layer_dir(diff_id)?;
        if ws.mode != RootfsMode::KernelOverlay {
            let _ = ws.remove();
            return Err(SnapshotError::CommitUnsupported);
        }
        if ws.on_scratch() {
            return self.commit_volatile(ws, diff_id);
        }
        if !dest.is_dir() {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            if let Err(e) = durable::record(&self.dir, diff_id) {
                let _ = ws.remove();
                return Err(io_err("recording", &self.dir.join("pending"))(e));
            }
            if let Err(e) = sandbox::rename_dir(&ws.idmap, &ws.upper, &dest) {
                if !dest.is_dir() {
                    let _ = ws.remove();
                    return Err(e.into());
                }
            }
        }
        ws.remove()?;
        Ok(dest)
    }

    fn unique(&self, base: &Path, prefix: &str) -> Result<PathBuf, SnapshotError> {
        self.unique_with(base, prefix, 0o777)
    }
}

/// One step's writable layer over read-only snapshots.
#[derive(Debug)]
pub struct Workspace {
    /// Layer directories, topmost first.
    pub lowers: Vec<PathBuf>,
    /// The writable directory: overlay's upper directory, or the whole
    /// copied root in [`RootfsMode::Copy`].
    pub upper: PathBuf,
    /// overlayfs's work directory.
    pub work: PathBuf,
    /// How the root is assembled.
    pub mode: RootfsMode,
    dir: PathBuf,
    idmap: IdMap,
    scratch: Option<scratch::ScratchWatch>,
}

impl Workspace {
    /// The root filesystem to give [`sandbox::run`].
    pub fn rootfs(&self) -> Rootfs {
        match self.mode {
            RootfsMode::KernelOverlay => Rootfs::Overlay {
                lowers: self.lowers.clone(),
                upper: self.upper.clone(),
                work: self.work.clone(),
            },
            RootfsMode::FuseOverlay => Rootfs::FuseOverlay {
                lowers: self.lowers.clone(),
                upper: self.upper.clone(),
                work: self.work.clone(),
            },
            RootfsMode::Copy => Rootfs::Dir(self.upper.clone()),
        }
    }

    /// Reads a regular file of the merged root (the writable directory over
    /// the layers) from the host, for example `etc/passwd` to resolve `USER`
    /// names; `None` when the path is absent, deleted or not a regular file.
    /// Symlinks are not followed.
    pub fn read_file(&self, rel: &Path) -> Result<Option<Vec<u8>>, SnapshotError> {
        let rel: PathBuf = rel
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        let found = match self.mode {
            RootfsMode::Copy => {
                let p = self.upper.join(&rel);
                fs::symlink_metadata(&p).ok().map(|m| (p, m))
            }
            RootfsMode::KernelOverlay | RootfsMode::FuseOverlay => {
                diff::merged_lookup(&self.upper, &self.lowers, &rel)
            }
        };
        match found {
            Some((p, m)) if m.is_file() => sandbox::Opener::new(&self.idmap)
                .read(&p)
                .map(Some)
                .map_err(io_err("reading", &p)),
            _ => Ok(None),
        }
    }

    /// What the step changed, as sorted layer entries (regular files point
    /// into the upper directory, so read them before [`Workspace::remove`]).
    pub fn diff(&self) -> Result<Vec<Entry>, SnapshotError> {
        match self.mode {
            RootfsMode::KernelOverlay => diff_upper(&self.upper, &self.lowers, &self.idmap),
            RootfsMode::FuseOverlay => {
                diff::diff_fuse_upper(&self.upper, &self.lowers, &self.idmap)
            }
            RootfsMode::Copy => diff_copy(&self.upper, &self.lowers, &self.idmap),
        }
    }

    /// Deletes the upper and work directories.
    pub fn remove(self) -> Result<(), SnapshotError> {
        Ok(sandbox::remove_tree(&self.idmap, &self.dir)?)
    }

    /// Moves the workspace into the store's trash at once (a rename);
    /// [`Store::empty_trash`] deletes it later, off the build's critical
    /// path (deleting many files can take seconds, e.g. on ext4 mounted
    /// with `discard`).
    pub fn discard(self) -> Result<(), SnapshotError> {
        if self.on_scratch() {
            // Deleting is quick in memory, and keeping it would hold RAM
            // the next steps may need.
            return self.remove();
        }
        let Some(trash) = self
            .dir
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("trash"))
        else {
            return self.remove();
        };
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_owned())
            .unwrap_or_default();
        match fs::rename(&self.dir, trash.join(name)) {
            Ok(()) => Ok(()),
            Err(_) => self.remove(),
        }
    }
}
