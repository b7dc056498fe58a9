//! `kiln build` end to end: details where the image must match what
//! BuildKit (docker 20.10) leaves — the RUN environment's HOME, WORKDIR as
//! written, archives replacing directories, cache mount ownership and the
//! mount points a step leaves behind, cache mount options, named owners
//! on an empty stage.
mod build_support;

use build_support::*;

/// A context holding a static busybox and a two-user passwd file.
fn context(dir: &std::path::Path) {
    context_with_busybox(dir);
    tree(
        dir,
        &[
            (
                "passwd",
                "root:x:0:0:root:/root:/bin/sh\nalice:x:7:7::/home/alice:/bin/sh\n",
            ),
            ("group", "root:x:0:\nalice:x:7:\n"),
        ],
    );
}

/// The common start: busybox, then the users of [`context`].
const USERS: &str = "COPY passwd group /etc/\n";

fn build(work: &std::path::Path, dockerfile: &str) -> std::path::PathBuf {
    let ctx = work.join("ctx");
    context(&ctx);
    let df = work.join("Dockerfile");
    std::fs::write(&df, format!("{BUSYBOX_BASE}{USERS}{dockerfile}")).unwrap();
    build_to_layout(work, &df, &ctx, &[], &[])
}

#[test]
fn run_gets_home_from_passwd_but_the_config_does_not() {
    let work = tempfile::tempdir().unwrap();
    let layout = build(
        work.path(),
        "RUN mkdir -m 1777 /tmp && echo \"$HOME\" > /root-home\n\
         USER alice\n\
         RUN echo \"$HOME\" > /tmp/alice-home\n\
         USER 4242\n\
         RUN echo \"$HOME\" > /tmp/nobody-home\n\
         USER root\n\
         ENV HOME=/custom\n\
         RUN echo \"$HOME\" > /custom-home\n",
    );
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("root-home"), "file 0644 0:0 \"/root\\n\"");
    assert_eq!(get("tmp/alice-home"), "file 0644 7:7 \"/home/alice\\n\"");
    assert_eq!(get("tmp/nobody-home"), "file 0644 4242:0 \"/\\n\"");
    assert_eq!(get("custom-home"), "file 0644 0:0 \"/custom\\n\"");
    let (_, _, config) = image(&layout);
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/custom"
        ])
    );
}

#[test]
fn workdir_keeps_an_absolute_path_as_written() {
    let work = tempfile::tempdir().unwrap();
    let layout = build(work.path(), "WORKDIR /srv/\n");
    let (_, _, config) = image(&layout);
    assert_eq!(config["config"]["WorkingDir"], "/srv/");
    assert_eq!(
        files(&layout).get("srv").map(describe).as_deref(),
        Some("dir 0755 0:0")
    );
    let layout = build(work.path(), "WORKDIR /srv/\nWORKDIR ./sub/\n");
    let (_, _, config) = image(&layout);
    assert_eq!(config["config"]["WorkingDir"], "/srv/sub");
}

#[test]
fn add_archive_members_replace_directories() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context(&ctx);
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("empty", &b"was a dir\n"[..]), ("full", b"was full\n")] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o640);
        h.set_uid(3);
        h.set_gid(4);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }
    std::fs::write(ctx.join("t.tar"), b.into_inner().unwrap()).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        format!(
            "{BUSYBOX_BASE}{USERS}RUN mkdir /empty /full && echo x > /full/inner && mkdir /full/deeper\n\
             ADD t.tar /\n\
             RUN test -e /full/inner || echo gone > /check\n"
        ),
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("empty"), "file 0640 3:4 \"was a dir\\n\"");
    assert_eq!(get("full"), "file 0640 3:4 \"was full\\n\"");
    // The lower directory's children are hidden from later steps.
    assert_eq!(get("check"), "file 0644 0:0 \"gone\\n\"");
}

