//! RUN through the sandbox: the stage's layers become overlay snapshots
//! (each extracted once into the store), the step runs in fresh
//! namespaces, and what it changed becomes the next layer.
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::cache_mount::CacheLocks;
use super::secrets::{SecretStore, StepSecrets};
use super::{LayerBlob, RunControl, RunExecutor, RunRequest};
use crate::instructions::{MountType, NetworkMode};
use crate::layer::{CompressionOptions, LayerOptions};
use crate::sandbox::{self, IdMap, Mount, MountKind, Network, OutputSink, Rootfs, Spec};
use crate::snapshot::{self, RootfsMode};
use crate::store::Store;

/// Lines of a failing step's output shown in the error.
const TAIL_LINES: usize = 20;

/// Runs RUN steps in the sandbox.
pub struct SandboxRunner<'a> {
    store: &'a Store,
    snapshots: snapshot::Store,
    idmap: IdMap,
    context: PathBuf,
    scratch: PathBuf,
    counter: AtomicUsize,
    /// Whether a step already ran on disk for lack of room in memory.
    scratch_short: std::sync::atomic::AtomicBool,
    network: Network,
    layer_options: LayerOptions,
    secrets: SecretStore,
    /// The context as bind mounts show it (.dockerignore applied).
    context_view: super::context_mount::ContextView,
    /// Things to tell the user (id mapping limits, skipped layer members).
    warnings: Mutex<Vec<String>>,
}

impl<'a> SandboxRunner<'a> {
    /// A runner over `store`, binding `--mount`s from `context`, keeping
    /// its temporary files in `scratch`; `network_none` is the build's
    /// `--network=none`.
    pub fn new(
        store: &'a Store,
        context: &Path,
        scratch: &Path,
        network_none: bool,
        compression: CompressionOptions,
        source_date_epoch: Option<i64>,
    ) -> Result<Self, String> {
        let (idmap, warnings) = IdMap::detect();
        // Snapshots made through a user namespace mark opaque directories
        // with `user.*` xattrs, root's with `trusted.*`: a root store used
        // both ways (in and out of a container) keeps them apart.
        let bucket = if idmap.needs_userns() && rustix::process::geteuid().is_root() {
            "snapshots-userns"
        } else {
            "snapshots"
        };
        let dir = store.cache_dir(bucket).map_err(|e| e.to_string())?;
        let mut snapshots =
            snapshot::Store::open(&dir, idmap.clone()).map_err(|e| e.to_string())?;
        let mut notes: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        if let Some(refusal) = snapshots.detect_mode().map_err(|e| e.to_string())? {
            notes.push(format!(
                "overlayfs refused ({refusal}); RUN steps use a copy of the root"
            ));
        }
        Ok(SandboxRunner {
            store,
            snapshots,
            idmap,
            context: context.to_path_buf(),
            scratch: scratch.to_path_buf(),
            counter: AtomicUsize::new(0),
            scratch_short: Default::default(),
            network: if network_none {
                Network::None
            } else {
                Network::Host
            },
            layer_options: LayerOptions {
                compression,
                source_date_epoch,
            },
            warnings: Mutex::new(notes),
            secrets: SecretStore::new(),
            context_view: Default::default(),
        })
    }

    /// The context's .dockerignore rules: a bind mount of the context
    /// shows only what they keep, as BuildKit's filtered context does.
    pub fn with_ignore_rules(mut self, rules: crate::context::IgnoreRules) -> Self {
        self.context_view = super::context_mount::ContextView::new(rules);
        self
    }

    /// The secrets and SSH agents `RUN --mount=type=secret|ssh` may use.
    /// They stay on the runner: never in a cache key or the image.
    pub fn with_secrets(mut self, secrets: SecretStore) -> Self {
        self.secrets = secrets;
        self
    }

