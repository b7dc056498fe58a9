//! Reading a .dockerignore file and deciding what it excludes, as the
//! reference builder (BuildKit in docker 20.10) does: `ReadAll` as in
//! BuildKit's dockerignore package, matching as docker 20.10's
//! `pkg/fileutils` and walking as the fsutil it ships.
use std::path::{Path, PathBuf};

use super::pattern::{go_clean, Pattern};

/// A .dockerignore that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// The file exists but could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The ignore file.
        path: PathBuf,
        /// What the read reported.
        source: std::io::Error,
    },
    /// A line holds a pattern Go's `filepath.Match` rejects, or a bare `!`.
    #[error("{path}:{line}: invalid pattern {text:?}")]
    BadPattern {
        /// The ignore file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The pattern as written.
        text: String,
    },
}

/// One pattern with where it came from, so `--why` can point at it.
#[derive(Debug, Clone)]
pub struct IgnoreRule {
    /// The compiled pattern.
    pub pattern: Pattern,
    /// 1-based line in the ignore file.
    pub line: usize,
    /// The line as read, trimmed.
    pub source_text: String,
}

/// The outcome of matching one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Whether the path is left out of the context.
    pub excluded: bool,
    /// Index into [`IgnoreRules::rules`] of the rule that decided, if any.
    pub rule: Option<usize>,
}

/// The ordered rules of one ignore file (empty when there is none).
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    /// Where the rules were read from; `None` when no file applied.
    pub file: Option<PathBuf>,
    /// The rules in file order; the last match wins.
    pub rules: Vec<IgnoreRule>,
}

/// Splits ignore-file text into patterns as `ignorefile.ReadAll` does,
/// keeping each pattern's line number: a UTF-8 BOM is dropped, a line
/// starting with `#` (before trimming) is a comment, lines are trimmed and
/// empty ones skipped, the text after `!` is trimmed, each pattern is
/// cleaned and loses one leading `/`.
pub fn read_patterns(text: &[u8]) -> Vec<(usize, String)> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    // Raw bytes kept (see `crate::bytename`): the syntax check and the
    // walk's prefix test see them as Go does; the regexp reads each as
    // U+FFFD (see `Pattern::new`).
    let text = crate::bytename::from_bytes(text);
    let mut out = Vec::new();
    // Go's bufio.Scanner splits on `\n` and drops one `\r` before it.
    for (idx, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern.get(1..).unwrap_or("").trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 {
                if let Some(rest) = cleaned.strip_prefix('/') {
                    cleaned = rest.to_string();
                }
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push((idx + 1, cleaned));
    }
    out
}

impl IgnoreRules {
    /// Compiles ignore-file text; `path` names the file in errors.
    pub fn parse(path: &Path, text: &[u8]) -> Result<IgnoreRules, IgnoreError> {
        let mut rules = Vec::new();
        for (line, text) in read_patterns(text) {
            match Pattern::new(&text) {
                Ok(Some(pattern)) => rules.push(IgnoreRule {
                    pattern,
                    line,
                    source_text: text,
                }),
                Ok(None) => {}
                Err(_) => {
                    return Err(IgnoreError::BadPattern {
                        path: path.to_path_buf(),
                        line,
                        text: crate::bytename::show(&text).into_owned(),
                    })
                }
            }
        }
        Ok(IgnoreRules {
            file: Some(path.to_path_buf()),
            rules,
        })
    }

    /// Compiles patterns given directly, as fileutils' `NewPatternMatcher` does
    /// (no comment or leading-`/` handling: that is the file reader's job).
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<IgnoreRules, IgnoreError> {
        let mut rules = Vec::new();
        for (i, text) in patterns.iter().enumerate() {
            let text = text.as_ref();
            let bad = || IgnoreError::BadPattern {
                path: PathBuf::from("<patterns>"),
                line: i + 1,
                text: text.to_string(),
            };
            if let Some(pattern) = Pattern::new(text).map_err(|_| bad())? {
                rules.push(IgnoreRule {
                    pattern,
                    line: i + 1,
                    source_text: text.trim().to_string(),
                });
            }
        }
        Ok(IgnoreRules { file: None, rules })
    }

