//! `kiln login`, `kiln push`, `kiln debug pull` and `kiln logout` against a
//! real Distribution registry with basic auth over TLS.
#[path = "../../builder-core/tests/registry_support/mod.rs"]
mod registry_support;

use std::process::{Command, Output};

use builder_core::registry::OciDir;
use registry_support::{make_image, Auth, Registry, Tls};

fn kiln(docker_config: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kiln");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("kiln output")
}

#[test]
fn login_push_pull_logout() {
    let tls = Tls::new();
    let reg = Registry::start(Auth::Basic("cli".into(), "pw".into()), Some(&tls));
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("docker");
    let layout_dir = work.path().join("layout");
    let layout = OciDir::create(&layout_dir).unwrap();
    make_image(&layout, &[&[("x", b"cli\n")]], "v1");
    let ca = tls.ca.to_str().unwrap();
    let host = reg.host();

    let out = kiln(
        &cfg,
        &[
            "--registry-ca",
            ca,
            "login",
            "-u",
            "cli",
            "--password-stdin",
            &host,
        ],
        "wrong\n",
    );
    assert!(!out.status.success(), "a wrong password is refused");
    assert!(
        !cfg.join("config.json").exists(),
        "nothing stored for a failed login"
    );

    let out = kiln(
        &cfg,
        &[
            "login",
            "--registry-ca",
            ca,
            "-u",
            "cli",
            "--password-stdin",
            &host,
        ],
        "pw\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = std::fs::read_to_string(cfg.join("config.json")).unwrap();
    assert!(saved.contains(&host), "{saved}");

    let dest = format!("{host}/cli/app:v1");
    let src = format!("oci-layout://{}:v1", layout_dir.display());
    let out = kiln(&cfg, &["--registry-ca", ca, "push", &src, &dest], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(pushed.starts_with("sha256:"), "{pushed}");

    let pulled_dir = work.path().join("pulled");
    let out = kiln(
        &cfg,
        &[
            "--registry-ca",
            ca,
            "debug",
            "pull",
            "-q",
            &dest,
            pulled_dir.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), pushed);
    let index = std::fs::read_to_string(pulled_dir.join("index.json")).unwrap();
    assert!(
        index.contains(pushed.as_str()) && index.contains("\"v1\""),
        "{index}"
    );

    let out = kiln(&cfg, &["logout", &host], "");
    assert!(out.status.success());
    let saved = std::fs::read_to_string(cfg.join("config.json")).unwrap();
    assert!(!saved.contains(&host), "{saved}");
    let out = kiln(
        &cfg,
        &[
            "--registry-ca",
            ca,
            "debug",
            "pull",
            "-q",
            &dest,
            pulled_dir.to_str().unwrap(),
        ],
        "",
    );
    assert!(!out.status.success(), "logged out: refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn push_rejects_unknown_sources() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let root = root.to_str().unwrap();
    let out = kiln(
        work.path(),
        &["--root", root, "push", "myimage", "127.0.0.1:1/x:y"],
        "",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("myimage") && err.contains("store"), "{err}");
    let out = kiln(
        work.path(),
        &[
            "--registry-mirror",
            "docker.io=",
            "debug",
            "pull",
            "busybox",
            "/nonexistent",
        ],
        "",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid registry mirror"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
