//! Parse errors, and the snippet renderer every Dockerfile-located error uses.
use std::fmt::Write as _;

/// A Dockerfile the parser refuses, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (line {line}, column {column}: {line_text:?})")]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// 1-based line the error points at (an instruction's first line).
    pub line: usize,
    /// 1-based column (in characters) on `line`.
    pub column: usize,
    /// Last line of the instruction involved (equal to `line` when it is a
    /// single line).
    pub end_line: usize,
    /// The text of `line`, without its line ending.
    pub line_text: String,
}

impl ParseError {
    /// Formats the error with the Dockerfile snippet it points at (see
    /// [`render_snippet`]). `source` is the Dockerfile text.
    pub fn render(&self, source: &str, file_name: &str) -> String {
        render_snippet(
            source,
            file_name,
            self.line,
            self.column,
            &self.kind.to_string(),
        )
    }
}

/// What made the parser refuse a Dockerfile. Messages follow BuildKit's where
/// BuildKit has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing but blank lines, comments and directives.
    #[error("file with no instructions")]
    NoInstructions,
    /// The input is not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A physical line longer than BuildKit's scanner accepts.
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    /// The same parser directive twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// A keyword that is not one of the eighteen instructions.
    #[error("unknown instruction: {name}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        /// The keyword as written.
        name: String,
        /// The closest instruction name, when one is close.
        suggestion: Option<String>,
    },
    /// A line continuation with no instruction after it.
    #[error("line continuation with no instruction after it")]
    EmptyInstruction,
    /// `ENV key` / `LABEL key` with no value.
    #[error("{0} must have two arguments")]
    MissingValue(String),
    /// An `ENV`/`LABEL` word without `=` after a `k=v` word.
    #[error("Syntax error - can't find = in {}. Must be of the form: name=value", super::gostr::quote(.0))]
    MissingEquals(String),
    /// A JSON array with something other than strings in it.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// `ONBUILD ONBUILD ...`.
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    /// `ONBUILD FROM` or `ONBUILD MAINTAINER`.
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    /// A heredoc whose terminator line never comes.
    #[error("unterminated heredoc {0}")]
    UnterminatedHeredoc(String),
    /// A heredoc marker the shell lexer refuses (an unterminated quote, say).
    #[error("{0}")]
    Heredoc(String),
}

/// Formats `message` for a location in a Dockerfile, compiler-style:
///
/// ```text
/// error: unknown instruction: RUNN (did you mean RUN?)
///  --> Dockerfile:3:1
///   |
/// 3 | RUNN echo hi
///   | ^
/// ```
///
/// `line` and `column` are 1-based; a line outside `source` shows no snippet.
pub fn render_snippet(
    source: &str,
    file_name: &str,
    line: usize,
    column: usize,
    message: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "error: {message}");
    let _ = writeln!(out, " --> {file_name}:{line}:{column}");
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let Some(text) = line.checked_sub(1).and_then(|i| source.split('\n').nth(i)) else {
        return out;
    };
    let text = text.trim_end_matches(['\r', '\n']);
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{number} | {text}");
    // Keep tabs so the caret lines up however the terminal renders them.
    let lead: String = text
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = write!(out, "{pad} | {lead}^");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_points_at_the_column() {
        let src = "FROM x\n\tRUNN a\n";
        let got = render_snippet(src, "Dockerfile", 2, 2, "unknown instruction: RUNN");
        assert_eq!(
            got,
            "error: unknown instruction: RUNN\n --> Dockerfile:2:2\n  |\n2 | \tRUNN a\n  | \t^"
        );
    }

    #[test]
    fn snippet_without_a_line() {
        let got = render_snippet("", "-", 0, 0, "file with no instructions");
        assert_eq!(got, "error: file with no instructions\n --> -:0:0\n");
    }

    #[test]
    fn messages() {
        let e = ParseErrorKind::UnknownInstruction {
            name: "RUNN".into(),
            suggestion: Some("RUN".into()),
        };
        assert_eq!(
            e.to_string(),
            "unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(
            ParseErrorKind::MissingEquals("a\"b".into()).to_string(),
            "Syntax error - can't find = in \"a\\\"b\". Must be of the form: name=value"
        );
    }
}
