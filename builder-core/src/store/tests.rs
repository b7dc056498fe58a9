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
