//! The few pieces of Go's string library BuildKit's parser leans on, so our
//! output matches it byte for byte: `unicode.IsSpace`, `strings.ToLower`,
//! and `strconv.Quote` (the `%q` verb); Go's Unicode categories live in
//! `shell::unicode`.
use std::fmt::Write as _;

use crate::shell::unicode::is_print;

/// Go's `unicode.IsSpace`: the Unicode White_Space property, which is what
/// Rust's `char::is_whitespace` implements too.
pub(super) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `unicode.IsSpace` applied to a single byte converted to a rune, the
/// way BuildKit's byte-wise loops (flags, HEALTHCHECK) test for blanks: the
/// bytes 0x85 and 0xA0 count as spaces there.
pub(super) fn is_space_byte(b: u8) -> bool {
    is_space(char::from(b))
}

/// Go's `strings.ToLower`: simple (one-to-one) case mapping per character.
pub(super) fn to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            // Rust's full mapping turns U+0130 into two characters; Go's
            // simple mapping gives a plain `i`.
            if c == '\u{130}' {
                'i'
            } else {
                let mut lower = c.to_lowercase();
                match (lower.next(), lower.next()) {
                    (Some(l), None) => l,
                    _ => c,
                }
            }
        })
        .collect()
}

/// Go's `strings.ToUpper` for the short ASCII keywords we print in messages.
pub(super) fn to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Go's `strconv.Quote` (what `%q` prints for a string).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(&mut out, s);
    out
}

/// Appends `strconv.Quote(s)` to `out`.
pub(crate) fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        escape_into(out, c, '"');
    }
    out.push('"');
}

/// Go's `strconv.QuoteRune`, which `%q` prints for an integer: `'\x04'`,
/// `'A'`; a value that is no Unicode scalar becomes U+FFFD, as in Go.
pub(crate) fn quote_rune(r: u64) -> String {
    let c = u32::try_from(r)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}');
    let mut out = String::from("'");
    escape_into(&mut out, c, '\'');
    out.push('\'');
    out
}

/// One character of a Go quoted literal delimited by `quote`.
fn escape_into(out: &mut String, c: char, quote: char) {
    match c {
        _ if c == quote || c == '\\' => {
            out.push('\\');
            out.push(c);
        }
        _ if is_print(c) => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        _ => {
            let cp = u32::from(c);
            // Writing to a String cannot fail.
            let _ = if cp < 0x20 || cp == 0x7f {
                write!(out, "\\x{cp:02x}")
            } else if cp < 0x10000 {
                write!(out, "\\u{cp:04x}")
            } else {
                write!(out, "\\U{cp:08x}")
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        // Expected values are what Go's strconv.Quote prints.
        let cases = [
            ("", r#""""#),
            ("abc 123", r#""abc 123""#),
            (
                "\" \\ / \u{8} \u{c} \n \r \t \0",
                r#""\" \\ / \b \f \n \r \t \x00""#,
            ),
            ("\u{7}\u{b}\u{7f}", r#""\a\v\x7f""#),
            ("♥☃", "\"♥☃\""),
            ("\u{a0}\u{ad}\u{85}", r#""\u00a0\u00ad\u0085""#),
            ("\u{200b}\u{feff}", r#""\u200b\ufeff""#),
            ("\u{e000}", r#""\ue000""#),
            ("\u{f0000}", r#""\U000f0000""#),
            ("é\u{301}", "\"é\u{301}\""),
            ("\u{1f600}", "\"\u{1f600}\""),
            ("\u{3000}", r#""\u3000""#),
            ("\u{fffd}", "\"\u{fffd}\""),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }

    #[test]
    fn quote_rune_matches_go() {
        // Expected values are what Go's fmt.Sprintf("%q", n) prints.
        let cases = [
            (0, r"'\x00'"),
            (4, r"'\x04'"),
            (10, r"'\n'"),
            (39, r"'\''"),
            (34, "'\"'"),
            (65, "'A'"),
            (160, r"'\u00a0'"),
            (1000, "'Ϩ'"),
            (0xd800, "'\u{fffd}'"),
            (0x11_0000, "'\u{fffd}'"),
        ];
        for (n, want) in cases {
            assert_eq!(quote_rune(n), want, "{n}");
        }
    }

    #[test]
    fn lower_is_simple_mapping() {
        assert_eq!(to_lower("RUN"), "run");
        assert_eq!(to_lower("\u{130}"), "i");
        assert_eq!(to_lower("WOR\u{212a}DIR"), "workdir");
        assert_eq!(to_upper("from"), "FROM");
    }

    #[test]
    fn space_bytes() {
        assert!(is_space_byte(0xa0) && is_space_byte(0x85) && !is_space_byte(0xc3));
    }
}
