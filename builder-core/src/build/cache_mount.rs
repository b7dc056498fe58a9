//! `RUN --mount=type=cache`: which directory of the store a mount binds
//! (named by a digest of its id and options, never by the id itself),
//! `sharing=...` across steps and kiln processes, and caches seeded from a
//! `from=` stage or image.
//!
//! Every use of a cache directory holds an `flock` on its lock file
//! (`run-cache-locks/NAME.lock` in the store's caches) for the whole step: `shared` a shared lock, `locked` an
//! exclusive one (so locked steps run one at a time, also across kiln
//! processes on one store, and wait for shared users to finish), `private`
//! an exclusive one taken without waiting: when the directory is in use the
//! step gets a separate instance (`NAME-private-N`), as BuildKit gives a
//! private mount a new cache when the existing one is busy. A shared step
//! waits while a locked or private step holds the main directory.
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::instructions::{Mount, ShareMode};
use crate::sandbox::IdMap;
use crate::store::Store;

/// What [`source`] needs of the runner: the store the caches live in, the
/// id map their owners are set through, and where warnings go.
pub(super) struct CacheRoots<'a> {
    pub store: &'a Store,
    pub idmap: &'a IdMap,
    pub warn: &'a dyn Fn(String),
}

/// The host directory a `type=cache` mount `m` binds, locked in `locks`
/// for the step as its `sharing` asks (waiting while `cancelled` says
/// no). `seed` is the root of its `from=` stage or image, if any.
pub(super) fn source(
    roots: &CacheRoots<'_>,
    m: &Mount,
    seed: Option<&Path>,
    locks: &mut CacheLocks,
    cancelled: &dyn Fn() -> bool,
) -> Result<PathBuf, String> {
    let id = if m.id.is_empty() {
        m.target.clone()
    } else {
        m.id.clone()
    };
    // `source=` mounts that path of the cache; BuildKit then leaves
    // uid/gid/mode aside.
    let sub = super::fsview::clean(&m.source);
    // BuildKit keys a cache on its id and the directory it starts from, so
    // each uid/gid/mode is a separate cache, and so is each `from=`
    // content it is seeded with.
    let owned = sub.is_empty() && (m.uid.is_some() || m.gid.is_some() || m.mode.is_some());
    let seed = seed.filter(|_| !owned);
    let mut key = if owned {
        format!(
            "{id}\0{}:{}:{:o}",
            m.uid.unwrap_or(0),
            m.gid.unwrap_or(0),
            m.mode.unwrap_or(0o755)
        )
    } else {
        id
    };
    if let Some(root) = seed {
        key.push_str("\0from:");
        key.push_str(&root.file_name().unwrap_or_default().to_string_lossy());
    }
    // The id only ever names a cache through its digest, so no id (`../..`,
    // `/etc`) can lead out of the store.
    let name = format!(
        "run-cache-{}",
        super::images::sha256_digest(key.as_bytes()).trim_start_matches("sha256:")
    );
    let lock_dir = roots
        .store
        .cache_dir("run-cache-locks")
        .map_err(|e| e.to_string())?;
    // `source=` is resolved on the host and then bound by path: a shared
    // user of the cache could swap a directory on that path for a symlink
    // in between, so such a mount holds the cache alone (as `locked`).
    let sharing = match m.sharing_or_default() {
        ShareMode::Shared if !sub.is_empty() => ShareMode::Locked,
        other => other,
    };
    let name = locks.acquire(&lock_dir, &name, sharing, cancelled)?;
    let dir = if owned {
        owned_dir(roots, &name, m.uid, m.gid, m.mode)?
    } else if let Some(root) = seed {
        seeded_dir(roots.store, &name, root)?
    } else {
        roots.store.cache_dir(&name).map_err(|e| e.to_string())?
    };
    // Resolved inside the cache: a link a step left there cannot lead out
    // of it.
    if sub.is_empty() {
        Ok(dir)
    } else {
        super::run::resolve_in(&dir, &sub)
    }
}

