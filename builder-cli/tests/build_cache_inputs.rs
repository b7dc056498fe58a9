//! Each kind of input change invalidates exactly the layer steps BuildKit
//! would run again, and the miss names the input, in the progress events
//! and in `--explain-cache`. `--no-cache-filter` and `--no-cache` as
//! BuildKit's `testNoCache` checks them.
mod build_support;

use std::path::Path;

use build_support::cache::{build, context_with_busybox, Build};

fn ok(b: Build) -> Build {
    assert!(b.ok, "{}", b.stderr);
    b
}

/// The miss of step `text` names `reason`, both in the progress event and
/// in `--explain-cache`.
fn assert_reason(b: &Build, text: &str, reason: &str) {
    let events = b.reasons(text);
    assert!(
        events.iter().any(|r| r == reason),
        "{text}: {events:?} has no {reason:?}"
    );
    let explained = b.explained(text);
    assert!(
        explained.iter().any(|r| r == reason),
        "{text}: --explain-cache {explained:?} has no {reason:?}\n{}",
        b.explain
    );
}

const SH: &str = "RUN [\"/bin/busybox\", \"sh\", \"-c\", ";

fn run(script: &str) -> String {
    format!("{SH}\"{script}\"]")
}

#[test]
fn files_no_copy_reads_change_nothing() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(
        work.path(),
        &[
            ("src/a.txt", "a\n"),
            ("src/debug.log", "1\n"),
            ("notes.txt", "n\n"),
            (".dockerignore", "src/*.log\n"),
        ],
    );
    let df = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY src /src\n{}\n",
        run("/bin/busybox ls /src > /listing")
    );
    let first = ok(build(work.path(), &ctx, &df, &[]));
    std::fs::write(ctx.join("src/debug.log"), "2\n").unwrap();
    std::fs::write(ctx.join("notes.txt"), "changed\n").unwrap();
    let second = ok(build(work.path(), &ctx, &df, &[]));
    assert!(second.steps("cache_miss").is_empty(), "{:?}", second.events);
    assert_eq!(second.steps("step_cached").len(), 3);
    assert_eq!(second.digest, first.digest);
}

const ARGS_DF: &str = "FROM scratch\n\
    COPY busybox /bin/busybox\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo before > /before\"]\n\
    ARG UNUSED=1\n\
    COPY c.txt /c.txt\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo after > /after\"]\n\
    ARG LATE=1\n";

#[test]
fn an_arg_reaches_every_run_after_its_declaration_used_or_not() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[("c.txt", "c\n")]);
    let first = ok(build(work.path(), &ctx, ARGS_DF, &[]));
    assert_eq!(first.steps("cache_miss").len(), 4);

    // BuildKit: RUNs see every ARG in scope in their environment, so an
    // unused one still changes the RUNs after it; not the COPY, not the
    // RUN before it.
    let b = ok(build(
        work.path(),
        &ctx,
        ARGS_DF,
        &["--build-arg", "UNUSED=2"],
    ));
    assert_eq!(b.steps("cache_miss"), [run("echo after > /after")]);
    assert_reason(
        &b,
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo after",
        "build arg UNUSED changed",
    );
    assert_eq!(b.changed(SH), ["arg:UNUSED"]);

    // An undeclared build arg and the predefined proxy args enter no key
    // (nor the image).
    let b = ok(build(
        work.path(),
        &ctx,
        ARGS_DF,
        &[
            "--build-arg",
            "NOT_DECLARED=x",
            "--build-arg",
            "HTTP_PROXY=http://proxy.example:3128",
            "--build-arg",
            "no_proxy=example.com",
        ],
    ));
    assert!(b.steps("cache_miss").is_empty(), "{:?}", b.events);
    assert_eq!(b.steps("step_cached").len(), 4);
    assert_eq!(b.digest, first.digest);

    // An ARG declared after the last RUN changes no step (only its
    // history line, "ARG LATE=2", as in BuildKit).
    let b = ok(build(
        work.path(),
        &ctx,
        ARGS_DF,
        &["--build-arg", "LATE=2"],
    ));
    assert!(b.steps("cache_miss").is_empty(), "{:?}", b.events);
    assert_eq!(b.steps("step_cached").len(), 4);
}

