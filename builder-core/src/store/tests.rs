use super::*;
use crate::image::{media, Descriptor};

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kiln-store-test-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    d
}
static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[test]
fn blobs_are_verified_and_named_by_content() -> Result<(), StoreError> {
    let root = tmp();
    let s = Store::open(&root)?;
    assert!(root.join("oci-layout").is_file());
    let (d, n) = s.put_blob(&b"hello"[..], None)?;
    assert_eq!(n, 5);
    assert_eq!(fs::read(s.blob_path(&d)).ok(), Some(b"hello".to_vec()));
    let wrong = Digest::of(b"other");
    let err = s.put_blob(&b"hello"[..], Some(&wrong));
    assert!(matches!(err, Err(StoreError::DigestMismatch { .. })));
    // A failed write leaves no temp file and no blob under the wrong name.
    assert_eq!(fs::read_dir(s.temp_dir()).map(|r| r.count()).ok(), Some(0));
    assert!(!s.has_blob(&wrong));
    let _ = fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn tag_resolve_untag_and_prune() -> Result<(), StoreError> {
    let root = tmp();
    let s = Store::open(&root)?;
    let layer = s.put_bytes(b"layer")?;
    let config = s.put_json(media::OCI_CONFIG, &serde_json::json!({"os":"linux"}))?;
    let m = crate::image::Manifest::oci(
        config.clone(),
        vec![Descriptor::new(media::OCI_LAYER_TAR, layer.clone(), 5)],
    );
    let md = s.put_json(media::OCI_MANIFEST, &m)?;
    let orphan = s.put_bytes(b"orphan")?;
    let full = s.tag("app", &md)?;
    assert_eq!(full, "docker.io/library/app:latest");
    let index = fs::read_to_string(root.join("index.json")).unwrap_or_default();
    assert!(
        index.contains("\"org.opencontainers.image.ref.name\":\"docker.io/library/app:latest\"")
    );
    assert_eq!(s.resolve("app:latest")?.descriptor.digest, md.digest);
    assert_eq!(
        s.resolve(&md.digest.hex()[..12])?.descriptor.digest,
        md.digest
    );
    let r = s.prune()?;
    assert_eq!(r.blobs_removed, 1);
    assert!(!s.has_blob(&orphan));
    assert!(s.has_blob(&layer) && s.has_blob(&config.digest));
    s.untag("app")?;
    assert!(s.resolve("app").is_err());
    assert_eq!(s.prune()?.blobs_removed, 3);
    assert!(s.cache_dir("../x").is_err());
    assert!(s.cache_dir("build")?.is_dir());
    let _ = fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn prune_waits_for_other_handles_which_can_still_tag() -> Result<(), StoreError> {
    let root = tmp();
    let a = Store::open(&root)?;
    let blob = a.put_bytes(b"{}")?;
    let d = Descriptor::new(media::OCI_MANIFEST, blob.clone(), 2);
    let root2 = root.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let pruner = std::thread::spawn(move || {
        let b = Store::open(&root2).map_err(|e| e.to_string())?;
        let r = b.prune().map_err(|e| e.to_string());
        let _ = tx.send(());
        r
    });
    // The pruner is blocked while `a` is open...
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(300))
        .is_err());
    // ...and `a` can still name its blob, which then survives the prune.
    a.tag("kept", &d)?;
    drop(a);
    let report = pruner
        .join()
        .map_err(|_| StoreError::CacheName("join".into()))?;
    assert_eq!(report.map(|r| r.blobs_removed), Ok(0));
    let s = Store::open(&root)?;
    assert!(s.has_blob(&blob));
    let _ = fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn a_foreign_layout_keeps_its_images() -> Result<(), StoreError> {
    let root = tmp();
    fs::create_dir_all(root.join("blobs/sha256")).map_err(io_err(&root))?;
    let m = br#"{"schemaVersion":2}"#;
    let d = Digest::of(m);
    fs::write(root.join("blobs/sha256").join(d.hex()), m).map_err(io_err(&root))?;
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{d}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
        media::OCI_MANIFEST,
        m.len()
    );
    fs::write(root.join("index.json"), index).map_err(io_err(&root))?;
    let s = Store::open(&root)?;
    let names: Vec<String> = s.images()?.into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["docker.io/library/v1:latest"]);
    let _ = fs::remove_dir_all(&root);
    Ok(())
}