/// The cache directory `name`, created (once) owned by `uid`:`gid` with
/// `mode` as a cache mount's options ask; it is prepared under a temporary
/// name and renamed into place so a half-set-up directory is never used.
fn owned_dir(
    roots: &CacheRoots<'_>,
    name: &str,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
) -> Result<PathBuf, String> {
    let tmp = roots
        .store
        .cache_dir(&format!("{name}.new-{}", std::process::id()))
        .map_err(|e| e.to_string())?;
    let dir = tmp.with_file_name(name);
    if dir.is_dir() {
        let _ = std::fs::remove_dir(&tmp);
        return Ok(dir);
    }
    let err = |e: std::io::Error| format!("{}: {e}", tmp.display());
    use std::os::unix::fs::PermissionsExt;
    let mode = mode.unwrap_or(0o755) & 0o7777;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    let (u, g) = (uid.unwrap_or(0), gid.unwrap_or(0));
    match (roots.idmap.host_uid(u), roots.idmap.host_gid(g)) {
        (Some(hu), Some(hg)) => {
            // Rootless, a subordinate id is only reachable from inside the
            // user namespace.
            let owned = std::os::unix::fs::chown(&tmp, Some(hu), Some(hg))
                .map_err(|e| e.to_string())
                .or_else(|e| {
                    crate::sandbox::chown_in_userns(roots.idmap, &[(tmp.clone(), u, g, Some(mode))])
                        .map_err(|e2| format!("{e}; in the user namespace: {e2}"))
                });
            if let Err(e) = owned {
                (roots.warn)(format!(
                    "cache mount {name}: cannot give it to {u}:{g}: {e}"
                ));
            }
        }
        _ => (roots.warn)(format!("cache mount {name}: {u}:{g} is not mapped")),
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another build prepared it meanwhile.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir(&tmp);
            Ok(dir)
        }
        Err(e) => Err(err(e)),
    }
}

/// How many private instances of one cache are tried before giving up.
const MAX_PRIVATE: usize = 1024;

/// The cache locks one step holds; released when dropped.
#[derive(Default)]
pub(super) struct CacheLocks {
    held: Vec<(String, File)>,
}

impl CacheLocks {
    /// Locks cache `name` (a directory name under `dir`) as `sharing`
    /// asks, waiting where the mode waits; returns the name of the
    /// directory instance the step should use.
    /// While it waits it asks `cancelled` every 50 ms and gives up once it
    /// says yes (another step failed, Ctrl-C).
    pub(super) fn acquire(
        &mut self,
        dir: &Path,
        name: &str,
        sharing: ShareMode,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<String, String> {
        let mine = |n: &str, held: &[(String, File)]| held.iter().any(|(h, _)| h == n);
        match sharing {
            ShareMode::Shared | ShareMode::Locked => {
                // A step mounting one cache twice must not wait for itself.
                if mine(name, &self.held) {
                    return Ok(name.to_string());
                }
                let op = if sharing == ShareMode::Shared {
                    libc::LOCK_SH
                } else {
                    libc::LOCK_EX
                };
                let f = open_lock(dir, name)?;
                loop {
                    match flock(&f, op | libc::LOCK_NB) {
                        Ok(()) => break,
                        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                            if cancelled() {
                                return Err(format!("cancelled while waiting for cache {name}"));
                            }
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                        Err(e) => return Err(format!("locking cache {name}: {e}")),
                    }
                }
                self.held.push((name.to_string(), f));
                Ok(name.to_string())
            }
            ShareMode::Private => {
                for n in 0..MAX_PRIVATE {
                    let inst = if n == 0 {
                        name.to_string()
                    } else {
                        format!("{name}-private-{n}")
                    };
                    if mine(&inst, &self.held) {
                        continue;
                    }
                    let f = open_lock(dir, &inst)?;
                    match flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
                        Ok(()) => {
                            self.held.push((inst.clone(), f));
                            return Ok(inst);
                        }
                        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => continue,
                        Err(e) => return Err(format!("locking cache {inst}: {e}")),
                    }
                }
                Err(format!(
                    "cache {name}: all {MAX_PRIVATE} private instances are in use"
                ))
            }
        }
    }
}

fn lock_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.lock"))
}

