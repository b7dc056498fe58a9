//! `kiln build` end to end: RUN steps in the sandbox, on a root made of a
//! static busybox (Debian's busybox-static, see scripts/test-packages.txt).
mod build_support;

use build_support::*;

#[test]
fn run_steps_change_the_filesystem_and_see_env_args_and_workdir() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "ENV FOO=bar\n\
         ARG BAZ=qux\n\
         WORKDIR /w\n\
         RUN echo \"$FOO $BAZ $(pwd)\" > out && mkdir -p /gone && rm -rf /gone\n\
         RUN <<EOF\n\
         echo one > /h\n\
         echo two >> /h\n\
         EOF\n\
         RUN --network=none chown 12:34 /h && chmod 4750 /h\n",
    );
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("w/out"), "file 0644 0:0 \"bar qux /w\\n\"");
    assert_eq!(get("h"), "file 4750 12:34 \"one\\ntwo\\n\"");
    assert_eq!(get("gone"), "absent");
    assert_eq!(get("bin/sh"), "symlink 0:0 -> /bin/busybox");
    let (_, _, config) = image(&layout);
    let env = config["config"]["Env"].to_string();
    assert!(!env.contains("BAZ"), "ARGs stay out of the image: {env}");
}

#[test]
fn add_host_and_shm_size_reach_the_steps_and_their_keys() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN grep -v localhost /etc/hosts > /hosts; df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm\n",
    );
    let flags = [
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "v6=::1",
        "--shm-size",
        "16m",
    ];
    let layout = build_to_layout(work.path(), &df, &ctx, &flags, &[]);
    let fs = files(&layout);
    assert_eq!(
        describe(&fs["hosts"]),
        "file 0644 0:0 \"10.1.2.3\\tdb\\n::1\\tv6\\n\""
    );
    assert_eq!(describe(&fs["shm"]), "file 0644 0:0 \"16384\\n\"");
    // They are inputs of the step's key: without them, it runs again.
    let again = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&again);
    assert_eq!(describe(&fs["hosts"]), "file 0644 0:0 \"\"");
    assert_eq!(describe(&fs["shm"]), "file 0644 0:0 \"65536\\n\"");
    // Bad values name the flag.
    for (flag, value, says) in [
        ("--add-host", "db", "--add-host \"db\": no address"),
        ("--add-host", "db:300.1.1.1", "invalid IP address"),
        ("--add-host", "db:host-gateway", "give an address"),
        ("--shm-size", "lots", "--shm-size \"lots\""),
        ("--shm-size", "0", "--shm-size \"0\""),
    ] {
        let (ok, _, err) = kiln(
            &[
                "build",
                "--root",
                work.path().join("store").to_str().unwrap(),
                "-f",
                df.to_str().unwrap(),
                flag,
                value,
                ctx.to_str().unwrap(),
            ],
            &[],
        );
        assert!(!ok && err.contains(says), "{flag} {value}: {err}");
    }
}

