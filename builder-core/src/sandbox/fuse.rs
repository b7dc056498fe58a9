//! The fuse-overlayfs fallback root: where kernel overlayfs is refused but
//! `/dev/fuse` can be opened, the step's root is mounted by the
//! `fuse-overlayfs` program, started by pid 1 inside the step's namespaces
//! before `pivot_root`. Its daemon lives in the step's pid namespace, so it
//! dies (and the mount with the mount namespace) when the step ends.
use std::ffi::{c_char, c_int, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::plan::cstr;
use super::SandboxError;

/// The program and its argv, prepared before the fork.
pub(crate) struct FusePlan {
    pub prog: CString,
    /// The mount point (the run directory's `merged`).
    pub target: CString,
    pub _argv: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
}

/// Finds `fuse-overlayfs` on the host's `PATH`.
pub(crate) fn find_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| super::DEFAULT_PATH.into());
    std::env::split_paths(&path)
        .map(|d| d.join("fuse-overlayfs"))
        .find(|p| p.is_file())
}

/// `fuse-overlayfs -o lowerdir=…,upperdir=…,workdir=…,allow_other target`.
/// fuse-overlayfs splits its options on `,` and layers on `:`, so paths
/// holding either are refused (store paths never do).
pub(crate) fn plan(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<FusePlan, SandboxError> {
    let prog = find_program().ok_or_else(|| {
        SandboxError::Spec(
            "fuse-overlayfs root requested but the fuse-overlayfs program is not on PATH".into(),
        )
    })?;
    let bad = |p: &Path| {
        p.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b':'))
    };
    if let Some(p) = lowers
        .iter()
        .map(PathBuf::as_path)
        .chain([upper, work])
        .find(|p| bad(p))
    {
        return Err(SandboxError::Spec(format!(
            "fuse-overlayfs cannot take the path {} (contains ',' or ':')",
            p.display()
        )));
    }
    let mut opts = b"lowerdir=".to_vec();
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            opts.push(b':');
        }
        opts.extend_from_slice(l.as_os_str().as_bytes());
    }
    opts.extend_from_slice(b",upperdir=");
    opts.extend_from_slice(upper.as_os_str().as_bytes());
    opts.extend_from_slice(b",workdir=");
    opts.extend_from_slice(work.as_os_str().as_bytes());
    // Steps switch to other users (USER); without allow_other FUSE lets
    // only the mounting user in.
    opts.extend_from_slice(b",allow_other");
    let argv = vec![
        cstr(b"fuse-overlayfs", "argv")?,
        cstr(b"-o", "argv")?,
        cstr(&opts, "fuse-overlayfs options")?,
        cstr(target.as_os_str().as_bytes(), "root")?,
    ];
    let argv_ptrs = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    Ok(FusePlan {
        prog: cstr(prog.as_os_str().as_bytes(), "fuse-overlayfs path")?,
        target: cstr(target.as_os_str().as_bytes(), "root")?,
        _argv: argv,
        argv_ptrs,
    })
}

/// Runs fuse-overlayfs and waits for its foreground process, which exits
/// once the file system is mounted (the daemon goes on in the background).
/// Returns its wait status, or -1 when it could not be started.
///
/// # Safety
/// Post-fork context: only async-signal-safe calls on memory prepared
/// before the fork. `stdin` and `stderr` are open descriptors.
pub(crate) unsafe fn mount(f: &FusePlan, stdin: c_int, stderr: c_int) -> c_int {
    // The daemon gets its own mount namespace, so that pid 1's pivot_root
    // and detach of the old root leave its view of the layers (and its
    // `/proc/self/fd`) alone; the mount reaches pid 1 by propagation
    // through a shared bind of the target, made private again afterwards
    // (pivot_root refuses shared mounts).
    let t = f.target.as_ptr();
    let null = std::ptr::null();
    if libc::mount(t, t, null, libc::MS_BIND, null.cast()) != 0
        || libc::mount(null, t, null, libc::MS_SHARED, null.cast()) != 0
    {
        return -1;
    }
    let pid = libc::fork();
    if pid < 0 {
        return -1;
    }
    if pid == 0 {
        // Its messages (e.g. no access to /dev/fuse) go to the step's
        // stderr; nothing else of ours stays open in the daemon.
        if libc::dup2(stdin, 0) < 0 || libc::dup2(stderr, 1) < 0 || libc::dup2(stderr, 2) < 0 {
            libc::_exit(126);
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            libc::_exit(125);
        }
        let env: [*const c_char; 2] = [
            c"PATH=/usr/sbin:/usr/bin:/sbin:/bin".as_ptr(),
            std::ptr::null(),
        ];
        libc::execve(f.prog.as_ptr(), f.argv_ptrs.as_ptr(), env.as_ptr());
        libc::_exit(127);
    }
    let mut status: c_int = 0;
    loop {
        let r = libc::waitpid(pid, &mut status, 0);
        if r == pid {
            // From the top: the shared bind lies under the new mount.
            let root = c"/".as_ptr();
            if libc::mount(
                null,
                root,
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                null.cast(),
            ) != 0
            {
                return -1;
            }
            return status;
        }
        if r < 0 && *libc::__errno_location() != libc::EINTR {
            return -1;
        }
    }
}
