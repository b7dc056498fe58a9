//! Base images for a build: the store first, then the registry (through
//! `--registry-mirror` and friends), pulled straight into the store.
use std::io::{Read, Write};

use super::images::{BaseImage, LayerBlob};
use super::{ImageConfig, ImageResolver, Platform};
use crate::registry::{self, BlobSink, Client, NoProgress, PullPolicy, Reference};
use crate::store::Store;

/// The store as the registry client's blob sink.
pub struct StoreSink<'a>(pub &'a Store);

struct SinkWriter(Option<crate::store::BlobWriter>);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("blob already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

fn to_store_digest(d: &registry::Digest) -> Result<crate::digest::Digest, registry::Error> {
    d.to_string()
        .parse()
        .map_err(|_| registry::Error::BlobMissing(d.to_string()))
}

impl registry::BlobWriter for SinkWriter {
    fn written(&self) -> u64 {
        self.0.as_ref().map_or(0, |w| w.written())
    }
    fn commit(mut self: Box<Self>, digest: &registry::Digest, size: u64) -> registry::Result<()> {
        let w = self
            .0
            .take()
            .ok_or_else(|| registry::Error::BlobMissing(digest.to_string()))?;
        let expected = to_store_digest(digest)?;
        let path = w.temp_path().to_path_buf();
        match w.commit(Some(&expected)) {
            Ok((_, got)) if got == size => Ok(()),
            Ok((_, got)) => Err(registry::Error::DigestMismatch {
                digest: digest.to_string(),
                reason: format!("size {got} differs from the descriptor's {size}"),
            }),
            Err(crate::store::StoreError::DigestMismatch { actual, .. }) => {
                Err(registry::Error::DigestMismatch {
                    digest: digest.to_string(),
                    reason: format!("got {actual}"),
                })
            }
            Err(e) => Err(registry::Error::Transport {
                url: path.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }
}

impl BlobSink for StoreSink<'_> {
    fn has(&self, digest: &registry::Digest) -> bool {
        to_store_digest(digest).is_ok_and(|d| self.0.has_blob(&d))
    }
    fn begin(&self) -> registry::Result<Box<dyn registry::BlobWriter>> {
        let w = self
            .0
            .blob_writer()
            .map_err(|e| registry::Error::Transport {
                url: self.0.temp_dir().display().to_string(),
                detail: e.to_string(),
            })?;
        Ok(Box::new(SinkWriter(Some(w))))
    }
    fn open(&self, digest: &registry::Digest) -> registry::Result<Box<dyn Read + Send>> {
        let d = to_store_digest(digest)?;
        self.0
            .open_blob(&d)
            .map(|f| Box::new(f) as Box<dyn Read + Send>)
            .map_err(|_| registry::Error::BlobMissing(digest.to_string()))
    }
}

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
        let name = r.to_string();
        let recorded = self.store.resolve(&name).ok();
        let sink = StoreSink(self.store);
        let rplat: registry::Platform = platform
            .format()
            .parse()
            .map_err(|e: registry::Error| e.to_string())?;
        let (config_bytes, layers, digest) = match (&self.client, &recorded) {
            (Some(client), _) => {
                let recorded_digest: Option<registry::Digest> = recorded
                    .as_ref()
                    .and_then(|rec| rec.descriptor.digest.to_string().parse().ok());
                let policy = if self.pull {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfMissing
                };
                let pulled = client
                    .ensure(
                        &r,
                        &rplat,
                        &sink,
                        recorded_digest.as_ref(),
                        policy,
                        &NoProgress,
                    )
                    .map_err(|e| format!("{reference}: {e}"))?;
                // Record the tag so the next build needs no network.
                if r.digest.is_none() {
                    let (d, size, mt) = match &pulled.index_digest {
                        Some(_) => (None, 0, String::new()),
                        None => (
                            Some(pulled.manifest_digest.to_string()),
                            pulled.manifest.len() as u64,
                            pulled.media_type.clone(),
                        ),
                    };
                    if let Some(d) = d.and_then(|d| d.parse::<crate::digest::Digest>().ok()) {
                        let desc = crate::image::Descriptor::new(&mt, d, size);
                        self.store
                            .tag(&name, &desc)
                            .map_err(|e| format!("{reference}: {e}"))?;
                    }
                }
                let layers = pulled
                    .layers
                    .iter()
                    .map(|l| (l.digest.to_string(), l.size, l.media_type.clone()))
                    .collect::<Vec<_>>();
                (
                    pulled.config.clone(),
                    layers,
                    pulled.manifest_digest.to_string(),
                )
            }
            (None, Some(rec)) => {
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
                let layers = m
                    .layers
                    .iter()
                    .map(|l| (l.digest.to_string(), l.size, l.media_type.clone()))
                    .collect();
                (raw, layers, desc.digest.to_string())
            }
            (None, None) => {
                return Err(format!("{reference}: image not found in the store"));
            }
        };
        let config = ImageConfig::from_json(&config_bytes)
            .map_err(|e| format!("{reference}: config: {e}"))?;
        let mut blobs = Vec::new();
        for (i, (d, size, mt)) in layers.into_iter().enumerate() {
            let sd: crate::digest::Digest = d
                .parse()
                .map_err(|_| format!("{reference}: bad layer digest {d}"))?;
            blobs.push(LayerBlob {
                path: self.store.blob_path(&sd),
                digest: d,
                diff_id: config.rootfs.diff_ids.get(i).cloned().unwrap_or_default(),
                size,
                media_type: mt,
            });
        }
        Ok(BaseImage {
            config,
            layers: blobs,
            manifest_digest: digest,
        })
    }
}
