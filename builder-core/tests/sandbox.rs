//! The sandbox, run for real: as root, and (through scripts/test) as the
//! unprivileged `kiln-test` user with subordinate ids.
mod common;

use std::os::unix::fs::MetadataExt;

use builder_core::sandbox::{
    self, CollectOutput, ExitStatus, Mount, MountKind, Network, SandboxError, Spec,
};
use common::*;

fn base(name: &str) -> (Scratch, Spec) {
    let dir = scratch(name);
    let lower = dir.join("lower");
    busybox_root(&lower);
    let spec = Spec::new(overlay(&dir, vec![lower]), vec![]);
    (dir, spec)
}

fn upper(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("upper")
}

#[test]
fn sandbox_runs_pid1_with_hostname_and_exit_code() {
    let (_d, mut spec) = base("pid1");
    let (st, out, err) = sh(
        &mut spec,
        "echo pid=$$; hostname; cat /etc/hostname; echo oops >&2; exit 3",
    );
    assert_eq!(st, ExitStatus::Code(3), "{err}");
    assert_eq!(out, "pid=1\nbuildkitsandbox\nbuildkitsandbox\n");
    assert_eq!(err, "oops\n");
}

#[test]
fn sandbox_hostname_file_is_writable_and_never_kept() {
    // A step may write /etc/hostname (BuildKit shows the image's own file),
    // but what it writes is the step's, as under `docker run`; /etc/hosts
    // and /etc/resolv.conf stay read-only, as BuildKit mounts them.
    let (d, mut spec) = base("hostname");
    let (st, out, err) = sh(
        &mut spec,
        "echo myhost > /etc/hostname && cat /etc/hostname; \
         echo x >> /etc/hosts || echo hosts-ro; echo x >> /etc/resolv.conf || echo resolv-ro",
    );
    assert!(st.success(), "{err}");
    assert_eq!(out, "myhost\nhosts-ro\nresolv-ro\n");
    let up = upper(&d);
    for f in ["hostname", "hosts", "resolv.conf"] {
        assert!(
            !up.join("etc").join(f).exists(),
            "/etc/{f} left in the upper dir"
        );
    }
}

#[test]
fn sandbox_stdin_is_an_empty_pipe_like_buildkits() {
    let (_d, mut spec) = base("stdin");
    // Scripts test `[ -p /dev/stdin ]` to decide whether input was piped
    // in: under BuildKit it holds, and reading finds the end at once.
    let (st, out, err) = sh(
        &mut spec,
        "[ -p /dev/stdin ] && echo pipe; [ -t 0 ] || echo no-tty; cat; echo end",
    );
    assert!(st.success(), "{err}");
    assert_eq!(out, "pipe\nno-tty\nend\n");
}

#[test]
fn sandbox_sees_no_host_mounts_and_fresh_proc() {
    let (_d, mut spec) = base("mounts");
    let (st, out, err) = sh(
        &mut spec,
        "cut -d' ' -f2 /proc/mounts | sort | tr '\\n' ' '; echo; ls /proc | grep -c '^[0-9]'",
    );
    assert!(st.success(), "{err}");
    let mounts: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    for m in &mounts {
        assert!(
            [
                "/",
                "/proc",
                "/sys",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/hostname",
            ]
            .contains(m)
                || m.starts_with("/dev/")
                || m.starts_with("/sys/")
                || m.starts_with("/proc/"),
            "host mount visible: {m} in {mounts:?}"
        );
    }
    // Only our own processes: sh (pid 1) and the pipeline's children.
    let procs: u32 = out.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(procs <= 4, "saw {procs} processes");
}