    /// Assembles every step's root as `mode` says instead of the mode the
    /// runner detected (`KILN_ROOTFS_MODE`): to use fuse-overlayfs or the
    /// copy where kernel overlayfs works but is not wanted, or to check that
    /// all three give the same layers. fuse-overlayfs is probed first, so
    /// a missing program or /dev/fuse fails here, not at the first step.
    pub fn with_rootfs_mode(mut self, mode: RootfsMode) -> Result<Self, String> {
        if mode == RootfsMode::FuseOverlay {
            self.snapshots
                .probe_fuse_overlay()
                .map_err(|e| e.to_string())?;
        }
        self.snapshots.set_mode(mode);
        Ok(self)
    }

    /// Puts RUN steps' writable directories in a private directory made in
    /// `base` (a RAM-backed filesystem) as far as `limits` allow; see
    /// [`snapshot::Store::set_scratch`]. When the scratch cannot be used
    /// the steps use the disk and a warning says why. The directory is
    /// deleted when the runner is dropped.
    pub fn with_scratch(mut self, base: &Path, limits: snapshot::ScratchLimits) -> Self {
        if let Err(e) = self.snapshots.set_scratch(base, limits) {
            self.warn(format!("{e}; RUN steps use the disk"));
        }
        self
    }

    /// [`SandboxRunner::with_scratch`] in the memory filesystem
    /// [`snapshot::memory_scratch_base`] picks, with the default limits
    /// (`kiln build --scratch memory`); a warning when there is none.
    pub fn with_memory_scratch(self) -> Self {
        match snapshot::memory_scratch_base() {
            Ok(base) => self.with_scratch(&base, snapshot::ScratchLimits::default()),
            Err(why) => {
                self.warn(format!(
                    "no usable memory filesystem for the scratch ({why}); RUN steps use the disk"
                ));
                self
            }
        }
    }

    /// The build's scratch directory in memory, while there is one.
    pub fn scratch_dir(&self) -> Option<&Path> {
        self.snapshots.scratch_dir()
    }

