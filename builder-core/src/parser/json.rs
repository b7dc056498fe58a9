//! Exec-form detection: is an argument string a JSON array of strings?
//!
//! BuildKit decodes with Go's `encoding/json`, and the three outcomes differ
//! in what the Dockerfile means (exec form, shell form, or an error), so this
//! follows Go's decoder rather than a general JSON library: Go replaces lone
//! UTF-16 surrogates with U+FFFD instead of refusing them, refuses numbers
//! that overflow a float64, stops at 10,000 levels of nesting, and (as
//! docker 20.10's decoder reads one value) ignores text after the array.

/// How an argument string reads as JSON.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum JsonArgs {
    /// A JSON array whose elements are all strings.
    Strings(Vec<String>),
    /// Valid JSON array with an element that is not a string: an error.
    NotStrings,
    /// Not JSON (or not decodable): the caller falls back to shell form.
    Invalid,
}

/// Go's `encoding/json` nesting limit.
const MAX_DEPTH: usize = 10_000;

/// Reads `text` as BuildKit's `parseJSON` does (leading Unicode spaces
/// skipped, must start with `[`).
pub(super) fn parse_json_args(text: &str) -> JsonArgs {
    let text = text.trim_start_matches(super::gostr::is_space);
    if !text.starts_with('[') {
        return JsonArgs::Invalid;
    }
    let mut p = JsonReader {
        s: text.as_bytes(),
        pos: 0,
        bad_number: false,
    };
    match p.top_array() {
        Some(elements) if !p.bad_number => {
            let mut strings = Vec::with_capacity(elements.len());
            for e in elements {
                match e {
                    Some(s) => strings.push(s),
                    None => return JsonArgs::NotStrings,
                }
            }
            JsonArgs::Strings(strings)
        }
        _ => JsonArgs::Invalid,
    }
}

struct JsonReader<'a> {
    s: &'a [u8],
    pos: usize,
    /// A number that does not fit a float64: Go's decoder reports it as an
    /// error after reading the whole document.
    bad_number: bool,
}