#[test]
fn sandbox_provides_dev_nodes() {
    let (_d, mut spec) = base("dev");
    let (st, out, err) = sh(
        &mut spec,
        "for n in null zero full random urandom tty; do test -c /dev/$n && echo $n; done; \
         test -L /dev/ptmx && test -c /dev/pts/ptmx && echo ptmx; test -d /dev/shm && echo shm; \
         grep -q '^mqueue /dev/mqueue mqueue ' /proc/self/mounts && echo mqueue; \
         head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo ok; echo x > /dev/full || echo full-err",
    );
    assert!(st.success(), "{err}");
    assert_eq!(
        out,
        "null\nzero\nfull\nrandom\nurandom\ntty\nptmx\nshm\nmqueue\n4\nok\nfull-err\n"
    );
}

#[test]
fn sandbox_network_none_has_only_loopback() {
    let (_d, mut spec) = base("netnone");
    spec.network = Network::None;
    let (st, out, err) = sh(
        &mut spec,
        "ls /sys/class/net 2>/dev/null || cat /proc/net/dev | tail -n +3 | cut -d: -f1",
    );
    assert!(st.success(), "{err}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
}

#[test]
fn sandbox_sets_env_cwd_user_groups_umask() {
    let (dir, mut spec) = base("creds");
    spec.env = vec!["PATH=/bin".into(), "FOO=bar baz".into()];
    spec.cwd = "/work/sub".into();
    spec.uid = 1000;
    spec.gid = 1000;
    spec.additional_gids = vec![2000, 3000];
    spec.umask = 0o027;
    let (st, out, err) = sh(&mut spec, "echo \"$FOO\"; pwd; id -u; id -g; id -G; umask; touch /tmp/f; stat -c %a /tmp/f 2>&1; env | sort | tr '\\n' ' '");
    assert!(st.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "bar baz",
            "/work/sub",
            "1000",
            "1000",
            "1000 2000 3000",
            "0027"
        ]
    );
    assert_eq!(lines[6], "640");
    assert!(
        lines[7].starts_with("FOO=bar baz PATH=/bin PWD=/work/sub"),
        "{}",
        lines[7]
    );
    // The working directory was created (by root) and stays in the layer.
    assert!(upper(&dir).join("work/sub").is_dir());
}

/// The capability sets BuildKit's steps get (runc with Docker's default
/// list): root keeps the default 14 and nothing inheritable or ambient; a
/// non-root user has none.
#[test]
fn sandbox_gives_the_default_capabilities_and_none_inheritable() {
    let caps = |uid: u32| {
        let (_dir, mut spec) = base(&format!("caps-{uid}"));
        spec.uid = uid;
        spec.gid = uid;
        let (st, out, err) = sh(&mut spec, "grep '^Cap' /proc/self/status");
        assert!(st.success(), "{err}");
        out.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let root = caps(0);
    let default = "00000000a80425fb";
    assert_eq!(root["CapInh"], "0000000000000000", "{root:?}");
    assert_eq!(root["CapPrm"], default, "{root:?}");
    assert_eq!(root["CapEff"], default, "{root:?}");
    assert_eq!(root["CapBnd"], default, "{root:?}");
    assert_eq!(root["CapAmb"], "0000000000000000", "{root:?}");
    let user = caps(1000);
    for k in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(user[k], "0000000000000000", "{k}: {user:?}");
    }
    assert_eq!(user["CapBnd"], default, "{user:?}");
}