#[test]
fn quiet_prints_only_the_digest() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(work.path(), "RUN echo loud\n");
    let root = work.path().join("store");
    let (ok, out, err) = kiln(
        &[
            "build",
            "-q",
            "--root",
            root.to_str().unwrap(),
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(err, "", "nothing on stderr");
    assert!(
        out.trim().starts_with("sha256:") && out.trim().len() == 71,
        "{out:?}"
    );
}

#[test]
fn a_step_may_leave_the_root_directory_closed_to_the_builder() {
    // Rootless, the step's upper directory then belongs to a subordinate
    // id with mode 0700: moving it into the store needs container root.
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN mkdir -p /p/q && echo s > /p/q/s && chown -R 5:5 /p && chmod 700 /p /p/q\n\
         RUN chmod 700 / && chown 1:1 /\n\
         RUN cat /p/q/s > /after\n",
    );
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("after"), "file 0644 0:0 \"s\\n\"");
    assert_eq!(get("p/q"), "dir 0700 5:5");
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
         RUN --mount=type=bind,source=data/x,target=/new/dir/file cat /new/dir/file > /from-file\n\
         RUN --mount=type=bind,from=artifact,source=/out/artifact,target=/etc-file true\n\
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
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("from-stage"), "file 0644 0:0 \"from the context\\n\"");
    assert_eq!(get("from-context"), "file 0644 0:0 \"from the context\\n\"");
    assert_eq!(get("from-cache"), "file 0644 0:0 \"kept\\n\"");
    assert_eq!(get("from-file"), "file 0644 0:0 \"from the context\\n\"");
    assert_eq!(get("script"), "file 0644 0:0 \"script /dev/pipes/EOF\\n\"");
    // A file's mount point is removed, the directories made for it stay
    // (as BuildKit leaves them); a directory's mount point stays.
    assert_eq!(get("new/dir"), "dir 0755 0:0");
    assert_eq!(get("new/dir/file"), "absent");
    assert_eq!(get("etc-file"), "absent");
    assert_eq!(get("ctx"), "dir 0755 0:0");
    // Mount targets leave at most an empty directory, never content.
    for m in ["a", "ctx", "cache"] {
        let left: Vec<&String> = fs
            .keys()
            .filter(|k| k.starts_with(&format!("{m}/")))
            .collect();
        assert!(left.is_empty(), "{m}: {left:?}");
    }
}

/// The host directory behind the only `RUN --mount=type=cache` of the
/// builds in `store`, once it exists.
fn cache_dir(store: &std::path::Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(store.join("kiln/v1/cache"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            // `run-cache-<sha256 of the id>`, not the locks beside it.
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.strip_prefix("run-cache-")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            })
        })
}

#[test]
fn ctrl_c_stops_the_running_step_and_exits_130_storing_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN --mount=type=cache,target=/c,id=int touch /c/started; sleep 5; touch /c/finished\n",
    );
    let store = work.path().join("store");
    let child = std::process::Command::new(kiln_bin())
        .args([
            "--root",
            store.to_str().unwrap(),
            "build",
            "-t",
            "x/int",
            "-f",
        ])
        .arg(&df)
        .arg(&ctx)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let marker = |name: &str| cache_dir(&store).map(|d| d.join(name));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !marker("started").is_some_and(|p| p.exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        marker("started").is_some_and(|p| p.exists()),
        "the RUN step started"
    );
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("build interrupted"), "{stderr}");
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(!marker("finished").is_some_and(|p| p.exists()));
    let (ok, images, _) = kiln(&["--root", store.to_str().unwrap(), "images"], &[]);
    assert!(ok);
    assert!(!images.contains("x/int"), "{images}");
}