    /// Things to tell the user (id mapping limits, skipped layer members),
    /// collected so far.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn warn(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    fn mounts(
        &self,
        req: &RunRequest,
        step: &mut StepMounts,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Mount>, String> {
        let mut out = Vec::new();
        let mut ssh_index = 0;
        if let Some(script) = &req.script {
            // A `#!` heredoc runs as /dev/pipes/NAME, as BuildKit mounts it.
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let dir = self.scratch.join(format!("pipes-{n}"));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let file = dir.join(&script.name);
            std::fs::write(&file, &script.data).map_err(|e| format!("{}: {e}", file.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            out.push(Mount {
                target: "/dev/pipes".into(),
                kind: MountKind::Bind {
                    src: dir,
                    readonly: true,
                },
                keep_created_target: false,
            });
        }
        for (i, m) in req.mounts.iter().enumerate() {
            let absolute = |t: &str| {
                if t.starts_with('/') {
                    t.to_string()
                } else {
                    format!("{}/{}", req.workdir.trim_end_matches('/'), t)
                }
            };
            let target = absolute(&m.target);
            let kind = match m.kind {
                MountType::Bind => {
                    let (root, from_context) = match req.mount_roots.get(i) {
                        Some(Some(r)) => (r.clone(), false),
                        _ => (self.context.clone(), true),
                    };
                    let mut src = resolve_in(&root, &m.source)?;
                    if from_context {
                        let n = self.counter.fetch_add(1, Ordering::Relaxed);
                        src = self
                            .context_view
                            .source(&root, &src, &m.source, &self.scratch, n)?;
                    }
                    let is_file = !src.is_dir();
                    let kind = if m.read_only {
                        MountKind::Bind {
                            src,
                            readonly: true,
                        }
                    } else {
                        MountKind::BindScratch { src }
                    };
                    if is_file {
                        // A file's mount point is not left in the layer
                        // (the directories made for it are), as BuildKit
                        // leaves it.
                        push_file_mount(&mut out, &target, kind);
                        continue;
                    }
                    kind
                }
                MountType::Cache => {
                    let seed = req.mount_roots.get(i).and_then(|r| r.as_deref());
                    let src = super::cache_mount::source(
                        &super::cache_mount::CacheRoots {
                            store: self.store,
                            idmap: &self.idmap,
                            warn: &|w| self.warn(w),
                        },
                        m,
                        seed,
                        &mut step.locks,
                        cancelled,
                    )?;
                    MountKind::Bind {
                        src,
                        readonly: m.read_only,
                    }
                }
                MountType::Tmpfs => MountKind::Tmpfs {
                    size: (m.size_limit > 0).then_some(m.size_limit as u64),
                },
                MountType::Secret => {
                    let id = m.secret_id();
                    let data = self.secrets.read_secret(&id).map_err(|e| e.to_string())?;
                    let Some(data) = data else {
                        if m.required {
                            return Err(format!(
                                "secret {id} not found (kiln build --secret id={id},src=FILE)"
                            ));
                        }
                        continue;
                    };
                    if let Some(var) = &m.env {
                        let value = String::from_utf8(data.clone()).map_err(|_| {
                            format!("secret {id} is not UTF-8 text, so it cannot be ${var}")
                        })?;
                        step.env.push((var.clone(), value));
                    }
                    let Some(t) = m.secret_target() else {
                        continue;
                    };
                    let src = step.secrets.file(
                        &id,
                        &data,
                        m.uid.unwrap_or(0),
                        m.gid.unwrap_or(0),
                        m.secret_mode(),
                    )?;
                    push_file_mount(
                        &mut out,
                        &absolute(&t),
                        MountKind::Bind {
                            src,
                            readonly: true,
                        },
                    );
                    continue;
                }
                MountType::Ssh => {
                    let id = m.ssh_id();
                    let t = if m.target.is_empty() {
                        format!("/run/buildkit/ssh_agent.{ssh_index}")
                    } else {
                        absolute(&m.target)
                    };
                    ssh_index += 1;
                    // The first agent mount is the step's SSH_AUTH_SOCK
                    // unless the step sets one (BuildKit's llb.ExecOp).
                    if ssh_index == 1 && !req.env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                        step.env.push(("SSH_AUTH_SOCK".into(), t.clone()));
                    }
                    let Some(agent) = self.secrets.agent(&id).map(Path::to_path_buf) else {
                        if m.required {
                            return Err(format!(
                                "ssh agent {id} not forwarded (kiln build --ssh {id}=SOCKET)"
                            ));
                        }
                        continue;
                    };
                    let src = step.secrets.agent(
                        &id,
                        &agent,
                        m.uid.unwrap_or(0),
                        m.gid.unwrap_or(0),
                        m.mode.unwrap_or(0o600),
                        self.secrets.agent_is_users(&id),
                    )?;
                    push_file_mount(
                        &mut out,
                        &t,
                        MountKind::Bind {
                            src,
                            readonly: true,
                        },
                    );
                    continue;
                }
            };
            out.push(Mount {
                target,
                kind,
                keep_created_target: true,
            });
        }
        Ok(out)
    }
}

/// What one step holds while it runs: cache locks, its staged secrets and
/// agent sockets, and the environment its secret mounts add.
struct StepMounts {
    locks: CacheLocks,
    secrets: StepSecrets,
    env: Vec<(String, String)>,
}

/// A secret file, agent socket or bound file at `target`: BuildKit leaves
/// the directories made for it in the layer but not the file's mount point.
fn push_file_mount(out: &mut Vec<Mount>, target: &str, kind: MountKind) {
    let parent = target
        .trim_end_matches('/')
        .rsplit_once('/')
        .map(|(p, _)| p);
    if let Some(p) = parent.filter(|p| !p.is_empty()) {
        out.push(Mount {
            target: p.to_string(),
            kind: MountKind::EnsureDir,
            keep_created_target: true,
        });
    }
    out.push(Mount {
        target: target.to_string(),
        kind,
        keep_created_target: false,
    });
}

/// Passes a step's output on and keeps its last lines for the error
/// message of a failing step; memory stays bounded whatever it prints.
struct Tail<'a> {
    inner: &'a mut dyn OutputSink,
    text: std::collections::VecDeque<u8>,
}

