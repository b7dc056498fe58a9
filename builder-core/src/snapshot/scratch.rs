//! An optional scratch directory on a RAM-backed filesystem (tmpfs) for the
//! writable directories of RUN steps: creating and deleting many inodes in
//! an overlay upper directory costs about twice as much on ext4 as on tmpfs.
//!
//! A step that ran on the scratch cannot be committed by a rename into the
//! store's layers (another filesystem), so its upper directory stays in the
//! scratch as a *volatile* snapshot of its layer for the rest of the build
//! and is deleted with the scratch; a later build extracts that layer from
//! its blob like any other. Memory is finite, so each step checks the space
//! before it starts ([`ScratchLimits::min_free`], [`ScratchLimits::budget`])
//! and, because a full tmpfs must never yield a truncated layer, a step
//! during which the free space fell below [`ScratchLimits::margin`] (or the
//! build's use went over the budget) is to be stopped and run again on disk
//! ([`Workspace::scratch_filled`]).
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{io_err, RootfsMode, SnapshotError, Store, Workspace};
use crate::sandbox::{self, IdMap};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TMPFS_MAGIC: i128 = 0x0102_1994;
const RAMFS_MAGIC: i128 = 0x8584_58f6;
/// The per-build directories' names: `kiln-scratch-<pid>-<n>`.
const PREFIX: &str = "kiln-scratch-";

/// When RUN steps may use the scratch, and when a step's run there is not
/// trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScratchLimits {
    /// A step starts on the scratch only when the scratch filesystem has at
    /// least this many bytes free (default 1 GiB: a RUN step that unpacks
    /// a toolchain easily writes hundreds of MiB).
    pub min_free: u64,
    /// ... and when the scratch filesystem's free space has shrunk by less
    /// than this since [`Store::set_scratch`]: that shrinking is the build's
    /// volatile snapshots and running steps (plus anything else using the
    /// filesystem, so it errs on the side of the disk). `None`: half of the
    /// free space at [`Store::set_scratch`]. It bounds running steps too: a
    /// step during which the use went over it counts as one that filled the
    /// scratch, so a build takes no more than the budget of memory (give or
    /// take what a step writes between two samples, 50 ms apart).
    pub budget: Option<u64>,
    /// A step during which the free space fell below this many bytes (it
    /// may have hit ENOSPC, even if it ignored the error) must be run again
    /// on disk (default 128 MiB).
    pub margin: u64,
    /// The same for free inodes, on filesystems that limit them (default
    /// 1024); a step starts on the scratch only with four times this many
    /// free.
    pub inode_margin: u64,
}

impl Default for ScratchLimits {
    fn default() -> Self {
        ScratchLimits {
            min_free: GIB,
            budget: None,
            margin: 128 * MIB,
            inode_margin: 1024,
        }
    }
}

/// Free space of a filesystem.
#[derive(Debug, Clone, Copy)]
struct Space {
    /// Bytes an unprivileged writer can still use.
    free: u64,
    /// Free inodes; `None` when the filesystem does not limit them.
    free_inodes: Option<u64>,
}

