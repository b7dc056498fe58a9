//! A stage's filesystem as the engine sees it: the merge of its layers,
//! kept in memory as metadata, with file contents fetched on demand.
//!
//! COPY needs it to know which destination directories exist (their
//! metadata is kept), to resolve symlinks inside the image root, to read
//! /etc/passwd and /etc/group for `--chown`, and as the source of
//! `COPY --from`.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::bytename;
use crate::fsentry::{Content, Entry, Kind};

/// Where a file's bytes can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The entry's own [`Content`] is readable.
    Entry,
    /// In a base layer's blob, under the member name `member`.
    Layer {
        /// The layer blob (compressed or not) holding the bytes.
        blob: PathBuf,
        /// The tar member's name.
        member: String,
    },
}

/// One path of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The entry (its path is the view's key).
    pub entry: Entry,
    /// Where its content is.
    pub origin: Origin,
}

/// The merged filesystem of a stage.
#[derive(Debug, Clone, Default)]
pub struct FsView {
    nodes: BTreeMap<String, Node>,
    /// Paths some [`Kind::Hardlink`] node names as its target. When one is
    /// replaced or removed, the links to it are detached first: on disk they
    /// are the old inode, which keeps its content.
    link_targets: BTreeSet<String>,
}

/// Normalises an image path: no leading `/`, no `.`, `..` clamped at the root.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The parent of a clean path (`""` for top-level names and the root).
pub fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// The last component of a clean path.
pub fn base(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// Joins a clean directory and a relative name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        clean(name)
    } else {
        clean(&format!("{dir}/{name}"))
    }
}

impl FsView {
    /// An empty filesystem (scratch).
    pub fn new() -> Self {
        FsView::default()
    }

