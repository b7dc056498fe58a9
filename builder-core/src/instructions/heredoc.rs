//! Recognising `<<EOF` markers among COPY/ADD/RUN arguments.
use crate::shell::{EmptyEnv, Lexer};

/// A heredoc marker word such as `<<EOF`, `<<-"EOF"` or `3<<EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocMarker {
    /// The delimiter, quotes removed.
    pub name: String,
    /// `<<-`: strip leading tabs from the body.
    pub chomp: bool,
    /// False when any part of the delimiter was quoted.
    pub expand: bool,
    /// The file descriptor digits before `<<` (0 when none).
    pub file_descriptor: u32,
}

/// Parses `word` as a heredoc marker, the way BuildKit's `ParseHeredoc`
/// does: `digits? << -? rest` where `rest` has no `<` and lexes to exactly
/// one word. `None` when `word` is not a marker.
pub fn heredoc_marker(word: &str) -> Option<HeredocMarker> {
    let digits_len = word.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, after) = word.split_at(digits_len);
    let after = after.strip_prefix("<<")?;
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let mut lx = Lexer::new('\\');
    lx.skip_unset_env = true;
    let words = lx.process_words(rest, &EmptyEnv).ok()?;
    let [name] = words.as_slice() else {
        return None;
    };
    lx.raw_quotes = true;
    let raw = lx.process_words(rest, &EmptyEnv).ok()?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = raw.first().is_some_and(|r| quotes(r) == quotes(name));
    Some(HeredocMarker {
        name: name.clone(),
        chomp,
        expand,
        file_descriptor: digits.parse().unwrap_or(0),
    })
}

/// Removes leading tabs from every line (`<<-`).
pub fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}
