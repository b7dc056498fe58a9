//! Shell patterns (`*`, `?`, `\` escapes) for `${v#p}`, `${v%p}`, `${v/p/r}`.
//!
//! BuildKit turns the pattern into a Go regular expression and relies on
//! its leftmost-first semantics: a lazy `*` prefers the shortest text, a
//! greedy one the longest, and `*`/`?` do not match a newline. We match the
//! same way with a small backtracking matcher that remembers failed states,
//! so it runs in time proportional to pattern length × value length.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// `*`: any run of characters other than newline.
    Star,
    /// `?`: one character other than newline.
    Any,
    Lit(char),
}

fn compile(pattern: &str) -> Result<Vec<Tok>, String> {
    let mut chars = pattern.chars().peekable();
    // Go's text/scanner drops a byte-order mark at the start.
    chars.next_if_eq(&'\u{feff}');
    let mut out = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::Any),
            '\\' => {
                // `\}` and `\/` only protect the character from the `${}`
                // syntax; the backslash is not part of the pattern.
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => out.push(Tok::Lit(e)),
                    Some(e) => return Err(format!("invalid escape '\\{e}'")),
                    None => return Err("invalid escape '\\\u{fffd}'".into()),
                }
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// The error for an expansion that grows past the lexer's size limit.
pub(super) fn too_large(limit: usize) -> String {
    format!("expansion result exceeds {limit} bytes")
}

fn invalid(pattern: &str, e: String) -> String {
    format!("invalid pattern ({pattern}) in substitution: {e}")
}

/// Matcher states (token index, value index) already explored: one bit
/// each. A state explored by a search that found no match cannot complete,
/// whatever the start, so the bits are shared between starts.
struct Visited {
    bits: Vec<u64>,
    width: usize,
    /// States set since the last [`Visited::forget_recent`].
    recent: Vec<usize>,
}

impl Visited {
    fn new(toks: usize, value: usize) -> Self {
        let width = value + 1;
        let n = (toks + 1).saturating_mul(width);
        Visited {
            bits: vec![0; n.div_ceil(64)],
            width,
            recent: Vec::new(),
        }
    }

    /// Marks a state; false when it was already marked.
    fn insert(&mut self, ti: usize, vi: usize) -> bool {
        let i = ti * self.width + vi;
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        match self.bits.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                self.recent.push(i);
                true
            }
            _ => false,
        }
    }

    /// A successful search also marked states that do complete: unmark
    /// everything since the last success.
    fn forget_recent(&mut self) {
        for i in self.recent.drain(..) {
            if let Some(w) = self.bits.get_mut(i / 64) {
                *w &= !(1u64 << (i % 64));
            }
        }
    }
}

/// The end of the preferred match of `toks` starting exactly at `start`.
fn match_at(
    toks: &[Tok],
    value: &[char],
    start: usize,
    greedy: bool,
    failed: &mut Visited,
) -> Option<usize> {
    let mut stack = vec![(0usize, start)];
    while let Some((ti, vi)) = stack.pop() {
        if !failed.insert(ti, vi) {
            continue;
        }
        let Some(tok) = toks.get(ti) else {
            return Some(vi);
        };
        let cur = value.get(vi).copied();
        match tok {
            Tok::Star => {
                let can_eat = cur.is_some_and(|c| c != '\n');
                // Pushed last = tried first.
                if greedy {
                    stack.push((ti + 1, vi));
                    if can_eat {
                        stack.push((ti, vi + 1));
                    }
                } else {
                    if can_eat {
                        stack.push((ti, vi + 1));
                    }
                    stack.push((ti + 1, vi));
                }
            }
            Tok::Any => {
                if cur.is_some_and(|c| c != '\n') {
                    stack.push((ti + 1, vi + 1));
                }
            }
            Tok::Lit(l) => {
                if cur == Some(*l) {
                    stack.push((ti + 1, vi + 1));
                }
            }
        }
    }
    None
}

/// The leftmost match at or after `from`: (start, end) in characters.
fn find(
    toks: &[Tok],
    value: &[char],
    from: usize,
    greedy: bool,
    failed: &mut Visited,
) -> Option<(usize, usize)> {
    let found =
        (from..=value.len()).find_map(|s| match_at(toks, value, s, greedy, failed).map(|e| (s, e)));
    if found.is_some() {
        failed.forget_recent();
    } else {
        failed.recent.clear();
    }
    found
}

/// `${v#p}` / `${v##p}`: drop the shortest (longest) prefix matching `p`.
pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let toks = compile(pattern).map_err(|e| invalid(pattern, e))?;
    let chars: Vec<char> = value.chars().collect();
    let mut visited = Visited::new(toks.len(), chars.len());
    Ok(match match_at(&toks, &chars, 0, greedy, &mut visited) {
        Some(end) => chars.get(end..).unwrap_or_default().iter().collect(),
        None => value.to_string(),
    })
}