const META_DF: &str = "FROM scratch\n\
    COPY busybox /bin/busybox\n\
    ENV MODE=a\n\
    LABEL l=1\n\
    EXPOSE 80\n\
    CMD [\"x\"]\n\
    ENTRYPOINT [\"y\"]\n\
    HEALTHCHECK CMD [\"z\"]\n\
    STOPSIGNAL SIGTERM\n\
    USER 0\n\
    COPY c.txt /c.txt\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo $MODE > /mode\"]\n";

#[test]
fn metadata_changes_nothing_env_and_user_change_the_runs_after_them() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[("c.txt", "c\n")]);
    let first = ok(build(work.path(), &ctx, META_DF, &[]));
    let run_mode = run("echo $MODE > /mode");

    let meta = META_DF
        .replace("LABEL l=1", "LABEL l=2")
        .replace("EXPOSE 80", "EXPOSE 81")
        .replace("CMD [\"x\"]", "CMD [\"x2\"]")
        .replace("ENTRYPOINT [\"y\"]", "ENTRYPOINT [\"y2\"]")
        .replace("HEALTHCHECK CMD [\"z\"]", "HEALTHCHECK CMD [\"z2\"]")
        .replace("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL");
    let b = ok(build(work.path(), &ctx, &meta, &[]));
    assert!(b.steps("cache_miss").is_empty(), "{:?}", b.events);
    assert_eq!(b.steps("step_cached").len(), 3);
    assert_ne!(b.digest, first.digest, "the config changed");

    // ENV is in the RUN's environment: the RUN after it runs again, the
    // COPY (which does not read it) does not.
    let b = ok(build(
        work.path(),
        &ctx,
        &META_DF.replace("MODE=a", "MODE=b"),
        &[],
    ));
    assert_eq!(b.steps("cache_miss"), std::slice::from_ref(&run_mode));
    assert_reason(&b, &run_mode, "env MODE changed");

    // USER: the RUN runs as someone else; COPY without --chown does not
    // care.
    let b = ok(build(
        work.path(),
        &ctx,
        &META_DF.replace("USER 0", "USER 0:0"),
        &[],
    ));
    assert_eq!(b.steps("cache_miss"), std::slice::from_ref(&run_mode));
    assert_reason(&b, &run_mode, "USER changed");
}

#[test]
fn changed_instruction_text_invalidates_that_step_and_later_ones() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[("c.txt", "c\n")]);
    let df = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\n{}\nCOPY c.txt /c.txt\n",
        run("echo 1 > /one")
    );
    ok(build(work.path(), &ctx, &df, &[]));
    let b = ok(build(
        work.path(),
        &ctx,
        &df.replace("echo 1 > /one", "echo 1 > /uno"),
        &[],
    ));
    assert_eq!(b.steps("step_cached"), ["COPY busybox /bin/busybox"]);
    assert_eq!(
        b.steps("cache_miss"),
        [run("echo 1 > /uno"), "COPY c.txt /c.txt".into()]
    );
    assert_reason(&b, SH, "instruction text changed");
    assert_reason(&b, "COPY c.txt", "an earlier step changed");
    assert_eq!(b.reasons("COPY c.txt"), ["an earlier step changed"]);

    let b = ok(build(
        work.path(),
        &ctx,
        &df.replace("COPY c.txt /c.txt", "COPY c.txt /c2.txt"),
        &[],
    ));
    assert_eq!(b.steps("cache_miss"), ["COPY c.txt /c2.txt"]);
    assert_reason(&b, "COPY c.txt", "instruction text changed");
}

