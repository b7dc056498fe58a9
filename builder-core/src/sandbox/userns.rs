//! Short-lived helpers inside a user namespace with kiln's id map: giving
//! extracted files their container owners and removing trees whose files
//! belong to subordinate ids.
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::child::{self, Fds, Stage, UsernsTask};
use super::idmap::userns_hint;
use super::plan::{cstr, handshake, io_err, pipe};
use super::{CollectOutput, IdMap, Rootfs, SandboxError, Spec};

/// Runs `task` inside a new user namespace with `idmap`'s maps.
pub(crate) fn run_in_userns(idmap: &IdMap, task: &UsernsTask) -> Result<(), SandboxError> {
    let (fail_r, fail_w) = pipe()?;
    let (sync_r, sync_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let fds = Fds {
        stdin: -1,
        stdout: -1,
        stderr: -1,
        error: fail_w.as_raw_fd(),
        stubs: -1,
        status: -1,
        sync_w: sync_w.as_raw_fd(),
        go_r: go_r.as_raw_fd(),
    };
    // SAFETY: the child only runs `userns_child` (async-signal-safe calls on
    // memory prepared above) and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io_err("forking", Path::new("-"))(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child.
        unsafe { child::userns_child(fds, task, idmap.needs_userns()) }
    }
    drop((fail_w, sync_w, go_r));
    let map_result = handshake(idmap, pid, &sync_r, &go_w);
    drop(go_w);
    let mut rec = [0u8; 12];
    // SAFETY: reading into a stack buffer from our pipe; EOF means success.
    let n = unsafe { libc::read(fail_r.as_raw_fd(), rec.as_mut_ptr().cast(), rec.len()) };
    let mut wstatus = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut wstatus, 0) };
    map_result?;
    let word = |i: usize| {
        rec.get(i..i + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_ne_bytes)
    };
    if n == 12 {
        let err = io::Error::from_raw_os_error(word(4) as i32);
        if Stage::from_u32(word(0)) == Some(Stage::UserNs) {
            return Err(SandboxError::UserNamespace {
                errno: err,
                hint: userns_hint(),
            });
        }
        let what = match task {
            UsernsTask::Chown(list) => {
                list.get(word(8) as usize)
                    .map_or_else(String::new, |(p, uid, gid, _)| {
                        // The usual cause: an owner past the subordinate ranges
                        // (`COPY --chown=70000` with the common 65536 ids).
                        let unmapped =
                            idmap.host_uid(*uid).is_none() || idmap.host_gid(*gid).is_none();
                        let hint = if unmapped {
                            format!(
                                " (owner {uid}:{gid} is outside the ids this user may map: \
                             more in /etc/subuid and /etc/subgid)"
                            )
                        } else {
                            String::new()
                        };
                        format!("changing owner of {}{hint}", p.to_string_lossy())
                    })
            }
            UsernsTask::SetCap(list) => list
                .get(word(8) as usize)
                .map_or_else(String::new, |(p, _)| {
                    format!("setting security.capability of {}", p.to_string_lossy())
                }),
            UsernsTask::Exec { argv, .. } => format!("running {:?}", argv.first()),
            UsernsTask::ProbeOverlay { .. } => "mounting a test overlay".into(),
        };
        return Err(SandboxError::Setup {
            stage: what,
            errno: err,
        });
    }
    if !libc::WIFEXITED(wstatus) || libc::WEXITSTATUS(wstatus) != 0 {
        return Err(SandboxError::Setup {
            stage: "in the user namespace helper".into(),
            errno: io::Error::other(format!("wait status {wstatus}")),
        });
    }
    Ok(())
}

/// Changes owners (container ids) and modes of host paths from inside a user
/// namespace with `idmap`, where the unprivileged user may do so.
pub(crate) fn chown_in_userns(
    idmap: &IdMap,
    list: &[(PathBuf, u32, u32, Option<u32>)],
) -> Result<(), SandboxError> {
    let list = list
        .iter()
        .map(|(p, u, g, m)| Ok((cstr(p.as_os_str().as_bytes(), "path")?, *u, *g, *m)))
        .collect::<Result<Vec<_>, SandboxError>>()?;
    run_in_userns(idmap, &UsernsTask::Chown(list))
}

/// Sets `security.capability` on host paths from inside a user namespace
/// with `idmap` (see [`UsernsTask::SetCap`]).
pub(crate) fn set_capabilities_in_userns(
    idmap: &IdMap,
    list: &[(PathBuf, Vec<u8>)],
) -> Result<(), SandboxError> {
    let list = list
        .iter()
        .map(|(p, v)| Ok((cstr(p.as_os_str().as_bytes(), "path")?, v.clone())))
        .collect::<Result<Vec<_>, SandboxError>>()?;
    run_in_userns(idmap, &UsernsTask::SetCap(list))
}

/// Removes a directory tree, entering the user namespace when its files may
/// belong to subordinate ids the unprivileged user cannot delete.
pub fn remove_tree(idmap: &IdMap, path: &Path) -> Result<(), SandboxError> {
    if !path.exists() && fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if !idmap.needs_userns() {
        return fs::remove_dir_all(path).map_err(io_err("removing", path));
    }
    rm_in_userns(idmap, b"-rf", path)
}

