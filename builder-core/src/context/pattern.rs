//! One .dockerignore pattern, matched as the reference builder (BuildKit
//! in docker 20.10) matches it: docker's `pkg/fileutils` of that release.
//!
//! Every pattern becomes a Go regular expression, built character by
//! character: `**` is `(.*/)?` (or `.*` at the end), `*` is `[^/]*`, `?` is
//! `[^/]`, `.` and `$` are escaped, `\x` stays an escape, and every other
//! character is copied as is. So `+ ( ) | { } ^` keep their regex meaning
//! (`a+b` matches `aab` but not `a+b`), and `[...]` is a regex class.
//! Newer moby/patternmatcher escapes those and classifies patterns into
//! exact/prefix/suffix kinds; the reference does neither (checked against
//! docker 20.10.24: see docs/decisions.md).
use super::gomatch::{self, BadPattern};

/// A compiled .dockerignore pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern text without its `!`.
    text: String,
    exclusion: bool,
    /// How many `/`-separated elements the pattern has (fileutils' `dirs`).
    elements: usize,
    matcher: Matcher,
}

/// How a pattern is matched: the regular expression, or for the common
/// patterns made only of literals, `*`, `?` and `**`, the same tokens
/// matched directly (several times faster on a large context).
#[derive(Debug, Clone)]
enum Matcher {
    Tokens(Vec<Tok>),
    Regex(regex_lite::Regex),
}

/// One element of the regex translation of a simple pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Literal text.
    Lit(String),
    /// `*`: `[^/]*`.
    Star,
    /// `?`: `[^/]`.
    One,
    /// A `**` with more pattern after it: `(.*/)?`.
    Dirs,
    /// A trailing `**`: `.*`.
    Rest,
}

/// At most this many wildcards take the token path: its backtracking is
/// exponential in them, the regex engine's time is not.
const MAX_TOKEN_WILDCARDS: usize = 4;

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text && self.exclusion == other.exclusion
    }
}

impl Eq for Pattern {}

impl Pattern {
    /// Compiles one line as fileutils' `NewPatternMatcher` does: trims,
    /// cleans the path, splits off `!`, and rejects what Go's
    /// `filepath.Match` rejects or what does not compile as a regular
    /// expression (the reference fails such a build when it first matches).
    /// `None` for a line that is empty after trimming.
    pub fn new(raw: &str) -> Result<Option<Pattern>, BadPattern> {
        let p = raw.trim();
        if p.is_empty() {
            return Ok(None);
        }
        let p = go_clean(p);
        let (exclusion, p) = match p.strip_prefix('!') {
            Some("") => return Err(BadPattern),
            Some(rest) => (true, rest.to_string()),
            None => (false, p),
        };
        gomatch::validate(&p)?;
        // docker 20.10 builds the regexp rune by rune with text/scanner,
        // which reads a raw byte (see `crate::bytename`) as U+FFFD: it
        // then matches any byte of a name that is not UTF-8.
        let runes = crate::bytename::go_view(&p);
        let matcher = match tokens(&runes) {
            Some(toks) => Matcher::Tokens(toks),
            None => {
                Matcher::Regex(regex_lite::Regex::new(&to_regex(&runes)).map_err(|_| BadPattern)?)
            }
        };
        Ok(Some(Pattern {
            elements: p.split('/').count(),
            text: p,
            exclusion,
            matcher,
        }))
    }

    /// The cleaned pattern, without a leading `!`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this is a `!` exception (re-includes what it matches).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// Tests a `/`-separated context-relative path against this pattern
    /// alone (no parent directories).
    pub fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Tokens(toks) => match_toks(toks, path),
            Matcher::Regex(re) => re.is_match(path),
        }
    }

    /// fileutils' `Matches` for one pattern: the path itself, or else its
    /// leading directories cut to as many elements as the pattern has
    /// (only that one parent: `**/d` does not see `d/f` through `d`).
    /// `parents` are the path's parent directory's elements (empty at
    /// the root).
    pub fn matches_or_parent(&self, path: &str, parents: &[&str]) -> bool {
        if self.matches(path) {
            return true;
        }
        if parents.is_empty() || self.elements > parents.len() {
            return false;
        }
        let cut = parents.get(..self.elements).unwrap_or(parents);
        self.matches(&cut.join("/"))
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for elem in path.split('/') {
        match elem {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            e => out.push(e),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The regular expression fileutils' `compile` builds for a pattern
/// (Unix separators), character for character.
fn to_regex(pattern: &str) -> String {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '.' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                // A trailing backslash is copied alone (and so escapes the
                // closing `$`), as the reference does.
                re.push('\\');
                if let Some(next) = chars.next() {
                    re.push(next);
                }
            }
            _ => re.push(ch),
        }
    }
    re.push('$');
    re
}

