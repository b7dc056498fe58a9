//! The build context as `RUN --mount=type=bind` (without `from=`) shows it.
//!
//! BuildKit's context arrives filtered by .dockerignore, so a bind mount
//! of it lacks what the rules leave out, and a `source=` the rules leave
//! out is "not found" (checked with docker 20.10); every file in it shows
//! as 0:0. kiln binds the context directory itself when the rules hide
//! nothing below the source and kiln's user owns all of it, and otherwise
//! a copy of what they keep, made once per build and source.
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::context::IgnoreRules;

/// The ignore rules and the filtered copies made so far.
#[derive(Default)]
pub(super) struct ContextView {
    rules: IgnoreRules,
    made: Mutex<HashMap<PathBuf, PathBuf>>,
}

impl ContextView {
    pub(super) fn new(rules: IgnoreRules) -> Self {
        ContextView {
            rules,
            made: Mutex::default(),
        }
    }

    /// What to bind for `src`, a path resolved inside the context `root`
    /// (`shown` is the `source=` as written, for the error): `src` itself,
    /// or a copy under `scratch` (named with `n`) when the rules hide
    /// something below it or something in it belongs to another owner than
    /// kiln's user (BuildKit's transferred context is all 0:0; a step's
    /// `cp -a` from the mount would otherwise keep the host's owners).
    pub(super) fn source(
        &self,
        root: &Path,
        src: &Path,
        shown: &str,
        scratch: &Path,
        n: usize,
    ) -> Result<PathBuf, String> {
        let rel = src
            .strip_prefix(root)
            .map(|p| crate::bytename::from_path(p).into_owned())
            .unwrap_or_default();
        let is_dir = src.is_dir();
        if !rel.is_empty() && !self.rules.visible(&rel, is_dir) {
            return Err(format!(
                "\"/{}\" not found: .dockerignore leaves it out of the build context",
                shown.trim_start_matches('/')
            ));
        }
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = made.get(src) {
            return Ok(dir.clone());
        }
        let top = std::fs::metadata(src).map_err(err(src))?;
        let me = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        let mut walked = Walked {
            kept: Vec::new(),
            copy: !ours(&top, me),
            me,
        };
        if is_dir {
            self.walk(src, &rel, Path::new(""), &mut walked)
                .map_err(err(src))?;
        }
        let dst = scratch.join(format!("context-{n}"));
        let chosen = match (walked.copy, is_dir) {
            (false, _) => src.to_path_buf(),
            (true, true) => {
                copy_kept(src, &dst, &walked.kept).map_err(err(&dst))?;
                dst
            }
            (true, false) => {
                copy_one(src, &dst, &top).map_err(err(&dst))?;
                dst
            }
        };
        made.insert(src.to_path_buf(), chosen.clone());
        Ok(chosen)
    }

    /// Lists what the rules keep below `dir` (context path `rel`) as paths
    /// relative to the mounted source, parents before children, and notes
    /// whether a copy is needed (something hidden, or owned by another).
    fn walk(&self, dir: &Path, rel: &str, below: &Path, out: &mut Walked) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name_str = crate::bytename::from_bytes(name.as_bytes());
            let child_rel = if rel.is_empty() {
                name_str.into_owned()
            } else {
                format!("{rel}/{name_str}")
            };
            let md = entry.metadata()?;
            let is_dir = md.is_dir();
            if !self.rules.visible(&child_rel, is_dir) {
                out.copy = true;
                continue;
            }
            out.copy = out.copy || !ours(&md, out.me);
            let child_below = below.join(&name);
            out.kept.push(child_below.clone());
            if is_dir {
                self.walk(&entry.path(), &child_rel, &child_below, out)?;
            }
        }
        Ok(())
    }
}

/// What a walk of a mounted source found.
struct Walked {
    /// The paths the rules keep, relative to the source.
    kept: Vec<PathBuf>,
    /// Whether the source must be copied rather than bound.
    copy: bool,
    /// kiln's effective user and group ids.
    me: (u32, u32),
}

/// Names the path an I/O error is about.
fn err(p: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", p.display())
}

/// Whether an entry belongs to kiln's own user and group, and so shows as
/// 0:0 in the step as a transferred context would.
fn ours(md: &std::fs::Metadata, (uid, gid): (u32, u32)) -> bool {
    use std::os::unix::fs::MetadataExt;
    md.uid() == uid && md.gid() == gid
}

/// Copies `kept` (relative paths, parents first) from `src` to the new
/// directory `dst` as BuildKit's transferred context shows them (checked
/// with docker 20.10): types and permission bits, the modification times
/// of files and symlinks (a `make` in the step compares them), owners
/// 0:0 (the copy is the builder's) and directories with times of the
/// transfer. Directory modes are set last, so read-only ones can be
/// filled. A file of the user's own that its mode denies is read through
/// the opener, as the context's walk reads it. Not hard links: linking
/// changes a file's ctime, which the context's stat cache keys on, so the
/// next build would hash every file again.
fn copy_kept(src: &Path, dst: &Path, kept: &[PathBuf]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(dst)?;
    let mut modes = vec![(dst.to_path_buf(), std::fs::metadata(src)?.permissions())];
    for rel in kept {
        let (from, to) = (src.join(rel), dst.join(rel));
        let md = std::fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to)?;
            modes.push((to, md.permissions()));
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            keep_times(&to, &md)?;
        } else if ft.is_file() {
            copy_one(&from, &to, &md)?;
        }
    }
    for (dir, perm) in modes.into_iter().rev() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(perm.mode() & 0o7777))?;
    }
    Ok(())
}

/// Copies the regular file `from` (metadata `md`) to the new path `to`
/// with its permission bits and times.
fn copy_one(from: &Path, to: &Path, md: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let mut input = crate::sandbox::open_owned(from)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    std::io::copy(&mut input, &mut out)?;
    out.set_permissions(std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    keep_times(to, md)
}

/// Gives `to` the access and modification times of `md`, without
/// following a final symlink.
fn keep_times(to: &Path, md: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let at = |sec: i64, nsec: i64| rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    let t = rustix::fs::Timestamps {
        last_access: at(md.atime(), md.atime_nsec()),
        last_modification: at(md.mtime(), md.mtime_nsec()),
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        to,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}
