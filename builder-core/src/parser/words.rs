//! Splitting an instruction line into keyword, flags and argument text, and
//! the word splitters the per-instruction argument parsers share.
use super::gostr::{is_space, is_space_byte};

/// BuildKit's `reWhitespace`: runs of ASCII blanks (no newline).
pub(super) fn is_ascii_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Go's `regexp.Split(s, -1)` with `[\t\v\f\r ]+`.
pub(super) fn split_blanks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_ascii_blank(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_ascii_blank(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            out.push(&s[start..i]);
            start = end;
        }
    }
    out.push(&s[start..]);
    out
}

/// Go's `regexp.Split(s, 2)` with `[\t\v\f\r ]+`: the text before the first
/// blank run and everything after it.
pub(super) fn split_blanks_once(s: &str) -> (&str, Option<&str>) {
    match s.find(is_ascii_blank) {
        None => (s, None),
        Some(i) => {
            let rest = s[i..].trim_start_matches(is_ascii_blank);
            (&s[..i], Some(rest))
        }
    }
}

/// Go's `strings.TrimSpace`.
pub(super) fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// An instruction line split up: keyword as written, flags, argument text.
pub(super) struct SplitLine<'a> {
    pub keyword: &'a str,
    pub flags: Vec<String>,
    pub args: String,
}

/// BuildKit's `splitCommand`.
pub(super) fn split_command(line: &str, escape: char) -> SplitLine<'_> {
    let (keyword, rest) = split_blanks_once(trim_space(line));
    let (args, flags) = match rest {
        Some(rest) => extract_flags(rest, escape),
        None => (String::new(), Vec::new()),
    };
    SplitLine {
        keyword,
        flags,
        args: trim_space(&args).to_string(),
    }
}

/// BuildKit's `extractBuilderFlags`: leading `--name[=value]` words, with
/// quotes and escapes processed, up to the first other word or a lone `--`.
///
/// BuildKit walks this text byte by byte and turns each byte into a
/// character of its own, so non-ASCII text in a flag comes out as Latin-1
/// mojibake (`é` becomes `Ã©`) and the bytes 0x85 and 0xA0 count as blanks.
/// We do the same, so a flag means what it means to BuildKit.
fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes = line.as_bytes();
    let rest_from =
        |pos: usize| String::from_utf8_lossy(bytes.get(pos..).unwrap_or(&[])).into_owned();
    let esc = u8::try_from(u32::from(escape)).unwrap_or(b'\\');
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let at_end = pos >= bytes.len();
        let mut ch = bytes.get(pos).copied().unwrap_or(0);
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || bytes.get(pos + 1) != Some(&b'-') {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space_byte(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == esc {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = bytes.get(pos).copied().unwrap_or(0);
            }
            word.push(char::from(ch));
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == esc {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = bytes.get(pos).copied().unwrap_or(0);
        }
        word.push(char::from(ch));
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: whitespace-separated words with quotes and
/// escapes kept as written (ENV, LABEL and ARG use it).
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    loop {
        let at_end = pos >= chars.len();
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars.get(pos).copied().unwrap_or('\0');
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars.get(pos).copied().unwrap_or('\0');
        }
        word.push(ch);
        pos += 1;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_splitting() {
        assert_eq!(split_blanks("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(split_blanks("a\u{a0}b"), ["a\u{a0}b"]);
        assert_eq!(split_blanks(""), [""]);
        assert_eq!(split_blanks_once("RUN  a b"), ("RUN", Some("a b")));
        assert_eq!(split_blanks_once("RUN"), ("RUN", None));
    }

    #[test]
    fn command_and_flags() {
        let s = split_command("  COPY --from=a --chown=\"x y\" --link src dst ", '\\');
        assert_eq!(s.keyword, "COPY");
        assert_eq!(s.flags, ["--from=a", "--chown=x y", "--link"]);
        assert_eq!(s.args, "src dst");
        let s = split_command("RUN --a -- --b c", '\\');
        assert_eq!(
            (s.flags, s.args.as_str()),
            (vec!["--a".to_string()], "--b c")
        );
        let s = split_command("RUN --a=b\\ c --", '\\');
        assert_eq!(
            (s.flags, s.args.as_str()),
            (vec!["--a=b c".to_string()], "")
        );
        let s = split_command("RUN --a='' -x", '\\');
        assert_eq!((s.flags, s.args.as_str()), (vec!["--a=".to_string()], "-x"));
        // BuildKit's byte-wise loop: non-ASCII bytes become Latin-1 characters.
        let s = split_command("COPY --chown=josé a b", '\\');
        assert_eq!(s.flags, ["--chown=josÃ©"]);
        let s = split_command("COPY --x=\"unterminated", '`');
        assert_eq!(s.flags, ["--x=unterminated"]);
    }

    #[test]
    fn words_keep_quotes() {
        let w = |s: &str| parse_words(s, '\\');
        assert_eq!(w("foo"), ["foo"]);
        assert_eq!(w("foo bar"), ["foo", "bar"]);
        assert_eq!(w("foo\\ bar"), ["foo\\ bar"]);
        assert_eq!(w("foo=bar"), ["foo=bar"]);
        assert_eq!(w("foo bar 'abc xyz'"), ["foo", "bar", "'abc xyz'"]);
        assert_eq!(w("foo bar \"abc xyz\""), ["foo", "bar", "\"abc xyz\""]);
        assert_eq!(w("àöû"), ["àöû"]);
        assert_eq!(w("föo bàr \"âbc xÿz\""), ["föo", "bàr", "\"âbc xÿz\""]);
        assert_eq!(w("a=\"\" b=''"), ["a=\"\"", "b=''"]);
        assert_eq!(w("\"a\\\"b\" c\\"), ["\"a\\\"b\"", "c"]);
        assert_eq!(w("'a\\'"), ["'a\\'"]);
    }
}
