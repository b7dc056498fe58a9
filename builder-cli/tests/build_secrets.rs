//! `kiln build --secret/--ssh` with `RUN --mount=type=secret|ssh`, cache
//! mount sharing across two concurrent kiln processes, and mount sources
//! or cache ids that try to leave their roots (CVE-2024-1753,
//! CVE-2024-9675). scripts/test runs this binary again as an unprivileged
//! user. Roots are made of Debian's busybox-static (and, for the agent,
//! openssh-client's ssh-add with its libraries); `--ssh ID=KEYFILE` keys
//! come from ssh-keygen.
mod build_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use build_support::*;

const BUSYBOX_ROOT: &str = "FROM scratch\n\
     COPY busybox /bin/busybox\n\
     RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

fn context_with_busybox(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy("/bin/busybox", dir.join("busybox"))
        .expect("/bin/busybox (scripts/setup-test-env installs busybox-static)");
}

/// Every blob of a layout, gzip layers decompressed.
fn all_blob_bytes(layout: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        out.push(gunzipped(std::fs::read(e.unwrap().path()).unwrap()));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_reach_the_step_but_never_the_image_nor_the_cache_key() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    let secret = work.path().join("token");
    std::fs::write(&secret, "kiln-very-secret-1").unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        format!(
            "{BUSYBOX_ROOT}\
             RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /tok.sum\n\
             RUN --mount=type=secret,id=tok,target=/etc/app/key,mode=0440,uid=7,gid=8 \
                 stat -c '%a %u %g %s' /etc/app/key > /key.stat\n\
             RUN --mount=type=secret,id=tok,env=TOK echo ${{#TOK}} > /env.len && \
                 if test -e /run/secrets/tok; then echo file > /env.file; fi\n\
             RUN --mount=type=secret,id=absent if test -e /run/secrets/absent; then echo there; \
                 else echo skipped; fi > /absent\n"
        ),
    )
    .unwrap();
    let from_file = format!("id=tok,src={}", secret.display());
    let layout = build_to_layout(work.path(), &df, &ctx, &["--secret", &from_file], &[]);
    let fs = files(&layout);
    let expected_sum = {
        let out = Command::new("sha256sum").arg(&secret).output().unwrap();
        String::from_utf8_lossy(&out.stdout)[..64].to_string()
    };
    assert_eq!(
        describe_at(&fs, "tok.sum"),
        format!("file 0644 0:0 \"{expected_sum}\\n\"")
    );
    assert_eq!(
        describe_at(&fs, "key.stat"),
        "file 0644 0:0 \"440 7 8 18\\n\""
    );
    assert_eq!(describe_at(&fs, "env.len"), "file 0644 0:0 \"18\\n\"");
    assert_eq!(
        describe_at(&fs, "env.file"),
        "absent",
        "env= alone mounts no file"
    );
    assert_eq!(describe_at(&fs, "absent"), "file 0644 0:0 \"skipped\\n\"");
    // As BuildKit: the directories made for the mount stay, the mount
    // point itself does not.
    assert_eq!(describe_at(&fs, "run/secrets"), "dir 0755 0:0");
    assert_eq!(describe_at(&fs, "etc/app"), "dir 0755 0:0");
    for p in ["run/secrets/tok", "run/secrets/absent", "etc/app/key"] {
        assert_eq!(describe_at(&fs, p), "absent", "{p}");
    }
    for blob in all_blob_bytes(&layout) {
        assert!(
            !contains(&blob, b"kiln-very-secret"),
            "the secret's value is in a blob of the image"
        );
    }
    let layers = |l: &Path| image(l).1["layers"].to_string();
    let layers1 = layers(&layout);

    // Another value, from an environment variable this time: every step is
    // still a cache hit (the value is not part of any key), as BuildKit.
    let layout2 = build_to_layout(
        work.path(),
        &df,
        &ctx,
        &["--secret", "id=tok,env=KILN_TEST_TOKEN"],
        &[("KILN_TEST_TOKEN", "kiln-very-secret-2-longer")],
    );
    assert_eq!(layers(&layout2), layers1);
    // Without the cache the new value is what the step sees.
    let layout3 = build_to_layout(
        work.path(),
        &df,
        &ctx,
        &["--no-cache", "--secret", "id=tok,env=KILN_TEST_TOKEN"],
        &[("KILN_TEST_TOKEN", "kiln-very-secret-2-longer")],
    );
    assert_eq!(
        describe_at(&files(&layout3), "env.len"),
        "file 0644 0:0 \"25\\n\""
    );
    // No secret directory is left in the scratch space.
    let tmp = work.path().join("store/kiln/v1/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_required_secret_or_agent_that_was_not_given_fails_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    for (line, want) in [
        (
            "RUN --mount=type=secret,id=api_key,required true",
            "secret api_key not found",
        ),
        (
            "RUN --mount=type=ssh,id=gitlab,required=true true",
            "ssh agent gitlab not forwarded",
        ),
    ] {
        let df = work.path().join("Dockerfile");
        std::fs::write(&df, format!("{BUSYBOX_ROOT}{line}\n")).unwrap();
        let out = work.path().join("out.tar");
        let (ok, _, err) = build_to_archive(work.path(), &df, &ctx, &out);
        assert!(!ok, "{line}");
        assert!(err.contains(want), "{line}: {err}");
    }
    // A --secret whose file is missing, and a key file given as an agent,
    // are refused before the build, naming the id and path.
    let df = work.path().join("Dockerfile");
    let key = work.path().join("id_ed25519");
    std::fs::write(&key, "not a socket").unwrap();
    let root = work.path().join("store");
    for (flag, value, want) in [
        (
            "--secret",
            "id=db,src=/nonexistent/db.pw".to_string(),
            "secret db: /nonexistent/db.pw",
        ),
        (
            "--ssh",
            format!("git={}", key.display()),
            "is neither an agent socket nor a private key file",
        ),
    ] {
        let (ok, _, err) = kiln(
            &[
                "build",
                "--root",
                root.to_str().unwrap(),
                "-f",
                df.to_str().unwrap(),
                flag,
                &value,
                ctx.to_str().unwrap(),
            ],
            &[],
        );
        assert!(!ok);
        assert!(err.contains(want), "{flag} {value}: {err}");
    }
}

