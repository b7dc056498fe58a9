//! Word expansion the way BuildKit's Dockerfile shell lexer does it.
//!
//! Dockerfile values (ENV, ARG, LABEL, WORKDIR, COPY paths, ...) are not run
//! through a real shell: BuildKit removes quotes, handles the escape
//! character and substitutes `$var` / `${var...}` itself. [`Lexer`] mirrors
//! that lexer, quirks included, because an image must come out the same as
//! BuildKit's for the same Dockerfile.
//!
//! * [`Lexer::process_word`]: one word, quotes removed, inner spaces kept.
//! * [`Lexer::process_words`]: split into words after substitution, the way a
//!   shell-form argument list is split (used by EXPOSE).
//! * [`Lexer::process_word_with_matches`]: also reports which variable names
//!   were looked up and found or not found (unused-ARG tracking, FROM lines).
mod env;
mod lexer;
mod pattern;
pub(crate) mod unicode;
mod unicode_tables;

pub use env::{EmptyEnv, EnvLookup};
pub use lexer::{Lexer, WordResult};

/// The message of a word nesting `${...}` beyond our limit.
const TOO_DEEP: &str = "syntax error: substitutions nested too deeply";

/// A word that could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {message}")]
pub struct ShellError {
    /// The word as written.
    pub word: String,
    /// What went wrong, in BuildKit's wording.
    pub message: String,
}

impl ShellError {
    /// The word nests `${...}` deeper than kiln follows (BuildKit has no
    /// limit): unlike a syntax error, something BuildKit would accept.
    pub fn is_nesting_limit(&self) -> bool {
        self.message == TOO_DEEP
    }
}

#[cfg(test)]
mod tests;
