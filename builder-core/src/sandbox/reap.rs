//! The parent's reading side of a run: the step's output, setup failure
//! records, created mount points and the wait status arrive over pipes; and
//! the created mount points are removed afterwards.
use std::ffi::c_int;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::{IdMap, OutputSink, Stream, Warning};

/// A mount point the step's init made: a prefix of an op's target, or a
/// path it reached through a symlink.
pub(super) enum Stub {
    Prefix { op: u32, len: u32 },
    Path(String),
}

#[derive(Default)]
pub(super) struct Collected {
    pub failure: Option<(u32, i32, u32)>,
    pub stubs: Vec<Stub>,
    pub status: Option<i32>,
    /// The step was killed because the caller cancelled it.
    pub cancelled: bool,
}

pub(super) struct Streams {
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    pub fail: Option<OwnedFd>,
    pub stub: Option<OwnedFd>,
    pub status: Option<OwnedFd>,
}

impl Streams {
    /// Reads every pipe until all writers are gone. While the step runs,
    /// `cancel` is asked every [`CANCEL_POLL_MS`]; once it says yes, the
    /// step's pid-namespace init is killed (or, before init exists, the
    /// intermediate child `first`, whose death takes init along through
    /// `PR_SET_PDEATHSIG`).
    pub fn pump(
        &mut self,
        sink: &mut dyn OutputSink,
        first: libc::pid_t,
        cancel: &dyn Fn() -> bool,
    ) -> Collected {
        let mut c = Collected::default();
        let (mut fail_buf, mut stub_buf, mut status_buf) = (Vec::new(), Vec::new(), Vec::new());
        let mut buf = vec![0u8; 65536];
        loop {
            let slots = [&self.out, &self.err, &self.fail, &self.stub, &self.status];
            let mut pfds: Vec<libc::pollfd> = slots
                .iter()
                .map(|s| libc::pollfd {
                    fd: s.as_ref().map_or(-1, |f| f.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            if pfds.iter().all(|p| p.fd < 0) {
                break;
            }
            if !c.cancelled && status_buf.len() < 8 && cancel() {
                c.cancelled = true;
                kill_step(first, &status_buf);
            }
            let timeout = if c.cancelled { -1 } else { CANCEL_POLL_MS };
            // SAFETY: pfds is a valid array of pollfd for its length.
            let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if r < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            for (i, p) in pfds.iter().enumerate() {
                if p.fd < 0 || p.revents == 0 {
                    continue;
                }
                // SAFETY: reading into our buffer from a pipe we own.
                let n = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                let data = buf.get(..n.max(0) as usize).unwrap_or_default();
                if n <= 0 {
                    match i {
                        0 => self.out = None,
                        1 => self.err = None,
                        2 => self.fail = None,
                        3 => self.stub = None,
                        _ => self.status = None,
                    }
                    continue;
                }
                match i {
                    0 => sink.output(Stream::Stdout, data),
                    1 => sink.output(Stream::Stderr, data),
                    2 => fail_buf.extend_from_slice(data),
                    3 => stub_buf.extend_from_slice(data),
                    _ => status_buf.extend_from_slice(data),
                }
            }
        }
        let word = |b: &[u8], i: usize| -> u32 {
            b.get(i..i + 4)
                .and_then(|s| s.try_into().ok())
                .map_or(0, u32::from_ne_bytes)
        };
        if fail_buf.len() >= 12 {
            c.failure = Some((
                word(&fail_buf, 0),
                word(&fail_buf, 4) as i32,
                word(&fail_buf, 8),
            ));
        }
        let mut at = 0;
        while at + 8 <= stub_buf.len() {
            let (op, len) = (word(&stub_buf, at), word(&stub_buf, at + 4));
            at += 8;
            if op & super::child_mounts::STUB_PATH == 0 {
                c.stubs.push(Stub::Prefix { op, len });
                continue;
            }
            let Some(path) = stub_buf.get(at..at + len as usize) else {
                break;
            };
            at += len as usize;
            if let Ok(path) = std::str::from_utf8(path) {
                c.stubs.push(Stub::Path(path.to_owned()));
            }
        }
        // The first word is init's pid, the second its wait status.
        if status_buf.len() >= 8 {
            c.status = Some(word(&status_buf, 4) as i32);
        }
        c
    }
}

/// How often a running step's cancel callback is asked, in milliseconds.
pub(super) const CANCEL_POLL_MS: c_int = 50;

/// Kills the step: its pid-namespace init when its pid has arrived (the
/// kernel then kills every process of the namespace), else the intermediate
/// child. init is only reaped by the intermediate child, which reports the
/// status right after; with no status yet, the pid is still init's.
fn kill_step(first: libc::pid_t, status_buf: &[u8]) {
    let init = status_buf
        .get(0..4)
        .and_then(|s| s.try_into().ok())
        .map(i32::from_ne_bytes);
    match init {
        // SAFETY: kill has no memory-safety preconditions.
        Some(pid) if pid > 0 => unsafe {
            libc::kill(pid, libc::SIGKILL);
        },
        // SAFETY: `first` is our own child, not yet reaped.
        _ => unsafe {
            libc::kill(first, libc::SIGKILL);
        },
    }
}

/// Removes the mount points the step needed but the root lacked: deepest
/// first, only when still empty, never through a symlink.
pub(super) fn remove_stubs(
    base: &Path,
    targets: &[String],
    stubs: &[Stub],
    idmap: &IdMap,
    warnings: &mut Vec<Warning>,
) {
    let mut denied = Vec::new();
    let mut paths: Vec<&str> = stubs
        .iter()
        .filter_map(|s| match s {
            Stub::Prefix { op, len } => targets.get(*op as usize)?.get(..*len as usize),
            Stub::Path(p) => Some(p.as_str()),
        })
        .collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    paths.dedup();
    for rel in paths {
        let mut cur = base.to_path_buf();
        let mut safe = true;
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            cur.push(part);
            if i + 1 < parts.len()
                && !fs::symlink_metadata(&cur)
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
            {
                safe = false;
                break;
            }
        }
        let Ok(meta) = fs::symlink_metadata(&cur).map_err(|_| ()) else {
            continue;
        };
        if !safe {
            continue;
        }
        let r = if meta.is_dir() {
            clear_fuse_markers(&cur);
            fs::remove_dir(&cur)
        } else if meta.is_file() && meta.len() == 0 {
            fs::remove_file(&cur)
        } else {
            continue;
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && idmap.needs_userns() => {
                // The parent directory belongs to another container id: only
                // container root inside the user namespace may remove it.
                denied.push((rel, cur));
            }
            Err(e) if e.raw_os_error() != Some(libc::ENOTEMPTY) => {
                warnings.push(Warning::StubLeft {
                    path: rel.to_owned(),
                    reason: e.to_string(),
                });
            }
            _ => {}
        }
    }
    for (rel, path) in denied {
        if let Err(e) = super::userns::remove_in_userns(idmap, &path) {
            warnings.push(Warning::StubLeft {
                path: rel.to_owned(),
                reason: e.to_string(),
            });
        }
    }
}

/// fuse-overlayfs marks every directory it creates as opaque with two
/// entries (`.wh..wh..opq` and a `.wh..opq` whiteout); a created mount point
/// holding only those is still empty for the step.
fn clear_fuse_markers(dir: &Path) {
    const MARKERS: [&str; 2] = [".wh..wh..opq", ".wh..opq"];
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    if names.is_empty() || !names.iter().all(|n| MARKERS.iter().any(|m| n == *m)) {
        return;
    }
    for n in names {
        let _ = fs::remove_file(dir.join(n));
    }
}
