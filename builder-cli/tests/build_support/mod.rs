//! Helpers for the `kiln build` tests: run the binary, read the OCI layout
//! it wrote, flatten the layers the way a container runtime would.
#![allow(dead_code)]
pub mod cache;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kiln binary under test: `$KILN_TEST_BIN` when set (scripts/test
/// runs some test binaries as an unprivileged user, from a copy it can
/// reach), else cargo's.
pub fn kiln_bin() -> PathBuf {
    std::env::var_os("KILN_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")))
}

/// Writes `text` as WORK/Dockerfile and builds CTX with its store in
/// WORK/store: (success, stdout, stderr).
pub fn build_text(work: &Path, ctx: &Path, text: &str) -> (bool, String, String) {
    let df = work.join("Dockerfile");
    std::fs::write(&df, text).unwrap();
    let store = work.join("store");
    kiln(
        &[
            "build",
            "--root",
            store.to_str().unwrap(),
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
        &[],
    )
}

/// Runs kiln; returns (success, stdout, stderr).
pub fn kiln(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(kiln_bin());
    cmd.args(args).env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("kiln runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch directory with files written from `(path, content)` pairs; a
/// path ending in `/` is an empty directory.
pub fn tree(root: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let path = root.join(p);
        if p.ends_with('/') {
            std::fs::create_dir_all(&path).unwrap();
        } else {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, c).unwrap();
        }
    }
}

/// Builds `dockerfile` (a path) with `context` into an OCI layout directory
/// and returns the layout's path; panics with kiln's stderr on failure.
pub fn build_to_layout(
    work: &Path,
    dockerfile: &Path,
    context: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    let out = work.join(format!(
        "layout-{}",
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let root = work.join("store");
    let output = format!("type=oci,dest={},tar=false", out.display());
    let mut args = vec![
        "build",
        "--root",
        root.to_str().unwrap(),
        "-f",
        dockerfile.to_str().unwrap(),
        "-o",
        &output,
    ];
    args.extend_from_slice(extra);
    args.push(context.to_str().unwrap());
    let (ok, _, err) = kiln(&args, env);
    assert!(ok, "kiln build failed:\n{err}");
    out
}

/// Runs `kiln build` of `dockerfile` with `context` into the OCI archive
/// `out`, without judging the result: (success, stdout, stderr).
pub fn build_to_archive(
    work: &Path,
    dockerfile: &Path,
    context: &Path,
    out: &Path,
) -> (bool, String, String) {
    let output = format!("type=oci,dest={}", out.display());
    kiln(
        &[
            "build",
            "--root",
            work.join("store").to_str().unwrap(),
            "-f",
            dockerfile.to_str().unwrap(),
            "-o",
            &output,
            context.to_str().unwrap(),
        ],
        &[],
    )
}

/// The start of a Dockerfile whose root is Debian's busybox-static (see
/// scripts/test-packages.txt) with a link for each applet.
pub const BUSYBOX_BASE: &str = "FROM scratch\n\
     COPY busybox /bin/busybox\n\
     RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// Puts busybox into the context `dir`.
pub fn context_with_busybox(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy("/bin/busybox", dir.join("busybox"))
        .expect("/bin/busybox (scripts/setup-test-env installs busybox-static)");
}

/// Writes `work/ctx` (busybox in it) and `work/Dockerfile`, which is
/// [`BUSYBOX_BASE`] followed by `rest`; returns (context, Dockerfile).
pub fn busybox_build(work: &Path, rest: &str) -> (PathBuf, PathBuf) {
    let ctx = work.join("ctx");
    context_with_busybox(&ctx);
    let df = work.join("Dockerfile");
    std::fs::write(&df, format!("{BUSYBOX_BASE}{rest}")).unwrap();
    (ctx, df)
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// A blob's bytes with gzip undone when it is gzip (plain layers and other
/// blobs as they are).
pub fn gunzipped(raw: Vec<u8>) -> Vec<u8> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return raw;
    }
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut data)
        .unwrap();
    data
}

/// The uncompressed tar of the layer blob `digest`.
pub fn layer_tar(layout: &Path, digest: &str) -> Vec<u8> {
    gunzipped(blob(layout, digest))
}

/// The single image of a layout: (manifest digest, manifest, config).
pub fn image(layout: &Path) -> (String, serde_json::Value, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = &index["manifests"][0];
    let digest = desc["digest"].as_str().unwrap().to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(layout, &digest)).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    (digest, manifest, config)
}

