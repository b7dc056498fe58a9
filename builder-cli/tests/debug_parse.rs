//! `kiln debug parse` end to end: dump on stdout, rendered errors and a
//! non-zero exit on failure, standard input with `-`.
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/parser")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn prints_the_dump() {
    let out = kiln()
        .args(["debug", "parse", &fixture("ok/case.Dockerfile")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(fixture("ok/case.dump")).unwrap()
    );
}

#[test]
fn renders_errors_with_the_snippet() {
    let file = fixture("err/unknown-instruction.Dockerfile");
    let out = kiln().args(["debug", "parse", &file]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "error: unknown instruction: RUNN (did you mean RUN?)\n --> {file}:2:3\n  |\n2 |   RUNN echo\n  |   ^\n"
        )
    );
}

#[test]
fn reads_standard_input_and_warns_on_stderr() {
    let mut child = kiln()
        .args(["debug", "parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM a\nRUN x \\\n\n  y\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"(from \"a\")\n(run \"x   y\")\n");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "warning: <stdin>:4: Empty continuation line found in: RUN x   y\n"
    );
}

#[test]
fn missing_file_is_an_error() {
    let out = kiln()
        .args(["debug", "parse", "/does/not/exist/Dockerfile"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .starts_with("/does/not/exist/Dockerfile: "));
}