    /// Whether any rule is an exception (`!`).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.pattern.is_exclusion())
    }

    /// docker 20.10's `PatternMatcher.Matches`: the last rule that matches
    /// the path, or the path's leading directories cut to the rule's
    /// number of elements, decides. This answers for the path alone; use
    /// [`IgnoreRules::visible`] for whether a walk lists it.
    pub fn decide(&self, path: &str) -> Decision {
        // Raw bytes of a name are the U+FFFD Go's regexp decodes them as.
        let path = go_clean(&crate::bytename::go_view(path));
        let mut decision = Decision {
            excluded: false,
            rule: None,
        };
        if path == "." {
            return decision;
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path.get(..i).unwrap_or("").split('/').collect(),
            None => Vec::new(),
        };
        for (i, rule) in self.rules.iter().enumerate() {
            let pat = &rule.pattern;
            if pat.matches_or_parent(&path, &parents) {
                decision = Decision {
                    excluded: !pat.is_exclusion(),
                    rule: Some(i),
                };
            }
        }
        decision
    }

    /// Current fsutil's walk-time `MatchesUsingParentResults`, which COPY
    /// `--exclude` and `--parents` use: a rule that matched a parent
    /// directory matches everything below it, however many elements the
    /// rule has (`**/x` sees `x/f` through `x`). `parent` is what the
    /// parent directory returned (empty for a top-level path: then every
    /// leading directory of `path` is tried). Returns whether the path
    /// matches and what its children must be given.
    pub fn decide_in_walk(&self, path: &str, parent: &[bool]) -> (bool, Vec<bool>) {
        let path = go_clean(&crate::bytename::go_view(path));
        let mut matched = false;
        let mut info = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let pat = &rule.pattern;
            let mut hit = parent.get(i).copied().unwrap_or(false);
            if !hit {
                // An exception only matters once something matched, and an
                // inclusion no longer does: the reference skips both.
                if pat.is_exclusion() != matched {
                    info.push(false);
                    continue;
                }
                hit = pat.matches(&path);
                if !hit && parent.is_empty() {
                    let mut prefix = String::new();
                    let dirs = path.rsplit_once('/').map_or("", |(d, _)| d);
                    for part in dirs.split('/').filter(|s| !s.is_empty()) {
                        if !prefix.is_empty() {
                            prefix.push('/');
                        }
                        prefix.push_str(part);
                        if pat.matches(&prefix) {
                            hit = true;
                            break;
                        }
                    }
                }
            }
            info.push(hit);
            if hit {
                matched = !pat.is_exclusion();
            }
        }
        (matched, info)
    }

    /// Whether the walk enters an excluded directory, as the reference's
    /// fsutil walk decides: only when some exception's text, followed by
    /// `/`, starts with `dir/`. Wildcards get no special treatment, so
    /// `!**/keep` or `!*/keep` never reach inside an excluded directory.
    /// A directory entered this way is listed itself, with what its own
    /// rules leave of its contents.
    pub fn must_descend_excluded(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.rules
            .iter()
            .map(|r| &r.pattern)
            .filter(|p| p.is_exclusion())
            .any(|p| format!("{}/", p.text()).starts_with(&dir_slash))
    }

    /// Whether a context-relative path is part of the context: the walk
    /// reaches it (every parent directory is either not excluded or
    /// entered by [`IgnoreRules::must_descend_excluded`]) and it is not
    /// excluded itself, unless it is such a directory. `is_dir` tells
    /// whether the path itself is a directory.
    pub fn visible(&self, path: &str, is_dir: bool) -> bool {
        self.deciding(path, is_dir).0
    }

    /// [`IgnoreRules::visible`] and the rule that decided it.
    pub(crate) fn deciding(&self, path: &str, is_dir: bool) -> (bool, Option<usize>) {
        let clean = go_clean(&format!("/{path}"));
        let clean = clean.trim_start_matches('/');
        if self.rules.is_empty() || clean.is_empty() {
            return (true, None);
        }
        let mut rule = None;
        let mut end = 0;
        while end < clean.len() {
            end = clean
                .get(end + 1..)
                .and_then(|rest| rest.find('/'))
                .map_or(clean.len(), |i| end + 1 + i);
            let prefix = clean.get(..end).unwrap_or(clean);
            let d = self.decide(prefix);
            rule = d.rule;
            let dir = end < clean.len() || is_dir;
            if d.excluded && !(dir && self.must_descend_excluded(prefix)) {
                return (false, rule);
            }
        }
        (true, rule)
    }

    /// Describes a rule as `FILE:LINE: TEXT` for `--why`.
    pub fn describe(&self, index: usize) -> Option<String> {
        let rule = self.rules.get(index)?;
        let file = self
            .file
            .as_deref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "<patterns>".to_string());
        Some(format!(
            "{file}:{}: {}",
            rule.line,
            crate::bytename::show(&rule.source_text)
        ))
    }
}
