//! Shared helpers for the sandbox and snapshot tests: a tiny root filesystem
//! made of Debian's busybox-static (never a committed binary).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

use builder_core::sandbox::{self, CollectOutput, ExitStatus, IdMap, Rootfs, Spec};

/// Builds `dir` as a busybox root: /bin/busybox, one symlink per applet, /etc, /tmp.
pub fn busybox_root(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    assert!(list.status.success());
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    for d in ["etc", "tmp", "root", "home"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// A scratch directory for one test, under TMPDIR (which the unprivileged
/// run points at a directory the test user owns); removed on drop, inside
/// the user namespace when its files belong to subordinate ids.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = sandbox::remove_tree(&idmap(), &self.0);
    }
}

pub fn scratch(name: &str) -> Scratch {
    let p = std::env::temp_dir().join(format!("kiln-test-{}-{name}", std::process::id()));
    let _ = sandbox::remove_tree(&idmap(), &p);
    std::fs::create_dir_all(&p).unwrap();
    Scratch(p)
}

/// An overlay workspace over `lowers` inside `dir`.
pub fn overlay(dir: &Path, lowers: Vec<PathBuf>) -> Rootfs {
    let upper = dir.join("upper");
    let work = dir.join("work");
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    Rootfs::Overlay {
        lowers,
        upper,
        work,
    }
}

pub fn idmap() -> IdMap {
    IdMap::detect().0
}

/// Runs `sh -c script` and returns (status, stdout, stderr).
pub fn sh(spec: &mut Spec, script: &str) -> (ExitStatus, String, String) {
    spec.args = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let mut out = CollectOutput::default();
    let outcome = sandbox::run(spec, &idmap(), &mut out).unwrap_or_else(|e| panic!("{e}"));
    (
        outcome.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Build options for a context at `ctx`, scratch files in `work`, the
/// host's platform and every other setting at its default; tests override
/// fields with struct update syntax.
pub fn build_options(ctx: &Path, work: &Path) -> builder_core::build::BuildOptions {
    builder_core::build::BuildOptions {
        dockerfile_name: "Dockerfile".into(),
        context: ctx.to_path_buf(),
        ignore: None,
        build_args: Default::default(),
        target: None,
        labels: Default::default(),
        platform: builder_core::build::Platform::host(),
        source_date_epoch: None,
        named_contexts: Default::default(),
        scratch: work.to_path_buf(),
        compression: Default::default(),
        extra_hosts: Vec::new(),
        shm_size: None,
    }
}

/// A scratch directory for an engine test: `ctx/` holding a static busybox
/// and a content store in `store/`.
pub fn build_dir(name: &str) -> (Scratch, builder_core::store::Store) {
    let dir = scratch(name);
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy("/bin/busybox", ctx.join("busybox"))
        .expect("/bin/busybox (scripts/setup-test-env installs busybox-static)");
    let store = builder_core::store::Store::open(&dir.join("store")).unwrap();
    (dir, store)
}
