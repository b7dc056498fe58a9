//! Heredoc markers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) in a RUN, COPY or ADD line.
use super::ast::Heredoc;
use super::error::ParseErrorKind;
use crate::shell::{EmptyEnv, Lexer, ShellError};

/// Splits `text` into words as BuildKit's shell lexer does for heredoc
/// detection: unset variables left as written, `\` as the escape
/// character whatever the Dockerfile's directive says.
fn split(text: &str, raw_quotes: bool, raw_escapes: bool) -> Result<Vec<String>, ShellError> {
    let mut lexer = Lexer::new('\\');
    lexer.raw_quotes = raw_quotes;
    lexer.raw_escapes = raw_escapes;
    lexer.skip_unset_env = true;
    // Go's text/scanner drops a byte-order mark at the very start.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    lexer.process_words(text, &EmptyEnv)
}

/// Finds the heredoc markers in an instruction line, in order, as BuildKit's
/// `heredocsFromLine` does: the line is split into shell words (quotes and
/// escapes kept) and each word that looks like `N<<-WORD` is a marker. A line
/// the lexer cannot split (an unterminated quote, say) has no heredocs. A
/// line nesting `${...}` deeper than we follow is an error (BuildKit has no
/// such limit).
/// Bodies are left empty: the parser fills them from the following lines.
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseErrorKind> {
    let words = match split(line, true, true) {
        Ok(words) => words,
        Err(e) if e.is_nesting_limit() => return Err(ParseErrorKind::Heredoc(e.message)),
        Err(_) => return Ok(Vec::new()),
    };
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Reads one word as a heredoc marker (BuildKit's `ParseHeredoc`):
/// `Ok(None)` when it is not one, an error when its quoting is broken. COPY
/// and ADD use it to tell which sources are heredocs. The body is empty.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ParseErrorKind> {
    // The shape BuildKit matches with `^(\d*)<<(-?)\s*([^<]*)$`.
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word.get(digits..).and_then(|w| w.strip_prefix("<<")) else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    // Go ignores the parse error: an fd too large saturates, none is 0.
    let fd_text = word.get(..digits).unwrap_or("");
    let file_descriptor = if fd_text.is_empty() {
        0
    } else {
        fd_text.parse::<u32>().unwrap_or(u32::MAX)
    };

    let lex_error = |e: ShellError| ParseErrorKind::Heredoc(e.message);
    let words = split(rest, false, false).map_err(lex_error)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw_words = split(rest, true, false).map_err(lex_error)?;
    let [raw_name] = raw_words.as_slice() else {
        return Err(ParseErrorKind::Heredoc(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        )));
    };
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        // Quotes that the lexer removed mean some part of the word was
        // quoted, which turns expansion of the body off.
        expand: quotes(name) == quotes(raw_name),
        chomp,
        file_descriptor,
    }))
}

