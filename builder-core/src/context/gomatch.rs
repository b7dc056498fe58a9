//! Go's `path/filepath.Match` on `/`-separated paths: the syntax checker
//! behind every .dockerignore pattern and the matcher for COPY/ADD source
//! wildcards. Written from the Go documentation and its test table: `*`
//! and `?` never cross a `/`, `[...]` classes take ranges and a leading `^`,
//! and `\` escapes the next character.

/// A pattern that Go's `filepath.Match` rejects (`filepath.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Reports whether `name` matches `pattern` in full, as Go's
/// `filepath.Match` does on Unix, including its habit of validating the
/// rest of the pattern before answering "no".
pub fn go_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let pat: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let mut pat = &pat[..];
    let mut name = &name[..];
    'outer: while !pat.is_empty() {
        let (star, chunk, rest) = scan_chunk(pat);
        pat = rest;
        if star && chunk.is_empty() {
            // A trailing star matches the rest unless it would cross a `/`.
            return Ok(!name.contains(&'/'));
        }
        let first = match_chunk(chunk, name);
        match first {
            Ok(Some(t)) if t.is_empty() || !pat.is_empty() => {
                name = t;
                continue;
            }
            Err(e) => return Err(e),
            _ => {}
        }
        if star {
            let mut i = 0;
            while i < name.len() && name.get(i) != Some(&'/') {
                let tail = name.get(i + 1..).unwrap_or(&[]);
                if let Some(t) = match_chunk(chunk, tail)? {
                    if pat.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'outer;
                }
                i += 1;
            }
        }
        // Go checks the remaining pattern's syntax before saying no.
        while !pat.is_empty() {
            let (_, chunk, rest) = scan_chunk(pat);
            pat = rest;
            match_chunk(chunk, &[])?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Checks a pattern's syntax the way patternmatcher does: by matching it
/// against `"."` and keeping only the error.
pub fn validate(pattern: &str) -> Result<(), BadPattern> {
    go_match(pattern, ".").map(|_| ())
}

/// Reports whether a pattern has any of Go's wildcard characters.
pub fn has_meta(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

/// Splits off the leading stars and the chunk up to the next unescaped
/// star outside brackets.
fn scan_chunk(mut pat: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    while pat.first() == Some(&'*') {
        pat = pat.get(1..).unwrap_or(&[]);
        star = true;
    }
    let mut in_brackets = false;
    let mut i = 0;
    while i < pat.len() {
        match pat.get(i) {
            // Skip the escaped character (if any).
            Some('\\') if i + 1 < pat.len() => i += 1,
            Some('[') => in_brackets = true,
            Some(']') => in_brackets = false,
            Some('*') if !in_brackets => break,
            _ => {}
        }
        i += 1;
    }
    let (chunk, rest) = pat.split_at(i);
    (star, chunk, rest)
}

/// Matches one star-free chunk against the start of `s`; `Ok(Some(rest))`
/// on success. Keeps parsing after a mismatch so syntax errors still show.
fn match_chunk<'a>(
    mut chunk: &[char],
    mut s: &'a [char],
) -> Result<Option<&'a [char]>, BadPattern> {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            '[' => {
                let mut r = '\0';
                if !failed {
                    if let Some((&first, tail)) = s.split_first() {
                        // A raw byte of a name (see `crate::bytename`) is
                        // the U+FFFD Go decodes it as.
                        r = crate::bytename::as_go_rune(first);
                        s = tail;
                    }
                }
                chunk = chunk.get(1..).unwrap_or(&[]);
                let mut negated = false;
                if chunk.first() == Some(&'^') {
                    negated = true;
                    chunk = chunk.get(1..).unwrap_or(&[]);
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&']') && nrange > 0 {
                        chunk = chunk.get(1..).unwrap_or(&[]);
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&'-') {
                        let (h, rest) = get_esc(chunk.get(1..).unwrap_or(&[]))?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    if s.first() == Some(&'/') {
                        failed = true;
                    }
                    s = s.get(1..).unwrap_or(&[]);
                }
                chunk = chunk.get(1..).unwrap_or(&[]);
            }
            _ => {
                let lit = if c == '\\' {
                    chunk = chunk.get(1..).unwrap_or(&[]);
                    *chunk.first().ok_or(BadPattern)?
                } else {
                    c
                };
                if !failed {
                    if s.first() != Some(&lit) {
                        failed = true;
                    }
                    s = s.get(1..).unwrap_or(&[]);
                }
                chunk = chunk.get(1..).unwrap_or(&[]);
            }
        }
    }
    if failed {
        Ok(None)
    } else {
        Ok(Some(s))
    }
}

