//! Path patterns: Go's `filepath.Match` for COPY source wildcards, and the
//! `.dockerignore`/`--exclude` pattern lists (`**`, `!` exceptions, last
//! match wins, a match on a parent directory covers its children).
//!
//! The context module owns the canonical `.dockerignore` matcher; this is
//! the engine's small copy for `--exclude` and until that lands.

/// True when `name` contains `*`, `?` or `[` outside an escape.
pub fn has_wildcards(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' | b'?' | b'[' => return true,
            b'\\' => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Go's `filepath.Match`: `*` and `?` never match `/`; `[...]` classes with
/// ranges and `^` negation; `\` escapes. A malformed pattern matches nothing.
pub fn go_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n).unwrap_or(false)
}

fn match_at(p: &[char], n: &[char]) -> Option<bool> {
    let (mut pi, mut ni) = (0, 0);
    // Backtracking point for the last `*`.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() && n[ni] != '/' => {
                    let (ok, next) = class(p, pi, n[ni])?;
                    if ok {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && ni < n.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if c != '?' && c != '[' && c != '\\' && ni < n.len() && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Some(true);
        }
        // Mismatch: let the last star eat one more non-separator char.
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return Some(false),
        }
    }
}

/// Matches one `[...]` class at `p[start]` against `c`; returns whether it
/// matched and the index after the class, or None when malformed.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = p.get(i) == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            i += 1;
            hi = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Some((matched != negate, i))
}

/// One line of a pattern list.
#[derive(Debug, Clone)]
struct Pattern {
    parts: Vec<String>,
    exclusion: bool,
}

/// An ordered list of `.dockerignore`-style patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternList {
    patterns: Vec<Pattern>,
}

impl PatternList {
    /// Builds the list from pattern strings (`!` marks an exception).
    pub fn new<S: AsRef<str>>(lines: &[S]) -> Self {
        let mut patterns = Vec::new();
        for line in lines {
            let mut l = line.as_ref().trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let exclusion = l.starts_with('!');
            if exclusion {
                l = l[1..].trim();
            }
            let cleaned = super::fsview::clean(l);
            if cleaned.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                parts: cleaned.split('/').map(String::from).collect(),
                exclusion,
            });
        }
        PatternList { patterns }
    }

    /// Parses a `.dockerignore` file's text.
    pub fn from_dockerignore(text: &str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        Self::new(&lines)
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern is an exception (`!`): an excluded directory
    /// must then still be walked.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// True when the clean relative path is matched (excluded): the last
    /// pattern that matches the path or one of its parents decides.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut matched = false;
        for p in &self.patterns {
            if matched != p.exclusion {
                continue;
            }
            let hit = (1..=parts.len()).any(|len| parts_match(&p.parts, &parts[..len]));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

fn parts_match(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(first) if first == "**" => {
            (0..=path.len()).any(|skip| parts_match(&pat[1..], &path[skip..]))
        }
        Some(first) => match path.first() {
            Some(name) => go_match(first, name) && parts_match(&pat[1..], &path[1..]),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_cases() {
        assert!(go_match("*.txt", "a.txt"));
        assert!(!go_match("*.txt", "d/a.txt"));
        assert!(go_match("?.md", "c.md"));
        assert!(!go_match("?.md", "cc.md"));
        assert!(go_match("[ab].txt", "b.txt"));
        assert!(!go_match("[ab].txt", "c.txt"));
        assert!(go_match("[^ab].txt", "c.txt"));
        assert!(go_match("[a-c]*", "cat"));
        assert!(go_match("a\\*b", "a*b"));
        assert!(!go_match("[", "["));
        assert!(go_match("*", ""));
        assert!(go_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn dockerignore_semantics() {
        let l = PatternList::from_dockerignore(
            "*.log\n**/*.tmp\nsecret/\n!secret/keep.txt\nDockerfile\n.dockerignore\n",
        );
        assert!(l.matches("build.log"));
        assert!(!l.matches("sub/build.log"));
        assert!(l.matches("sub/deep/x.tmp"));
        assert!(l.matches("x.tmp"));
        assert!(l.matches("secret"));
        assert!(l.matches("secret/other"));
        assert!(!l.matches("secret/keep.txt"));
        assert!(!l.matches("main.c"));
        assert!(l.has_exceptions());
    }
}