fn open_lock(dir: &Path, name: &str) -> Result<File, String> {
    let p = lock_path(dir, name);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn flock(f: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The cache directory `name` in `store`, made once as a copy of `seed`
/// (a cache mount's `from=` stage or image, flattened); later uses see
/// what earlier steps left in it. Prepared under a temporary name and
/// renamed into place, so a half-copied cache is never used.
fn seeded_dir(store: &Store, name: &str, seed: &Path) -> Result<PathBuf, String> {
    // Two steps of one build may seed the same cache at once (`shared`
    // lets both in): each copies into its own temporary directory.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = store
        .cache_dir(&format!("{name}.new-{}-{seq}", std::process::id()))
        .map_err(|e| e.to_string())?;
    let dir = tmp.with_file_name(name);
    if dir.is_dir() {
        let _ = std::fs::remove_dir(&tmp);
        return Ok(dir);
    }
    if let Err(e) = copy_tree(seed, &tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!(
            "cache mount {name}: seeding from {}: {e}",
            seed.display()
        ));
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another build seeded it meanwhile.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(format!("{}: {e}", tmp.display())),
    }
}

/// Copies the tree at `src` into the existing directory `dst`: files,
/// directories and symlinks with their permission bits (and owners when
/// running as root, as the flattened stage has them); other kinds (fifos,
/// sockets, devices) are left out. Directory modes are set after their
/// contents, so a read-only directory can still be filled.
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let as_root = rustix::process::geteuid().is_root();
    let own = |path: &Path, md: &std::fs::Metadata| -> std::io::Result<()> {
        if as_root {
            std::os::unix::fs::lchown(path, Some(md.uid()), Some(md.gid()))?;
        }
        Ok(())
    };
    let mut dirs = vec![(src.to_path_buf(), dst.to_path_buf())];
    let mut modes = Vec::new();
    while let Some((from, to)) = dirs.pop() {
        let md = std::fs::symlink_metadata(&from)?;
        own(&to, &md)?;
        modes.push((to.clone(), md.permissions().mode() & 0o7777));
        for entry in std::fs::read_dir(&from)? {
            let entry = entry?;
            let (s, d) = (entry.path(), to.join(entry.file_name()));
            let md = std::fs::symlink_metadata(&s)?;
            let ft = md.file_type();
            if ft.is_dir() {
                std::fs::create_dir(&d)?;
                dirs.push((s, d));
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&s)?, &d)?;
                own(&d, &md)?;
            } else if ft.is_file() {
                std::fs::copy(&s, &d)?;
                own(&d, &md)?;
                // chown clears set-id bits; put the whole mode back.
                std::fs::set_permissions(
                    &d,
                    std::fs::Permissions::from_mode(md.permissions().mode() & 0o7777),
                )?;
            }
        }
    }
    for (dir, mode) in modes.into_iter().rev() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_gets_a_new_instance_while_the_cache_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = CacheLocks::default();
        let mut b = CacheLocks::default();
        assert_eq!(
            a.acquire(dir.path(), "c", ShareMode::Private, &|| false)
                .unwrap(),
            "c"
        );
        assert_eq!(
            b.acquire(dir.path(), "c", ShareMode::Private, &|| false)
                .unwrap(),
            "c-private-1"
        );
        // The same step mounting a private cache twice gets two instances.
        assert_eq!(
            b.acquire(dir.path(), "c", ShareMode::Private, &|| false)
                .unwrap(),
            "c-private-2"
        );
        drop(a);
        let mut c = CacheLocks::default();
        assert_eq!(
            c.acquire(dir.path(), "c", ShareMode::Private, &|| false)
                .unwrap(),
            "c"
        );
    }

    #[test]
    fn shared_users_coexist_and_locked_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = CacheLocks::default();
        let mut b = CacheLocks::default();
        a.acquire(dir.path(), "c", ShareMode::Shared, &|| false)
            .unwrap();
        b.acquire(dir.path(), "c", ShareMode::Shared, &|| false)
            .unwrap();
        // One step mounting a cache twice does not wait for itself.
        b.acquire(dir.path(), "c", ShareMode::Locked, &|| false)
            .unwrap();
        let path = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let mut l = CacheLocks::default();
            l.acquire(&path, "c", ShareMode::Locked, &|| false).unwrap();
            tx.send(()).unwrap();
        });
        let waited = rx.recv_timeout(std::time::Duration::from_millis(300));
        assert!(waited.is_err(), "locked got the cache while others held it");
        drop((a, b));
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("locked proceeds once the cache is free");
        t.join().unwrap();
    }

    #[test]
    fn a_step_waiting_for_a_locked_cache_gives_up_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = CacheLocks::default();
        holder
            .acquire(dir.path(), "c", ShareMode::Locked, &|| false)
            .unwrap();
        let mut waiter = CacheLocks::default();
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let err = waiter
            .acquire(dir.path(), "c", ShareMode::Locked, &|| {
                asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 2
            })
            .unwrap_err();
        assert!(err.contains("cancelled"), "{err}");
        drop(holder);
        waiter
            .acquire(dir.path(), "c", ShareMode::Locked, &|| false)
            .unwrap();
    }
}
