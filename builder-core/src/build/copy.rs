//! COPY and ADD as BuildKit's file-op copy does them (fsutil's `cp -a`
//! semantics), producing the entries of one new layer.
//!
//! The rules, from BuildKit: the destination's parent (or the destination
//! itself when it ends in `/`) is created; a directory source copies its
//! contents; a file source lands inside the destination when that exists as
//! a directory; directories the copy creates get 0755 and the `--chown`
//! owner; existing destination roots keep their metadata, while existing
//! directories below take the source's; symlinks inside sources are kept.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fsview::{base, clean, dir_entry, join, parent, FsView, Node, Origin};
use super::mode::ModeSpec;
use crate::bytename;
use crate::context::IgnoreRules;
use crate::fsentry::{Content, Entry, Kind, RootDir};

/// A tree COPY reads from: the build context, another stage, an image, a
/// heredoc.
pub trait SourceFs {
    /// The entry at a clean relative path, without following a final
    /// symlink; `Ok(None)` when absent (or ignored).
    fn lstat(&self, path: &str) -> Result<Option<Node>, String>;
    /// Names inside a directory, sorted bytewise.
    fn read_dir(&self, path: &str) -> Result<Vec<String>, String>;
    /// Resolves symlinks inside the tree's root.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<String, String>;
    /// What identifies the inode of a regular file with more than one link,
    /// so a copy can keep hard links as links (as fsutil's copy does).
    fn inode(&self, _path: &str) -> Option<LinkId> {
        None
    }
}

/// The identity of a multiply-linked file inside one [`SourceFs`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkId {
    /// A host file's (device, inode).
    Inode(u64, u64),
    /// The path standing for a hardlink group of a stage or image.
    Group(String),
}

impl SourceFs for FsView {
    fn lstat(&self, path: &str) -> Result<Option<Node>, String> {
        if path.is_empty() {
            return Ok(Some(Node {
                entry: dir_entry("", 0o755, 0, 0, 0),
                origin: Origin::Entry,
            }));
        }
        let node = self.get(path).cloned();
        // A hardlink's content is its target's.
        if let Some(Node {
            entry:
                Entry {
                    kind: Kind::Hardlink { target },
                    ..
                },
            ..
        }) = &node
        {
            let t = clean(&bytename::from_path(target));
            if let Some(tn) = self.get(&t) {
                let mut n = tn.clone();
                n.entry.path = bytename::to_path(path);
                return Ok(Some(n));
            }
        }
        Ok(node)
    }
    fn read_dir(&self, path: &str) -> Result<Vec<String>, String> {
        Ok(self.children(path))
    }
    fn resolve(&self, path: &str, follow_last: bool) -> Result<String, String> {
        FsView::resolve(self, path, follow_last)
    }
    fn inode(&self, path: &str) -> Option<LinkId> {
        self.link_group(path).map(LinkId::Group)
    }
}

/// Options of one COPY/ADD.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--chown`, resolved to numbers.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<ModeSpec>,
    /// Time for entries the copy creates itself (directories, heredocs).
    pub created_time: i64,
    /// `--exclude` patterns.
    pub exclude: IgnoreRules,
    /// `--parents`.
    pub parents: bool,
}

/// The layer being built by one instruction: a working copy of the stage's
/// filesystem plus the set of paths the instruction touched.
pub struct LayerBuilder {
    /// The stage's filesystem with this instruction's changes applied.
    pub view: FsView,
    changed: BTreeSet<String>,
    /// First destination of each multiply-linked source inode, for the
    /// source being copied.
    inodes: std::collections::HashMap<LinkId, String>,
    /// Directories a walk passes through without copying them (excluded,
    /// or not matched by `--parents`), each with whether it was made yet:
    /// fsutil makes them, with their source's metadata, only once
    /// something below them is copied.
    pub(super) pending: Vec<(Entry, bool)>,
}

