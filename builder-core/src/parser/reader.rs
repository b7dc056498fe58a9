//! The line loop: physical lines to instructions. Follows BuildKit's `Parse`:
//! directives at the top, comments, continuation lines, heredoc bodies.
use super::ast::{Args, Directive, Dockerfile, Node, Span, Warning};
use super::directives::{escape_token, DirectiveLine, DirectiveReader};
use super::error::{ParseError, ParseErrorKind};
use super::gostr::is_space;
use super::heredoc::heredocs_from_line;
use super::instruction::node_from_line;
use super::words::trim_space;

/// BuildKit reads lines with Go's `bufio.Scanner`, whose default limit is
/// 64 KiB per line including its newline.
const MAX_LINE: usize = 64 * 1024;

/// Parses Dockerfile text (a leading byte-order mark is allowed).
pub(super) fn parse_text(text: &str) -> Result<Dockerfile, ParseError> {
    // The scanner sees the BOM as part of line 1; the parser then drops it.
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    // BuildKit's scanner stops at an over-long line: what comes before it is
    // still parsed (and its errors win), then the length is the error.
    let mut too_long = None;
    for (i, line) in lines.iter().enumerate() {
        let len = line.len() + if i == 0 { bom } else { 0 };
        let limit_hit = if line.ends_with('\n') {
            len > MAX_LINE
        } else {
            len >= MAX_LINE
        };
        if limit_hit {
            too_long = Some(i);
            break;
        }
    }
    if let Some(i) = too_long {
        lines.truncate(i);
    }
    let mut p = Reader {
        lines: &lines,
        next: 0,
        escape: '\\',
        directive_reader: DirectiveReader::default(),
        directives: Vec::new(),
    };
    let (nodes, warnings) = p.run()?;
    if nodes.is_empty() {
        let line = p.next.max(1);
        return Err(error_at(
            &lines,
            ParseErrorKind::NoInstructions,
            line,
            1,
            line,
        ));
    }
    if let Some(i) = too_long {
        return Err(ParseError {
            kind: ParseErrorKind::LineTooLong,
            line: i + 1,
            column: 1,
            end_line: i + 1,
            line_text: String::new(),
        });
    }
    Ok(Dockerfile {
        directives: p.directives,
        escape: p.escape,
        nodes,
        warnings,
    })
}

/// A [`ParseError`] at a line of the (BOM-stripped) text.
fn error_at(
    lines: &[&str],
    kind: ParseErrorKind,
    line: usize,
    column: usize,
    end_line: usize,
) -> ParseError {
    let line_text = line
        .checked_sub(1)
        .and_then(|i| lines.get(i))
        .map(|l| trim_newline(l).to_string())
        .unwrap_or_default();
    ParseError {
        kind,
        line,
        column,
        end_line: end_line.max(line),
        line_text,
    }
}

/// Go's `bytes.TrimRight(line, "\r\n")`.
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_space).starts_with('#')
}

/// Columns are counted in characters, 1-based.
fn column_of_text_start(line: &str) -> usize {
    line.chars().take_while(|&c| is_space(c)).count() + 1
}

struct Reader<'a> {
    lines: &'a [&'a str],
    /// Index of the next physical line; also the number of lines consumed.
    next: usize,
    escape: char,
    directive_reader: DirectiveReader,
    directives: Vec<Directive>,
}

