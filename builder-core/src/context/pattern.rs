//! One .dockerignore pattern, matched the way moby/patternmatcher does.
//!
//! patternmatcher turns a pattern into one of four match kinds (exact,
//! prefix, suffix, regular expression) and the kind changes what matches:
//! `**file` is a plain suffix test (so it matches `xfile`), `dir/**` a
//! prefix test (so it does not match `dir`). We reproduce the same
//! classification and, for the regular-expression kind, match the same
//! token sequence its translation produces, without a regex engine.
use super::gomatch::{self, BadPattern};

/// How a compiled pattern is tested against a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// The path equals the pattern.
    Exact,
    /// The path starts with the pattern minus its trailing `**`.
    Prefix(String),
    /// The path ends with the pattern minus its leading `**`.
    Suffix(String),
    /// The path matches the token sequence in full.
    Tokens(Vec<Tok>),
}

/// One element of patternmatcher's regular-expression translation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A literal character.
    Lit(char),
    /// `*`: any run of characters other than `/` (`[^/]*`).
    Star,
    /// `?`: one character other than `/` (`[^/]`).
    One,
    /// A `**` followed by more pattern: `(.*/)?`.
    Dirs,
    /// A trailing `**` after other wildcards: `.*`.
    Rest,
    /// A bracket class.
    Class {
        /// `[^...]`.
        negated: bool,
        /// Inclusive ranges.
        ranges: Vec<(char, char)>,
    },
}

/// A compiled .dockerignore pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern text without its `!`.
    text: String,
    exclusion: bool,
    kind: Kind,
}

impl Pattern {
    /// Compiles one line as patternmatcher's `New` does: trims, cleans the
    /// path, splits off `!`, and rejects what Go's `filepath.Match`
    /// rejects. `None` for a line that is empty after trimming.
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
        let kind = compile(&p);
        Ok(Some(Pattern {
            text: p,
            exclusion,
            kind,
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
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens(toks) => {
                let chars: Vec<char> = path.chars().collect();
                match_toks(toks, &chars)
            }
        }
    }

    /// patternmatcher's name for how this pattern is matched
    /// (`exactMatch`, `prefixMatch`, `suffixMatch`, `regexpMatch`).
    pub fn match_type(&self) -> &'static str {
        match self.kind {
            Kind::Exact => "exactMatch",
            Kind::Prefix(_) => "prefixMatch",
            Kind::Suffix(_) => "suffixMatch",
            Kind::Tokens(_) => "regexpMatch",
        }
    }

    /// The pattern without a trailing `/**` or `/*`, which fsutil compares
    /// against directory prefixes to decide whether a walk may prune.
    pub fn without_trailing_glob(&self) -> &str {
        let t = self.text.as_str();
        let t = t.strip_suffix("/**").unwrap_or(t);
        t.strip_suffix("/*").unwrap_or(t)
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

/// patternmatcher's `shouldEscape`: regex metacharacters that are plain
/// characters in a path pattern.
fn plain_regex_meta(c: char) -> bool {
    ".+()|{}$".contains(c)
}

fn compile(pattern: &str) -> Kind {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut detected = Detected::Exact;
    let mut pos = 0;
    let mut iteration = 0;
    while let Some(&ch) = chars.get(pos) {
        pos += 1;
        if ch == '*' {
            if chars.get(pos) == Some(&'*') {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos >= chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        toks.push(Tok::Rest);
                        detected = Detected::Regex;
                    }
                } else {
                    toks.push(Tok::Dirs);
                    detected = Detected::Regex;
                }
                if iteration == 0 {
                    detected = Detected::Suffix;
                }
            } else {
                toks.push(Tok::Star);
                detected = Detected::Regex;
            }
        } else if ch == '?' {
            toks.push(Tok::One);
            detected = Detected::Regex;
        } else if plain_regex_meta(ch) {
            toks.push(Tok::Lit(ch));
        } else if ch == '\\' {
            if let Some(&next) = chars.get(pos) {
                pos += 1;
                toks.push(Tok::Lit(next));
                detected = Detected::Regex;
            } else {
                toks.push(Tok::Lit('\\'));
            }
        } else if ch == '[' {
            // The pattern passed Go's syntax check, so the class is well
            // formed; parse it with filepath.Match's rules.
            detected = Detected::Regex;
            let (tok, next) = parse_class(&chars, pos);
            toks.push(tok);
            pos = next;
        } else {
            if ch == ']' {
                detected = Detected::Regex;
            }
            toks.push(Tok::Lit(ch));
        }
        iteration += 1;
    }
    match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => {
            let cut = pattern.len().saturating_sub(2);
            Kind::Prefix(pattern.get(..cut).unwrap_or("").to_string())
        }
        Detected::Suffix => Kind::Suffix(pattern.get(2..).unwrap_or("").to_string()),
        Detected::Regex => Kind::Tokens(toks),
    }
}

