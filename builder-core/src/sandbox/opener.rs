//! Opening host files as container root: files a step left owned by
//! subordinate ids (mode 0750 owned by 12:34, say) cannot be read by the
//! unprivileged user outside the user namespace, but root inside a user
//! namespace with kiln's id map can open them. A helper child enters such a
//! namespace, opens the paths it is asked for and hands the open descriptors
//! back over a unix socket (`SCM_RIGHTS`); permission is checked only at
//! open, so the parent then reads them with ordinary code. The child only
//! makes system calls on stack buffers (safe after `fork` in a
//! multithreaded process); see `docs/decisions.md` ("Rootless reads").
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use libc::c_int;

use super::idmap::userns_hint;
use super::plan::{handshake, io_err, pipe};
use super::{IdMap, SandboxError};

/// Longest path the helper accepts (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// Opens files for reading (and lists directories, stats paths, reads
/// symlinks), falling back to a helper in kiln's user
/// namespace when the unprivileged user is denied. As root (no user
/// namespace) it is plain [`File::open`]. The helper starts on the first
/// denied open and ends when the opener is dropped.
#[derive(Debug)]
pub struct Opener {
    idmap: IdMap,
    helper: Mutex<Option<Helper>>,
}

impl Opener {
    /// An opener for a process with `idmap`; starts nothing yet.
    pub fn new(idmap: &IdMap) -> Opener {
        Opener {
            idmap: idmap.clone(),
            helper: Mutex::new(None),
        }
    }

    /// The process's opener for files the calling user owns (or whose ids
    /// kiln maps) but whose mode denies them, such as a build context's
    /// `.dockerignore` of mode 0200: the owner may read it after a `chmod`,
    /// so kiln reads it as root of its user namespace rather than changing
    /// the user's files. The helper starts on the first denied open and
    /// lives until the process exits.
    pub fn for_process() -> &'static Opener {
        static SHARED: OnceLock<Opener> = OnceLock::new();
        SHARED.get_or_init(|| Opener::new(&IdMap::detect().0))
    }

    /// Opens `path` read-only, as the calling user when allowed, else as
    /// root of the user namespace.
    pub fn open(&self, path: &Path) -> io::Result<File> {
        File::open(path).or_else(|e| self.retry(e, path))
    }

    /// Retries an open of `path` that failed with `err`, through the helper
    /// when `err` is a permission denial it can get past; any other error
    /// is returned as it is.
    pub fn retry(&self, err: io::Error, path: &Path) -> io::Result<File> {
        if !self.denied(&err) {
            return Err(err);
        }
        self.via_helper(path, libc::O_RDONLY, None)
    }

    /// Retries an open of `rel` below the directory `dir` that failed with
    /// `err`, through the helper when `err` is a permission denial it can
    /// get past; any other error is returned as it is. The final component
    /// is never followed; with `in_root`, the lookup is
    /// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` as for
    /// [`crate::fsentry::RootDir`], else a plain `openat`.
    pub fn retry_at(
        &self,
        err: io::Error,
        dir: BorrowedFd<'_>,
        rel: &Path,
        in_root: bool,
    ) -> io::Result<File> {
        if !self.denied(&err) {
            return Err(err);
        }
        self.via_helper(rel, libc::O_NOFOLLOW, Some((dir, in_root)))
    }

    /// `lstat` of `path`, through the helper when a parent directory is not
    /// searchable by the calling user.
    pub fn symlink_metadata(&self, path: &Path) -> io::Result<std::fs::Metadata> {
        match std::fs::symlink_metadata(path) {
            Err(e) if self.denied(&e) => self
                .via_helper(path, libc::O_PATH | libc::O_NOFOLLOW, None)?
                .metadata(),
            r => r,
        }
    }

    /// The names in directory `path` (without `.` and `..`), through the
    /// helper when the calling user may not read it.
    pub fn read_dir(&self, path: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        let list = |it: std::fs::ReadDir| -> io::Result<Vec<std::ffi::OsString>> {
            it.map(|e| e.map(|e| e.file_name())).collect()
        };
        match std::fs::read_dir(path) {
            Err(e) if self.denied(&e) => {
                let dir = self.via_helper(path, libc::O_DIRECTORY | libc::O_NOFOLLOW, None)?;
                let mut names = Vec::new();
                // `Dir::read_from` would reopen "." as the calling user, which the
                // directory refuses; take the helper's descriptor as it is.
                let it = rustix::fs::Dir::new(OwnedFd::from(dir)).map_err(io::Error::from)?;
                for ent in it {
                    let ent = ent.map_err(io::Error::from)?;
                    let name = ent.file_name().to_bytes();
                    if name != b"." && name != b".." {
                        names.push(std::ffi::OsStr::from_bytes(name).to_owned());
                    }
                }
                Ok(names)
            }
            Ok(it) => list(it),
            Err(e) => Err(e),
        }
    }

    /// The target of symlink `path`, through the helper when a parent
    /// directory is not searchable by the calling user.
    pub fn read_link(&self, path: &Path) -> io::Result<std::path::PathBuf> {
        match std::fs::read_link(path) {
            Err(e) if self.denied(&e) => {
                let fd = self.via_helper(path, libc::O_PATH | libc::O_NOFOLLOW, None)?;
                let t = rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(io::Error::from)?;
                Ok(std::path::PathBuf::from(std::ffi::OsString::from_vec(
                    t.into_bytes(),
                )))
            }
            r => r,
        }
    }

    fn denied(&self, e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::PermissionDenied && self.idmap.needs_userns()
    }

    fn via_helper(
        &self,
        path: &Path,
        flags: c_int,
        at: Option<(BorrowedFd<'_>, bool)>,
    ) -> io::Result<File> {
        let mut guard = self
            .helper
            .lock()
            .map_err(|_| io::Error::other("userns opener lock poisoned"))?;
        if guard.is_none() {
            *guard = Some(Helper::start(&self.idmap).map_err(io::Error::other)?);
        }
        match guard.as_ref() {
            Some(h) => h.open(path, flags, at),
            None => Err(io::Error::other("userns opener not running")),
        }
    }

    /// Reads a whole file through [`Opener::open`].
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_all(self.open(path)?)
    }
}

