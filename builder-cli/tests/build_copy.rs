//! `kiln build` end to end: COPY and ADD rules, FROM scratch, checked in the
//! image kiln writes.
mod build_support;

use build_support::*;

#[test]
fn copy_rules_from_the_context() {
    let work = tempfile::tempdir().unwrap();
    let fixture = testdata("copy-rules");
    let layout = build_to_layout(
        work.path(),
        &fixture.join("Dockerfile"),
        &fixture.join("ctx"),
        &[],
        &[],
    );
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    // Trailing slash: into the directory; otherwise: that name.
    assert_eq!(get("to-dir"), "dir 0755 0:0");
    assert_eq!(get("to-dir/a.txt"), "file 0644 0:0 \"hello\\n\"");
    assert_eq!(get("renamed"), "file 0644 0:0 \"bee\\n\"");
    // A directory source copies its contents.
    assert_eq!(get("contents/x"), "file 0644 0:0 \"x\\n\"");
    assert_eq!(get("contents/sub/y"), "file 0644 0:0 \"y\\n\"");
    assert_eq!(get("contents/dir"), "absent");
    // Wildcards and several sources.
    let wild: Vec<&String> = fs.keys().filter(|k| k.starts_with("wild/")).collect();
    assert_eq!(wild, ["wild/a.txt", "wild/b.txt", "wild/c.md"]);
    // Relative to WORKDIR.
    assert_eq!(get("w/rel/a.txt"), "file 0644 0:0 \"hello\\n\"");
    // --chmod octal and symbolic; the executable bit of the source is kept.
    assert_eq!(get("modes/octal"), "file 0600 0:0 \"hello\\n\"");
    assert_eq!(get("modes/symbolic"), "file 0700 0:0 \"bee\\n\"");
    assert_eq!(
        get("bin/run.sh"),
        "file 0755 0:0 \"#!/bin/sh\\necho run\\n\""
    );
    // --exclude and --parents.
    assert_eq!(get("excluded/skip.tmp"), "absent");
    assert_eq!(get("excluded/x"), "file 0644 0:0 \"x\\n\"");
    assert_eq!(get("parents/docs/readme.md"), "file 0644 0:0 \"r\\n\"");
    assert_eq!(get("parents/docs/notes.txt"), "absent");
    // Heredocs: expanded unless the delimiter is quoted.
    assert_eq!(get("heredoc/expanded"), "file 0644 0:0 \"hello world\\n\"");
    assert_eq!(get("heredoc/literal"), "file 0644 0:0 \"hello $NAME\\n\"");
    // .dockerignore'd files never reach the image.
    assert_eq!(get("all/secret.key"), "absent");
    assert_eq!(get("all/build.log"), "absent");
    assert_eq!(get("all/a.txt"), "file 0644 0:0 \"hello\\n\"");
    // FROM scratch starts with WorkingDir / and the default PATH.
    let (_, _, config) = image(&layout);
    assert_eq!(config["config"]["WorkingDir"], "/w");
    assert_eq!(
        config["config"]["Env"][0],
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
}

#[test]
fn missing_source_is_an_error_naming_it_and_the_line() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("a.txt", "a")]);
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY a.txt /\nCOPY nope.txt /x\n").unwrap();
    let out = work.path().join("out.tar");
    let (ok, _, err) = build_to_archive(work.path(), &df, &ctx, &out);
    assert!(!ok);
    assert!(err.contains("nope.txt"), "{err}");
    assert!(err.contains(":3:"), "names the line: {err}");
    assert!(err.contains("COPY nope.txt /x"), "shows the snippet: {err}");
    assert!(!out.exists(), "nothing half-written");
}

#[test]
fn copy_sees_the_context_as_the_reference_walk_leaves_it() {
    // docker 20.10 skips an excluded directory unless an exception's text
    // starts with its path: `!*/inner*` does not bring back `sub/inner.txt`,
    // and `COPY sub` then finds nothing.
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            (".dockerignore", "*\n!keep*\nsub\n!*/inner*\n!dir/file\n"),
            ("keep.txt", "k"),
            ("drop.txt", "d"),
            ("sub/inner.txt", "i"),
            ("dir/file1", "f"),
        ],
    );
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY . /all/\nADD dir /d\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let names: Vec<&String> = fs.keys().collect();
    // `dir` is entered for `!dir/file` and kept, though empty.
    assert_eq!(names, ["all", "all/dir", "all/keep.txt", "d"]);

    std::fs::write(&df, "FROM scratch\nCOPY sub /s\n").unwrap();
    let out = work.path().join("out2.tar");
    let (ok, _, err) = build_to_archive(work.path(), &df, &ctx, &out);
    assert!(!ok);
    assert!(err.contains("\"/sub\" not found"), "{err}");
}