/// A step runs under a seccomp filter, as BuildKit's run under Docker's
/// default profile: no user namespace of its own (where it would get back
/// every capability it lacks); forks and everything else still work.
#[test]
fn sandbox_steps_run_under_seccomp_and_cannot_make_a_user_namespace() {
    let (_d, mut spec) = base("seccomp");
    let (st, out, err) = sh(
        &mut spec,
        "grep '^Seccomp:' /proc/self/status; \
         unshare -U true 2>&1 && echo made-a-userns; \
         (true | cat) && echo forks-work",
    );
    assert!(st.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some("Seccomp:\t2"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!out.contains("made-a-userns"), "{out}");
    assert_eq!(lines.last().copied(), Some("forks-work"), "{out}");
}

#[test]
fn sandbox_chown_to_other_ids_works_with_subordinate_ids() {
    let (dir, mut spec) = base("chown");
    let (st, out, err) = sh(
        &mut spec,
        "id; touch /f && chown 1000:1000 /f && stat -c %u:%g /f",
    );
    assert!(st.success(), "{err}");
    assert!(out.starts_with("uid=0(root) gid=0(root)"), "{out}");
    assert!(out.ends_with("1000:1000\n"), "{out}");
    let m = std::fs::metadata(upper(&dir).join("f")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (
            idmap().host_uid(1000).unwrap(),
            idmap().host_gid(1000).unwrap()
        )
    );
}

#[test]
fn sandbox_finds_commands_on_the_container_path() {
    let (_d, mut spec) = base("path");
    spec.env = vec!["PATH=/nowhere:/bin".into()];
    spec.args = vec!["echo".into(), "hi".into()];
    let mut out = CollectOutput::default();
    let o = sandbox::run(&spec, &idmap(), &mut out).unwrap();
    assert!(o.status.success());
    assert_eq!(out.stdout, b"hi\n");
    spec.args = vec!["no-such-command".into()];
    let err = sandbox::run(&spec, &idmap(), &mut out).unwrap_err();
    assert!(matches!(err, SandboxError::Exec { .. }), "{err}");
    assert!(err.to_string().contains("not found in $PATH"), "{err}");
}

#[test]
fn sandbox_closes_fds_and_cwd_cannot_reach_the_host() {
    let (_d, mut spec) = base("fds");
    // A host directory descriptor without CLOEXEC, as a careless caller might leak.
    let host_dir = std::ffi::CString::new("/").unwrap();
    // SAFETY: plain open(2) of "/" with a valid C string.
    let fd = unsafe { libc::open(host_dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(fd > 2);
    let (st, out, err) = sh(&mut spec, "ls /proc/self/fd | tr '\\n' ' '");
    assert!(st.success(), "{err}");
    assert_eq!(out.split_whitespace().count(), 4, "open fds: {out}"); // 0 1 2 + ls's own dir fd
    for n in [fd, 3, 4, 5, 6, 7, 8] {
        spec.cwd = format!("/proc/self/fd/{n}");
        let mut o = CollectOutput::default();
        let r = sandbox::run(&spec, &idmap(), &mut o);
        assert!(
            r.is_err(),
            "cwd {} was accepted: {:?}",
            spec.cwd,
            String::from_utf8_lossy(&o.stdout)
        );
    }
    spec.cwd = "/".into();
    let (_, out, _) = sh(
        &mut spec,
        "cd /proc/1/cwd/.. && ls /; readlink /proc/1/root",
    );
    assert!(!out.contains("work\n") || out.contains("bin"), "{out}");
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
}

#[test]
fn sandbox_mounts_bind_ro_and_tmpfs_and_removes_created_points() {
    let (dir, mut spec) = base("binds");
    let src = dir.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("data"), "hello").unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    spec.mounts = vec![
        Mount {
            target: "/mnt/ro".into(),
            kind: MountKind::Bind {
                src: src.clone(),
                readonly: true,
            },
            keep_created_target: false,
        },
        Mount {
            target: "/run/secrets/tok".into(),
            kind: MountKind::Bind {
                src: secret,
                readonly: true,
            },
            keep_created_target: false,
        },
        Mount {
            target: "/scratch".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
            },
            keep_created_target: false,
        },
        Mount {
            target: "/kept".into(),
            kind: MountKind::Tmpfs { size: None },
            keep_created_target: true,
        },
    ];
    let (st, out, err) = sh(
        &mut spec,
        "cat /mnt/ro/data; echo; cat /run/secrets/tok; echo; echo x > /mnt/ro/new 2>/dev/null || echo ro; \
         echo t > /scratch/t && cat /scratch/t; \
         o=,$(grep ' /scratch tmpfs' /proc/mounts | cut -d' ' -f4),; \
         case $o in *,nodev,*) echo nodev;; *,nosuid,*) echo nosuid;; esac; \
         echo hi > /etc/hosts || echo hosts-ro",
    );
    assert!(st.success(), "{err}");
    // The tmpfs is nosuid only, as BuildKit's `type=tmpfs`.
    assert_eq!(out, "hello\ns3cret\nro\nt\nnosuid\nhosts-ro\n");
    let up = upper(&dir);
    let mut left: Vec<_> = std::fs::read_dir(&up)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    // /etc is a copied-up, unchanged directory (the diff leaves it out); the
    // stubs for /etc/hosts etc. are gone from it. /dev, /proc and /sys,
    // missing from this root, stay as runc's do for BuildKit's steps.
    assert_eq!(
        left,
        ["dev", "etc", "kept", "proc", "sys"],
        "mount points left in the upper dir"
    );
    assert_eq!(std::fs::read_dir(up.join("etc")).unwrap().count(), 0);
    let diff = builder_core::snapshot::diff_upper(&up, &[dir.join("lower")], &idmap()).unwrap();
    let paths: Vec<_> = diff
        .iter()
        .map(|e| e.path.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["dev", "kept", "proc", "sys"]);
    assert!(!src.join("new").exists());
}

#[test]
fn sandbox_ensure_dir_keeps_the_parents_of_a_removed_file_mount_point() {
    let (dir, mut spec) = base("ensure");
    let secret = dir.join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    spec.mounts = vec![
        Mount {
            target: "/run/secrets".into(),
            kind: MountKind::EnsureDir,
            keep_created_target: true,
        },
        Mount {
            target: "/run/secrets/tok".into(),
            kind: MountKind::Bind {
                src: secret,
                readonly: true,
            },
            keep_created_target: false,
        },
    ];
    let (st, out, err) = sh(&mut spec, "cat /run/secrets/tok");
    assert!(st.success(), "{err}");
    assert_eq!(out, "s3cret");
    let up = upper(&dir);
    assert!(up.join("run/secrets").is_dir());
    assert_eq!(
        std::fs::read_dir(up.join("run/secrets")).unwrap().count(),
        0
    );
}

#[test]
fn sandbox_mount_targets_cannot_follow_symlinks_out() {
    let (dir, mut spec) = base("symlink-target");
    let outside = dir.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, upper(&dir).join("escape")).unwrap();
    spec.mounts = vec![Mount {
        target: "/escape/x".into(),
        kind: MountKind::Tmpfs { size: None },
        keep_created_target: false,
    }];
    spec.args = vec!["/bin/true".into()];
    // Refusing is fine; creating the point outside the root is not.
    let _ = sandbox::run(&spec, &idmap(), &mut CollectOutput::default());
    assert!(
        !outside.join("x").exists(),
        "mount point created outside the root"
    );
}

