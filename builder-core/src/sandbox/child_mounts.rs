//! The mount work of the step's init process, between `fork()` and
//! `execve()` (see `child.rs` for the rules: no allocation, raw system
//! calls only): the overlay root through the new mount API, and each
//! planned mount opened and attached inside the root with
//! `openat2(RESOLVE_IN_ROOT)` so no path can lead out of it.
use std::ffi::{c_int, CString};
use std::ptr;

use libc::c_char;

use super::child::{errno, fail, Action, Alt, Create, Fds, Op, OverlayPlan, PathScratch, Stage};
/// Mounts overlayfs at `root` with the new mount API. Returns false on failure (errno set).
pub(super) unsafe fn mount_overlay_fs_api(ov: &OverlayPlan, root: *const c_char) -> bool {
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSCONFIG_SET_FLAG: u32 = 0;
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const FSMOUNT_CLOEXEC: u32 = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;
    let fd = libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) as c_int;
    if fd < 0 {
        return false;
    }
    let set = |cmd: u32, key: *const c_char, value: *const c_char| {
        libc::syscall(libc::SYS_fsconfig, fd, cmd, key, value, 0) == 0
    };
    let mut ok = ov
        .lowers
        .iter()
        .all(|l| set(FSCONFIG_SET_STRING, c"lowerdir+".as_ptr(), l.as_ptr()));
    ok = ok
        && ov
            .strings
            .iter()
            .all(|(k, v)| set(FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr()));
    ok = ok
        && ov
            .flags
            .iter()
            .all(|k| set(FSCONFIG_SET_FLAG, k.as_ptr(), ptr::null()));
    ok = ok && set(FSCONFIG_CMD_CREATE, ptr::null(), ptr::null());
    if !ok {
        libc::close(fd);
        return false;
    }
    let mfd = libc::syscall(libc::SYS_fsmount, fd, FSMOUNT_CLOEXEC, 0) as c_int;
    libc::close(fd);
    if mfd < 0 {
        return false;
    }
    let r = libc::syscall(
        libc::SYS_move_mount,
        mfd,
        c"".as_ptr(),
        libc::AT_FDCWD,
        root,
        MOVE_MOUNT_F_EMPTY_PATH,
    );
    libc::close(mfd);
    r == 0
}