/// Strips leading tabs from every line of a `<<-` heredoc body (BuildKit's
/// `ChompHeredocContent`); the parser keeps bodies unchomped.
pub fn chomp_heredoc_content(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    for line in content.split_inclusive('\n') {
        out.push_str(line.trim_start_matches('\t'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(word: &str) -> Option<String> {
        parse_heredoc(word).unwrap().map(|h| h.name)
    }

    #[test]
    fn markers() {
        for w in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
            "<<EO\"F\"",
            "<< EOF",
            "<<- EOF",
        ] {
            assert_eq!(name(w).as_deref(), Some("EOF"), "{w}");
        }
        for w in [
            "", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh", "x<<EOF",
        ] {
            assert_eq!(name(w), None, "{w}");
        }
        for w in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc(w).is_err(), "{w}");
        }
    }

    #[test]
    fn flags_of_a_marker() {
        let h = parse_heredoc("3<<-'X'").unwrap().unwrap();
        assert_eq!((h.file_descriptor, h.chomp, h.expand), (3, true, false));
        let h = parse_heredoc("<<X").unwrap().unwrap();
        assert_eq!((h.file_descriptor, h.chomp, h.expand), (0, false, true));
        let h = parse_heredoc("99999999999<<X").unwrap().unwrap();
        assert_eq!(h.file_descriptor, u32::MAX);
        // An escaped quote is not quoting.
        let h = parse_heredoc("<<eo\\'f").unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.expand), ("eo'f", true));
        let h = parse_heredoc("<<'e'o\\'f").unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.expand), ("eo'f", false));
    }

    #[test]
    fn markers_in_a_line() {
        let names = |line: &str| -> Vec<String> {
            heredocs_from_line(line)
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<-EOF"), ["EOF"]);
        assert_eq!(names("RUN << -EOF"), ["-EOF"]);
        assert_eq!(names("RUN <<'EOF'"), ["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
        // BuildKit's lexer keeps `<<-` and the word after a blank apart.
        assert!(names("RUN <<- EOF").is_empty());
        // A line the lexer refuses has no heredocs at all.
        assert!(names("RUN <<EOF 'unterminated").is_empty());
    }

    #[test]
    fn chomp() {
        assert_eq!(
            chomp_heredoc_content("\thello\n\t\tworld\n x\t\n"),
            "hello\nworld\n x\t\n"
        );
    }
}

#[cfg(test)]
mod split_tests {
    //! The shell lexer in the mode heredoc detection uses, with the corner
    //! cases detection depends on.
    use super::split;

    fn raw(input: &str) -> Vec<String> {
        split(input, true, true).unwrap_or_else(|e| panic!("{input:?}: {e:?}"))
    }

    fn cooked(input: &str) -> Vec<String> {
        split(input, false, false).unwrap_or_else(|e| panic!("{input:?}: {e:?}"))
    }

    #[test]
    fn splits_words_keeping_raw_quotes() {
        assert_eq!(raw("RUN <<EOF cat"), ["RUN", "<<EOF", "cat"]);
        assert_eq!(raw("RUN << EOF"), ["RUN", "<< EOF"]);
        assert_eq!(raw("RUN <<- EOF"), ["RUN", "<<-", "EOF"]);
        assert_eq!(raw("RUN '<<EOF'"), ["RUN", "'<<EOF'"]);
        assert_eq!(cooked("a\\ b 'c d'"), ["a b", "c d"]);
        assert_eq!(raw("a\\ b"), ["a\\ b"]);
        assert_eq!(cooked("x ''"), ["x"]);
        assert_eq!(raw("x ''"), ["x", "''"]);
    }

    #[test]
    fn unset_variables_stay_as_written() {
        assert_eq!(cooked("$A ${B} ${C:-x y}"), ["$A", "${B}", "${C:-x", "y}"]);
        assert_eq!(cooked("${A//x/y}"), ["${A/x/y}"]);
        assert_eq!(cooked("$ $1x ${#}"), ["$", "$1x", "${#}"]);
        // A nested ${...:-...} restarts the word, as in BuildKit.
        assert_eq!(cooked("abc${x:-y}"), ["${x:-y}"]);
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(cooked(r#""a\"b" "c\d""#), [r#"a"b"#, r"c\d"]);
        assert_eq!(raw(r#""c\d""#), [r#""c\\d""#]);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = |n: usize| format!("{}{}", "${a:-".repeat(n), "}".repeat(n));
        assert_eq!(cooked(&deep(100)).len(), 1);
        let e = split(&deep(20_000), true, true).unwrap_err();
        assert!(e.is_nesting_limit(), "{e}");
    }

    #[test]
    fn errors() {
        for input in [
            "'abc", "\"abc", "${", "${}", "${:x}", "${a", "${a:#x}", "${a!}", "${a:-x", "${a/x",
            "${a/x/y",
        ] {
            let e = split(input, false, false).unwrap_err();
            assert!(!e.is_nesting_limit(), "{input:?}");
        }
    }
}
