//! Checks our .dockerignore handling against moby's own tables and
//! BuildKit's scenarios in the shared corpus (`../shared/corpus` beside
//! the repository; never copied into it). Under CI the corpus must exist.
use std::path::{Path, PathBuf};

use builder_core::context::ignore::read_patterns;
use builder_core::context::{
    BuildContext, ContextError, ContextSource, DockerfileFlag, IgnoreError, IgnoreRules,
    WalkOptions,
};

fn corpus() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The main checkout has shared/ beside it; a worktree one level deeper.
    for rel in [
        "../shared/corpus/dockerignore",
        "../../shared/corpus/dockerignore",
    ] {
        let dir = repo.join(rel);
        if dir.is_dir() {
            return Some(dir);
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "../shared/corpus/dockerignore is missing: CI must provide it"
    );
    eprintln!("shared corpus not found next to the repository; skipping outside CI");
    None
}

fn data_lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .map(|l| l.split('\t').collect())
}

const PROXY_WHL: &str = "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl";

/// (patterns joined by ` ;; `, path, the reference's answer) for the
/// table rows where docker 20.10 differs from newer patternmatcher: its
/// parent check uses one cut of the path (`**/dir` misses `dir/file`),
/// and `( ) | + { }` keep their regex meaning.
const REFERENCE_DIFFERS: &[(&str, &str, &str)] = &[
    ("**/dir", "dir/file", "false"),
    ("a(b)c/def", "a(b)c/def", "false"),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", "error"),
    (PROXY_WHL, PROXY_WHL, "false"),
    (
        "** ;; !dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        PROXY_WHL,
        "true",
    ),
];

#[test]
fn patternmatcher_match_table() {
    let Some(dir) = corpus() else { return };
    let text = std::fs::read_to_string(dir.join("patternmatcher_matches.tsv")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for cols in data_lines(&text) {
        let [patterns, path, expected, ..] = cols[..] else {
            panic!("bad row {cols:?}")
        };
        let patterns: Vec<&str> = if patterns.is_empty() {
            Vec::new()
        } else {
            patterns.split(" ;; ").collect()
        };
        let got = match IgnoreRules::from_patterns(&patterns) {
            Err(_) => "error".to_string(),
            Ok(rules) => rules.decide(path).excluded.to_string(),
        };
        // Rows where moby's newer patternmatcher and the reference (docker
        // 20.10's fileutils) disagree: we answer as the reference does.
        let expected = REFERENCE_DIFFERS
            .iter()
            .find(|(p, f, _)| *p == patterns.join(" ;; ") && *f == path)
            .map_or(expected, |(_, _, answer)| *answer);
        if got != expected {
            failures.push(format!("{patterns:?} {path:?}: want {expected}, got {got}"));
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} rows");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ignorefile_read_all() {
    let Some(dir) = corpus() else { return };
    let dir = dir.join("ignorefile-readall");
    let raw = std::fs::read(dir.join("dockerignore")).unwrap();
    let expected = std::fs::read_to_string(dir.join("expected-patterns.txt")).unwrap();
    let got: Vec<String> = read_patterns(&raw).into_iter().map(|(_, p)| p).collect();
    let want: Vec<&str> = expected.lines().collect();
    assert_eq!(got, want);
}

fn listed(dir: &Path, flag: DockerfileFlag) -> Vec<String> {
    let ctx = BuildContext::open(
        &ContextSource::Dir(dir.to_path_buf()),
        &flag,
        &mut std::io::empty(),
    )
    .unwrap();
    let listing = ctx.walk(&WalkOptions::default()).unwrap();
    listing
        .nodes
        .iter()
        .map(|n| n.path.display().to_string())
        .collect()
}

#[test]
fn buildkit_scenarios() {
    let Some(dir) = corpus() else { return };
    let dir = dir.join("buildkit-scenarios");

    // 01: `ba*` then `!bay`; the Dockerfile and .dockerignore excluded by name.
    assert_eq!(
        listed(&dir.join("01-basic"), DockerfileFlag::Default),
        ["bay", "expect.txt", "foo"]
    );

    // 02: a bare `!` fails the build, naming the file and line.
    let err = BuildContext::open(
        &ContextSource::Dir(dir.join("02-invalid")),
        &DockerfileFlag::Default,
        &mut std::io::empty(),
    )
    .unwrap_err();
    match err {
        ContextError::Ignore(IgnoreError::BadPattern { path, line, .. }) => {
            assert!(path.ends_with(".dockerignore"));
            assert_eq!(line, 1);
        }
        other => panic!("unexpected {other}"),
    }

    // 03: `<Dockerfile>.dockerignore` replaces the root one.
    let d3 = dir.join("03-per-dockerfile-override");
    let one = listed(&d3, DockerfileFlag::Path(d3.join("Dockerfile")));
    assert!(one.contains(&"foo".to_string()) && !one.contains(&"bar".to_string()));
    let two = listed(&d3, DockerfileFlag::Path(d3.join("Dockerfile2")));
    assert!(!two.contains(&"foo".to_string()) && two.contains(&"bar".to_string()));
}