/// Renames a directory tree to `to` (same file system). Moving a directory
/// to another parent needs write permission on the directory itself (for
/// its `..`); when a step left the tree's top owned by a subordinate id
/// with no write bit for others (`RUN chmod 700 / && chown 1 /`), only
/// container root may move it, so the rename is retried as that.
pub fn rename_dir(idmap: &IdMap, from: &Path, to: &Path) -> Result<(), SandboxError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e)
            if idmap.needs_userns()
                && matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) =>
        {
            exec_in_userns(
                idmap,
                &[
                    b"/bin/mv",
                    b"-T",
                    b"--",
                    from.as_os_str().as_bytes(),
                    to.as_os_str().as_bytes(),
                ],
            )
        }
        Err(e) => Err(io_err("renaming", from)(e)),
    }
}

/// Removes one empty directory or file as container root (`rm -d`).
pub(crate) fn remove_in_userns(idmap: &IdMap, path: &Path) -> Result<(), SandboxError> {
    rm_in_userns(idmap, b"-df", path)
}

/// Runs `/bin/rm FLAGS -- PATH` as container root.
fn rm_in_userns(idmap: &IdMap, flags: &[u8], path: &Path) -> Result<(), SandboxError> {
    exec_in_userns(
        idmap,
        &[b"/bin/rm", flags, b"--", path.as_os_str().as_bytes()],
    )
}

/// Runs the program `argv[0]` (an absolute path) with `argv` as container
/// root, and waits for it to succeed.
fn exec_in_userns(idmap: &IdMap, argv: &[&[u8]]) -> Result<(), SandboxError> {
    let argv = argv
        .iter()
        .map(|a| cstr(a, "argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let argv_ptrs = argv
        .iter()
        .map(|c| c.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    run_in_userns(idmap, &UsernsTask::Exec { argv, argv_ptrs })
}

/// Checks that kernel overlayfs can be mounted the way steps mount it
/// (inside the user namespace when unprivileged), using empty directories
/// created under `scratch`.
///
/// Also finds out whether the kernel takes overlay's `volatile` option
/// (Linux 5.10), which step roots then use: see [`overlay_volatile`].
pub fn probe_overlay(idmap: &IdMap, scratch: &Path) -> Result<(), SandboxError> {
    let volatile = probe_overlay_with(idmap, scratch, true);
    OVERLAY_VOLATILE.store(volatile.is_ok(), Ordering::Relaxed);
    match volatile {
        Ok(()) => Ok(()),
        Err(_) => probe_overlay_with(idmap, scratch, false),
    }
}

/// Whether [`probe_overlay`] found that overlay mounts take `volatile`:
/// the kernel then ignores the step's `fsync` and `syncfs` calls on its
/// upper directory, as Buildah's build containers do. A step's writes need
/// no durability (a crashed step is thrown away), and a committed
/// snapshot's is seen to by the snapshot store.
pub fn overlay_volatile() -> bool {
    OVERLAY_VOLATILE.load(Ordering::Relaxed)
}

static OVERLAY_VOLATILE: AtomicBool = AtomicBool::new(false);

fn probe_overlay_with(idmap: &IdMap, scratch: &Path, volatile: bool) -> Result<(), SandboxError> {
    let dirs = ["l", "u", "w", "m"].map(|d| scratch.join(d));
    for d in &dirs {
        fs::create_dir_all(d).map_err(io_err("creating", d))?;
    }
    let [l, u, w, m] = &dirs;
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        l.display(),
        u.display(),
        w.display()
    );
    if idmap.needs_userns() {
        opts.push_str(",userxattr");
    }
    if volatile {
        opts.push_str(",volatile");
    }
    let task = UsernsTask::ProbeOverlay {
        target: cstr(m.as_os_str().as_bytes(), "path")?,
        opts: cstr(opts.as_bytes(), "options")?,
    };
    let r = run_in_userns(idmap, &task);
    let _ = remove_tree(idmap, scratch);
    r
}

/// Mounts a test fuse-overlayfs root the way a step would (inside the
/// step's namespaces, as container root) in `scratch`, which is removed
/// afterwards. Fails when the program is missing or cannot mount, most often
/// because `/dev/fuse` cannot be opened (it is often 0600 root, or absent in
/// containers); the error carries fuse-overlayfs's own message.
pub fn probe_fuse_overlay(idmap: &IdMap, scratch: &Path) -> Result<(), SandboxError> {
    let dirs = ["l", "u", "w"].map(|d| scratch.join(d));
    for d in &dirs {
        fs::create_dir_all(d).map_err(io_err("creating", d))?;
    }
    let [l, u, w] = dirs;
    // The root is empty, so a mounted root ends in "not found" at exec.
    let spec = Spec::new(
        Rootfs::FuseOverlay {
            lowers: vec![l],
            upper: u,
            work: w,
        },
        vec!["/kiln-fuse-probe".into()],
    );
    let mut out = CollectOutput::default();
    let r = super::run(&spec, idmap, &mut out);
    let _ = remove_tree(idmap, scratch);
    match r {
        Ok(_) | Err(SandboxError::Exec { .. }) => Ok(()),
        Err(SandboxError::Setup { stage, errno }) => Err(SandboxError::Setup {
            stage: format!("{stage}: {}", String::from_utf8_lossy(&out.stderr).trim()),
            errno,
        }),
        Err(e) => Err(e),
    }
}