impl<'a> Tail<'a> {
    /// Bytes kept: enough for [`TAIL_LINES`] ordinary lines.
    const KEEP: usize = 16 * 1024;

    fn new(inner: &'a mut dyn OutputSink) -> Tail<'a> {
        Tail {
            inner,
            text: std::collections::VecDeque::new(),
        }
    }

    fn lines(&mut self) -> Vec<String> {
        let text = String::from_utf8_lossy(self.text.make_contiguous()).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .get(lines.len().saturating_sub(TAIL_LINES)..)
            .unwrap_or(&[])
            .iter()
            .map(|l| l.to_string())
            .collect()
    }
}

impl OutputSink for Tail<'_> {
    fn output(&mut self, stream: sandbox::Stream, data: &[u8]) {
        self.inner.output(stream, data);
        self.text.extend(data);
        let extra = self.text.len().saturating_sub(Self::KEEP);
        self.text.drain(..extra);
    }
}

/// A context path resolved inside the context root (symlinks cannot lead
/// out of it).
pub(super) fn resolve_in(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let mut cur = root.to_path_buf();
    let mut hops = 0;
    let mut pending: Vec<String> = rel
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .rev()
        .map(String::from)
        .collect();
    while let Some(part) = pending.pop() {
        if part == ".." {
            if cur != root {
                cur.pop();
            }
            continue;
        }
        // Parts are in `bytename`'s encoding: a link target that is not
        // UTF-8 is followed by its bytes.
        let next = cur.join(crate::bytename::to_path(&part));
        match std::fs::symlink_metadata(&next) {
            Ok(md) if md.file_type().is_symlink() => {
                hops += 1;
                if hops > 255 {
                    return Err(format!(
                        "{}: too many levels of symbolic links",
                        crate::bytename::show(rel)
                    ));
                }
                let t =
                    std::fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
                let t = crate::bytename::from_path(&t).into_owned();
                if t.starts_with('/') {
                    cur = root.to_path_buf();
                }
                for s in t.split('/').filter(|s| !s.is_empty() && *s != ".").rev() {
                    pending.push(s.to_string());
                }
            }
            _ => cur = next,
        }
    }
    Ok(cur)
}

/// The home directory of the first passwd entry with `uid`, or "/" (runc's
/// default) when there is none.
fn passwd_home(passwd: Option<&str>, uid: u32) -> String {
    passwd
        .into_iter()
        .flat_map(str::lines)
        .map(|l| l.trim().split(':').collect::<Vec<_>>())
        .filter(|f| {
            f.first()
                .is_some_and(|n| !n.is_empty() && !n.starts_with('#'))
        })
        .find(|f| f.get(2).and_then(|u| u.parse::<u32>().ok()) == Some(uid))
        .and_then(|f| f.get(5).filter(|h| !h.is_empty()).map(|h| h.to_string()))
        .unwrap_or_else(|| "/".into())
}

impl Drop for SandboxRunner<'_> {
    fn drop(&mut self) {
        // The volatile snapshots in the memory scratch end with the build.
        let _ = self.snapshots.clear_scratch();
        // Discarded workspaces were renamed away during the build; delete
        // them now, off the steps' critical path.
        let _ = self.snapshots.empty_trash();
    }
}