    /// The node at a clean path, without following symlinks.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// True when nothing is in the view.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// The names directly inside a directory, sorted.
    pub fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut names = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k.is_empty() && !k[prefix.len()..].contains('/'))
            .map(|(k, _)| k[prefix.len()..].to_string())
            .collect::<Vec<_>>();
        bytename::sort_bytewise(&mut names);
        names
    }

    /// The path standing for `path`'s hardlink group (its own path, or its
    /// link's target), when other paths of the view share its inode.
    pub fn link_group(&self, path: &str) -> Option<String> {
        match &self.nodes.get(path)?.entry.kind {
            Kind::Hardlink { target } => Some(clean(&bytename::from_path(target))),
            Kind::File { .. } if self.link_targets.contains(path) => Some(path.to_string()),
            _ => None,
        }
    }

    fn remove_subtree(&mut self, path: &str) {
        self.detach_links(path);
        self.nodes.remove(path);
        self.remove_children(path);
    }

    /// Before `path` is replaced or removed, the hard links naming it keep
    /// its node: the first becomes a copy of it, the others link to that.
    fn detach_links(&mut self, path: &str) {
        if !self.link_targets.remove(path) {
            return;
        }
        let Some(old) = self.nodes.get(path).cloned() else {
            return;
        };
        let links: Vec<String> = self
            .nodes
            .iter()
            .filter(|(k, n)| {
                k.as_str() != path
                    && matches!(&n.entry.kind, Kind::Hardlink { target }
                        if clean(&bytename::from_path(target)) == path)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let Some((first, rest)) = links.split_first() else {
            return;
        };
        let mut head = old;
        head.entry.path = bytename::to_path(first);
        self.nodes.insert(first.clone(), head);
        for l in rest {
            if let Some(n) = self.nodes.get_mut(l) {
                n.entry.kind = Kind::Hardlink {
                    target: bytename::to_path(first),
                };
            }
        }
        if !rest.is_empty() {
            self.link_targets.insert(first.clone());
        }
    }

    fn remove_children(&mut self, path: &str) {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.detach_links(&k);
            self.nodes.remove(&k);
        }
    }

    /// Applies one layer's entries on top, honouring whiteouts and opaque
    /// markers the way an overlay does.
    pub fn apply(&mut self, entries: impl IntoIterator<Item = (Entry, Origin)>) {
        let entries: Vec<(Entry, Origin)> = entries.into_iter().collect();
        // Opaque markers hide the lower layers' children before this
        // layer's own children land.
        for (e, _) in &entries {
            if e.kind == Kind::Opaque {
                let p = clean(&bytename::from_path(&e.path));
                self.remove_children(&p);
            }
        }
        for (e, origin) in entries {
            let p = clean(&bytename::from_path(&e.path));
            match e.kind {
                Kind::Opaque => continue,
                Kind::Whiteout => {
                    self.remove_subtree(&p);
                    continue;
                }
                _ => {}
            }
            if p.is_empty() {
                continue;
            }
            if e.kind != Kind::Dir {
                self.remove_children(&p);
            }
            self.ensure_parents(&p);
            self.detach_links(&p);
            let mut entry = e;
            entry.path = bytename::to_path(&p);
            if let Kind::Hardlink { target } = &entry.kind {
                self.link_targets
                    .insert(clean(&bytename::from_path(target)));
            }
            self.nodes.insert(p, Node { entry, origin });
        }
    }

    fn ensure_parents(&mut self, path: &str) {
        let mut missing = Vec::new();
        let mut p = parent(path);
        while !p.is_empty() {
            match self.nodes.get(p) {
                Some(n) if n.entry.kind == Kind::Dir => break,
                _ => missing.push(p.to_string()),
            }
            p = parent(p);
        }
        for m in missing {
            self.detach_links(&m);
            self.nodes.insert(
                m.clone(),
                Node {
                    entry: dir_entry(&m, 0o755, 0, 0, 0),
                    origin: Origin::Entry,
                },
            );
        }
    }

    /// Resolves `path` inside the root: symlinks in every component are
    /// followed (the last one only when `follow_last`), absolute targets
    /// restart at the root and `..` never leaves it. Returns the clean path.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, String> {
        self.resolve_under("", path, follow_last)
    }

    /// Like [`FsView::resolve`], with `root` (a clean path) acting as the
    /// root: `..` and absolute link targets never leave it. Archive
    /// extraction uses this so an archive behaves as if chrooted into its
    /// destination.
    pub fn resolve_under(
        &self,
        root: &str,
        path: &str,
        follow_last: bool,
    ) -> Result<String, String> {
        let mut pending: Vec<String> = clean(path)
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut done = root.to_string();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                if done != root {
                    done = parent(&done).to_string();
                }
                continue;
            }
            let candidate = join(&done, &part);
            let is_last = pending.is_empty();
            match self.nodes.get(&candidate).map(|n| &n.entry.kind) {
                Some(Kind::Symlink { target }) if !is_last || follow_last => {
                    hops += 1;
                    if hops > 255 {
                        return Err(format!("/{path}: too many levels of symbolic links"));
                    }
                    let target = bytename::from_path(target).into_owned();
                    if target.starts_with('/') {
                        done = root.to_string();
                    }
                    for t in target
                        .split('/')
                        .filter(|s| !s.is_empty() && *s != ".")
                        .rev()
                    {
                        pending.push(t.to_string());
                    }
                }
                _ => done = candidate,
            }
        }
        Ok(done)
    }

    /// The node at `path` after following symlinks (including the last).
    pub fn stat(&self, path: &str) -> Option<&Node> {
        let p = self.resolve(path, true).ok()?;
        if p.is_empty() {
            return None;
        }
        self.nodes.get(&p)
    }

    /// True when `path` (symlinks followed) is a directory; the root is one.
    pub fn is_dir(&self, path: &str) -> bool {
        match self.resolve(path, true) {
            Ok(p) if p.is_empty() => true,
            Ok(p) => self
                .nodes
                .get(&p)
                .is_some_and(|n| n.entry.kind == Kind::Dir),
            Err(_) => false,
        }
    }
}

/// A directory entry.
pub fn dir_entry(path: &str, mode: u32, uid: u32, gid: u32, mtime: i64) -> Entry {
    Entry {
        path: bytename::to_path(path),
        kind: Kind::Dir,
        mode,
        uid,
        gid,
        mtime,
        mtime_nanos: 0,
        xattrs: BTreeMap::new(),
    }
}

