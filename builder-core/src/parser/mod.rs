//! Dockerfile parsing: text to a syntax tree, the way BuildKit's parser reads it.
//!
//! Pure: no I/O. The input is the Dockerfile's bytes, the output a
//! [`Dockerfile`] or a [`ParseError`] naming the line and column.
//!
//! What the parser does, in BuildKit's order: a UTF-8 byte-order mark is
//! dropped; parser directives (`syntax`, `escape`, `check`) are read from the
//! top until the first other line; comments are collected; lines ending in
//! the escape character are joined (comment lines inside are dropped, empty
//! ones too, with a [`Warning`]); each instruction is split into keyword,
//! `--flags` and arguments the way its BuildKit line parser splits them; RUN,
//! COPY and ADD (also as ONBUILD triggers) read heredoc bodies. Unlike
//! BuildKit's parser, an unknown keyword and the ONBUILD triggers BuildKit
//! refuses one stage later (FROM, MAINTAINER, ONBUILD) are errors here.
mod ast;
mod directives;
mod dump;
mod error;
mod gostr;
mod heredoc;
mod instruction;
mod json;
mod reader;
mod words;

pub use ast::{Args, Directive, Dockerfile, Heredoc, NameValue, Node, Span, Warning};
pub use error::{render_snippet, ParseError, ParseErrorKind};
pub use heredoc::{chomp_heredoc_content, heredocs_from_line, parse_heredoc};

/// Go's `%q` quoting of a string, as BuildKit's messages and dumps print it.
pub fn go_quote(s: &str) -> String {
    gostr::quote(s)
}

/// Go's `%q` of an integer (`strconv.QuoteRune`), as BuildKit's history
/// prints a HEALTHCHECK's retries.
pub(crate) fn go_quote_rune(r: u64) -> String {
    gostr::quote_rune(r)
}

/// Parses a Dockerfile.
///
/// Text that is not UTF-8 is refused (BuildKit would pass such bytes through
/// to the build, where they cannot mean anything portable).
pub fn parse(input: &[u8]) -> Result<Dockerfile, ParseError> {
    match std::str::from_utf8(input) {
        Ok(text) => parse_str(text),
        Err(e) => {
            let valid = input.get(..e.valid_up_to()).unwrap_or_default();
            // The prefix is valid UTF-8 by definition.
            let valid = String::from_utf8_lossy(valid);
            let valid = valid.strip_prefix('\u{feff}').unwrap_or(&valid);
            let line = valid.matches('\n').count() + 1;
            let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
            let line_text = valid.get(line_start..).unwrap_or("");
            Err(ParseError {
                kind: ParseErrorKind::InvalidUtf8,
                line,
                column: line_text.chars().count() + 1,
                end_line: line,
                line_text: line_text.to_string(),
            })
        }
    }
}

/// Parses a Dockerfile given as text.
pub fn parse_str(input: &str) -> Result<Dockerfile, ParseError> {
    reader::parse_text(input)
}
