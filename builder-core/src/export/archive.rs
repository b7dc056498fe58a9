//! OCI layouts (tar or directory) and docker-archives.
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::atomic::{io_err, with_temp_dir, OutFile};
use super::{Dest, ExportError, ExportOptions, ExportReport, OutputKind, OutputSpec};
use crate::digest::Digest;
use crate::image::{media, to_canonical_json, Descriptor, Index, Manifest};
use crate::layer::tarfmt::{self, Header};
use crate::layer::{variants, Compression, CompressionOptions};
use crate::store::{familiar_name, normalize_name, Store};

/// A tar of whole files, written in the order given (Go-style headers).
pub(super) struct ArchiveTar<'a, W: Write> {
    out: &'a mut W,
    mtime: i64,
    buf: Vec<u8>,
}

impl<'a, W: Write> ArchiveTar<'a, W> {
    pub(super) fn new(out: &'a mut W, mtime: i64) -> ArchiveTar<'a, W> {
        ArchiveTar {
            out,
            mtime,
            buf: Vec::with_capacity(4096),
        }
    }

    fn header(&mut self, name: &str, typeflag: u8, mode: u32, size: u64) -> io::Result<()> {
        self.buf.clear();
        let none = BTreeMap::new();
        tarfmt::encode(
            &Header {
                name: name.as_bytes(),
                mode,
                uid: 0,
                gid: 0,
                size,
                mtime: self.mtime,
                typeflag,
                linkname: b"",
                devmajor: 0,
                devminor: 0,
                xattrs: &none,
            },
            &mut self.buf,
        );
        self.out.write_all(&self.buf)
    }

    pub(super) fn dir(&mut self, name: &str) -> io::Result<()> {
        self.header(&format!("{name}/"), tarfmt::DIR, 0o755, 0)
    }

    pub(super) fn bytes(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.header(name, tarfmt::REG, mode, data.len() as u64)?;
        self.out.write_all(data)?;
        self.pad(data.len() as u64)
    }

    pub(super) fn reader<R: io::Read>(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        r: R,
    ) -> io::Result<()> {
        self.header(name, tarfmt::REG, mode, size)?;
        let n = io::copy(&mut r.take(size), self.out)?;
        if n != size {
            return Err(io::Error::other(format!(
                "{name}: blob shorter than its size"
            )));
        }
        self.pad(size)
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        self.buf.clear();
        tarfmt::pad(&mut self.buf, len);
        self.out.write_all(&self.buf)
    }

    pub(super) fn finish(self) -> io::Result<()> {
        self.out.write_all(&[0u8; 1024])
    }
}

/// Layers as this output needs them: recompressed where asked (never base
/// layers unless forced or the format cannot carry them), and plain tar
/// layers built for the store alone compressed (gzip unless asked
/// otherwise), as a push would.
fn output_layers(
    store: &Store,
    manifest: &Manifest,
    spec: &OutputSpec,
    opts: &ExportOptions,
) -> Result<Vec<Descriptor>, ExportError> {
    let mut out = Vec::new();
    for (i, l) in manifest.layers.iter().enumerate() {
        let have = Compression::from_media_type(&l.media_type);
        // docker load (20.10) cannot read zstd layers.
        let format_needs = spec.kind == OutputKind::Docker && have == Some(Compression::Zstd);
        let plain = variants::is_uncompressed(l);
        let wanted = match spec.compression {
            Some(c)
                if have != Some(c)
                    && (i >= opts.base_layers || spec.force_compression || plain) =>
            {
                Some(c)
            }
            None if plain => Some(Compression::Gzip),
            _ if format_needs => Some(Compression::Gzip),
            _ => None,
        };
        match (wanted, have) {
            (Some(c), Some(_)) => {
                let copts = CompressionOptions {
                    compression: c,
                    level: spec.compression_level,
                    threads: opts.threads,
                };
                out.push(variants::compressed(store, l, &copts)?);
            }
            _ => out.push(l.clone()),
        }
    }
    Ok(out)
}

pub(super) fn export_image(
    store: &Store,
    mdesc: &Descriptor,
    manifest: &Manifest,
    spec: &OutputSpec,
    opts: &ExportOptions,
) -> Result<ExportReport, ExportError> {
    let layers = output_layers(store, manifest, spec, opts)?;
    let docker = spec.kind == OutputKind::Docker;
    // An image stored by an older kiln may list Docker layer types in an OCI
    // manifest, which strict readers (umoci) refuse.
    let consistent = manifest.with_consistent_layer_types();
    let (mdesc, manifest) = if layers != manifest.layers || docker || consistent != *manifest {
        let mut m = consistent;
        m.layers = layers;
        m = m.with_consistent_layer_types();
        if docker {
            // BuildKit's docker exporter writes Docker schema 2 media types.
            m = m.to_docker();
        }
        let mt = m
            .media_type
            .clone()
            .unwrap_or_else(|| media::OCI_MANIFEST.into());
        let mut d = store.put_json(&mt, &m)?;
        d.platform = mdesc.platform.clone();
        (d, m)
    } else {
        (mdesc.clone(), manifest.clone())
    };
    let mut names: Vec<String> = Vec::new();
    for n in opts.names.iter().chain(spec.name.iter()) {
        names.push(normalize_name(n).map_err(crate::store::StoreError::from)?);
    }
    // containerd writes archive entries with a zero time; so do we.
    let mtime = 0;
    match (&spec.dest, spec.tar || docker) {
        (Dest::Path(p), false) => {
            with_temp_dir(p, |dir| {
                write_oci_dir(store, dir, &mdesc, &manifest, &names)
            })?;
        }
        (dest, _) => {
            let mut f = OutFile::create(dest)?;
            let name = f.name();
            write_layout_tar(store, &mut f, mtime, &mdesc, &manifest, &names, docker)
                .map_err(io_err(&name))?;
            f.commit()?;
        }
    }
    Ok(ExportReport {
        config: manifest.config.clone(),
        manifest: mdesc,
    })
}

fn oci_index(mdesc: &Descriptor, names: &[String]) -> Result<Vec<u8>, serde_json::Error> {
    let mut manifests = Vec::new();
    if names.is_empty() {
        manifests.push(mdesc.clone());
    }
    for n in names {
        let mut d = mdesc.clone();
        // containerd's choice: the full name in its own annotation, only the
        // tag in the OCI one (the OCI spec's suggestion).
        let tag = n
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t.to_string())
            .unwrap_or_else(|| n.clone());
        let a = d.annotations.get_or_insert_with(BTreeMap::new);
        a.insert(media::ANNOTATION_IMAGE_NAME.into(), n.clone());
        a.insert(media::ANNOTATION_REF_NAME.into(), tag);
        manifests.push(d);
    }
    Index::oci(manifests).to_json()
}