#[test]
fn cache_mounts_are_owned_as_asked_and_kept_apart_per_owner() {
    let work = tempfile::tempdir().unwrap();
    let layout = build(
        work.path(),
        "USER 7\n\
         RUN --mount=type=cache,id=c,uid=7,target=/cache touch /cache/seven\n\
         USER 0\n\
         RUN --mount=type=cache,id=c,target=/cache touch /cache/zero\n\
         RUN --mount=type=cache,id=c,target=/cache ls /cache > /plain\n\
         RUN --mount=type=cache,id=c,uid=7,target=/cache ls /cache > /owned\n\
         RUN --mount=type=cache,id=c,uid=7,gid=7,mode=0700,target=/cache stat -c '%u:%g %a' /cache > /both\n",
    );
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("plain"), "file 0644 0:0 \"zero\\n\"");
    assert_eq!(get("owned"), "file 0644 0:0 \"seven\\n\"");
    assert_eq!(get("both"), "file 0644 0:0 \"7:7 700\\n\"");
}

#[test]
fn a_step_on_an_empty_root_leaves_its_mount_point_directories() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context(&ctx);
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\n\
         COPY busybox /busybox\n\
         RUN --mount=type=tmpfs,target=/t --mount=type=cache,target=/deep/c [\"/busybox\", \"true\"]\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let mut paths: Vec<String> = fs.keys().cloned().collect();
    paths.sort();
    // dev, proc and sys are runc's mount points, which BuildKit leaves too.
    assert_eq!(
        paths,
        ["busybox", "deep", "deep/c", "dev", "etc", "proc", "sys", "t"]
    );
    for d in ["deep", "deep/c", "dev", "etc", "proc", "sys", "t"] {
        assert_eq!(describe(&fs[d]), "dir 0755 0:0", "{d}");
    }
}

/// BuildKit reads the context as root, so a file its owner made unreadable
/// (a `.dockerignore` of mode 0200, a Dockerfile or data file of mode 000)
/// still counts and is copied. An unprivileged kiln reads such files of the
/// user's own as root of its user namespace; the user's files keep their
/// modes.
#[test]
fn files_the_user_owns_but_may_not_read_are_read_as_buildkit_reads_them() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /c/\n"),
            (".dockerignore", "skipped\n"),
            ("skipped", "left out\n"),
            ("locked", "only the owner, after a chmod\n"),
            ("open", "anyone\n"),
        ],
    );
    let set = |name: &str, mode: u32| {
        std::fs::set_permissions(ctx.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    };
    set("Dockerfile", 0o000);
    set(".dockerignore", 0o200);
    set("locked", 0o000);
    let layout = build_to_layout(work.path(), &ctx.join("Dockerfile"), &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("c/skipped"), "absent");
    assert_eq!(get("c/.dockerignore"), "file 0200 0:0 \"skipped\\n\"");
    assert_eq!(
        get("c/locked"),
        "file 0000 0:0 \"only the owner, after a chmod\\n\""
    );
    assert_eq!(
        get("c/Dockerfile"),
        "file 0000 0:0 \"FROM scratch\\nCOPY . /c/\\n\""
    );
    assert_eq!(get("c/open"), "file 0644 0:0 \"anyone\\n\"");
    let mode = |name: &str| {
        std::fs::metadata(ctx.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!((mode("locked"), mode(".dockerignore")), (0o000, 0o200));
}

/// BuildKit's cache mount options beyond id/target (checked against docker
/// 20.10): `from=` seeds a new cache with that stage's files (a cache of
/// its own, apart from the same id without `from`), `source=` mounts a
/// path inside the cache, and `ro` mounts it read-only.
#[test]
fn cache_mounts_take_from_source_and_ro() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch AS base\n\
             COPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             RUN mkdir -p /seed/sub && echo seeded > /seed/sub/s\n\
             FROM scratch AS seed\n\
             COPY --from=base /seed /seed\n\
             FROM base\n\
             RUN --mount=type=cache,id=s,from=seed,source=/seed,target=/c \
                 cat /c/sub/s > /seeded && echo more > /c/sub/added\n\
             RUN --mount=type=cache,id=s,from=seed,source=seed,target=/c cat /c/sub/added > /kept\n\
             RUN --mount=type=cache,id=s,target=/c ls -A /c > /plain\n\
             RUN --mount=type=cache,id=t,target=/c mkdir -p /c/sub && echo in-sub > /c/sub/f\n\
             RUN --mount=type=cache,id=t,source=sub,target=/s cat /s/f > /sub\n\
             RUN --mount=type=cache,id=t,target=/c,ro \
                 (touch /c/x 2>/dev/null && echo writable || echo read-only) > /ro\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("seeded"), "file 0644 0:0 \"seeded\\n\"");
    assert_eq!(get("kept"), "file 0644 0:0 \"more\\n\"");
    assert_eq!(get("plain"), "file 0644 0:0 \"\"");
    assert_eq!(get("sub"), "file 0644 0:0 \"in-sub\\n\"");
    assert_eq!(get("ro"), "file 0644 0:0 \"read-only\\n\"");
    // The seed is a copy: the stage the cache started from is unchanged.
    assert_eq!(get("seed/sub/added"), "absent");
}