#[test]
fn run_output_streams_to_progress_and_jobs_is_accepted() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN echo streamed-out; echo streamed-err >&2\n",
    );
    let store = work.path().join("store");
    let (ok, _, err) = kiln(
        &[
            "--root",
            store.to_str().unwrap(),
            "build",
            "--jobs",
            "1",
            "--progress=rawjson",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    let logs: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "step_log")
        .collect();
    let text = |stream: &str| -> String {
        logs.iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| e["data"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(text("stdout"), "streamed-out\n", "{err}");
    assert_eq!(text("stderr"), "streamed-err\n", "{err}");
}

#[test]
fn scratch_memory_runs_steps_in_memory_with_the_layers_of_disk() {
    let rest = "RUN mkdir -p /a/b && echo one > /a/b/f && echo x > /keep\n\
                RUN rm -rf /a/b && echo two >> /keep && mkdir /a/c\n\
                RUN grep -o 'upperdir=[^,]*' /proc/self/mountinfo | head -n 1\n";
    // A runtime directory of its own on /dev/shm (a tmpfs), so the test
    // sees its own scratch only.
    let runtime = tempfile::Builder::new()
        .prefix("kiln-test-xdg-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let xdg = runtime.path().to_str().unwrap();
    let env = [
        ("SOURCE_DATE_EPOCH", "0"),
        ("KILN_SCRATCH", ""),
        ("XDG_RUNTIME_DIR", xdg),
    ];
    let mut digests = Vec::new();
    for flags in [&["--scratch", "disk"][..], &["--scratch", "memory"]] {
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("out");
        let (ok, err) = busybox_run(work.path(), rest, flags, &env, Some(&out));
        assert!(ok, "{err}");
        let fallback = err
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains("scratch"));
        let memory = flags[1] == "memory";
        assert_eq!(fallback, memory && !roomy(), "{err}");
        let upper = printed_upper(&err);
        let in_memory = upper.starts_with(&format!("{xdg}/kiln-scratch-"));
        assert_eq!(in_memory, memory && roomy(), "{flags:?}: upper {upper:?}");
        let (digest, _, _) = image(&out);
        digests.push(digest);
    }
    assert_eq!(digests[0], digests[1]);
    let left: Vec<_> = std::fs::read_dir(runtime.path()).unwrap().collect();
    assert!(left.is_empty(), "left in memory: {left:?}");
}

#[test]
fn scratch_flag_and_environment_are_checked_and_documented() {
    let (ok, help, _) = kiln(&["build", "--help"], &[]);
    assert!(ok);
    assert!(help.contains("--scratch <SCRATCH>"), "{help}");
    assert!(help.contains("$KILN_SCRATCH"), "{help}");
    let (ok, _, err) = kiln(&["build", "--scratch", "ram", "."], &[]);
    assert!(!ok);
    assert!(err.contains("possible values: disk, memory"), "{err}");
    let work = tempfile::tempdir().unwrap();
    let (ok, err) = empty_build(work.path(), &[], &[("KILN_SCRATCH", "ram")]);
    assert!(!ok);
    assert!(
        err.contains("KILN_SCRATCH=\"ram\": expected memory or disk"),
        "{err}"
    );
    // The environment chooses memory; the flag wins over it.
    let (ok, err) = empty_build(work.path(), &[], &[("KILN_SCRATCH", "memory")]);
    assert!(ok, "{err}");
    let (ok, err) = empty_build(
        work.path(),
        &["--scratch", "disk"],
        &[("KILN_SCRATCH", "ram")],
    );
    assert!(ok, "{err}");
}

/// The busybox base alone, built in `work` (its own store) with `flags`
/// and `env`: whether it succeeded, and its stderr.
fn empty_build(work: &std::path::Path, flags: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    busybox_run(work, "", flags, env, None)
}

/// The busybox base and `rest`, built in `work` (its own store) with
/// `flags` and `env`, plain progress, into the OCI directory `out` if
/// given: whether it succeeded, and its stderr.
fn busybox_run(
    work: &std::path::Path,
    rest: &str,
    flags: &[&str],
    env: &[(&str, &str)],
    out: Option<&std::path::Path>,
) -> (bool, String) {
    let (ctx, df) = busybox_build(work, rest);
    let root = work.join("store");
    let output = out.map(|o| format!("type=oci,dest={},tar=false", o.display()));
    let mut args = vec![
        "build",
        "--root",
        root.to_str().unwrap(),
        "--progress",
        "plain",
    ];
    args.extend_from_slice(flags);
    args.extend(["-f", df.to_str().unwrap()]);
    if let Some(o) = &output {
        args.extend(["-o", o]);
    }
    args.push(ctx.to_str().unwrap());
    let (ok, _, err) = kiln(&args, env);
    (ok, err)
}

/// Whether /dev/shm has the room `--scratch memory` wants for a step (1 GiB
/// free, with some to spare): small ones (64 MiB in a container) make kiln
/// warn and use the disk instead.
fn roomy() -> bool {
    rustix::fs::statvfs("/dev/shm")
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize) >= 2 << 30)
        .unwrap_or(false)
}

