//! Our own .dockerignore vectors: one test per rule of the reading and
//! matching semantics, including the cases where gitignore differs.
use std::path::Path;

use builder_core::context::ignore::read_patterns;
use builder_core::context::{IgnoreError, IgnoreRules};

fn rules(text: &str) -> IgnoreRules {
    IgnoreRules::parse(Path::new(".dockerignore"), text.as_bytes()).unwrap()
}

fn excluded(text: &str, path: &str) -> bool {
    rules(text).decide(path).excluded
}

#[test]
fn reading_strips_bom_comments_whitespace_and_cleans() {
    let text =
        "\u{feff}# comment\n  spaced.txt  \n\n #not-a-comment\n/abs/path\nd/./e/../f/\n!  keep\r\n";
    let got: Vec<(usize, String)> = read_patterns(text.as_bytes());
    assert_eq!(
        got,
        vec![
            (2, "spaced.txt".to_string()),
            (4, "#not-a-comment".to_string()),
            (5, "abs/path".to_string()),
            (6, "d/f".to_string()),
            (7, "!keep".to_string()),
        ]
    );
    // Only the first line's BOM is special.
    assert_eq!(read_patterns("a\n\u{feff}b".as_bytes())[1].1, "\u{feff}b");
    // A lone `/` stays (Clean gives `/`, too short to lose its slash).
    assert_eq!(read_patterns(b"/")[0].1, "/");
}

#[test]
fn invalid_pattern_names_file_and_line() {
    let err = IgnoreRules::parse(Path::new("ctx/.dockerignore"), b"ok\n# c\n[\n").unwrap_err();
    match &err {
        IgnoreError::BadPattern { path, line, text } => {
            assert_eq!(path, Path::new("ctx/.dockerignore"));
            assert_eq!(*line, 3);
            assert_eq!(text, "[");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("ctx/.dockerignore:3"));
    assert!(IgnoreRules::parse(Path::new("x"), b"!\n").is_err());
    assert!(IgnoreRules::parse(Path::new("x"), b"a[x-]\n").is_err());
}

#[test]
fn anchored_at_the_root_unlike_gitignore() {
    // gitignore's `*.log` matches at any depth; Docker's only at the root.
    assert!(excluded("*.log", "b.log"));
    assert!(!excluded("*.log", "a/b.log"));
    // `node_modules` names the root one only.
    assert!(excluded("node_modules", "node_modules/x/y.js"));
    assert!(!excluded("node_modules", "web/node_modules/x.js"));
    assert!(excluded("**/node_modules", "web/node_modules/x.js"));
    // A leading slash means the same thing.
    assert!(excluded("/a/b", "a/b"));
}

#[test]
fn star_and_question_stay_within_an_element() {
    assert!(excluded("a/*/c", "a/b/c"));
    assert!(!excluded("a/*/c", "a/b/x/c"));
    assert!(excluded("a?c", "abc"));
    assert!(!excluded("a?c", "a/c"));
    assert!(!excluded("*", "")); // the root itself is never excluded
}

#[test]
fn classes_and_escapes() {
    assert!(excluded("file[0-9].txt", "file7.txt"));
    assert!(!excluded("file[0-9].txt", "filex.txt"));
    assert!(excluded("file[^0-9].txt", "filex.txt"));
    assert!(excluded(r"\*star", "*star"));
    assert!(!excluded(r"\*star", "xstar"));
    assert!(excluded(r"q\?", "q?"));
    assert!(!excluded(r"q\?", "qx"));
}

#[test]
fn double_star() {
    assert!(excluded("**/*.o", "x.o"));
    assert!(excluded("**/*.o", "a/b/c/x.o"));
    assert!(excluded("a/**/z", "a/z"));
    assert!(excluded("a/**/z", "a/b/c/z"));
    assert!(!excluded("a/**/z", "b/a/z"));
    // A trailing `**` is a prefix: everything below, not the directory.
    assert!(excluded("build/**", "build/out/x"));
    assert!(!excluded("build/**", "build"));
    // `**` is `(.*/)?`: a leading one spans whole directories only.
    assert!(!excluded("**.bak", "deep/dir/x.bak"));
    assert!(excluded("**.bak", "deep/dir/.bak"));
}

#[test]
fn last_match_wins() {
    assert!(!excluded("*.md\n!README.md", "README.md"));
    assert!(excluded("!README.md\n*.md", "README.md"));
    assert!(excluded("*.md\n!README.md\nREADME*", "README.md"));
}

#[test]
fn directory_match_excludes_everything_below() {
    assert!(excluded("docs", "docs/a/b/c.txt"));
    assert!(excluded("d*", "docs/a/b/c.txt"));
    assert!(!excluded("docs/*.txt", "docs/a/c.txt"));
}

#[test]
fn exception_reincludes_below_an_excluded_directory() {
    let text = "docs\n!docs/keep/me.txt";
    assert!(!excluded(text, "docs/keep/me.txt"));
    assert!(excluded(text, "docs/other.txt"));
    assert!(excluded(text, "docs/keep/other.txt"));
}

#[test]
fn why_points_at_the_deciding_rule() {
    let r = rules("# c\n*.log\n!keep.log\n");
    let d = r.decide("keep.log");
    assert!(!d.excluded);
    assert_eq!(
        r.describe(d.rule.unwrap()).unwrap(),
        ".dockerignore:3: !keep.log"
    );
    let d = r.decide("x.log");
    assert_eq!(
        r.describe(d.rule.unwrap()).unwrap(),
        ".dockerignore:2: *.log"
    );
    assert_eq!(r.decide("x.txt").rule, None);
}

#[test]
fn pruning_follows_the_reference_walk() {
    // An excluded directory is entered only where an exception's text
    // starts with its path; wildcards earn nothing.
    let r = rules("a\nb\n!a/keep");
    assert!(r.must_descend_excluded("a"));
    assert!(!r.must_descend_excluded("b"));
    let r = rules("a\nb\n!**/keep\n!*/keep");
    assert!(!r.must_descend_excluded("b"));
    assert!(!r.visible("b/keep", false));
    assert!(rules("**\n!*/keep").must_descend_excluded("*"));
    // No exceptions at all: never descend.
    assert!(!rules("a").must_descend_excluded("a"));
}

#[test]
fn visible_checks_every_parent() {
    let r = rules("d\n!d/f\nd");
    // The last rule matches `d/f` through its parent `d`.
    assert!(r.decide("d/f").excluded);
    assert!(!r.visible("d/f", false));
    // `d` itself is entered and listed for the exception below it.
    assert!(r.visible("d", true));
    assert!(!r.visible("d", false));
    let r = rules("docs\n!docs/keep/me.txt");
    assert!(r.visible("docs/keep", true));
    assert!(r.visible("docs/keep/me.txt", false));
    assert!(!r.visible("docs/keep/other.txt", false));
    assert!(r.visible("", true));
}