/// On a stage with no files yet (FROM scratch before anything made one)
/// BuildKit has no /etc/passwd to look a name up in, and both docker 20.10
/// and current BuildKit fail ("invalid user index: -1"); ids and `root`
/// need no lookup, and once the stage has files a name resolves.
#[test]
fn a_name_owner_on_an_empty_scratch_stage_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            ("f", "x"),
            ("passwd", "root:x:0:0::/:/bin/sh\nbob:x:5:6::/:/bin/sh\n"),
        ],
    );
    for text in [
        "FROM scratch\nCOPY --chown=bob f /\n",
        "FROM scratch\nADD --chown=0:staff f /\n",
        "FROM scratch\nENV A=1\nUSER bob\nWORKDIR /w\n",
    ] {
        let (ok, _, err) = build_text(work.path(), &ctx, text);
        assert!(!ok, "{text}");
        assert!(err.contains("invalid user index: -1"), "{text}: {err}");
    }
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\n\
         COPY --chown=root:root f /root-owned\n\
         COPY --chown=5:6 f /ids\n\
         COPY passwd /etc/passwd\n\
         COPY --chown=bob f /named\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    assert_eq!(describe(&fs["root-owned"]), "file 0644 0:0 \"x\"");
    assert_eq!(describe(&fs["ids"]), "file 0644 5:6 \"x\"");
    assert_eq!(describe(&fs["named"]), "file 0644 5:6 \"x\"");
}