impl RunExecutor for SandboxRunner<'_> {
    fn run(
        &self,
        req: &RunRequest,
        control: &mut RunControl<'_>,
    ) -> Result<Option<LayerBlob>, String> {
        let mut diff_ids = Vec::new();
        for l in &req.layers {
            let mut f =
                std::fs::File::open(&l.path).map_err(|e| format!("{}: {e}", l.path.display()))?;
            let (_, warnings) = self
                .snapshots
                .ensure_layer(&l.diff_id, &mut f)
                .map_err(|e| e.to_string())?;
            for w in &warnings {
                self.warn(w.to_string());
            }
            diff_ids.push(l.diff_id.clone());
        }
        let ws = self
            .snapshots
            .workspace(&diff_ids)
            .map_err(|e| e.to_string())?;
        if let Some(dir) = self.snapshots.scratch_dir() {
            if !ws.on_scratch() && !self.scratch_short.swap(true, Ordering::Relaxed) {
                self.warn(format!(
                    "the memory scratch {} is short of room (or the build's budget is spent): \
                     RUN steps use the disk until it has room again",
                    dir.display()
                ));
            }
        }
        let mut result = self.run_in(&ws, req, control);
        let mut ws = ws;
        if matches!(result, Err(StepFailure::ScratchFilled)) {
            // The step may have met ENOSPC in memory (and even ignored
            // it): only a run on disk gives a layer to trust.
            let _ = ws.discard();
            let note = "RUN step filled the memory scratch; running it again on disk";
            control.output.output(
                sandbox::Stream::Stderr,
                format!("kiln: {note}\n").as_bytes(),
            );
            self.warn(format!("{note}: {}", req.argv.join(" ")));
            ws = self
                .snapshots
                .disk_workspace(&diff_ids)
                .map_err(|e| e.to_string())?;
            result = self.run_in(&ws, req, control);
        }
        let layer = match result {
            Ok(l) => l,
            Err(e) => {
                let _ = ws.discard();
                return Err(e.into());
            }
        };
        match &layer {
            Some(blob) if ws.mode == RootfsMode::KernelOverlay => {
                self.snapshots
                    .commit(ws, &blob.diff_id)
                    .map_err(|e| e.to_string())?;
            }
            _ => ws.discard().map_err(|e| e.to_string())?,
        }
        Ok(layer)
    }
}