/// Opens `path` for reading as the calling user and, only when that is
/// denied, through [`Opener::for_process`]: the process's id map is then
/// detected on the first denial rather than by every build.
pub fn open_owned(path: &Path) -> io::Result<File> {
    File::open(path).or_else(|e| Opener::for_process().retry(e, path))
}

/// Reads a whole file through [`open_owned`].
pub fn read_owned(path: &Path) -> io::Result<Vec<u8>> {
    read_all(open_owned(path)?)
}

fn read_all(mut f: File) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io::Read::read_to_end(&mut f, &mut buf)?;
    Ok(buf)
}

/// The running helper: our end of its socket and its pid.
#[derive(Debug)]
struct Helper {
    sock: Option<OwnedFd>,
    pid: libc::pid_t,
}

impl Helper {
    fn start(idmap: &IdMap) -> Result<Helper, SandboxError> {
        let mut pair = [0 as c_int; 2];
        // SAFETY: socketpair writes two new descriptors into the array.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(io_err("creating a socket pair", Path::new("-"))(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: both descriptors were just created and belong to nobody else.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let (fail_r, fail_w) = pipe()?;
        let (sync_r, sync_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let keep = [
            theirs.as_raw_fd(),
            fail_w.as_raw_fd(),
            sync_w.as_raw_fd(),
            go_r.as_raw_fd(),
        ];
        // SAFETY: the child only runs `helper_child`, which makes system
        // calls on stack memory and never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io_err("forking", Path::new("-"))(io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: we are the freshly forked child.
            unsafe { helper_child(keep) }
        }
        drop((theirs, fail_w, sync_w, go_r));
        let mut helper = Helper {
            sock: Some(ours),
            pid,
        };
        handshake(idmap, pid, &sync_r, &go_w)?;
        drop(go_w);
        let mut rec = [0u8; 4];
        // SAFETY: reading into a stack buffer; end of file means the child
        // entered the namespace and serves requests.
        let n = unsafe { libc::read(fail_r.as_raw_fd(), rec.as_mut_ptr().cast(), rec.len()) };
        if n == 4 {
            helper.stop();
            return Err(SandboxError::UserNamespace {
                errno: io::Error::from_raw_os_error(i32::from_ne_bytes(rec)),
                hint: userns_hint(),
            });
        }
        Ok(helper)
    }

