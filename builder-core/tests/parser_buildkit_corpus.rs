//! The parser against BuildKit's parser test data and real-world Dockerfiles
//! in the shared corpus (`../shared/corpus` beside the repository, or
//! `$KILN_SHARED_DIR/corpus`). The data is read in place, never copied here.
//!
//! When the corpus is absent the tests fail under CI (`CI=true`) and say so
//! loudly elsewhere.
use std::fs;
use std::path::{Path, PathBuf};

use builder_core::parser::{self, parse_heredoc, parse_str, Args};
use serde_json::Value;

fn corpus() -> Option<PathBuf> {
    let shared = match std::env::var_os("KILN_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    let corpus = shared.join("corpus");
    if corpus.join("buildkit-parser").is_dir() {
        return Some(corpus);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "shared corpus missing at {} (set KILN_SHARED_DIR)",
        corpus.display()
    );
    eprintln!(
        "NOT RUN: shared corpus missing at {} (set KILN_SHARED_DIR)",
        corpus.display()
    );
    None
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn golden_dumps_match() {
    let Some(corpus) = corpus() else { return };
    let dirs = subdirs(&corpus.join("buildkit-parser/testfiles"));
    assert_eq!(dirs.len(), 33);
    for dir in dirs {
        let input = fs::read(dir.join("Dockerfile")).unwrap();
        let want = fs::read_to_string(dir.join("result")).unwrap();
        let got = parser::parse(&input).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!(got.dump() + "\n", want, "{}", dir.display());
    }
}

#[test]
fn negatives_are_refused() {
    let Some(corpus) = corpus() else { return };
    let dirs = subdirs(&corpus.join("buildkit-parser/testfiles-negative"));
    assert_eq!(dirs.len(), 4);
    for dir in dirs {
        let input = fs::read(dir.join("Dockerfile")).unwrap();
        assert!(parser::parse(&input).is_err(), "{}", dir.display());
    }
}

#[test]
fn real_world_dockerfiles_parse() {
    let Some(corpus) = corpus() else { return };
    let dirs = subdirs(&corpus.join("realworld"));
    assert!(dirs.len() >= 50);
    for dir in dirs {
        let input = fs::read(dir.join("Dockerfile")).unwrap();
        if let Err(e) = parser::parse(&input) {
            panic!("{}: {e}", dir.display());
        }
    }
}

#[test]
fn instruction_line_spans() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("buildkit-parser/testfile-line");
    let df = parser::parse(&fs::read(dir.join("Dockerfile")).unwrap()).unwrap();
    let expected = fs::read_to_string(dir.join("expected-lines.txt")).unwrap();
    let mut children = 0;
    for line in expected.lines().filter(|l| l.starts_with("child")) {
        let mut parts = line.split_whitespace();
        let index: usize = parts.next().unwrap()["child".len()..].parse().unwrap();
        let start: usize = parts.next().unwrap().parse().unwrap();
        let end: usize = parts.next().unwrap().parse().unwrap();
        let span = df.nodes[index].span;
        assert_eq!((span.start_line, span.end_line), (start, end), "{line}");
        children += 1;
    }
    assert_eq!(children, df.nodes.len());
}

#[test]
fn heredocs_match_buildkit() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("buildkit-parser/extracted/heredoc");
    let text = fs::read_to_string(dir.join("Dockerfile")).unwrap();
    // BuildKit's parser keeps unknown instructions for a later stage to
    // refuse; ours refuses them at once. Swap the one such line for a
    // harmless instruction so the indices still line up.
    assert!(text.contains("\nINVALID\n"));
    let text = text.replace("\nINVALID\n", "\nUSER x\n");
    let df = parse_str(&text).unwrap();
    let expected = json(&dir.join("expected.json"));
    let cases = expected["expected"].as_array().unwrap();
    assert!(cases.len() > 20);
    for case in cases {
        let index = case["ast_child_index"].as_u64().unwrap() as usize;
        let want: Vec<(String, String, bool, bool, u64)> = case["heredocs"]
            .as_array()
            .map(|docs| {
                docs.iter()
                    .map(|h| {
                        (
                            h["Name"].as_str().unwrap().to_string(),
                            h["Content"].as_str().unwrap().to_string(),
                            h["Expand"].as_bool().unwrap_or(false),
                            h["Chomp"].as_bool().unwrap_or(false),
                            h["FileDescriptor"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let got: Vec<(String, String, bool, bool, u64)> = df.nodes[index]
            .heredocs
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    h.content.clone(),
                    h.expand,
                    h.chomp,
                    u64::from(h.file_descriptor),
                )
            })
            .collect();
        assert_eq!(got, want, "child {index}: {}", df.nodes[index].original);
    }

    let helpers = json(&dir.join("helpers.json"));
    for word in helpers["valid_name_EOF"].as_array().unwrap() {
        let word = word.as_str().unwrap();
        let doc = parse_heredoc(word)
            .unwrap()
            .unwrap_or_else(|| panic!("{word}"));
        assert_eq!(doc.name, "EOF", "{word}");
    }
    for word in helpers["invalid_error"].as_array().unwrap() {
        let word = word.as_str().unwrap();
        assert!(parse_heredoc(word).is_err(), "{word}");
    }
    for word in helpers["not_heredoc"].as_array().unwrap() {
        let word = word.as_str().unwrap();
        assert_eq!(parse_heredoc(word).unwrap(), None, "{word}");
    }
    for case in helpers["heredocs_from_line"].as_array().unwrap() {
        let line = case["line"].as_str().unwrap();
        let got = parser::heredocs_from_line(line).unwrap();
        // Like BuildKit's own test: every heredoc found has the listed name
        // (BuildKit's lexer finds none in `RUN <<- EOF`, which the list
        // names; its test only checks the ones found).
        let names = case["heredocNames"].as_array().cloned().unwrap_or_default();
        for (i, doc) in got.iter().enumerate() {
            assert_eq!(Some(doc.name.as_str()), names[i].as_str(), "{line}");
        }
    }
    for line in helpers["json_form_no_heredoc"].as_array().unwrap() {
        let text = format!("FROM a\n{}\n", line.as_str().unwrap());
        let df = parse_str(&text).unwrap();
        assert!(
            df.nodes[1].json && df.nodes[1].heredocs.is_empty(),
            "{text}"
        );
    }
}

#[test]
fn json_arrays() {
    let Some(corpus) = corpus() else { return };
    let cases = json(&corpus.join("buildkit-parser/extracted/json-arrays.json"));
    for case in cases["valid"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        let df = parse_str(&format!("FROM a\nCMD {input}\n")).unwrap();
        let want: Vec<String> = case["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert!(df.nodes[1].json, "{input}");
        assert_eq!(df.nodes[1].args, Args::Words(want), "{input}");
    }
    for case in cases["invalid"].as_array().unwrap() {
        let input = case.as_str().unwrap();
        assert!(
            parse_str(&format!("FROM a\nCMD {input}\n")).is_err(),
            "{input}"
        );
    }
}

#[test]
fn parse_words() {
    let Some(corpus) = corpus() else { return };
    let cases = json(&corpus.join("buildkit-parser/extracted/parse-words.json"));
    for case in cases["cases"].as_array().unwrap() {
        let input = case["input"][0].as_str().unwrap();
        // ARG keeps BuildKit's words whole, so its dump shows them.
        let df = parse_str(&format!("ARG {input}\n")).unwrap();
        let want: Vec<String> = case["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| parser::go_quote(s.as_str().unwrap()))
            .collect();
        assert_eq!(
            df.nodes[0].dump(),
            format!("arg {}", want.join(" ")),
            "{input}"
        );
    }
}

#[test]
fn empty_continuation_warnings() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("buildkit-parser/extracted/empty-continuation");
    let df = parser::parse(&fs::read(dir.join("Dockerfile")).unwrap()).unwrap();
    assert_eq!(df.warnings.len(), 2);
    assert!(df.warnings[0]
        .message
        .contains("Empty continuation line found in: RUN something     following     more"));
    assert!(df.warnings[1].message.contains("RUN another     thing"));
    let runs: Vec<String> = df.nodes.iter().skip(1).map(|n| n.dump()).collect();
    assert_eq!(runs[3], "run \"non-indented    after-comment\"");
    assert_eq!(runs[4], "run \"indented     comment\"");
}
