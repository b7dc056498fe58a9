//! The parser against our own fixtures in `testdata/parser/`, plus the
//! details the dump format does not show (heredoc bodies, spans, comments,
//! directives, warnings).
use std::fs;
use std::path::{Path, PathBuf};

use builder_core::parser::{
    self, chomp_heredoc_content, parse_heredoc, parse_str, render_snippet, Args, Dockerfile,
    ParseErrorKind,
};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/parser")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "Dockerfile"))
        .collect();
    files.sort();
    assert!(files.len() > 10, "too few fixtures in {}", dir.display());
    files
}

fn ok(name: &str) -> Dockerfile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/parser/ok")
        .join(format!("{name}.Dockerfile"));
    parser::parse(&fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn ok_fixtures_dump_as_expected() {
    for path in fixtures("ok") {
        let input = fs::read(&path).unwrap();
        let parsed = parser::parse(&input).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let want = fs::read_to_string(path.with_extension("dump")).unwrap();
        assert_eq!(parsed.dump() + "\n", want, "{}", path.display());
    }
}

#[test]
fn err_fixtures_fail_where_expected() {
    for path in fixtures("err") {
        let input = fs::read(&path).unwrap();
        let err = match parser::parse(&input) {
            Ok(_) => panic!("{}: parsed", path.display()),
            Err(e) => e,
        };
        let want = fs::read_to_string(path.with_extension("expected")).unwrap();
        let got = format!("{}:{} {}\n", err.line, err.column, err.kind);
        assert_eq!(got, want, "{}", path.display());
        // The quoted text is the line pointed at.
        let text = String::from_utf8_lossy(&input);
        let line = text
            .trim_start_matches('\u{feff}')
            .split('\n')
            .nth(err.line - 1)
            .unwrap_or("")
            .trim_end_matches('\r');
        if err.kind != ParseErrorKind::InvalidUtf8 {
            assert_eq!(err.line_text, line, "{}", path.display());
        }
    }
}

#[test]
fn over_long_line_is_refused_after_earlier_errors() {
    let long = format!("FROM alpine\nLABEL a={}\n", "x".repeat(65536));
    let err = parse_str(&long).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::LineTooLong);
    assert_eq!(err.line, 2);
    // The limit counts the newline: 65,535 characters and a newline fit.
    let fits = format!("FROM {}\n", "x".repeat(65535 - 5));
    assert!(parse_str(&fits).is_ok());
    let too_long = format!("FROM {}\n", "x".repeat(65536 - 5));
    assert_eq!(
        parse_str(&too_long).unwrap_err().kind,
        ParseErrorKind::NoInstructions
    );
    // Errors before the long line win.
    let early = format!("FROM alpine\nENV x\n{}\n", "y".repeat(70000));
    assert_eq!(
        parse_str(&early).unwrap_err().kind,
        ParseErrorKind::MissingValue("ENV".into())
    );
}