#[test]
fn sandbox_runs_in_parallel_from_many_threads() {
    // kiln calls run() from rayon/tokio threads: the fork-based setup must
    // not depend on locks or allocation in the child.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let (_d, mut spec) = base(&format!("par{i}"));
                let noise: Vec<Vec<u8>> = (0..1000).map(|n| vec![0u8; n]).collect();
                let (st, out, err) = sh(&mut spec, &format!("echo thread {i}"));
                drop(noise);
                assert!(st.success(), "{err}");
                assert_eq!(out, format!("thread {i}\n"));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn sandbox_single_id_mapping_warns_and_chown_fails() {
    let (_d, mut spec) = base("single");
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let (map, warnings) = sandbox::IdMap::for_user(uid, gid, None, "", "");
    assert!(matches!(
        warnings.as_slice(),
        [sandbox::Warning::SingleIdMapping { .. }]
    ));
    spec.args = vec![
        "/bin/sh".into(),
        "-c".into(),
        "id -u; touch /f; chown 1000 /f || echo chown-failed".into(),
    ];
    let mut out = CollectOutput::default();
    let o = sandbox::run(&spec, &map, &mut out).unwrap();
    assert!(
        o.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\nchown-failed\n");
}

#[test]
fn sandbox_masks_proc_like_buildkit() {
    let (_d, mut spec) = base("mask");
    let (st, out, err) = sh(
        &mut spec,
        "wc -c < /proc/timer_list; grep -c ' /proc/timer_list ' /proc/self/mountinfo; grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; ls /sys/firmware | wc -l",
    );
    assert!(st.success(), "{err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "ro", "0"]
    );
}

#[test]
fn sandbox_scratch_bind_discards_writes() {
    let (dir, mut spec) = base("scratch-bind");
    let src = dir.join("ctx");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), "orig").unwrap();
    let file = dir.join("one");
    std::fs::write(&file, "f").unwrap();
    spec.mounts = vec![
        Mount {
            target: "/ctx".into(),
            kind: MountKind::BindScratch { src: src.clone() },
            keep_created_target: false,
        },
        Mount {
            target: "/one".into(),
            kind: MountKind::BindScratch { src: file.clone() },
            keep_created_target: false,
        },
    ];
    let (st, out, err) = sh(
        &mut spec,
        "echo changed > /ctx/a; touch /ctx/new; echo g > /one; cat /ctx/a /one",
    );
    assert!(st.success(), "{err}");
    assert_eq!(out, "changed\ng\n");
    assert_eq!(std::fs::read_to_string(src.join("a")).unwrap(), "orig");
    assert!(!src.join("new").exists());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "f");
    assert!(!upper(&dir).join("ctx").exists() && !upper(&dir).join("one").exists());
}