/// `/proc/self/fd/N` for a descriptor, in a stack buffer.
fn fd_path(fd: c_int, buf: &mut [u8; 32]) -> *const c_char {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[prefix.len() + i] = digits[len - 1 - i];
    }
    buf[prefix.len() + len] = 0;
    buf.as_ptr().cast()
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` (NUL-terminated, relative) inside `rootfd`, with symlinks
/// resolved as if `rootfd` were `/`, so nothing outside the root is reachable.
unsafe fn open_in_root(rootfd: c_int, path: *const c_char) -> c_int {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    libc::syscall(
        libc::SYS_openat2,
        rootfd,
        path,
        &how as *const OpenHow,
        std::mem::size_of::<OpenHow>(),
    ) as c_int
}

/// Whether the entry `name` of directory `dirfd` is a symlink.
unsafe fn is_symlink(dirfd: c_int, name: *const c_char) -> bool {
    let mut st: libc::stat = std::mem::zeroed();
    libc::fstatat(dirfd, name, &mut st, libc::AT_SYMLINK_NOFOLLOW) == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// Appends `src` to `dst` at `*n`; false when it does not fit.
fn put(dst: &mut [u8], n: &mut usize, src: &[u8]) -> bool {
    match dst.get_mut(*n..*n + src.len()) {
        Some(d) => {
            d.copy_from_slice(src);
            *n += src.len();
            true
        }
        None => false,
    }
}

/// Writes `raw` with `.`, `..` and empty components resolved lexically
/// into `out`, NUL-terminated; returns the length, `None` when too long.
/// Only called while every directory walked so far was a real one, so the
/// lexical `..` is the real parent.
fn normalize(raw: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                let cut = out.get(..n)?.iter().rposition(|&b| b == b'/').unwrap_or(0);
                n = cut;
            }
            _ => {
                if n > 0 && !put(out, &mut n, b"/") {
                    return None;
                }
                if !put(out, &mut n, c) {
                    return None;
                }
            }
        }
    }
    put(out, &mut n, &[0]).then_some(n - 1)
}

/// Resolves an op's target inside the root, creating missing components
/// (and reporting them when `record`); returns an `O_PATH` descriptor and
/// whether the walk ended on another path, left NUL-terminated in
/// `sc.path`, which later lookups of the mount must use.
///
/// A component that is a symlink to a missing path (creating it finds it
/// there: `EEXIST`) is followed, as runc's SecureJoin does for BuildKit's
/// mounts: `/etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf`
/// gets the file mounted at the link's target, its missing directories
/// made. Only the final stub made that way is reported (as a path), so the
/// directories stay, as docker 20.10's do; and only while every directory
/// walked was a real one, so the reported path is the one created.
unsafe fn open_target(
    rootfd: c_int,
    op: &mut Op,
    index: u32,
    fds: &Fds,
    sc: &mut PathScratch,
) -> (c_int, bool) {
    let mut hops = 0;
    let mut redirected = false;
    'walk: loop {
        let (p, len): (*mut u8, usize) = if redirected {
            let len = sc.path.iter().position(|&b| b == 0).unwrap_or(0);
            (sc.path.as_mut_ptr(), len)
        } else {
            (op.target.as_mut_ptr(), op.target.len().saturating_sub(1))
        };
        if len == 0 {
            return (libc::dup(rootfd), redirected);
        }
        // Every directory walked so far was a real one (no symlink).
        let mut real = true;
        let mut parent = libc::dup(rootfd);
        let mut start = 0;
        while start < len {
            let mut end = start;
            while end < len && *p.add(end) != b'/' {
                end += 1;
            }
            let saved = *p.add(end);
            *p.add(end) = 0;
            let name = p.add(start).cast::<c_char>();
            let mut fd = open_in_root(rootfd, p.cast());
            if fd < 0 && errno() == libc::ENOENT && op.create == Create::Never {
                *p.add(end) = saved;
                libc::close(parent);
                return (-1, redirected);
            }
            if fd < 0 && errno() == libc::ENOENT {
                let made = if end == len && op.create == Create::File {
                    let f = libc::openat(
                        parent,
                        name,
                        libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_WRONLY
                            | libc::O_CLOEXEC
                            | libc::O_NOFOLLOW,
                        0o644,
                    );
                    if f >= 0 {
                        libc::close(f);
                    }
                    f >= 0
                } else {
                    libc::mkdirat(parent, name, 0o755) == 0
                };
                if !made && errno() == libc::EEXIST && hops < 40 && is_symlink(parent, name) {
                    // Follow the dangling link: the walk starts again on
                    // (its directory +) its target + the rest of the path.
                    let n =
                        libc::readlinkat(parent, name, sc.link.as_mut_ptr().cast(), sc.link.len());
                    *p.add(end) = saved;
                    libc::close(parent);
                    let Ok(n) = usize::try_from(n) else {
                        fail(fds, Stage::Target, index);
                    };
                    let link = sc.link.get(..n).unwrap_or_default();
                    let mut r = 0;
                    let mut ok = true;
                    if link.first() != Some(&b'/') {
                        ok &= put(&mut sc.raw, &mut r, std::slice::from_raw_parts(p, start));
                    }
                    ok &= put(&mut sc.raw, &mut r, link);
                    if end < len {
                        ok &= put(&mut sc.raw, &mut r, b"/");
                        ok &= put(
                            &mut sc.raw,
                            &mut r,
                            std::slice::from_raw_parts(p.add(end + 1), len - end - 1),
                        );
                    }
                    let raw = sc.raw.get(..r).unwrap_or_default();
                    if !ok || n >= sc.link.len() || (real && normalize(raw, &mut sc.path).is_none())
                    {
                        fail(fds, Stage::Target, index);
                    }
                    if !real {
                        // A symlink was crossed on the way: leave the `..`
                        // to RESOLVE_IN_ROOT and report nothing.
                        let mut w = 0;
                        if !put(&mut sc.path, &mut w, raw) || !put(&mut sc.path, &mut w, &[0]) {
                            fail(fds, Stage::Target, index);
                        }
                        op.record = false;
                    }
                    hops += 1;
                    redirected = true;
                    continue 'walk;
                }
                if !made {
                    fail(fds, Stage::Target, index);
                }
                if let Some((uid, gid)) = op.owner {
                    // Best effort: an id the user namespace does not map cannot
                    // own anything, and the step may still run in the directory.
                    libc::fchownat(parent, name, uid, gid, libc::AT_SYMLINK_NOFOLLOW);
                }
                if op.record && !redirected {
                    let mut rec = [0u8; 8];
                    rec[..4].copy_from_slice(&index.to_ne_bytes());
                    rec[4..].copy_from_slice(&(end as u32).to_ne_bytes());
                    libc::write(fds.stubs, rec.as_ptr().cast(), rec.len());
                } else if op.record && end == len {
                    let mut rec = [0u8; 8];
                    rec[..4].copy_from_slice(&(index | STUB_PATH).to_ne_bytes());
                    rec[4..].copy_from_slice(&(end as u32).to_ne_bytes());
                    libc::write(fds.stubs, rec.as_ptr().cast(), rec.len());
                    libc::write(fds.stubs, p.cast(), end);
                }
                fd = open_in_root(rootfd, p.cast());
            } else if fd >= 0 && is_symlink(parent, name) {
                real = false;
            }
            *p.add(end) = saved;
            if fd < 0 {
                fail(fds, Stage::Target, index);
            }
            libc::close(parent);
            parent = fd;
            start = end + 1;
        }
        return (parent, redirected);
    }
}

/// Set in a stub record's index when a path follows (see [`Fds::stubs`]).
pub(crate) const STUB_PATH: u32 = 1 << 31;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;

unsafe fn make_readonly(rootfd: c_int, target: *const c_char) -> bool {
    // Re-resolve so the descriptor names the new mount, not the directory under it.
    let fd = open_in_root(rootfd, target);
    if fd < 0 {
        return false;
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let r = libc::syscall(
        libc::SYS_mount_setattr,
        fd,
        c"".as_ptr(),
        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
        &attr as *const MountAttr,
        std::mem::size_of::<MountAttr>(),
    );
    libc::close(fd);
    r == 0
}

pub(super) unsafe fn run_op(
    rootfd: c_int,
    op: &mut Op,
    index: u32,
    fds: &Fds,
    scratch: &mut PathScratch,
) {
    if let Action::Symlink { to } = &op.action {
        // Symlinks only go into the fresh /dev tmpfs, whose parent exists.
        if libc::symlinkat(to.as_ptr(), rootfd, op.target.as_ptr().cast()) != 0
            && errno() != libc::EEXIST
        {
            fail(fds, Stage::Symlink, index);
        }
        return;
    }
    let (fd, redirected) = open_target(rootfd, op, index, fds, scratch);
    if fd < 0 {
        return; // Create::Never and absent
    }
    let Action::Mount {
        src,
        fstype,
        flags,
        data,
        alt,
        readonly,
        optional,
    } = &op.action
    else {
        libc::close(fd);
        return;
    };
    let mut buf = [0u8; 32];
    let target = fd_path(fd, &mut buf);
    let cptr = |c: &Option<CString>| c.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    let mut ok = libc::mount(cptr(src), target, cptr(fstype), *flags, cptr(data).cast()) == 0;
    let mut ro = *readonly;
    if !ok {
        ok = match alt {
            Some(Alt::Data(d)) => {
                libc::mount(cptr(src), target, cptr(fstype), *flags, d.as_ptr().cast()) == 0
            }
            Some(Alt::RBindReadonly(host)) => {
                ro = true;
                libc::mount(
                    host.as_ptr(),
                    target,
                    ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    ptr::null(),
                ) == 0
            }
            None => false,
        };
    }
    libc::close(fd);
    if !ok {
        if *optional {
            return;
        }
        fail(fds, Stage::Mount, index);
    }
    let walked = if redirected {
        scratch.path.as_ptr()
    } else {
        op.target.as_ptr()
    };
    if ro && !make_readonly(rootfd, walked.cast()) {
        fail(fds, Stage::Readonly, index);
    }
}