/// One path of the flattened filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `dir`, `file`, `symlink`, `hardlink`.
    pub kind: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// File content or link target.
    pub data: Vec<u8>,
    /// Modification time.
    pub mtime: u64,
}

/// The image's filesystem: layers applied in order, whiteouts honoured.
pub fn files(layout: &Path) -> BTreeMap<String, Item> {
    let (_, manifest, _) = image(layout);
    let mut out: BTreeMap<String, Item> = BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let data = layer_tar(layout, layer["digest"].as_str().unwrap());
        let mut archive = tar::Archive::new(&data[..]);
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let base = name.rsplit('/').next().unwrap_or("").to_string();
            if base == ".wh..wh..opq" {
                // An opaque directory: what lower layers had in it is gone
                // (the marker comes before this layer's own children).
                let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
                out.retain(|k, _| !k.starts_with(&format!("{parent}/")));
                continue;
            }
            if let Some(victim) = base.strip_prefix(".wh.") {
                let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
                let v = if parent.is_empty() {
                    victim.to_string()
                } else {
                    format!("{parent}/{victim}")
                };
                out.retain(|k, _| k != &v && !k.starts_with(&format!("{v}/")));
                continue;
            }
            let h = e.header().clone();
            let kind = match h.entry_type() {
                tar::EntryType::Directory => "dir",
                tar::EntryType::Symlink => "symlink",
                tar::EntryType::Link => "hardlink",
                _ => "file",
            };
            let mut content = Vec::new();
            if kind == "file" {
                e.read_to_end(&mut content).unwrap();
            } else if kind != "dir" {
                content = e.link_name_bytes().map(|b| b.to_vec()).unwrap_or_default();
            }
            out.insert(
                name,
                Item {
                    kind: kind.into(),
                    mode: h.mode().unwrap() & 0o7777,
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    data: content,
                    mtime: h.mtime().unwrap(),
                },
            );
        }
    }
    out
}

/// `file MODE UID:GID CONTENT` or `dir MODE UID:GID`, for compact asserts.
pub fn describe(item: &Item) -> String {
    match item.kind.as_str() {
        "dir" => format!("dir {:04o} {}:{}", item.mode, item.uid, item.gid),
        "file" => format!(
            "file {:04o} {}:{} {:?}",
            item.mode,
            item.uid,
            item.gid,
            String::from_utf8_lossy(&item.data)
        ),
        k => format!(
            "{k} {}:{} -> {}",
            item.uid,
            item.gid,
            String::from_utf8_lossy(&item.data)
        ),
    }
}

/// [`describe`] of the entry at `path` of a [`files`] map, or "absent".
pub fn describe_at(fs: &BTreeMap<String, Item>, path: &str) -> String {
    fs.get(path)
        .map(describe)
        .unwrap_or_else(|| "absent".into())
}

/// The repository's `testdata/build/NAME` directory.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/build")
        .join(name)
}

/// The last layer's members: name → (type, mtime from PAX or the header,
/// PAX records other than path/linkpath, link name).
pub fn last_layer_members(layout: &Path) -> BTreeMap<String, (char, i64, Vec<String>, String)> {
    let (_, manifest, _) = image(layout);
    let layers = manifest["layers"].as_array().unwrap();
    let d = layers.last().unwrap()["digest"].as_str().unwrap();
    let data = layer_tar(layout, d);
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(&data[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut mtime = e.header().mtime().unwrap() as i64;
        let mut recs = Vec::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                let k = x.key().unwrap().to_string();
                let v = x.value_bytes().to_vec();
                if k == "mtime" {
                    mtime = String::from_utf8(v.clone()).unwrap().parse().unwrap();
                }
                if k != "path" && k != "linkpath" {
                    recs.push(format!("{k}={}", String::from_utf8_lossy(&v)));
                }
            }
        }
        let link = e
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or_default();
        out.insert(
            name,
            (e.header().entry_type().as_byte() as char, mtime, recs, link),
        );
    }
    out
}
