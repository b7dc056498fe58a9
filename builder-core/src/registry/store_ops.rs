//! What the build engine and `kiln push` call: pulling a base image into the
//! content store and recording which digest its tag resolved to, and pushing
//! an image the store names.
use super::client::Client;
use super::error::{Error, Result};
use super::manifest::{self, ServedManifest};
use super::platform::Platform;
use super::progress::Progress;
use super::pull::{PullPolicy, PulledImage};
use super::push::PushImage;
use super::reference::Reference;
use crate::digest::Digest;
use crate::image::Manifest;
use crate::layer::{variants, CompressionOptions};
use crate::store::{normalize_name, ImageRecord, Store};

/// What [`pull_into_store`] did.
#[derive(Clone, Debug)]
pub struct StoredPull {
    /// The store's record for the reference: its full name
    /// (`docker.io/library/alpine:3.19`, or `…@sha256:…` when pinned) and the
    /// descriptor the name now points at. That is the index when the
    /// reference named one (so other platforms resolve from it too), else
    /// the image manifest.
    pub record: ImageRecord,
    /// The image for the platform asked for; its manifest, config and layers
    /// are all in the store.
    pub image: PulledImage,
}

/// Makes sure the image `reference` names for `platform` is in `store`, and
/// records the digest the name resolved to under the name, so the next
/// build with [`PullPolicy::IfMissing`] is served from the store with no
/// network at all. [`PullPolicy::Always`] (`--pull`) asks the registry about
/// a tag again and moves the name if the tag moved. A name the store holds
/// (a base image pulled before, or an image kiln built) is used as it is
/// under `IfMissing`.
pub fn pull_into_store(
    client: &Client,
    store: &Store,
    reference: &Reference,
    platform: &Platform,
    policy: PullPolicy,
    progress: &dyn Progress,
) -> Result<StoredPull> {
    let name = normalize_name(&reference.to_string()).map_err(|e| Error::InvalidReference {
        reference: reference.to_string(),
        reason: e.reason.to_string(),
    })?;
    // An exact name match only: `Store::resolve` would also take a
    // repository spelled in hex digits as a digest prefix.
    let recorded = store.images()?.into_iter().find(|r| r.name == name);
    let image = client.ensure(
        reference,
        platform,
        store,
        recorded.as_ref().map(|r| &r.descriptor.digest),
        policy,
        progress,
    )?;
    if let (Some(digest), Some(index)) = (&image.index_digest, &image.index) {
        if !store.has_blob(digest) {
            store.put_blob(&index.bytes[..], Some(digest))?;
        }
    }
    let top = image.top_descriptor();
    let record = match recorded {
        Some(r) if r.descriptor.digest == top.digest => r,
        _ => ImageRecord {
            name: store.tag(&name, &top)?,
            descriptor: top,
        },
    };
    Ok(StoredPull { record, image })
}

/// Pushes the store's image `name_or_digest` (a name, a full digest or a
/// unique digest prefix, as [`Store::resolve`] takes them) to every
/// destination. An image is pushed as stored, byte for byte, unless it was
/// built for the store alone: its plain tar layers are gzip-compressed on
/// the way out, as `docker push` compresses, under a manifest naming the
/// compressed blobs. A multi-platform image (an index) is pushed whole, as
/// stored: every platform's manifest by digest, then the index under each
/// tag. Returns the digest of what the tags now point at.
pub fn push_from_store(
    client: &Client,
    store: &Store,
    name_or_digest: &str,
    destinations: &[Reference],
    progress: &dyn Progress,
) -> Result<Digest> {
    let record = store.resolve(name_or_digest)?;
    let top = &record.descriptor;
    let bytes = store.read_blob(&top.digest)?;
    let (media_type, parsed) = manifest::parse(&record.name, Some(&top.media_type), &bytes)?;
    match parsed {
        ServedManifest::Image(m) => {
            let (bytes, m) = compress_plain_layers(store, bytes, m)?;
            let image = push_image(bytes, media_type, m);
            client.push(&image, destinations, store, progress)
        }
        ServedManifest::Index(index) => {
            let mut images = Vec::with_capacity(index.manifests.len());
            for entry in &index.manifests {
                if !store.has_blob(&entry.digest) {
                    let platform = entry.platform.as_ref().map(Platform::from);
                    return Err(Error::BadManifest {
                        reference: record.name.clone(),
                        reason: format!(
                            "its entry {} ({}) is not in the store, so the index cannot be \
                             pushed whole; pull that platform first",
                            entry.digest,
                            platform.map_or_else(|| "no platform".to_string(), |p| p.to_string())
                        ),
                    });
                }
                let child = store.read_blob(&entry.digest)?;
                match manifest::parse(&record.name, Some(&entry.media_type), &child)? {
                    (child_type, ServedManifest::Image(m)) => {
                        images.push(push_image(child, child_type, m))
                    }
                    (_, ServedManifest::Index(_)) => {
                        return Err(Error::BadManifest {
                            reference: record.name.clone(),
                            reason: format!("index entry {} is itself an index", entry.digest),
                        })
                    }
                }
            }
            client.push_index(&bytes, &media_type, &images, destinations, store, progress)
        }
    }
}

/// `manifest` with its plain tar layers gzip-compressed (each converted once
/// and remembered, see [`variants`]), and its new bytes; untouched when it
/// has none.
fn compress_plain_layers(
    store: &Store,
    bytes: Vec<u8>,
    manifest: Manifest,
) -> Result<(Vec<u8>, Manifest)> {
    if !manifest.layers.iter().any(variants::is_uncompressed) {
        return Ok((bytes, manifest));
    }
    let docker = manifest.media_type.as_deref() == Some(crate::image::media::DOCKER_MANIFEST);
    let opts = CompressionOptions::default();
    let mut out = manifest;
    for l in &mut out.layers {
        if let Some(d) = variants::compressed_if_plain(store, l, &opts)? {
            *l = d;
            if docker {
                l.media_type = opts.compression.docker_media_type().to_string();
            }
        }
    }
    let bytes = out.to_json().map_err(|source| Error::Json {
        what: "manifest".into(),
        source,
    })?;
    Ok((bytes, out))
}

fn push_image(manifest: Vec<u8>, media_type: String, parsed: Manifest) -> PushImage {
    PushImage {
        manifest,
        media_type,
        config: parsed.config,
        layers: parsed.layers,
        sources: Vec::new(),
    }
}
