//! A build whose image stays in the store keeps plain tar layers (as
//! Docker's image store does); every way out of the store compresses them:
//! `kiln push` (read back with skopeo from a real registry), an OCI export
//! of cache hits, and a cache export. Store-only and exporting builds share
//! one cache.
mod build_support;
#[path = "../../builder-core/tests/registry_support/mod.rs"]
mod registry_support;

use std::path::Path;

use build_support::cache::{build, context_with_busybox, Build};
use build_support::{describe, files, image};
use builder_core::store::Store;
use registry_support::{skopeo, skopeo_inspect, Auth, Registry};

const DF: &str = "FROM scratch\n\
    COPY busybox /bin/busybox\n\
    COPY a.txt /a.txt\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo ran > /r && /bin/busybox rm /a.txt\"]\n";

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The stored image NAME: (manifest digest, manifest, config).
fn stored(work: &Path, name: &str) -> (String, serde_json::Value, serde_json::Value) {
    let store = Store::open(&work.join("store")).unwrap();
    let record = store.resolve(name).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&record.descriptor.digest).unwrap()).unwrap();
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&config_digest).unwrap()).unwrap();
    (record.descriptor.digest.to_string(), manifest, config)
}

fn layer_types(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

/// Every layer blob of the layout starts with gzip's magic.
fn assert_gzip_blobs(layout: &Path, manifest: &serde_json::Value) {
    for l in manifest["layers"].as_array().unwrap() {
        let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let blob = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(blob.get(..2), Some(&[0x1f, 0x8b][..]), "{l}");
    }
}

/// What DF's image holds, compactly.
fn assert_image_files(layout: &Path) {
    let f = files(layout);
    assert_eq!(describe(&f["r"]), "file 0644 0:0 \"ran\\n\"");
    assert!(!f.contains_key("a.txt"), "{:?}", f.keys());
    assert_eq!(f["bin/busybox"].kind, "file");
}

/// WORK/ctx with DF's files, and DF built into WORK/store for the store
/// alone, as `plain/app:1`.
fn store_only_build(work: &Path) -> std::path::PathBuf {
    let ctx = context_with_busybox(work, &[("a.txt", "a\n")]);
    let b = build(work, &ctx, DF, &["-t", "plain/app:1"]);
    assert!(b.ok, "{}", b.stderr);
    ctx
}

/// DF again with `extra`: every layer step must hit the cache.
fn build_from_hits(work: &Path, ctx: &Path, extra: &[&str]) -> Build {
    let b = build(work, ctx, DF, extra);
    assert!(b.ok, "{}", b.stderr);
    assert!(b.steps("cache_miss").is_empty(), "{:?}", b.events);
    b
}

#[test]
fn a_store_only_build_keeps_plain_layers_and_push_gzips_them_once() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[("a.txt", "a\n")]);
    let b = build(work.path(), &ctx, DF, &["-t", "plain/app:1"]);
    assert!(b.ok, "{}", b.stderr);

    // Plain tar: the blob digest is the diff_id.
    let (digest, manifest, config) = stored(work.path(), "plain/app:1");
    assert_eq!(digest, b.digest);
    assert_eq!(layer_types(&manifest), vec![TAR; 3]);
    let blobs: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(blobs, diff_ids);

    // The registry gets gzip layers under a new manifest, same config.
    let dest = format!("{}/plain/app:1", reg.host());
    let push = |dest: &str| {
        let (ok, out, err) = build_support::kiln(
            &[
                "--root",
                work.path().join("store").to_str().unwrap(),
                "push",
                "-q",
                "plain/app:1",
                dest,
            ],
            &[],
        );
        assert!(ok, "{err}");
        out.trim().to_string()
    };
    let pushed = push(&dest);
    assert_ne!(pushed, digest);
    let remote: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{dest}"),
    ]))
    .unwrap();
    assert_eq!(layer_types(&remote), vec![GZIP; 3]);
    assert_eq!(remote["config"], manifest["config"]);

    // Read back by a real consumer: the same files.
    let layout = work.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("oci:{}:x", layout.display()),
    ]);
    assert_image_files(&layout);
    assert_gzip_blobs(&layout, &image(&layout).1);

    // Pushing again (elsewhere) converts nothing anew: the same digest, and
    // the conversions were remembered once per layer.
    assert_eq!(push(&format!("{}/plain/again:1", reg.host())), pushed);
    let memo = work.path().join("store/kiln/v1/cache/layer-variants-v1");
    assert_eq!(std::fs::read_dir(memo).unwrap().count(), 3);
}