/// A running `ssh-agent -D` on a socket in `dir`, killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent (scripts/setup-test-env installs openssh-client)");
        let t = Instant::now();
        while !socket.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "ssh-agent did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, socket }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `bin` and the shared libraries `ldd` lists into `root`, at the
/// same paths.
fn copy_with_libraries(bin: &str, root: &Path) {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    let mut paths = vec![bin.to_string()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            paths.push(p.to_string());
        }
    }
    for p in paths {
        let dest = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&p, &dest).unwrap();
    }
}

#[test]
fn an_ssh_agent_is_forwarded_to_the_step_and_nothing_is_left() {
    let work = tempfile::tempdir().unwrap();
    let agent = Agent::start(work.path());
    let key = work.path().join("key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln-test-key", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    copy_with_libraries("/usr/bin/ssh-add", &ctx.join("rootfs"));
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        format!(
            "{BUSYBOX_ROOT}\
             COPY rootfs/ /\n\
             RUN mkdir -m 1777 /out && echo root:x:0:0::/root:/bin/sh > /etc/passwd && \
                 echo u:x:1000:1000::/out:/bin/sh >> /etc/passwd\n\
             RUN --mount=type=ssh ssh-add -l > /out/keys; echo \"$SSH_AUTH_SOCK\" > /out/sock\n\
             RUN --mount=type=ssh ssh-add -D 2>/dev/null; echo $? > /out/remove-all\n\
             RUN --mount=type=ssh,id=work,target=/tmp/a.sock,uid=1000,mode=0660 \
                 stat -c '%u %a %F' /tmp/a.sock > /out/stat\n\
             USER 1000\n\
             RUN --mount=type=ssh,uid=1000 ssh-add -l > /out/keys-1000\n\
             RUN --mount=type=ssh,id=absent echo \"$SSH_AUTH_SOCK\" > /out/absent\n"
        ),
    )
    .unwrap();
    let default = format!("default={}", agent.socket.display());
    let layout = build_to_layout(
        work.path(),
        &df,
        &ctx,
        &["--ssh", &default, "--ssh", "work"],
        &[("SSH_AUTH_SOCK", agent.socket.to_str().unwrap())],
    );
    let fs = files(&layout);
    let keys = describe_at(&fs, "out/keys");
    assert!(keys.contains("kiln-test-key (ED25519)"), "{keys}");
    let keys = describe_at(&fs, "out/keys-1000");
    assert!(keys.contains("kiln-test-key (ED25519)"), "{keys}");
    assert_eq!(
        describe_at(&fs, "out/sock"),
        "file 0644 0:0 \"/run/buildkit/ssh_agent.0\\n\""
    );
    assert_eq!(
        describe_at(&fs, "out/stat"),
        "file 0644 0:0 \"1000 660 socket\\n\""
    );
    // A missing optional agent is skipped, SSH_AUTH_SOCK still set (llb).
    let absent = describe_at(&fs, "out/absent");
    assert!(
        absent.ends_with("\"/run/buildkit/ssh_agent.0\\n\""),
        "{absent}"
    );
    assert_eq!(describe_at(&fs, "run/buildkit"), "dir 0755 0:0");
    for p in ["run/buildkit/ssh_agent.0", "tmp/a.sock"] {
        assert_eq!(describe_at(&fs, p), "absent", "{p}");
    }
    // The user's agent is read-only to steps, as in BuildKit: removing its
    // keys failed and they are all still there.
    assert_eq!(describe_at(&fs, "out/remove-all"), "file 0644 0:0 \"1\\n\"");
    let listed = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("kiln-test-key (ED25519)"), "{listed}");
}

