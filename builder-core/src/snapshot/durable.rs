//! Snapshots that a crash may have emptied are never served.
//!
//! A layer directory is written without `fsync`: an extraction, or a step's
//! upper directory (mounted `volatile`, so the step's own `fsync` calls are
//! skipped too). Syncing each one would cost the build what it writes a
//! second time. Instead, before a directory is renamed into `layers/`, a
//! record `pending/<algorithm>-<hex>` holding the kernel's boot id is
//! written. The first process to open the store (the only one, so nothing
//! is using the snapshots) settles the records:
//! - made in an earlier boot: the machine went down before the data was
//!   known to be on disk, so the directory moves to the trash and is
//!   extracted again from its blob (which is fsynced) when next needed;
//! - made in this boot more than [`SETTLE_AFTER`] ago: one `syncfs` of the
//!   store's filesystem makes them durable (the kernel has usually written
//!   them back already, so it is cheap), and the records go. `syncfs`
//!   also waits for every other process's dirty data on that filesystem,
//!   so while the machine holds more than [`BUSY_DIRTY`] of it the records
//!   are left for a later process: keeping them costs nothing until a
//!   reboot, and a build should not start by flushing someone else's
//!   writes.
//!
//! Without a readable boot id nothing is recorded and every directory is
//! trusted, as before.
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::sandbox::{self, IdMap};

/// Records younger than this are left for a later process: their data is
/// probably still being written back, so a `syncfs` now would wait for it.
pub(super) const SETTLE_AFTER: Duration = Duration::from_secs(60);

/// Dirty and under-writeback page cache (from `/proc/meminfo`) above which
/// settling skips its `syncfs`.
pub(super) const BUSY_DIRTY: u64 = 64 << 20;

/// Bytes of page cache waiting to be written (`Dirty` + `Writeback` in a
/// `/proc/meminfo` text); `None` when neither line is there.
fn pending_writeback(meminfo: &str) -> Option<u64> {
    let mut total = None;
    for line in meminfo.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if key == "Dirty" || key == "Writeback" {
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            total = Some(total.unwrap_or(0) + kb * 1024);
        }
    }
    total
}

/// The kernel's id of the current boot.
fn boot_id() -> Option<String> {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

fn record_name(diff_id: &str) -> String {
    diff_id.replacen(':', "-", 1)
}

/// Notes, before `diff_id`'s directory is renamed into place, that its data
/// may not be on disk yet.
pub(super) fn record(store: &Path, diff_id: &str) -> std::io::Result<()> {
    let Some(id) = boot_id() else {
        return Ok(());
    };
    let pending = store.join("pending");
    fs::create_dir_all(&pending)?;
    let path = pending.join(record_name(diff_id));
    // Two steps of one build may extract the same layer at once and both
    // record it: each writes its own temporary file (the last rename wins,
    // with the same content).
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = pending.join(format!(
        ".{}.{}.{seq}",
        record_name(diff_id),
        std::process::id()
    ));
    fs::write(&tmp, id.as_bytes())?;
    fs::rename(&tmp, &path)
}

/// What [`settle`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Settled {
    /// Directories from an earlier boot moved to the trash.
    pub discarded: Vec<String>,
    /// Records of this boot made durable by a `syncfs`.
    pub synced: usize,
}

/// Settles the records (see the module's documentation). Call only while
/// no other process uses the store. `older_than` is [`SETTLE_AFTER`]
/// outside tests.
pub(super) fn settle(store: &Path, idmap: &IdMap, older_than: Duration) -> Settled {
    settle_with(store, idmap, older_than, &|| {
        fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| pending_writeback(&m))
            .is_some_and(|b| b > BUSY_DIRTY)
    })
}