#[test]
fn chown_by_name_uses_the_stage_passwd_and_group() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            (
                "passwd",
                "root:x:0:0::/root:/bin/sh\nbob:x:2001:2000::/home/bob:/bin/sh\n",
            ),
            ("group", "root:x:0:\ngrp:x:2000:\nstaff:x:50:\n"),
            ("f", "data"),
        ],
    );
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\nCOPY passwd group /etc/\nCOPY --chown=bob f /byname\nCOPY --chown=bob:staff f /withgroup\nCOPY --chown=7:8 f /numeric\nCOPY --chown=bob f /newdir/sub/\nUSER bob\nWORKDIR /home/bob/work\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("byname"), "file 0644 2001:2000 \"data\"");
    assert_eq!(get("withgroup"), "file 0644 2001:50 \"data\"");
    assert_eq!(get("numeric"), "file 0644 7:8 \"data\"");
    // Directories the copy creates belong to the --chown owner too.
    assert_eq!(get("newdir/sub"), "dir 0755 2001:2000");
    // WORKDIR creates its directories for USER.
    assert_eq!(get("home/bob/work"), "dir 0755 2001:2000");

    // Names the stage does not know are not an error in BuildKit: an
    // unknown user is 0:0, an unknown group keeps the user part's gid; an
    // empty user is 0 and `root` needs no lookup.
    std::fs::write(
        &df,
        "FROM scratch\nCOPY passwd group /etc/\nCOPY --chown=alice f /u\nCOPY --chown=7:nogrp f /g\n\
         COPY --chown=bob:nogrp f /bg\nCOPY --chown=:staff f /e\nCOPY --chown=root:root f /r\n\
         USER alice:nogrp\nWORKDIR /wd\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("u"), "file 0644 0:0 \"data\"");
    assert_eq!(get("g"), "file 0644 7:7 \"data\"");
    assert_eq!(get("bg"), "file 0644 2001:2000 \"data\"");
    assert_eq!(get("e"), "file 0644 0:50 \"data\"");
    assert_eq!(get("r"), "file 0644 0:0 \"data\"");
    assert_eq!(get("wd"), "dir 0755 0:0");
}

#[test]
fn copy_link_refuses_a_named_owner() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            ("passwd", "bob:x:2001:2000::/home/bob:/bin/sh\n"),
            ("f", "data"),
        ],
    );
    let build = |text: &str| build_text(work.path(), &ctx, text);
    // BuildKit's linked copy has no /etc/passwd to read (its solver says
    // "invalid user index: -1"), even when the stage has the name.
    for chown in ["bob", "7:staff", ":staff"] {
        let (ok, _, err) = build(&format!(
            "FROM scratch\nCOPY passwd /etc/passwd\nCOPY --link --chown={chown} f /x\n"
        ));
        assert!(!ok, "--chown={chown} built");
        assert!(err.contains("--link") && err.contains(chown), "{err}");
    }
    // Numbers and `root` need no lookup; with --chmod the copy is not linked.
    for ok_df in [
        "FROM scratch\nCOPY --link --chown=7:8 f /x\nCOPY --link --chown=root f /y\n",
        "FROM scratch\nCOPY passwd /etc/passwd\nCOPY --link --chmod=600 --chown=bob f /x\n",
    ] {
        let (ok, _, err) = build(ok_df);
        assert!(ok, "{ok_df}: {err}");
    }
}

#[test]
fn copy_from_a_stage_and_only_needed_stages_run() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("app/main", "bin"), ("app/lib/x", "x")]);
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch AS broken\nRUN exit 1\n\
         FROM scratch AS build\nCOPY app /out\nONBUILD COPY app/main /triggered\n\
         FROM build AS child\n\
         FROM scratch\nCOPY --from=build /out/main /bin/main\nCOPY --from=child /triggered /t\nCOPY --from=1 /out/lib /lib\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("bin/main"), "file 0644 0:0 \"bin\"");
    // ONBUILD ran when the later FROM used the stage.
    assert_eq!(get("t"), "file 0644 0:0 \"bin\"");
    // A stage by index, a directory's contents.
    assert_eq!(get("lib/x"), "file 0644 0:0 \"x\"");

    // --target builds that stage only.
    let layout = build_to_layout(work.path(), &df, &ctx, &["--target", "build"], &[]);
    let fs = files(&layout);
    assert!(fs.contains_key("out/main"));
    let (_, _, config) = image(&layout);
    assert_eq!(config["config"]["OnBuild"][0], "COPY app/main /triggered");
}