/// The directory `RUN grep upperdir` printed in kiln's plain progress.
fn printed_upper(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.split_once(" upperdir=/").map(|(_, p)| format!("/{p}")))
        .unwrap_or_default()
}

#[test]
fn scratch_memory_uses_the_runtime_dir_when_it_is_a_tmpfs() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN grep -o 'upperdir=[^,]*' /proc/self/mountinfo | head -n 1\n",
    );
    let root = work.path().join("store");
    let args = [
        "build",
        "--root",
        root.to_str().unwrap(),
        "--progress",
        "plain",
        "--no-cache",
        "--scratch",
        "memory",
        "-f",
        df.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ];
    // A runtime directory on a tmpfs (as /run/user/UID is): used.
    let runtime = tempfile::Builder::new()
        .prefix("kiln-test-xdg-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let xdg = runtime.path().to_str().unwrap();
    let (ok, _, err) = kiln(&args, &[("XDG_RUNTIME_DIR", xdg)]);
    assert!(ok, "{err}");
    let upper = printed_upper(&err);
    assert_eq!(
        upper.starts_with(&format!("{xdg}/kiln-scratch-")),
        roomy(),
        "{upper}"
    );
    assert_eq!(std::fs::read_dir(runtime.path()).unwrap().count(), 0);
    // One on the disk: /dev/shm instead.
    let disk = work.path().to_str().unwrap();
    let (ok, _, err) = kiln(&args, &[("XDG_RUNTIME_DIR", disk)]);
    assert!(ok, "{err}");
    let upper = printed_upper(&err);
    assert_eq!(
        upper.starts_with("/dev/shm/kiln-scratch-"),
        roomy(),
        "{upper}"
    );
}

/// The same steps on each way of assembling a step's root
/// (`KILN_ROOTFS_MODE`) give the same image: kernel overlayfs and the
/// fuse-overlayfs fallback (/dev/fuse is 0666 after scripts/setup-test-env,
/// as on Debian) the same layers; the copy of last resort the same files
/// (its diff compares trees, so a directory deleted and made again comes
/// out as whiteouts of its old entries rather than an opaque marker, as
/// with BuildKit's native snapshotter).
#[test]
fn every_rootfs_mode_gives_the_same_image() {
    let rest = "RUN mkdir -p /a/b /d && echo one > /a/b/f && echo x > /keep && ln /keep /d/hard\n\
                RUN rm -rf /a/b /bin/ls && echo two >> /keep && mkdir /a/c && chown 5:6 /a/c \
                    && chmod 700 /d && ln -sf /keep /d/link\n\
                RUN rm -rf /d && mkdir /d && echo new > /d/only\n\
                RUN grep ' / / ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1\n";
    let (mut digests, mut trees) = (Vec::new(), Vec::new());
    for mode in ["overlay", "fuse-overlayfs", "copy"] {
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("out");
        let env = [("SOURCE_DATE_EPOCH", "0"), ("KILN_ROOTFS_MODE", mode)];
        let (ok, err) = busybox_run(work.path(), rest, &[], &env, Some(&out));
        assert!(ok, "{mode}: {err}");
        // The last step printed the type of the root it ran on.
        let fstype = match mode {
            "overlay" => "overlay",
            "fuse-overlayfs" => "fuse.fuse-overlayfs",
            _ => "",
        };
        let printed = err.lines().any(|l| l.ends_with(&format!(" {fstype}")));
        if fstype.is_empty() {
            assert!(
                !err.contains(" overlay\n") && !err.contains("fuse."),
                "{mode}: {err}"
            );
        } else {
            assert!(printed, "{mode}: {err}");
        }
        let fs = files(&out);
        let get = |p: &str| describe_at(&fs, p);
        assert_eq!(get("keep"), "file 0644 0:0 \"x\\ntwo\\n\"", "{mode}");
        assert_eq!(get("a/c"), "dir 0755 5:6", "{mode}");
        assert_eq!(get("a/b"), "absent", "{mode}");
        assert_eq!(get("bin/ls"), "absent", "{mode}");
        assert_eq!(get("d/only"), "file 0644 0:0 \"new\\n\"", "{mode}");
        assert_eq!(get("d/hard"), "absent", "{mode}");
        digests.push(image(&out).0);
        trees.push(fs);
    }
    assert_eq!(
        digests[0], digests[1],
        "fuse-overlayfs differs from overlay"
    );
    assert_eq!(trees[0], trees[2], "copy differs from overlay");

    let work = tempfile::tempdir().unwrap();
    let (ok, err) = empty_build(work.path(), &[], &[("KILN_ROOTFS_MODE", "zfs")]);
    assert!(!ok);
    assert!(
        err.contains("KILN_ROOTFS_MODE=\"zfs\": expected overlay, fuse-overlayfs or copy"),
        "{err}"
    );
}

