//! A built image into the store: its canonical config and manifest, and
//! the `-t` names. The `-o` outputs are the export module's, reading the
//! image back from the store.
use super::images::{sha256_digest, MT_CONFIG, MT_MANIFEST};
use super::{BuiltImage, LayerBlob};
use crate::image::Descriptor;
use crate::layer::{variants, CompressionOptions};
use crate::store::Store;

/// The serialised config and manifest of a built image.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Canonical config JSON.
    pub config: Vec<u8>,
    /// Its digest.
    pub config_digest: String,
    /// Canonical manifest JSON.
    pub manifest: Vec<u8>,
    /// Its digest: the image's identity.
    pub digest: String,
}

/// Serialises an image's config and manifest.
pub fn manifest(image: &BuiltImage) -> Result<Manifest, String> {
    let config = image.config.to_json().map_err(|e| format!("config: {e}"))?;
    let config_digest = sha256_digest(&config);
    let layers: Vec<serde_json::Value> = image
        .layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size}))
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    let manifest = serde_json::to_vec(&m).map_err(|e| format!("manifest: {e}"))?;
    let digest = sha256_digest(&manifest);
    Ok(Manifest {
        config,
        config_digest,
        manifest,
        digest,
    })
}

/// Compresses the image's plain tar layers (cache hits from builds whose
/// image stayed in the store) as `opts` says, each converted once (see
/// [`variants`](crate::layer::variants)): for a build whose image leaves
/// the store, so that the stored manifest is the one pushed or exported.
pub fn compress_plain_layers(
    store: &Store,
    image: &mut BuiltImage,
    opts: &CompressionOptions,
) -> Result<(), String> {
    for l in &mut image.layers {
        let from = Descriptor::new(&l.media_type, in_store(store, l)?, l.size);
        let Some(d) = variants::compressed_if_plain(store, &from, opts)
            .map_err(|e| format!("layer {}: {e}", l.digest))?
        else {
            continue;
        };
        l.path = store.blob_path(&d.digest);
        l.digest = d.digest.to_string();
        l.size = d.size;
        l.media_type = d.media_type;
    }
    Ok(())
}

/// Copies the layer's blob into `store` unless it is there (a named
/// context's layers live in their OCI layout); returns its digest.
fn in_store(store: &Store, l: &LayerBlob) -> Result<crate::digest::Digest, String> {
    let d: crate::digest::Digest = l
        .digest
        .parse()
        .map_err(|_| format!("bad layer digest {}", l.digest))?;
    if !store.has_blob(&d) {
        let f = std::fs::File::open(&l.path).map_err(|e| format!("{}: {e}", l.path.display()))?;
        store
            .put_blob(f, Some(&d))
            .map_err(|e| format!("store: {e}"))?;
    }
    Ok(d)
}

/// Puts the image's config and manifest into `store` (its layers are there
/// already, or are copied in) and names it with each of `names`. Returns
/// the manifest's descriptor.
pub fn store_image(
    store: &Store,
    image: &BuiltImage,
    m: &Manifest,
    names: &[String],
) -> Result<Descriptor, String> {
    for l in &image.layers {
        in_store(store, l)?;
    }
    store
        .put_bytes(&m.config)
        .map_err(|e| format!("store: {e}"))?;
    let digest = store
        .put_bytes(&m.manifest)
        .map_err(|e| format!("store: {e}"))?;
    let mut desc = Descriptor::new(MT_MANIFEST, digest, m.manifest.len() as u64);
    desc.platform = Some(crate::image::Platform {
        os_version: None,
        os_features: None,
        ..image.config.platform.clone()
    });
    for n in names {
        store.tag(n, &desc).map_err(|e| format!("store: {e}"))?;
    }
    Ok(desc)
}
