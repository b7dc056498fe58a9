//! `kiln build` end to end: RUN steps in the sandbox, on a root made of a
//! static busybox (Debian's busybox-static, see scripts/test-packages.txt).
mod build_support;

use build_support::*;

fn context_with_busybox(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy("/bin/busybox", dir.join("busybox"))
        .expect("/bin/busybox (scripts/setup-test-env installs busybox-static)");
}

#[test]
fn run_steps_change_the_filesystem_and_see_env_args_and_workdir() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         ENV FOO=bar\n\
         ARG BAZ=qux\n\
         WORKDIR /w\n\
         RUN echo \"$FOO $BAZ $(pwd)\" > out && mkdir -p /gone && rm -rf /gone\n\
         RUN <<EOF\n\
         echo one > /h\n\
         echo two >> /h\n\
         EOF\n\
         RUN --network=none chown 12:34 /h && chmod 4750 /h\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| fs.get(p).map(describe).unwrap_or_else(|| "absent".into());
    assert_eq!(get("w/out"), "file 0644 0:0 \"bar qux /w\\n\"");
    assert_eq!(get("h"), "file 4750 12:34 \"one\\ntwo\\n\"");
    assert_eq!(get("gone"), "absent");
    assert_eq!(get("bin/sh"), "symlink 0:0 -> /bin/busybox");
    let (_, _, config) = image(&layout);
    let env = config["config"]["Env"].to_string();
    assert!(!env.contains("BAZ"), "ARGs stay out of the image: {env}");
}

#[test]
fn a_failing_run_names_the_command_exit_code_and_line() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo about to fail; exit 3\"]\n",
    )
    .unwrap();
    let out = work.path().join("out.tar");
    let (ok, _, err) = build_to_archive(work.path(), &df, &ctx, &out);
    assert!(!ok);
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(
        err.contains("about to fail"),
        "shows the output's tail: {err}"
    );
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(!out.exists());
}

#[test]
fn run_mounts_from_a_stage_the_context_and_a_cache_and_shebang_heredocs() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    tree(&ctx, &[("data/x", "from the context\n")]);
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch AS tools\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         FROM scratch AS artifact\n\
         COPY data/x /out/artifact\n\
         FROM tools\n\
         RUN --mount=type=bind,from=artifact,source=/out,target=/a cat /a/artifact > /from-stage\n\
         RUN --mount=type=bind,source=data,target=/ctx cat /ctx/x > /from-context\n\
         RUN --mount=type=cache,target=/cache echo kept > /cache/c\n\
         RUN --mount=type=cache,target=/cache cat /cache/c > /from-cache\n\
         RUN <<EOF\n\
         #!/bin/sh\n\
         echo \"script $0\" > /script\n\
         EOF\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| fs.get(p).map(describe).unwrap_or_else(|| "absent".into());
    assert_eq!(get("from-stage"), "file 0644 0:0 \"from the context\\n\"");
    assert_eq!(get("from-context"), "file 0644 0:0 \"from the context\\n\"");
    assert_eq!(get("from-cache"), "file 0644 0:0 \"kept\\n\"");
    assert_eq!(get("script"), "file 0644 0:0 \"script /dev/pipes/EOF\\n\"");
    // Mount targets leave at most an empty directory, never content.
    for m in ["a", "ctx", "cache"] {
        let left: Vec<&String> = fs
            .keys()
            .filter(|k| k.starts_with(&format!("{m}/")))
            .collect();
        assert!(left.is_empty(), "{m}: {left:?}");
    }
}
