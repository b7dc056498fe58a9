//! The mounts of a step's root, as ops for the child: the standard ones
//! every step gets (/proc, /sys, /dev, the /etc files, masked paths) and
//! the ones the spec asks for.
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libc::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_STRICTATIME};

use super::child::{Action, Alt, Create, Op};
use super::plan::{cstr, io_err};
use super::{IdMap, MountKind, SandboxError, Spec};

/// Lexically normalizes an absolute container path to a relative one
/// (`..` stops at the root); the kernel resolves symlinks inside the root.
fn relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn target_buf(rel: &str) -> Vec<u8> {
    let mut v = rel.as_bytes().to_vec();
    v.push(0);
    v
}

const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// One op at `target`; `record` asks the child to report the mount point
/// when it had to create it, so it is removed after the step.
pub(super) fn mount_op(target: &str, create: Create, record: bool, action: Action) -> (Op, String) {
    let rel = relative(target);
    (
        Op {
            target: target_buf(&rel),
            create,
            record,
            owner: None,
            action,
        },
        rel,
    )
}

/// A mount with everything but the source, type, flags and data unset.
pub(super) fn mnt(
    src: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
    alt: Option<Alt>,
) -> Action {
    let c = |s: &str| CString::new(s).ok();
    Action::Mount {
        src: c(src),
        fstype: fstype.and_then(c),
        flags,
        data: data.and_then(c),
        alt,
        readonly: false,
        optional: false,
    }
}

/// A read-only bind of a host path.
fn bind_ro(src: &Path) -> Result<Action, SandboxError> {
    Ok(Action::Mount {
        src: Some(cstr(src.as_os_str().as_bytes(), "path")?),
        fstype: None,
        flags: MS_BIND,
        data: None,
        alt: None,
        readonly: true,
        optional: false,
    })
}

/// What every step gets, in mount order: /proc, /sys, /dev and its nodes,
/// /etc/hosts, /etc/resolv.conf and /etc/hostname (binds of the given
/// per-run files), then containerd's masked and read-only paths. `root` is
/// the host directory the root is assembled in.
pub(super) fn standard(
    root: &Path,
    hosts: &Path,
    resolv: &Path,
    hostname: &Path,
    shm_size: u64,
) -> Result<Vec<(Op, String)>, SandboxError> {
    let mut out = Vec::new();
    let mut push = |op: (Op, String)| out.push(op);
    let host = |p: &str| CString::new(p).ok().map(Alt::RBindReadonly);
    // /proc, /sys and /dev made for a step stay in its changes, as the
    // directories runc makes for BuildKit's steps do (docker 20.10 and
    // current BuildKit both leave them in the first RUN layer on scratch);
    // BuildKit's stub cleaner removes only the files it mounts.
    push(mount_op(
        "/proc",
        Create::Dir,
        false,
        mnt(
            "proc",
            Some("proc"),
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            None,
            host("/proc"),
        ),
    ));
    let mut sys = mnt(
        "sysfs",
        Some("sysfs"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
        None,
        host("/sys"),
    );
    if let Action::Mount { optional, .. } = &mut sys {
        *optional = true;
    }
    push(mount_op("/sys", Create::Dir, false, sys));
    push(mount_op(
        "/dev",
        Create::Dir,
        false,
        mnt(
            "tmpfs",
            Some("tmpfs"),
            MS_NOSUID | MS_STRICTATIME,
            Some("mode=755,size=65536k"),
            None,
        ),
    ));
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let src = format!("/dev/{node}");
        push(mount_op(
            &src,
            Create::File,
            false,
            mnt(&src, None, MS_BIND, None, None),
        ));
    }
    push(mount_op(
        "/dev/pts",
        Create::Dir,
        false,
        mnt(
            "devpts",
            Some("devpts"),
            MS_NOSUID | MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
            CString::new("newinstance,ptmxmode=0666,mode=0620")
                .ok()
                .map(Alt::Data),
        ),
    ));
    push(mount_op(
        "/dev/shm",
        Create::Dir,
        false,
        mnt(
            "shm",
            Some("tmpfs"),
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            Some(&format!(
                "mode=1777,size={}k",
                shm_size.div_ceil(1024).max(1)
            )),
            None,
        ),
    ));
    // POSIX message queues of the step's own IPC namespace, where runc
    // puts them; optional, as /sys is: a kernel without mqueue still runs
    // steps.
    let mut mqueue = mnt(
        "mqueue",
        Some("mqueue"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        None,
        None,
    );
    if let Action::Mount { optional, .. } = &mut mqueue {
        *optional = true;
    }
    push(mount_op("/dev/mqueue", Create::Dir, false, mqueue));
    for (link, to) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let to = cstr(to.as_bytes(), "link")?;
        push(mount_op(link, Create::File, false, Action::Symlink { to }));
    }
    // /etc stays in the step's changes when it had to be made (as with
    // BuildKit); only the file stubs below it are removed.
    push(mount_op("/etc", Create::Dir, false, Action::Ensure));
    push(mount_op("/etc/hosts", Create::File, true, bind_ro(hosts)?));
    push(mount_op(
        "/etc/resolv.conf",
        Create::File,
        true,
        bind_ro(resolv)?,
    ));
    // Writable, as `docker run` binds it: BuildKit leaves the image's own
    // file there, which steps may write; here what they write stays theirs.
    let mut hostname = bind_ro(hostname)?;
    if let Action::Mount { readonly, .. } = &mut hostname {
        *readonly = false;
    }
    push(mount_op("/etc/hostname", Create::File, true, hostname));
    // containerd's default masked and read-only paths, as BuildKit applies them.
    for p in MASKED {
        let host_path = Path::new(p);
        let mut action = if host_path.is_dir() {
            mnt("tmpfs", Some("tmpfs"), MS_RDONLY, Some("size=0"), None)
        } else {
            mnt("/dev/null", None, MS_BIND, None, None)
        };
        if let Action::Mount { optional, .. } = &mut action {
            *optional = true;
        }
        push(mount_op(p, Create::Never, false, action));
    }
    for p in READONLY {
        let src = root.join(p.trim_start_matches('/'));
        let mut a = bind_ro(&src)?;
        if let Action::Mount {
            flags, optional, ..
        } = &mut a
        {
            *flags = MS_BIND | MS_REC;
            *optional = true;
        }
        push(mount_op(p, Create::Never, false, a));
    }
    Ok(out)
}

