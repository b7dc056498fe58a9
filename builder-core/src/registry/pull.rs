//! Pulling: resolve a reference to one platform's image manifest, then fetch
//! the config and layers concurrently into a [`BlobSink`], each verified
//! before it is kept.
use std::io::{Read, Write};

use super::auth::pull_scope;
use super::client::{status_error, Client, Request};
use super::error::{Error, Result};
use super::manifest::{self, ServedManifest, MANIFEST_ACCEPT};
use super::platform::Platform;
use super::progress::{BlobOutcome, Event, Progress};
use super::reference::Reference;
use super::sink::{read_blob, BlobSink};
use crate::digest::{Digest, DigestWriter};
use crate::image::{Descriptor, Manifest};

/// An image resolved (and, after [`Client::pull`], stored).
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The reference pinned to `manifest_digest`.
    pub reference: Reference,
    /// Digest of the platform's image manifest (what a build records).
    pub manifest_digest: Digest,
    /// Digest of the index the manifest was picked from, if any.
    pub index_digest: Option<Digest>,
    /// That index as served (media type and bytes), if any.
    pub index: Option<ServedIndex>,
    /// The manifest's media type (OCI or Docker schema 2).
    pub media_type: String,
    /// The manifest's bytes, exactly as served.
    pub manifest: Vec<u8>,
    /// The config blob's descriptor.
    pub config_descriptor: Descriptor,
    /// The config blob's bytes.
    pub config: Vec<u8>,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

impl PulledImage {
    /// A descriptor of the manifest itself.
    pub fn manifest_descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.media_type,
            self.manifest_digest.clone(),
            self.manifest.len() as u64,
        )
    }

    /// A descriptor of what the reference names: the index when it named
    /// one, else the manifest. This is what a tag is recorded as.
    pub fn top_descriptor(&self) -> Descriptor {
        match (&self.index_digest, &self.index) {
            (Some(d), Some(i)) => Descriptor::new(&i.media_type, d.clone(), i.bytes.len() as u64),
            _ => self.manifest_descriptor(),
        }
    }
}

/// An image index (or Docker manifest list) exactly as the registry served it.
#[derive(Clone, Debug)]
pub struct ServedIndex {
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// When a tag is asked about again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Use the digest recorded for the tag when there is one (no network if
    /// the store holds the image).
    #[default]
    IfMissing,
    /// Resolve the tag again (`--pull`).
    Always,
}

/// Where a manifest came from, so its blobs are fetched from the same place first.
struct Fetched {
    bytes: Vec<u8>,
    content_type: Option<String>,
    digest: Digest,
}