impl JsonReader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The top-level array: each element is `Some(string)` or `None` for a
    /// non-string value. `None` overall means a syntax error.
    fn top_array(&mut self) -> Option<Vec<Option<String>>> {
        self.skip_ws();
        if !self.eat(b'[') {
            return None;
        }
        let mut out = Vec::new();
        self.skip_ws();
        if !self.eat(b']') {
            loop {
                self.skip_ws();
                if self.peek() == Some(b'"') {
                    out.push(Some(self.string()?));
                } else {
                    self.value(1)?;
                    out.push(None);
                }
                self.skip_ws();
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b']') {
                    break;
                }
                return None;
            }
        }
        // Whatever follows the array is never read: docker 20.10's
        // BuildKit decodes one value with `json.NewDecoder(..).Decode`, so
        // `CMD ["a"] # note` is exec form `a`. BuildKit 0.15 (dockerfile
        // 1.9, 80518e257) switched to `json.Unmarshal`, which makes such a
        // line shell form; kiln keeps the reference's meaning.
        Some(out)
    }

    /// Validates any JSON value, tracking nesting without recursion (so deep
    /// input cannot overflow the stack). `depth` is the nesting of the
    /// container the value sits in.
    fn value(&mut self, depth: usize) -> Option<()> {
        // Each entry: true for an object, false for an array.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            // Read one value start.
            self.skip_ws();
            match self.peek()? {
                b'{' | b'[' => {
                    let object = self.peek() == Some(b'{');
                    self.pos += 1;
                    stack.push(object);
                    if depth + stack.len() > MAX_DEPTH {
                        return None;
                    }
                    self.skip_ws();
                    let close = if object { b'}' } else { b']' };
                    if self.eat(close) {
                        stack.pop();
                    } else {
                        if object {
                            self.object_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // After a complete value: close containers or move to the next
            // element.
            loop {
                let Some(&object) = stack.last() else {
                    return Some(());
                };
                self.skip_ws();
                if self.eat(b',') {
                    if object {
                        self.skip_ws();
                        self.object_key()?;
                    }
                    break;
                }
                let close = if object { b'}' } else { b']' };
                if self.eat(close) {
                    stack.pop();
                    continue;
                }
                return None;
            }
        }
    }

    /// `"key" :` inside an object.
    fn object_key(&mut self) -> Option<()> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.string()?;
        self.skip_ws();
        if self.eat(b':') {
            Some(())
        } else {
            None
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        self.eat(b'-');
        if self.eat(b'0') {
            // A leading zero stands alone.
        } else if self.digits() == 0 {
            return None;
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let text = std::str::from_utf8(self.s.get(start..self.pos)?).ok()?;
        if text.parse::<f64>().map_or(true, f64::is_infinite) {
            self.bad_number = true;
        }
        Some(())
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.s.get(at..at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok()
    }

    /// A string literal, decoded the way Go's `unquote` does.
    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = self.peek()?;
            match b {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                0..=0x1f => return None,
                b'\\' => {
                    let esc = *self.s.get(self.pos + 1)?;
                    self.pos += 2;
                    let simple = match esc {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return None,
                    };
                    if let Some(c) = simple {
                        out.push(c);
                        continue;
                    }
                    let unit = self.hex4(self.pos)?;
                    self.pos += 4;
                    let c = if (0xd800..0xe000).contains(&unit) {
                        // A surrogate: combine with a following low
                        // surrogate escape, else U+FFFD (Go's choice).
                        let low = if self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
                            self.hex4(self.pos + 2)
                        } else {
                            None
                        };
                        match low {
                            Some(lo)
                                if (0xd800..0xdc00).contains(&unit)
                                    && (0xdc00..0xe000).contains(&lo) =>
                            {
                                self.pos += 6;
                                char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (lo - 0xdc00))
                                    .unwrap_or('\u{fffd}')
                            }
                            _ => '\u{fffd}',
                        }
                    } else {
                        char::from_u32(unit).unwrap_or('\u{fffd}')
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        // The input is a &str and we only split at ASCII bytes, so the bytes
        // are valid UTF-8; stay defensive anyway.
        Some(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::JsonArgs::{Invalid, NotStrings, Strings};
    use super::*;

    fn strings(v: &[&str]) -> JsonArgs {
        Strings(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn arrays_of_strings() {
        assert_eq!(parse_json_args("[]"), strings(&[]));
        assert_eq!(parse_json_args("[\"\"]"), strings(&[""]));
        assert_eq!(
            parse_json_args(" \t[ \"a\" ,\t\"b\"\t]\t"),
            strings(&["a", "b"])
        );
        assert_eq!(
            parse_json_args(r#"["\" \\ \/ \b \f \n \r \t \u0000 \u00e9"]"#),
            strings(&["\" \\ / \u{8} \u{c} \n \r \t \0 é"])
        );
        assert_eq!(
            parse_json_args(r#"["\ud83d\ude00"]"#),
            strings(&["\u{1f600}"])
        );
        // Lone surrogates become U+FFFD rather than an error, as in Go.
        assert_eq!(parse_json_args(r#"["\ud83d x"]"#), strings(&["\u{fffd} x"]));
        assert_eq!(
            parse_json_args(r#"["\ude00\ud83d"]"#),
            strings(&["\u{fffd}\u{fffd}"])
        );
        assert_eq!(
            parse_json_args(r#"["\ud83d\u0041"]"#),
            strings(&["\u{fffd}A"])
        );
    }

    #[test]
    fn non_strings_are_errors() {
        for input in [
            r#"["a",42,"b"]"#,
            r#"["a",123.456,"b"]"#,
            r#"["a",{},"b"]"#,
            r#"["a",{"c": "d"},"b"]"#,
            r#"["a",["c"],"b"]"#,
            r#"["a",true,"b"]"#,
            r#"["a",false,"b"]"#,
            r#"["a",null,"b"]"#,
            r#"[[[[{"a":[1,2,{"b":null}]}]]]]"#,
            "[-0.5e+3]",
        ] {
            assert_eq!(parse_json_args(input), NotStrings, "{input}");
        }
    }

    #[test]
    fn not_json_falls_back() {
        for input in [
            "",
            "echo hi",
            "['a']",
            "[\"a\"",
            "[\"a\",]",
            "[\"a\\x\"]",
            "[\"tab\there\"]",
            "[01]",
            "[1.]",
            "[1e]",
            "[1e999]",
            "[\"a\", -1e400]",
            "[{\"a\" 1}]",
            "[{1: 2}]",
            "[\u{b}\"a\"]",
            "[tru]",
            "[\"\\u12\"]",
        ] {
            assert_eq!(parse_json_args(input), Invalid, "{input:?}");
        }
    }

    #[test]
    fn text_after_the_array_is_not_read() {
        // docker 20.10 decodes one value and leaves the rest (kaniko's
        // Dockerfile_test_cmd: `ENTRYPOINT ["myentrypoint"] # comment`).
        assert_eq!(parse_json_args("[\"a\"] x"), strings(&["a"]));
        assert_eq!(parse_json_args("[\"a\"] # note"), strings(&["a"]));
        assert_eq!(parse_json_args("[\"a\"]]"), strings(&["a"]));
        assert_eq!(parse_json_args("[\"a\"],[1"), strings(&["a"]));
        assert_eq!(parse_json_args("[\"a\",1] x"), NotStrings);
        // The array itself must still be whole and valid.
        assert_eq!(parse_json_args("[\"a\" x]"), Invalid);
        assert_eq!(parse_json_args("[\"a\", -1e400] x"), Invalid);
    }

    #[test]
    fn nesting_limit_matches_go() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(parse_json_args(&deep(10_000)), NotStrings);
        assert_eq!(parse_json_args(&deep(10_001)), Invalid);
        assert_eq!(parse_json_args(&"[".repeat(200_000)), Invalid);
    }
}
