//! Everything between `fork()` and `execve()`.
//!
//! kiln's process is multithreaded (rayon, tokio, the test harness), so after
//! `fork()` only async-signal-safe operations are allowed: no allocation, no
//! locks, no std I/O. Every path, option string and argument vector is built
//! into a [`Plan`] before the fork; the children below only issue raw system
//! calls on that memory and report failures as fixed-size records over a pipe.
use std::ffi::{c_int, c_ulong, CString};
use std::ptr;

use libc::c_char;

use super::child_mounts::{mount_overlay_fs_api, run_op};

/// Where in the setup a child failed; sent to the parent with the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    UserNs = 1,
    WaitMaps,
    Unshare,
    Fork,
    Hostname,
    MakePrivate,
    MountRoot,
    OpenRoot,
    Target,
    Mount,
    Readonly,
    Symlink,
    PivotRoot,
    Caps,
    Creds,
    Stdio,
    Cwd,
    Exec,
    Chown,
    FuseMount,
    Seccomp,
}

impl Stage {
    pub(crate) fn from_u32(v: u32) -> Option<Stage> {
        use Stage::*;
        [
            UserNs,
            WaitMaps,
            Unshare,
            Fork,
            Hostname,
            MakePrivate,
            MountRoot,
            OpenRoot,
            Target,
            Mount,
            Readonly,
            Symlink,
            PivotRoot,
            Caps,
            Creds,
            Stdio,
            Cwd,
            Exec,
            Chown,
            FuseMount,
            Seccomp,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }
}

/// What to create when a mount target is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    Dir,
    File,
    /// Skip the op when the target does not exist (masking /proc files).
    Never,
}

/// One mount (or symlink) into the new root, resolved inside it.
pub(crate) struct Op {
    /// Path relative to the new root, NUL-terminated; the child walks it
    /// component by component by writing NULs into it temporarily.
    pub target: Vec<u8>,
    pub create: Create,
    /// Report created components so the parent can remove them afterwards.
    pub record: bool,
    /// Owner (container ids) of the components this op creates: BuildKit's
    /// executor makes a missing working directory as the step's user.
    pub owner: Option<(u32, u32)>,
    pub action: Action,
}

pub(crate) enum Action {
    /// Only make sure the target exists.
    Ensure,
    Mount {
        src: Option<CString>,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
        /// Tried when the mount is refused.
        alt: Option<Alt>,
        readonly: bool,
        /// Failure (after `alt`) is not an error.
        optional: bool,
    },
    Symlink {
        to: CString,
    },
}

pub(crate) enum Alt {
    /// Recursive bind of a host path, made read-only.
    RBindReadonly(CString),
    /// The same mount with other data.
    Data(CString),
}

/// Everything the children need, prepared before the fork.
pub(crate) struct Plan {
    pub userns: bool,
    pub setgroups: bool,
    pub ns_flags: c_int,
    pub hostname: CString,
    pub root: CString,
    /// `Some` mounts overlayfs at `root`; `None` bind-mounts `root` onto itself.
    pub overlay: Option<OverlayPlan>,
    /// `Some` mounts the root with fuse-overlayfs instead (then `overlay`
    /// is `None`).
    pub fuse: Option<super::fuse::FusePlan>,
    pub ops: Vec<Op>,
    /// Buffers for following a dangling symlink on a mount target.
    pub scratch: PathScratch,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub umask: u32,
    pub drop_caps: bool,
    /// The filter installed before the capabilities go (see `seccomp`).
    pub seccomp: Vec<super::seccomp::Insn>,
    pub _argv: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    pub _envp: Vec<CString>,
    pub envp_ptrs: Vec<*const c_char>,
    pub candidates: Vec<CString>,
    pub fds: Fds,
}

/// Buffers, allocated before the fork, in which the init child follows a
/// mount target through a symlink to a missing path (see `open_target`).
pub(crate) struct PathScratch {
    /// `readlinkat` result.
    pub link: Vec<u8>,
    /// The concatenated path before `.`/`..` are resolved.
    pub raw: Vec<u8>,
    /// The path being walked, NUL-terminated.
    pub path: Vec<u8>,
}

impl PathScratch {
    pub fn new() -> PathScratch {
        PathScratch {
            link: vec![0; libc::PATH_MAX as usize],
            raw: vec![0; 2 * libc::PATH_MAX as usize + 2],
            path: vec![0; 2 * libc::PATH_MAX as usize + 2],
        }
    }
}