#[test]
fn an_oci_export_of_hits_from_a_store_only_build_is_gzip_unless_asked_otherwise() {
    let work = tempfile::tempdir().unwrap();
    let ctx = store_only_build(work.path());

    // The same steps, now exported: every layer step hits the store-only
    // build's cache, and the archive still gets gzip layers.
    let out = work.path().join("oci");
    let o = format!("--output=type=oci,dest={},tar=false", out.display());
    build_from_hits(work.path(), &ctx, &[&o]);
    let (_, manifest, config) = image(&out);
    assert_eq!(layer_types(&manifest), vec![GZIP; 3]);
    assert_gzip_blobs(&out, &manifest);
    let (_, _, stored_config) = stored(work.path(), "plain/app:1");
    assert_eq!(config["rootfs"], stored_config["rootfs"]);
    assert_image_files(&out);

    // compression=uncompressed keeps them plain.
    let plain = work.path().join("oci-plain");
    let o = format!(
        "--output=type=oci,dest={},tar=false,compression=uncompressed",
        plain.display()
    );
    build_from_hits(work.path(), &ctx, &[&o]);
    assert_eq!(layer_types(&image(&plain).1), vec![TAR; 3]);
    assert_image_files(&plain);
}

#[test]
fn a_cache_export_of_plain_layers_carries_gzip_and_serves_an_empty_store() {
    let work = tempfile::tempdir().unwrap();
    let ctx = store_only_build(work.path());

    let cache = work.path().join("cache");
    let to = format!("--cache-to=type=local,dest={},mode=max", cache.display());
    build_from_hits(work.path(), &ctx, &[&to]);
    let (_, manifest, _) = image(&cache);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{manifest}");
    assert!(layers.iter().all(|l| l["mediaType"] == GZIP), "{manifest}");
    assert_gzip_blobs(&cache, &manifest);

    // Another machine: an empty store hits every layer step from it.
    let other = tempfile::tempdir().unwrap();
    let from = format!("--cache-from=type=local,src={}", cache.display());
    let out = other.path().join("oci");
    let o = format!("--output=type=oci,dest={},tar=false", out.display());
    build_from_hits(other.path(), &ctx, &[&from, &o]);
    assert_image_files(&out);
}

#[test]
fn a_pushing_build_of_plain_hits_prints_the_digest_it_pushed() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = store_only_build(work.path());

    let dest = format!("{}/plain/pushed:1", reg.host());
    let second = build_from_hits(work.path(), &ctx, &["-t", &dest, "--push"]);
    let remote = skopeo_inspect(&[&format!("docker://{dest}")]);
    assert_eq!(remote["Digest"].as_str(), Some(second.digest.as_str()));
    let raw: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{dest}"),
    ]))
    .unwrap();
    assert_eq!(layer_types(&raw), vec![GZIP; 3]);
    // The store names what was pushed.
    assert_eq!(stored(work.path(), &dest).0, second.digest);
}

#[test]
fn a_plain_layer_from_a_named_context_is_copied_in_and_leaves_compressed() {
    // The base: an OCI layout with a plain layer, made with another store,
    // so its blob is nowhere in the store of the build below.
    let elsewhere = tempfile::tempdir().unwrap();
    let bctx = context_with_busybox(elsewhere.path(), &[]);
    let base = elsewhere.path().join("base");
    let o = format!(
        "--output=type=oci,dest={},tar=false,compression=uncompressed",
        base.display()
    );
    let b = build(
        elsewhere.path(),
        &bctx,
        "FROM scratch\nCOPY busybox /bin/busybox\n",
        &[&o],
    );
    assert!(b.ok, "{}", b.stderr);
    let (_, base_manifest, base_config) = image(&base);
    assert_eq!(layer_types(&base_manifest), vec![TAR]);

    let work = tempfile::tempdir().unwrap();
    let ctx = context_with_busybox(work.path(), &[("a.txt", "a\n")]);
    let out = work.path().join("oci");
    let named = format!("mybase=oci-layout://{}", base.display());
    let o = format!("--output=type=oci,dest={},tar=false", out.display());
    let b = build(
        work.path(),
        &ctx,
        "FROM mybase\nCOPY a.txt /a.txt\n",
        &["--build-context", &named, &o],
    );
    assert!(b.ok, "{}", b.stderr);
    let (_, manifest, config) = image(&out);
    assert_eq!(layer_types(&manifest), vec![GZIP; 2]);
    assert_gzip_blobs(&out, &manifest);
    // The same content: the base's diff_id, under a new (gzip) digest.
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        base_config["rootfs"]["diff_ids"][0]
    );
    assert_ne!(
        manifest["layers"][0]["digest"],
        base_manifest["layers"][0]["digest"]
    );
    let f = files(&out);
    assert_eq!(f["bin/busybox"].kind, "file");
    assert_eq!(describe(&f["a.txt"]), "file 0644 0:0 \"a\\n\"");
    // The plain blob was copied into the store, and is kept there.
    let plain = base_manifest["layers"][0]["digest"].as_str().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    assert!(store.has_blob(&plain.parse().unwrap()));
}