    /// Asks for `path` (below `at`'s directory when given, looked up in
    /// root when its flag is set). The request is `[flags i32][in_root
    /// u8][path]`, with the directory as `SCM_RIGHTS` when there is one.
    fn open(
        &self,
        path: &Path,
        flags: c_int,
        at: Option<(BorrowedFd<'_>, bool)>,
    ) -> io::Result<File> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() || bytes.len() + HEADER >= MAX_PATH || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path too long or contains a NUL byte",
            ));
        }
        let sock = self
            .sock
            .as_ref()
            .ok_or_else(|| io::Error::other("userns opener stopped"))?
            .as_raw_fd();
        let mut req = flags.to_ne_bytes().to_vec();
        req.push(u8::from(at.is_some_and(|(_, in_root)| in_root)));
        req.extend_from_slice(bytes);
        let mut iov = libc::iovec {
            iov_base: req.as_mut_ptr().cast(),
            iov_len: req.len(),
        };
        let mut cbuf = Cmsg([0; 64]);
        // SAFETY: an all-zero msghdr is valid; the pointers set below outlive
        // the call, and the control message fits the aligned buffer.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if let Some((dir, _)) = at {
                put_fd(&mut msg, &mut cbuf, dir.as_raw_fd());
            }
            libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let (errno, fd) = recv_reply(sock)?;
        match fd {
            // SAFETY: the kernel installed this descriptor for us; we own it.
            Some(fd) => Ok(unsafe { File::from_raw_fd(fd) }),
            None if errno != 0 => Err(io::Error::from_raw_os_error(errno)),
            None => Err(io::Error::other("userns opener sent no descriptor")),
        }
    }

    fn stop(&mut self) {
        // Closing our end makes the child's recv return 0: it exits.
        self.sock = None;
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Control message space for one descriptor, 8-byte aligned.
#[repr(C, align(8))]
struct Cmsg([u8; 64]);

/// Bytes before the path in a request: the open flags and the in-root flag.
const HEADER: usize = 5;

/// `struct open_how` of `openat2(2)` (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Attaches `fd` to `msg` as one `SCM_RIGHTS` control message in `cbuf`.
///
/// # Safety
/// `msg` must stay in use only while `cbuf` lives.
unsafe fn put_fd(msg: &mut libc::msghdr, cbuf: &mut Cmsg, fd: c_int) {
    let space = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as usize;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let c = libc::CMSG_FIRSTHDR(msg);
    (*c).cmsg_level = libc::SOL_SOCKET;
    (*c).cmsg_type = libc::SCM_RIGHTS;
    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
    libc::CMSG_DATA(c).cast::<c_int>().write_unaligned(fd);
}

/// The descriptor of the first `SCM_RIGHTS` message in `msg`, if any.
///
/// # Safety
/// `msg` must describe a control buffer the kernel filled.
unsafe fn take_fd(msg: &libc::msghdr) -> Option<c_int> {
    let mut c = libc::CMSG_FIRSTHDR(msg);
    while !c.is_null() {
        if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
            return Some(libc::CMSG_DATA(c).cast::<c_int>().read_unaligned());
        }
        c = libc::CMSG_NXTHDR(msg, c);
    }
    None
}

