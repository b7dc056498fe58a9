//! `kiln images|inspect|rmi|prune --root DIR` against a store the library filled.
use std::process::Command;

use builder_core::fsentry::{Content, Entry, Kind};
use builder_core::image::{ImageConfig, Platform};
use builder_core::layer::{write_layer, LayerOptions};
use builder_core::store::Store;

fn kiln(root: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running kiln: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn images_inspect_rmi_prune() {
    let root = std::env::temp_dir().join(format!("kiln-cli-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let store = Store::open(&root).unwrap_or_else(|e| panic!("{e}"));
    let entry = Entry {
        path: "hello".into(),
        kind: Kind::File {
            content: Content::Bytes(std::sync::Arc::from(&b"hi\n"[..])),
            size: 3,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nanos: 0,
        xattrs: Default::default(),
    };
    let layer = write_layer(&store, vec![entry], &LayerOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = ImageConfig::scratch(&Platform::host());
    cfg.add_history("COPY hello /", None, None, Some(layer.diff_id.clone()));
    let img = store
        .put_image(&cfg, &[layer.descriptor])
        .unwrap_or_else(|e| panic!("{e}"));
    store.tag("demo:1", &img).unwrap_or_else(|e| panic!("{e}"));
    drop(store);

    let (ok, out) = kiln(&root, &["images"]);
    assert!(ok && out.contains("demo:1"), "{out}");
    let (ok, out) = kiln(&root, &["inspect", "demo:1"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(v["Descriptor"]["digest"], img.digest.to_string());
    assert_eq!(
        v["Config"]["rootfs"]["diff_ids"][0],
        layer.diff_id.to_string()
    );
    let (ok, out) = kiln(&root, &["prune"]);
    assert!(ok && out.contains("Deleted 0 blobs"), "{out}");
    let (ok, _) = kiln(&root, &["rmi", "demo:1"]);
    assert!(ok);
    let (ok, out) = kiln(&root, &["prune"]);
    assert!(ok && out.contains("Deleted 3 blobs"), "{out}");
    let (ok, out) = kiln(&root, &["inspect", "demo:1"]);
    assert!(!ok && out.contains("no image named"), "{out}");
    let _ = std::fs::remove_dir_all(&root);
}
