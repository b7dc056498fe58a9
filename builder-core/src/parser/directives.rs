//! Parser directives (`# syntax=...`, `# escape=...`, `# check=...`) at the
//! top of a Dockerfile.
use super::gostr::{is_space, to_lower};

/// The directive keys BuildKit knows; any other `# key=value` comment ends
/// the directive section like any comment does.
const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// Tracks the directive section: directives are only read until the first
/// line that is not one.
#[derive(Default)]
pub(super) struct DirectiveReader {
    done: bool,
    seen: Vec<String>,
}

/// What one line was, directive-wise.
pub(super) enum DirectiveLine {
    /// Not a directive (or the directive section is over).
    No,
    /// A directive: lower-cased key and value.
    Yes(String, String),
}

impl DirectiveReader {
    /// Looks at one line (newline already stripped). A repeated directive is
    /// an error carrying the directive's key.
    pub(super) fn read(&mut self, line: &str) -> Result<DirectiveLine, String> {
        if self.done {
            return Ok(DirectiveLine::No);
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(DirectiveLine::No);
        };
        let Some((key, value)) = match_directive(body.trim_start_matches(is_space)) else {
            self.done = true;
            return Ok(DirectiveLine::No);
        };
        let key = to_lower(key);
        if !KNOWN.contains(&key.as_str()) {
            self.done = true;
            return Ok(DirectiveLine::No);
        }
        if self.seen.contains(&key) {
            return Err(key);
        }
        self.seen.push(key.clone());
        Ok(DirectiveLine::Yes(key, value.to_string()))
    }
}

/// Go regexp `\s`: ASCII blanks without vertical tab.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// BuildKit's `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, written out.
fn match_directive(s: &str) -> Option<(&str, &str)> {
    let first = s.chars().next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let key_len = s.bytes().take_while(u8::is_ascii_alphanumeric).count();
    let (key, rest) = s.split_at(key_len);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = rest.trim_start_matches(is_re_space);
    if !value.is_empty() {
        return Some((key, value.trim_end_matches(is_re_space)));
    }
    // Only blanks follow `=`: the lazy group still needs one character and
    // takes the last blank.
    let last = rest.chars().next_back()?;
    Some((key, &rest[rest.len() - last.len_utf8()..]))
}

/// Checks an `escape` directive's value.
pub(super) fn escape_token(value: &str) -> Option<char> {
    match value {
        "\\" => Some('\\'),
        "`" => Some('`'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_shapes() {
        assert_eq!(match_directive("syntax=foo"), Some(("syntax", "foo")));
        assert_eq!(match_directive("escape = ` "), Some(("escape", "`")));
        assert_eq!(
            match_directive("Check\t=\tskip=all"),
            Some(("Check", "skip=all"))
        );
        assert_eq!(match_directive("syntax=a b  "), Some(("syntax", "a b")));
        assert_eq!(match_directive("syntax=  "), Some(("syntax", " ")));
        assert_eq!(match_directive("syntax="), None);
        assert_eq!(match_directive("1syntax=x"), None);
        assert_eq!(match_directive("syn tax=x"), None);
        assert_eq!(match_directive("syntax"), None);
    }

    #[test]
    fn reader_stops_at_first_non_directive() {
        let mut r = DirectiveReader::default();
        assert!(
            matches!(r.read("# SYNTAX=x").unwrap(), DirectiveLine::Yes(k, v) if k == "syntax" && v == "x")
        );
        assert!(matches!(
            r.read("#escape=`").unwrap(),
            DirectiveLine::Yes(..)
        ));
        assert!(matches!(r.read("# hello").unwrap(), DirectiveLine::No));
        assert!(matches!(r.read("# check=x").unwrap(), DirectiveLine::No));
    }

    #[test]
    fn duplicates_and_bad_escapes() {
        let mut r = DirectiveReader::default();
        r.read("# syntax=a").unwrap();
        assert_eq!(r.read("# Syntax=b").err().as_deref(), Some("syntax"));
        assert_eq!(escape_token("x"), None);
        assert_eq!(escape_token("`"), Some('`'));
    }

    #[test]
    fn unknown_key_ends_section() {
        let mut r = DirectiveReader::default();
        assert!(matches!(r.read("# foo=bar").unwrap(), DirectiveLine::No));
        assert!(matches!(r.read("# syntax=x").unwrap(), DirectiveLine::No));
    }
}
