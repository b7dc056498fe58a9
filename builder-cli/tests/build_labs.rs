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

const MONOREPO: &[(&str, &str)] = &[
    ("pkgs/app/src/main.rs", "m"),
    ("pkgs/app/Cargo.toml", "a"),
    ("pkgs/lib/Cargo.toml", "l"),
    ("pkgs/lib/gen/out/Cargo.toml", "g"),
    ("pkgs/lib/gen/out/notes", "n"),
    ("tools/Cargo.toml", "t"),
];

#[test]
fn parents_pattern_is_an_include_filter_over_the_pivot() {
    let work = tempfile::tempdir().unwrap();
    let (ok, err, fs) = labs_build(
        work.path(),
        MONOREPO,
        "FROM scratch\n\
         COPY --parents **/Cargo.toml /all/\n\
         COPY --parents pkgs/*/./**/out /piv/\n\
         COPY --parents pkgs/lib/./gen/**/notes tools/./Cargo.toml /two/\n\
         COPY --parents nothing-here* /empty/\n",
    );
    assert!(ok, "{err}");
    // `**` reaches every depth, the top level included.
    assert_eq!(
        names_under(&fs, "all"),
        [
            "all/pkgs",
            "all/pkgs/app",
            "all/pkgs/app/Cargo.toml",
            "all/pkgs/lib",
            "all/pkgs/lib/Cargo.toml",
            "all/pkgs/lib/gen",
            "all/pkgs/lib/gen/out",
            "all/pkgs/lib/gen/out/Cargo.toml",
            "all/tools",
            "all/tools/Cargo.toml",
        ]
    );
    // A wildcard before the pivot walks each matching root; only what
    // follows the pivot is kept.
    assert_eq!(
        names_under(&fs, "piv"),
        [
            "piv/gen",
            "piv/gen/out",
            "piv/gen/out/Cargo.toml",
            "piv/gen/out/notes"
        ]
    );
    assert_eq!(
        names_under(&fs, "two"),
        [
            "two/Cargo.toml",
            "two/gen",
            "two/gen/out",
            "two/gen/out/notes"
        ]
    );
    // No match: the destination directory is still made.
    assert_eq!(
        fs.get("empty").map(describe).as_deref(),
        Some("dir 0755 0:0")
    );
    assert!(names_under(&fs, "empty").is_empty());
}

#[test]
fn parents_excludes_are_relative_to_the_source_root() {
    let work = tempfile::tempdir().unwrap();
    let (ok, err, fs) = labs_build(
        work.path(),
        MONOREPO,
        "FROM scratch\n\
         COPY --parents --exclude=pkgs/lib/gen pkgs/lib /ex/\n\
         COPY --parents --exclude=**/gen --exclude=!lib/gen/out/notes pkgs/./lib /exc/\n",
    );
    assert!(ok, "{err}");
    assert_eq!(
        names_under(&fs, "ex"),
        ["ex/pkgs", "ex/pkgs/lib", "ex/pkgs/lib/Cargo.toml"]
    );
    // Relative to the pivot. `**/gen` excludes everything below gen (fsutil carries a parent's
    // match down), but the exception re-includes one file and the
    // directories above it.
    assert_eq!(
        names_under(&fs, "exc"),
        [
            "exc/lib",
            "exc/lib/Cargo.toml",
            "exc/lib/gen",
            "exc/lib/gen/out",
            "exc/lib/gen/out/notes",
        ]
    );
}

#[test]
fn parents_without_wildcards_requires_the_path() {
    // A missing path below the pivot, and a missing pivot: both name the
    // whole path, as BuildKit's checksum of the required path does.
    for (line, missing) in [
        ("pkgs/./missing", "/pkgs/missing"),
        ("nowhere/./at/all", "/nowhere/at/all"),
    ] {
        let work = tempfile::tempdir().unwrap();
        let (ok, err, _) = labs_build(
            work.path(),
            MONOREPO,
            &format!("FROM scratch\nCOPY --parents {line} /out/\n"),
        );
        assert!(!ok, "{line}");
        assert!(err.contains(&format!("\"{missing}\": not found")), "{err}");
    }
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

#[test]
fn link_chown_takes_ids_but_refuses_names() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN mkdir -p /etc && echo 'app:x:1234:1234::/:/bin/sh' > /etc/passwd\n\
         COPY --link --chown=42:7 busybox /ids/bb\n\
         COPY --link --chown=root busybox /root-name/bb\n\
         COPY --link --chmod=0600 --chown=app busybox /chmod-unlinks/bb\n",
    );
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let owner = |p: &str| fs.get(p).map(|i| (i.uid, i.gid));
    assert_eq!(owner("ids/bb"), Some((42, 7)));
    assert_eq!(owner("root-name/bb"), Some((0, 0)));
    // With --chmod BuildKit does not link, so the stage's passwd answers.
    assert_eq!(owner("chmod-unlinks/bb"), Some((1234, 1234)));

    // A name under --link: BuildKit's solver has no passwd to read.
    std::fs::write(
        &df,
        format!("{BUSYBOX_BASE}RUN mkdir -p /etc && echo 'app:x:1234:1234::/:/bin/sh' > /etc/passwd\nCOPY --link --chown=app busybox /bb\n"),
    )
    .unwrap();
    let (ok, _, err) = build_to_archive(work.path(), &df, &ctx, &work.path().join("x.tar"));
    assert!(!ok, "a name with --link must fail");
    assert!(err.contains("invalid user index: -1"), "{err}");
}

#[test]
fn add_checksum_takes_exactly_one_url() {
    let work = tempfile::tempdir().unwrap();
    let sum = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    // Nothing listens on these ports: the frontend refuses the
    // instruction before any source is fetched.
    let (ok, err, _) = labs_build(
        work.path(),
        &[("local.txt", "x")],
        &format!(
            "FROM scratch\nADD --checksum={sum} http://127.0.0.1:9/a http://127.0.0.1:9/b /d/\n"
        ),
    );
    assert!(!ok);
    assert!(
        err.contains("checksum can't be specified for multiple sources"),
        "{err}"
    );
    let (ok, err, _) = labs_build(
        work.path(),
        &[("local.txt", "x")],
        &format!("FROM scratch\nADD --checksum={sum} local.txt /d/\n"),
    );
    assert!(!ok);
    assert!(
        err.contains("checksum requires HTTP(S) or Git sources"),
        "{err}"
    );
}