/// Root without `CAP_SYS_ADMIN` (an unprivileged container's root) cannot
/// make a mount namespace, so its steps run in a user namespace that maps
/// its own ids to themselves; the image is the one a full root build makes.
#[test]
fn root_without_sys_admin_builds_the_same_image_through_a_user_namespace() {
    if !rustix::process::geteuid().is_root() {
        // Only root can drop a capability it has; kiln-test's builds are
        // the other tests.
        return;
    }
    let rest = "RUN mkdir -p /a/b && echo one > /a/b/f && chown 7:8 /a/b/f && rm /bin/ls\n\
                RUN rm -rf /a/b && mkdir /a/b && echo two > /a/b/g && chown 70000:70000 /a/b\n\
                RUN hostname && cat /a/b/g && id -u\n";
    let mut digests = Vec::new();
    for capless in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let (ctx, df) = busybox_build(work.path(), rest);
        let out = work.path().join("out");
        let kiln = kiln_bin();
        let store = work.path().join("store");
        let dest = format!("type=oci,dest={},tar=false", out.display());
        let args = [
            "build",
            "--root",
            store.to_str().unwrap(),
            "--progress",
            "plain",
            "-f",
            df.to_str().unwrap(),
            "-o",
            &dest,
            ctx.to_str().unwrap(),
        ];
        let mut cmd = if capless {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--bounding-set=-sys_admin", "--"]).arg(&kiln);
            c
        } else {
            std::process::Command::new(&kiln)
        };
        let o = cmd
            .args(args)
            .env("SOURCE_DATE_EPOCH", "0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "capless={capless}: {err}");
        assert!(
            err.contains("buildkitsandbox\n") || err.contains("buildkitsandbox"),
            "{err}"
        );
        let fs = files(&out);
        let get = |p: &str| describe_at(&fs, p);
        assert_eq!(get("a/b"), "dir 0755 70000:70000", "capless={capless}");
        assert_eq!(get("a/b/f"), "absent", "capless={capless}");
        assert_eq!(get("bin/ls"), "absent", "capless={capless}");
        digests.push(image(&out).0);
    }
    assert_eq!(digests[0], digests[1], "the capless build differs");
}

/// Where user namespaces are disabled, an unprivileged build stops with
/// the sysctl to run. `user.max_user_namespaces=0` is set inside a user
/// namespace of kiln-test's own (the limit holds for everything below it),
/// so nothing else on the machine is affected; kiln runs there as uid 1000
/// (one of kiln-test's subordinate ids). As root the test does the same
/// through kiln-test.
#[test]
fn a_build_where_user_namespaces_are_disabled_says_what_to_change() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("kiln-userns-")
        .tempdir_in("/tmp")
        .unwrap();
    // Reachable by the subordinate id kiln runs as.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = dir.path().join("kiln");
    std::fs::copy(kiln_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ctx, df) = busybox_build(dir.path(), "RUN true\n");
    let d = dir.path().display();
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces || exit 99; \
         setpriv --reuid=1000 --regid=1000 --clear-groups \
         env HOME={d} {bin} build --root {d}/store -f {df} {ctx}; s=$?; \
         rm -rf {d}/store; exit $s",
        bin = bin.display(),
        df = df.display(),
        ctx = ctx.display(),
    );
    let unshare = [
        "unshare",
        "--user",
        "--map-users=auto",
        "--map-groups=auto",
        "--map-root-user",
        "sh",
        "-c",
        &script,
    ];
    let out = if rustix::process::geteuid().is_root() {
        std::process::Command::new("runuser")
            .args(["-u", "kiln-test", "--"])
            .args(unshare)
            .output()
    } else {
        std::process::Command::new(unshare[0])
            .args(&unshare[1..])
            .output()
    }
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot create a user namespace"), "{err}");
    assert!(
        err.contains("user namespaces are disabled: run `sysctl -w user.max_user_namespaces="),
        "{err}"
    );
}

