//! Context sources (directory, archive file, standard input, each
//! compression) and Dockerfile lookup.
use std::fs;
use std::io::Write;
use std::path::Path;

use builder_core::context::{
    BuildContext, ContextError, ContextSource, DockerfileFlag, WalkOptions,
};

/// A tar with a Dockerfile, a .dockerignore, and two files, one of which
/// the .dockerignore names.
fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("Dockerfile", b"FROM scratch\nCOPY . .\n", 0o644);
    add(".dockerignore", b"*.tmp\n", 0o644);
    add("src/app.py", b"print(1)\n", 0o755);
    add("junk.tmp", b"x", 0o644);
    b.into_inner().unwrap()
}

fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
    match kind {
        "plain" => data.to_vec(),
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "bzip2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "xz" => {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut std::io::Cursor::new(data), &mut out).unwrap();
            out
        }
        "zstd" => zstd::encode_all(data, 1).unwrap(),
        _ => unreachable!(),
    }
}

fn listed(ctx: &BuildContext) -> Vec<String> {
    ctx.walk(&WalkOptions {
        hash: true,
        cache_dir: None,
    })
    .unwrap()
    .nodes
    .iter()
    .map(|n| n.path.display().to_string())
    .collect()
}

#[test]
fn archives_in_every_compression_from_file_and_stdin() {
    let tar = sample_tar();
    let dir = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for kind in ["plain", "gzip", "bzip2", "xz", "zstd"] {
        let data = compress(kind, &tar);
        let file = dir.path().join(format!("ctx.{kind}"));
        fs::write(&file, &data).unwrap();
        assert_eq!(
            ContextSource::from_arg(file.to_str().unwrap()),
            ContextSource::Archive(file.clone())
        );
        let from_file = BuildContext::open(
            &ContextSource::Archive(file),
            &DockerfileFlag::Default,
            &mut std::io::empty(),
        )
        .unwrap();
        // An archive is a remote context to BuildKit: its .dockerignore is
        // not applied (docker 20.10 checked with `docker build - < tar`).
        assert_eq!(
            listed(&from_file),
            [
                ".dockerignore",
                "Dockerfile",
                "junk.tmp",
                "src",
                "src/app.py"
            ],
            "{kind}"
        );
        assert_eq!(from_file.dockerfile().text, b"FROM scratch\nCOPY . .\n");
        let from_stdin = BuildContext::open(
            &ContextSource::Stdin,
            &DockerfileFlag::Default,
            &mut std::io::Cursor::new(data),
        )
        .unwrap();
        let l = from_stdin
            .walk(&WalkOptions {
                hash: true,
                cache_dir: None,
            })
            .unwrap();
        assert_eq!(l.get(Path::new("src/app.py")).unwrap().mode, 0o755);
        digests.push(l.root_digest.unwrap());
    }
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "same tree, same digest"
    );
}

#[test]
fn stdin_that_is_not_an_archive_is_the_dockerfile() {
    let ctx = BuildContext::open(
        &ContextSource::Stdin,
        &DockerfileFlag::Default,
        &mut std::io::Cursor::new(b"FROM scratch\n".to_vec()),
    )
    .unwrap();
    assert_eq!(ctx.dockerfile().text, b"FROM scratch\n");
    assert_eq!(ctx.dockerfile().name, "-");
    assert!(listed(&ctx).is_empty());
}

/// A raw tar entry whose name the tar crate's builder would refuse.
fn raw_entry(name: &str, kind: tar::EntryType, link: &str) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_mode(0o644);
    h.set_size(if kind == tar::EntryType::Regular {
        1
    } else {
        0
    });
    h.set_entry_type(kind);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    if kind == tar::EntryType::Regular {
        let mut block = vec![0u8; 512];
        block[0] = b'x';
        out.extend(block);
    }
    out
}

