//! COPY/ADD sources to context paths, as BuildKit's file copier resolves
//! them (fsutil `copy.ResolveWildcards` and `fs.RootPath`).
//!
//! Everything happens on the filtered listing, never on the disk, so an
//! ignored file cannot come back through a wildcard or a symlink. Paths
//! are read as if the context were the filesystem root: `/x` and `../x`
//! both mean `x`, and a symlink whose target climbs out (`../../etc`,
//! `/etc/passwd`) is clamped at the root, exactly as BuildKit does; the
//! result then names a context path or is not found.
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::ContextError;
use super::gomatch;
use super::pattern::go_clean;
use super::walk::{ContextListing, NodeKind};
use crate::bytename;

/// Symlink hops allowed while resolving one path (Linux allows 40; fsutil
/// allows 255).
const MAX_HOPS: usize = 255;

/// One context entry a COPY/ADD source names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    /// The path the source or its wildcard matched (before following a
    /// final symlink); its base name is what COPY names the copy after.
    pub matched: PathBuf,
    /// The listed entry it leads to after following symlinks inside the
    /// context; empty for the context root. Copy
    /// [`ContextListing::subtree`] of this path.
    pub path: PathBuf,
}

/// Whether a path element holds a Go wildcard (`\` escapes the next byte).
fn has_wildcard(elem: &str) -> bool {
    let mut chars = elem.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Follows symlinks in `path` through the listing, clamping at the root.
fn follow(listing: &ContextListing, path: &str) -> Result<String, ContextError> {
    let mut queue: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(comp) = queue.pop() {
        match comp.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let mut candidate = resolved.join("/");
        if !candidate.is_empty() {
            candidate.push('/');
        }
        candidate.push_str(&comp);
        match listing.get(&bytename::to_path(&candidate)).map(|n| &n.kind) {
            Some(NodeKind::Symlink { target }) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(ContextError::SymlinkLoop {
                        path: bytename::to_path(path),
                    });
                }
                let target = target.as_os_str().as_bytes();
                if target.starts_with(b"/") {
                    resolved.clear();
                }
                let target = bytename::from_bytes(target);
                for elem in target.split('/').rev() {
                    queue.push(elem.to_string());
                }
            }
            _ => resolved.push(comp),
        }
    }
    Ok(resolved.join("/"))
}

fn exists(listing: &ContextListing, path: &str) -> bool {
    path.is_empty() || listing.get(&bytename::to_path(path)).is_some()
}

/// Resolves one COPY/ADD source. Without wildcards it names one entry
/// (after following symlinks); with wildcards (Go `filepath.Match`, per
/// path element) it names every matching entry below the wildcard-free
/// leading directories, in walk order, without descending into a matched
/// directory. Nothing found is [`ContextError::NotFound`].
pub fn resolve_source(
    listing: &ContextListing,
    source: &str,
) -> Result<Vec<ResolvedSource>, ContextError> {
    let not_found = || ContextError::NotFound {
        source_path: source.to_string(),
    };
    let cleaned = go_clean(&format!("/{source}"));
    let rel = cleaned.trim_start_matches('/');
    let elems: Vec<&str> = rel.split('/').filter(|e| !e.is_empty()).collect();
    let split = elems
        .iter()
        .position(|e| has_wildcard(e))
        .unwrap_or(elems.len());
    let (fixed, wild) = elems.split_at(split);
    let fixed = fixed.join("/");
    if wild.is_empty() {
        let path = follow(listing, &fixed)?;
        if !exists(listing, &path) {
            return Err(not_found());
        }
        return Ok(vec![ResolvedSource {
            matched: bytename::to_path(&fixed),
            path: bytename::to_path(&path),
        }]);
    }
    let pattern = wild.join("/");
    gomatch::validate(&pattern).map_err(|_| ContextError::BadWildcard {
        source_path: source.to_string(),
    })?;
    let base = follow(listing, &fixed)?;
    if !base.is_empty()
        && !matches!(
            listing.get(&bytename::to_path(&base)).map(|n| &n.kind),
            Some(NodeKind::Dir)
        )
    {
        return Err(not_found());
    }
    let base_bytes = bytename::to_bytes(&base);
    let nodes = listing.subtree(Path::new(OsStr::from_bytes(&base_bytes)));
    let nodes = if base.is_empty() {
        nodes
    } else {
        nodes.get(1..).unwrap_or(&[])
    };
    let mut out = Vec::new();
    let mut skip_below: Option<Vec<u8>> = None;
    for node in nodes {
        let full = node.path.as_os_str().as_bytes();
        if let Some(prefix) = &skip_below {
            if full.starts_with(prefix) {
                continue;
            }
            skip_below = None;
        }
        let inner = if base.is_empty() {
            full
        } else {
            full.get(base_bytes.len() + 1..).unwrap_or(&[])
        };
        let inner = bytename::from_bytes(inner);
        if gomatch::go_match(&pattern, &inner) == Ok(true) {
            let matched = bytename::from_bytes(full).into_owned();
            let path = follow(listing, &matched)?;
            if !exists(listing, &path) {
                return Err(ContextError::NotFound {
                    source_path: bytename::show(&matched).into_owned(),
                });
            }
            if node.kind == NodeKind::Dir {
                let mut prefix = full.to_vec();
                prefix.push(b'/');
                skip_below = Some(prefix);
            }
            out.push(ResolvedSource {
                matched: PathBuf::from(OsStr::from_bytes(full)),
                path: bytename::to_path(&path),
            });
        }
    }
    if out.is_empty() {
        return Err(not_found());
    }
    Ok(out)
}