/// An overlay mount, as one option string when it fits in a page (the
/// classic `mount(2)` limit) and as separate parameters for the new mount
/// API (`fsconfig` with `lowerdir+`, Linux 6.8) when it does not.
pub(crate) struct OverlayPlan {
    pub legacy: Option<CString>,
    pub lowers: Vec<CString>,
    /// `(key, value)` string parameters, e.g. `upperdir`, `index=off`.
    pub strings: Vec<(CString, CString)>,
    /// Flag parameters, e.g. `userxattr`.
    pub flags: Vec<CString>,
}

/// The pipe ends the children use (parent ends are closed in the children).
#[derive(Clone, Copy)]
pub(crate) struct Fds {
    pub stdin: c_int,
    pub stdout: c_int,
    pub stderr: c_int,
    /// Setup failures: `[stage u32, errno i32, index u32]`.
    pub error: c_int,
    /// Created mount points: `[op index u32, prefix length u32]`, or, with
    /// the index's top bit set, `[index, length]` and that many bytes of a
    /// path reached through a symlink.
    pub stubs: c_int,
    /// The step's wait status, written by the intermediate child.
    pub status: c_int,
    /// The intermediate child says it has created its user namespace.
    pub sync_w: c_int,
    /// The parent says the maps are written.
    pub go_r: c_int,
}

impl Fds {
    /// The descriptors a child keeps (unused slots are -1).
    fn keep(&self) -> [c_int; 8] {
        [
            self.stdin,
            self.stdout,
            self.stderr,
            self.error,
            self.stubs,
            self.status,
            self.sync_w,
            self.go_r,
        ]
    }
}

/// Closes every descriptor above 2 except `keep`. Another thread's run may
/// be between creating its pipes and closing its copies of the child ends;
/// if this process kept them, that run would see end of file only when this
/// one ends.
unsafe fn close_all_except(mut keep: [c_int; 8]) {
    keep.sort_unstable();
    let mut next: u32 = 3;
    for fd in keep {
        if fd < next as c_int {
            continue;
        }
        if fd as u32 > next {
            close_range(next, fd as u32 - 1);
        }
        next = fd as u32 + 1;
    }
    close_range(next, u32::MAX);
}

unsafe fn close_range(first: u32, last: u32) {
    if libc::syscall(libc::SYS_close_range, first, last, 0u32) != 0 {
        for fd in first..=last.min(65535) {
            libc::close(fd as c_int);
        }
    }
}

pub(super) fn errno() -> i32 {
    // SAFETY: reading the calling thread's errno is async-signal-safe.
    unsafe { *libc::__errno_location() }
}

fn report(fd: c_int, stage: Stage, err: i32, index: u32) {
    let mut rec = [0u8; 12];
    rec[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    rec[4..8].copy_from_slice(&err.to_ne_bytes());
    rec[8..].copy_from_slice(&index.to_ne_bytes());
    // SAFETY: write(2) on a pipe with a stack buffer; 12 bytes < PIPE_BUF is atomic.
    unsafe { libc::write(fd, rec.as_ptr().cast(), rec.len()) };
}

pub(super) fn fail(fds: &Fds, stage: Stage, index: u32) -> ! {
    report(fds.error, stage, errno(), index);
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(127) }
}

/// The first child: user namespace (when unprivileged), the other namespaces,
/// then the step's process as pid 1 of the new pid namespace. Never returns.
///
/// # Safety
/// Must only be called in a freshly forked child; `plan` must be fully built.
pub(crate) unsafe fn first_child(plan: &mut Plan, parent: libc::pid_t) -> ! {
    let fds = plan.fds;
    close_all_except(fds.keep());
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong);
    if libc::getppid() != parent {
        libc::_exit(127);
    }
    if plan.userns {
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            fail(&fds, Stage::UserNs, 0);
        }
        let b = [1u8];
        libc::write(fds.sync_w, b.as_ptr().cast(), 1);
        let mut go = [0u8];
        if libc::read(fds.go_r, go.as_mut_ptr().cast(), 1) != 1 || go[0] != 1 {
            libc::_exit(127);
        }
    }
    libc::close(fds.sync_w);
    libc::close(fds.go_r);
    if libc::unshare(plan.ns_flags) != 0 {
        fail(&fds, Stage::Unshare, 0);
    }
    let pid = libc::fork();
    if pid < 0 {
        fail(&fds, Stage::Fork, 0);
    }
    if pid == 0 {
        libc::close(fds.status);
        init_child(plan);
    }
    // The parent needs init's pid (the same in its pid namespace as in
    // ours) to cancel the step: killing pid 1 of a pid namespace kills every
    // process in it. The wait status follows as the second word.
    let pid_bytes = pid.to_ne_bytes();
    libc::write(fds.status, pid_bytes.as_ptr().cast(), pid_bytes.len());
    libc::close(fds.error);
    libc::close(fds.stubs);
    libc::close(fds.stdout);
    libc::close(fds.stderr);
    let mut status: c_int = 0;
    loop {
        let r = libc::waitpid(pid, &mut status, 0);
        if r == pid {
            break;
        }
        if r < 0 && errno() != libc::EINTR {
            status = 127 << 8;
            break;
        }
    }
    let bytes = status.to_ne_bytes();
    libc::write(fds.status, bytes.as_ptr().cast(), bytes.len());
    libc::_exit(0)
}

