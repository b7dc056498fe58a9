//! The build context: what a build may read from the user's disk, and the
//! digests that decide cache hits.
//!
//! * [`source`]: directory, standard-input tar or archive file; Dockerfile lookup.
//! * [`ignore`] and [`pattern`]: .dockerignore exactly as docker 20.10 (the reference).
//! * [`gomatch`]: Go's `filepath.Match`, for pattern syntax and COPY wildcards.
//! * [`walk`]: the filtered listing with digests, in parallel.
//! * [`resolve`]: COPY/ADD sources to context paths, never leaving the root.
//! * `digest` and `statcache`: digest layout and the persistent stat cache.
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};

mod digest;
mod error;
pub mod gomatch;
pub mod ignore;
pub mod pattern;
pub mod resolve;
pub mod source;
mod statcache;
pub mod walk;

pub use digest::Digest;
pub use error::ContextError;
pub use ignore::{Decision, IgnoreError, IgnoreRules};
pub use resolve::ResolvedSource;
pub use source::{locate_dockerfile, Compression, ContextSource, Dockerfile, DockerfileFlag};
pub use walk::{ContextListing, Node, NodeKind, WalkOptions, WalkStats};

/// Where the stat cache lives inside a kiln store: pass this as
/// [`WalkOptions::cache_dir`]. The `v1` changes when the digest layout or
/// the cache format does, so an old cache is never misread.
pub fn stat_cache_dir(store_root: &Path) -> PathBuf {
    store_root.join("cache").join("context-v1")
}

/// An opened build context: its root directory (an archive is unpacked
/// first), the Dockerfile and the ignore rules that apply.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    root_fd: OwnedFd,
    dockerfile: Dockerfile,
    ignore: IgnoreRules,
    /// Keeps an unpacked archive alive as long as the context.
    _unpacked: Option<tempfile::TempDir>,
}

/// Why a path is or is not part of the context (`kiln debug context --why`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    /// Whether the path is left out.
    pub excluded: bool,
    /// `FILE:LINE: PATTERN` of the rule that decided, if one matched.
    pub rule: Option<String>,
}

impl BuildContext {
    /// Opens a context. `stdin` is read when the context or the Dockerfile
    /// comes from standard input (at most one of them may).
    pub fn open(
        source: &ContextSource,
        dockerfile: &DockerfileFlag,
        stdin: &mut dyn Read,
    ) -> Result<BuildContext, ContextError> {
        if *source == ContextSource::Stdin && *dockerfile == DockerfileFlag::Stdin {
            return Err(ContextError::StdinTwice);
        }
        let (root, unpacked, from_stream) = match source {
            ContextSource::Dir(dir) => (dir.clone(), None, None),
            ContextSource::Stdin | ContextSource::Archive(_) => {
                let tmp = tempfile::Builder::new()
                    .prefix("kiln-context-")
                    .tempdir()
                    .map_err(|e| ContextError::io(std::env::temp_dir(), e))?;
                let got = match source {
                    ContextSource::Archive(p) => {
                        let f = std::fs::File::open(p).map_err(|e| ContextError::io(p, e))?;
                        source::unpack(f, tmp.path(), &p.display().to_string())?
                    }
                    _ => source::unpack(&mut *stdin, tmp.path(), "-")?,
                };
                let root = tmp.path().to_path_buf();
                (root, Some(tmp), Some(got))
            }
        };
        let root_fd = rustix::fs::openat(
            CWD,
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ContextError::io(&root, e.into()))?;
        let dockerfile = match from_stream {
            Some(source::Unpacked::Dockerfile(text)) => Dockerfile {
                name: "-".to_string(),
                host_path: None,
                text,
            },
            _ => locate_dockerfile(&root, dockerfile, unpacked.is_some(), stdin)?,
        };
        // An archive is what BuildKit calls a remote context (docker 20.10
        // uploads a tar read from stdin as one, like a URL's): it is used
        // as it is, its .dockerignore included but not applied (docker
        // 20.10 checked; current BuildKit's MainContext agrees).
        let ignore = if unpacked.is_some() {
            IgnoreRules::default()
        } else {
            load_ignore(&root, &dockerfile)?
        };
        Ok(BuildContext {
            root,
            root_fd,
            dockerfile,
            ignore,
            _unpacked: unpacked,
        })
    }

    /// The context's root directory on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Dockerfile this build uses.
    pub fn dockerfile(&self) -> &Dockerfile {
        &self.dockerfile
    }

