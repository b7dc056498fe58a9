//! The build engine: a parsed Dockerfile and a context in, an image out.
//!
//! [`build`] splits the Dockerfile into stages, builds only the stages the
//! target needs (on demand, so a broken stage nothing uses never runs), and
//! for each one starts from its base (scratch, an earlier stage, a named
//! build context or an image from the [`ImageResolver`]), dispatches every
//! instruction with BuildKit's semantics and writes one layer per
//! filesystem change. The result is the target stage's config and layers;
//! storing and exporting them is the caller's business (see [`output`]).
use std::collections::BTreeMap;
use std::path::PathBuf;

mod archive;
mod cache_mount;
mod cached;
pub mod config;
mod context_mount;
mod copy;
mod engine;
mod fetch;
pub mod fsview;
pub mod images;
mod instr;
mod keys;
pub mod mode;
pub mod output;
mod parents;
pub mod resolve;
pub mod run;
pub mod secrets;
pub mod ssh_keys;

pub use config::ImageConfig;
pub use engine::{build, build_with};
pub use images::{BaseImage, LayerBlob};

pub use crate::instructions::Platform;

/// A `--build-context NAME=...` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// `oci-layout://PATH[:TAG|@DIGEST]`.
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// A tag or digest naming the image inside it.
        selector: Option<String>,
    },
    /// A local directory.
    Dir(PathBuf),
}

impl NamedContext {
    /// Parses the value after `NAME=`.
    pub fn parse(value: &str) -> Result<Self, String> {
        if let Some(rest) = value.strip_prefix("oci-layout://") {
            if let Some((p, d)) = rest.split_once('@') {
                return Ok(NamedContext::OciLayout {
                    path: PathBuf::from(p),
                    selector: Some(d.to_string()),
                });
            }
            // A tag follows the last ':' unless that is part of the path.
            if let Some((p, t)) = rest.rsplit_once(':') {
                if !t.contains('/') && !p.is_empty() {
                    return Ok(NamedContext::OciLayout {
                        path: PathBuf::from(p),
                        selector: Some(t.to_string()),
                    });
                }
            }
            return Ok(NamedContext::OciLayout {
                path: PathBuf::from(rest),
                selector: None,
            });
        }
        if value.contains("://") || value.starts_with("docker-image:") {
            return Err(format!(
                "unsupported build context {value:?}: use oci-layout://PATH or a directory"
            ));
        }
        Ok(NamedContext::Dir(PathBuf::from(value)))
    }
}

/// Everything a build needs besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Dockerfile's name for messages.
    pub dockerfile_name: String,
    /// The build context directory.
    pub context: PathBuf,
    /// The context's ignore rules; None reads `.dockerignore` at its root.
    pub ignore: Option<crate::context::IgnoreRules>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--label`, set on the final image.
    pub labels: BTreeMap<String, String>,
    /// The target platform.
    pub platform: Platform,
    /// `SOURCE_DATE_EPOCH`: config and history times, clamped mtimes.
    pub source_date_epoch: Option<i64>,
    /// `--build-context`.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// A private directory for the build's temporary files.
    pub scratch: PathBuf,
    /// How new layers are compressed.
    pub compression: crate::layer::CompressionOptions,
    /// `--add-host`: (name, address) lines added to RUN steps' /etc/hosts.
    pub extra_hosts: Vec<(String, String)>,
    /// `--shm-size`: the size of RUN steps' /dev/shm in bytes (Docker's
    /// 64 MiB when None).
    pub shm_size: Option<u64>,
}

/// How a build uses the layer cache and where it reports progress.
#[derive(Clone)]
pub struct BuildHooks<'a> {
    /// Receives the build's events (steps started, cached, missed, ...).
    pub reporter: &'a dyn crate::progress::Reporter,
    /// False for `--no-cache`: no lookups (results are still recorded).
    pub use_cache: bool,
    /// `--no-cache-filter`: stages (by name or index) that skip lookups.
    pub no_cache_filter: Vec<String>,
    /// The context listing with digests (`walk` with `hash: true`); None
    /// makes every step that reads the context uncacheable.
    pub listing: Option<&'a crate::context::ContextListing>,
    /// Keep a cache at all (None of the lookups or records happen if false).
    pub cache: bool,
    /// `--jobs`: stages built at the same time; 0 means one per core.
    pub jobs: usize,
    /// Stops the build: cancelled by the caller (Ctrl-C, see
    /// [`crate::graph::signal`]) or by the engine when a step fails, it
    /// kills running steps and makes waiting ones give up.
    pub cancel: crate::graph::CancelToken,
}

impl BuildHooks<'_> {
    /// No cache, no events: what [`build`] uses.
    pub fn none() -> BuildHooks<'static> {
        BuildHooks {
            reporter: &crate::progress::NullReporter,
            use_cache: false,
            no_cache_filter: Vec::new(),
            listing: None,
            cache: false,
            jobs: 0,
            cancel: crate::graph::CancelToken::new(),
        }
    }
}

/// What the cache did during a build.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// Layer steps satisfied from the cache.
    pub cache_hits: usize,
    /// Layer steps that ran.
    pub cache_misses: usize,
    /// One JSON object per miss (`--explain-cache`).
    pub explanations: Vec<serde_json::Value>,
    /// Every step key the build used or recorded (`--cache-to mode=max`).
    pub keys: Vec<crate::cache::CacheKey>,
    /// The keys of the steps the target image is made of: the target
    /// stage's and those of the stages it is built `FROM` (`--cache-to
    /// mode=min`).
    pub target_keys: Vec<crate::cache::CacheKey>,
}