/// Makes an ed25519 key at `path` (with passphrase `pass`, if not empty);
/// returns its SHA256 fingerprint as `ssh-add -l` shows it.
fn keygen(path: &Path, pass: &str) -> String {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            pass,
            "-C",
            "kiln-key-file",
            "-f",
        ])
        .arg(path)
        .status()
        .expect("ssh-keygen (scripts/setup-test-env installs openssh-client)");
    assert!(status.success());
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(path.with_extension("pub"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let fp = text.split_whitespace().nth(1).unwrap_or_default();
    assert!(fp.starts_with("SHA256:"), "{text}");
    fp.to_string()
}

/// Command lines of the processes that mention `needle` (other users'
/// processes included: /proc/PID/cmdline is world-readable).
fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!("{}: {cmdline}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// The private agent directories (`kiln-ssh-*`) left in `tmp`.
fn agent_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("kiln-ssh-"))
        .collect()
}

/// A context with busybox and ssh-add, and a Dockerfile listing the keys
/// of the `default` and `both` agents into /keys-default and /keys-both.
fn ssh_add_build(work: &Path) -> (PathBuf, PathBuf) {
    let ctx = work.join("ctx");
    context_with_busybox(&ctx);
    copy_with_libraries("/usr/bin/ssh-add", &ctx.join("rootfs"));
    let df = work.join("Dockerfile");
    std::fs::write(
        &df,
        format!(
            "{BUSYBOX_ROOT}\
             COPY rootfs/ /\n\
             RUN --mount=type=ssh ssh-add -l > /keys-default\n\
             RUN --mount=type=ssh,id=both ssh-add -l > /keys-both\n"
        ),
    )
    .unwrap();
    (ctx, df)
}