/// A bind mount of the context shows what .dockerignore keeps, as
/// BuildKit's filtered context does, and a `source=` it leaves out is not
/// found; writes through `rw` never reach the context.
#[test]
fn context_bind_mounts_leave_out_what_dockerignore_excludes() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    tree(
        &ctx,
        &[
            (".dockerignore", "secret.txt\nign\nsub/drop\n**/gone\n"),
            ("a", "a"),
            ("secret.txt", "s"),
            ("ign/x", "x"),
            ("sub/keep", "k"),
            ("sub/drop", "d"),
            ("sub/deep/gone", "g"),
            ("sub/deep/keep2", "k2"),
        ],
    );
    // The filtered copy shows files as BuildKit's transferred context
    // does: their times, owner 0:0, and even a mode-0 file of the user's.
    {
        use std::os::unix::fs::PermissionsExt;
        let keep = std::fs::File::options()
            .write(true)
            .open(ctx.join("sub/keep"))
            .unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(981_173_106);
        keep.set_modified(t).unwrap();
        keep.set_permissions(std::fs::Permissions::from_mode(0o000))
            .unwrap();
    }
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        format!(
            "{BUSYBOX_BASE}\
             RUN --mount=target=/ctx cd /ctx && find . ! -name busybox | sort > /all\n\
             RUN --mount=target=/s,source=sub cd /s && find . | sort > /sub \
             && stat -c '%Y %u:%g %a' keep > /keep && cat keep >> /keep\n\
             RUN --mount=target=/ctx,rw rm -rf /ctx/sub /ctx/a\n"
        ),
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    assert_eq!(
        describe(&fs["all"]),
        "file 0644 0:0 \".\\n./.dockerignore\\n./a\\n./sub\\n./sub/deep\\n./sub/deep/keep2\\n./sub/keep\\n\""
    );
    assert_eq!(
        describe(&fs["sub"]),
        "file 0644 0:0 \".\\n./deep\\n./deep/keep2\\n./keep\\n\""
    );
    assert_eq!(
        describe(&fs["keep"]),
        "file 0644 0:0 \"981173106 0:0 0\\nk\""
    );
    assert!(ctx.join("sub/drop").exists() && ctx.join("a").exists());
    for source in ["secret.txt", "ign", "sub/drop"] {
        let (ok, _, err) = build_text(
            work.path(),
            &ctx,
            &format!("{BUSYBOX_BASE}RUN --mount=target=/m,source={source} true\n"),
        );
        assert!(!ok, "{source}");
        assert!(
            err.contains(&format!("\"/{source}\" not found")),
            "{source}: {err}"
        );
    }
}

/// A link a step leaves in a cache cannot make a later `source=` mount
/// reach outside the cache (BuildKit's testCacheMountSourceEscape): the
/// link is followed inside the cache, where /etc does not exist.
#[test]
fn a_cache_source_cannot_follow_a_link_out_of_the_cache() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    let (ok, _, err) = build_text(
        work.path(),
        &ctx,
        &format!(
            "{BUSYBOX_BASE}\
             RUN --mount=type=cache,id=esc,target=/cache ln -s /etc /cache/sel\n\
             RUN --mount=type=cache,id=esc,source=sel,target=/victim cat /victim/hostname\n"
        ),
    );
    assert!(!ok);
    assert!(err.contains("run-cache-") && err.contains("/etc"), "{err}");
}

/// BuildKit refuses a bind, cache or tmpfs mount over the whole root,
/// also when a relative target names the working directory `/`.
#[test]
fn a_mount_over_the_root_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    for mount in ["type=tmpfs,target=/", "type=cache,target=/.", "target=."] {
        let (ok, _, err) = build_text(
            work.path(),
            &ctx,
            &format!("{BUSYBOX_BASE}RUN --mount={mount} true\n"),
        );
        assert!(!ok, "{mount}");
        assert!(err.contains("invalid mount target \"/\""), "{mount}: {err}");
    }
}

/// BuildKit's transferred context is all 0:0, so a step's `cp -a` from a
/// context bind mount makes root-owned files even where the checkout
/// belongs to someone else; kiln copies such a source instead of binding
/// it (as root, a file of another owner; rootless, the user's own files
/// already show as 0:0).
#[test]
fn a_context_bind_mount_shows_every_file_as_root_owned() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("app/bin/tool", "t"), ("app/conf", "c")]);
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(ctx.join("app/conf"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::chown(ctx.join("app/bin"), Some(1234), Some(5678)).unwrap();
    }
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN --mount=target=/src cp -a /src/app /app\n\
         RUN --mount=target=/c,source=app/conf stat -c %u:%g /c > /conf-owner\n",
    );
    let fs = files(&build_to_layout(work.path(), &df, &ctx, &[], &[]));
    assert_eq!(describe(&fs["app/conf"]), "file 0644 0:0 \"c\"");
    assert_eq!(describe(&fs["app/bin"]), "dir 0755 0:0");
    assert_eq!(describe(&fs["conf-owner"]), "file 0644 0:0 \"0:0\\n\"");
}
