//! `kiln debug context` end to end: the listing and `--why`.
use std::fs;
use std::process::Command;

fn kiln(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lists_the_context_and_explains_decisions() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    fs::write(r.join("Dockerfile"), "FROM scratch\n").unwrap();
    fs::write(r.join(".dockerignore"), "# logs\n*.log\n!keep.log\n").unwrap();
    fs::write(r.join("a.log"), "").unwrap();
    fs::write(r.join("keep.log"), "").unwrap();
    fs::create_dir(r.join("sub")).unwrap();
    fs::write(r.join("sub/b.log"), "").unwrap();
    let dir = r.to_str().unwrap();

    let (ok, out, err) = kiln(&["debug", "context", dir]);
    assert!(ok, "{err}");
    assert_eq!(out, ".dockerignore\nDockerfile\nkeep.log\nsub\nsub/b.log\n");

    let (ok, out, _) = kiln(&["debug", "context", "--why", "a.log", dir]);
    assert!(ok);
    assert_eq!(
        out,
        format!(
            "a.log: excluded by {}:2: *.log\n",
            r.join(".dockerignore").display()
        )
    );
    let (_, out, _) = kiln(&["debug", "context", "--why", "keep.log", dir]);
    assert!(out.starts_with("keep.log: included by ") && out.ends_with(":3: !keep.log\n"));
    let (_, out, _) = kiln(&["debug", "context", "--why", "sub/b.log", dir]);
    assert_eq!(out, "sub/b.log: included: no pattern matched\n");

    let (ok, out, _) = kiln(&["debug", "context", "--digests", dir]);
    assert!(ok);
    assert!(out.lines().all(|l| l.starts_with("sha256:")));

    fs::write(r.join(".dockerignore"), "ok\n[\n").unwrap();
    let (ok, _, err) = kiln(&["debug", "context", dir]);
    assert!(!ok);
    assert!(err.contains(".dockerignore:2"), "{err}");
}