/// One possibly escaped character of a class; it must be followed by more
/// of the pattern (at least the closing bracket).
fn get_esc(chunk: &[char]) -> Result<(char, &[char]), BadPattern> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some('-') | Some(']') => return Err(BadPattern),
        Some('\\') => {
            chunk = chunk.get(1..).unwrap_or(&[]);
            if chunk.is_empty() {
                return Err(BadPattern);
            }
        }
        _ => {}
    }
    let (&r, rest) = chunk.split_first().ok_or(BadPattern)?;
    if rest.is_empty() {
        return Err(BadPattern);
    }
    // A raw byte in a class is the U+FFFD it decodes as: docker 20.10
    // takes `[\xE9]` in a .dockerignore (checked), where current Go's
    // getEsc would refuse it.
    Ok((crate::bytename::as_go_rune(r), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_stay_within_an_element() {
        assert_eq!(go_match("*.go", "a.go"), Ok(true));
        assert_eq!(go_match("*.go", "d/a.go"), Ok(false));
        assert_eq!(go_match("a*", "ab/c"), Ok(false));
        assert_eq!(go_match("*/b", "a/b"), Ok(true));
        assert_eq!(go_match("a?c", "a/c"), Ok(false));
    }

    #[test]
    fn classes_and_escapes() {
        assert_eq!(go_match("[a-c]x", "bx"), Ok(true));
        assert_eq!(go_match("[^a-c]x", "bx"), Ok(false));
        assert_eq!(go_match(r"\*", "*"), Ok(true));
        assert_eq!(go_match(r"\*", "a"), Ok(false));
        assert_eq!(go_match("[]a]", "]"), Err(BadPattern));
        assert_eq!(go_match("[x-]", "x"), Err(BadPattern));
        assert_eq!(go_match("a[", "x"), Err(BadPattern));
        assert_eq!(go_match("\\", "x"), Err(BadPattern));
        // A syntax error after a mismatch still counts.
        assert_eq!(go_match("x*[", "a"), Err(BadPattern));
        assert_eq!(go_match("[a-ζ]*", "α"), Ok(true));
    }

    #[test]
    fn raw_bytes_of_names_match_as_go_matches_them() {
        let name = crate::bytename::from_bytes(b"caf\xe9");
        assert_eq!(go_match("caf?", &name), Ok(true));
        assert_eq!(go_match("c*", &name), Ok(true));
        assert_eq!(go_match("caf[^a]", &name), Ok(true));
        assert_eq!(go_match("caf[\u{FFFD}]", &name), Ok(true));
        assert_eq!(go_match("caf\u{FFFD}", &name), Ok(false));
        assert_eq!(go_match("café", &name), Ok(false));
        assert_eq!(go_match(&name, &name), Ok(true));
        let in_class = format!("caf[{}]", crate::bytename::from_bytes(b"\xe8"));
        assert_eq!(go_match(&in_class, &name), Ok(true));
        assert_eq!(go_match(&in_class, "cafe"), Ok(false));
    }

    #[test]
    fn backtracking_star() {
        assert_eq!(go_match("a*b?c*x", "abxbbxdbxebxczzx"), Ok(true));
        assert_eq!(go_match("a*b?c*x", "abxbbxdbxebxczzy"), Ok(false));
        assert_eq!(go_match("*x", "xxx"), Ok(true));
    }
}