/// `RUN --security=insecure` is refused, as BuildKit refuses it without the
/// security.insecure entitlement; `--security=sandbox` is the default.
#[test]
fn run_security_insecure_is_refused_and_sandbox_runs() {
    let work = tempfile::tempdir().unwrap();
    let (ok, err) = busybox_run(
        work.path(),
        "RUN --security=insecure true\n",
        &[],
        &[],
        None,
    );
    assert!(!ok);
    assert!(
        err.contains("RUN --security=insecure is not allowed")
            && err.contains("security.insecure entitlement"),
        "{err}"
    );
    let (ok, err) = busybox_run(work.path(), "RUN --security=sandbox true\n", &[], &[], None);
    assert!(ok, "{err}");
}

#[test]
fn etc_hostname_is_provided_writable_and_never_kept() {
    // Issue 6: /etc/hostname is provided for each step and never left in a
    // layer. BuildKit leaves the image's own file, which steps may write
    // (docker 20.10: `echo myhost > /etc/hostname` succeeds), so the bind
    // is writable; what a step writes stays the step's, as under `docker
    // run`, where every runtime binds its own file anyway.
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN (hostname; cat /etc/hostname) > /seen\n\
         RUN echo myhost > /etc/hostname && cat /etc/hostname > /wrote\n\
         RUN cat /etc/hostname > /after\n",
    );
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(
        get("seen"),
        "file 0644 0:0 \"buildkitsandbox\\nbuildkitsandbox\\n\""
    );
    assert_eq!(get("wrote"), "file 0644 0:0 \"myhost\\n\"");
    assert_eq!(get("etc/hostname"), "absent");
    assert_eq!(get("after"), "file 0644 0:0 \"buildkitsandbox\\n\"");
}

#[test]
fn a_socket_left_by_a_step_is_left_out_of_the_layer() {
    // No layer can hold a socket: BuildKit's differs skip them and the step
    // succeeds (docker 20.10 checked); later steps of the build still see
    // it there. busybox's syslogd, chrooted, makes one at /j/dev/log.
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN mkdir -p /j/bin /j/dev && cp /bin/busybox /j/bin/ \
         && (chroot /j /bin/busybox syslogd -n -O /dev/null & pid=$!; n=0; \
             while [ ! -S /j/dev/log ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done; kill -9 $pid) \
         && test -S /j/dev/log && rm /j/bin/busybox && echo kept > /j/dev/file\n\
         RUN if test -S /j/dev/log; then echo socket; fi > /later\n",
    );
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("j/dev/log"), "absent");
    assert_eq!(get("j/dev/file"), "file 0644 0:0 \"kept\\n\"");
    assert_eq!(get("later"), "file 0644 0:0 \"socket\\n\"");
}