impl SandboxRunner<'_> {
    fn run_in(
        &self,
        ws: &snapshot::Workspace,
        req: &RunRequest,
        control: &mut RunControl<'_>,
    ) -> Result<Option<LayerBlob>, StepFailure> {
        let read = |p: &str| -> Result<Option<String>, String> {
            Ok(ws
                .read_file(Path::new(p))
                .map_err(|e| e.to_string())?
                .map(|b| String::from_utf8_lossy(&b).into_owned()))
        };
        let user = sandbox::resolve_user(
            &req.user,
            read("etc/passwd")?.as_deref(),
            read("etc/group")?.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let rootfs: Rootfs = ws.rootfs();
        let mut spec = Spec::new(rootfs, req.argv.clone());
        spec.env = req.env.clone();
        if !spec.env.iter().any(|e| e.starts_with("PATH=")) {
            spec.env.push(format!("PATH={}", sandbox::DEFAULT_PATH));
        }
        // runc sets HOME from the user's passwd entry ("/" without one)
        // when the step's environment lacks it; the image config never
        // gets it.
        if !spec.env.iter().any(|e| e.starts_with("HOME=")) {
            let home = passwd_home(read("etc/passwd")?.as_deref(), user.uid);
            spec.env.push(format!("HOME={home}"));
        }
        spec.cwd = if req.workdir.is_empty() {
            "/".into()
        } else {
            req.workdir.clone()
        };
        for (name, addr) in &req.extra_hosts {
            spec.hosts.push_str(&format!("{addr}\t{name}\n"));
        }
        if let Some(size) = req.shm_size {
            spec.shm_size = size;
        }
        spec.uid = user.uid;
        spec.gid = user.gid;
        spec.additional_gids = user.additional_gids;
        spec.network = match req.network {
            NetworkMode::Host => Network::Host,
            NetworkMode::None => Network::None,
            NetworkMode::Default => self.network,
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut step = StepMounts {
            locks: CacheLocks::default(),
            secrets: StepSecrets::new(self.scratch.join(format!("secrets-{n}")), &self.idmap),
            env: Vec::new(),
        };
        let cancel = control.cancel;
        spec.mounts = self.mounts(req, &mut step, &|| cancel.is_cancelled())?;
        for (k, v) in &step.env {
            let prefix = format!("{k}=");
            spec.env.retain(|e| !e.starts_with(&prefix));
            spec.env.push(format!("{k}={v}"));
        }
        let mut out = Tail::new(&mut *control.output);
        // Asked every 50 ms: also the moments to watch the scratch's space;
        // a step that filled it is stopped (it runs again on disk).
        let poll = || ws.scratch_filled() || cancel.is_cancelled();
        let outcome = sandbox::run_cancellable(&spec, &self.idmap, &mut out, &poll)
            .map_err(|e| e.to_string());
        // Secrets, agents and cache locks end with the step.
        drop(step);
        if ws.scratch_filled() && !cancel.is_cancelled() {
            return Err(StepFailure::ScratchFilled);
        }
        let outcome = outcome?;
        for w in &outcome.warnings {
            self.warn(w.to_string());
        }
        if !outcome.status.success() {
            let tail = out.lines().join("\n");
            let how = match outcome.status {
                sandbox::ExitStatus::Code(c) => format!("exit code: {c}"),
                sandbox::ExitStatus::Signal(s) => format!("killed by signal {s}"),
            };
            return Err(format!(
                "process {:?} did not complete successfully: {how}{}",
                req.argv.join(" "),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("\n{tail}")
                }
            )
            .into());
        }
        let entries = ws.diff().map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Ok(None);
        }
        // Files the step gave to other ids may be unreadable outside the
        // user namespace; the opener reads them as container root.
        let opener = sandbox::Opener::new(&self.idmap);
        let layer = crate::layer::write_layer_with(
            self.store,
            entries,
            &self.layer_options,
            &|p: &Path| opener.open(p),
        )
        .map_err(|e| e.to_string())?;
        Ok(Some(LayerBlob {
            path: self.store.blob_path(&layer.descriptor.digest),
            digest: layer.descriptor.digest.to_string(),
            diff_id: layer.diff_id.to_string(),
            size: layer.descriptor.size,
            media_type: layer.descriptor.media_type.clone(),
        }))
    }
}

/// Why a step gave no layer.
#[derive(Debug)]
enum StepFailure {
    /// The step failed; the message says how.
    Failed(String),
    /// The memory scratch ran (nearly) full while the step ran in it: its
    /// outcome is not to be trusted.
    ScratchFilled,
}

impl From<String> for StepFailure {
    fn from(message: String) -> Self {
        StepFailure::Failed(message)
    }
}

impl From<StepFailure> for String {
    fn from(f: StepFailure) -> Self {
        match f {
            StepFailure::Failed(m) => m,
            StepFailure::ScratchFilled => {
                "RUN step filled the memory scratch (the disk was not tried)".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_in;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn mount_sources_follow_links_inside_their_root_byte_for_byte() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let raw = OsStr::from_bytes(b"caf\xe9");
        std::fs::create_dir_all(root.join(raw).join("sub")).unwrap();
        // A relative target that is not UTF-8, and an absolute one that
        // would leave the root on the host.
        std::os::unix::fs::symlink(raw, root.join("l")).unwrap();
        std::os::unix::fs::symlink("/../etc", root.join("up")).unwrap();
        assert_eq!(
            resolve_in(root, "l/sub").unwrap(),
            root.join(raw).join("sub")
        );
        assert_eq!(resolve_in(root, "up").unwrap(), root.join("etc"));
        assert_eq!(resolve_in(root, "../../x").unwrap(), root.join("x"));
    }
}
