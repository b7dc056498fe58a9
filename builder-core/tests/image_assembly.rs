//! Images built from hand-made entries through the public API, then read by
//! real consumers: skopeo, umoci, podman (+ runc), and our own exporters.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use builder_core::export::{self, parse_output, ExportOptions};
use builder_core::fsentry::{Content, Entry, Kind};
use builder_core::image::{Descriptor, ImageConfig, Platform};
use builder_core::layer::{write_layer, Compression, CompressionOptions, LayerOptions};
use builder_core::store::Store;

fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Removes a test's directory, whose unpacked image may hold directories
/// without write permission (umoci keeps the image's modes).
fn remove_scratch(dir: &Path) {
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+rwX")
        .arg(dir)
        .status();
    let _ = std::fs::remove_dir_all(dir);
}

fn e(path: &str, kind: Kind, mode: u32, mtime: i64) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime,
        mtime_nanos: 0,
        xattrs: BTreeMap::new(),
    }
}

fn bytes(path: &str, data: &str, mtime: i64) -> Entry {
    e(
        path,
        Kind::File {
            content: Content::Bytes(Arc::from(data.as_bytes())),
            size: data.len() as u64,
        },
        0o644,
        mtime,
    )
}

/// A busybox image: /bin/busybox (static), /bin/sh, /etc/hello, a hardlink,
/// a long path; then a second layer that deletes /etc/gone.
fn build(store: &Store, mtime: i64, epoch: Option<i64>, opts: CompressionOptions) -> Descriptor {
    let bb = std::fs::metadata("/bin/busybox")
        .map(|m| m.len())
        .unwrap_or(0);
    let long = format!("opt/{}/{}", "d".repeat(90), "file-with-a-long-name.txt");
    let layer1 = vec![
        e("bin", Kind::Dir, 0o755, mtime),
        e(
            "bin/busybox",
            Kind::File {
                content: Content::Path("/bin/busybox".into()),
                size: bb,
            },
            0o755,
            mtime,
        ),
        e(
            "bin/sh",
            Kind::Symlink {
                target: "busybox".into(),
            },
            0o777,
            mtime,
        ),
        e("etc", Kind::Dir, 0o755, mtime),
        bytes("etc/hello", "hello from kiln\n", mtime),
        bytes("etc/gone", "to be deleted\n", mtime),
        e(
            "etc/hello-link",
            Kind::Hardlink {
                target: "etc/hello".into(),
            },
            0o644,
            mtime,
        ),
        e("opt", Kind::Dir, 0o755, mtime),
        e(&format!("opt/{}", "d".repeat(90)), Kind::Dir, 0o755, mtime),
        bytes(&long, "long\n", mtime),
    ];
    let lopts = LayerOptions {
        compression: opts,
        source_date_epoch: epoch,
    };
    let l1 = write_layer(store, layer1, &lopts).unwrap_or_else(|e| panic!("layer 1: {e}"));
    let l2 = write_layer(
        store,
        vec![
            e("etc", Kind::Dir, 0o755, mtime),
            e("etc/gone", Kind::Whiteout, 0, 0),
        ],
        &lopts,
    )
    .unwrap_or_else(|e| panic!("layer 2: {e}"));
    let mut cfg = ImageConfig::scratch(&Platform::host());
    let created = builder_core::image::format_rfc3339(epoch.unwrap_or(0), 0);
    cfg.created = Some(created.clone());
    cfg.add_history(
        "COPY . / # buildkit",
        Some("buildkit.dockerfile.v0"),
        Some(&created),
        Some(l1.diff_id.clone()),
    );
    cfg.add_history(
        "RUN rm /etc/gone",
        None,
        Some(&created),
        Some(l2.diff_id.clone()),
    );
    cfg.config.cmd = Some(vec![
        "/bin/busybox".into(),
        "cat".into(),
        "/etc/hello".into(),
    ]);
    cfg.add_labels([("org.example".to_string(), "<&>".to_string())]);
    cfg.add_history("CMD", None, Some(&created), None);
    store
        .put_image(&cfg, &[l1.descriptor, l2.descriptor])
        .unwrap_or_else(|e| panic!("put_image: {e}"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn export_to(store: &Store, img: &Descriptor, spec: &str, names: &[&str]) -> export::ExportReport {
    let spec = parse_output(spec).unwrap_or_else(|e| panic!("{e}"));
    let opts = ExportOptions {
        names: names.iter().map(|s| s.to_string()).collect(),
        ..ExportOptions::default()
    };
    export::export(store, img, &spec, &opts).unwrap_or_else(|e| panic!("export: {e}"))
}

#[test]
fn skopeo_reads_the_store_and_an_oci_archive() {
    let dir = scratch_dir("skopeo");
    let store = Store::open(&dir.join("store")).unwrap_or_else(|e| panic!("{e}"));
    let img = build(&store, 1_700_000_000, None, CompressionOptions::default());
    store
        .tag("kiln-test/hello:1", &img)
        .unwrap_or_else(|e| panic!("{e}"));
    let archive = dir.join("img.tar");
    export_to(
        &store,
        &img,
        &format!("type=oci,dest={}", archive.display()),
        &["kiln-test/hello:1"],
    );
    let js = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display())));
    let v: serde_json::Value = serde_json::from_str(&js).unwrap_or_default();
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(2), "{js}");
    assert_eq!(v["Labels"]["org.example"], "<&>");
    // The store itself is an OCI layout skopeo can read by name.
    let js = run(Command::new("skopeo").arg("inspect").arg(format!(
        "oci:{}:docker.io/kiln-test/hello:1",
        dir.join("store").display()
    )));
    assert!(js.contains(&img.digest.to_string()), "{js}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn umoci_unpacks_an_oci_directory_with_whiteouts_applied() {
    let dir = scratch_dir("umoci");
    let store = Store::open(&dir.join("store")).unwrap_or_else(|e| panic!("{e}"));
    let img = build(&store, 1_700_000_000, None, CompressionOptions::default());
    let layout = dir.join("layout");
    export_to(
        &store,
        &img,
        &format!("type=oci,dest={},tar=false", layout.display()),
        &["hello:v1"],
    );
    let bundle = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hello"))
            .ok()
            .as_deref(),
        Some("hello from kiln\n")
    );
    assert!(!rootfs.join("etc/gone").exists());
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).ok(),
        Some(PathBuf::from("busybox"))
    );
    remove_scratch(&dir);
}

