//! Pushing: every blob the registry lacks (skipping existing ones, mounting
//! from a sibling repository when possible, monolithic or chunked uploads),
//! then the manifest under each destination tag.
use std::io::Read;

use super::auth::{pull_scope, push_scope};
use super::client::{status_error, Body, Client, Request};
use super::error::{Error, Result};
use super::progress::{BlobOutcome, Event, Progress};
use super::reference::Reference;
use super::sink::BlobSink;
use crate::digest::Digest;
use crate::image::Descriptor;

/// An image to push: its manifest bytes and the blobs they name.
#[derive(Clone, Debug)]
pub struct PushImage {
    /// The manifest, pushed byte for byte.
    pub manifest: Vec<u8>,
    /// Its media type (the `Content-Type` of the manifest PUT).
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs.
    pub layers: Vec<Descriptor>,
    /// Repositories known to hold some of the blobs (e.g. where the base
    /// image was pulled from), for cross-repository mounts.
    pub sources: Vec<(Digest, Reference)>,
}

impl Client {
    /// Pushes `image` (blobs read from `sink`) to every destination and
    /// returns the manifest's digest.
    pub fn push(
        &self,
        image: &PushImage,
        destinations: &[Reference],
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<Digest> {
        let digest = Digest::of(&image.manifest);
        let mut blobs = vec![image.config.clone()];
        blobs.extend(image.layers.iter().cloned());
        for b in &blobs {
            if !sink.has(&b.digest) {
                return Err(Error::BlobMissing(b.digest.to_string()));
            }
        }
        let mut pushed: Vec<Reference> = Vec::new();
        for dest in destinations {
            let mut sources = image.sources.clone();
            // A repository already pushed to in this call holds every blob.
            for p in &pushed {
                for b in &blobs {
                    sources.push((b.digest.clone(), p.clone()));
                }
            }
            self.push_blobs(dest, &blobs, &sources, sink, progress)?;
            self.put_manifest(dest, &image.media_type, &image.manifest, progress)?;
            pushed.push(dest.clone());
        }
        Ok(digest)
    }

    /// Pushes a multi-platform image: each of `images` (the index's entries)
    /// by digest to every destination's repository, then the index itself,
    /// byte for byte, under each destination. Returns the index's digest.
    pub fn push_index(
        &self,
        index: &[u8],
        media_type: &str,
        images: &[PushImage],
        destinations: &[Reference],
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<Digest> {
        let by_digest: Vec<Reference> = destinations
            .iter()
            .map(|d| Reference {
                tag: None,
                digest: None,
                ..d.clone()
            })
            .collect();
        for image in images {
            self.push(image, &by_digest, sink, progress)?;
        }
        for dest in destinations {
            self.put_manifest(dest, media_type, index, progress)?;
        }
        Ok(Digest::of(index))
    }

    /// PUTs manifest (or index) `bytes` under `dest`'s tag, or its digest
    /// when `dest` has no tag.
    fn put_manifest(
        &self,
        dest: &Reference,
        media_type: &str,
        bytes: &[u8],
        progress: &dyn Progress,
    ) -> Result<()> {
        let digest = Digest::of(bytes);
        let object = dest.tag.clone().unwrap_or_else(|| digest.to_string());
        let path = format!("/v2/{}/manifests/{object}", dest.repository);
        let mut req = Request::new("PUT", path.clone(), vec![push_scope(&dest.repository)]);
        req.headers.push(("Content-Type", media_type.to_string()));
        req.body = Body::Bytes(bytes);
        let host = dest.api_host();
        let resp = self.send(host, &req)?;
        if !(200..300).contains(&resp.status()) {
            return Err(status_error(&format!("{host}{path}"), resp));
        }
        progress.event(Event::ManifestPushed {
            reference: &dest.to_string(),
            digest: &digest,
        });
        Ok(())
    }

    fn push_blobs(
        &self,
        dest: &Reference,
        blobs: &[Descriptor],
        sources: &[(Digest, Reference)],
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<()> {
        super::parallel::for_each(blobs, self.opts.parallel, |desc| {
            let outcome = self.push_blob(dest, desc, sources, sink, progress)?;
            progress.event(Event::BlobDone {
                digest: &desc.digest,
                outcome,
            });
            Ok(())
        })
    }

    fn push_blob(
        &self,
        dest: &Reference,
        desc: &Descriptor,
        sources: &[(Digest, Reference)],
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<BlobOutcome> {
        let host = dest.api_host();
        let repo = &dest.repository;
        let scope = push_scope(repo);
        let head_path = format!("/v2/{repo}/blobs/{}", desc.digest);
        let resp = self.send(host, &Request::new("HEAD", head_path, vec![scope.clone()]))?;
        if resp.status() == 200 {
            return Ok(BlobOutcome::Exists);
        }
        let mut location = None;
        for (d, src) in sources {
            if d != &desc.digest || src.registry != dest.registry || &src.repository == repo {
                continue;
            }
            let path = format!(
                "/v2/{repo}/blobs/uploads/?mount={}&from={}",
                desc.digest,
                url::form_urlencoded::byte_serialize(src.repository.as_bytes()).collect::<String>()
            );
            let req = Request::new(
                "POST",
                path,
                vec![scope.clone(), pull_scope(&src.repository)],
            );
            let resp = self.send(host, &req)?;
            match resp.status() {
                201 => {
                    return Ok(BlobOutcome::Mounted {
                        from: src.repository.clone(),
                    })
                }
                202 => {
                    location = Some(upload_location(&resp)?);
                    break;
                }
                _ => {}
            }
        }
        let mut location = match location {
            Some(l) => l,
            None => {
                let path = format!("/v2/{repo}/blobs/uploads/");
                let resp = self.send(
                    host,
                    &Request::new("POST", path.clone(), vec![scope.clone()]),
                )?;
                if resp.status() != 202 {
                    return Err(status_error(&format!("{host}{path}"), resp));
                }
                upload_location(&resp)?
            }
        };
        progress.event(Event::BlobStarted {
            digest: &desc.digest,
            size: desc.size,
        });
        let chunk = self.opts.chunk_size.max(1);
        let mut offset = 0u64;
        if desc.size > chunk {
            while offset < desc.size {
                let len = chunk.min(desc.size - offset);
                let start = offset;
                let make = move || -> Result<(Box<dyn Read + Send>, u64)> {
                    let mut r = sink.open(&desc.digest)?;
                    std::io::copy(&mut (&mut r).take(start), &mut std::io::sink())
                        .map_err(|e| Error::io(format!("blob {}", desc.digest), e))?;
                    Ok((Box::new(r.take(len)), len))
                };
                let mut req = Request::new("PATCH", location.to_string(), vec![scope.clone()]);
                req.headers
                    .push(("Content-Type", "application/octet-stream".into()));
                req.headers
                    .push(("Content-Range", format!("{start}-{}", start + len - 1)));
                req.body = Body::Reader(&make);
                let resp = self.send(host, &req)?;
                if resp.status() != 202 {
                    return Err(status_error(location.as_str(), resp));
                }
                location = upload_location(&resp)?;
                offset += len;
                progress.event(Event::BlobProgress {
                    digest: &desc.digest,
                    done: offset,
                    total: desc.size,
                });
            }
        }
        location
            .query_pairs_mut()
            .append_pair("digest", &desc.digest.to_string());
        let mut req = Request::new("PUT", location.to_string(), vec![scope.clone()]);
        let size = desc.size;
        let make = move || -> Result<(Box<dyn Read + Send>, u64)> {
            Ok((Box::new(sink.open(&desc.digest)?), size))
        };
        if offset == 0 {
            req.headers
                .push(("Content-Type", "application/octet-stream".into()));
            req.body = Body::Reader(&make);
        }
        let resp = self.send(host, &req)?;
        if resp.status() != 201 {
            return Err(status_error(location.as_str(), resp));
        }
        Ok(BlobOutcome::Uploaded)
    }
}

/// The absolute URL an upload continues at (`Location` may be relative).
fn upload_location(resp: &ureq::Response) -> Result<url::Url> {
    let base = url::Url::parse(resp.get_url()).map_err(|e| Error::Transport {
        url: resp.get_url().to_string(),
        detail: e.to_string(),
    })?;
    let loc = resp.header("Location").ok_or_else(|| Error::Transport {
        url: resp.get_url().to_string(),
        detail: "upload response without Location".into(),
    })?;
    base.join(loc).map_err(|e| Error::Transport {
        url: loc.to_string(),
        detail: e.to_string(),
    })
}