#[test]
fn sandbox_mounts_more_layers_than_fit_in_one_page_of_options() {
    let dir = scratch("many-layers");
    let mut lowers = Vec::new();
    for i in 0..80 {
        let l = dir.join(format!(
            "layer-with-a-deliberately-long-name-so-that-the-options-overflow-{i:03}"
        ));
        std::fs::create_dir_all(&l).unwrap();
        std::fs::write(l.join(format!("f{i}")), "").unwrap();
        lowers.push(l);
    }
    let bb = dir.join("bb");
    busybox_root(&bb);
    lowers.push(bb);
    let mut spec = Spec::new(overlay(&dir, lowers), vec![]);
    let (st, out, err) = sh(&mut spec, "ls / | grep -c '^f'");
    assert!(st.success(), "{err}");
    assert_eq!(out, "80\n");
}

#[test]
fn sandbox_network_host_shares_the_host_interfaces() {
    let (_d, mut spec) = base("nethost");
    let host: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim().to_owned())
        .collect();
    let (st, out, err) = sh(
        &mut spec,
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
    );
    assert!(st.success(), "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), host);
}

#[test]
fn sandbox_mounts_layers_whose_paths_contain_option_separators() {
    let dir = scratch("odd:paths,here");
    let lower = dir.join("lower:with,commas");
    busybox_root(&lower);
    let mut spec = Spec::new(overlay(&dir, vec![lower]), vec![]);
    let (st, out, err) = sh(&mut spec, "echo ok > /f; cat /f");
    assert!(st.success(), "{err}");
    assert_eq!(out, "ok\n");
    assert!(dir.join("upper/f").is_file());
}

#[test]
fn sandbox_user_from_the_roots_passwd_prints_like_buildkit() {
    let (dir, mut spec) = base("user-lookup");
    let lower = dir.join("lower");
    std::fs::write(
        lower.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        lower.join("etc/group"),
        "root:x:0:\nwheel:x:10:bob\nbob:x:1000:\n",
    )
    .unwrap();
    let passwd = std::fs::read_to_string(lower.join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(lower.join("etc/group")).unwrap();
    let user = sandbox::resolve_user("bob", Some(&passwd), Some(&group)).unwrap();
    spec.uid = user.uid;
    spec.gid = user.gid;
    spec.additional_gids = user.additional_gids;
    let (st, out, err) = sh(&mut spec, "id");
    assert!(st.success(), "{err}");
    // The kernel's group list is the supplementary groups only, as runc sets
    // it under BuildKit; busybox's id prints exactly that list.
    assert_eq!(out, "uid=1000(bob) gid=1000(bob) groups=10(wheel)\n");
}

/// Host processes whose command line has `marker` as an argument.
fn processes_with_arg(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmd.split(|&b| b == 0).any(|a| a == marker.as_bytes()) {
            found.push(format!("{name}: {}", String::from_utf8_lossy(&cmd)));
        }
    }
    found
}

