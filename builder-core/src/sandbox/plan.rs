//! The parent's side of a run: builds the [`Plan`] before forking, writes the
//! user namespace maps, streams output, and removes created mount points.
use std::ffi::{c_int, CString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::child::{self, Action, Create, Fds, OverlayPlan, Plan, Stage};
use super::idmap::userns_hint;
use super::mount_ops::{self, mount_op};
use super::reap::{remove_stubs, Streams};
use super::{
    ExitStatus, IdMap, Network, Outcome, OutputSink, Rootfs, SandboxError, Spec, DEFAULT_PATH,
};

pub(super) fn cstr(s: &[u8], what: &str) -> Result<CString, SandboxError> {
    CString::new(s).map_err(|_| SandboxError::Spec(format!("{what} contains a NUL byte")))
}

pub(super) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A per-run scratch directory on the host, removed on drop.
struct RunDir(PathBuf, IdMap);

impl RunDir {
    fn new(idmap: &IdMap) -> Result<RunDir, SandboxError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = base.join(format!("kiln-run-{}-{n}", std::process::id()));
            match fs::create_dir(&p) {
                Ok(()) => return Ok(RunDir(p, idmap.clone())),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("creating", &p)(e)),
            }
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // Scratch overlays leave a mode-000 `work/work` directory (and may
        // hold files of other container ids): only container root can
        // always remove them.
        if fs::remove_dir_all(&self.0).is_err() {
            let _ = super::userns::remove_tree(&self.1, &self.0);
        }
    }
}

pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which we then own.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        return Err(io_err("creating a pipe", Path::new("-"))(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

struct Built {
    plan: Plan,
    /// Relative target of each op, for error messages and stub cleanup.
    targets: Vec<String>,
    _run: RunDir,
}

fn build(spec: &Spec, idmap: &IdMap) -> Result<Built, SandboxError> {
    if spec.args.is_empty() {
        return Err(SandboxError::Spec("no command".into()));
    }
    if !spec.cwd.starts_with('/') {
        return Err(SandboxError::Spec(format!(
            "working directory {:?} is not absolute",
            spec.cwd
        )));
    }
    let run = RunDir::new(idmap)?;
    let write = |name: &str, text: &[u8]| -> Result<PathBuf, SandboxError> {
        let p = run.0.join(name);
        fs::write(&p, text).map_err(io_err("writing", &p))?;
        Ok(p)
    };
    let resolv = match &spec.resolv_conf {
        Some(s) => s.clone().into_bytes(),
        None => fs::read("/etc/resolv.conf").unwrap_or_default(),
    };
    let hosts = write("hosts", spec.hosts.as_bytes())?;
    let resolv = write("resolv.conf", &resolv)?;
    let hostname = write("hostname", format!("{}\n", spec.hostname).as_bytes())?;

    let mut fuse = None;
    let (root, overlay) = match &spec.rootfs {
        Rootfs::Dir(dir) => (dir.clone(), None),
        Rootfs::FuseOverlay {
            lowers,
            upper,
            work,
        } => {
            let (merged, lowers) = overlay_dirs(&run.0, lowers)?;
            fuse = Some(super::fuse::plan(&lowers, upper, work, &merged)?);
            (merged, None)
        }
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        } => {
            let (merged, lowers) = overlay_dirs(&run.0, lowers)?;
            let mut opts = b"lowerdir=".to_vec();
            for (i, l) in lowers.iter().enumerate() {
                if i > 0 {
                    opts.push(b':');
                }
                opts.extend_from_slice(l.as_os_str().as_bytes());
            }
            let mut strings = vec![
                ("upperdir", upper.as_os_str()),
                ("workdir", work.as_os_str()),
            ];
            let mut flags = Vec::new();
            if super::overlay_volatile() {
                flags.push("volatile");
            }
            if idmap.needs_userns() {
                flags.push("userxattr");
            } else {
                for k in ["index", "metacopy", "redirect_dir"] {
                    strings.push((k, std::ffi::OsStr::new("off")));
                }
            }
            for (k, v) in &strings {
                opts.push(b',');
                opts.extend_from_slice(k.as_bytes());
                opts.push(b'=');
                opts.extend_from_slice(v.as_bytes());
            }
            for f in &flags {
                opts.push(b',');
                opts.extend_from_slice(f.as_bytes());
            }
            // mount(2) takes one page of options and splits them on `,` and
            // `:`; longer lists or such paths need the new mount API's
            // `lowerdir+` (Linux 6.8), which takes one path at a time.
            let plain = |p: &Path| {
                !p.as_os_str()
                    .as_bytes()
                    .iter()
                    .any(|b| matches!(b, b',' | b':' | b'\\'))
            };
            let fits =
                opts.len() < 4000 && lowers.iter().all(|l| plain(l)) && plain(upper) && plain(work);
            let legacy = if fits {
                Some(cstr(&opts, "overlay options")?)
            } else {
                None
            };
            let ov = OverlayPlan {
                legacy,
                lowers: lowers
                    .iter()
                    .map(|l| cstr(l.as_os_str().as_bytes(), "layer path"))
                    .collect::<Result<_, _>>()?,
                strings: strings
                    .iter()
                    .map(|(k, v)| Ok((cstr(k.as_bytes(), "option")?, cstr(v.as_bytes(), "path")?)))
                    .collect::<Result<_, SandboxError>>()?,
                flags: flags
                    .iter()
                    .map(|f| cstr(f.as_bytes(), "option"))
                    .collect::<Result<_, _>>()?,
            };
            (merged, Some(ov))
        }
    };

    let mut ops = Vec::new();
    let mut targets = Vec::new();
    let std_ops = mount_ops::standard(&root, &hosts, &resolv, &hostname, spec.shm_size)?;
    let requested = mount_ops::requested(spec, &run.0, idmap)?;
    for (op, rel) in std_ops.into_iter().chain(requested) {
        ops.push(op);
        targets.push(rel);
    }
    // A missing working directory is made as the step's user, as BuildKit's
    // runc executor does (MkdirAllAndChown with the step's uid and gid).
    let (mut op, rel) = mount_op(&spec.cwd, Create::Dir, false, Action::Ensure);
    op.owner = Some((spec.uid, spec.gid));
    ops.push(op);
    targets.push(rel);

    let argv = spec
        .args
        .iter()
        .map(|a| cstr(a.as_bytes(), "argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = spec
        .env
        .iter()
        .map(|e| cstr(e.as_bytes(), "environment"))
        .collect::<Result<Vec<_>, _>>()?;
    let path_var = spec
        .env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let cmd = &spec.args[0];
    let candidates = if cmd.contains('/') {
        vec![cstr(cmd.as_bytes(), "command")?]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| {
                cstr(
                    format!("{}/{cmd}", d.trim_end_matches('/')).as_bytes(),
                    "command",
                )
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut ns_flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if spec.network == Network::None {
        ns_flags |= libc::CLONE_NEWNET;
    }
    let argv_ptrs = argv
        .iter()
        .map(|c| c.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp_ptrs = envp
        .iter()
        .map(|c| c.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let plan = Plan {
        userns: idmap.needs_userns(),
        setgroups: !idmap.is_single(),
        ns_flags,
        hostname: cstr(spec.hostname.as_bytes(), "hostname")?,
        root: cstr(root.as_os_str().as_bytes(), "root")?,
        overlay,
        fuse,
        ops,
        scratch: super::child::PathScratch::new(),
        cwd: cstr(spec.cwd.as_bytes(), "working directory")?,
        uid: spec.uid,
        gid: spec.gid,
        groups: spec.additional_gids.clone(),
        umask: spec.umask & 0o777,
        drop_caps: true,
        seccomp: super::seccomp::program(),
        _argv: argv,
        argv_ptrs,
        _envp: envp,
        envp_ptrs,
        candidates,
        fds: Fds {
            stdin: -1,
            stdout: -1,
            stderr: -1,
            error: -1,
            stubs: -1,
            status: -1,
            sync_w: -1,
            go_r: -1,
        },
    };
    Ok(Built {
        plan,
        targets,
        _run: run,
    })
}

/// The mount point of an overlay root in the step's run directory, and its
/// lower layers: overlayfs needs at least one, so a root without layers
/// gets an empty one.
fn overlay_dirs(run: &Path, lowers: &[PathBuf]) -> Result<(PathBuf, Vec<PathBuf>), SandboxError> {
    let merged = run.join("merged");
    fs::create_dir(&merged).map_err(io_err("creating", &merged))?;
    let mut lowers = lowers.to_vec();
    if lowers.is_empty() {
        let empty = run.join("empty");
        fs::create_dir(&empty).map_err(io_err("creating", &empty))?;
        lowers.push(empty);
    }
    Ok((merged, lowers))
}

/// Runs `spec` and streams its output to `sink`. Blocks until the process
/// and everything it started have exited.
pub fn run(spec: &Spec, idmap: &IdMap, sink: &mut dyn OutputSink) -> Result<Outcome, SandboxError> {
    run_cancellable(spec, idmap, sink, &|| false)
}

/// [`run`], but `cancel` is asked every 50 ms while the step runs (from the
/// calling thread; make it cheap, e.g. an `AtomicBool` load). Once it returns
/// true the step's whole process tree is killed (SIGKILL to its pid
/// namespace's init), the created mount points are still removed, and the
/// result is [`SandboxError::Cancelled`]. Use it to stop running steps when
/// another step fails or the user interrupts the build.
pub fn run_cancellable(
    spec: &Spec,
    idmap: &IdMap,
    sink: &mut dyn OutputSink,
    cancel: &dyn Fn() -> bool,
) -> Result<Outcome, SandboxError> {
    let mut built = build(spec, idmap)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (fail_r, fail_w) = pipe()?;
    let (stub_r, stub_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    let (sync_r, sync_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    // BuildKit gives a step an empty pipe as stdin (`[ -p /dev/stdin ]`
    // holds, a read ends at once): the write end closes before the fork.
    let (stdin_r, stdin_w) = pipe()?;
    drop(stdin_w);
    built.plan.fds = Fds {
        stdin: stdin_r.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        error: fail_w.as_raw_fd(),
        stubs: stub_w.as_raw_fd(),
        status: status_w.as_raw_fd(),
        sync_w: sync_w.as_raw_fd(),
        go_r: go_r.as_raw_fd(),
    };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child only runs `first_child`, which uses async-signal-safe
    // system calls on the plan built above and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io_err("forking", Path::new("-"))(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child.
        unsafe { child::first_child(&mut built.plan, parent) }
    }
    drop((
        out_w, err_w, fail_w, stub_w, status_w, sync_w, go_r, stdin_r,
    ));
    let map_result = handshake(idmap, pid, &sync_r, &go_w);
    drop(go_w);
    let mut streams = Streams {
        out: Some(out_r),
        err: Some(err_r),
        fail: Some(fail_r),
        stub: Some(stub_r),
        status: Some(status_r),
    };
    let collected = streams.pump(sink, pid, cancel);
    let mut wstatus = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut wstatus, 0) };
    let mut warnings = Vec::new();
    let stub_base = match &spec.rootfs {
        Rootfs::Overlay { upper, .. } | Rootfs::FuseOverlay { upper, .. } => upper.clone(),
        Rootfs::Dir(d) => d.clone(),
    };
    remove_stubs(
        &stub_base,
        &built.targets,
        &collected.stubs,
        idmap,
        &mut warnings,
    );
    map_result?;
    if collected.cancelled {
        return Err(SandboxError::Cancelled);
    }
    if let Some((stage, errno, index)) = collected.failure {
        return Err(setup_error(
            stage,
            errno,
            index,
            &built.targets,
            spec,
            idmap,
        ));
    }
    let status = collected.status.ok_or_else(|| SandboxError::Setup {
        stage: "waiting for the step".into(),
        errno: io::Error::from_raw_os_error(libc::ECHILD),
    })?;
    let status = if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    };
    Ok(Outcome { status, warnings })
}

/// Waits for the child's user namespace, writes its maps, lets it go on.
pub(super) fn handshake(
    idmap: &IdMap,
    pid: i32,
    sync_r: &OwnedFd,
    go_w: &OwnedFd,
) -> Result<(), SandboxError> {
    if !idmap.needs_userns() {
        return Ok(());
    }
    let mut b = [0u8];
    // SAFETY: reading one byte into a stack buffer from our pipe.
    let n = unsafe { libc::read(sync_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
    if n != 1 {
        return Ok(()); // the child failed; its error record says why
    }
    let r = idmap.apply(pid);
    let go = [u8::from(r.is_ok())];
    // SAFETY: writing one byte from a stack buffer to our pipe.
    unsafe { libc::write(go_w.as_raw_fd(), go.as_ptr().cast(), 1) };
    r
}

fn setup_error(
    stage: u32,
    errno: i32,
    index: u32,
    targets: &[String],
    spec: &Spec,
    idmap: &IdMap,
) -> SandboxError {
    let err = io::Error::from_raw_os_error(errno);
    let stage = Stage::from_u32(stage);
    let target = || {
        targets
            .get(index as usize)
            .map_or(String::new(), |t| format!("/{t}"))
    };
    match stage {
        Some(Stage::UserNs) => SandboxError::UserNamespace {
            errno: err,
            hint: userns_hint(),
        },
        Some(Stage::Exec) => SandboxError::Exec {
            command: spec.args.first().cloned().unwrap_or_default(),
            errno: if errno == libc::ENOENT && !spec.args[0].contains('/') {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "executable file not found in $PATH",
                )
            } else {
                err
            },
        },
        Some(Stage::MountRoot) if idmap.needs_userns() && errno == libc::EPERM => {
            SandboxError::UserNamespace {
                errno: err,
                hint: userns_hint(),
            }
        }
        s => {
            let what = match s {
                Some(Stage::Target) => format!("creating the mount point {}", target()),
                Some(Stage::Mount) => format!("mounting {}", target()),
                Some(Stage::Readonly) => format!("making {} read-only", target()),
                Some(Stage::Symlink) => format!("creating {}", target()),
                Some(Stage::MountRoot) => {
                    "mounting the root filesystem (overlayfs; very long layer lists need Linux 6.8)"
                        .into()
                }
                Some(Stage::FuseMount) => format!(
                    "mounting the root filesystem with fuse-overlayfs (wait status {index:#x}; \
                     it needs read-write access to /dev/fuse, see its message above)"
                ),
                Some(Stage::Cwd) => format!("entering the working directory {}", spec.cwd),
                Some(Stage::Creds) => {
                    format!(
                        "switching to uid {} gid {} groups {:?}",
                        spec.uid, spec.gid, spec.additional_gids
                    )
                }
                Some(Stage::Seccomp) => "installing the seccomp filter".to_string(),
                Some(other) => format!("at {other:?}"),
                None => format!("at stage {stage:?}"),
            };
            let what = match super::idmap::seccomp_hint() {
                Some(hint) if errno == libc::EPERM => format!("{what} ({hint})"),
                _ => what,
            };
            SandboxError::Setup {
                stage: what,
                errno: err,
            }
        }
    }
}
