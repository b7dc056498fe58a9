//! Runs one process in fresh Linux namespaces on a prepared root filesystem.
//!
//! The sandbox knows nothing about Dockerfiles: it takes a [`Spec`] (root,
//! mounts, argv, env, ids) and streams the process's output to an
//! [`OutputSink`]. There is no daemon and no helper binary: the parent forks,
//! the child enters the namespaces, forks again to become pid 1 of a new pid
//! namespace, mounts, pivots and execs. See `docs/decisions.md` ("Sandbox").
mod child;
mod child_mounts;
mod fuse;
mod idmap;
mod mount_ops;
mod opener;
mod plan;
mod reap;
mod seccomp;
pub(crate) mod user;
mod userns;

use std::path::PathBuf;

pub use idmap::{IdMap, IdRange};
pub use opener::{open_owned, read_owned, Opener};
pub use plan::{run, run_cancellable};
pub use user::{resolve_user, ExecUser, UserError};
pub(crate) use userns::{chown_in_userns, set_capabilities_in_userns};
pub use userns::{overlay_volatile, probe_fuse_overlay, probe_overlay, remove_tree, rename_dir};

/// Error from preparing or running a sandboxed process.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec itself is unusable.
    #[error("invalid sandbox spec: {0}")]
    Spec(String),
    /// Preparing files or pipes on the host failed.
    #[error("sandbox: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The kernel or a policy refused a user namespace.
    #[error("cannot create a user namespace ({errno}): {hint}")]
    UserNamespace {
        /// The kernel's error.
        errno: std::io::Error,
        /// What to change on the machine.
        hint: String,
    },
    /// Writing the user namespace's id maps failed.
    #[error("user namespace id map: {what}: {detail}")]
    IdMap {
        /// The tool or file.
        what: String,
        /// Its error output.
        detail: String,
    },
    /// A setup step inside the new namespaces failed.
    #[error("sandbox setup failed {stage}: {errno}")]
    Setup {
        /// The step, with the path it concerned.
        stage: String,
        /// The kernel's error.
        errno: std::io::Error,
    },
    /// The command could not be executed (not found on PATH, not executable).
    #[error("cannot run {command:?}: {errno}")]
    Exec {
        /// The command as given.
        command: String,
        /// The kernel's error.
        errno: std::io::Error,
    },
    /// The caller cancelled the step; its processes were killed.
    #[error("the step was cancelled")]
    Cancelled,
}

/// Something the caller should show the user; the library never prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// No subordinate ids (or no newuidmap/newgidmap): only container root is
    /// mapped, so chown to any other id inside a step fails.
    SingleIdMapping {
        /// The user kiln runs as.
        user: String,
    },
    /// A mount point created for a step could not be removed afterwards.
    StubLeft {
        /// The path relative to the root.
        path: String,
        /// Why it stayed.
        reason: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::SingleIdMapping { user } => write!(
                f,
                "{user} has no subordinate ids in /etc/subuid and /etc/subgid (or newuidmap and \
                 newgidmap are missing): RUN steps map root only, so a chown to another id fails"
            ),
            Warning::StubLeft { path, reason } => write!(
                f,
                "/{path}, made as a mount point for a step, could not be removed: {reason}"
            ),
        }
    }
}

/// The root filesystem of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rootfs {
    /// Kernel overlayfs of read-only layers under a fresh writable directory;
    /// mounted inside the step's namespaces.
    Overlay {
        /// Layer directories, topmost first (may be empty for `FROM scratch`).
        lowers: Vec<PathBuf>,
        /// The writable upper directory; what the step changes ends up here.
        upper: PathBuf,
        /// overlayfs's empty work directory, on the same filesystem as `upper`.
        work: PathBuf,
    },
    /// Like [`Rootfs::Overlay`], but mounted by the `fuse-overlayfs`
    /// program inside the step's namespaces (the fallback where kernel
    /// overlayfs is refused but `/dev/fuse` can be opened). Its upper
    /// directory may mark whiteouts and opaque directories with `.wh.` files.
    FuseOverlay {
        /// Layer directories, topmost first (may be empty for `FROM scratch`).
        lowers: Vec<PathBuf>,
        /// The writable upper directory.
        upper: PathBuf,
        /// fuse-overlayfs's work directory, on the same filesystem as `upper`.
        work: PathBuf,
    },
    /// An already assembled directory (the copy fallback), used in place.
    Dir(PathBuf),
}