impl LayerBuilder {
    /// Starts from the stage's current filesystem.
    pub fn new(view: FsView) -> Self {
        LayerBuilder {
            view,
            changed: BTreeSet::new(),
            inodes: std::collections::HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Makes the pending directories not made yet: a new one takes its
    /// source's metadata, an existing one only its source's mode (fsutil's
    /// copyDirectoryOnly).
    pub(super) fn flush_pending(&mut self) -> Result<(), String> {
        for i in 0..self.pending.len() {
            let Some((entry, made)) = self.pending.get(i).cloned() else {
                continue;
            };
            if made {
                continue;
            }
            let p = clean(&bytename::from_path(&entry.path));
            match self.view.get(&p).map(|n| n.entry.clone()) {
                None => self.put(entry, Origin::Entry),
                Some(e) if e.kind == Kind::Dir => {
                    if e.mode != entry.mode {
                        self.put(
                            Entry {
                                mode: entry.mode,
                                ..e
                            },
                            Origin::Entry,
                        );
                    }
                }
                Some(_) => return Err(format!("cannot copy to non-directory: /{p}")),
            }
            if let Some(slot) = self.pending.get_mut(i) {
                slot.1 = true;
            }
        }
        Ok(())
    }

    /// Whether this layer wrote `path` (so a hard link to it stays inside
    /// the layer).
    pub(crate) fn wrote(&self, path: &str) -> bool {
        self.changed.contains(path)
    }

    /// Puts an entry into the view and marks it as part of the layer.
    pub fn put(&mut self, entry: Entry, origin: Origin) {
        let p = clean(&bytename::from_path(&entry.path));
        self.view.apply([(entry, origin)]);
        self.changed.insert(p);
    }

    /// The layer's entries: every changed path plus its ancestors (with the
    /// metadata they have in the view), sorted so parents come first.
    pub fn finish(mut self) -> (FsView, Vec<(Entry, Origin)>) {
        // Ancestors join the changed set itself: a second set holding every
        // path again would be the largest transient of a big COPY. A walk up
        // stops at a path already present, whose ancestors are (or will be)
        // added from its own walk.
        let mut ancestors: BTreeSet<String> = BTreeSet::new();
        for p in &self.changed {
            let mut q = parent(p);
            while !q.is_empty() && !self.changed.contains(q) && ancestors.insert(q.to_string()) {
                q = parent(q);
            }
        }
        self.changed.append(&mut ancestors);
        // Sort by components so `a/b` comes right after `a`, before `a-b`.
        // The paths move out of the set (no copy) and each is dropped once
        // its entry is cloned, so the layer's entries never coexist with a
        // full second set of its paths.
        let mut ordered: Vec<String> = std::mem::take(&mut self.changed).into_iter().collect();
        ordered.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        let mut entries = Vec::with_capacity(ordered.len());
        for p in ordered {
            if let Some(n) = self.view.get(&p) {
                entries.push((n.entry.clone(), n.origin.clone()));
            }
        }
        (self.view, entries)
    }

    /// MkdirAll inside the image root: creates missing directories along
    /// `path` (symlinks followed) with 0755 and the chown owner.
    pub fn mkdir_all(&mut self, path: &str, opts: &CopyOptions) -> Result<String, String> {
        let resolved = self.view.resolve(path, true)?;
        let mut cur = String::new();
        for part in resolved.split('/').filter(|s| !s.is_empty()) {
            cur = join(&cur, part);
            match self.view.get(&cur).map(|n| n.entry.kind.clone()) {
                Some(Kind::Dir) => {}
                Some(_) => return Err(format!("/{cur}: not a directory")),
                None => {
                    let (uid, gid) = opts.chown.unwrap_or((0, 0));
                    let e = dir_entry(&cur, 0o755, uid, gid, opts.created_time);
                    self.put(e, Origin::Entry);
                }
            }
        }
        Ok(resolved)
    }
}

/// True when `name` contains `*`, `?` or `[` outside an escape (BuildKit's
/// containsWildcards).
pub fn has_wildcards(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' | b'?' | b'[' => return true,
            b'\\' => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Expands COPY source wildcards against a source tree the way fsutil's
/// ResolveWildcards does: the part before the first wildcard component is
/// the base, the rest is matched against every path below it.
pub fn resolve_sources(src: &dyn SourceFs, pattern: &str) -> Result<Vec<String>, String> {
    let cleaned = clean(pattern);
    let parts: Vec<&str> = cleaned.split('/').filter(|s| !s.is_empty()).collect();
    let Some(first_wild) = parts.iter().position(|p| has_wildcards(p)) else {
        return Ok(vec![cleaned]);
    };
    let base_path = src.resolve(&parts[..first_wild].join("/"), true)?;
    let rest = parts[first_wild..].join("/");
    let mut out = Vec::new();
    walk_match(src, &base_path, "", &rest, &mut out)?;
    Ok(out)
}

fn walk_match(
    src: &dyn SourceFs,
    base_path: &str,
    rel: &str,
    pattern: &str,
    out: &mut Vec<String>,
) -> Result<(), String> {
    let dir = join(base_path, rel);
    let is_dir = matches!(src.lstat(&dir)?, Some(n) if n.entry.kind == Kind::Dir);
    if !is_dir {
        return Ok(());
    }
    for name in src.read_dir(&dir)? {
        let r = join(rel, &name);
        if crate::context::gomatch::go_match(pattern, &r).unwrap_or(false) {
            out.push(join(base_path, &r));
            continue;
        }
        // Only descend while the path can still match.
        if pattern.split('/').count() > r.split('/').count() {
            walk_match(src, base_path, &r, pattern, out)?;
        }
    }
    Ok(())
}

/// One source path copied to `dest` (an absolute image path; a trailing `/`
/// marks a directory), as `fsutil` `Copy` with CopyDirContents does it.
pub fn copy_path(
    layer: &mut LayerBuilder,
    src: &dyn SourceFs,
    src_path: &str,
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), String> {
    // Each source (each match of a wildcard) is its own fsutil copy with
    // its own inode map: files linked to each other stay linked within one
    // source, while two sources naming the same inode (`COPY a b /d/`,
    // `COPY perl* /d/`) give separate files (docker 20.10 checked).
    layer.inodes.clear();
    let followed = src.resolve(src_path, true)?;
    let Some(src_node) = src.lstat(&followed)? else {
        return Err(format!("\"/{}\" not found: not found", clean(src_path)));
    };
    let src_is_dir = src_node.entry.kind == Kind::Dir;

    // Ensure the destination's parent, or the destination itself when it
    // ends with a slash.
    let trailing = dest.ends_with('/') || dest.ends_with("/.");
    let dest_clean = clean(dest);
    let ensure = if trailing {
        dest_clean.clone()
    } else {
        parent(&dest_clean).to_string()
    };
    layer.mkdir_all(&ensure, opts)?;

    let mut target = layer.view.resolve(&dest_clean, true)?;
    let dest_exists = target.is_empty() || layer.view.get(&target).is_some();
    let dest_is_dir = layer.view.is_dir(&target);
    if !src_is_dir && dest_exists && dest_is_dir {
        target = join(&target, base(&clean(src_path)));
    }
    if src_is_dir && !dest_exists {
        layer.mkdir_all(&target, opts)?;
    } else {
        layer.mkdir_all(parent(&target), opts)?;
    }
    copy_node(layer, src, &followed, "", &target, false, opts, &[])
}

pub(super) fn apply_meta(
    mut e: Entry,
    dst: &str,
    opts: &CopyOptions,
    is_new_or_overwrite: bool,
) -> Entry {
    e.path = bytename::to_path(dst);
    if !is_new_or_overwrite {
        return e;
    }
    if let Some((u, g)) = opts.chown {
        e.uid = u;
        e.gid = g;
    }
    if !matches!(e.kind, Kind::Symlink { .. }) {
        if let Some(m) = &opts.mode {
            e.mode = m.apply(e.mode, e.kind == Kind::Dir);
        }
    }
    e
}

#[allow(clippy::too_many_arguments)]
pub(super) fn copy_node(
    layer: &mut LayerBuilder,
    src: &dyn SourceFs,
    src_path: &str,
    rel: &str,
    target: &str,
    overwrite_meta: bool,
    opts: &CopyOptions,
    parent_excl: &[bool],
) -> Result<(), String> {
    let (excluded, excl) = if rel.is_empty() {
        (false, Vec::new())
    } else {
        opts.exclude.decide_in_walk(rel, parent_excl)
    };
    if excluded && !opts.exclude.has_exceptions() {
        return Ok(());
    }
    let Some(node) = src.lstat(src_path)? else {
        return Err(format!("\"/{src_path}\" not found: not found"));
    };
    // docker 20.10's copy (fsutil of that BuildKit), from the context, a
    // stage or an image alike, leaves fifos out (named as the source too:
    // nothing is copied) and writes a device node as a regular file with
    // the node's content, which for the null-like nodes found in practice
    // is empty; kiln writes it empty.
    let node = match node.entry.kind {
        Kind::Fifo => return Ok(()),
        Kind::CharDevice { .. } | Kind::BlockDevice { .. } => Node {
            entry: Entry {
                kind: Kind::File {
                    content: Content::Bytes(Arc::from(&[][..])),
                    size: 0,
                },
                ..node.entry
            },
            origin: Origin::Entry,
        },
        _ => node,
    };
    if excluded && node.entry.kind != Kind::Dir {
        return Ok(());
    }
    if target.is_empty() && node.entry.kind != Kind::Dir {
        return Err("cannot copy a file onto the root directory".into());
    }
    if excluded {
        // A directory entered only for the exceptions below it.
        let e = apply_meta(node.entry.clone(), target, opts, true);
        layer.pending.push((e, false));
        let result = copy_children(layer, src, src_path, rel, target, opts, &excl);
        layer.pending.pop();
        return result;
    }
    layer.flush_pending()?;
    match node.entry.kind {
        Kind::Dir => {
            let existing = layer.view.get(target).map(|n| n.entry.clone());
            match existing {
                Some(e) if e.kind == Kind::Dir => {
                    if overwrite_meta {
                        let new = apply_meta(node.entry.clone(), target, opts, true);
                        layer.put(new, Origin::Entry);
                    }
                }
                Some(_) => return Err(format!("cannot copy to non-directory: /{target}")),
                None if target.is_empty() => {}
                None => {
                    let new = apply_meta(node.entry.clone(), target, opts, true);
                    layer.put(new, Origin::Entry);
                }
            }
            copy_children(layer, src, src_path, rel, target, opts, &excl)?;
        }
        _ => {
            // fsutil removes a file it overwrites but refuses to put a
            // file, link or symlink where a directory is.
            if matches!(layer.view.get(target), Some(n) if n.entry.kind == Kind::Dir) {
                return Err(format!("cannot replace to directory /{target} with file"));
            }
            let mut new = apply_meta(node.entry, target, opts, true);
            if matches!(new.kind, Kind::File { .. }) {
                if let Some(key) = src.inode(src_path) {
                    match layer.inodes.get(&key) {
                        // Still the file this copy wrote: link to it.
                        Some(first) if first != target && layer.changed.contains(first) => {
                            new.kind = Kind::Hardlink {
                                target: bytename::to_path(first),
                            };
                            layer.put(new, Origin::Entry);
                            return Ok(());
                        }
                        _ => {
                            layer.inodes.insert(key, target.to_string());
                        }
                    }
                }
            }
            layer.put(new, node.origin);
        }
    }
    Ok(())
}

fn copy_children(
    layer: &mut LayerBuilder,
    src: &dyn SourceFs,
    src_path: &str,
    rel: &str,
    target: &str,
    opts: &CopyOptions,
    excl: &[bool],
) -> Result<(), String> {
    for name in src.read_dir(src_path)? {
        copy_node(
            layer,
            src,
            &join(src_path, &name),
            &join(rel, &name),
            &join(target, &name),
            true,
            opts,
            excl,
        )?;
    }
    Ok(())
}

/// The build context as a source: a directory on the host, with the
/// `.dockerignore` patterns hiding what they exclude. Everything reads as
/// owned by 0:0, as BuildKit receives a context.
///
/// Every lookup goes through a handle of the root opened once (see
/// [`RootDir`]), and file contents are handed on as [`Content::InRoot`], so
/// a directory swapped for a symlink while the build runs cannot lead a
/// stat, a listing or the layer writer's read outside the context.
pub struct HostDir {
    root: PathBuf,
    /// The handle, or why the root could not be opened (reported on use,
    /// so constructing a `HostDir` stays infallible).
    dir: Result<Arc<RootDir>, String>,
    ignore: IgnoreRules,
}

impl HostDir {
    /// A context rooted at `root`.
    pub fn new(root: &Path, ignore: IgnoreRules) -> Self {
        HostDir {
            root: root.to_path_buf(),
            dir: RootDir::open(root)
                .map(Arc::new)
                .map_err(|e| format!("{}: {e}", root.display())),
            ignore,
        }
    }

    fn dir(&self) -> Result<&Arc<RootDir>, String> {
        self.dir.as_ref().map_err(String::clone)
    }

    /// `lstat` through the root handle; `Ok(None)` when absent.
    fn raw_lstat(&self, path: &str) -> Result<Option<rustix::fs::Stat>, String> {
        match self.dir()?.lstat(&bytename::to_path(path)) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.show(path))),
        }
    }

    fn visible(&self, path: &str, is_dir: bool) -> Result<bool, String> {
        // The reference's walk decides, parents included.
        Ok(self.ignore.visible(path, is_dir))
    }

    /// A context path for messages: the host path, raw bytes as `\xNN`.
    fn show(&self, path: &str) -> String {
        bytename::show_path(&self.root.join(bytename::to_path(path)))
    }

    fn raw_read_dir(&self, path: &str) -> Result<Vec<String>, String> {
        let listed = self
            .dir()?
            .read_dir(&bytename::to_path(path))
            .map_err(|e| format!("{}: {e}", self.show(path)))?;
        // Names that are not UTF-8 are kept byte for byte (as BuildKit
        // keeps them) and sorted by their bytes, as Go's walk sorts them.
        let mut names: Vec<(Vec<u8>, String)> = listed
            .into_iter()
            .map(|n| {
                let b = std::os::unix::ffi::OsStringExt::into_vec(n);
                let s = bytename::from_bytes(&b).into_owned();
                (b, s)
            })
            .collect();
        names.sort();
        Ok(names.into_iter().map(|(_, s)| s).collect())
    }
}

impl SourceFs for HostDir {
    fn lstat(&self, path: &str) -> Result<Option<Node>, String> {
        use rustix::fs::FileType;
        let Some(md) = self.raw_lstat(path)? else {
            return Ok(None);
        };
        let ft = FileType::from_raw_mode(md.st_mode);
        if !self.visible(path, ft == FileType::Directory)? {
            return Ok(None);
        }
        let kind = match ft {
            FileType::Directory => Kind::Dir,
            FileType::Symlink => {
                let t = self
                    .dir()?
                    .read_link(&bytename::to_path(path))
                    .map_err(|e| format!("{}: {e}", self.show(path)))?;
                Kind::Symlink { target: t }
            }
            FileType::RegularFile => Kind::File {
                content: Content::InRoot {
                    root: Arc::clone(self.dir()?),
                    path: bytename::to_path(path),
                },
                size: u64::try_from(md.st_size).unwrap_or(0),
            },
            // Fifos and devices are listed; the copy leaves the first out and
            // makes the others empty files (see `copy_node`). Sockets are
            // never copied.
            FileType::Fifo => Kind::Fifo,
            FileType::CharacterDevice => Kind::CharDevice {
                major: rustix::fs::major(md.st_rdev),
                minor: rustix::fs::minor(md.st_rdev),
            },
            FileType::BlockDevice => Kind::BlockDevice {
                major: rustix::fs::major(md.st_rdev),
                minor: rustix::fs::minor(md.st_rdev),
            },
            _ => return Ok(None),
        };
        Ok(Some(Node {
            entry: Entry {
                path: bytename::to_path(path),
                kind,
                mode: md.st_mode & 0o7777,
                uid: 0,
                gid: 0,
                mtime: md.st_mtime,
                mtime_nanos: u32::try_from(md.st_mtime_nsec.clamp(0, 999_999_999)).unwrap_or(0),
                xattrs: Default::default(),
            },
            origin: Origin::Entry,
        }))
    }