#[test]
fn ssh_key_files_are_served_by_a_private_agent_that_goes_away() {
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let (k1, k2) = (work.path().join("k1"), work.path().join("k2"));
    let (fp1, fp2) = (keygen(&k1, ""), keygen(&k2, ""));
    // buildx ignores key file permissions, so does kiln (ssh-add would
    // refuse this one by name).
    std::fs::set_permissions(&k2, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (ctx, df) = ssh_add_build(work.path());
    let default = format!("default={}", k1.display());
    let both = format!("both={},{}", k1.display(), k2.display());
    let layout = build_to_layout(
        work.path(),
        &df,
        &ctx,
        &["--ssh", &default, "--ssh", &both],
        &[("TMPDIR", tmp.to_str().unwrap()), ("SSH_AUTH_SOCK", "")],
    );
    let fs = files(&layout);
    let keys = describe_at(&fs, "keys-default");
    assert!(keys.contains(&fp1) && !keys.contains(&fp2), "{keys}");
    let keys = describe_at(&fs, "keys-both");
    assert!(keys.contains(&fp1) && keys.contains(&fp2), "{keys}");
    assert_eq!(agent_dirs(&tmp), Vec::<PathBuf>::new());
    assert_eq!(processes_mentioning(&tmp), Vec::<String>::new());
}

#[test]
fn bad_ssh_key_files_fail_naming_the_file_and_leave_no_agent() {
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let good = work.path().join("good");
    keygen(&good, "");
    let enc = work.path().join("encrypted");
    keygen(&enc, "kiln-passphrase");
    // Looks like a key, so the agent starts and ssh-add refuses it.
    let junk = work.path().join("junk");
    std::fs::write(&junk, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n").unwrap();
    let missing = work.path().join("missing");
    let (ctx, df) = ssh_add_build(work.path());
    let root = work.path().join("store");
    let build_with = |value: &str, env: &[(&str, &str)]| {
        let args = [
            "build",
            "--root",
            root.to_str().unwrap(),
            "-f",
            df.to_str().unwrap(),
            "--ssh",
            value,
            ctx.to_str().unwrap(),
        ];
        kiln(&args, env)
    };
    for (bad, want) in [
        (&enc, "is passphrase-protected"),
        (&junk, "is neither an agent socket nor a private key file"),
        (&missing, "No such file or directory"),
    ] {
        let value = format!("default={},{}", good.display(), bad.display());
        let (ok, _, err) = build_with(&value, &[("TMPDIR", tmp.to_str().unwrap())]);
        assert!(!ok, "{value}");
        assert!(
            err.contains(&format!("ssh default: {}", bad.display())) && err.contains(want),
            "{value}: {err}"
        );
        assert_eq!(agent_dirs(&tmp), Vec::<PathBuf>::new(), "{value}");
        assert_eq!(processes_mentioning(&tmp), Vec::<String>::new(), "{value}");
    }
    // Without OpenSSH's tools (none on PATH), the error says what to do.
    let no_tools = work.path().join("empty-path");
    std::fs::create_dir(&no_tools).unwrap();
    let value = format!("default={}", good.display());
    let (ok, _, err) = build_with(
        &value,
        &[
            ("TMPDIR", tmp.to_str().unwrap()),
            ("PATH", no_tools.to_str().unwrap()),
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("ssh-agent") && err.contains("install openssh-client"),
        "{err}"
    );
    assert_eq!(agent_dirs(&tmp), Vec::<PathBuf>::new());
}

#[test]
fn a_key_file_agent_dies_with_a_killed_kiln() {
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let key = work.path().join("key");
    keygen(&key, "");
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, format!("{BUSYBOX_ROOT}RUN sleep 30\n")).unwrap();
    let mut child = Command::new(kiln_bin())
        .args(["build", "--root"])
        .arg(work.path().join("store"))
        .arg("-f")
        .arg(&df)
        .arg("--ssh")
        .arg(format!("default={}", key.display()))
        .arg(&ctx)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent_dir = wait_for("the key agent to start", || {
        agent_dirs(&tmp)
            .into_iter()
            .find(|d| !processes_mentioning(d).is_empty())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the key agent to die with kiln", || {
        processes_mentioning(&agent_dir).is_empty().then_some(())
    });
}

/// Where the store keeps cache mounts; the one holding `marker` is the
/// instance a step uses.
fn cache_with(store: &Path, marker: &str) -> Option<PathBuf> {
    let dir = store.join("kiln/v1/cache");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join(marker).exists())
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `kiln build` of `dockerfile` (text) into an OCI layout; returns
/// the process and the layout path.
fn spawn_build(work: &Path, name: &str, dockerfile: &str, ctx: &Path) -> (Child, PathBuf) {
    let df = work.join(format!("{name}.Dockerfile"));
    std::fs::write(&df, dockerfile).unwrap();
    let out = work.join(format!("{name}-layout"));
    let child = Command::new(kiln_bin())
        .args(["build", "--progress=plain", "--root"])
        .arg(work.join("store"))
        .arg("-f")
        .arg(&df)
        .arg("-o")
        .arg(format!("type=oci,dest={},tar=false", out.display()))
        .arg(ctx)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, out)
}

fn finish(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A step that announces itself in the cache and waits (at most 60 s) for
/// the test to drop `release` there.
fn holder(sharing: &str) -> String {
    format!(
        "{BUSYBOX_ROOT}\
         RUN --mount=type=cache,id=shared-cache,target=/c,sharing={sharing} \
             touch /c/holder-in && i=0 && \
             while [ ! -e /c/release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done && \
             rm /c/holder-in && ls /c > /seen\n"
    )
}

fn visitor(sharing: &str) -> String {
    format!(
        "{BUSYBOX_ROOT}\
         RUN --mount=type=cache,id=shared-cache,target=/c,sharing={sharing} \
             ls /c > /seen && touch /c/visitor-was-here\n"
    )
}

/// Runs a holder step, and once it holds the cache a visitor step with
/// `visitor_sharing` in a second kiln process; `while_held` runs between
/// (given the visitor process) and decides when the holder is released.
/// Returns what the holder and the visitor saw in /c.
fn two_processes(
    holder_sharing: &str,
    visitor_sharing: &str,
    while_held: impl FnOnce(&Path, &mut Child),
) -> (String, String) {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    // Warm the layer cache so both processes reach their step quickly.
    let (warm, _) = spawn_build(work.path(), "warm", BUSYBOX_ROOT, &ctx);
    finish(warm, "warm-up build");
    let store = work.path().join("store");
    let (h, h_out) = spawn_build(work.path(), "holder", &holder(holder_sharing), &ctx);
    let cache = wait_for("the holder step to start", || {
        cache_with(&store, "holder-in")
    });
    let (mut v, v_out) = spawn_build(work.path(), "visitor", &visitor(visitor_sharing), &ctx);
    while_held(&store, &mut v);
    std::fs::write(cache.join("release"), "").unwrap();
    finish(h, "holder build");
    finish(v, "visitor build");
    let seen = |l: &Path| String::from_utf8_lossy(&files(l)["seen"].data).into_owned();
    (seen(&h_out), seen(&v_out))
}

#[test]
fn a_shared_cache_is_used_by_two_builds_at_once() {
    let (holder, visitor) = two_processes("shared", "shared", |_, v| {
        // The visitor completes while the holder still holds the cache.
        wait_for("the visitor to finish", || v.try_wait().unwrap());
    });
    assert_eq!(visitor, "holder-in\n");
    assert!(holder.contains("visitor-was-here"), "{holder}");
}

#[test]
fn a_private_cache_gives_a_busy_cache_s_second_user_its_own_directory() {
    let (holder, visitor) = two_processes("private", "private", |_, v| {
        wait_for("the visitor to finish", || v.try_wait().unwrap());
    });
    assert_eq!(visitor, "", "the visitor shared the holder's directory");
    assert_eq!(holder, "release\n");
}

/// True when process `pid` has a file below `dir` open: a kiln waiting
/// for a cache keeps that cache's lock file open while it polls the lock.
fn has_open_below(pid: u32, dir: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .any(|target| target.starts_with(dir))
        })
        .unwrap_or(false)
}

