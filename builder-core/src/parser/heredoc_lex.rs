//! The slice of BuildKit's shell lexer that heredoc detection runs: word
//! splitting with quotes, escapes and `${...}` forms, every variable unset and
//! left as written (`SkipUnsetEnv`), the escape character always `\`.
//!
//! Detection depends on the lexer's corner cases (which words a `<<` ends up
//! in, which inputs are errors), so this mirrors its behaviour closely,
//! including that a nested `${v:-...}` restarts the word being collected.
//! The full expander used for building lives in the `shell` module.
use super::gostr::{is_digit, is_letter, is_space};

/// Options of one lexer run.
#[derive(Clone, Copy)]
pub(super) struct LexOptions {
    /// Keep quote characters in the words.
    pub raw_quotes: bool,
    /// Keep escape characters in the words.
    pub raw_escapes: bool,
}

const ESCAPE: char = '\\';

/// Splits `input` into words as `shell.Lex.ProcessWords` does with an empty
/// environment and `SkipUnsetEnv`.
pub(super) fn process_words(input: &str, opts: LexOptions) -> Result<Vec<String>, String> {
    let mut chars: Vec<char> = input.chars().collect();
    // Go's text/scanner drops a byte-order mark at the very start.
    if chars.first() == Some(&'\u{feff}') {
        chars.remove(0);
    }
    let mut lexer = Lexer {
        chars,
        pos: 0,
        raw_quotes: opts.raw_quotes,
        raw_escapes: opts.raw_escapes,
        words_buf: String::new(),
    };
    let (_, words) = lexer.process_stop_on(None, opts.raw_escapes)?;
    Ok(words)
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
    /// The current word. Shared between nested runs on purpose: BuildKit's
    /// lexer shares it too, so a nested `${...}` run resets the outer word.
    words_buf: String,
}

/// Word collection state of one `process_stop_on` run.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, c: char) {
        if is_space(c) && self.in_word {
            if !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else if !is_space(c) {
            self.add_raw_char(buf, c);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, c: char) {
        buf.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, s: &str) {
        for c in s.chars() {
            self.add_char(buf, c);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        self.words_buf.clear();
        let mut words = Words::default();
        let saved_raw_escapes = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.stop_on_loop(stop, &mut result, &mut words);
        self.raw_escapes = saved_raw_escapes;
        out?;
        let mut buf = std::mem::take(&mut self.words_buf);
        let list = words.finish(&mut buf);
        self.words_buf = buf;
        Ok((result, list))
    }

    fn stop_on_loop(
        &mut self,
        stop: Option<char>,
        result: &mut String,
        words: &mut Words,
    ) -> Result<(), String> {
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.next();
                return Ok(());
            }
            let special = match c {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' => Some(self.process_single_quote()?),
                '"' => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                let mut buf = std::mem::take(&mut self.words_buf);
                if c == '$' {
                    words.add_string(&mut buf, &tmp);
                } else {
                    words.add_raw_string(&mut buf, &tmp);
                }
                self.words_buf = buf;
                continue;
            }
            let mut c = self.next().unwrap_or(c);
            let mut buf = std::mem::take(&mut self.words_buf);
            if c == ESCAPE {
                if self.raw_escapes {
                    words.add_raw_char(&mut buf, c);
                    result.push(c);
                }
                match self.next() {
                    None => {
                        self.words_buf = buf;
                        break;
                    }
                    Some(n) => c = n,
                }
                words.add_raw_char(&mut buf, c);
            } else {
                words.add_char(&mut buf, c);
            }
            self.words_buf = buf;
            result.push(c);
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok(()),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let quote = self.next();
        if self.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let quote = self.next();
        if self.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let Some(mut c) = self.next() else { continue };
                    if c == ESCAPE {
                        if self.raw_escapes {
                            result.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some('"' | '$') | Some(ESCAPE) => {
                                if let Some(n) = self.next() {
                                    c = n;
                                }
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            return Ok(format!("${name}"));
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        // Go turns "no character" (EOF) into U+FFFD when printing it.
        let first = self.next();
        let mut modifier = String::from(first.unwrap_or('\u{fffd}'));
        match first {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut op = first;
                let null_is_unset = op == Some(':');
                if null_is_unset {
                    op = self.next();
                    modifier.push(op.unwrap_or('\u{fffd}'));
                }
                let raw = matches!(op, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({modifier}) in substitution"));
                }
                let (word, _) = self.nested('}', raw, "syntax error: missing '}'")?;
                Ok(format!("${{{name}{modifier}{word}}}"))
            }
            Some('/') => {
                if self.peek() == Some('/') {
                    self.next();
                }
                let (pattern, _) = self.nested('/', true, "syntax error: missing '/' in ${}")?;
                let (replacement, _) = self.nested('}', true, "syntax error: missing '}'")?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    /// A nested run up to `stop`; at end of input the error is `at_eof`.
    fn nested(
        &mut self,
        stop: char,
        raw_escapes: bool,
        at_eof: &str,
    ) -> Result<(String, Vec<String>), String> {
        self.process_stop_on(Some(stop), raw_escapes).map_err(|e| {
            if self.peek().is_none() {
                at_eof.to_string()
            } else {
                e
            }
        })
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut result = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            result.push(c);
            self.next();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: LexOptions = LexOptions {
        raw_quotes: true,
        raw_escapes: true,
    };
    const COOKED: LexOptions = LexOptions {
        raw_quotes: false,
        raw_escapes: false,
    };

    fn words(input: &str, opts: LexOptions) -> Vec<String> {
        process_words(input, opts).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    #[test]
    fn splits_words_keeping_raw_quotes() {
        assert_eq!(words("RUN <<EOF cat", RAW), ["RUN", "<<EOF", "cat"]);
        assert_eq!(words("RUN << EOF", RAW), ["RUN", "<< EOF"]);
        assert_eq!(words("RUN <<- EOF", RAW), ["RUN", "<<-", "EOF"]);
        assert_eq!(words("RUN '<<EOF'", RAW), ["RUN", "'<<EOF'"]);
        assert_eq!(words("a\\ b 'c d'", COOKED), ["a b", "c d"]);
        assert_eq!(words("a\\ b", RAW), ["a\\ b"]);
        assert_eq!(words("x ''", COOKED), ["x"]);
        assert_eq!(words("x ''", RAW), ["x", "''"]);
    }

    #[test]
    fn unset_variables_stay_as_written() {
        assert_eq!(
            words("$A ${B} ${C:-x y}", COOKED),
            ["$A", "${B}", "${C:-x", "y}"]
        );
        assert_eq!(words("${A//x/y}", COOKED), ["${A/x/y}"]);
        assert_eq!(words("$ $1x ${#}", COOKED), ["$", "$1x", "${#}"]);
        // A nested ${...:-...} restarts the word, as in BuildKit.
        assert_eq!(words("abc${x:-y}", COOKED), ["${x:-y}"]);
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(words(r#""a\"b" "c\d""#, COOKED), [r#"a"b"#, r"c\d"]);
        assert_eq!(words(r#""c\d""#, RAW), [r#""c\\d""#]);
    }

    #[test]
    fn errors() {
        for input in [
            "'abc", "\"abc", "${", "${}", "${:x}", "${a", "${a:#x}", "${a!}", "${a:-x", "${a/x",
            "${a/x/y",
        ] {
            assert!(process_words(input, COOKED).is_err(), "{input:?}");
        }
    }
}
