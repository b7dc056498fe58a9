//! The build context's error type.
use std::path::PathBuf;

use super::ignore::IgnoreError;

/// Everything that can go wrong reading a build context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A filesystem operation on a context path failed.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned (host path or context-relative).
        path: PathBuf,
        /// What the system reported.
        source: std::io::Error,
    },
    /// The .dockerignore (or `<Dockerfile>.dockerignore`) is invalid.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// A context archive could not be read.
    #[error("{archive}: {message}")]
    Archive {
        /// The archive (`-` for standard input).
        archive: String,
        /// What was wrong.
        message: String,
    },
    /// An archive entry would land outside the extraction directory.
    #[error("{archive}: entry {entry:?} points outside the build context")]
    UnsafeEntry {
        /// The archive (`-` for standard input).
        archive: String,
        /// The entry's path as stored.
        entry: String,
    },
    /// No Dockerfile was found.
    #[error("no Dockerfile found: looked for {looked_for}")]
    NoDockerfile {
        /// The places tried, for the message.
        looked_for: String,
    },
    /// Context and Dockerfile were both asked to come from standard input.
    #[error("the build context and the Dockerfile cannot both be read from standard input")]
    StdinTwice,
    /// A COPY/ADD source names nothing in the (filtered) context.
    #[error("{source_path:?}: not found in the build context")]
    NotFound {
        /// The source as written in the instruction.
        source_path: String,
    },
    /// A COPY/ADD source wildcard is not a valid Go `filepath.Match` pattern.
    #[error("{source_path:?}: invalid wildcard pattern")]
    BadWildcard {
        /// The source as written.
        source_path: String,
    },
    /// A symlink chain in the context is too long or loops.
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop {
        /// Context-relative path being resolved.
        path: PathBuf,
    },
}

impl ContextError {
    /// Wraps an I/O error with its path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ContextError {
        ContextError::Io {
            path: path.into(),
            source,
        }
    }
}