/// What a [`Mount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A host file or directory (also cache directories, secret files and
    /// agent sockets). `src` must already be resolved safely by the caller.
    Bind {
        /// Host path.
        src: PathBuf,
        /// Mount read-only.
        readonly: bool,
    },
    /// A host directory mounted writable, with the writes thrown away after
    /// the step (an overlay with a scratch upper directory; a file is copied).
    BindScratch {
        /// Host path.
        src: PathBuf,
    },
    /// A fresh tmpfs (`nosuid`, as BuildKit mounts one).
    Tmpfs {
        /// Size limit in bytes (the kernel's default when `None`).
        size: Option<u64>,
    },
    /// Not a mount: makes sure the target directory exists (e.g. the
    /// parents BuildKit leaves in the image for a file mounted below them,
    /// while the file's own mount point is removed).
    EnsureDir,
}

/// One extra mount into the step's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the root; resolved inside it (symlinks cannot
    /// lead out), created when missing.
    pub target: String,
    /// What to mount.
    pub kind: MountKind,
    /// Leave a mount point that had to be created in the root (an empty
    /// directory or file) instead of removing it after the step.
    pub keep_created_target: bool,
}

/// The step's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network namespace (BuildKit's default).
    #[default]
    Host,
    /// A new network namespace with only a loopback device (down).
    None,
}

/// Everything that describes one sandboxed process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// Extra mounts, mounted in order after /proc, /dev and /etc files.
    pub mounts: Vec<Mount>,
    /// argv; `args[0]` is looked up on the container's `PATH` when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value` strings, the whole environment.
    pub env: Vec<String>,
    /// Absolute working directory; when missing, created (0755) with every
    /// missing parent, owned by `uid`:`gid` as BuildKit's executor makes it.
    pub cwd: String,
    /// User id inside the namespace.
    pub uid: u32,
    /// Group id inside the namespace.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// File mode creation mask.
    pub umask: u32,
    /// Host name (also in the step's own, writable /etc/hostname).
    pub hostname: String,
    /// Network namespace choice.
    pub network: Network,
    /// Contents of /etc/hosts for the step.
    pub hosts: String,
    /// Contents of /etc/resolv.conf; `None` copies the host's.
    pub resolv_conf: Option<String>,
    /// Size limit of the /dev/shm tmpfs in bytes (64 MiB, as Docker's).
    pub shm_size: u64,
}

/// Docker's default /dev/shm size.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

impl Spec {
    /// A spec with BuildKit's defaults: root, `/`, umask 022, host name
    /// `buildkitsandbox`, host network, a default `PATH`.
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> Spec {
        Spec {
            rootfs,
            mounts: Vec::new(),
            args,
            env: vec![format!("PATH={DEFAULT_PATH}")],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            umask: 0o022,
            hostname: "buildkitsandbox".into(),
            network: Network::Host,
            hosts:
                "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    .into(),
            resolv_conf: None,
            shm_size: DEFAULT_SHM_SIZE,
        }
    }
}

/// The `PATH` used when the environment has none (BuildKit's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's stdout.
    Stdout,
    /// The process's stderr.
    Stderr,
}

/// Receives the process's output as it arrives.
pub trait OutputSink {
    /// Called for every chunk read from the process.
    fn output(&mut self, stream: Stream, data: &[u8]);
}

/// An [`OutputSink`] that keeps everything in memory.
#[derive(Debug, Default, Clone)]
pub struct CollectOutput {
    /// All stdout bytes.
    pub stdout: Vec<u8>,
    /// All stderr bytes.
    pub stderr: Vec<u8>,
}

impl OutputSink for CollectOutput {
    fn output(&mut self, stream: Stream, data: &[u8]) {
        match stream {
            Stream::Stdout => self.stdout.extend_from_slice(data),
            Stream::Stderr => self.stderr.extend_from_slice(data),
        }
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }
}

/// The result of a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How the process ended.
    pub status: ExitStatus,
    /// Things to tell the user.
    pub warnings: Vec<Warning>,
}
