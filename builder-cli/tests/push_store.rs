//! `kiln push NAME [DEST]` from the content store (`--root`) to a real
//! Distribution registry, read back with skopeo, and `kiln pull` into a store.
#[path = "../../builder-core/tests/registry_support/mod.rs"]
mod registry_support;

use std::process::{Command, Output};

use builder_core::store::Store;
use registry_support::{skopeo_inspect, store_image, Auth, Registry};

fn kiln(work: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--root")
        .arg(work.join("store"))
        .args(args)
        .env("DOCKER_CONFIG", work.join("docker"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("run kiln")
}

fn skopeo_digest(name: &str) -> String {
    let info = skopeo_inspect(&[&format!("docker://{name}")]);
    info["Digest"].as_str().unwrap_or_default().to_string()
}

#[test]
fn push_a_store_name_to_itself_or_elsewhere() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let md = {
        let store = Store::open(&work.path().join("store")).unwrap();
        let md = store_image(&store, "amd64", &[("f", b"from the store\n")]);
        store
            .tag(&format!("{}/cli/app:1", reg.host()), &md)
            .unwrap();
        md
    };

    // No DESTINATION: the store name is where it goes.
    let name = format!("{}/cli/app:1", reg.host());
    let out = kiln(work.path(), &["push", "-q", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        md.digest.to_string()
    );
    assert_eq!(skopeo_digest(&name), md.digest.to_string());

    // By digest, to another name.
    let elsewhere = format!("{}/cli/copy:2", reg.host());
    let out = kiln(work.path(), &["push", "-q", md.digest.hex(), &elsewhere]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(skopeo_digest(&elsewhere), md.digest.to_string());

    // By digest with no DESTINATION: refused, naming what is missing.
    let out = kiln(work.path(), &["push", &md.digest.hex()[..12]]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DESTINATION"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `kiln pull` brings it into another store and records the tag.
    let other = work.path().join("other");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--root")
        .arg(&other)
        .args(["pull", "-q", &elsewhere])
        .env("DOCKER_CONFIG", work.path().join("docker"))
        .output()
        .expect("run kiln");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        md.digest.to_string()
    );
    let other = Store::open(&other).unwrap();
    assert_eq!(
        other.resolve(&elsewhere).unwrap().descriptor.digest,
        md.digest
    );

    // A name the store does not hold.
    let out = kiln(work.path(), &["push", "nothing-here:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing-here"));
}

#[test]
fn build_push_sends_every_tag_and_image_output_name() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "pushed by kiln build\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a.txt /\n").unwrap();
    let tagged = format!("{}/build/app:1", reg.host());
    let output = format!("{}/build/other:2", reg.host());
    let kept = format!("{}/build/local-only:3", reg.host());
    let out = kiln(
        work.path(),
        &[
            "build",
            "--progress=quiet",
            "-t",
            &tagged,
            "--push",
            "-o",
            &format!("type=image,name={output},push=true"),
            "-o",
            &format!("type=image,name={kept}"),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(skopeo_digest(&tagged), digest);
    assert_eq!(skopeo_digest(&output), digest);
    // push=false keeps the name in the store only.
    let store = Store::open(&work.path().join("store")).unwrap();
    assert_eq!(
        store.resolve(&kept).unwrap().descriptor.digest.to_string(),
        digest
    );
    let missing = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{kept}")])
        .output()
        .unwrap();
    assert!(!missing.status.success(), "push=false must not push");
}