fn space(path: &Path) -> Result<Space, SnapshotError> {
    let st = rustix::fs::statvfs(path).map_err(|e| SnapshotError::Io {
        what: "statvfs",
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(Space {
        free: st.f_bavail.saturating_mul(st.f_frsize),
        free_inodes: (st.f_files > 0).then_some(st.f_ffree),
    })
}

/// True when `path` is on a tmpfs or ramfs.
fn is_memory_fs(path: &Path) -> bool {
    rustix::fs::statfs(path)
        .map(|st| {
            let t = i128::from(st.f_type) & 0xffff_ffff;
            t == TMPFS_MAGIC || t == RAMFS_MAGIC
        })
        .unwrap_or(false)
}

/// The RAM-backed directory a build's scratch should be made in: of
/// `$XDG_RUNTIME_DIR` and `/dev/shm`, those that are a tmpfs or ramfs and
/// writable by this process, the one with the most free space
/// (`$XDG_RUNTIME_DIR` is often limited to 10% of the memory, `/dev/shm` to
/// half). The error says why none is usable.
pub fn memory_scratch_base() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        candidates.push(PathBuf::from(d));
    }
    candidates.push(PathBuf::from("/dev/shm"));
    let mut why = Vec::new();
    let mut best: Option<(u64, PathBuf)> = None;
    for c in candidates {
        if !is_memory_fs(&c) {
            why.push(format!("{} is not a tmpfs", c.display()));
            continue;
        }
        if rustix::fs::access(&c, rustix::fs::Access::WRITE_OK).is_err() {
            why.push(format!("{} is not writable", c.display()));
            continue;
        }
        let free = space(&c).map(|s| s.free).unwrap_or(0);
        if best.as_ref().is_none_or(|(f, _)| free > *f) {
            best = Some((free, c));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| why.join("; "))
}

/// A build's scratch: a private directory laid out like the store's
/// (`work/`, `layers/`, `tmp/`) and the volatile snapshots in it.
#[derive(Debug)]
pub(super) struct Scratch {
    dir: PathBuf,
    limits: ScratchLimits,
    free_at_start: u64,
    budget: u64,
    idmap: IdMap,
    /// diff id → its volatile snapshot in `dir/layers`.
    volatile: Mutex<HashMap<String, PathBuf>>,
    removed: AtomicBool,
}

impl Scratch {
    fn volatile(&self) -> MutexGuard<'_, HashMap<String, PathBuf>> {
        self.volatile.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a new step may start here now.
    fn has_room(&self) -> bool {
        if self.removed.load(Ordering::Acquire) {
            return false;
        }
        let Ok(s) = space(&self.dir) else {
            return false;
        };
        s.free >= self.limits.min_free
            && self.free_at_start.saturating_sub(s.free) < self.budget
            // Room for more than the margin's worth of new files.
            && s.free_inodes
                .is_none_or(|n| n >= self.limits.inode_margin.saturating_mul(4))
    }

    /// Deletes the directory and forgets the volatile snapshots in it.
    fn remove(&self) -> Result<(), SnapshotError> {
        let mut volatile = self.volatile();
        volatile.clear();
        if self.removed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        Ok(sandbox::remove_tree(&self.idmap, &self.dir)?)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The last handle of a store that never called clear_scratch: RAM
        // must not stay taken after the build.
        let _ = self.remove();
    }
}

/// The scratch side of a [`Workspace`] made in it: the lowest free space
/// seen while its step ran.
#[derive(Debug)]
pub(super) struct ScratchWatch {
    scratch: Arc<Scratch>,
    low_free: AtomicU64,
    low_inodes: AtomicU64,
}

impl ScratchWatch {
    fn sample(&self) {
        match space(&self.scratch.dir) {
            Ok(s) => {
                self.low_free.fetch_min(s.free, Ordering::Relaxed);
                if let Some(n) = s.free_inodes {
                    self.low_inodes.fetch_min(n, Ordering::Relaxed);
                }
            }
            // Cannot tell: assume the worst.
            Err(_) => self.low_free.store(0, Ordering::Relaxed),
        }
    }
}

impl Store {
    /// Gives RUN steps a scratch directory on another (RAM-backed)
    /// filesystem: a private directory (0700, `kiln-scratch-<pid>-<n>`) is
    /// made in `base` and, from now on, [`Store::workspace`] puts a step's
    /// upper and work directories there when `limits` allow it, and
    /// [`Store::commit`] keeps such a step's upper directory there as a
    /// volatile snapshot of its layer (seen by [`Store::layer_dir`],
    /// [`Store::has_layer`], [`Store::ensure_layer`] and
    /// [`Store::workspace`]) until [`Store::clear_scratch`], or until the
    /// last clone of this store is dropped. Volatile snapshots never enter
    /// the store's layers directory.
    ///
    /// Only [`RootfsMode::KernelOverlay`] uses a scratch (call it after
    /// [`Store::detect_mode`]). Fails, leaving the store as it was, when the
    /// mode is another, the directory cannot be made, the filesystem has
    /// less than [`ScratchLimits::min_free`] free, or lacks the extended
    /// attributes overlayfs keeps there (rootless overlayfs needs user
    /// xattrs, which tmpfs has since Linux 6.6), or an overlay with its
    /// upper directory there cannot be mounted. Directories left by
    /// builds that no longer run (killed ones) are deleted first.
    /// Returns the private directory.
    pub fn set_scratch(
        &mut self,
        base: &Path,
        limits: ScratchLimits,
    ) -> Result<PathBuf, SnapshotError> {
        let refuse = |reason: String| SnapshotError::Scratch {
            dir: base.to_owned(),
            reason,
        };
        if self.mode != RootfsMode::KernelOverlay {
            return Err(refuse(format!(
                "only kernel overlayfs roots use a scratch, and RUN steps use {:?}",
                self.mode
            )));
        }
        remove_stale(base, &self.idmap);
        let dir = self.unique_with(base, PREFIX.trim_end_matches('-'), 0o700)?;
        let made = (|| {
            for sub in ["work", "layers", "tmp"] {
                let p = dir.join(sub);
                fs::create_dir(&p).map_err(io_err("creating", &p))?;
            }
            // Opaque directories are xattrs on the upper directory: an
            // overlay on a filesystem without them mounts, but gets
            // replaced directories wrong.
            let name = if self.idmap.needs_userns() {
                "user.kiln.probe"
            } else {
                "trusted.kiln.probe"
            };
            rustix::fs::setxattr(&dir, name, b"y", rustix::fs::XattrFlags::empty())
                .map_err(|e| refuse(format!("no {name} extended attributes: {e}")))?;
            let probe = dir.join("tmp").join("probe");
            sandbox::probe_overlay(&self.idmap, &probe)
                .map_err(|e| refuse(format!("overlayfs refuses an upper directory here: {e}")))?;
            let start = space(&dir)?;
            if start.free < limits.min_free {
                return Err(refuse(format!(
                    "{} MiB free, less than the {} MiB a step needs to start there",
                    start.free / MIB,
                    limits.min_free / MIB
                )));
            }
            Ok(start)
        })();
        let start = match made {
            Ok(s) => s,
            Err(e) => {
                let _ = sandbox::remove_tree(&self.idmap, &dir);
                return Err(e);
            }
        };
        self.scratch = Some(Arc::new(Scratch {
            dir: dir.clone(),
            limits,
            free_at_start: start.free,
            budget: limits.budget.unwrap_or(start.free / 2),
            idmap: self.idmap.clone(),
            volatile: Mutex::new(HashMap::new()),
            removed: AtomicBool::new(false),
        }));
        Ok(dir)
    }

    /// The build's private scratch directory, while there is one.
    pub fn scratch_dir(&self) -> Option<&Path> {
        self.scratch
            .as_ref()
            .filter(|s| !s.removed.load(Ordering::Acquire))
            .map(|s| s.dir.as_path())
    }

    /// Deletes the scratch directory with every volatile snapshot in it;
    /// later steps use the disk. Call it when the build ends (it is done
    /// when the last clone of the store is dropped, too).
    pub fn clear_scratch(&self) -> Result<(), SnapshotError> {
        match &self.scratch {
            Some(s) => s.remove(),
            None => Ok(()),
        }
    }

    /// A workspace like [`Store::workspace`]'s, but never in the scratch.
    pub fn disk_workspace(&self, diff_ids: &[String]) -> Result<Workspace, SnapshotError> {
        self.make_workspace(diff_ids, false)
    }

    /// The volatile snapshot of `diff_id`, if the build made one.
    pub(super) fn volatile_dir(&self, diff_id: &str) -> Option<PathBuf> {
        let s = self.scratch.as_ref()?;
        let found = s.volatile().get(diff_id).cloned();
        found
    }

    /// Where a new workspace's directories go: the scratch when it has
    /// room, else `None` (the store's own `work/`).
    pub(super) fn scratch_for_step(&self) -> Option<(PathBuf, ScratchWatch)> {
        let s = self.scratch.as_ref()?;
        if self.mode != RootfsMode::KernelOverlay || !s.has_room() {
            return None;
        }
        let watch = ScratchWatch {
            scratch: Arc::clone(s),
            low_free: AtomicU64::new(u64::MAX),
            low_inodes: AtomicU64::new(u64::MAX),
        };
        watch.sample();
        Some((s.dir.join("work"), watch))
    }

    /// [`Store::commit`] for a workspace in the scratch: its upper
    /// directory becomes the volatile snapshot of `diff_id`.
    pub(super) fn commit_volatile(
        &self,
        ws: Workspace,
        diff_id: &str,
    ) -> Result<PathBuf, SnapshotError> {
        let persistent = self.persistent_dir(diff_id)?;
        let Some(s) = ws.scratch.as_ref().map(|w| Arc::clone(&w.scratch)) else {
            return Err(SnapshotError::CommitUnsupported);
        };
        let mut volatile = s.volatile();
        if let Some(p) = volatile.get(diff_id).cloned() {
            drop(volatile);
            ws.discard()?;
            return Ok(p);
        }
        if persistent.is_dir() {
            drop(volatile);
            ws.discard()?;
            return Ok(persistent);
        }
        if s.removed.load(Ordering::Acquire) {
            drop(volatile);
            let _ = ws.discard();
            return Err(SnapshotError::Scratch {
                dir: s.dir.clone(),
                reason: "the build's scratch was already deleted".into(),
            });
        }
        let name = diff_id.replace(':', "-");
        let dest = s.dir.join("layers").join(name);
        if let Err(e) = sandbox::rename_dir(&ws.idmap, &ws.upper, &dest) {
            drop(volatile);
            let _ = ws.discard();
            return Err(e.into());
        }
        volatile.insert(diff_id.to_string(), dest.clone());
        drop(volatile);
        ws.discard()?;
        Ok(dest)
    }

    pub(super) fn unique_with(
        &self,
        base: &Path,
        prefix: &str,
        mode: u32,
    ) -> Result<PathBuf, SnapshotError> {
        static N: AtomicU64 = AtomicU64::new(0);
        loop {
            let p = base.join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::DirBuilder::new().mode(mode).create(&p) {
                Ok(()) => return Ok(p),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("creating", &p)(e)),
            }
        }
    }
}