/// Reverses a pattern keeping each `\x` pair in order, so that a suffix
/// match becomes a prefix match on the reversed value.
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let out_idx = last - i;
        if p[i] == '\\' && i != last {
            out[out_idx - 1] = '\\';
            out[out_idx] = p[i + 1];
            i += 2;
        } else {
            out[out_idx] = p[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// `${v%p}` / `${v%%p}`: drop the shortest (longest) suffix matching `p`.
pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let rp = reverse_pattern(pattern);
    let rv: String = value.chars().rev().collect();
    let out = trim_prefix(&rp, &rv, greedy)?;
    Ok(out.chars().rev().collect())
}

/// `${v/p/r}` / `${v//p/r}`: replace the first (every) longest match.
pub(super) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
    limit: usize,
) -> Result<String, String> {
    let toks = compile(pattern).map_err(|e| invalid(pattern, e))?;
    let chars: Vec<char> = value.chars().collect();
    let slice =
        |a: usize, b: usize| -> String { chars.get(a..b).unwrap_or_default().iter().collect() };
    let mut failed = Visited::new(toks.len(), chars.len());
    if !all {
        return Ok(match find(&toks, &chars, 0, true, &mut failed) {
            Some((s, e)) => format!("{}{}{}", slice(0, s), replacement, slice(e, chars.len())),
            None => value.to_string(),
        });
    }
    // Go's Regexp.ReplaceAllString: successive non-overlapping matches, an
    // empty match right after a match is skipped, and `$` in the
    // replacement is a group reference (only `$0`, the whole match, exists).
    let mut out = String::new();
    let mut last_end = 0;
    let mut pos = 0;
    while pos <= chars.len() {
        let Some((s, e)) = find(&toks, &chars, pos, true, &mut failed) else {
            break;
        };
        out.push_str(&slice(last_end, s));
        if e > last_end || s == 0 {
            expand_template(&mut out, replacement, &slice(s, e));
        }
        if out.len() > limit {
            return Err(too_large(limit));
        }
        last_end = e;
        let width = usize::from(pos < chars.len());
        if pos + width > e {
            pos += width;
        } else if pos + 1 > e {
            pos += 1;
        } else {
            pos = e;
        }
    }
    out.push_str(&slice(last_end, chars.len()));
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern without subgroups: `$$` is `$`,
/// `$0`/`${0}` the match, other names empty, a malformed `$` literal.
fn expand_template(out: &mut String, template: &str, whole: &str) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        match extract_name(rest) {
            Some((name, after)) => {
                if group_number(name) == Some(0) {
                    out.push_str(whole);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|c| c.is_alphabetic() || c.is_numeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let after = &body[len..];
    if brace {
        let after = after.strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, after))
}

fn group_number(name: &str) -> Option<u64> {
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    if name.len() > 9 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_and_greedy_prefix() {
        assert_eq!(trim_prefix("*/", "a/b/c", false).unwrap(), "b/c");
        assert_eq!(trim_prefix("*/", "a/b/c", true).unwrap(), "c");
        assert_eq!(trim_prefix("x", "abc", true).unwrap(), "abc");
    }

    #[test]
    fn suffix_keeps_escape_pairs() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(trim_suffix(".*", "file.tar.gz", false).unwrap(), "file.tar");
        assert_eq!(trim_suffix(".*", "file.tar.gz", true).unwrap(), "file");
    }

    #[test]
    fn star_does_not_cross_newline() {
        assert_eq!(trim_prefix("*", "ab\ncd", true).unwrap(), "\ncd");
        assert_eq!(trim_prefix("?", "\nx", false).unwrap(), "\nx");
    }

    #[test]
    fn bad_escape_is_an_error() {
        let e = trim_prefix("\\a", "x", false).unwrap_err();
        assert!(e.contains("invalid escape '\\a'"), "{e}");
        assert!(trim_prefix("ab\\", "x", false).is_err());
    }

    #[test]
    fn replace_all_with_empty_pattern_and_group_zero() {
        assert_eq!(replace("", "ab", "-", true, 1 << 20).unwrap(), "-a-b-");
        assert_eq!(
            replace("b", "abcb", "[$0]", true, 1 << 20).unwrap(),
            "a[b]c[b]"
        );
        assert_eq!(replace("b", "ab", "$$", true, 1 << 20).unwrap(), "a$");
        assert_eq!(replace("b", "ab", "$x", true, 1 << 20).unwrap(), "a");
        assert_eq!(replace("b", "ab", "$", true, 1 << 20).unwrap(), "a$");
        // A single replacement takes the text verbatim.
        assert_eq!(replace("b", "ab", "$0", false, 1 << 20).unwrap(), "a$0");
    }

    #[test]
    fn replace_all_respects_the_limit() {
        let e = replace("", &"x".repeat(100), "yyyy", true, 300).unwrap_err();
        assert!(e.contains("exceeds 300 bytes"), "{e}");
        // Memo bits of a successful search are dropped: every match is found.
        assert_eq!(replace("a?", "abab", "-", true, 1 << 20).unwrap(), "--");
        assert_eq!(replace("a*", "abab", "-", true, 1 << 20).unwrap(), "-");
        assert_eq!(
            replace("?", "abc", "$0$0", true, 1 << 20).unwrap(),
            "aabbcc"
        );
    }

    #[test]
    fn exponential_patterns_stay_fast() {
        let value = "a".repeat(2000);
        let pat = "*a".repeat(30) + "b";
        assert_eq!(trim_prefix(&pat, &value, true).unwrap(), value);
    }
}
