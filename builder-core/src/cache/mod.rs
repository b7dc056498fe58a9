//! The layer cache, keyed by instruction hash.
//!
//! A step's [`CacheKey`] is a sha256 over a canonical encoding of every
//! named input it depends on ([`KeyBuilder`]): its parent's key, the
//! instruction in canonical form, the environment and build args it sees
//! (proxy args and secrets left out), the content digests of what it reads,
//! `--chown` name resolutions, `--from` sources' keys, the base image's
//! manifest digest. The [`CacheIndex`] in the store maps keys to results
//! (a layer and/or config), keeps the inputs of every key, and remembers the
//! recent keys of each step identity so a miss can be explained against the
//! closest earlier build ([`MissExplanation`]).
//!
//! The key chain skips metadata-only steps: a layer step's parent is the
//! previous *layer* step's key (or the stage's base key), and only the
//! config that changes what a step does (ENV, ARG, WORKDIR, USER, SHELL for
//! RUN) enters as named inputs; LABEL, EXPOSE, CMD and the like never do, so
//! changing them invalidates no layer.
//!
//! [`transfer`] exports and imports caches: an OCI layout directory
//! (`type=local`) or a registry reference (`type=registry`); blobs move
//! through the store's own `registry::BlobSink` impl, verified on commit.
mod chain;
mod explain;
mod index;
mod key;
pub mod transfer;

use std::path::PathBuf;

pub use chain::KeyChain;
pub use explain::{InputChange, MissExplanation};
pub use index::{CacheIndex, CacheResult, CachedLayer, CACHE_DIR, ROOT_OWNER};
pub use key::{CacheKey, InputsRecord, KeyBuilder, PROXY_ARGS};

use crate::digest::Digest;

/// What went wrong in the cache, with the path, digest or reference.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An index file is not what the cache wrote.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The store refused an operation.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A result names a blob the store does not hold.
    #[error("cache result refers to blob {0}, which is not in the store")]
    BlobMissing(Digest),
    /// A pull or push failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    /// Compressing a layer on its way out of the store failed.
    #[error("compressing layer {digest} for the cache export: {reason}")]
    Layer {
        /// The plain tar layer.
        digest: crate::digest::Digest,
        /// What went wrong.
        reason: String,
    },
    /// An imported cache is inconsistent.
    #[error("invalid cache: {0}")]
    Corrupt(String),
    /// A `--cache-to` / `--cache-from` value is malformed.
    #[error("invalid cache option {value:?}: {reason}")]
    Spec {
        /// The option as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
