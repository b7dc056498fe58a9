//! Word expansion as BuildKit's `shell.Lex.ProcessWord` does it for
//! Dockerfile instructions: `$VAR`, `${VAR}`, `${VAR:-x}` and friends,
//! quote removal and the escape character.
//!
//! This is the engine's stand-in until the instructions module's
//! dispatcher (which owns expansion and ARG/ENV scoping) is connected; it
//! is deliberately small.

/// Looks variables up for expansion.
pub trait Vars {
    /// The value of `name`, if it is set.
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Expands one word: quotes are removed, variables substituted; whitespace
/// is kept as written.
pub fn expand_word(word: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                out.push(n);
                i += 2;
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&x| x == '\'')
                .ok_or_else(|| format!("unexpected end of statement while looking for matching single-quote in {word:?}"))?;
            out.extend(&chars[i + 1..i + 1 + end]);
            i += end + 2;
        } else if c == '"' {
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(format!(
                        "unexpected end of statement while looking for matching double-quote in {word:?}"
                    ));
                };
                if d == '"' {
                    i += 1;
                    break;
                }
                if d == escape {
                    match chars.get(i + 1) {
                        Some(&n) if n == '"' || n == '$' || n == escape => {
                            out.push(n);
                            i += 2;
                        }
                        _ => {
                            out.push(d);
                            i += 1;
                        }
                    }
                } else if d == '$' {
                    i = dollar(&chars, i, vars, escape, &mut out)?;
                } else {
                    out.push(d);
                    i += 1;
                }
            }
        } else if c == '$' {
            i = dollar(&chars, i, vars, escape, &mut out)?;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// Expands a word and splits the result on unquoted whitespace (EXPOSE,
/// VOLUME in shell form).
pub fn expand_words(word: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, String> {
    // Split first on unquoted whitespace, then expand each piece: close
    // enough to ProcessWords for the instructions that use it.
    let mut pieces = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == escape => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    pieces.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        pieces.push(cur);
    }
    pieces
        .iter()
        .map(|p| expand_word(p, vars, escape))
        .collect()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn dollar(
    chars: &[char],
    start: usize,
    vars: &dyn Vars,
    escape: char,
    out: &mut String,
) -> Result<usize, String> {
    let mut i = start + 1;
    match chars.get(i) {
        Some('{') => {
            i += 1;
            let name_start = i;
            while chars.get(i).is_some_and(|&c| is_name_char(c)) {
                i += 1;
            }
            let name: String = chars[name_start..i].iter().collect();
            if name.is_empty() {
                return Err("bad substitution".into());
            }
            match chars.get(i) {
                Some('}') => {
                    out.push_str(&vars.get(&name).unwrap_or_default());
                    Ok(i + 1)
                }
                Some(&op) if op == ':' || op == '-' || op == '+' || op == '?' => {
                    let colon = op == ':';
                    if colon {
                        i += 1;
                    }
                    let modifier = *chars.get(i).ok_or("bad substitution")?;
                    i += 1;
                    // The word up to the matching brace, itself expanded.
                    let mut depth = 0;
                    let word_start = i;
                    while let Some(&c) = chars.get(i) {
                        if c == '{' {
                            depth += 1;
                        } else if c == '}' {
                            if depth == 0 {
                                break;
                            }
                            depth -= 1;
                        }
                        i += 1;
                    }
                    if chars.get(i) != Some(&'}') {
                        return Err(format!("missing '}}' in ${{{name}"));
                    }
                    let raw: String = chars[word_start..i].iter().collect();
                    let value = vars.get(&name);
                    let set = match &value {
                        Some(v) => !(colon && v.is_empty()),
                        None => false,
                    };
                    match modifier {
                        '-' => {
                            if set {
                                out.push_str(&value.unwrap_or_default());
                            } else {
                                out.push_str(&expand_word(&raw, vars, escape)?);
                            }
                        }
                        '+' => {
                            if set {
                                out.push_str(&expand_word(&raw, vars, escape)?);
                            }
                        }
                        '?' => {
                            if set {
                                out.push_str(&value.unwrap_or_default());
                            } else {
                                let msg = expand_word(&raw, vars, escape)?;
                                return Err(format!("{name}: {msg}"));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "unsupported modifier ({modifier}) in substitution"
                            ))
                        }
                    }
                    Ok(i + 1)
                }
                _ => Err(format!("bad substitution in ${{{name}")),
            }
        }
        Some(&c) if is_name_char(c) && !c.is_ascii_digit() => {
            let name_start = i;
            while chars.get(i).is_some_and(|&c| is_name_char(c)) {
                i += 1;
            }
            let name: String = chars[name_start..i].iter().collect();
            out.push_str(&vars.get(&name).unwrap_or_default());
            Ok(i)
        }
        _ => {
            out.push('$');
            Ok(i)
        }
    }
}

/// Expands variables only, keeping quotes as written: heredoc bodies are
/// expanded this way (BuildKit's `SkipProcessQuotes`).
pub fn expand_raw(text: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else if c == '$' {
            i = dollar(&chars, i, vars, escape, &mut out)?;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("A".into(), "1".into()),
            ("B".into(), "two words".into()),
            ("EMPTY".into(), String::new()),
        ]
    }

    #[test]
    fn expands_like_buildkit() {
        let v = vars();
        let e = |w: &str| expand_word(w, &v, '\\').unwrap();
        assert_eq!(e("$A-x"), "1-x");
        assert_eq!(e("${B}/e"), "two words/e");
        assert_eq!(e("\"two words\""), "two words");
        assert_eq!(e("'$A'"), "$A");
        assert_eq!(e("\\$A"), "$A");
        assert_eq!(e("${NOPE:-dflt}"), "dflt");
        assert_eq!(e("${EMPTY:-dflt}"), "dflt");
        assert_eq!(e("${EMPTY-dflt}"), "");
        assert_eq!(e("${A:+set}"), "set");
        assert_eq!(e("a  b"), "a  b");
        assert_eq!(e("$"), "$");
        assert!(expand_word("${NOPE:?oops}", &v, '\\').is_err());
        assert!(expand_word("'open", &v, '\\').is_err());
    }

    #[test]
    fn words_split_outside_quotes() {
        let v = vars();
        assert_eq!(
            expand_words("/a \"/b c\" $A", &v, '\\').unwrap(),
            vec!["/a", "/b c", "1"]
        );
    }
}