#[test]
fn sandbox_cancel_kills_the_whole_step_and_cleans_up() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let (d, mut spec) = base("cancel");
    spec.mounts.push(Mount {
        target: "/kiln-cancel-mnt".into(),
        kind: MountKind::Tmpfs { size: None },
        keep_created_target: false,
    });
    // Unique arguments so the check below finds only this test's processes;
    // the background sleep is not pid 1, so only the pid namespace's
    // teardown can kill it.
    let marker = format!("{}", 3000 + std::process::id() % 997);
    spec.args = vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("sleep {marker} & echo started; sleep {marker}; echo not-killed"),
    ];
    let flag = Arc::new(AtomicBool::new(false));
    let setter = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::SeqCst);
        })
    };
    let start = Instant::now();
    let mut out = CollectOutput::default();
    let r = sandbox::run_cancellable(&spec, &idmap(), &mut out, &|| flag.load(Ordering::SeqCst));
    let took = start.elapsed();
    setter.join().unwrap();
    assert!(
        matches!(r, Err(SandboxError::Cancelled)),
        "{r:?} {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    let left = processes_with_arg(&marker);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(
        !upper(&d).join("kiln-cancel-mnt").exists(),
        "created mount point left behind"
    );
}

#[test]
fn sandbox_never_cancelled_step_runs_to_completion() {
    let (_d, mut spec) = base("nocancel");
    spec.args = vec!["/bin/sh".into(), "-c".into(), "sleep 0.3; echo done".into()];
    let mut out = CollectOutput::default();
    let o = sandbox::run_cancellable(&spec, &idmap(), &mut out, &|| false).unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
}

#[test]
fn opener_reads_the_users_own_unreadable_files_below_a_directory() {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("opener-at");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/locked"), "mine\n").unwrap();
    std::fs::set_permissions(
        root.join("sub/locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::os::unix::fs::symlink("locked", root.join("sub/link")).unwrap();
    let fd = std::fs::File::open(&root).unwrap();
    let opener = sandbox::Opener::new(&idmap());
    let read = |rel: &str, in_root: bool| -> std::io::Result<String> {
        // What the caller's own open says first, as the context's reads do.
        let first = match std::fs::File::open(root.join(rel)) {
            Ok(f) if rel.ends_with("locked") => {
                // Root reads it directly; nothing to retry.
                return Ok(std::io::read_to_string(f).unwrap());
            }
            Ok(_) => std::io::Error::from_raw_os_error(libc::ELOOP),
            Err(e) => e,
        };
        let f = opener.retry_at(first, fd.as_fd(), std::path::Path::new(rel), in_root)?;
        Ok(std::io::read_to_string(f).unwrap())
    };
    assert_eq!(read("sub/locked", false).unwrap(), "mine\n");
    assert_eq!(read("sub/locked", true).unwrap(), "mine\n");
    // Errors other than a denial are passed on untouched.
    let e = read("sub/link", true).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    if sandbox::IdMap::detect().0.needs_userns() {
        // Through the helper: a final symlink is never followed, and `..`
        // stays inside the root.
        let denied = || std::io::Error::from_raw_os_error(libc::EACCES);
        let e = opener
            .retry_at(denied(), fd.as_fd(), std::path::Path::new("sub/link"), true)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        let e = opener
            .retry_at(
                denied(),
                fd.as_fd(),
                std::path::Path::new("../../../../etc/hostname"),
                true,
            )
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    }
    // The user's file keeps its mode.
    let mode = std::fs::metadata(root.join("sub/locked")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0);
}
