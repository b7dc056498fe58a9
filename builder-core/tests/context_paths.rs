//! COPY/ADD sources never leave the context: `..`, absolute paths,
//! symlinks pointing out, and a symlink swapped in during the walk.
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use builder_core::context::{
    BuildContext, ContextError, ContextListing, ContextSource, DockerfileFlag, NodeKind,
    WalkOptions,
};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A context in `base/ctx` with a secret next to it in `base/secret`.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let ctx = base.path().join("ctx");
    write(&ctx, "Dockerfile", "FROM scratch\n");
    write(&ctx, "app/main.go", "package main\n");
    write(&ctx, "app/util.go", "package main\n");
    write(&ctx, "app/README", "readme\n");
    write(&ctx, "x", "inside x\n");
    write(base.path(), "secret", "outside!\n");
    write(base.path(), "x", "outside x\n");
    (base, ctx)
}

fn open(root: &Path) -> (BuildContext, ContextListing) {
    let ctx = BuildContext::open(
        &ContextSource::Dir(root.to_path_buf()),
        &DockerfileFlag::Default,
        &mut std::io::empty(),
    )
    .unwrap();
    let listing = ctx.walk(&WalkOptions::default()).unwrap();
    (ctx, listing)
}

fn resolved(
    ctx: &BuildContext,
    l: &ContextListing,
    src: &str,
) -> Result<Vec<String>, ContextError> {
    ctx.resolve_source(l, src).map(|v| {
        v.into_iter()
            .map(|r| r.path.display().to_string())
            .collect()
    })
}

#[test]
fn dotdot_and_absolute_sources_are_context_relative() {
    let (_base, root) = setup();
    let (ctx, l) = open(&root);
    // As BuildKit: the context is `/`, so these all name the context's `x`.
    for src in ["x", "/x", "../x", "../../x", "app/../../x", "./x"] {
        assert_eq!(resolved(&ctx, &l, src).unwrap(), ["x"], "{src}");
    }
    assert!(matches!(
        resolved(&ctx, &l, "../secret"),
        Err(ContextError::NotFound { .. })
    ));
    assert_eq!(resolved(&ctx, &l, "/").unwrap(), [""]);
    assert_eq!(resolved(&ctx, &l, "..").unwrap(), [""]);
}

#[test]
fn symlinks_out_of_the_context_are_clamped_at_its_root() {
    let (base, root) = setup();
    symlink(base.path().join("secret"), root.join("abs-link")).unwrap();
    symlink("../secret", root.join("rel-link")).unwrap();
    symlink("../x", root.join("x-link")).unwrap();
    symlink(base.path(), root.join("dir-link")).unwrap();
    let (ctx, l) = open(&root);
    // Links are listed as links, never followed by the walk.
    assert!(matches!(
        l.get(Path::new("rel-link")).unwrap().kind,
        NodeKind::Symlink { .. }
    ));
    for src in ["abs-link", "rel-link", "dir-link/secret"] {
        assert!(
            matches!(resolved(&ctx, &l, src), Err(ContextError::NotFound { .. })),
            "{src}"
        );
    }
    // `../x` from the root is the context's own `x`.
    assert_eq!(resolved(&ctx, &l, "x-link").unwrap(), ["x"]);
    // Reading through the root handle stays inside too.
    assert!(ctx.open_file(Path::new("rel-link")).is_err());
    let mut s = String::new();
    use std::io::Read;
    ctx.open_file(Path::new("x-link"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "inside x\n");
}

#[test]
fn source_symlink_is_followed_inside_the_context() {
    let (_base, root) = setup();
    symlink("app", root.join("app-link")).unwrap();
    symlink("app-link/main.go", root.join("main-link")).unwrap();
    let (ctx, l) = open(&root);
    assert_eq!(resolved(&ctx, &l, "main-link").unwrap(), ["app/main.go"]);
    assert_eq!(
        resolved(&ctx, &l, "app-link/util.go").unwrap(),
        ["app/util.go"]
    );
    // A loop is an error, not a hang.
    symlink("loop-b", root.join("loop-a")).unwrap();
    symlink("loop-a", root.join("loop-b")).unwrap();
    let (ctx, l) = open(&root);
    assert!(matches!(
        resolved(&ctx, &l, "loop-a"),
        Err(ContextError::SymlinkLoop { .. })
    ));
}

#[test]
fn wildcards_match_like_go_and_never_bring_back_ignored_files() {
    let (_base, root) = setup();
    write(&root, ".dockerignore", "app/util.go\n");
    write(&root, "app/sub/deep.go", "x");
    let (ctx, l) = open(&root);
    assert_eq!(resolved(&ctx, &l, "app/*.go").unwrap(), ["app/main.go"]);
    assert_eq!(resolved(&ctx, &l, "/app/*.go").unwrap(), ["app/main.go"]);
    assert_eq!(
        resolved(&ctx, &l, "app/*/*.go").unwrap(),
        ["app/sub/deep.go"]
    );
    assert_eq!(
        resolved(&ctx, &l, "a*").unwrap(),
        ["app"],
        "a matched dir is not entered"
    );
    assert_eq!(resolved(&ctx, &l, "app/[MR]*").unwrap(), ["app/README"]);
    assert!(matches!(
        resolved(&ctx, &l, "app/util.*"),
        Err(ContextError::NotFound { .. })
    ));
    assert!(matches!(
        resolved(&ctx, &l, "app/util.go"),
        Err(ContextError::NotFound { .. })
    ));
    assert!(matches!(
        resolved(&ctx, &l, "app/[x-"),
        Err(ContextError::BadWildcard { .. })
    ));
}

#[test]
fn open_file_cannot_escape_when_a_directory_is_swapped_for_a_symlink() {
    let (base, root) = setup();
    let (ctx, _l) = open(&root);
    // After the walk, `app` becomes a link to the directory holding the secret.
    fs::rename(root.join("app"), base.path().join("app-moved")).unwrap();
    symlink(base.path(), root.join("app")).unwrap();
    assert!(ctx.open_file(Path::new("app/secret")).is_err());
    assert!(ctx.open_file(Path::new("../secret")).is_err());
    assert!(ctx.open_file(&base.path().join("secret")).is_err());
}

#[test]
fn walk_never_lists_outside_files_while_a_symlink_is_swapped_in() {
    let (base, root) = setup();
    let outside = base.path().join("outside");
    for i in 0..50 {
        write(&outside, &format!("leak{i}"), "outside");
    }
    for i in 0..50 {
        write(&root, &format!("flip/f{i}"), "inside");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let root = root.clone();
        let base = base.path().to_path_buf();
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // Swap the real directory for a link out, and back.
                let _ = fs::rename(root.join("flip"), base.join("flip-real"));
                let _ = symlink(base.join("outside"), root.join("flip"));
                let _ = fs::remove_file(root.join("flip"));
                let _ = fs::rename(base.join("flip-real"), root.join("flip"));
                n += 1;
            }
            n
        })
    };
    let ctx = BuildContext::open(
        &ContextSource::Dir(root.clone()),
        &DockerfileFlag::Default,
        &mut std::io::empty(),
    )
    .unwrap();
    let mut walks = 0;
    for _ in 0..200 {
        // A walk may fail when a path vanishes under it; it must never leak.
        if let Ok(l) = ctx.walk(&WalkOptions {
            hash: true,
            cache_dir: None,
        }) {
            walks += 1;
            for n in &l.nodes {
                assert!(
                    !n.path.to_string_lossy().contains("leak"),
                    "walk followed the swapped link: {}",
                    n.path.display()
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert!(flips > 0, "the swap never ran");
    assert!(walks > 0, "no walk completed");
}