/// A regular file entry held in memory.
pub fn bytes_entry(path: &str, data: &[u8], mode: u32, mtime: i64) -> Entry {
    Entry {
        path: bytename::to_path(path),
        kind: Kind::File {
            content: Content::Bytes(data.into()),
            size: data.len() as u64,
        },
        mode,
        uid: 0,
        gid: 0,
        mtime,
        mtime_nanos: 0,
        xattrs: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            path: PathBuf::from(path),
            kind: Kind::Symlink {
                target: PathBuf::from(target),
            },
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nanos: 0,
            xattrs: BTreeMap::new(),
        }
    }

    fn marker(path: &str, kind: Kind) -> Entry {
        Entry {
            kind,
            ..dir_entry(path, 0, 0, 0, 0)
        }
    }

    fn view(entries: Vec<Entry>) -> FsView {
        let mut v = FsView::new();
        v.apply(entries.into_iter().map(|e| (e, Origin::Entry)));
        v
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let v = view(vec![
            dir_entry("etc", 0o755, 0, 0, 0),
            symlink("up", "../../../etc"),
            symlink("abs", "/etc"),
            symlink("loop", "loop"),
        ]);
        assert_eq!(v.resolve("up/passwd", true).unwrap(), "etc/passwd");
        assert_eq!(v.resolve("/abs/x", true).unwrap(), "etc/x");
        assert_eq!(v.resolve("abs", false).unwrap(), "abs");
        assert!(v.resolve("loop/x", true).is_err());
        assert!(v.is_dir("abs"));
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_entries() {
        let mut v = view(vec![
            bytes_entry("a/old", b"1", 0o644, 0),
            bytes_entry("a/keep", b"1", 0o644, 0),
            bytes_entry("b/x", b"1", 0o644, 0),
        ]);
        assert_eq!(v.get("a").unwrap().entry.mode, 0o755, "implicit parent");
        v.apply(
            vec![
                marker("a", Kind::Opaque),
                dir_entry("a", 0o700, 0, 0, 0),
                bytes_entry("a/new", b"2", 0o644, 0),
                marker("b", Kind::Whiteout),
            ]
            .into_iter()
            .map(|e| (e, Origin::Entry)),
        );
        assert_eq!(v.children("a"), vec!["new"]);
        assert!(v.get("b").is_none() && v.get("b/x").is_none());
        assert_eq!(v.children(""), vec!["a"]);
    }

    fn link(path: &str, target: &str) -> Entry {
        Entry {
            kind: Kind::Hardlink {
                target: PathBuf::from(target),
            },
            ..bytes_entry(path, b"", 0o644, 0)
        }
    }

    fn content(v: &FsView, path: &str) -> Vec<u8> {
        let node = match &v.get(path).unwrap().entry.kind {
            Kind::Hardlink { target } => v.get(&clean(&target.to_string_lossy())).unwrap(),
            _ => v.get(path).unwrap(),
        };
        match &node.entry.kind {
            Kind::File {
                content: Content::Bytes(b),
                ..
            } => b.to_vec(),
            k => panic!("{path}: {k:?}"),
        }
    }

    #[test]
    fn hardlink_groups_are_named_by_their_target() {
        let v = view(vec![
            bytes_entry("a", b"1", 0o644, 0),
            link("d/b", "/a"),
            link("./c", "a"),
            bytes_entry("solo", b"2", 0o644, 0),
        ]);
        assert_eq!(v.link_group("a").as_deref(), Some("a"));
        assert_eq!(v.link_group("d/b").as_deref(), Some("a"));
        assert_eq!(v.link_group("c").as_deref(), Some("a"));
        assert_eq!(v.link_group("solo"), None);
        assert_eq!(v.link_group("d"), None);
    }

    #[test]
    fn links_keep_the_old_inode_when_their_target_is_replaced() {
        // On disk, replacing `a` leaves `b` and `c` on the old inode.
        let mut v = view(vec![
            bytes_entry("a", b"old", 0o644, 0),
            link("b", "a"),
            link("c", "a"),
        ]);
        v.apply(vec![(bytes_entry("a", b"new", 0o644, 0), Origin::Entry)]);
        assert_eq!(content(&v, "a"), b"new");
        assert_eq!(content(&v, "b"), b"old");
        assert_eq!(content(&v, "c"), b"old");
        assert_eq!(v.link_group("a"), None);
        assert_eq!(v.link_group("c").as_deref(), Some("b"));
        // A whiteout of the group's path does the same.
        v.apply(vec![(marker("b", Kind::Whiteout), Origin::Entry)]);
        assert!(v.get("b").is_none());
        assert_eq!(content(&v, "c"), b"old");
        assert_eq!(v.link_group("c"), None);
        // As does an opaque directory hiding it.
        let mut v = view(vec![bytes_entry("d/x", b"1", 0o644, 0), link("y", "d/x")]);
        v.apply(
            vec![marker("d", Kind::Opaque), dir_entry("d", 0o755, 0, 0, 0)]
                .into_iter()
                .map(|e| (e, Origin::Entry)),
        );
        assert_eq!(content(&v, "y"), b"1");
    }

    #[test]
    fn file_replacing_a_directory_drops_its_subtree() {
        let mut v = view(vec![bytes_entry("d/x", b"1", 0o644, 0)]);
        v.apply(vec![(bytes_entry("d", b"f", 0o644, 0), Origin::Entry)]);
        assert!(v.get("d/x").is_none());
    }
}