fn blobs_of(mdesc: &Descriptor, manifest: &Manifest) -> Vec<(Digest, u64)> {
    let mut all: BTreeMap<Digest, u64> = BTreeMap::new();
    all.insert(mdesc.digest.clone(), mdesc.size);
    all.insert(manifest.config.digest.clone(), manifest.config.size);
    for l in &manifest.layers {
        all.insert(l.digest.clone(), l.size);
    }
    all.into_iter().collect()
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// docker's `manifest.json`: config and layer paths plus familiar names.
fn docker_manifest_json(
    manifest: &Manifest,
    names: &[String],
) -> Result<Vec<u8>, serde_json::Error> {
    let blob_name = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let tags: Vec<String> = names.iter().map(|n| familiar_name(n).to_string()).collect();
    let entry = serde_json::json!([{
        "Config": blob_name(&manifest.config.digest),
        "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { tags.into() },
        "Layers": manifest.layers.iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
    }]);
    to_canonical_json(&entry)
}

/// The legacy `repositories` file: repo → tag → top layer id.
fn repositories_json(manifest: &Manifest, names: &[String]) -> Option<Vec<u8>> {
    let top = manifest.layers.last()?;
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for n in names {
        let f = familiar_name(n);
        if let Some((repo, tag)) = f.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            repos
                .entry(repo.to_string())
                .or_default()
                .insert(tag.to_string(), top.digest.hex().to_string());
        }
    }
    if repos.is_empty() {
        return None;
    }
    to_canonical_json(&repos).ok()
}

/// An OCI layout as a tar, laid out as containerd's archive exporter does
/// (records sorted by name, blobs 0444, `oci-layout` 0444, JSON files 0644)
/// with docker's `manifest.json` beside it so `docker load` takes either
/// output; `docker` adds the legacy `repositories` file.
fn write_layout_tar<W: Write>(
    store: &Store,
    out: &mut W,
    mtime: i64,
    mdesc: &Descriptor,
    manifest: &Manifest,
    names: &[String],
    docker: bool,
) -> io::Result<()> {
    let index = oci_index(mdesc, names).map_err(io::Error::other)?;
    let dmanifest = docker_manifest_json(manifest, names).map_err(io::Error::other)?;
    let mut t = ArchiveTar::new(out, mtime);
    t.dir("blobs")?;
    t.dir("blobs/sha256")?;
    for (d, size) in blobs_of(mdesc, manifest) {
        let f = store.open_blob(&d).map_err(io::Error::other)?;
        t.reader(
            &format!("blobs/sha256/{}", d.hex()),
            0o444,
            size,
            io::BufReader::new(f),
        )?;
    }
    t.bytes("index.json", 0o644, &index)?;
    t.bytes("manifest.json", 0o644, &dmanifest)?;
    t.bytes("oci-layout", 0o444, OCI_LAYOUT)?;
    if docker {
        if let Some(r) = repositories_json(manifest, names) {
            t.bytes("repositories", 0o644, &r)?;
        }
    }
    t.finish()
}

fn write_oci_dir(
    store: &Store,
    dir: &Path,
    mdesc: &Descriptor,
    manifest: &Manifest,
    names: &[String],
) -> Result<(), ExportError> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for (d, _) in blobs_of(mdesc, manifest) {
        let to = blobs.join(d.hex());
        fs::copy(store.blob_path(&d), &to).map_err(io_err(&to))?;
    }
    let index = oci_index(mdesc, names)?;
    let p = dir.join("index.json");
    fs::write(&p, index).map_err(io_err(&p))?;
    let p = dir.join("oci-layout");
    fs::write(&p, OCI_LAYOUT).map_err(io_err(&p))?;
    Ok(())
}