#[test]
fn mount_points_a_step_made_on_scratch_stay_like_runcs() {
    // runc makes /proc, /sys and /dev for BuildKit's steps and nothing
    // removes them, so the first RUN on scratch leaves them (and /etc, the
    // parent of the hosts and resolv.conf stubs) in its layer, docker 20.10
    // checked; the stub files themselves are removed.
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(work.path(), "RUN true\n");
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    for d in ["dev", "proc", "sys", "etc"] {
        assert_eq!(get(d), "dir 0755 0:0", "{d}");
    }
    for f in ["etc/hosts", "etc/resolv.conf", "dev/null"] {
        assert_eq!(get(f), "absent", "{f}");
    }
    assert!(!fs
        .keys()
        .any(|p| p.starts_with("dev/") || p.starts_with("proc/") || p.starts_with("sys/")));
}

#[test]
fn a_step_runs_on_an_image_holding_one_layer_twice() {
    // Two COPY steps of the same file give byte-identical layers; overlayfs
    // refused the root with the layer's directory listed twice ("Too many
    // levels of symbolic links"), where docker 20.10 runs the step (found
    // with kaniko's test Dockerfiles: `COPY context/foo $HOME/foo` twice,
    // then RUN). The copy in between deletes the file, so the step must
    // see the upper duplicate, not the deletion.
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "COPY f /d/f\n\
         RUN rm -rf /d\n\
         COPY f /d/f\n\
         RUN cat /d/f > /seen\n",
    );
    tree(&ctx, &[("f", "twice\n")]);
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let (_, _, config) = image(&layout);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(
        diff_ids[2], diff_ids[4],
        "the two COPY layers are identical"
    );
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("seen"), "file 0644 0:0 \"twice\\n\"");
    assert_eq!(get("d/f"), "file 0644 0:0 \"twice\\n\"");
}

#[test]
fn an_owner_past_the_mapped_ids_builds_as_root_and_is_named_rootless() {
    // As root every id maps; an unprivileged user has its subordinate
    // ranges (65536 ids on the test machines), so the RUN after a COPY to
    // uid 70000 cannot set up its root, and the error says why.
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(work.path(), "COPY --chown=70000:70000 f /f\nRUN cat /f\n");
    tree(&ctx, &[("f", "x")]);
    let store = work.path().join("store");
    let (ok, _, err) = kiln(
        &[
            "build",
            "--root",
            store.to_str().unwrap(),
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
        &[],
    );
    if rustix::process::geteuid().is_root() {
        assert!(ok, "{err}");
    } else {
        assert!(!ok);
        assert!(
            err.contains("owner 70000:70000 is outside the ids this user may map"),
            "{err}"
        );
    }
}

#[test]
fn a_missing_working_directory_is_made_as_the_steps_user() {
    // BuildKit's executor makes a missing cwd (and its missing parents)
    // with MkdirAllAndChown as the step's user; docker 20.10 checked:
    // /x and /x/y come out 33:44 here, an existing /o keeps its owner.
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "WORKDIR /x/y\n\
         RUN rm -rf /x && mkdir -m 777 /o\n\
         USER 33:44\n\
         RUN pwd > /o/pwd\n\
         WORKDIR /o\n\
         RUN true\n",
    );
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("x"), "dir 0755 33:44");
    assert_eq!(get("x/y"), "dir 0755 33:44");
    assert_eq!(get("o/pwd"), "file 0644 33:44 \"/x/y\\n\"");
    assert_eq!(get("o"), "dir 0777 0:0");
}

#[test]
fn etc_hosts_and_resolv_conf_through_dangling_symlinks_are_mounted_at_the_target() {
    // systemd images link /etc/resolv.conf to
    // ../run/systemd/resolve/stub-resolv.conf, absent at build time. runc
    // follows the link inside the root (SecureJoin) and mounts the file
    // there; docker 20.10 keeps the directories it made and removes the
    // stub files, so the links stay dangling in the image (checked).
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "COPY etc/ /etc/\n\
         RUN (head -n1 /etc/hosts; test -L /etc/resolv.conf && echo link) > /seen\n",
    );
    std::fs::create_dir_all(ctx.join("etc")).unwrap();
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        ctx.join("etc/resolv.conf"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/nonexist/hosts", ctx.join("etc/hosts")).unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(
        get("seen"),
        "file 0644 0:0 \"127.0.0.1\\tlocalhost buildkitsandbox\\nlink\\n\""
    );
    assert_eq!(get("etc/hosts"), "symlink 0:0 -> /nonexist/hosts");
    assert_eq!(get("nonexist"), "dir 0755 0:0");
    assert_eq!(get("nonexist/hosts"), "absent");
    assert_eq!(get("run/systemd/resolve"), "dir 0755 0:0");
    assert_eq!(get("run/systemd/resolve/stub-resolv.conf"), "absent");
}