#[test]
fn podman_loads_and_runs_a_docker_archive() {
    let dir = scratch_dir("podman");
    let store = Store::open(&dir.join("store")).unwrap_or_else(|e| panic!("{e}"));
    let img = build(&store, 1_700_000_000, None, CompressionOptions::default());
    let archive = dir.join("docker.tar");
    let name = format!("localhost/kiln-it-{}:latest", std::process::id());
    export_to(
        &store,
        &img,
        &format!("type=docker,dest={}", archive.display()),
        &[&name],
    );
    let js = run(Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .arg(format!("docker-archive:{}", archive.display())));
    assert!(js.contains("application/vnd.docker"), "{js}");
    // Private podman storage so parallel runs and other users do not collide.
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(dir.join("pr"))
            .arg("--runroot")
            .arg(dir.join("prr"));
        c.arg("--storage-driver").arg("vfs");
        c.args(args);
        c
    };
    let archive_s = archive.display().to_string();
    let loaded = run(&mut podman(&["load", "-i", &archive_s]));
    assert!(loaded.contains(&name), "{loaded}");
    let out = run(&mut podman(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1024:1024",
        "--network",
        "none",
        &name,
    ]));
    assert_eq!(out, "hello from kiln\n");
    let out = run(&mut podman(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1024:1024",
        "--network",
        "none",
        &name,
        "/bin/sh",
        "-c",
        "test -e /etc/gone || echo gone; cat /etc/hello-link",
    ]));
    assert_eq!(out, "gone\nhello from kiln\n");
    let _ = podman(&["rmi", "-a", "-f"]).output();
    remove_scratch(&dir);
}

