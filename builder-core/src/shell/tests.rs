//! Our own vectors for every expansion form and error.
use std::collections::BTreeMap;

use super::*;

fn env() -> BTreeMap<String, String> {
    [
        ("NAME", "kiln"),
        ("EMPTY", ""),
        ("PATHV", "/usr/local/bin:/usr/bin"),
        ("FILE", "archive.tar.gz"),
        ("SP", " a  b "),
        ("GLOB", "x*y"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn word(s: &str) -> Result<String, ShellError> {
    Lexer::new('\\').process_word(s, &env())
}

fn ok(s: &str) -> String {
    match word(s) {
        Ok(w) => w,
        Err(e) => panic!("{s:?} failed: {e}"),
    }
}

fn err(s: &str) -> String {
    match word(s) {
        Ok(w) => panic!("{s:?} should fail, gave {w:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn plain_and_quoted() {
    assert_eq!(ok("abc"), "abc");
    assert_eq!(ok("a'b c'd"), "ab cd");
    assert_eq!(ok("\"a $NAME\""), "a kiln");
    assert_eq!(ok("'a $NAME'"), "a $NAME");
    assert_eq!(ok("a\\ b"), "a b");
    assert_eq!(ok("\"q\\\"q\""), "q\"q");
    assert_eq!(ok("\"back\\slash\""), "back\\slash");
    assert_eq!(ok("end\\"), "end");
}

#[test]
fn unterminated_quotes() {
    assert!(err("'open").contains("matching single-quote"));
    assert!(err("\"open").contains("matching double-quote"));
    assert!(err("\"open\\\"").contains("matching double-quote"));
}

#[test]
fn simple_variables() {
    assert_eq!(ok("$NAME-x"), "kiln-x");
    assert_eq!(ok("${NAME}x"), "kilnx");
    assert_eq!(ok("$NOPE."), ".");
    assert_eq!(ok("a$"), "a$");
    assert_eq!(ok("$/"), "$/");
    assert_eq!(ok("\\$NAME"), "$NAME");
    assert_eq!(ok("$7x"), "x");
    assert_eq!(ok("$$"), "");
}

#[test]
fn default_and_alternative() {
    assert_eq!(ok("${NOPE:-dflt}"), "dflt");
    assert_eq!(ok("${EMPTY:-dflt}"), "dflt");
    assert_eq!(ok("${EMPTY-dflt}"), "");
    assert_eq!(ok("${NOPE-dflt}"), "dflt");
    assert_eq!(ok("${NAME:-dflt}"), "kiln");
    assert_eq!(ok("${NAME:+alt}"), "alt");
    assert_eq!(ok("${EMPTY:+alt}"), "");
    assert_eq!(ok("${EMPTY+alt}"), "alt");
    assert_eq!(ok("${NOPE+alt}"), "");
    assert_eq!(ok("${NOPE:-${NAME}-$NAME}"), "kiln-kiln");
    assert_eq!(ok("${NOPE:-a b}"), "a b");
}

#[test]
fn required_variables() {
    assert_eq!(ok("${NAME:?gone}"), "kiln");
    assert_eq!(ok("${EMPTY?gone}"), "");
    assert!(err("${EMPTY:?need it}").contains("EMPTY: need it"));
    assert!(err("${EMPTY:?}").contains("EMPTY: is not allowed to be empty"));
    assert!(err("${NOPE?}").contains("NOPE: is not allowed to be unset"));
    assert!(err("${NOPE?because $NAME}").contains("NOPE: because kiln"));
}

#[test]
fn prefix_and_suffix_removal() {
    assert_eq!(ok("${FILE#*.}"), "tar.gz");
    assert_eq!(ok("${FILE##*.}"), "gz");
    assert_eq!(ok("${FILE%.*}"), "archive.tar");
    assert_eq!(ok("${FILE%%.*}"), "archive");
    assert_eq!(ok("${FILE%.?z}"), "archive.tar");
    assert_eq!(ok("${PATHV#/usr/}"), "local/bin:/usr/bin");
    assert_eq!(ok("${GLOB#x\\*}"), "y");
    assert_eq!(ok("${NOPE#x}"), "");
    assert!(err("${FILE:#x}").contains("unsupported modifier (:#)"));
    assert!(err("${FILE:%x}").contains("unsupported modifier (:%)"));
    assert!(err("${FILE#\\q}").contains("invalid escape"));
}

#[test]
fn substitution() {
    assert_eq!(ok("${PATHV/usr/opt}"), "/opt/local/bin:/usr/bin");
    assert_eq!(ok("${PATHV//usr/opt}"), "/opt/local/bin:/opt/bin");
    assert_eq!(ok("${PATHV//:/ }"), "/usr/local/bin /usr/bin");
    assert_eq!(ok("${FILE/.*/}"), "archive");
    assert_eq!(ok("${FILE/a?c/X}"), "Xhive.tar.gz");
    assert_eq!(ok("${NOPE/a/b}"), "");
    assert_eq!(ok("${NAME/\\}/x}"), "kiln");
    assert!(err("${NAME/abc}").contains("missing '/'"));
    assert!(err("${NAME/a/b").contains("missing '}'"));
}

#[test]
fn syntax_errors() {
    assert!(err("${").contains("missing '}'"));
    assert!(err("${}").contains("bad substitution"));
    assert!(err("${:-x}").contains("bad substitution"));
    assert!(err("${{x}").contains("bad substitution"));
    assert!(err("${NAME").contains("unsupported modifier"));
    assert!(err("${NAME:-x").contains("missing '}'"));
    assert!(err("${NAME=x}").contains("unsupported modifier (=)"));
    assert!(err("${NAME:=x}").contains("unsupported modifier (:=)"));
    assert!(err("${NAME^}").contains("unsupported modifier (^)"));
    // The message names the word as written.
    assert!(err("a${}").starts_with("failed to process \"a${}\""));
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let deep = "${a:-".repeat(5000) + &"}".repeat(5000);
    assert!(err(&deep).contains("nested too deeply"));
    let fine = "${a:-".repeat(20) + "x" + &"}".repeat(20);
    assert_eq!(ok(&fine), "x");
}

#[test]
fn backtick_escape() {
    let lx = Lexer::new('`');
    assert_eq!(lx.process_word("a`$NAME", &env()).unwrap(), "a$NAME");
    assert_eq!(lx.process_word("c:\\dir", &env()).unwrap(), "c:\\dir");
    assert_eq!(lx.process_word("\"q`\"q\"", &env()).unwrap(), "q\"q");
}

#[test]
fn words_split_after_expansion() {
    let lx = Lexer::new('\\');
    let e = env();
    assert_eq!(
        lx.process_words("80 443/udp", &e).unwrap(),
        ["80", "443/udp"]
    );
    assert_eq!(
        lx.process_words("x${SP}y", &e).unwrap(),
        ["x", "a", "b", "y"]
    );
    assert_eq!(lx.process_words("\"x${SP}y\"", &e).unwrap(), ["x a  b y"]);
    assert_eq!(lx.process_words("a\\ b c", &e).unwrap(), ["a b", "c"]);
    assert_eq!(lx.process_words("  ", &e).unwrap(), Vec::<String>::new());
    // BuildKit's shared split buffer: a `${v:-w}` form empties the word
    // gathered so far.
    assert_eq!(lx.process_words("8${NOPE:-0}", &e).unwrap(), ["0"]);
    assert!(lx.process_words("'x", &e).is_err());
}

#[test]
fn heredoc_markers_stay_whole() {
    let lx = Lexer::new('\\');
    assert_eq!(
        lx.process_words("cat << EOF", &EmptyEnv).unwrap(),
        ["cat", "<< EOF"]
    );
    assert_eq!(lx.process_words("a<b", &EmptyEnv).unwrap(), ["a<b"]);
}

#[test]
fn matches_are_tracked() {
    let lx = Lexer::new('\\');
    let r = lx
        .process_word_with_matches("$NAME ${NOPE:-$EMPTY} ${X+y}", &env())
        .unwrap();
    assert_eq!(r.word, "kiln  ");
    assert_eq!(r.matched.iter().collect::<Vec<_>>(), ["EMPTY", "NAME"]);
    assert_eq!(r.unmatched.iter().collect::<Vec<_>>(), ["NOPE", "X"]);
}

#[test]
fn options() {
    let e = env();
    let mut lx = Lexer::new('\\');
    lx.skip_process_quotes = true;
    assert_eq!(
        lx.process_word("'$NAME' \"x\"", &e).unwrap(),
        "'kiln' \"x\""
    );
    let mut lx = Lexer::new('\\');
    lx.raw_quotes = true;
    assert_eq!(lx.process_word("'a'\"b\"", &e).unwrap(), "'a'\"b\"");
    let mut lx = Lexer::new('\\');
    lx.skip_unset_env = true;
    assert_eq!(
        lx.process_word("$NOPE ${NOPE} ${NOPE:-x} ${NOPE/a/b} $NAME", &e)
            .unwrap(),
        "$NOPE ${NOPE} ${NOPE:-x} ${NOPE/a/b} kiln"
    );
    let mut lx = Lexer::new('\\');
    lx.raw_escapes = true;
    assert_eq!(lx.process_word("a\\ b", &e).unwrap(), "a\\ b");
}

#[test]
fn env_sources_agree() {
    let list = vec![
        ("A".to_string(), "1".to_string()),
        ("A".to_string(), "2".to_string()),
    ];
    assert_eq!(Lexer::new('\\').process_word("$A", &list).unwrap(), "2");
    let map: std::collections::HashMap<String, String> = list.into_iter().collect();
    assert_eq!(Lexer::new('\\').process_word("${A:-x}", &map).unwrap(), "2");
    assert_eq!(
        Lexer::new('\\').process_word("${A:-x}", &EmptyEnv).unwrap(),
        "x"
    );
}

#[test]
fn leading_byte_order_mark_is_dropped() {
    assert_eq!(ok("\u{feff}x"), "x");
    assert_eq!(ok("x\u{feff}"), "x\u{feff}");
}

#[test]
fn nested_replacement_growth_is_bounded() {
    // Each `${SP///...}` puts its replacement between every character, so
    // nesting multiplies the size; the limit turns that into an error.
    let mut bomb = "x".to_string();
    for _ in 0..12 {
        bomb = format!("${{SP///{bomb}}}");
    }
    let started = std::time::Instant::now();
    let e = err(&bomb);
    assert!(e.contains("expansion result exceeds 262144 bytes"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // A large input may expand to twice its size.
    let big = "$NAME".repeat(100_000);
    assert_eq!(ok(&big).len(), 400_000);
}