impl<'a> Reader<'a> {
    fn next_line(&mut self) -> Option<&'a str> {
        let line = self.lines.get(self.next).copied();
        if line.is_some() {
            self.next += 1;
        }
        line
    }

    fn err(&self, kind: ParseErrorKind, line: usize, column: usize, end_line: usize) -> ParseError {
        error_at(self.lines, kind, line, column, end_line)
    }

    /// BuildKit's `processLine`: strips the line ending (and, for the first
    /// line of an instruction, leading blanks), reads a parser directive if
    /// the directive section is still open, and blanks out comment lines.
    /// Returns the text and whether the line was a directive.
    fn process_line(
        &mut self,
        raw: &'a str,
        strip_left: bool,
        line_no: usize,
    ) -> Result<(&'a str, bool), ParseError> {
        let mut token = trim_newline(raw);
        if strip_left {
            token = token.trim_start_matches(is_space);
        }
        let directive = self.directive_reader.read(token).map_err(|key| {
            self.err(ParseErrorKind::DuplicateDirective(key), line_no, 1, line_no)
        })?;
        let is_directive = match directive {
            DirectiveLine::No => false,
            DirectiveLine::Yes(name, value) => {
                if name == "escape" {
                    self.escape = escape_token(&value).ok_or_else(|| {
                        self.err(
                            ParseErrorKind::InvalidEscape(value.clone()),
                            line_no,
                            1,
                            line_no,
                        )
                    })?;
                }
                self.directives.push(Directive {
                    name,
                    value,
                    line: line_no,
                });
                true
            }
        };
        let text = if is_comment(token) { "" } else { token };
        Ok((text, is_directive))
    }

    /// BuildKit's `trimContinuationCharacter`: a line ending in the escape
    /// character (plus blanks), not itself escaped, continues. Returns the
    /// text without it and whether the instruction ends here.
    fn trim_continuation(&self, line: &'a str) -> (&'a str, bool) {
        let body = line.trim_end_matches([' ', '\t']);
        let Some(before) = body.strip_suffix(self.escape) else {
            return (line, true);
        };
        if before.ends_with(self.escape) {
            return (line, true);
        }
        (before, false)
    }

    fn run(&mut self) -> Result<(Vec<Node>, Vec<Warning>), ParseError> {
        let mut nodes = Vec::new();
        let mut warnings = Vec::new();
        let mut comments: Vec<String> = Vec::new();
        while let Some(raw) = self.next_line() {
            let line_no = self.next;
            if is_comment(raw) {
                // BuildKit drops the line's first byte, whatever it is, and
                // trims the rest; an empty comment resets the collection.
                let comment = String::from_utf8_lossy(raw.as_bytes().get(1..).unwrap_or_default());
                let comment = trim_space(&comment);
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment.to_string());
                }
            }
            let (text, is_directive) = self.process_line(raw, true, line_no)?;
            if is_directive {
                comments.pop();
            }
            let start_line = line_no;
            let start_col = column_of_text_start(raw);
            let (text, mut end_of_line) = self.trim_continuation(text);
            if end_of_line && text.is_empty() {
                continue;
            }
            let mut buf = String::from(text);
            let mut empty_continuation = false;
            while !end_of_line {
                let Some(raw) = self.next_line() else { break };
                let (text, _) = self.process_line(raw, false, self.next)?;
                if is_comment(raw) {
                    continue;
                }
                if trim_newline(text).trim_start_matches(is_space).is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (text, eol) = self.trim_continuation(text);
                end_of_line = eol;
                buf.push_str(text);
            }
            if empty_continuation {
                warnings.push(Warning {
                    message: format!("Empty continuation line found in: {buf}"),
                    line: self.next,
                });
            }
            let mut node = node_from_line(&buf, self.escape, std::mem::take(&mut comments))
                .map_err(|kind| self.err(kind, start_line, start_col, self.next))?;
            if can_contain_heredoc(&node) && buf.contains("<<") {
                self.read_heredocs(&mut node, &buf, start_line, start_col)?;
            }
            let end_line = self.next;
            let end_text = self
                .lines
                .get(end_line.saturating_sub(1))
                .copied()
                .unwrap_or("");
            node.span = Span {
                start_line,
                start_col,
                end_line,
                end_col: trim_newline(end_text).chars().count() + 1,
            };
            if let Args::Nested(child) = &mut node.args {
                child.span = node.span;
            }
            nodes.push(node);
        }
        Ok((nodes, warnings))
    }

    /// Reads the bodies of the heredocs `line` declares, in order.
    fn read_heredocs(
        &mut self,
        node: &mut Node,
        line: &str,
        start_line: usize,
        start_col: usize,
    ) -> Result<(), ParseError> {
        let heredocs = heredocs_from_line(line)
            .map_err(|m| self.err(ParseErrorKind::Heredoc(m), start_line, start_col, self.next))?;
        for mut heredoc in heredocs {
            let mut terminated = false;
            while let Some(raw) = self.next_line() {
                let mut candidate = trim_newline(raw);
                if heredoc.chomp {
                    candidate = candidate.trim_start_matches('\t');
                }
                if candidate == heredoc.name {
                    terminated = true;
                    break;
                }
                heredoc.content.push_str(raw);
            }
            if !terminated {
                return Err(self.err(
                    ParseErrorKind::UnterminatedHeredoc(heredoc.name),
                    start_line,
                    start_col,
                    self.next,
                ));
            }
            node.heredocs.push(heredoc);
        }
        Ok(())
    }
}

/// Heredocs are read for RUN, COPY and ADD (also as an ONBUILD trigger), not
/// in exec (JSON) form.
fn can_contain_heredoc(node: &Node) -> bool {
    let target = match &node.args {
        Args::Nested(child) if node.keyword == "onbuild" => child.as_ref(),
        _ => node,
    };
    matches!(target.keyword.as_str(), "run" | "copy" | "add") && !target.json
}