#[test]
fn same_inputs_same_digest_and_epoch_hides_mtimes() {
    let dir = scratch_dir("repro");
    let a = Store::open(&dir.join("a")).unwrap_or_else(|e| panic!("{e}"));
    let b = Store::open(&dir.join("b")).unwrap_or_else(|e| panic!("{e}"));
    let one = CompressionOptions {
        threads: 1,
        ..CompressionOptions::default()
    };
    let many = CompressionOptions {
        threads: 4,
        ..CompressionOptions::default()
    };
    assert_eq!(
        build(&a, 1_700_000_000, None, one).digest,
        build(&b, 1_700_000_000, None, many).digest
    );
    // Different mtimes: different images without SOURCE_DATE_EPOCH, equal with it.
    assert_ne!(
        build(&a, 1_700_000_000, None, one).digest,
        build(&b, 1_700_000_500, None, one).digest
    );
    let epoch = Some(1_000_000_000);
    assert_eq!(
        build(&a, 1_700_000_000, epoch, one).digest,
        build(&b, 1_700_000_500, epoch, one).digest
    );
    // zstd and uncompressed layers are reproducible too.
    for c in [Compression::Zstd, Compression::Uncompressed] {
        let o = CompressionOptions {
            compression: c,
            ..CompressionOptions::default()
        };
        assert_eq!(build(&a, 5, None, o).digest, build(&b, 5, None, o).digest);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tar_listing(p: &Path) -> Vec<String> {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{e}"));
    let mut a = tar::Archive::new(f);
    let mut v = Vec::new();
    for x in a.entries().into_iter().flatten().flatten() {
        v.push(
            x.path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    v
}

#[test]
fn local_and_tar_outputs_hold_the_flattened_filesystem() {
    let dir = scratch_dir("flat");
    let store = Store::open(&dir.join("store")).unwrap_or_else(|e| panic!("{e}"));
    let img = build(&store, 1_700_000_000, None, CompressionOptions::default());
    // One file straight out of the layers, whiteouts honoured.
    let (_, m, _) = store
        .load_image(&img, &Platform::host())
        .unwrap_or_else(|e| panic!("{e}"));
    let read = |p: &str| {
        export::read_image_file(&store, &m, Path::new(p)).unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        read("/etc/hello").as_deref(),
        Some(&b"hello from kiln\n"[..])
    );
    assert_eq!(
        read("etc/hello-link").as_deref(),
        Some(&b"hello from kiln\n"[..])
    );
    assert_eq!(read("/etc/gone"), None);
    assert_eq!(read("/bin/sh"), None);
    let local = dir.join("local");
    export_to(
        &store,
        &img,
        &format!("type=local,dest={}", local.display()),
        &[],
    );
    assert_eq!(
        std::fs::read_to_string(local.join("etc/hello"))
            .ok()
            .as_deref(),
        Some("hello from kiln\n")
    );
    assert!(!local.join("etc/gone").exists());
    let tarf = dir.join("fs.tar");
    export_to(
        &store,
        &img,
        &format!("type=tar,dest={}", tarf.display()),
        &[],
    );
    let names = tar_listing(&tarf);
    assert!(names.contains(&"etc/hello".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("gone")), "{names:?}");
    // Recompressing to zstd for an OCI archive keeps the diff_ids (config unchanged).
    let z = dir.join("z.tar");
    let r = export_to(
        &store,
        &img,
        &format!("type=oci,dest={},compression=zstd", z.display()),
        &[],
    );
    assert_ne!(r.manifest.digest, img.digest);
    let js = run(Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .arg(format!("oci-archive:{}", z.display())));
    assert!(js.contains("tar+zstd"), "{js}");
    // iidfile and metadata file.
    let iid = dir.join("iid");
    export::write_iidfile(&iid, &r, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read_to_string(&iid).ok(),
        Some(r.manifest.digest.to_string())
    );
    let meta = export::metadata_json(&r, &["x".into()]);
    assert_eq!(meta["containerimage.digest"], r.manifest.digest.to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A base image pulled as Docker schema 2 keeps Docker layer types in the
/// store; an image built on it is an OCI manifest, whose layers must carry
/// OCI types too (umoci refuses "blob is not correct mediatype" otherwise),
/// also when the mixed manifest was stored by an older kiln.
#[test]
fn docker_typed_base_layers_get_oci_types_in_oci_manifests() {
    use builder_core::image::{media, Manifest};
    let dir = scratch_dir("mixed-types");
    let store = Store::open(&dir.join("store")).unwrap_or_else(|e| panic!("{e}"));
    let img = build(&store, 1_700_000_000, None, CompressionOptions::default());
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("store/blobs/sha256").join(img.digest.hex()))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut docker_layers = manifest.layers.clone();
    docker_layers[0].media_type = media::DOCKER_LAYER_GZIP.to_string();
    let cfg: ImageConfig = serde_json::from_slice(
        &std::fs::read(
            dir.join("store/blobs/sha256")
                .join(manifest.config.digest.hex()),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let built = store
        .put_image(&cfg, &docker_layers)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(built.digest, img.digest, "put_image normalises layer types");
    // A mixed manifest as an older kiln stored it.
    let mut mixed = manifest.clone();
    mixed.layers = docker_layers;
    let mut mdesc = store
        .put_json(media::OCI_MANIFEST, &mixed)
        .unwrap_or_else(|e| panic!("{e}"));
    mdesc.platform = img.platform.clone();
    let layout = dir.join("layout");
    let report = export_to(
        &store,
        &mdesc,
        &format!("type=oci,dest={},tar=false", layout.display()),
        &["mixed:v1"],
    );
    assert_eq!(report.manifest.digest, img.digest);
    let bundle = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle));
    assert!(bundle.join("rootfs/etc/hello").exists());
    remove_scratch(&dir);
}