/// Pid 1 of the new pid namespace: mounts, pivot_root, credentials, exec.
unsafe fn init_child(plan: &mut Plan) -> ! {
    let fds = plan.fds;
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong);
    let host = plan.hostname.as_bytes();
    if libc::sethostname(host.as_ptr().cast(), host.len()) != 0 {
        fail(&fds, Stage::Hostname, 0);
    }
    if libc::mount(
        ptr::null(),
        c"/".as_ptr(),
        ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        ptr::null(),
    ) != 0
    {
        fail(&fds, Stage::MakePrivate, 0);
    }
    let root = plan.root.as_ptr();
    if let Some(f) = &plan.fuse {
        let st = super::fuse::mount(f, fds.stdin, fds.stderr);
        if st != 0 {
            // The index carries the program's wait status for the message.
            report(fds.error, Stage::FuseMount, libc::EIO, st as u32);
            libc::_exit(127);
        }
    }
    let r = match &plan.overlay {
        _ if plan.fuse.is_some() => 0,
        Some(OverlayPlan {
            legacy: Some(opts), ..
        }) => libc::mount(
            c"overlay".as_ptr(),
            root,
            c"overlay".as_ptr(),
            0,
            opts.as_ptr().cast(),
        ),
        Some(ov) => {
            if mount_overlay_fs_api(ov, root) {
                0
            } else {
                -1
            }
        }
        None => libc::mount(
            root,
            root,
            ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            ptr::null(),
        ),
    };
    if r != 0 {
        fail(&fds, Stage::MountRoot, 0);
    }
    let rootfd = libc::open(root, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
    if rootfd < 0 {
        fail(&fds, Stage::OpenRoot, 0);
    }
    for (i, op) in plan.ops.iter_mut().enumerate() {
        run_op(rootfd, op, i as u32, &fds, &mut plan.scratch);
    }
    if libc::fchdir(rootfd) != 0
        || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
        || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
        || libc::chdir(c"/".as_ptr()) != 0
    {
        fail(&fds, Stage::PivotRoot, 0);
    }
    libc::close(rootfd);
    libc::close(fds.stubs);
    // While CAP_SYS_ADMIN is still there: no no_new_privs, so setuid
    // programs in the image (su, sudo) keep working, as under BuildKit.
    if !super::seccomp::install(&plan.seccomp) {
        fail(&fds, Stage::Seccomp, 0);
    }
    if plan.drop_caps && !drop_capabilities() {
        fail(&fds, Stage::Caps, 0);
    }
    if plan.setgroups
        && libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr()) != 0
    {
        fail(&fds, Stage::Creds, 0);
    }
    if libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0 {
        fail(&fds, Stage::Creds, 1);
    }
    if libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0 {
        fail(&fds, Stage::Creds, 2);
    }
    libc::umask(plan.umask as libc::mode_t);
    reset_signals();
    if libc::dup2(fds.stdin, 0) < 0
        || libc::dup2(fds.stdout, 1) < 0
        || libc::dup2(fds.stderr, 2) < 0
    {
        fail(&fds, Stage::Stdio, 0);
    }
    // The error pipe moves to fd 3 so that every other descriptor can be
    // closed before chdir: a host directory fd left open would let
    // `cwd=/proc/self/fd/N` escape the root (CVE-2024-21626).
    let errfd = if fds.error == 3 {
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
        3
    } else if libc::dup3(fds.error, 3, libc::O_CLOEXEC) == 3 {
        3
    } else {
        fail(&fds, Stage::Stdio, 1);
    };
    let fds = Fds {
        error: errfd,
        ..fds
    };
    close_range(4, u32::MAX);
    if libc::chdir(plan.cwd.as_ptr()) != 0 {
        fail(&fds, Stage::Cwd, 0);
    }
    let mut last = libc::ENOENT;
    for cand in &plan.candidates {
        libc::execve(
            cand.as_ptr(),
            plan.argv_ptrs.as_ptr(),
            plan.envp_ptrs.as_ptr(),
        );
        let e = errno();
        match e {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => last = e,
            _ => {
                last = e;
                break;
            }
        }
    }
    report(fds.error, Stage::Exec, last, 0);
    libc::_exit(127)
}