/// Receives `[errno i32]` plus an optional descriptor.
fn recv_reply(sock: RawFd) -> io::Result<(i32, Option<RawFd>)> {
    let mut data = [0u8; 4];
    let mut cbuf = Cmsg([0; 64]);
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive
    // the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len() as _;
    // SAFETY: receiving into the buffers described by `msg`.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n != 4 {
        return Err(io::Error::other("userns opener ended"));
    }
    // SAFETY: walking the control messages the kernel wrote into `cbuf`.
    let fd = unsafe { take_fd(&msg) };
    Ok((i32::from_ne_bytes(data), fd))
}

/// The helper: closes every other descriptor, enters a new user namespace,
/// waits for its maps, then answers each request (a path, perhaps below a
/// directory sent with it) with `open(2)`'s errno and, on success, the
/// descriptor. Exits when the parent closes its end. Never returns.
///
/// # Safety
/// Must only be called in a freshly forked child.
unsafe fn helper_child(keep: [c_int; 4]) -> ! {
    let [sock, fail_w, sync_w, go_r] = keep;
    let mut sorted = keep;
    sorted.sort_unstable();
    let mut next: c_int = 3;
    for fd in sorted {
        if fd > next {
            close_range(next as u32, fd as u32 - 1);
        }
        next = next.max(fd + 1);
    }
    close_range(next as u32, u32::MAX);
    if libc::unshare(libc::CLONE_NEWUSER) != 0 {
        let e = (*libc::__errno_location()).to_ne_bytes();
        libc::write(fail_w, e.as_ptr().cast(), e.len());
        libc::_exit(127);
    }
    let b = [1u8];
    libc::write(sync_w, b.as_ptr().cast(), 1);
    let mut go = [0u8];
    if libc::read(go_r, go.as_mut_ptr().cast(), 1) != 1 || go[0] != 1 {
        libc::_exit(127);
    }
    libc::close(sync_w);
    libc::close(go_r);
    libc::close(fail_w);
    let mut path = [0u8; MAX_PATH + 1];
    loop {
        let mut iov = libc::iovec {
            iov_base: path.as_mut_ptr().cast(),
            iov_len: MAX_PATH,
        };
        let mut cbuf = Cmsg([0; 64]);
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = cbuf.0.len() as _;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        let dir = if n > 0 { take_fd(&msg) } else { None };
        if n <= HEADER as isize {
            libc::_exit(0);
        }
        path[n as usize] = 0;
        let flags = c_int::from_ne_bytes([path[0], path[1], path[2], path[3]]);
        // Only reading: the request may choose O_PATH, O_DIRECTORY and
        // O_NOFOLLOW, nothing that writes or creates.
        let flags = (flags & (libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW))
            | libc::O_RDONLY
            | libc::O_CLOEXEC
            | libc::O_NOCTTY
            | libc::O_NONBLOCK;
        let name = path.as_ptr().add(HEADER).cast::<libc::c_char>();
        let fd = match dir {
            Some(d) if path[4] != 0 => {
                let how = OpenHow {
                    flags: flags as u64,
                    mode: 0,
                    resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
                };
                libc::syscall(
                    libc::SYS_openat2,
                    d,
                    name,
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                ) as c_int
            }
            Some(d) => libc::openat(d, name, flags),
            None => libc::open(name, flags),
        };
        let err: i32 = if fd < 0 { *libc::__errno_location() } else { 0 };
        if let Some(d) = dir {
            libc::close(d);
        }
        let mut data = err.to_ne_bytes();
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        let mut cbuf = Cmsg([0; 64]);
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if fd >= 0 {
            put_fd(&mut msg, &mut cbuf, fd);
        }
        let sent = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
        if fd >= 0 {
            libc::close(fd);
        }
        if sent < 0 {
            libc::_exit(1);
        }
    }
}

unsafe fn close_range(first: u32, last: u32) {
    if first > last {
        return;
    }
    if libc::syscall(libc::SYS_close_range, first, last, 0u32) != 0 {
        for fd in first..=last.min(65535) {
            libc::close(fd as c_int);
        }
    }
}
