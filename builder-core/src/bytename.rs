//! File names are bytes on Linux; the copy machinery (`build::copy`,
//! `build::fsview`, `context::resolve`, the ignore matcher) works on `&str`
//! paths. This module carries a name that is not UTF-8 through those `str`
//! paths without losing a byte: each byte of an invalid sequence becomes one
//! character of a private range (U+10FF80 + byte − 0x80), and a real
//! character of that range is stored as its four bytes the same way, so
//! [`to_bytes`] always gives back exactly the bytes [`from_bytes`] was given.
//!
//! Every valid UTF-8 name outside that range (every name seen in practice)
//! is its own encoding, so nothing changes for them. Names leave the `str`
//! world only through [`to_path`] / [`to_bytes`] (entries, host lookups,
//! tar members) and [`show`] (messages, where a raw byte reads `\xE9`).
use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// First character of the range standing for raw bytes 0x80..=0xFF.
const BASE: u32 = 0x10_FF00;

/// UTF-8 of every character of the range starts with these two bytes.
const LEAD: [u8; 2] = [0xF4, 0x8F];

/// The raw byte a character of the private range stands for.
fn raw_byte(c: char) -> Option<u8> {
    let v = u32::from(c);
    (v >= BASE + 0x80)
        .then(|| u8::try_from(v - BASE).ok())
        .flatten()
}

/// The character standing for a raw byte.
fn escape(b: u8) -> char {
    if b.is_ascii() {
        return char::from(b);
    }
    char::from_u32(BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Whether `b` may hold a character of the private range (cheap pre-check).
fn may_hold_escapes(b: &[u8]) -> bool {
    b.windows(2).any(|w| w == LEAD)
}

/// Whether the `str` path holds a raw byte.
fn has_raw(s: &str) -> bool {
    may_hold_escapes(s.as_bytes()) && s.chars().any(|c| raw_byte(c).is_some())
}

fn push_valid(out: &mut String, s: &str) {
    for c in s.chars() {
        if raw_byte(c).is_some() {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                out.push(escape(b));
            }
        } else {
            out.push(c);
        }
    }
}

/// `b` as text: its valid UTF-8 runs through `valid`, each byte of an
/// invalid sequence as the character `invalid` gives it.
fn decode(b: &[u8], valid: fn(&mut String, &str), invalid: fn(u8) -> char) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                valid(&mut out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                valid(&mut out, std::str::from_utf8(good).unwrap_or_default());
                // std never reports an empty invalid sequence; the guard
                // keeps the loop finite whatever it says.
                let n = e.error_len().unwrap_or(bad.len()).min(bad.len());
                let (bytes, tail) = bad.split_at(n);
                if bytes.is_empty() {
                    break;
                }
                out.extend(bytes.iter().map(|&b| invalid(b)));
                rest = tail;
            }
        }
    }
    out
}

/// A name's bytes as a `str` path component or path (borrowed when the
/// bytes are UTF-8 without characters of the private range).
pub fn from_bytes(b: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b) {
        if !has_raw(s) {
            return Cow::Borrowed(s);
        }
    }
    Cow::Owned(decode(b, push_valid, escape))
}

/// [`from_bytes`] of a path.
pub fn from_path(p: &Path) -> Cow<'_, str> {
    from_bytes(p.as_os_str().as_bytes())
}

/// The bytes a `str` path made by [`from_bytes`] stands for.
pub fn to_bytes(s: &str) -> Cow<'_, [u8]> {
    if !has_raw(s) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match raw_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    Cow::Owned(out)
}

/// The host path a `str` path made by [`from_bytes`] stands for.
pub fn to_path(s: &str) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&to_bytes(s)))
}

/// Sorts `str` names by the bytes they stand for (Go's order), which
/// differs from `str` order only when a name holds a raw byte.
pub fn sort_bytewise(names: &mut [String]) {
    if names.iter().any(|n| has_raw(n)) {
        names.sort_by_cached_key(|n| to_bytes(n).into_owned());
    }
}

