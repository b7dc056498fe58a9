//! The syntax tree the parser produces: one [`Node`] per instruction.
//!
//! The shape mirrors BuildKit's parser output closely enough to print its
//! dump format, while keeping spans for error messages.

/// A position range in the Dockerfile, 1-based lines and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First line of the instruction (where its keyword is).
    pub start_line: usize,
    /// Column (1-based, in characters) of the first non-blank character on
    /// `start_line`: the keyword's.
    pub start_col: usize,
    /// Last line of the instruction, including continuations and heredoc bodies.
    pub end_line: usize,
    /// Column just past the last character on `end_line` (line ending
    /// excluded).
    pub end_col: usize,
}

/// A heredoc attached to a RUN, COPY or ADD instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes.
    pub name: String,
    /// The body as written, line endings included, leading tabs NOT stripped
    /// even for `<<-` (see `chomp_heredoc_content`), as BuildKit keeps it.
    pub content: String,
    /// False when the delimiter was quoted: the body is not expanded.
    pub expand: bool,
    /// True for `<<-`: leading tabs are stripped from every line.
    pub chomp: bool,
    /// The file descriptor the heredoc feeds (`3<<EOF`), 0 by default;
    /// saturates at `u32::MAX` for absurdly large numbers.
    pub file_descriptor: u32,
}

/// The arguments of an instruction after instruction-specific splitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// A list of words (whitespace-delimited forms, exec-form JSON arrays,
    /// or a single string for shell form).
    Words(Vec<String>),
    /// `key value op` triples for ENV, LABEL and ARG: `op` is `"="` for the
    /// `k=v` form and `""` for the legacy `k v` form.
    NameValues(Vec<NameValue>),
    /// The instruction triggered by ONBUILD.
    Nested(Box<Node>),
}

/// One `key=value` pair of ENV, LABEL or ARG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameValue {
    /// The key, unexpanded.
    pub key: String,
    /// The value, unexpanded; `None` for an ARG without a default.
    pub value: Option<String>,
    /// True when written `k=v`, false for the legacy `k v` form.
    pub equals: bool,
}

/// One parsed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword, lower-cased (`"run"`, `"copy"`, ...).
    pub keyword: String,
    /// The `--flag[=value]` words that preceded the arguments, as BuildKit
    /// extracts them: quotes removed and escapes applied, but nothing
    /// expanded (`--from="a b"` is `--from=a b`).
    pub flags: Vec<String>,
    /// The arguments. For ONBUILD this is [`Args::Nested`] (or an empty
    /// [`Args::Words`] when nothing follows the keyword).
    pub args: Args,
    /// True when the arguments were written as a JSON array (exec form).
    pub json: bool,
    /// The instruction's text, continuations joined (escape character and
    /// comment lines removed, leading blanks of the first line trimmed), as
    /// BuildKit's `Original`. For an ONBUILD trigger node: the text after
    /// `ONBUILD` and its flags.
    pub original: String,
    /// Heredocs attached to this instruction, in order. For ONBUILD they sit
    /// on the ONBUILD node, not on the nested trigger, as in BuildKit.
    pub heredocs: Vec<Heredoc>,
    /// Comment lines directly above the instruction, without `#`.
    pub comments: Vec<String>,
    /// Where the instruction sits in the file.
    pub span: Span,
}

/// A parser directive from the top of the file (`# syntax=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The key, lower-cased.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// The line it was on.
    pub line: usize,
}

/// A whole parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives, in order.
    pub directives: Vec<Directive>,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    /// The instructions, in order.
    pub nodes: Vec<Node>,
    /// Non-fatal findings (for example empty continuation lines).
    pub warnings: Vec<Warning>,
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Human-readable message.
    pub message: String,
    /// Line it refers to (for empty continuation lines: the instruction's
    /// last line, as BuildKit reports it).
    pub line: usize,
}
