//! Errors of instruction parsing and expansion, with the place they refer to.
use crate::parser::Span;
use crate::shell::ShellError;

/// What went wrong, in BuildKit's wording where BuildKit has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionErrorKind {
    /// The keyword is not one of the eighteen instructions.
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// A `--flag` the instruction does not take.
    #[error("unknown flag: {0}")]
    UnknownFlag(String),
    /// A flag given a bad value, repeated, or missing its value.
    #[error("{0}")]
    BadFlag(String),
    /// Wrong number or shape of arguments.
    #[error("{0}")]
    BadArguments(String),
    /// A bad `RUN --mount` specification.
    #[error("{0}")]
    BadMount(String),
    /// A variable expansion failed.
    #[error(transparent)]
    Expansion(#[from] ShellError),
    /// An instruction outside any stage, a bad stage name or reference.
    #[error("{0}")]
    Stage(String),
    /// `--target` names no stage.
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
    /// An ONBUILD trigger from a base image that does not parse.
    #[error("failed to parse ONBUILD trigger: {0}")]
    Trigger(String),
    /// A bad value after expansion (EXPOSE ports, platform, chmod, ...).
    #[error("{0}")]
    BadValue(String),
}

/// An error tied to one instruction of the Dockerfile.
///
/// Displays as `line L, column C: message` followed by the instruction as
/// written, so a reader sees both where and what. Errors about the whole
/// build (an unknown `--target`) have no line (0) and show the message only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionError {
    /// Where the instruction is.
    pub span: Span,
    /// The instruction's text as written.
    pub instruction: String,
    /// What is wrong.
    pub kind: InstructionErrorKind,
}

impl std::fmt::Display for InstructionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.span.start_line == 0 {
            return write!(f, "{}", self.kind);
        }
        let first = self.instruction.lines().next().unwrap_or("");
        write!(
            f,
            "line {}, column {}: {}\n  {}",
            self.span.start_line, self.span.start_col, self.kind, first
        )
    }
}

impl std::error::Error for InstructionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            InstructionErrorKind::Expansion(e) => Some(e),
            _ => None,
        }
    }
}

impl InstructionError {
    /// Renders the error the way the CLI shows parse errors: message,
    /// `file:line:column` and the source line with a caret (see
    /// [`render_snippet`](crate::parser::render_snippet)). `source` is the
    /// Dockerfile's text.
    pub fn render(&self, source: &str, file_name: &str) -> String {
        if self.span.start_line == 0 {
            return format!("error: {}\n", self.kind);
        }
        crate::parser::render_snippet(
            source,
            file_name,
            self.span.start_line,
            self.span.start_col,
            &self.kind.to_string(),
        )
    }

    /// An error for the instruction at `span` written as `instruction`.
    pub fn new(span: Span, instruction: &str, kind: InstructionErrorKind) -> Self {
        InstructionError {
            span,
            instruction: instruction.to_string(),
            kind,
        }
    }
}
