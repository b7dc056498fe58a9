//! `--progress=plain|rawjson|quiet` on the registry commands: the same
//! renderers `kiln build` uses, fed by the registry's blob events.
#[path = "../../builder-core/tests/registry_support/mod.rs"]
mod registry_support;

use std::process::{Command, Output};

use builder_core::store::Store;
use registry_support::{store_image, Auth, Registry};

fn kiln(work: &std::path::Path, root: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--root")
        .arg(work.join(root))
        .args(args)
        .env("DOCKER_CONFIG", work.join("docker"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("run kiln")
}

#[test]
fn push_and_pull_render_as_one_internal_step() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let name = format!("{}/progress/app:1", reg.host());
    {
        let store = Store::open(&work.path().join("store")).unwrap();
        let md = store_image(&store, "amd64", &[("f", b"progress\n")]);
        store.tag(&name, &md).unwrap();
    }

    let out = kiln(work.path(), "store", &["push", "--progress=plain", &name]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], format!("#1 [internal] push {name}"));
    let pushed = lines
        .iter()
        .filter(|l| l.starts_with("#1 sha256:") && l.ends_with(" pushed"))
        .count();
    assert_eq!(pushed, 2, "config and one layer: {err}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with(&format!("#1 pushed {name} as sha256:"))));
    let done = lines[lines.len() - 2];
    assert!(done.starts_with("#1 DONE ") && done.ends_with('s'), "{err}");
    assert_eq!(lines[lines.len() - 1], "");

    let out = kiln(work.path(), "other", &["pull", "--progress=rawjson", &name]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "step_started");
    assert_eq!(events[0]["text"], format!("pull {name}"));
    assert_eq!(events.last().unwrap()["type"], "step_finished");
    assert_eq!(events.last().unwrap()["result"], "done");
    assert!(events
        .iter()
        .any(|e| e["type"] == "blob" && e["outcome"] == "downloaded"));

    // Quiet: nothing on stderr but the failure.
    let out = kiln(
        work.path(),
        "other",
        &["pull", "-q", &format!("{}/progress/none:1", reg.host())],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.starts_with("#1 ERROR: "), "{err}");
}
