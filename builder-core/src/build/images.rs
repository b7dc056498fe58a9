//! Images as the engine needs them: base images read from an OCI layout
//! (the store is one, and so is `--build-context oci-layout://`), layers
//! read back as entries, and new layers written as reproducible gzip tars.
//!
//! This is the engine's seam to the store/layers module: once that lands
//! these functions become thin calls into it.
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use super::config::ImageConfig;
use super::fsview::{clean, FsView, Origin};
use crate::fsentry::{Content, Entry, Kind};

/// OCI media types.
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI image manifest.
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A layer blob on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Where the (compressed) blob is.
    pub path: PathBuf,
    /// `sha256:` digest of the blob.
    pub digest: String,
    /// `sha256:` digest of the uncompressed tar.
    pub diff_id: String,
    /// Blob size in bytes.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
}

/// A base image: its config and layers.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The config.
    pub config: ImageConfig,
    /// The layers, bottom first.
    pub layers: Vec<LayerBlob>,
    /// Digest of the manifest it came from.
    pub manifest_digest: String,
}

/// `sha256:` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, String> {
    let (algo, hexd) = digest
        .split_once(':')
        .ok_or_else(|| format!("bad digest {digest:?}"))?;
    if algo != "sha256" || hexd.len() != 64 || !hexd.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("bad digest {digest:?}"));
    }
    Ok(layout.join("blobs").join(algo).join(hexd))
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads an image from an OCI layout directory. `selector` is a tag
/// (matched against `org.opencontainers.image.ref.name`, also as the
/// suffix after `:`), a `sha256:` digest, or None for the only image.
pub fn load_oci_layout(
    layout: &Path,
    selector: Option<&str>,
    arch: &str,
) -> Result<BaseImage, String> {
    let index = read_json(&layout.join("index.json"))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let chosen = match selector {
        Some(sel) if sel.starts_with("sha256:") => manifests
            .iter()
            .find(|m| m["digest"] == sel)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"digest": sel, "mediaType": MT_MANIFEST})),
        Some(sel) => manifests
            .iter()
            .find(|m| {
                let name = m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap_or("");
                name == sel || name.rsplit_once(':').is_some_and(|(_, t)| t == sel)
            })
            .cloned()
            .ok_or_else(|| format!("{}: no image named {sel:?}", layout.display()))?,
        None => match manifests.as_slice() {
            [one] => one.clone(),
            [] => return Err(format!("{}: the layout holds no image", layout.display())),
            _ => {
                return Err(format!(
                    "{}: the layout holds several images; name one with :TAG or @DIGEST",
                    layout.display()
                ))
            }
        },
    };
    resolve_descriptor(layout, &chosen, arch, 0)
}

fn resolve_descriptor(
    layout: &Path,
    desc: &serde_json::Value,
    arch: &str,
    depth: usize,
) -> Result<BaseImage, String> {
    if depth > 4 {
        return Err(format!("{}: index nesting too deep", layout.display()));
    }
    let digest = desc["digest"].as_str().unwrap_or("");
    let node = read_json(&blob_path(layout, digest)?)?;
    if let Some(list) = node["manifests"].as_array() {
        let pick = list
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .or_else(|| list.iter().find(|m| m["platform"].is_null()))
            .ok_or_else(|| format!("{}: no manifest for {arch} in {digest}", layout.display()))?;
        return resolve_descriptor(layout, pick, arch, depth + 1);
    }
    let cfg_digest = node["config"]["digest"].as_str().unwrap_or("");
    let cfg_bytes = std::fs::read(blob_path(layout, cfg_digest)?)
        .map_err(|e| format!("{}: config {cfg_digest}: {e}", layout.display()))?;
    let config = ImageConfig::from_json(&cfg_bytes)
        .map_err(|e| format!("{}: config {cfg_digest}: {e}", layout.display()))?;
    let mut layers = Vec::new();
    for (i, l) in node["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let d = l["digest"].as_str().unwrap_or("");
        layers.push(LayerBlob {
            path: blob_path(layout, d)?,
            digest: d.to_string(),
            diff_id: config
                .rootfs
                .diff_ids
                .get(i)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            size: l["size"].as_u64().unwrap_or(0),
            media_type: l["mediaType"].as_str().unwrap_or(MT_LAYER_GZIP).to_string(),
        });
    }
    Ok(BaseImage {
        config,
        layers,
        manifest_digest: digest.to_string(),
    })
}

/// Opens a layer blob, decompressing gzip or zstd by content.
pub fn open_layer(path: &Path) -> Result<Box<dyn Read>, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(err)?;
    let f = std::io::BufReader::new(std::fs::File::open(path).map_err(err)?);
    Ok(if n >= 2 && head[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::new(f).map_err(err)?)
    } else {
        Box::new(f)
    })
}

/// An image's file view, read from its layers the first time a step needs
/// it: a rebuild whose steps all hit the cache never decompresses the base.
#[derive(Clone, Default)]
pub(super) struct LazyFs {
    layers: Arc<[PathBuf]>,
    view: Arc<OnceLock<Result<FsView, String>>>,
}

impl LazyFs {
    /// The view of `layers`, applied in order.
    pub fn new(layers: &[LayerBlob]) -> LazyFs {
        LazyFs {
            layers: layers.iter().map(|l| l.path.clone()).collect(),
            view: Arc::default(),
        }
    }