#[test]
fn a_locked_cache_makes_a_second_build_wait_for_the_first() {
    let (holder, visitor) = two_processes("locked", "locked", |store, v| {
        let locks = store.join("kiln/v1/cache/run-cache-locks");
        // The visitor's kiln waits on the cache's lock while the holder runs.
        wait_for("the visitor to wait for the cache lock", || {
            assert!(v.try_wait().unwrap().is_none(), "the visitor did not wait");
            has_open_below(v.id(), &locks).then_some(())
        });
        // And keeps waiting.
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(v.try_wait().unwrap().is_none(), "the visitor did not wait");
    });
    // It ran after the holder had finished: it saw the release, not the
    // holder, and the holder never saw it.
    assert_eq!(visitor, "release\n");
    assert_eq!(holder, "release\n");
}

#[test]
fn bind_sources_and_cache_ids_cannot_leave_the_context_stage_or_cache() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context_with_busybox(&ctx);
    // What the host has outside the context.
    tree(work.path(), &[("outside/host.txt", "host-only\n")]);
    tree(
        &ctx,
        &[
            ("etc/which", "context etc\n"),
            ("data/x", "data\n"),
            ("outside/ctx.txt", "context\n"),
        ],
    );
    std::os::unix::fs::symlink("/etc", ctx.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", ctx.join("up")).unwrap();
    std::os::unix::fs::symlink("data/../../outside", ctx.join("sneaky")).unwrap();
    let escaped = work.path().join("escaped");
    let escaped_abs = work.path().join("escaped-abs");
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        format!(
            "FROM scratch AS base\n\
             COPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             RUN mkdir /stage-etc && echo stage etc > /stage-etc/which && \
                 ln -s / /evil-root && ln -s ../../../.. /evil-rel && ln -s /stage-etc /evil-etc\n\
             FROM base\n\
             RUN --mount=type=bind,source=../../../../../etc,target=/m cat /m/which > /dotdot\n\
             RUN --mount=type=bind,source=/etc,target=/m cat /m/which > /absolute\n\
             RUN --mount=type=bind,source=abs,target=/m cat /m/which > /abs-link\n\
             RUN --mount=type=bind,source=up,target=/m cat /m/which > /up-link\n\
             RUN --mount=type=bind,source=sneaky,target=/m,rw ls /m > /sneaky 2>&1; \
                 echo pwned > /m/host.txt 2>/dev/null; true\n\
             RUN --mount=type=bind,from=base,source=evil-root/stage-etc,target=/m cat /m/which > /stage-root\n\
             RUN --mount=type=bind,from=base,source=evil-rel/stage-etc,target=/m cat /m/which > /stage-rel\n\
             RUN --mount=type=bind,from=base,source=/../../../evil-etc,target=/m cat /m/which > /stage-etc-link\n\
             RUN --mount=type=cache,id=../../../../escaped,target=/c touch /c/pwned\n\
             RUN --mount=type=cache,id={},target=/c touch /c/pwned\n\
             RUN --mount=type=cache,id=..,target=/c touch /c/pwned\n",
            escaped_abs.display()
        ),
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let ctx_etc = "file 0644 0:0 \"context etc\\n\"";
    assert_eq!(describe_at(&fs, "dotdot"), ctx_etc);
    assert_eq!(describe_at(&fs, "absolute"), ctx_etc);
    assert_eq!(describe_at(&fs, "abs-link"), ctx_etc);
    assert_eq!(describe_at(&fs, "up-link"), ctx_etc);
    let stage_etc = "file 0644 0:0 \"stage etc\\n\"";
    assert_eq!(describe_at(&fs, "stage-root"), stage_etc);
    assert_eq!(describe_at(&fs, "stage-rel"), stage_etc);
    assert_eq!(describe_at(&fs, "stage-etc-link"), stage_etc);
    // `sneaky` (data/../../outside) is the context's outside/, not the
    // host's, and writes to it are thrown away.
    assert_eq!(describe_at(&fs, "sneaky"), "file 0644 0:0 \"ctx.txt\\n\"");
    assert_eq!(
        std::fs::read_to_string(ctx.join("outside/ctx.txt")).unwrap(),
        "context\n"
    );
    assert!(!ctx.join("outside/host.txt").exists());
    assert_eq!(
        std::fs::read_to_string(work.path().join("outside/host.txt")).unwrap(),
        "host-only\n"
    );
    for p in [&escaped, &escaped_abs] {
        assert!(!p.exists(), "a cache id reached {}", p.display());
    }
    let store_cache = work.path().join("store/kiln/v1");
    assert!(!store_cache.join("escaped").exists() && !work.path().join("store/escaped").exists());
}
