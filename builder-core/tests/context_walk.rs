//! The walk over real directories: what is listed, digests, the stat cache.
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use builder_core::context::{
    BuildContext, ContextListing, ContextSource, DockerfileFlag, NodeKind, WalkOptions,
};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn open(root: &Path) -> BuildContext {
    BuildContext::open(
        &ContextSource::Dir(root.to_path_buf()),
        &DockerfileFlag::Default,
        &mut std::io::empty(),
    )
    .unwrap()
}

fn walk(ctx: &BuildContext, cache: Option<&Path>) -> ContextListing {
    ctx.walk(&WalkOptions {
        hash: true,
        cache_dir: cache.map(Path::to_path_buf),
    })
    .unwrap()
}

fn paths(l: &ContextListing) -> Vec<String> {
    l.nodes
        .iter()
        .map(|n| n.path.display().to_string())
        .collect()
}

#[test]
fn lists_what_the_ignore_file_leaves_in_depth_first_order() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(
        r,
        ".dockerignore",
        "*.log\nnode_modules\ndocs\n!docs/keep/me.txt\n",
    );
    write(r, "a.log", "x");
    write(r, "sub/b.log", "x");
    write(r, "node_modules/m.js", "x");
    write(r, "web/node_modules/m.js", "x");
    write(r, "docs/other.txt", "x");
    write(r, "docs/keep/me.txt", "x");
    write(r, "docs/keep/not.txt", "x");
    write(r, "a.txt", "x");
    write(r, "a/b", "x");
    let l = walk(&open(r), None);
    assert_eq!(
        paths(&l),
        [
            ".dockerignore",
            "Dockerfile",
            "a",
            "a/b",
            "a.txt",
            "docs",
            "docs/keep",
            "docs/keep/me.txt",
            "sub",
            "sub/b.log",
            "web",
            "web/node_modules",
            "web/node_modules/m.js",
        ]
    );
    assert_eq!(l.stats.files, 7);
    assert_eq!(
        l.subtree(Path::new("a"))
            .iter()
            .map(|n| n.path.clone())
            .collect::<Vec<_>>(),
        [PathBuf::from("a"), PathBuf::from("a/b")]
    );
}

#[test]
fn dockerfile_and_ignore_file_hidden_only_when_excluded() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, ".dockerignore", "Dockerfile\n");
    write(r, "x", "x");
    assert_eq!(paths(&walk(&open(r), None)), [".dockerignore", "x"]);
}

#[test]
fn digests_cover_content_and_mode_but_not_mtime() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, "dir/f", "hello");
    let ctx = open(r);
    let first = walk(&ctx, None);
    let digest = |l: &ContextListing, p: &str| l.get(Path::new(p)).unwrap().digest.unwrap();

    // mtime alone changes nothing.
    let f = fs::File::options()
        .write(true)
        .open(r.join("dir/f"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    drop(f);
    let again = walk(&ctx, None);
    assert_eq!(digest(&first, "dir/f"), digest(&again, "dir/f"));
    assert_eq!(first.root_digest, again.root_digest);

    // Mode changes the file's, its directory's and the root's digests.
    fs::set_permissions(r.join("dir/f"), fs::Permissions::from_mode(0o600)).unwrap();
    let chmod = walk(&ctx, None);
    assert_ne!(digest(&first, "dir/f"), digest(&chmod, "dir/f"));
    assert_ne!(digest(&first, "dir"), digest(&chmod, "dir"));
    assert_ne!(first.root_digest, chmod.root_digest);

    // Renaming a child changes the directory's digest.
    fs::rename(r.join("dir/f"), r.join("dir/g")).unwrap();
    let renamed = walk(&ctx, None);
    assert_ne!(digest(&chmod, "dir"), digest(&renamed, "dir"));

    // A symlink's target counts, and it stays a link.
    symlink("dir/g", r.join("link")).unwrap();
    let l1 = walk(&ctx, None);
    fs::remove_file(r.join("link")).unwrap();
    symlink("dir/h", r.join("link")).unwrap();
    let l2 = walk(&ctx, None);
    assert_ne!(digest(&l1, "link"), digest(&l2, "link"));
    assert_eq!(
        l2.get(Path::new("link")).unwrap().kind,
        NodeKind::Symlink {
            target: PathBuf::from("dir/h")
        }
    );
}

#[test]
fn stat_cache_skips_reads_and_catches_every_change() {
    let d = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, "a", "aaaa");
    write(r, "b/c", "cccc");
    // Make the files look old so they are not "racily clean".
    for p in ["Dockerfile", "a", "b/c"] {
        let f = fs::File::options().write(true).open(r.join(p)).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000))
            .unwrap();
    }
    let ctx = open(r);
    let first = walk(&ctx, Some(cache.path()));
    assert_eq!(first.stats.hashed_files, 3);
    assert_eq!(first.stats.cache_hits, 0);

    // ctime was "now" during the first walk, so nothing was cached yet.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let warm = walk(&ctx, Some(cache.path()));
    assert_eq!(warm.stats.hashed_files, 3, "racy entries were re-read");
    let hit = walk(&ctx, Some(cache.path()));
    assert_eq!(hit.stats.hashed_files, 0);
    assert_eq!(hit.stats.cache_hits, 3);
    assert_eq!(hit.root_digest, first.root_digest);

    // Same size, mtime restored: the ctime gives it away.
    let meta = fs::metadata(r.join("a")).unwrap();
    fs::write(r.join("a"), "AAAA").unwrap();
    let f = fs::File::options().write(true).open(r.join("a")).unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
    drop(f);
    let edited = walk(&ctx, Some(cache.path()));
    assert_eq!(edited.stats.hashed_files, 1);
    assert_eq!(edited.stats.cache_hits, 2);
    assert_ne!(edited.root_digest, first.root_digest);
    assert_eq!(
        edited.get(Path::new("b/c")).unwrap().digest,
        first.get(Path::new("b/c")).unwrap().digest
    );
}