#[test]
fn context_from_a_tar_on_stdin() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            ("f", "from the tar\n"),
            ("skip/g", "named by .dockerignore\n"),
            (".dockerignore", "skip\n"),
            ("Dockerfile", "FROM scratch\nCOPY f /f\nCOPY . /all/\n"),
        ],
    );
    let archive = work.path().join("ctx.tar");
    let status = std::process::Command::new("tar")
        .args([
            "-cf",
            archive.to_str().unwrap(),
            "-C",
            ctx.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let out = work.path().join("layout");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build",
            "--root",
            work.path().join("store").to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            "-",
        ])
        .stdin(std::fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fs = files(&out);
    assert_eq!(describe(&fs["f"]), "file 0644 0:0 \"from the tar\\n\"");
    // A tar context is a remote context to BuildKit: used whole, its
    // .dockerignore not applied (docker 20.10's `docker build - < tar`).
    assert_eq!(
        describe(&fs["all/skip/g"]),
        "file 0644 0:0 \"named by .dockerignore\\n\""
    );
    assert!(fs.contains_key("all/.dockerignore"));
}

#[test]
fn a_file_never_replaces_a_directory_of_the_stage() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("sub", "s"), ("d/sub", "inner"), ("f", "f")]);
    std::fs::create_dir(ctx.join("d2")).unwrap();
    std::os::unix::fs::symlink("f", ctx.join("d2/sub")).unwrap();
    let build = |text: &str| build_text(work.path(), &ctx, text);
    // As fsutil: a file (top level or inside a copied directory) or a
    // symlink onto an existing directory is an error; onto a file it
    // replaces it.
    for bad in ["COPY sub /tgt", "COPY d/ /tgt/", "COPY d2 /tgt/"] {
        let (ok, _, err) = build(&format!("FROM scratch\nCOPY d/sub /tgt/sub/keep\n{bad}\n"));
        assert!(!ok, "{bad} built");
        assert!(
            err.contains("cannot replace to directory /tgt/sub with file"),
            "{bad}: {err}"
        );
    }
    let (ok, _, err) = build("FROM scratch\nCOPY f /tgt/sub\nCOPY sub /tgt/sub\nCOPY --link f /d2/x/\nCOPY --link sub /d2\n");
    assert!(ok, "{err}");
}