unsafe fn reset_signals() {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut());
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// The capabilities Docker and BuildKit give a step; everything else leaves
/// the bounding set so that even host root cannot regain it.
const KEEP_CAPS: u64 = (1 << 0) // CHOWN
    | (1 << 1) // DAC_OVERRIDE
    | (1 << 3) // FOWNER
    | (1 << 4) // FSETID
    | (1 << 5) // KILL
    | (1 << 6) // SETGID
    | (1 << 7) // SETUID
    | (1 << 8) // SETPCAP
    | (1 << 10) // NET_BIND_SERVICE
    | (1 << 13) // NET_RAW
    | (1 << 18) // SYS_CHROOT
    | (1 << 27) // MKNOD
    | (1 << 29) // AUDIT_WRITE
    | (1 << 31); // SETFCAP

unsafe fn drop_capabilities() -> bool {
    for cap in 0..64u64 {
        if KEEP_CAPS & (1 << cap) == 0
            && libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong) != 0
            && errno() != libc::EINVAL
        {
            return false;
        }
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = KEEP_CAPS as u32;
    let hi = (KEEP_CAPS >> 32) as u32;
    // No inheritable capabilities, as runc since CVE-2022-29162: with them
    // a program carrying inheritable file capabilities would gain those
    // in a step running as a non-root USER.
    let data = [
        Data {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        Data {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) == 0
}

/// A child that enters a user namespace (maps written by the parent) and
/// changes the owner and mode of prepared paths; used to give extracted
/// layer files their container ids when kiln is unprivileged.
///
/// # Safety
/// Must only be called in a freshly forked child.
pub(crate) unsafe fn userns_child(fds: Fds, task: &UsernsTask, userns: bool) -> ! {
    close_all_except(fds.keep());
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong);
    if userns {
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            fail(&fds, Stage::UserNs, 0);
        }
        let b = [1u8];
        libc::write(fds.sync_w, b.as_ptr().cast(), 1);
        let mut go = [0u8];
        if libc::read(fds.go_r, go.as_mut_ptr().cast(), 1) != 1 || go[0] != 1 {
            libc::_exit(127);
        }
    }
    let list = match task {
        UsernsTask::ProbeOverlay { target, opts } => {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                fail(&fds, Stage::Unshare, 0);
            }
            if libc::mount(
                ptr::null(),
                c"/".as_ptr(),
                ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                ptr::null(),
            ) != 0
            {
                fail(&fds, Stage::MakePrivate, 0);
            }
            let ov = c"overlay".as_ptr();
            if libc::mount(ov, target.as_ptr(), ov, 0, opts.as_ptr().cast()) != 0 {
                fail(&fds, Stage::MountRoot, 0);
            }
            libc::_exit(0)
        }
        UsernsTask::Chown(list) => list,
        UsernsTask::SetCap(caps) => {
            for (i, (path, value)) in caps.iter().enumerate() {
                if libc::lsetxattr(
                    path.as_ptr(),
                    c"security.capability".as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                ) != 0
                {
                    fail(&fds, Stage::Chown, i as u32);
                }
            }
            libc::_exit(0)
        }
        UsernsTask::Exec { argv, argv_ptrs } => {
            let env: [*const c_char; 1] = [ptr::null()];
            if let Some(prog) = argv.first() {
                libc::execve(prog.as_ptr(), argv_ptrs.as_ptr(), env.as_ptr());
            }
            fail(&fds, Stage::Exec, 0);
        }
    };
    for (i, (path, uid, gid, mode)) in list.iter().enumerate() {
        if libc::lchown(path.as_ptr(), *uid, *gid) != 0 {
            fail(&fds, Stage::Chown, i as u32);
        }
        if let Some(m) = mode {
            if libc::chmod(path.as_ptr(), *m as libc::mode_t) != 0 {
                fail(&fds, Stage::Chown, i as u32);
            }
        }
    }
    libc::_exit(0)
}

/// Work done inside a user namespace with kiln's id map.
pub(crate) enum UsernsTask {
    /// `lchown` each path, then `chmod` it when a mode is given (chown
    /// clears setuid bits, so the mode goes last).
    Chown(Vec<(CString, u32, u32, Option<u32>)>),
    /// Set `security.capability` on each path. Written as container root,
    /// the kernel stores a namespaced (v3) capability whose root id is the
    /// namespace's, which steps then see as the plain one; the host user
    /// cannot set it at all.
    SetCap(Vec<(CString, Vec<u8>)>),
    /// Exec a host program (for example `rm -rf` of a tree whose files
    /// belong to subordinate ids); `argv_ptrs` ends with a null pointer.
    Exec {
        argv: Vec<CString>,
        argv_ptrs: Vec<*const c_char>,
    },
    /// Mount overlayfs with these options in a new mount namespace.
    ProbeOverlay { target: CString, opts: CString },
}
