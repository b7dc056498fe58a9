//! Heredoc markers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) in a RUN, COPY or ADD line.
use super::ast::Heredoc;
use super::heredoc_lex::{process_words, LexOptions};

/// Finds the heredoc markers in an instruction line, in order, as BuildKit's
/// `heredocsFromLine` does: the line is split into shell words (quotes and
/// escapes kept) and each word that looks like `N<<-WORD` is a marker. A line
/// the lexer cannot split (an unterminated quote, say) has no heredocs.
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let raw = LexOptions {
        raw_quotes: true,
        raw_escapes: true,
    };
    let Ok(words) = process_words(line, raw) else {
        return Ok(Vec::new());
    };
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Reads one word as a heredoc marker: `Ok(None)` when it is not one.
pub(super) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
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

    let cooked = LexOptions {
        raw_quotes: false,
        raw_escapes: false,
    };
    let words = process_words(rest, cooked)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw_words = process_words(
        rest,
        LexOptions {
            raw_quotes: true,
            raw_escapes: false,
        },
    )?;
    let [raw_name] = raw_words.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
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