#[test]
fn copy_parents_doublestar_spans_directories() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            ("top.txt", "t"),
            ("x/a.txt", "a"),
            ("x/y/b.txt", "b"),
            ("x/y/c.md", "c"),
        ],
    );
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\nCOPY --parents **/*.txt /p/\nCOPY --parents x/./**/*.md /q/\nCOPY **/*.txt /flat/\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let under = |d: &str| -> Vec<String> {
        fs.keys()
            .filter(|k| k.starts_with(&format!("{d}/")))
            .cloned()
            .collect()
    };
    // An include pattern: `**` matches any number of directories, none too.
    assert_eq!(
        under("p"),
        ["p/top.txt", "p/x", "p/x/a.txt", "p/x/y", "p/x/y/b.txt"]
    );
    assert_eq!(under("q"), ["q/y", "q/y/c.md"]);
    // Without --parents a source wildcard matches one element per `*`.
    assert_eq!(under("flat"), ["flat/a.txt"]);

    // The cache key sees every file `**` matches.
    std::fs::write(ctx.join("x/y/b.txt"), "changed").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    assert_eq!(
        fs.get("p/x/y/b.txt").map(describe).unwrap_or_default(),
        "file 0644 0:0 \"changed\""
    );
}

#[test]
fn hard_links_in_the_context_stay_links_within_one_copy() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("d/a", "shared\n")]);
    std::fs::hard_link(ctx.join("d/a"), ctx.join("d/b")).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\nCOPY d /d\nCOPY d/b /single\nCOPY d/a d/b /two/\nCOPY d/* /wild/\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    assert_eq!(describe(&fs["d/a"]), "file 0644 0:0 \"shared\\n\"");
    assert_eq!(describe(&fs["d/b"]), "hardlink 0:0 -> d/a");
    // Alone in its own COPY, the file is a plain file.
    assert_eq!(describe(&fs["single"]), "file 0644 0:0 \"shared\\n\"");
    // Each source, and each match of a wildcard, is a copy of its own in
    // BuildKit (one fsutil copier each), so links between them are not
    // kept (docker 20.10 checked: `COPY perl* /p/` from debian gives two
    // files of one link each).
    for p in ["two/a", "two/b", "wild/a", "wild/b"] {
        assert_eq!(describe(&fs[p]), "file 0644 0:0 \"shared\\n\"", "{p}");
    }
}

#[test]
fn copy_from_a_stage_keeps_its_hard_links() {
    // As BuildKit: links made by COPY and by RUN stay links; a link whose
    // first path a later step replaced stays with the old inode.
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "COPY d /ctx\n\
         RUN mkdir /w && echo old > /w/a && ln /w/a /w/b && ln /w/a /w/c \
             && echo y > /w/y && ln /w/y /w/z\n\
         RUN echo new > /w/a.tmp && mv /w/a.tmp /w/a\n\
         FROM scratch\n\
         COPY --from=0 /w /out\n\
         COPY --from=0 /ctx /ctx\n",
    );
    tree(&ctx, &[("d/a", "shared\n")]);
    std::fs::hard_link(ctx.join("d/a"), ctx.join("d/b")).unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    assert_eq!(describe(&fs["out/a"]), "file 0644 0:0 \"new\\n\"");
    assert_eq!(describe(&fs["out/b"]), "file 0644 0:0 \"old\\n\"");
    assert_eq!(describe(&fs["out/c"]), "hardlink 0:0 -> out/b");
    assert_eq!(describe(&fs["out/y"]), "file 0644 0:0 \"y\\n\"");
    assert_eq!(describe(&fs["out/z"]), "hardlink 0:0 -> out/y");
    assert_eq!(describe(&fs["ctx/a"]), "file 0644 0:0 \"shared\\n\"");
    assert_eq!(describe(&fs["ctx/b"]), "hardlink 0:0 -> ctx/a");
}

/// (name, type, uid) of every member of layer `n` of the image, in order.
fn layer_members(layout: &std::path::Path, n: usize) -> Vec<(String, char, u64)> {
    let (_, manifest, _) = image(layout);
    let data = layer_tar(layout, manifest["layers"][n]["digest"].as_str().unwrap());
    let mut archive = tar::Archive::new(&data[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type().as_byte() as char,
                h.uid().unwrap(),
            )
        })
        .collect()
}

#[test]
fn copy_link_builds_its_layer_on_an_empty_root() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            ("etc/keep", "k"),
            ("real/r", "r"),
            ("existing/e", "e"),
            ("a.txt", "hello"),
        ],
    );
    std::os::unix::fs::symlink("/real", ctx.join("lnk")).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch AS base\n\
         COPY --chown=5:6 etc /etc\n\
         COPY --chown=5:6 etc /etc2\n\
         COPY real /real\n\
         COPY lnk /lnk\n\
         COPY existing /existing\n\
         FROM base\n\
         COPY --link a.txt /etc/a.txt\n\
         COPY --link a.txt /lnk/a.txt\n\
         COPY --link a.txt /existing\n\
         COPY a.txt /lnk/again.txt\n\
         COPY --link --chmod=600 a.txt /etc2/b.txt\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let s = |v: &[(&str, char, u64)]| -> Vec<(String, char, u64)> {
        v.iter().map(|(p, t, u)| (p.to_string(), *t, *u)).collect()
    };
    // The parent is made fresh (root-owned), not the stage's 5:6 /etc.
    assert_eq!(
        layer_members(&layout, 5),
        s(&[("etc/", '5', 0), ("etc/a.txt", '0', 0)])
    );
    // The stage's symlink is not followed: the layer makes /lnk a directory.
    assert_eq!(
        layer_members(&layout, 6),
        s(&[("lnk/", '5', 0), ("lnk/a.txt", '0', 0)])
    );
    // The stage's directory is not looked into: /existing becomes the file.
    assert_eq!(layer_members(&layout, 7), s(&[("existing", '0', 0)]));
    // Later steps see the merged result: /lnk is a directory now.
    assert_eq!(
        layer_members(&layout, 8),
        s(&[("lnk/", '5', 0), ("lnk/again.txt", '0', 0)])
    );
    // With --chmod BuildKit does a plain copy: the stage's /etc2 (5:6) stays.
    assert_eq!(
        layer_members(&layout, 9),
        s(&[("etc2/", '5', 5), ("etc2/b.txt", '0', 0)])
    );
}

/// docker 20.10 leaves a context's fifos out of a COPY (fsutil's copy skips
/// them) and copies a device node as an empty regular file with the node's
/// permission bits; kiln copied the fifo and dropped the devices.
#[test]
fn context_fifos_are_left_out_and_devices_become_empty_files() {
    assert!(
        rustix::process::geteuid().is_root(),
        "making device nodes needs root (scripts/test runs this binary as root)"
    );
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("d/reg", "r")]);
    let d = ctx.join("d");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("chr"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o640),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("blk"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(7, 0),
    )
    .unwrap();
    // mknod applies the umask.
    for (n, m) in [("fifo", 0o644), ("chr", 0o640), ("blk", 0o600)] {
        std::process::Command::new("chmod")
            .arg(format!("{m:o}"))
            .arg(d.join(n))
            .status()
            .unwrap();
    }
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY d /d\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("d/reg"), "file 0644 0:0 \"r\"");
    assert_eq!(get("d/fifo"), "absent");
    assert_eq!(get("d/chr"), "file 0640 0:0 \"\"");
    assert_eq!(get("d/blk"), "file 0600 0:0 \"\"");
    // Regular files in the tar, not device entries.
    let m = last_layer_members(&layout);
    assert_eq!(m.get("d/chr").map(|e| e.0), Some('0'), "{m:?}");
    assert_eq!(m.get("d/blk").map(|e| e.0), Some('0'), "{m:?}");
    // Named as the source, a fifo copies nothing, and the build succeeds;
    // a device is still an empty file.
    std::fs::write(
        &df,
        "FROM scratch\nCOPY d/fifo /f\nCOPY d/* /all/\nCOPY d/chr /c\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("f"), "absent");
    assert_eq!(get("all/fifo"), "absent");
    assert_eq!(get("all/reg"), "file 0644 0:0 \"r\"");
    assert_eq!(get("c"), "file 0640 0:0 \"\"");
}

/// The same copy rule from a stage: docker 20.10 leaves a stage's fifo out
/// of `COPY --from` and writes its device nodes as regular files.
#[test]
fn copy_from_a_stage_leaves_fifos_out_and_makes_devices_files() {
    assert!(
        rustix::process::geteuid().is_root(),
        "mknod in a step needs root (scripts/test runs this binary as root)"
    );
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN mkdir /x && mkfifo /x/p && touch /x/f && mknod -m 600 /x/c c 1 3\n\
         FROM scratch\nCOPY --from=0 /x /y\nCOPY --from=0 /x/p /z\n",
    );
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("y/f"), "file 0644 0:0 \"\"");
    assert_eq!(get("y/p"), "absent");
    assert_eq!(get("z"), "absent");
    assert_eq!(get("y/c"), "file 0600 0:0 \"\"");
    let m = last_layer_members(&layout);
    assert!(m.values().all(|e| e.0 != '3' && e.0 != '6'), "{m:?}");
}

/// docker 20.10's octal `--chmod` replaces the permission bits only: the
/// source's setuid/setgid/sticky stay, the value's are ignored.
#[test]
fn octal_chmod_keeps_the_sources_special_bits() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("plain", "p"), ("suid", "s"), ("d/t", "t")]);
    let set = |p: &str, m: u32| {
        std::fs::set_permissions(ctx.join(p), std::fs::Permissions::from_mode(m)).unwrap()
    };
    set("plain", 0o644);
    set("suid", 0o4755);
    set("d/t", 0o2700);
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\nCOPY --chmod=4755 plain /p1\nCOPY --chmod=0644 suid /s1\n\
         COPY --chmod=7777 suid /s2\nCOPY --chmod=0640 d /d1\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("p1"), "file 0755 0:0 \"p\"");
    assert_eq!(get("s1"), "file 4644 0:0 \"s\"");
    assert_eq!(get("s2"), "file 4777 0:0 \"s\"");
    assert_eq!(get("d1/t"), "file 2640 0:0 \"t\"");
}