#[test]
fn heredoc_bodies_and_flags() {
    let df = ok("heredocs");
    let docs = |i: usize| {
        df.nodes[i]
            .heredocs
            .iter()
            .map(|h| {
                (
                    h.name.as_str(),
                    h.content.as_str(),
                    h.expand,
                    h.chomp,
                    h.file_descriptor,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(docs(0), []);
    assert_eq!(docs(1), [("EOF", "echo hello\n", true, false, 0)]);
    assert_eq!(
        docs(2),
        [("EOT", "\techo tabs stripped later\n", true, true, 0)]
    );
    assert_eq!(
        chomp_heredoc_content(&df.nodes[2].heredocs[0].content),
        "echo tabs stripped later\n"
    );
    assert_eq!(
        docs(3),
        [
            ("RAW", "echo $NOT_EXPANDED\n", false, false, 0),
            ("ALSO", "data\n", false, false, 3)
        ]
    );
    assert_eq!(
        docs(4),
        [(
            "EOF",
            "#!/usr/bin/env python3\nprint(\"hi\")\n",
            true,
            false,
            0
        )]
    );
    assert_eq!(
        docs(5),
        [("A", "a\n", true, false, 0), ("B", "b\n", true, false, 0)]
    );
    // ONBUILD: the heredoc hangs on the ONBUILD node, as in BuildKit.
    assert_eq!(docs(6), [("EOF", "echo later\n", true, false, 0)]);
    assert!(matches!(&df.nodes[6].args, Args::Nested(child) if child.keyword == "run"));
    // Exec form and quoted markers are not heredocs.
    assert_eq!(docs(7), []);
    assert!(df.nodes[7].json);
    assert_eq!(docs(8), []);
    assert_eq!(docs(9), [("EOF", "", true, false, 0)]);
    assert_eq!(df.nodes.len(), 10);
}

#[test]
fn heredoc_word_helper() {
    let h = parse_heredoc("<<-\"EOF\"").unwrap().unwrap();
    assert_eq!((h.name.as_str(), h.chomp, h.expand), ("EOF", true, false));
    assert_eq!(parse_heredoc("<<<EOF").unwrap(), None);
    assert!(matches!(
        parse_heredoc("<<'EOF"),
        Err(ParseErrorKind::Heredoc(_))
    ));
}

#[test]
fn heredoc_with_crlf_keeps_line_endings() {
    let df = parse_str("FROM a\r\nRUN <<EOF\r\nx\r\nEOF\r\n").unwrap();
    assert_eq!(df.nodes[1].heredocs[0].content, "x\r\n");
}

#[test]
fn spans_cover_continuations_and_heredocs() {
    let df = ok("heredocs");
    let spans: Vec<_> = df
        .nodes
        .iter()
        .map(|n| {
            (
                n.span.start_line,
                n.span.start_col,
                n.span.end_line,
                n.span.end_col,
            )
        })
        .collect();
    assert_eq!(spans[0], (1, 1, 1, 12));
    assert_eq!(spans[1], (2, 1, 4, 4));
    assert_eq!(spans[2], (5, 1, 7, 5));
    assert_eq!(spans[3], (8, 1, 12, 5));

    let df = parse_str("FROM a\n\n   RUN x \\\n\n  # c\n  y\nCMD z").unwrap();
    let n = &df.nodes[1];
    assert_eq!((n.span.start_line, n.span.start_col), (3, 4));
    assert_eq!((n.span.end_line, n.span.end_col), (6, 4));
    assert_eq!(n.original, "RUN x   y");
    assert_eq!(df.nodes[2].span.start_line, 7);
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].line, 6);
    assert_eq!(
        df.warnings[0].message,
        "Empty continuation line found in: RUN x   y"
    );
}

#[test]
fn comments_attach_to_the_next_instruction() {
    let df = ok("comments");
    assert_eq!(df.nodes[0].comments, ["about the base"]);
    // BuildKit drops only the first byte of a comment line, so an indented
    // comment keeps its `#`.
    assert_eq!(df.nodes[1].comments, ["# indented comment"]);
    // An empty comment line resets, an empty line does not.
    let df = parse_str("# a\n#\n# b\n\n# c\nFROM x\nRUN y").unwrap();
    assert_eq!(df.nodes[0].comments, ["b", "c"]);
    assert!(df.nodes[1].comments.is_empty());
}

#[test]
fn directives_are_recorded() {
    let df = ok("directives");
    let got: Vec<_> = df
        .directives
        .iter()
        .map(|d| (d.name.as_str(), d.value.as_str(), d.line))
        .collect();
    assert_eq!(
        got,
        [
            ("syntax", "docker/dockerfile:1", 1),
            ("escape", "`", 2),
            ("check", "skip=all", 3)
        ]
    );
    assert_eq!(df.escape, '`');
    // Directive lines are not comments of the first instruction.
    assert!(df.nodes[0].comments.is_empty());
    let df = ok("directives-end");
    assert!(df.directives.is_empty());
    assert_eq!(df.escape, '\\');
}

#[test]
fn name_values_and_flags_are_typed() {
    let df = ok("all-instructions");
    let pairs = |i: usize| match &df.nodes[i].args {
        Args::NameValues(p) => p
            .iter()
            .map(|p| (p.key.clone(), p.value.clone(), p.equals))
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(pairs(0), [("BASE".into(), s("alpine"), true)]);
    assert_eq!(pairs(6), [("OLD".into(), s("style value"), false)]);
    assert_eq!(
        pairs(7),
        [
            ("A".into(), None, false),
            ("B".into(), s("2"), true),
            ("C".into(), s(""), true)
        ]
    );
    assert_eq!(df.nodes[9].flags, ["--chown=1:1", "--chmod=644"]);
    assert!(df.nodes[14].json && !df.nodes[13].json);
}

#[test]
fn bom_and_invalid_utf8() {
    assert!(parser::parse(b"\xef\xbb\xbf# escape=`\nFROM a `\n b").is_ok());
    let e = parser::parse(b"FROM a\nRUN \xc3(").unwrap_err();
    assert_eq!(
        (e.line, e.column, e.kind),
        (2, 5, ParseErrorKind::InvalidUtf8)
    );
}

#[test]
fn rendered_errors_show_the_snippet() {
    let src = "FROM a\n\tONBUILD FROM b\n";
    let e = parse_str(src).unwrap_err();
    assert_eq!(
        e.render(src, "Dockerfile"),
        "error: FROM isn't allowed as an ONBUILD trigger\n --> Dockerfile:2:2\n  |\n2 | \tONBUILD FROM b\n  | \t^"
    );
    assert_eq!(
        e.to_string(),
        "FROM isn't allowed as an ONBUILD trigger (line 2, column 2: \"\\tONBUILD FROM b\")"
    );
    assert!(render_snippet(src, "f", 99, 1, "m").ends_with("f:99:1\n"));
}

#[test]
fn node_dump_is_one_instruction() {
    let df = parse_str("FROM a\nCOPY --from=b [\"x y\", \"z\"]\nONBUILD --f RUN echo").unwrap();
    assert_eq!(df.nodes[1].dump(), "copy [\"--from=b\"] \"x y\" \"z\"");
    assert_eq!(df.nodes[2].dump(), "onbuild [\"--f\"] (run \"echo\")");
}

#[test]
fn pathological_input_is_an_error_not_a_crash() {
    // `${...}` nested far deeper than any real Dockerfile, on a heredoc line.
    let n = 10_000;
    let text = format!(
        "FROM a\nRUN <<EOF {}{}\nEOF\n",
        "${a:-".repeat(n),
        "}".repeat(n)
    );
    let e = parse_str(&text).unwrap_err();
    assert!(matches!(e.kind, ParseErrorKind::Heredoc(_)), "{e}");
    assert_eq!(e.line, 2);
    // Deep JSON nesting is just not exec form.
    let text = format!("FROM a\nCMD {}\n", "[".repeat(60_000));
    let df = parse_str(&text).unwrap();
    assert!(!df.nodes[1].json);
    // Long ONBUILD chains stop at the first nested ONBUILD.
    let text = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(8_000));
    assert_eq!(
        parse_str(&text).unwrap_err().kind,
        ParseErrorKind::OnbuildChain
    );
}