impl Client {
    fn get_manifest(
        &self,
        reference: &Reference,
        object: &str,
        expect: Option<&Digest>,
    ) -> Result<Fetched> {
        let path = format!("/v2/{}/manifests/{object}", reference.repository);
        let mut errors = Vec::new();
        let endpoints = self.endpoints(&reference.registry);
        for host in &endpoints {
            let mut req =
                Request::new("GET", path.clone(), vec![pull_scope(&reference.repository)]);
            req.headers.push(("Accept", MANIFEST_ACCEPT.to_string()));
            let result = self.send(host, &req).and_then(|resp| {
                if resp.status() != 200 {
                    return Err(status_error(&format!("{host}{path}"), resp));
                }
                let content_type = resp.header("Content-Type").map(str::to_string);
                let mut bytes = Vec::new();
                resp.into_reader()
                    .take(8 << 20)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::Transport {
                        url: format!("{host}{path}"),
                        detail: e.to_string(),
                    })?;
                let digest = Digest::of(&bytes);
                if let Some(want) = expect {
                    if &digest != want {
                        return Err(Error::DigestMismatch {
                            digest: want.to_string(),
                            reason: format!("manifest from {host} hashes to {digest}"),
                        });
                    }
                }
                Ok(Fetched {
                    bytes,
                    content_type,
                    digest,
                })
            });
            match result {
                Ok(f) => return Ok(f),
                Err(e) if endpoints.len() == 1 => return Err(e),
                Err(e) => errors.push(format!("{host}: {e}")),
            }
        }
        Err(Error::AllEndpointsFailed {
            what: reference.to_string(),
            errors,
        })
    }

    /// Resolves `reference` to the image for `platform`, fetching manifests
    /// and the config but no layers. Nothing is stored.
    pub fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<PulledImage> {
        let name = reference.to_string();
        let top = self.get_manifest(reference, &reference.object(), reference.digest.as_ref())?;
        let (mut media_type, parsed) =
            manifest::parse(&name, top.content_type.as_deref(), &top.bytes)?;
        let (fetched, image, index) = match parsed {
            ServedManifest::Image(m) => (top, m, None),
            ServedManifest::Index(index) => {
                let pick = manifest::select(&name, &index, platform)?.clone();
                let child =
                    self.get_manifest(reference, &pick.digest.to_string(), Some(&pick.digest))?;
                let (mt, m) = manifest::parse(&name, child.content_type.as_deref(), &child.bytes)?;
                let ServedManifest::Image(m) = m else {
                    return Err(Error::BadManifest {
                        reference: name,
                        reason: "index entry is an index".into(),
                    });
                };
                let index = (
                    top.digest,
                    ServedIndex {
                        media_type: std::mem::replace(&mut media_type, mt),
                        bytes: top.bytes,
                    },
                );
                (child, m, Some(index))
            }
        };
        let (index_digest, index) = index.unzip();
        let config = self.get_small_blob(reference, &image.config)?;
        Ok(PulledImage {
            reference: reference.with_digest(fetched.digest.clone()),
            manifest_digest: fetched.digest,
            index_digest,
            index,
            media_type,
            manifest: fetched.bytes,
            config_descriptor: image.config.clone(),
            config,
            layers: image.layers,
        })
    }

    fn get_small_blob(&self, reference: &Reference, desc: &Descriptor) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.download(
            reference,
            desc,
            &mut VecSink(&mut buf),
            &super::progress::NoProgress,
        )?;
        Ok(buf)
    }

    /// Resolves `reference` (always asking the registry, as `--pull` does)
    /// and downloads whatever blobs `sink` lacks.
    pub fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<PulledImage> {
        let image = self.resolve(reference, platform)?;
        progress.event(Event::Resolved {
            reference: &reference.to_string(),
            digest: &image.manifest_digest,
        });
        self.store_image(&image, sink, progress)?;
        Ok(image)
    }

    /// Pulls an image pinned by digest. When `sink` already holds its
    /// manifest, config and layers, no request is made at all: this is how
    /// a rebuild with a recorded base digest runs offline.
    pub fn pull_by_digest(
        &self,
        reference: &Reference,
        platform: &Platform,
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<PulledImage> {
        let digest = reference
            .digest
            .clone()
            .ok_or_else(|| Error::InvalidReference {
                reference: reference.to_string(),
                reason: "pull_by_digest needs name@sha256:...".into(),
            })?;
        if let Some(image) = local_image(reference, &digest, platform, sink)? {
            // Blobs the sink holds are reported present, not fetched.
            self.store_image(&image, sink, progress)?;
            return Ok(image);
        }
        self.pull(reference, platform, sink, progress)
    }

    /// What a build calls for a base image: a pinned reference, or a tag
    /// whose digest the caller `recorded` earlier, is served from `sink` when
    /// possible; otherwise (or with [`PullPolicy::Always`] for a tag) the
    /// registry is asked. The caller records what the tag resolved to
    /// ([`PulledImage::top_descriptor`]); [`super::pull_into_store`] does
    /// this for the content store.
    pub fn ensure(
        &self,
        reference: &Reference,
        platform: &Platform,
        sink: &dyn BlobSink,
        recorded: Option<&Digest>,
        policy: PullPolicy,
        progress: &dyn Progress,
    ) -> Result<PulledImage> {
        let pinned = match (&reference.digest, recorded, policy) {
            (Some(d), _, _) => Some(d.clone()),
            (None, Some(d), PullPolicy::IfMissing) => Some(d.clone()),
            _ => None,
        };
        match pinned {
            Some(d) => self.pull_by_digest(&reference.with_digest(d), platform, sink, progress),
            None => self.pull(reference, platform, sink, progress),
        }
    }

    fn store_image(
        &self,
        image: &PulledImage,
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<()> {
        self.download_all(&image.reference, &image.layers, sink, progress)?;
        // Config and manifest last: a manifest in the store means its blobs are too.
        super::sink::write_blob(sink, &image.config)?;
        super::sink::write_blob(sink, &image.manifest)?;
        Ok(())
    }

    /// Downloads `blobs` into `sink` with bounded parallelism; blobs already
    /// held are skipped. The first failure stops the rest.
    pub fn download_all(
        &self,
        reference: &Reference,
        blobs: &[Descriptor],
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<()> {
        super::parallel::for_each(blobs, self.opts.parallel, |desc| {
            let outcome = if sink.has(&desc.digest) {
                BlobOutcome::AlreadyPresent
            } else {
                self.download(reference, desc, &mut SinkTarget(sink), progress)?;
                BlobOutcome::Downloaded
            };
            progress.event(Event::BlobDone {
                digest: &desc.digest,
                outcome,
            });
            Ok(())
        })
    }

    /// One blob from the first endpoint that serves it whole and correct.
    fn download(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        target: &mut dyn Target,
        progress: &dyn Progress,
    ) -> Result<()> {
        let endpoints = self.endpoints(&reference.registry);
        let mut errors = Vec::new();
        for host in &endpoints {
            match self.download_from(host, reference, desc, target, progress) {
                Ok(()) => return Ok(()),
                Err(e) if endpoints.len() == 1 => return Err(e),
                Err(e) => errors.push(format!("{host}: {e}")),
            }
        }
        Err(Error::AllEndpointsFailed {
            what: desc.digest.to_string(),
            errors,
        })
    }

    fn download_from(
        &self,
        host: &str,
        reference: &Reference,
        desc: &Descriptor,
        target: &mut dyn Target,
        progress: &dyn Progress,
    ) -> Result<()> {
        let path = format!("/v2/{}/blobs/{}", reference.repository, desc.digest);
        let url = format!("{host}{path}");
        let mut writer = target.begin()?;
        progress.event(Event::BlobStarted {
            digest: &desc.digest,
            size: desc.size,
        });
        let mut attempt = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            attempt += 1;
            let done = writer.written();
            let mut req =
                Request::new("GET", path.clone(), vec![pull_scope(&reference.repository)]);
            if done > 0 {
                req.headers.push(("Range", format!("bytes={done}-")));
            }
            let resp = self.send(host, &req)?;
            match resp.status() {
                200 if done > 0 => {
                    // No range support: start over.
                    drop(writer);
                    writer = target.begin()?;
                }
                200 | 206 => {}
                _ => return Err(status_error(&url, resp)),
            }
            let limit = desc.size + 1 - writer.written();
            let mut body = resp.into_reader().take(limit);
            let mut last_report = writer.written();
            let outcome = loop {
                match body.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        writer
                            .write_all(&buf[..n])
                            .map_err(|e| Error::io(format!("blob {}", desc.digest), e))?;
                        let w = writer.written();
                        if w - last_report >= 1 << 20 {
                            last_report = w;
                            progress.event(Event::BlobProgress {
                                digest: &desc.digest,
                                done: w,
                                total: desc.size,
                            });
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            match outcome {
                Ok(()) if writer.written() < desc.size && attempt < self.opts.max_attempts => {
                    // Connection closed early: resume.
                    progress.event(Event::Retrying {
                        what: &url,
                        error: "connection closed early",
                    });
                }
                Ok(()) => return writer.commit(&desc.digest, desc.size),
                // Everything arrived before the connection failed; a ranged
                // request for nothing would only get 416.
                Err(_) if writer.written() >= desc.size => {
                    return writer.commit(&desc.digest, desc.size)
                }
                Err(e) if attempt < self.opts.max_attempts => {
                    progress.event(Event::Retrying {
                        what: &url,
                        error: &e.to_string(),
                    });
                    std::thread::sleep(self.opts.backoff * attempt);
                }
                Err(e) => {
                    return Err(Error::Transport {
                        url,
                        detail: e.to_string(),
                    })
                }
            }
        }
    }
}

/// Reads an image wholly from `sink`, if its manifest (or index) is there.
fn local_image(
    reference: &Reference,
    digest: &Digest,
    platform: &Platform,
    sink: &dyn BlobSink,
) -> Result<Option<PulledImage>> {
    if !sink.has(digest) {
        return Ok(None);
    }
    let name = reference.to_string();
    let bytes = read_blob(sink, digest)?;
    let (mut media_type, parsed) = manifest::parse(&name, None, &bytes)?;
    let (manifest_digest, manifest_bytes, image, index): (
        Digest,
        Vec<u8>,
        Manifest,
        Option<ServedIndex>,
    ) = match parsed {
        ServedManifest::Image(m) => (digest.clone(), bytes, m, None),
        ServedManifest::Index(index) => {
            let pick = manifest::select(&name, &index, platform)?;
            if !sink.has(&pick.digest) {
                return Ok(None);
            }
            let child = read_blob(sink, &pick.digest)?;
            let (mt, m) = manifest::parse(&name, None, &child)?;
            let ServedManifest::Image(m) = m else {
                return Ok(None);
            };
            let index = ServedIndex {
                media_type: std::mem::replace(&mut media_type, mt),
                bytes,
            };
            (pick.digest.clone(), child, m, Some(index))
        }
    };
    if !sink.has(&image.config.digest) {
        return Ok(None);
    }
    let config = read_blob(sink, &image.config.digest)?;
    Ok(Some(PulledImage {
        reference: reference.with_digest(manifest_digest.clone()),
        manifest_digest,
        index_digest: index.as_ref().map(|_| digest.clone()),
        index,
        media_type,
        manifest: manifest_bytes,
        config_descriptor: image.config.clone(),
        config,
        layers: image.layers,
    }))
}

/// Where a download goes: the store, or memory for small blobs.
trait Target {
    fn begin(&mut self) -> Result<Box<dyn super::sink::BlobWriter + '_>>;
}

struct SinkTarget<'a>(&'a dyn BlobSink);

impl Target for SinkTarget<'_> {
    fn begin(&mut self) -> Result<Box<dyn super::sink::BlobWriter + '_>> {
        self.0.begin()
    }
}

struct VecSink<'a>(&'a mut Vec<u8>);

impl Target for VecSink<'_> {
    fn begin(&mut self) -> Result<Box<dyn super::sink::BlobWriter + '_>> {
        self.0.clear();
        Ok(Box::new(VecWriter(DigestWriter::new(self.0))))
    }
}

/// A small blob collected in memory, checked like one written to a store.
struct VecWriter<'a>(DigestWriter<&'a mut Vec<u8>>);

impl Write for VecWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl super::sink::BlobWriter for VecWriter<'_> {
    fn written(&self) -> u64 {
        self.0.size()
    }
    fn commit(self: Box<Self>, digest: &Digest, size: u64) -> Result<()> {
        let (buf, actual, got) = self.0.finish();
        let checked = super::sink::check(digest, size, &actual, got);
        if checked.is_err() {
            buf.clear();
        }
        checked
    }
}