    /// The file view, reading the layers on first use (shared by clones).
    pub fn view(&self) -> Result<FsView, String> {
        self.view
            .get_or_init(|| {
                let mut fs = FsView::new();
                for path in self.layers.iter() {
                    fs.apply(read_layer_entries(path)?);
                }
                Ok(fs)
            })
            .clone()
    }
}

/// Reads a layer's headers as entries (file contents stay in the blob and
/// are marked with [`Origin::Layer`]).
pub fn read_layer_entries(blob: &Path) -> Result<Vec<(Entry, Origin)>, String> {
    let name = blob.display().to_string();
    let mut archive = tar::Archive::new(open_layer(blob)?);
    let mut out = Vec::new();
    for item in archive.entries().map_err(|e| format!("{name}: {e}"))? {
        let item = item.map_err(|e| format!("{name}: {e}"))?;
        let h = item.header();
        // Names are kept byte for byte (see `crate::bytename`).
        let member = crate::bytename::from_bytes(&item.path_bytes()).into_owned();
        let path = clean(&member);
        let b = super::fsview::base(&path);
        let kind = if b == ".wh..wh..opq" {
            let dir = super::fsview::parent(&path).to_string();
            out.push((
                Entry::marker(crate::bytename::to_path(&dir), Kind::Opaque),
                Origin::Entry,
            ));
            continue;
        } else if let Some(victim) = b.strip_prefix(".wh.") {
            let p = super::fsview::join(super::fsview::parent(&path), victim);
            out.push((
                Entry::marker(crate::bytename::to_path(&p), Kind::Whiteout),
                Origin::Entry,
            ));
            continue;
        } else {
            let link = || {
                item.link_name_bytes()
                    .map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(&b)))
                    .unwrap_or_default()
            };
            match h.entry_type() {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink { target: link() },
                tar::EntryType::Link => Kind::Hardlink {
                    target: crate::bytename::to_path(&clean(&crate::bytename::from_path(&link()))),
                },
                tar::EntryType::Char => Kind::CharDevice {
                    major: h.device_major().ok().flatten().unwrap_or(0),
                    minor: h.device_minor().ok().flatten().unwrap_or(0),
                },
                tar::EntryType::Block => Kind::BlockDevice {
                    major: h.device_major().ok().flatten().unwrap_or(0),
                    minor: h.device_minor().ok().flatten().unwrap_or(0),
                },
                tar::EntryType::Fifo => Kind::Fifo,
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File {
                    content: Content::Bytes(Vec::new().into()),
                    size: h.size().unwrap_or(0),
                },
                _ => continue,
            }
        };
        let is_file = matches!(kind, Kind::File { .. });
        let entry = Entry {
            path: crate::bytename::to_path(&path),
            kind,
            mode: h.mode().unwrap_or(0) & 0o7777,
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0) as i64,
            mtime_nanos: 0,
            xattrs: BTreeMap::new(),
        };
        let origin = if is_file {
            Origin::Layer {
                blob: blob.to_path_buf(),
                member,
            }
        } else {
            Origin::Entry
        };
        out.push((entry, origin));
    }
    Ok(out)
}

/// A fresh path in `scratch` starting with `prefix`: stages built at the
/// same time spool into one scratch directory, so every name is unique.
pub(super) fn spool_path(scratch: &Path, prefix: &str) -> PathBuf {
    scratch.join(format!("{prefix}{}", SPOOL.fetch_add(1, Ordering::Relaxed)))
}

/// Replaces [`Origin::Layer`] contents with files spooled into `scratch`,
/// reading each base layer once.
pub fn materialize(entries: &mut [(Entry, Origin)], scratch: &Path) -> Result<(), String> {
    let mut wanted: BTreeMap<PathBuf, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    for (i, (_, origin)) in entries.iter().enumerate() {
        if let Origin::Layer { blob, member } = origin {
            wanted
                .entry(blob.clone())
                .or_default()
                .entry(member.clone())
                .or_default()
                .push(i);
        }
    }
    for (blob, members) in wanted {
        let mut archive = tar::Archive::new(open_layer(&blob)?);
        let name = blob.display().to_string();
        for item in archive.entries().map_err(|e| format!("{name}: {e}"))? {
            let mut item = item.map_err(|e| format!("{name}: {e}"))?;
            let member = crate::bytename::from_bytes(&item.path_bytes()).into_owned();
            let Some(indexes) = members.get(&member) else {
                continue;
            };
            let spool = spool_path(scratch, "m");
            let mut f =
                std::fs::File::create(&spool).map_err(|e| format!("{}: {e}", spool.display()))?;
            std::io::copy(&mut item, &mut f).map_err(|e| format!("{name}: {member}: {e}"))?;
            for &i in indexes {
                if let Some((e, o)) = entries.get_mut(i) {
                    if let Kind::File { content, .. } = &mut e.kind {
                        *content = Content::Path(spool.clone());
                    }
                    *o = Origin::Entry;
                }
            }
        }
    }
    if let Some((e, _)) = entries
        .iter()
        .find(|(_, o)| matches!(o, Origin::Layer { .. }))
    {
        return Err(format!(
            "/{}: content not found in its layer",
            crate::bytename::show_path(&e.path)
        ));
    }
    Ok(())
}

static SPOOL: AtomicU64 = AtomicU64::new(0);
