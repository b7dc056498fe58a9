//! `kiln build` end to end for Dockerfile syntax newer than docker 20.10
//! (COPY --parents, --exclude, heredocs), checked against what current
//! BuildKit's frontend and fsutil do.
mod build_support;

use build_support::*;
use std::path::Path;

/// Builds `df` over a context made of `files`; (success, stderr, files).
fn labs_build(
    work: &Path,
    files_in: &[(&str, &str)],
    df: &str,
) -> (bool, String, std::collections::BTreeMap<String, Item>) {
    let ctx = work.join("ctx");
    tree(&ctx, files_in);
    let dockerfile = work.join("Dockerfile");
    std::fs::write(&dockerfile, df).unwrap();
    let out = work.join("out.tar");
    let (ok, _, err) = build_to_archive(work, &dockerfile, &ctx, &out);
    if !ok {
        return (false, err, Default::default());
    }
    let layout = work.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let status = std::process::Command::new("tar")
        .args(["-xf", out.to_str().unwrap(), "-C", layout.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    (true, err, files(&layout))
}

fn names_under<'a>(fs: &'a std::collections::BTreeMap<String, Item>, dir: &str) -> Vec<&'a str> {
    fs.keys()
        .map(String::as_str)
        .filter(|k| k.starts_with(&format!("{dir}/")))
        .collect()
}

#[test]
fn exclude_match_of_a_directory_covers_everything_below_it() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            ("cache/blob", "b"),
            ("cache/keep.txt", "k"),
            ("web/cache/page", "p"),
            ("web/index", "i"),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("cache"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let (ok, err, fs) = labs_build(
        work.path(),
        &[],
        "FROM scratch\nCOPY --exclude=**/cache --exclude=!**/keep.txt . /d/\n",
    );
    assert!(ok, "{err}");
    // `**/cache` matched `cache` itself, so `cache/blob` is excluded too
    // (docker 20.10's matcher, which only cuts the path to the pattern's
    // length, would let it through); the exception brings back keep.txt,
    // and the directory above it is made with its source's mode.
    assert_eq!(
        names_under(&fs, "d"),
        ["d/cache", "d/cache/keep.txt", "d/web", "d/web/index"]
    );
    assert_eq!(
        fs.get("d/cache").map(describe).as_deref(),
        Some("dir 0700 0:0")
    );
}