#[test]
fn chown_by_name_follows_the_stages_passwd() {
    let work = tempfile::tempdir().unwrap();
    let passwd = |uid: u32| format!("root:x:0:0::/:/bin/sh\napp:x:{uid}:{uid}::/:/bin/sh\n");
    let ctx = context_with_busybox(
        work.path(),
        &[
            ("passwd", &passwd(1000)),
            ("group", "root:x:0:\napp:x:1000:\n"),
            ("f.txt", "f\n"),
        ],
    );
    let df = "FROM scratch\nCOPY passwd group /etc/\nCOPY --chown=app f.txt /f.txt\n";
    ok(build(work.path(), &ctx, df, &[]));
    std::fs::write(ctx.join("passwd"), passwd(1001)).unwrap();
    let b = ok(build(work.path(), &ctx, df, &[]));
    assert_eq!(
        b.steps("cache_miss"),
        ["COPY passwd group /etc/", "COPY --chown=app f.txt /f.txt"]
    );
    assert_reason(&b, "COPY passwd", "file passwd changed");
    assert_reason(&b, "COPY --chown", "owner lookup app changed");
    assert_eq!(
        b.changed("COPY --chown"),
        ["chown:app", "parent"],
        "{:?}",
        b.events
    );
}

#[test]
fn copy_from_a_stage_follows_that_stages_result() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[("gen.txt", "1\n")]);
    let df = format!(
        "FROM scratch AS gen\nCOPY gen.txt /gen.txt\nLABEL stage=gen\n\
         FROM scratch\nCOPY busybox /bin/busybox\nCOPY --from=gen /gen.txt /g.txt\n{}\n",
        run("/bin/busybox cat /g.txt > /out")
    );
    let first = ok(build(work.path(), &ctx, &df, &[]));
    // A metadata change in the source stage: its files are the same.
    let b = ok(build(
        work.path(),
        &ctx,
        &df.replace("stage=gen", "stage=generator"),
        &[],
    ));
    assert!(b.steps("cache_miss").is_empty(), "{:?}", b.events);
    assert_eq!(b.digest, first.digest);

    std::fs::write(ctx.join("gen.txt"), "2\n").unwrap();
    let b = ok(build(work.path(), &ctx, &df, &[]));
    assert_eq!(b.steps("step_cached"), ["COPY busybox /bin/busybox"]);
    assert_eq!(b.steps("cache_miss").len(), 3);
    assert_reason(&b, "COPY gen.txt", "file gen.txt changed");
    assert_reason(&b, "COPY --from=gen", "source gen changed");
    assert_reason(&b, SH, "an earlier step changed");
}

#[test]
fn a_changed_base_image_is_named_by_the_first_step_it_invalidates() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[("base.txt", "1\n"), ("app.txt", "a\n")]);
    let base_df = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY base.txt /base.txt\n";
    let df = format!(
        "FROM kiln-test-base:1\nCOPY app.txt /app.txt\n{}\n",
        run("/bin/busybox cat /base.txt /app.txt > /out")
    );
    let base_work = work.path().join("base");
    std::fs::create_dir_all(&base_work).unwrap();
    let base = |w: &Path| {
        // The base image goes into the same store as the app.
        let store = work.path().join("store");
        let dockerfile = w.join("Dockerfile");
        std::fs::write(&dockerfile, base_df).unwrap();
        let (ok, out, err) = build_support::kiln(
            &[
                "build",
                "--root",
                store.to_str().unwrap(),
                "--progress=quiet",
                "-t",
                "kiln-test-base:1",
                "-f",
                dockerfile.to_str().unwrap(),
                ctx.to_str().unwrap(),
            ],
            &[("SOURCE_DATE_EPOCH", "0")],
        );
        assert!(ok, "{err}");
        out.trim().to_string()
    };
    let first_base = base(&base_work);
    ok(build(work.path(), &ctx, &df, &[]));
    let b = ok(build(work.path(), &ctx, &df, &[]));
    assert!(b.steps("cache_miss").is_empty(), "{:?}", b.events);

    std::fs::write(ctx.join("base.txt"), "2\n").unwrap();
    let second_base = base(&base_work);
    assert_ne!(first_base, second_base);
    let b = ok(build(work.path(), &ctx, &df, &[]));
    assert_eq!(b.steps("cache_miss").len(), 2, "{:?}", b.events);
    let reasons = b.reasons("COPY app.txt");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("base image changed (kiln-test-base:1@"),
        "{reasons:?}"
    );
    assert_eq!(b.changed("COPY app.txt"), ["base"]);
    assert_eq!(b.explained("COPY app.txt"), reasons);
    assert_eq!(b.reasons(SH), ["an earlier step changed"]);
}