/// Resolves image references (FROM, COPY --from) to images. Stages built
/// in parallel take turns: the engine calls it under a lock.
pub trait ImageResolver: Send {
    /// Fetches or finds `reference` for `platform`.
    fn resolve(&mut self, reference: &str, platform: &Platform) -> Result<BaseImage, String>;
}

/// Runs a RUN step: the seam the sandbox plugs into. Steps of stages
/// built in parallel call it from several threads at once.
pub trait RunExecutor: Sync {
    /// Runs `argv` with `env`, `user` and `workdir` over the stage's
    /// filesystem (the layers, bottom first) and returns the new layer.
    /// The process's output goes to `control.output` as it arrives; once
    /// `control.cancel` is cancelled the step must be killed and an error
    /// returned.
    fn run(
        &self,
        request: &RunRequest,
        control: &mut RunControl<'_>,
    ) -> Result<Option<LayerBlob>, String>;
}

/// What a running step gets from the engine besides its request.
pub struct RunControl<'a> {
    /// The build's cancellation: another step failed, or Ctrl-C.
    pub cancel: &'a crate::graph::CancelToken,
    /// Receives the process's output (the progress display's step log).
    pub output: &'a mut dyn crate::sandbox::OutputSink,
}

/// What a RUN step needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The stage's layers, bottom first.
    pub layers: Vec<LayerBlob>,
    /// The command (shell form already wrapped in SHELL).
    pub argv: Vec<String>,
    /// `KEY=value` environment (ENV plus ARGs in scope).
    pub env: Vec<String>,
    /// USER, unresolved.
    pub user: String,
    /// WORKDIR.
    pub workdir: String,
    /// `RUN --network`.
    pub network: crate::instructions::NetworkMode,
    /// `RUN --mount`s, expanded and typed.
    pub mounts: Vec<crate::instructions::Mount>,
    /// For each mount, the host directory its `source` is relative to when
    /// it names another stage or image (`from=`); None for the context.
    pub mount_roots: Vec<Option<PathBuf>>,
    /// A `#!` heredoc to provide as `/dev/pipes/NAME` (mode 0755, read-only).
    pub script: Option<crate::instructions::InlineFile>,
    /// Extra /etc/hosts entries (name, address): [`BuildOptions::extra_hosts`].
    pub extra_hosts: Vec<(String, String)>,
    /// /dev/shm's size in bytes: [`BuildOptions::shm_size`].
    pub shm_size: Option<u64>,
}

/// The built target: its config and layers (base layers untouched first).
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The final config (diff_ids and history included).
    pub config: ImageConfig,
    /// The layers.
    pub layers: Vec<LayerBlob>,
    /// How many of `layers` come from the base image unchanged.
    pub base_layers: usize,
}

/// A build failure, located in the Dockerfile when it comes from an
/// instruction.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// The Dockerfile line of the failing instruction.
    pub line: Option<usize>,
    /// Column of the instruction's keyword on `line`.
    pub column: Option<usize>,
    /// Last line of the instruction.
    pub end_line: Option<usize>,
    /// What went wrong.
    pub message: String,
}

impl BuildError {
    /// An error not tied to a line.
    pub fn general(message: impl Into<String>) -> Self {
        BuildError {
            line: None,
            column: None,
            end_line: None,
            message: shown(message.into()),
        }
    }

    /// An error at an instruction.
    pub fn at(span: &crate::parser::Span, message: impl Into<String>) -> Self {
        BuildError {
            line: Some(span.start_line),
            column: Some(span.start_col.max(1)),
            end_line: Some(span.end_line),
            message: shown(message.into()),
        }
    }
}

/// Paths inside the copy machinery carry raw bytes as private characters
/// (see [`crate::bytename`]); a message shows them as `\xNN`.
fn shown(message: String) -> String {
    match crate::bytename::show(&message) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(s) => s,
    }
}