#[test]
fn archive_entries_that_escape_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let cases = [
        vec![raw_entry("../evil", tar::EntryType::Regular, "")],
        vec![raw_entry("a/../../evil", tar::EntryType::Regular, "")],
        vec![raw_entry("hl", tar::EntryType::Link, "../../etc/passwd")],
        // A symlink out, then a file written through it.
        vec![
            raw_entry("out", tar::EntryType::Symlink, "/tmp"),
            raw_entry("out/evil", tar::EntryType::Regular, ""),
        ],
        vec![
            raw_entry("up", tar::EntryType::Symlink, ".."),
            raw_entry("up/evil", tar::EntryType::Regular, ""),
        ],
    ];
    for (i, entries) in cases.into_iter().enumerate() {
        let mut data: Vec<u8> = entries.concat();
        data.extend(vec![0u8; 1024]);
        let err = BuildContext::open(
            &ContextSource::Stdin,
            &DockerfileFlag::Stdin,
            &mut std::io::Cursor::new(data.clone()),
        )
        .unwrap_err();
        assert!(matches!(err, ContextError::StdinTwice), "case {i}: {err}");
        let file = base.path().join(format!("c{i}.tar"));
        fs::write(&file, &data).unwrap();
        let err = BuildContext::open(
            &ContextSource::Archive(file),
            &DockerfileFlag::Stdin,
            &mut std::io::Cursor::new(b"FROM scratch\n".to_vec()),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ContextError::UnsafeEntry { .. } | ContextError::Archive { .. }
            ),
            "case {i}: {err}"
        );
        assert!(!Path::new("/tmp/evil").exists() || i != 3);
        assert!(!base.path().join("evil").exists(), "case {i} wrote outside");
    }
    // A leading `/` is only a root marker: the entry lands inside.
    let mut data = raw_entry("/Dockerfile", tar::EntryType::Regular, "");
    data.extend(vec![0u8; 1024]);
    let ctx = BuildContext::open(
        &ContextSource::Stdin,
        &DockerfileFlag::Default,
        &mut std::io::Cursor::new(data),
    )
    .unwrap();
    assert_eq!(ctx.dockerfile().text, b"x");
}

#[test]
fn dockerfile_lookup() {
    let d = tempfile::tempdir().unwrap();
    let ctx_dir = d.path().join("ctx");
    fs::create_dir(&ctx_dir).unwrap();
    // No Dockerfile at all.
    let err = BuildContext::open(
        &ContextSource::Dir(ctx_dir.clone()),
        &DockerfileFlag::Default,
        &mut std::io::empty(),
    )
    .unwrap_err();
    assert!(matches!(err, ContextError::NoDockerfile { .. }));
    // Lower-case `dockerfile` is accepted when `Dockerfile` is absent.
    fs::write(ctx_dir.join("dockerfile"), "FROM lower\n").unwrap();
    let ctx = BuildContext::open(
        &ContextSource::Dir(ctx_dir.clone()),
        &DockerfileFlag::Default,
        &mut std::io::empty(),
    )
    .unwrap();
    assert_eq!(ctx.dockerfile().text, b"FROM lower\n");
    // `-f` outside the context, with its own ignore file beside it.
    fs::write(ctx_dir.join("keep"), "k").unwrap();
    fs::write(ctx_dir.join(".dockerignore"), "keep\n").unwrap();
    fs::write(d.path().join("Other.df"), "FROM other\n").unwrap();
    fs::write(d.path().join("Other.df.dockerignore"), "dockerfile\n").unwrap();
    let ctx = BuildContext::open(
        &ContextSource::Dir(ctx_dir.clone()),
        &DockerfileFlag::Path(d.path().join("Other.df")),
        &mut std::io::empty(),
    )
    .unwrap();
    assert_eq!(ctx.dockerfile().text, b"FROM other\n");
    assert_eq!(listed(&ctx), [".dockerignore", "keep"]);
    assert_eq!(
        ctx.why("dockerfile").rule.unwrap(),
        format!(
            "{}:1: dockerfile",
            d.path().join("Other.df.dockerignore").display()
        )
    );
    // `-f -` reads standard input.
    let ctx = BuildContext::open(
        &ContextSource::Dir(ctx_dir),
        &DockerfileFlag::Stdin,
        &mut std::io::Cursor::new(b"FROM stdin\n".to_vec()),
    )
    .unwrap();
    assert_eq!(ctx.dockerfile().text, b"FROM stdin\n");
    assert_eq!(listed(&ctx), [".dockerignore", "dockerfile"]);
}

#[test]
fn dockerfile_flag_inside_an_archive_stays_inside() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    b.append_data(&mut h, "build/Dockerfile.dev", &b"FROM "[..])
        .unwrap();
    let data = b.into_inner().unwrap();
    for flag in [
        "build/Dockerfile.dev",
        "/build/Dockerfile.dev",
        "../build/Dockerfile.dev",
    ] {
        let ctx = BuildContext::open(
            &ContextSource::Stdin,
            &DockerfileFlag::Path(flag.into()),
            &mut std::io::Cursor::new(data.clone()),
        )
        .unwrap();
        assert_eq!(ctx.dockerfile().text, b"FROM ", "{flag}");
    }
}