/// BuildKit's `testNoCache`, plus a stage built FROM the filtered one.
const NO_CACHE_DF: &str = "FROM scratch AS s0\n\
    COPY busybox /bin/busybox\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /proc/sys/kernel/random/uuid > /unique\"]\n\
    FROM scratch AS s1\n\
    COPY busybox /bin/busybox\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /proc/sys/kernel/random/uuid > /unique2\"]\n\
    FROM s1 AS child\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /unique2 > /child\"]\n\
    FROM scratch\n\
    COPY --from=s0 /unique /\n\
    COPY --from=s1 /unique2 /\n\
    COPY --from=child /child /\n";

/// Builds NO_CACHE_DF into a local directory; returns the build and
/// (unique, unique2, child).
fn no_cache_build(work: &Path, ctx: &Path, n: u32, extra: &[&str]) -> (Build, [String; 3]) {
    let out = work.join(format!("out{n}"));
    let o = format!("type=local,dest={}", out.display());
    let mut args = vec!["-o", &o];
    args.extend_from_slice(extra);
    let b = ok(build(work, ctx, NO_CACHE_DF, &args));
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let files = [read("unique"), read("unique2"), read("child")];
    assert_eq!(files[1], files[2]);
    (b, files)
}

#[test]
fn no_cache_and_no_cache_filter_as_buildkit() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[]);
    let (_, one) = no_cache_build(work.path(), &ctx, 1, &[]);

    // --no-cache: everything runs again.
    let (b, two) = no_cache_build(work.path(), &ctx, 2, &["--no-cache"]);
    assert!(b.steps("step_cached").is_empty());
    assert_ne!(one[0], two[0]);
    assert_ne!(one[1], two[1]);
    // The reason names the source too: it ran again, with another result.
    assert_eq!(
        b.reasons("COPY --from=s0"),
        ["cache disabled (--no-cache)", "source s0 changed"]
    );

    // --no-cache-filter s1: s0 is reused; s1 runs again, and what is
    // built on it (a stage FROM it, a COPY --from it) takes its new result.
    let (b, three) = no_cache_build(work.path(), &ctx, 3, &["--no-cache-filter", "s1"]);
    assert_eq!(three[0], two[0]);
    assert_ne!(three[1], two[1]);
    let run_s1 = "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /proc/sys/kernel/random/uuid > /unique2\"]";
    assert_eq!(
        b.reasons(run_s1),
        ["cache disabled for stage s1 (--no-cache-filter)"]
    );
    assert_reason(
        &b,
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /unique2",
        "an earlier step changed",
    );
    assert_reason(&b, "COPY --from=s1", "source s1 changed");
    assert_reason(&b, "COPY --from=child", "source child changed");
    let cached = b.steps("step_cached");
    assert!(
        cached.contains(&"COPY --from=s0 /unique /".to_string()),
        "{cached:?}"
    );

    // The results were recorded: a plain build now hits everything and
    // gives the same files.
    let (b, four) = no_cache_build(work.path(), &ctx, 4, &[]);
    assert!(b.steps("cache_miss").is_empty(), "{:?}", b.events);
    assert_eq!(four, three);
}

#[test]
fn a_context_bind_mount_depends_on_its_source_only() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(
        work.path(),
        &[
            ("dep.txt", "1\n"),
            ("deps/a", "a\n"),
            ("deps/b", "b\n"),
            ("main.txt", "m\n"),
        ],
    );
    let file_run = "RUN --mount=type=bind,source=dep.txt,target=/dep.txt [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /dep.txt > /out\"]";
    let dir_run = "RUN --mount=type=bind,source=deps,target=/deps [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /deps/a /deps/b > /out2\"]";
    let df = format!("FROM scratch\nCOPY busybox /bin/busybox\n{file_run}\n{dir_run}\n");
    let first = ok(build(work.path(), &ctx, &df, &[]));

    // Like `go mod download` under a go.sum mount: other sources changing
    // leave it alone.
    std::fs::write(ctx.join("main.txt"), "changed\n").unwrap();
    let b = ok(build(work.path(), &ctx, &df, &[]));
    assert!(b.steps("cache_miss").is_empty(), "{:?}", b.events);
    assert_eq!(b.digest, first.digest);

    std::fs::write(ctx.join("deps/b"), "changed\n").unwrap();
    let b = ok(build(work.path(), &ctx, &df, &[]));
    assert_eq!(b.steps("cache_miss"), [dir_run]);
    assert_reason(
        &b,
        "RUN --mount=type=bind,source=deps",
        "file deps/b changed",
    );

    std::fs::write(ctx.join("dep.txt"), "2\n").unwrap();
    let b = ok(build(work.path(), &ctx, &df, &[]));
    assert_eq!(b.steps("cache_miss"), [file_run, dir_run]);
    assert_reason(
        &b,
        "RUN --mount=type=bind,source=dep.txt",
        "file dep.txt changed",
    );
}

