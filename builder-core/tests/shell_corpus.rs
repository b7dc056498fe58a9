//! Runs BuildKit's shell-lexer vectors from the shared reference corpus
//! (`../shared/corpus/shell` next to the repository) through our lexer.
//!
//! The corpus is read, never copied into the repository. Under CI
//! (`CI=true`) a missing corpus is a failure; on a developer machine without
//! it the test says so and checks nothing else.
use std::collections::BTreeMap;
use std::path::PathBuf;

use builder_core::shell::Lexer;

fn corpus_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut candidates = Vec::new();
    if let Some(d) = std::env::var_os("KILN_SHARED_DIR") {
        candidates.push(PathBuf::from(d));
    }
    candidates.push(root.join("../shared"));
    // Worktrees sit one level deeper than the main checkout.
    candidates.push(root.join("../../shared"));
    let found = candidates
        .into_iter()
        .map(|d| d.join("corpus/shell"))
        .find(|d| d.join("envVarTest").is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "shared corpus ../shared/corpus/shell is missing under CI"
        );
        eprintln!("shared corpus not found; set KILN_SHARED_DIR to run the BuildKit vectors");
    }
    found
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_var_vectors() {
    let Some(dir) = corpus_dir() else { return };
    let text = std::fs::read_to_string(dir.join("envVarTest")).unwrap();
    let env = strings(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]);
    let lx = Lexer::new('\\');
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, '|');
        let (Some(plat), Some(input), Some(expected)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("bad vector line {line:?}");
        };
        if plat.trim() == "W" {
            continue;
        }
        let (input, expected) = (input.trim(), expected.trim());
        let got = lx.process_word(input, &env);
        checked += 1;
        match (expected, got) {
            ("error", Err(_)) => {}
            ("error", Ok(w)) => failures.push(format!("{input:?}: expected error, got {w:?}")),
            (exp, Ok(w)) if w == exp => {}
            (exp, got) => failures.push(format!("{input:?}: expected {exp:?}, got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 200, "only {checked} vectors read");
}

#[test]
fn words_vectors() {
    let Some(dir) = corpus_dir() else { return };
    let text = std::fs::read_to_string(dir.join("wordsTest")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for mode in [false, true] {
        let mut lx = Lexer::new('\\');
        // BuildKit runs the same file a second time with these options and
        // expects identical results.
        lx.raw_quotes = mode;
        lx.skip_unset_env = mode;
        let mut env = BTreeMap::new();
        for line in text.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(kv) = line.strip_prefix("ENV ") {
                let (k, v) = kv.split_once('=').unwrap();
                env.insert(k.to_string(), v.to_string());
                continue;
            }
            let (input, expected) = line.split_once('|').unwrap();
            // BuildKit's harness trims only the left of the expectation:
            // trailing spaces are part of the last word.
            let (input, expected) = (input.trim(), expected.trim_start());
            // Under skip_unset_env an unset reference stays as written, so
            // the second run can only agree where every variable is set.
            if mode
                && Lexer::new('\\')
                    .process_word_with_matches(input, &env)
                    .is_ok_and(|r| !r.unmatched.is_empty())
            {
                continue;
            }
            let got = lx.process_words(input, &env);
            checked += 1;
            let ok = match (&got, expected) {
                (Err(_), "error") => true,
                (Ok(words), exp) if exp != "error" => {
                    let unquote = |w: &str| {
                        if mode {
                            w.replace(['"', '\''], "")
                        } else {
                            w.to_string()
                        }
                    };
                    let want: Vec<String> = exp.split(',').map(unquote).collect();
                    // Raw-quote mode keeps the quotes; compare without them.
                    let have: Vec<String> = words.iter().map(|w| unquote(w)).collect();
                    have == want
                }
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "mode {mode}: {input:?}: expected {expected:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(checked > 40, "only {checked} vectors read");
}

#[test]
fn process_word_cases() {
    let Some(dir) = corpus_dir() else { return };
    let text = std::fs::read_to_string(dir.join("process-word-cases.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let lx = Lexer::new('\\');
    let mut checked = 0;
    let mut failures = Vec::new();
    for (group, cases) in doc.as_object().unwrap() {
        let Some(cases) = cases.as_array() else {
            continue;
        };
        for case in cases {
            let input = case["input"].as_str().unwrap();
            let env: BTreeMap<String, String> = case["envs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let got = lx.process_word_with_matches(input, &env);
            checked += 1;
            if case["expect_error"].as_bool() == Some(true) {
                match got {
                    Err(e) => {
                        if let Some(sub) = case["error_contains"].as_str() {
                            if !e.to_string().contains(sub) {
                                failures
                                    .push(format!("{group} {input:?}: error {e} lacks {sub:?}"));
                            }
                        }
                    }
                    Ok(r) => failures.push(format!(
                        "{group} {input:?}: expected error, got {:?}",
                        r.word
                    )),
                }
                continue;
            }
            let expected = case["expected"].as_str().unwrap();
            match got {
                Ok(r) if r.word == expected => {
                    for (key, set) in [("matched", &r.matched), ("unmatched", &r.unmatched)] {
                        let want: Vec<&str> = case[key]
                            .as_array()
                            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                            .unwrap_or_default();
                        // The extracted vectors list names only where the
                        // source test checked them.
                        if !want.is_empty() && want.iter().any(|w| !set.contains(*w)) {
                            failures
                                .push(format!("{group} {input:?}: {key} {set:?}, want {want:?}"));
                        }
                    }
                }
                other => failures.push(format!(
                    "{group} {input:?}: expected {expected:?}, got {other:?}"
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 50, "only {checked} cases read");
}