    /// The ignore rules in force (empty when no ignore file applies).
    pub fn ignore_rules(&self) -> &IgnoreRules {
        &self.ignore
    }

    /// Lists (and optionally hashes) everything the build may read.
    pub fn walk(&self, options: &WalkOptions) -> Result<ContextListing, ContextError> {
        let cache_file = options
            .cache_dir
            .as_deref()
            .filter(|_| options.hash && self._unpacked.is_none())
            .map(|dir| statcache::cache_file(dir, &self.root));
        let old = cache_file
            .as_deref()
            .map(statcache::StatCache::load)
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let walker = walk::Walker::new(&self.ignore, options.hash, &old, now - 1_000_000_000);
        let dir = rustix::fs::Dir::read_from(&self.root_fd)
            .map_err(|e| ContextError::io(&self.root, e.into()))?;
        let trees = walker.walk_dir(dir, b"")?;
        let root_digest = options
            .hash
            .then(|| walk::digest_of_children(0o755, &trees));
        let stats = walker.stats();
        if let Some(file) = &cache_file {
            let records = walker.records.into_inner().unwrap_or_default();
            let all_hits = records.len() as u64 == stats.cache_hits;
            let new = statcache::StatCache {
                map: records
                    .into_iter()
                    .map(|r| ((r.key.dev, r.key.ino), r))
                    .collect(),
            };
            // Only hits, and every old record hit: the file is current.
            if !all_hits || new.map.len() != old.map.len() {
                // The cache only saves time: failing to write it is not an error.
                let _ = new.save(file);
            }
        }
        let mut nodes = Vec::with_capacity((stats.files + stats.dirs) as usize);
        walk::flatten(trees, &mut nodes);
        let listing = ContextListing {
            nodes,
            root_digest,
            stats,
            index: Default::default(),
        };
        Ok(listing)
    }

    /// Explains whether a context-relative path is excluded and by which
    /// rule, deciding exactly as the walk does.
    pub fn why(&self, path: &str) -> Why {
        let clean = pattern::go_clean(&format!("/{path}"));
        let is_dir = std::fs::symlink_metadata(self.root.join(clean.trim_start_matches('/')))
            .is_ok_and(|m| m.is_dir());
        let (visible, rule) = self.ignore.deciding(&clean, is_dir);
        Why {
            excluded: !visible,
            rule: rule.and_then(|i| self.ignore.describe(i)),
        }
    }

    /// Opens a context file for reading, resolving the path inside the
    /// root with `openat2(RESOLVE_IN_ROOT)`: `..` and symlinks (even ones
    /// swapped in after the walk) cannot lead outside the context.
    pub fn open_file(&self, path: &Path) -> Result<std::fs::File, ContextError> {
        let fd = rustix::fs::openat2(
            &self.root_fd,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .or_else(|e| {
            crate::sandbox::Opener::for_process()
                .retry_at(e.into(), self.root_fd.as_fd(), path, true)
                .map(OwnedFd::from)
        })
        .map_err(|e| ContextError::io(path, e))?;
        Ok(std::fs::File::from(fd))
    }

    /// Resolves a COPY/ADD source (wildcards allowed) against a listing of
    /// this context; see [`resolve::resolve_source`].
    pub fn resolve_source(
        &self,
        listing: &ContextListing,
        source: &str,
    ) -> Result<Vec<ResolvedSource>, ContextError> {
        resolve::resolve_source(listing, source)
    }
}

/// Reads the ignore file that applies: `<Dockerfile>.dockerignore` next to
/// the Dockerfile if it exists, else `.dockerignore` at the context root.
fn load_ignore(root: &Path, dockerfile: &Dockerfile) -> Result<IgnoreRules, ContextError> {
    let mut candidates = Vec::new();
    if let Some(host) = &dockerfile.host_path {
        let mut name = host.as_os_str().to_owned();
        name.push(".dockerignore");
        candidates.push(PathBuf::from(name));
    }
    candidates.push(root.join(".dockerignore"));
    for file in candidates {
        // Through the opener: a .dockerignore of mode 0200 or 000 that the
        // user owns still applies (BuildKit, as root, reads it).
        match crate::sandbox::read_owned(&file) {
            Ok(text) => return Ok(IgnoreRules::parse(&file, &text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ContextError::Ignore(IgnoreError::Read {
                    path: file,
                    source,
                }))
            }
        }
    }
    Ok(IgnoreRules::default())
}