/// A `str` path for messages: each raw byte is shown as `\xNN`.
pub fn show(s: &str) -> Cow<'_, str> {
    if !has_raw(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match raw_byte(c) {
            Some(b) => out.push_str(&format!("\\x{b:02X}")),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A host path for messages, raw bytes shown as `\xNN` (where
/// `Path::display` would show U+FFFD).
pub fn show_path(p: &Path) -> String {
    show(&from_path(p)).into_owned()
}

/// Bytes as Go's rune decoding sees them: each byte of an invalid
/// sequence is one U+FFFD (`utf8.RuneError`, width 1), where Rust's
/// `from_utf8_lossy` makes one U+FFFD of a whole truncated sequence.
pub fn go_lossy(b: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(decode(
        b,
        |out, s| out.push_str(s),
        |_| char::REPLACEMENT_CHARACTER,
    ))
}

/// A `str` path as a Go regular expression reads the name it stands for
/// ([`go_lossy`] of its bytes): what docker 20.10's `.dockerignore`
/// matcher (patterns compiled to regexps) compares.
pub fn go_view(s: &str) -> Cow<'_, str> {
    if !has_raw(s) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(go_lossy(&to_bytes(s)).into_owned())
}

/// The character Go's matcher sees for `c` when it decodes a name rune by
/// rune: an invalid byte decodes as U+FFFD (`utf8.RuneError`), which is what
/// `[...]` classes compare.
pub fn as_go_rune(c: char) -> char {
    if raw_byte(c).is_some() {
        char::REPLACEMENT_CHARACTER
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_names_are_their_own_encoding() {
        for s in ["", "a/b", "café", "日本/語", "\u{10FF7F}"] {
            assert!(matches!(from_bytes(s.as_bytes()), Cow::Borrowed(b) if b == s));
            assert!(matches!(to_bytes(s), Cow::Borrowed(b) if b == s.as_bytes()));
            assert_eq!(show(s), s);
        }
    }

    #[test]
    fn every_byte_string_round_trips() {
        let cases: Vec<Vec<u8>> = vec![
            b"caf\xe9".to_vec(),
            b"\xff\xfe/x\x80".to_vec(),
            b"a\xc3".to_vec(),
            b"\xc3\xa9\xe9".to_vec(),
            "\u{10FF80}\u{10FFFF}x".as_bytes().to_vec(),
            b"\xf4\x8f\xbe".to_vec(),
            (0u8..=255).collect(),
        ];
        for b in cases {
            let s = from_bytes(&b);
            assert_eq!(&*to_bytes(&s), &b[..], "{b:?}");
            assert_eq!(to_path(&s).as_os_str().as_bytes(), &b[..]);
        }
        // Distinct bytes never share an encoding.
        assert_ne!(from_bytes(b"caf\xe9"), from_bytes("café".as_bytes()));
        assert_ne!(from_bytes(b"caf\xe9"), from_bytes("caf\u{FFFD}".as_bytes()));
    }

    #[test]
    fn names_sort_by_their_bytes() {
        let mut v: Vec<String> = [&b"b"[..], b"\xe9", "\u{10FFFF}".as_bytes(), b"\xc3\xa9"]
            .iter()
            .map(|b| from_bytes(b).into_owned())
            .collect();
        sort_bytewise(&mut v);
        let bytes: Vec<Vec<u8>> = v.iter().map(|s| to_bytes(s).into_owned()).collect();
        let mut want = bytes.clone();
        want.sort();
        assert_eq!(bytes, want);
    }

    #[test]
    fn messages_show_raw_bytes_escaped() {
        assert_eq!(show(&from_bytes(b"dir/caf\xe9")), "dir/caf\\xE9");
        assert_eq!(show_path(Path::new(OsStr::from_bytes(b"t\xe9"))), "t\\xE9");
        assert_eq!(as_go_rune(escape(0xe9)), '\u{FFFD}');
        assert_eq!(as_go_rune('a'), 'a');
    }

    #[test]
    fn go_sees_one_replacement_per_invalid_byte() {
        assert_eq!(go_lossy(b"a\xe2\x82b"), "a\u{FFFD}\u{FFFD}b");
        assert_eq!(go_lossy("é".as_bytes()), "é");
        assert_eq!(go_view(&from_bytes(b"caf\xe9")), "caf\u{FFFD}");
        assert_eq!(go_view(&from_bytes("\u{10FF80}".as_bytes())), "\u{10FF80}");
    }
}