/// The tokens of a pattern that has no character with a regex meaning
/// beyond what `to_regex` itself produces; `None` sends it to the regex.
fn tokens(pattern: &str) -> Option<Vec<Tok>> {
    if pattern.contains(['+', '(', ')', '|', '{', '}', '^', '[', ']', '\\']) {
        return None;
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        let tok = match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    Tok::Rest
                } else {
                    Tok::Dirs
                }
            }
            '*' => Tok::Star,
            '?' => Tok::One,
            c => {
                if let Some(Tok::Lit(text)) = toks.last_mut() {
                    text.push(c);
                    continue;
                }
                Tok::Lit(c.to_string())
            }
        };
        toks.push(tok);
    }
    let wild = toks.iter().filter(|t| !matches!(t, Tok::Lit(_))).count();
    (wild <= MAX_TOKEN_WILDCARDS).then_some(toks)
}

/// Full match of the tokens against `s`, as the regex would match.
fn match_toks(toks: &[Tok], s: &str) -> bool {
    let Some((tok, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    let tail = |i: usize| s.get(i..).unwrap_or("");
    match tok {
        Tok::Lit(text) => s.starts_with(text.as_str()) && match_toks(rest, tail(text.len())),
        Tok::One => s
            .chars()
            .next()
            .is_some_and(|c| c != '/' && match_toks(rest, tail(c.len_utf8()))),
        // `[^/]*` stops at a `/`; `.*` at a newline (Go's `.`).
        Tok::Star | Tok::Rest => {
            let stop = if *tok == Tok::Star { '/' } else { '\n' };
            let limit = s.find(stop).unwrap_or(s.len());
            let head = s.get(..limit).unwrap_or("");
            head.char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(limit))
                .any(|i| match_toks(rest, tail(i)))
        }
        // `(.*/)?`: nothing, or any newline-free run ending in `/`.
        Tok::Dirs => {
            match_toks(rest, s)
                || s.char_indices()
                    .take_while(|(_, c)| *c != '\n')
                    .any(|(i, c)| c == '/' && match_toks(rest, tail(i + 1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap().unwrap()
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(go_clean("a/b/../c/"), "a/c");
        assert_eq!(go_clean("/../x"), "/x");
        assert_eq!(go_clean("../x"), "../x");
        assert_eq!(go_clean("./"), ".");
        assert_eq!(go_clean("//a//b/."), "/a/b");
    }

    #[test]
    fn regex_translation() {
        assert_eq!(to_regex("a.b"), r"^a\.b$");
        assert_eq!(to_regex("**"), "^.*$");
        assert_eq!(to_regex("**/x"), "^(.*/)?x$");
        assert_eq!(to_regex("d/*?"), "^d/[^/]*[^/]$");
        assert_eq!(to_regex(r"a\*"), r"^a\*$");
        assert_eq!(to_regex("c++"), "^c++$");
    }

    #[test]
    fn double_star() {
        assert!(p("**").matches("a/b"));
        assert!(p("**/foo").matches("foo"));
        assert!(p("**/foo").matches("a/b/foo"));
        assert!(!p("**/foo").matches("afoo"));
        assert!(!p("**file").matches("dir/xfile"));
        assert!(p("**file").matches("dir/file"));
        assert!(!p("dir/**").matches("dir"));
        assert!(p("dir/**").matches("dir/"));
    }

    #[test]
    fn regex_characters_keep_their_meaning() {
        assert!(p("a+b").matches("aab"));
        assert!(!p("a+b").matches("a+b"));
        assert!(p("(p)").matches("p"));
        assert!(p("x|y").matches("y"));
        assert!(!p("x.y").matches("xzy"));
        assert!(Pattern::new("a(b").is_err());
    }

    #[test]
    fn classes_and_escapes() {
        assert!(p("**/**/*.txt").matches("file.txt"));
        assert!(p("a**/*.txt").matches("a/dir/dir/file.txt"));
        assert!(!p("a/*.txt").matches("a/dir/file.txt"));
        assert!(p(r"a\*b").matches("a*b"));
        assert!(p("a[^b-d]e").matches("aze"));
        assert!(!p("*").matches("a/b"));
    }

    #[test]
    fn parent_check_uses_one_cut() {
        let parents = ["d"];
        assert!(p("d").matches_or_parent("d/f", &parents));
        assert!(!p("**/d").matches_or_parent("d/f", &parents));
        assert!(p("*").matches_or_parent("a/b/c", &["a", "b"]));
    }

    #[test]
    fn token_path_agrees_with_the_regex() {
        let paths = [
            "", "a", "a/b", "a/b/c", "ab", "a.b", "axb", "x/a", "a\nb/c", "é/ü", "a/", "/a",
        ];
        for pat in [
            "a", "*", "a*", "*b", "a?", "**", "**/b", "a/**", "a/**/c", "**/*", "*/*", "a.b",
            "?/?", "**/**", "é/*", "a$",
        ] {
            let toks = tokens(pat).unwrap();
            let re = regex_lite::Regex::new(&to_regex(pat)).unwrap();
            for path in paths {
                assert_eq!(match_toks(&toks, path), re.is_match(path), "{pat} {path:?}");
            }
        }
        assert!(tokens("a+b").is_none());
        assert!(tokens("*a*b*c*d*e").is_none());
    }

    /// Every string up to `len` characters over `alphabet`.
    fn strings(alphabet: &[char], len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..len {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn token_path_agrees_with_the_regex_exhaustively() {
        // Every short pattern the token path takes, against every short
        // path: the corners (`**` next to `/`, `.`, newlines) are where a
        // hand-written matcher and the regex would part.
        let paths = strings(&['a', '/', '.', '\n'], 4);
        for pat in strings(&['a', '/', '*', '?', '.'], 5) {
            let Some(toks) = tokens(&pat) else { continue };
            let re = regex_lite::Regex::new(&to_regex(&pat)).unwrap();
            for path in &paths {
                assert_eq!(
                    match_toks(&toks, path),
                    re.is_match(path),
                    "{pat:?} {path:?}"
                );
            }
        }
    }

    #[test]
    fn bang_alone_is_invalid() {
        assert_eq!(Pattern::new("!"), Err(BadPattern));
        assert_eq!(Pattern::new("  "), Ok(None));
        assert!(p("!x").is_exclusion());
    }

    #[test]
    fn raw_bytes_read_as_go_reads_them() {
        use crate::bytename::{from_bytes, go_view};
        // Names reach `matches` as `IgnoreRules::decide` passes them.
        let name = go_view(&from_bytes(b"caf\xe9")).into_owned();
        let other = go_view(&from_bytes(b"caf\xe8")).into_owned();
        // text/scanner makes a raw byte of a pattern U+FFFD, which Go's
        // regexp matches against any byte that is not UTF-8.
        for pat in [from_bytes(b"caf\xe9"), "caf\u{FFFD}".into(), "caf?".into()] {
            let pat = p(&pat);
            assert!(pat.matches(&name) && pat.matches(&other));
            assert!(!pat.matches("cafe") || pat.text() == "caf?");
        }
        // Through the regexp engine too (a class sends it there).
        let re = p(&from_bytes(b"[c]af\xe9"));
        assert!(re.matches(&other));
        // A raw byte in a class is U+FFFD too (docker 20.10 takes it).
        let class = p(&from_bytes(b"caf[\xe9]"));
        assert!(class.matches(&other) && !class.matches("cafe"));
    }
}