#[test]
fn a_mount_targets_link_is_resolved_lexically_like_securejoin() {
    // SecureJoin cleans `..` lexically: /etc/resolv.conf ->
    // sub/../../x/./y//z (no /etc/sub) is mounted at /x/y/z, read-only,
    // though the step cannot open it through the link (docker 20.10
    // checked: the build succeeds and /x/y stays).
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "COPY etc/ /etc/\n\
         RUN test -f /x/y/z && ! echo w > /x/y/z && echo ro > /seen\n",
    );
    std::fs::create_dir_all(ctx.join("etc")).unwrap();
    std::os::unix::fs::symlink("sub/../../x/./y//z", ctx.join("etc/resolv.conf")).unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("seen"), "file 0644 0:0 \"ro\\n\"");
    assert_eq!(get("x/y"), "dir 0755 0:0");
    assert_eq!(get("x/y/z"), "absent");
    assert_eq!(get("etc/sub"), "absent");
}

/// A file capability survives a RUN step that touches the file, also
/// rootless: the lower layer's `security.capability` could not be set by
/// the unprivileged user when the layer was extracted (it was dropped with
/// a warning), and what container root writes is stored as a namespaced
/// (v3) value with the host user's id, which must go in the layer as the
/// plain one docker 20.10 writes.
#[test]
fn file_capabilities_survive_a_step_rootless_too() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "ADD cap.tar /a/\nRUN chmod 700 /a/cap && cp -p /a/cap /a/plain\n",
    );
    // cap_net_bind_service, effective, v2.
    let cap: &[u8] =
        b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let mut rec = b"SCHILY.xattr.security.capability=".to_vec();
    rec.extend_from_slice(cap);
    rec.push(b'\n');
    let len = rec.len() + 3; // "NN " prefix, two digits
    let mut data = format!("{len} ").into_bytes();
    data.extend_from_slice(&rec);
    assert_eq!(data.len(), len);
    let mut t = Vec::new();
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders.0/cap").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(data.len() as u64);
    h.set_cksum();
    t.extend_from_slice(h.as_bytes());
    t.extend_from_slice(&data);
    t.resize(t.len().div_ceil(512) * 512, 0);
    let mut h = tar::Header::new_ustar();
    h.set_path("cap").unwrap();
    h.set_size(1);
    h.set_mode(0o755);
    h.set_cksum();
    t.extend_from_slice(h.as_bytes());
    t.extend_from_slice(b"x");
    t.resize(t.len().div_ceil(512) * 512 + 1024, 0);
    std::fs::write(ctx.join("cap.tar"), t).unwrap();
    let layout = work.path().join("out");
    let root = work.path().join("store");
    let (ok, _, err) = kiln(
        &[
            "build",
            "--root",
            root.to_str().unwrap(),
            "-f",
            df.to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={},tar=false", layout.display()),
            ctx.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(!err.contains("security.capability"), "{err}");
    let m = last_layer_members(&layout);
    let want = format!(
        "SCHILY.xattr.security.capability={}",
        String::from_utf8_lossy(cap)
    );
    assert_eq!(
        m.get("a/cap").map(|e| e.2.clone()),
        Some(vec![want]),
        "{m:?}"
    );
    // busybox's cp -p keeps no xattrs: the copy has none.
    assert_eq!(m.get("a/plain").map(|e| e.2.clone()), Some(vec![]), "{m:?}");
}