    fn inode(&self, path: &str) -> Option<LinkId> {
        use rustix::fs::FileType;
        let md = self.raw_lstat(path).ok()??;
        (FileType::from_raw_mode(md.st_mode) == FileType::RegularFile && md.st_nlink > 1)
            .then_some(LinkId::Inode(md.st_dev, md.st_ino))
    }

    fn read_dir(&self, path: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for name in self.raw_read_dir(path)? {
            if self.lstat(&join(path, &name))?.is_some() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn resolve(&self, path: &str, follow_last: bool) -> Result<String, String> {
        // Follow symlinks inside the context the way fs.RootPath does.
        let mut pending: Vec<String> = clean(path)
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut done = String::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                done = parent(&done).to_string();
                continue;
            }
            let cand = join(&done, &part);
            let is_last = pending.is_empty();
            let is_link = self.dir()?.lstat(&bytename::to_path(&cand)).is_ok_and(|m| {
                rustix::fs::FileType::from_raw_mode(m.st_mode) == rustix::fs::FileType::Symlink
            });
            match is_link {
                true if !is_last || follow_last => {
                    hops += 1;
                    if hops > 255 {
                        return Err(format!("{path}: too many levels of symbolic links"));
                    }
                    let t = self
                        .dir()?
                        .read_link(&bytename::to_path(&cand))
                        .map_err(|e| format!("{}: {e}", self.show(&cand)))?;
                    let t = bytename::from_path(&t).into_owned();
                    if t.starts_with('/') {
                        done.clear();
                    }
                    for s in t.split('/').filter(|s| !s.is_empty() && *s != ".").rev() {
                        pending.push(s.to_string());
                    }
                }
                _ => done = cand,
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_as_buildkit_sees_them() {
        assert!(has_wildcards("*.txt"));
        assert!(has_wildcards("a/?.md"));
        assert!(has_wildcards("[ab].txt"));
        assert!(!has_wildcards("plain/name.txt"));
        assert!(!has_wildcards("a\\*b"));
    }

    /// A fresh directory holding `ctx/sub/secret.txt` ("inside") and, next
    /// to the context, `outside/secret.txt` (the host file that must never
    /// reach a layer).
    fn swap_fixture(tag: &str) -> PathBuf {
        let base = std::env::temp_dir().join(format!("kiln-safecopy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("ctx/sub")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("ctx/sub/secret.txt"), b"inside").unwrap();
        // Same length as the context's file, so a leaked read would pass the
        // size check and land in the layer whole.
        std::fs::write(base.join("outside/secret.txt"), b"SECRET").unwrap();
        base
    }

    /// Replaces `ctx/sub` by a symlink to `target`, as an attacker racing
    /// the build would.
    fn swap_sub(base: &Path, target: &Path) {
        std::fs::rename(base.join("ctx/sub"), base.join("ctx/moved")).unwrap();
        std::os::unix::fs::symlink(target, base.join("ctx/sub")).unwrap();
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn directory_swapped_after_the_walk_cannot_leak_into_the_layer() {
        for (tag, abs) in [("abs", true), ("rel", false)] {
            let base = swap_fixture(tag);
            let host = HostDir::new(&base.join("ctx"), IgnoreRules::default());
            let mut layer = LayerBuilder::new(FsView::new());
            copy_path(&mut layer, &host, "sub", "/dst/", &CopyOptions::default()).unwrap();
            let (_, entries) = layer.finish();
            let entries: Vec<Entry> = entries.into_iter().map(|(e, _)| e).collect();
            let file = entries
                .iter()
                .find(|e| e.path == Path::new("dst/secret.txt"))
                .unwrap();
            assert!(
                matches!(
                    &file.kind,
                    Kind::File {
                        content: Content::InRoot { .. },
                        ..
                    }
                ),
                "{tag}: context content must be read through the root handle"
            );

            // Before the swap the layer holds the context's file.
            let mut tar = Vec::new();
            let opts = crate::layer::TarOptions::default();
            crate::layer::write_tar(&entries, &opts, &mut tar).unwrap();
            assert!(contains(&tar, b"inside"));

            let target = if abs {
                base.join("outside")
            } else {
                PathBuf::from("../outside")
            };
            swap_sub(&base, &target);
            // The plain host path now really leads outside...
            assert_eq!(
                std::fs::read(base.join("ctx/sub/secret.txt")).unwrap(),
                b"SECRET"
            );
            // ...but the layer write fails instead of reading it.
            let mut tar = Vec::new();
            let res = crate::layer::write_tar(&entries, &opts, &mut tar);
            assert!(res.is_err(), "{tag}: write after the swap must fail");
            assert!(!contains(&tar, b"SECRET"), "{tag}: outside file leaked");
            std::fs::remove_dir_all(&base).unwrap();
        }
    }

    #[test]
    fn directory_swapped_before_the_stat_is_not_followed_out() {
        let base = swap_fixture("stat");
        let host = HostDir::new(&base.join("ctx"), IgnoreRules::default());
        swap_sub(&base, &base.join("outside"));
        // The swapped-in symlink is seen as a symlink, not as a directory.
        let node = host.lstat("sub").unwrap().unwrap();
        assert!(matches!(node.entry.kind, Kind::Symlink { .. }));
        // Looking through it stays inside the context: nothing is found.
        assert!(host.lstat("sub/secret.txt").unwrap().is_none());
        assert!(host.read_dir("sub").is_err());
        assert_eq!(host.inode("sub/secret.txt"), None);
        // COPY of the symlinked directory keeps the link, never the
        // outside file's bytes, and resolving through it is clamped.
        let mut layer = LayerBuilder::new(FsView::new());
        let res = copy_path(
            &mut layer,
            &host,
            "sub/secret.txt",
            "/x",
            &CopyOptions::default(),
        );
        assert!(
            res.is_err(),
            "absolute target clamps to a missing context path"
        );
        let (_, entries) = layer.finish();
        let entries: Vec<Entry> = entries.into_iter().map(|(e, _)| e).collect();
        let mut tar = Vec::new();
        let _ = crate::layer::write_tar(&entries, &Default::default(), &mut tar);
        assert!(!contains(&tar, b"SECRET"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn sources_resolve_against_a_tree() {
        let mut v = FsView::new();
        for p in ["a.txt", "b.txt", "c.md", "d/e.txt", "d/f.md"] {
            v.apply([(
                super::super::fsview::bytes_entry(p, b"x", 0o644, 0),
                Origin::Entry,
            )]);
        }
        assert_eq!(resolve_sources(&v, "*.txt").unwrap(), ["a.txt", "b.txt"]);
        assert_eq!(resolve_sources(&v, "d/*.md").unwrap(), ["d/f.md"]);
        assert_eq!(resolve_sources(&v, "*/e.txt").unwrap(), ["d/e.txt"]);
        assert!(resolve_sources(&v, "*.none").unwrap().is_empty());
        assert_eq!(resolve_sources(&v, "missing").unwrap(), ["missing"]);
    }
}
