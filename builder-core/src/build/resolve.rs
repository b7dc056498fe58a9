//! Base images for a build: the store first, then the registry (through
//! `--registry-mirror` and friends), pulled straight into the store by the
//! registry module's `pull_into_store`, which records the tag so the next
//! build needs no network.
use super::images::{BaseImage, LayerBlob};
use super::{ImageConfig, ImageResolver, Platform};
use crate::registry::{self, Client, NoProgress, PullPolicy, Reference};
use crate::store::Store;

/// Resolves FROM and `COPY --from` images: a name the store holds is used
/// as it is (unless `pull`), anything else is pulled with `client`.
pub struct StoreResolver<'a> {
    /// The store images come from and go to.
    pub store: &'a Store,
    /// The registry client; None means the store only.
    pub client: Option<Client>,
    /// `--pull`: resolve tags again.
    pub pull: bool,
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(&mut self, reference: &str, platform: &Platform) -> Result<BaseImage, String> {
        let r = Reference::parse(reference).map_err(|e| e.to_string())?;
        let (config_bytes, layers, digest) = match &self.client {
            Some(client) => {
                let rplat: registry::Platform = platform
                    .format()
                    .parse()
                    .map_err(|e: registry::Error| e.to_string())?;
                let policy = if self.pull {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfMissing
                };
                let pulled =
                    registry::pull_into_store(client, self.store, &r, &rplat, policy, &NoProgress)
                        .map_err(|e| format!("{reference}: {e}"))?;
                let image = pulled.image;
                (
                    image.config,
                    image.layers,
                    image.manifest_digest.to_string(),
                )
            }
            None => {
                let name = r.to_string();
                let rec = self
                    .store
                    .resolve(&name)
                    .map_err(|_| format!("{reference}: image not found in the store"))?;
                let p = crate::image::Platform {
                    os: platform.os.clone(),
                    architecture: platform.architecture.clone(),
                    ..crate::image::Platform::host()
                };
                let (desc, m, _) = self
                    .store
                    .load_image(&rec.descriptor, &p)
                    .map_err(|e| format!("{reference}: {e}"))?;
                let raw = self
                    .store
                    .read_blob(&m.config.digest)
                    .map_err(|e| format!("{reference}: {e}"))?;
                (raw, m.layers, desc.digest.to_string())
            }
        };
        let config = ImageConfig::from_json(&config_bytes)
            .map_err(|e| format!("{reference}: config: {e}"))?;
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerBlob {
                path: self.store.blob_path(&l.digest),
                digest: l.digest.to_string(),
                diff_id: config
                    .rootfs
                    .diff_ids
                    .get(i)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
            .collect();
        Ok(BaseImage {
            config,
            layers,
            manifest_digest: digest,
        })
    }
}