#[test]
fn entries_for_copy() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    fs::set_permissions(r.join("Dockerfile"), fs::Permissions::from_mode(0o640)).unwrap();
    let ctx = open(r);
    let l = walk(&ctx, None);
    let e = l.entries(ctx.root());
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].mode, 0o640);
    assert_eq!((e[0].uid, e[0].gid), (0, 0));
    match &e[0].kind {
        builder_core::fsentry::Kind::File { content, size } => {
            assert_eq!(*size, 13);
            assert_eq!(
                *content,
                builder_core::fsentry::Content::Path(r.join("Dockerfile"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn excluded_directory_is_entered_only_for_its_exceptions() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, ".dockerignore", "*\n!Dockerfile\n!keep/deep/f\n");
    write(r, "keep/deep/f", "x");
    write(r, "keep/deep/g", "x");
    write(r, "keep/other", "x");
    write(r, "drop/deep/f", "x");
    let ctx = open(r);
    let l = walk(&ctx, None);
    assert_eq!(
        paths(&l),
        ["Dockerfile", "keep", "keep/deep", "keep/deep/f"]
    );
    assert_eq!(
        ctx.why("drop/deep/f").rule.unwrap(),
        format!("{}:1: *", r.join(".dockerignore").display())
    );
    assert!(!ctx.why("keep/deep/f").excluded);
    assert!(ctx.why("keep/deep/g").excluded);
}

#[test]
fn wildcard_exceptions_do_not_reach_into_an_excluded_directory() {
    // The reference (docker 20.10) enters an excluded directory only when
    // an exception's text starts with that directory's path; `!**/keep`
    // and `!*/keep*` never do, so nothing below `gen` or `vendor` is kept.
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, ".dockerignore", "**/gen\n!**/keep\nvendor\n!*/keep*\n");
    write(r, "gen/keep/a", "x");
    write(r, "x/gen/keep/b", "x");
    write(r, "x/gen/c", "x");
    write(r, "vendor/keep.txt", "x");
    write(r, "top.txt", "x");
    symlink("../top.txt", r.join("x/gen/keep/link")).unwrap();
    let ctx = open(r);
    assert_eq!(
        paths(&walk(&ctx, None)),
        [".dockerignore", "Dockerfile", "top.txt", "x"]
    );
    assert!(ctx.why("x/gen/keep/link").excluded);
    assert!(ctx.why("vendor/keep.txt").excluded);
    assert!(!ctx.why("x").excluded);
}

#[test]
fn excluded_directory_entered_for_an_exception_is_listed_even_if_empty() {
    // `**` then `!dir/file`: `dir` is entered (the exception is spelled out
    // below it) and listed, though nothing inside is named `file`.
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, ".dockerignore", "**\n!dir/file\n");
    write(r, "dir/file1", "x");
    write(r, "dir/file2", "x");
    write(r, "other/file", "x");
    assert_eq!(paths(&walk(&open(r), None)), ["dir"]);
}

#[test]
fn parent_rule_sees_only_the_parent_cut_to_its_length() {
    // docker 20.10 tests a path's parents only at the pattern's own depth:
    // `**/foo` (two elements) does not exclude `foo/bar` through `foo`.
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, ".dockerignore", "**/foo\n!foo/keep\n");
    write(r, "foo/bar", "x");
    write(r, "foo/keep", "x");
    write(r, "x/foo/bar", "x");
    assert_eq!(
        paths(&walk(&open(r), None)),
        [
            ".dockerignore",
            "Dockerfile",
            "foo",
            "foo/bar",
            "foo/keep",
            "x"
        ]
    );
}

#[test]
fn regex_characters_in_patterns_act_as_in_the_reference() {
    // docker 20.10 copies `+ ( ) |` into its regular expression unescaped.
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, ".dockerignore", "a+b\n(p)\nx.y\n");
    for f in ["aab", "a+b", "p", "(p)", "x.y", "xzy"] {
        write(r, f, "x");
    }
    assert_eq!(
        paths(&walk(&open(r), None)),
        ["(p)", ".dockerignore", "Dockerfile", "a+b", "xzy"]
    );
}

#[test]
fn concurrent_walks_sharing_a_cache_stay_consistent() {
    let d = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "Dockerfile", "FROM scratch\n");
    for i in 0..200 {
        write(r, &format!("d{}/f{i}", i % 7), &format!("content {i}"));
    }
    let expected = walk(&open(r), None).root_digest;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Several builds of the same context race to write the same cache file.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let ctx = open(r);
                for _ in 0..5 {
                    assert_eq!(walk(&ctx, Some(cache.path())).root_digest, expected);
                }
            });
        }
    });
    // Whoever won, the file is whole and serves every entry.
    let files: Vec<_> = fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "one cache file, no temporary left behind");
    let l = walk(&open(r), Some(cache.path()));
    assert_eq!(l.root_digest, expected);
    assert_eq!(l.stats.hashed_files, 0);
    assert_eq!(l.stats.cache_hits, 201);
}