/// [`settle`], asking `busy` whether the machine has too much data waiting
/// to be written for a `syncfs` now.
fn settle_with(
    store: &Path,
    idmap: &IdMap,
    older_than: Duration,
    busy: &dyn Fn() -> bool,
) -> Settled {
    let mut out = Settled::default();
    let Some(now_boot) = boot_id() else {
        return out;
    };
    let pending = store.join("pending");
    let Ok(entries) = fs::read_dir(&pending) else {
        return out;
    };
    let mut to_sync = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let path = e.path();
        if name.starts_with('.') {
            // A record whose rename never happened.
            let _ = fs::remove_file(&path);
            continue;
        }
        let Some((algo, hex)) = name.split_once('-') else {
            let _ = fs::remove_file(&path);
            continue;
        };
        let layer = store.join("layers").join(algo).join(hex);
        let boot = fs::read_to_string(&path).unwrap_or_default();
        if boot.trim() != now_boot {
            if layer.exists() {
                let dest = store.join("trash").join(format!("crashed-{name}"));
                if sandbox::rename_dir(idmap, &layer, &dest).is_err() {
                    // Left in place with its record: the next opener tries again.
                    continue;
                }
                out.discarded.push(format!("{algo}:{hex}"));
            }
            let _ = fs::remove_file(&path);
            continue;
        }
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        if age >= older_than {
            to_sync.push(path);
        }
    }
    if to_sync.is_empty() {
        return out;
    }
    if busy() {
        return out;
    }
    let synced = fs::File::open(store.join("layers"))
        .ok()
        .is_some_and(|dir| rustix::fs::syncfs(&dir).is_ok());
    if synced {
        for p in &to_sync {
            let _ = fs::remove_file(p);
        }
        out.synced = to_sync.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in ["layers/sha256", "trash"] {
            fs::create_dir_all(t.path().join(d)).unwrap();
        }
        t
    }

    #[test]
    fn a_record_from_an_earlier_boot_discards_its_directory() {
        let t = store();
        let s = t.path();
        let layer = s.join("layers/sha256/ab12");
        fs::create_dir(&layer).unwrap();
        fs::write(layer.join("f"), "").unwrap();
        record(s, "sha256:ab12").unwrap();
        // Same boot, too young: kept, record kept.
        assert_eq!(settle(s, &IdMap::Host, SETTLE_AFTER), Settled::default());
        assert!(s.join("pending/sha256-ab12").exists());
        fs::write(s.join("pending/sha256-ab12"), "another-boot\n").unwrap();
        let done = settle(s, &IdMap::Host, SETTLE_AFTER);
        assert_eq!(done.discarded, vec!["sha256:ab12".to_string()]);
        assert!(
            !layer.exists(),
            "an earlier boot's directory is not trusted"
        );
        assert!(s.join("trash/crashed-sha256-ab12/f").exists());
        assert!(!s.join("pending/sha256-ab12").exists());
    }

    #[test]
    fn writeback_is_read_from_meminfo() {
        let m = "MemTotal:       24000000 kB\nDirty:             66112 kB\n\
                 Writeback:          100 kB\nAnonPages:  1 kB\n";
        assert_eq!(pending_writeback(m), Some((66112 + 100) * 1024));
        assert_eq!(pending_writeback("MemTotal: 1 kB\n"), None);
        assert_eq!(pending_writeback("Dirty: lots kB\n"), None);
    }

    #[test]
    fn threads_recording_one_layer_at_once_all_succeed() {
        let t = store();
        let s = t.path();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..50).try_for_each(|_| record(s, "sha256:ee77"))))
                .collect();
            for w in workers {
                w.join().unwrap().unwrap();
            }
        });
        assert!(s.join("pending/sha256-ee77").exists());
        let left = fs::read_dir(s.join("pending")).unwrap().count();
        assert_eq!(left, 1, "no temporary file is left behind");
    }

    #[test]
    fn old_enough_records_of_this_boot_are_synced_and_dropped() {
        let t = store();
        let s = t.path();
        fs::create_dir(s.join("layers/sha256/cd34")).unwrap();
        record(s, "sha256:cd34").unwrap();
        // A record left by a process killed before its rename.
        fs::write(s.join("pending/.sha256-ef56.123"), "x").unwrap();
        // A machine with much data waiting to be written: left for later.
        let done = settle_with(s, &IdMap::Host, Duration::ZERO, &|| true);
        assert_eq!(done, Settled::default());
        assert!(s.join("pending/sha256-cd34").exists());
        let done = settle_with(s, &IdMap::Host, Duration::ZERO, &|| false);
        assert_eq!(done.synced, 1);
        assert!(done.discarded.is_empty());
        assert!(s.join("layers/sha256/cd34").is_dir(), "kept");
        assert_eq!(fs::read_dir(s.join("pending")).unwrap().count(), 0);
    }

    #[test]
    fn a_record_without_its_directory_just_goes() {
        let t = store();
        let s = t.path();
        record(s, "sha256:0099").unwrap();
        fs::write(s.join("pending/sha256-0099"), "another-boot").unwrap();
        assert_eq!(settle(s, &IdMap::Host, SETTLE_AFTER), Settled::default());
        assert!(!s.join("pending/sha256-0099").exists());
    }
}