/// Deletes this user's scratch directories in `base` whose build process is
/// gone (killed before it could clean up): they would hold memory until
/// the next reboot.
fn remove_stale(base: &Path, idmap: &IdMap) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    let me = rustix::process::geteuid().as_raw();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = e.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sandbox::remove_tree(idmap, &e.path());
        }
    }
}

impl Workspace {
    /// True when the workspace's directories are in the store's scratch.
    pub fn on_scratch(&self) -> bool {
        self.scratch.is_some()
    }

    /// True (for a scratch workspace) when, while the workspace existed and
    /// as far as the samples saw, the scratch's free space (or inodes) fell
    /// below [`ScratchLimits::margin`] or the build's use of it went over
    /// [`ScratchLimits::budget`]. The step may then have met ENOSPC, or
    /// takes more memory than it may: stop it if it still runs, discard the
    /// workspace and run the step again in a [`Store::disk_workspace`].
    pub fn scratch_filled(&self) -> bool {
        let Some(w) = &self.scratch else {
            return false;
        };
        w.sample();
        let s = &w.scratch;
        let low = w.low_free.load(Ordering::Relaxed);
        low < s.limits.margin
            || s.free_at_start.saturating_sub(low) > s.budget
            || w.low_inodes.load(Ordering::Relaxed) < s.limits.inode_margin
    }
}
