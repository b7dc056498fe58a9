//! `COPY --parents` as current BuildKit does it: the source's pattern is
//! not expanded into paths but becomes an include pattern over a walk of
//! the source root (the part before a `/./` pivot, or the whole tree), and
//! every directory between that root and a match is recreated with its
//! source's metadata.
//!
//! What follows from that, and differs from expanding the pattern first:
//! `**` reaches any depth; a pivot before a wildcard (`a/b*/./c`) walks
//! each matching root; `--exclude` patterns are relative to the root, not
//! to each match; the destination directory is made even when nothing
//! matches; and a path without wildcards must exist (the frontend's
//! RequiredPaths, since dockerfile 1.20).

use super::copy::{apply_meta, copy_node, copy_path, has_wildcards, resolve_sources};
use super::copy::{CopyOptions, LayerBuilder, SourceFs};
use super::fsview::{clean, join};
use crate::context::pattern::go_clean;
use crate::context::IgnoreRules;
use crate::fsentry::Kind;

/// One `--parents` source `spec` (as written, relative to the source
/// root) copied into the directory `dest`.
pub fn copy_parents(
    layer: &mut LayerBuilder,
    src: &dyn SourceFs,
    spec: &str,
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), String> {
    let (root, pattern) = match spec.split_once("/./") {
        Some((r, p)) => (r, p),
        None => ("/", spec),
    };
    // The frontend cleans the pattern as an absolute path, then drops the
    // leading slash: `./`, `.` and `` all leave an empty pattern, which
    // patternmatcher drops, so nothing matches and only the destination
    // is made. Frontends 1.7-1.19 (what Buildah's conformance cases pin)
    // build that; 1.20+ also require `ROOT/` to be copied and so fail with
    // `"/ROOT": not found`. kiln keeps the former (the latter refuses what
    // every earlier frontend builds) and follows 1.20+ for a non-empty
    // pattern, which must then exist.
    let pattern = go_clean(&format!("/{pattern}"))
        .trim_start_matches('/')
        .to_string();
    let include =
        IgnoreRules::from_patterns(&[&pattern]).map_err(|e| format!("--parents {spec}: {e}"))?;
    let required = (!has_wildcards(root) && !has_wildcards(&pattern) && !pattern.is_empty())
        .then(|| join(&clean(root), &pattern));

    let roots = if has_wildcards(root) {
        resolve_sources(src, root)?
    } else {
        vec![clean(root)]
    };
    let mut included = Vec::new();
    for r in roots {
        let followed = src.resolve(&r, true)?;
        match src.lstat(&followed)? {
            Some(n) if n.entry.kind == Kind::Dir => {}
            // A file root is copied whole, as fsutil copies a file source.
            Some(_) => {
                copy_path(layer, src, &r, &format!("{}/", clean(dest)), opts)?;
                continue;
            }
            // The reference's checksum reports the path it required.
            None => {
                let missing = required.clone().unwrap_or(r);
                return Err(format!("\"/{missing}\": not found"));
            }
        }
        let dest_dir = layer.mkdir_all(&clean(dest), opts)?;
        let mut walk = Walk {
            src,
            include: &include,
            opts,
            included: &mut included,
            root: &r,
        };
        walk.dir(layer, &followed, "", &dest_dir, &[])?;
    }
    if let Some(req) = required {
        // The reference compares as strings: any copied path that starts
        // with the required one satisfies it.
        if !included.iter().any(|p: &String| p.starts_with(&req)) {
            return Err(format!("\"/{req}\": not found"));
        }
    }
    Ok(())
}

struct Walk<'a> {
    src: &'a dyn SourceFs,
    include: &'a IgnoreRules,
    opts: &'a CopyOptions,
    /// Source paths (below the source, not the root) that were copied.
    included: &'a mut Vec<String>,
    root: &'a str,
}

impl Walk<'_> {
    /// Walks a directory nothing above matched: each child either matches
    /// the include pattern (and is copied whole by the ordinary copy, which
    /// applies `--exclude` and makes the pending parents), or, being a
    /// directory, is walked in turn as a pending parent.
    fn dir(
        &mut self,
        layer: &mut LayerBuilder,
        src_dir: &str,
        rel: &str,
        dst_dir: &str,
        parent_excl: &[bool],
    ) -> Result<(), String> {
        for name in self.src.read_dir(src_dir)? {
            let child_src = join(src_dir, &name);
            let child_rel = join(rel, &name);
            let child_dst = join(dst_dir, &name);
            let (inc, _) = self.include.decide_in_walk(&child_rel, &[]);
            if inc {
                // What the reference's checksum counts as present: the
                // match itself unless excluded, or, for a directory entered
                // for exceptions, what those let through.
                let (excluded, _) = self.opts.exclude.decide_in_walk(&child_rel, parent_excl);
                if !excluded || self.opts.exclude.has_exceptions() {
                    self.included.push(join(&clean(self.root), &child_rel));
                }
                copy_node(
                    layer,
                    self.src,
                    &child_src,
                    &child_rel,
                    &child_dst,
                    true,
                    self.opts,
                    parent_excl,
                )?;
                continue;
            }
            let Some(node) = self.src.lstat(&child_src)? else {
                continue;
            };
            if node.entry.kind != Kind::Dir {
                continue;
            }
            let (excluded, excl) = self.opts.exclude.decide_in_walk(&child_rel, parent_excl);
            if excluded && !self.opts.exclude.has_exceptions() {
                continue;
            }
            let e = apply_meta(node.entry, &child_dst, self.opts, true);
            layer.pending.push((e, false));
            let result = self.dir(layer, &child_src, &child_rel, &child_dst, &excl);
            layer.pending.pop();
            result?;
        }
        Ok(())
    }
}