/// The spec's own mounts (`RUN --mount`s, secrets, caches), in its order;
/// scratch copies and overlays are made in `run_dir`.
pub(super) fn requested(
    spec: &Spec,
    run_dir: &Path,
    idmap: &IdMap,
) -> Result<Vec<(Op, String)>, SandboxError> {
    let mut out = Vec::new();
    let mut push = |op: (Op, String)| out.push(op);
    let mut scratch_n = 0;
    for m in &spec.mounts {
        if !m.target.starts_with('/') {
            return Err(SandboxError::Spec(format!(
                "mount target {:?} is not absolute",
                m.target
            )));
        }
        let (create, action) = match &m.kind {
            MountKind::Bind { src, readonly } => {
                let meta = fs::metadata(src).map_err(io_err("reading mount source", src))?;
                let create = if meta.is_dir() {
                    Create::Dir
                } else {
                    Create::File
                };
                let mut a = bind_ro(src)?;
                if let Action::Mount {
                    flags,
                    readonly: ro,
                    ..
                } = &mut a
                {
                    *flags = MS_BIND | MS_REC;
                    *ro = *readonly;
                }
                (create, a)
            }
            MountKind::BindScratch { src } => {
                let meta = fs::metadata(src).map_err(io_err("reading mount source", src))?;
                scratch_n += 1;
                if meta.is_dir() {
                    let up = run_dir.join(format!("scratch{scratch_n}"));
                    let (u, w) = (up.join("upper"), up.join("work"));
                    for d in [&up, &u, &w] {
                        fs::create_dir(d).map_err(io_err("creating", d))?;
                    }
                    let mut data = format!(
                        "lowerdir={},upperdir={},workdir={}",
                        src.display(),
                        u.display(),
                        w.display()
                    );
                    if idmap.needs_userns() {
                        data.push_str(",userxattr");
                    }
                    (
                        Create::Dir,
                        mnt("overlay", Some("overlay"), 0, Some(&data), None),
                    )
                } else {
                    let copy = run_dir.join(format!("scratch{scratch_n}"));
                    fs::copy(src, &copy).map_err(io_err("copying", src))?;
                    let mut a = bind_ro(&copy)?;
                    if let Action::Mount { readonly, .. } = &mut a {
                        *readonly = false;
                    }
                    (Create::File, a)
                }
            }
            MountKind::Tmpfs { size } => {
                let data = size.map(|s| format!("size={s}"));
                // nosuid only, as BuildKit mounts `type=tmpfs` (docker
                // 20.10's shows `rw,nosuid,relatime`): device nodes a step
                // makes there work.
                (
                    Create::Dir,
                    mnt("tmpfs", Some("tmpfs"), MS_NOSUID, data.as_deref(), None),
                )
            }
            MountKind::EnsureDir => (Create::Dir, Action::Ensure),
        };
        push(mount_op(&m.target, create, !m.keep_created_target, action));
    }
    Ok(out)
}