/// Serves the current content of `body` to every GET on 127.0.0.1, for
/// as long as the test runs; returns the port.
fn serve(body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = body.lock().unwrap().clone();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    port
}

#[test]
fn steps_after_an_add_url_follow_what_it_downloaded() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[]);
    let body = std::sync::Arc::new(std::sync::Mutex::new(b"1\n".to_vec()));
    let port = serve(body.clone());
    let run_copy = run("/bin/busybox cat /f.txt > /copy");
    let df = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nADD http://127.0.0.1:{port}/f.txt /f.txt\n{run_copy}\n"
    );
    let copy_of = |b: &Build, n: u32| {
        assert!(b.ok, "{}", b.stderr);
        std::fs::read_to_string(work.path().join(format!("out{n}/copy"))).unwrap()
    };
    let out = |n: u32| {
        format!(
            "type=local,dest={}",
            work.path().join(format!("out{n}")).display()
        )
    };
    let b = build(work.path(), &ctx, &df, &["-o", &out(1)]);
    assert_eq!(copy_of(&b, 1), "1\n");

    // The same download: the RUN on it is reused.
    let b = build(work.path(), &ctx, &df, &["-o", &out(2)]);
    assert_eq!(copy_of(&b, 2), "1\n");
    assert!(b.steps("step_cached").contains(&run_copy), "{:?}", b.events);

    // Another download: the RUN runs on it, it is not reused.
    *body.lock().unwrap() = b"2\n".to_vec();
    let b = build(work.path(), &ctx, &df, &["-o", &out(3)]);
    assert_eq!(copy_of(&b, 3), "2\n");
    assert_eq!(b.steps("cache_miss"), std::slice::from_ref(&run_copy));
    assert_reason(&b, SH, "an earlier step changed");
}

#[test]
fn plain_progress_names_the_changed_input() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[("c.txt", "c\n")]);
    ok(build(work.path(), &ctx, ARGS_DF, &[]));
    let dockerfile = work.path().join("Dockerfile");
    let root = work.path().join("store");
    let (success, _, err) = build_support::kiln(
        &[
            "build",
            "--root",
            root.to_str().unwrap(),
            "--progress=plain",
            "--build-arg",
            "UNUSED=3",
            "-f",
            dockerfile.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
        &[("SOURCE_DATE_EPOCH", "0")],
    );
    assert!(success, "{err}");
    assert!(
        err.lines()
            .any(|l| l.ends_with(" cache miss: build arg UNUSED changed")),
        "{err}"
    );
    assert_eq!(err.matches("CACHED").count(), 3, "{err}");
}

#[test]
fn shell_changes_only_shell_form_runs() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[]);
    let exec_run = run("echo x > /x");
    let df = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nSHELL [\"/bin/busybox\", \"sh\", \"-c\"]\n{exec_run}\nRUN echo y > /y\n"
    );
    ok(build(work.path(), &ctx, &df, &[]));
    let b = ok(build(
        work.path(),
        &ctx,
        &df.replace("\"sh\", \"-c\"]", "\"sh\", \"-e\", \"-c\"]"),
        &[],
    ));
    assert_eq!(
        b.steps("step_cached"),
        ["COPY busybox /bin/busybox", exec_run.as_str()]
    );
    assert_eq!(b.steps("cache_miss"), ["RUN echo y > /y"]);
    assert_reason(&b, "RUN echo y", "instruction text changed");
}