/// Parses a class starting just after `[`; returns the token and the
/// position after the closing `]`.
fn parse_class(chars: &[char], mut pos: usize) -> (Tok, usize) {
    let mut negated = false;
    if chars.get(pos) == Some(&'^') {
        negated = true;
        pos += 1;
    }
    let mut ranges = Vec::new();
    let esc = |pos: &mut usize| -> Option<char> {
        if chars.get(*pos) == Some(&'\\') {
            *pos += 1;
        }
        let c = chars.get(*pos).copied();
        *pos += 1;
        c
    };
    loop {
        match chars.get(pos) {
            None => break,
            Some(']') if !ranges.is_empty() => {
                pos += 1;
                break;
            }
            _ => {}
        }
        let Some(lo) = esc(&mut pos) else { break };
        let mut hi = lo;
        if chars.get(pos) == Some(&'-') {
            pos += 1;
            if let Some(h) = esc(&mut pos) {
                hi = h;
            }
        }
        ranges.push((lo, hi));
    }
    (Tok::Class { negated, ranges }, pos)
}

/// Full match of the token sequence against `s`, backtracking over stars.
fn match_toks(toks: &[Tok], s: &[char]) -> bool {
    let Some((tok, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    match tok {
        Tok::Lit(c) => s.first() == Some(c) && match_toks(rest, s.get(1..).unwrap_or(&[])),
        Tok::One => {
            s.first().is_some_and(|c| *c != '/') && match_toks(rest, s.get(1..).unwrap_or(&[]))
        }
        Tok::Class { negated, ranges } => {
            s.first()
                .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                && match_toks(rest, s.get(1..).unwrap_or(&[]))
        }
        Tok::Star => {
            // Try every split within the current element.
            let limit = s.iter().position(|c| *c == '/').unwrap_or(s.len());
            (0..=limit).any(|n| match_toks(rest, s.get(n..).unwrap_or(&[])))
        }
        Tok::Rest => {
            // `.*` does not cross a newline in Go's regexp.
            let limit = s.iter().position(|c| *c == '\n').unwrap_or(s.len());
            (0..=limit).any(|n| match_toks(rest, s.get(n..).unwrap_or(&[])))
        }
        Tok::Dirs => {
            if match_toks(rest, s) {
                return true;
            }
            // `(.*/)?`: any newline-free run ending in `/`.
            for (i, c) in s.iter().enumerate() {
                if *c == '\n' {
                    break;
                }
                if *c == '/' && match_toks(rest, s.get(i + 1..).unwrap_or(&[])) {
                    return true;
                }
            }
            false
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
    fn kinds() {
        assert_eq!(p("abc.def").kind, Kind::Exact);
        assert_eq!(p("dir/**").kind, Kind::Prefix("dir/".into()));
        assert_eq!(p("**/dir").kind, Kind::Suffix("/dir".into()));
        assert_eq!(p("**").kind, Kind::Suffix(String::new()));
        assert!(matches!(p("**/dir2/*").kind, Kind::Tokens(_)));
    }

    #[test]
    fn suffix_is_a_plain_suffix() {
        assert!(p("**file").matches("dir/xfile"));
        assert!(p("**/foo").matches("foo"));
        assert!(p("**/foo").matches("a/b/foo"));
        assert!(!p("**/foo").matches("afoo"));
    }

    #[test]
    fn regex_tokens() {
        assert!(p("**/**/*.txt").matches("file.txt"));
        assert!(p("a**/*.txt").matches("a/dir/dir/file.txt"));
        assert!(!p("a/*.txt").matches("a/dir/file.txt"));
        assert!(p(r"a\*b").matches("a*b"));
        assert!(p("a[^b-d]e").matches("aze"));
        assert!(!p("*").matches("a/b"));
    }

    #[test]
    fn bang_alone_is_invalid() {
        assert_eq!(Pattern::new("!"), Err(BadPattern));
        assert_eq!(Pattern::new("  "), Ok(None));
        assert!(p("!x").is_exclusion());
    }
}
