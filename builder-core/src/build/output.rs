//! Where a built image goes: the store (an OCI layout) and the `-o`
//! exporters (oci, docker, local, tar). Every file is written to a
//! temporary name and renamed into place, so a failure leaves nothing
//! half-written.
use std::io::Write;
use std::path::{Path, PathBuf};

use super::fsview::{FsView, Origin};
use super::images::{
    materialize, read_layer_entries, sha256_digest, MT_CONFIG, MT_INDEX, MT_MANIFEST,
};
use super::BuiltImage;
use crate::fsentry::{Content, Entry, Kind};

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
    let config = image
        .config
        .to_canonical_json()
        .map_err(|e| format!("config: {e}"))?;
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

fn hexpart(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = tmp_name(path);
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn tmp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes the image into an OCI layout directory (the store), naming it
/// with each of `names`; existing blobs are kept.
pub fn store_image(
    root: &Path,
    image: &BuiltImage,
    m: &Manifest,
    names: &[String],
) -> Result<(), String> {
    let blobs = root.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
    let layout = root.join("oci-layout");
    if !layout.exists() {
        atomic_write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    for l in &image.layers {
        let dst = blobs.join(hexpart(&l.digest));
        if !dst.exists() {
            let tmp = tmp_name(&dst);
            std::fs::copy(&l.path, &tmp).map_err(|e| format!("{}: {e}", l.path.display()))?;
            std::fs::rename(&tmp, &dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        }
    }
    atomic_write(&blobs.join(hexpart(&m.config_digest)), &m.config)?;
    atomic_write(&blobs.join(hexpart(&m.digest)), &m.manifest)?;
    let index_path = root.join("index.json");
    let mut index: serde_json::Value = match std::fs::read(&index_path) {
        Ok(b) => {
            serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", index_path.display()))?
        }
        Err(_) => serde_json::json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}),
    };
    let list = index["manifests"].as_array().cloned().unwrap_or_default();
    let mut kept: Vec<serde_json::Value> = list
        .into_iter()
        .filter(|d| {
            let name = d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap_or("");
            !names.iter().any(|n| n == name)
        })
        .collect();
    let desc = |name: Option<&String>| {
        let mut d = serde_json::json!({
            "mediaType": MT_MANIFEST,
            "digest": m.digest,
            "size": m.manifest.len(),
        });
        if let Some(n) = name {
            d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": n});
        }
        d
    };
    if names.is_empty() {
        if !kept.iter().any(|d| d["digest"] == m.digest.as_str()) {
            kept.push(desc(None));
        }
    } else {
        for n in names {
            kept.push(desc(Some(n)));
        }
    }
    index["manifests"] = serde_json::Value::Array(kept);
    let bytes = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
    atomic_write(&index_path, &bytes)
}

/// An `-o` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// `oci`, `docker`, `local`, `tar`.
    pub kind: String,
    /// `dest=`; `-` for standard output.
    pub dest: String,
    /// `tar=false` for a directory layout (oci).
    pub tar: bool,
    /// `name=`.
    pub name: Option<String>,
    /// `compression=gzip|zstd|uncompressed`.
    pub compression: Option<crate::layer::Compression>,
    /// `compression-level=N`.
    pub compression_level: Option<i32>,
}

impl OutputSpec {
    /// Parses buildx's `type=oci,dest=FILE[,tar=false][,name=N]` (or a bare
    /// path, which means `type=local,dest=PATH`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.contains('=') {
            return Ok(OutputSpec {
                kind: if text == "-" { "tar" } else { "local" }.into(),
                dest: text.into(),
                tar: true,
                name: None,
                compression: None,
                compression_level: None,
            });
        }
        let mut spec = OutputSpec {
            kind: String::new(),
            dest: String::new(),
            tar: true,
            name: None,
            compression: None,
            compression_level: None,
        };
        for part in text.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("invalid output {text:?}: {part:?} is not key=value"))?;
            match k {
                "type" => spec.kind = v.into(),
                "dest" => spec.dest = v.into(),
                "tar" => spec.tar = v != "false",
                "name" => spec.name = Some(v.into()),
                "compression" => {
                    spec.compression = Some(
                        v.parse()
                            .map_err(|e| format!("invalid output {text:?}: {e}"))?,
                    )
                }
                "compression-level" => {
                    spec.compression_level = Some(v.parse().map_err(|_| {
                        format!("invalid output {text:?}: compression-level must be a number")
                    })?)
                }
                "oci-mediatypes" | "force-compression" => {}
                other => return Err(format!("invalid output {text:?}: unknown key {other:?}")),
            }
        }
        if !matches!(spec.kind.as_str(), "oci" | "docker" | "local" | "tar") {
            return Err(format!(
                "invalid output {text:?}: type must be oci, docker, local or tar"
            ));
        }
        if spec.dest.is_empty() {
            return Err(format!("invalid output {text:?}: dest= is required"));
        }
        Ok(spec)
    }
}

/// Exports the image as `spec` says. `names` are the `-t` names.
pub fn export(
    spec: &OutputSpec,
    image: &BuiltImage,
    m: &Manifest,
    names: &[String],
    scratch: &Path,
    mtime: i64,
) -> Result<(), String> {
    let mut names = names.to_vec();
    if let Some(n) = &spec.name {
        names.insert(0, n.clone());
    }
    match (spec.kind.as_str(), spec.tar) {
        ("oci", false) => store_image(Path::new(&spec.dest), image, m, &names),
        ("oci", true) | ("docker", _) => {
            let docker = spec.kind == "docker";
            write_tar_output(&spec.dest, |w| archive(w, image, m, &names, docker, mtime))
        }
        ("local", _) => {
            let view = flatten(image, scratch)?;
            write_local(Path::new(&spec.dest), &view)
        }
        ("tar", _) => {
            let view = flatten(image, scratch)?;
            write_tar_output(&spec.dest, |w| {
                let mut b = tar::Builder::new(w);
                for (_, node) in view.iter() {
                    append_flat(&mut b, &node.entry)?;
                }
                b.finish().map_err(|e| e.to_string())
            })
        }
        (other, _) => Err(format!("unknown output type {other:?}")),
    }
}

fn write_tar_output(
    dest: &str,
    write: impl FnOnce(&mut dyn Write) -> Result<(), String>,
) -> Result<(), String> {
    if dest == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        write(&mut lock)?;
        return lock.flush().map_err(|e| e.to_string());
    }
    let path = Path::new(dest);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let tmp = tmp_name(path);
    let result = (|| {
        let f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        write(&mut w)?;
        let f = w
            .into_inner()
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        f.sync_all()
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn add_bytes(
    b: &mut tar::Builder<&mut dyn Write>,
    name: &str,
    bytes: &[u8],
    mtime: i64,
) -> Result<(), String> {
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(mtime.max(0) as u64);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, bytes)
        .map_err(|e| format!("{name}: {e}"))
}

fn add_dir(b: &mut tar::Builder<&mut dyn Write>, name: &str, mtime: i64) -> Result<(), String> {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(mtime.max(0) as u64);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, name, std::io::empty())
        .map_err(|e| format!("{name}: {e}"))
}

/// An OCI archive (or, with `docker`, one `docker load` also takes: the
/// same layout plus `manifest.json`).
fn archive(
    w: &mut dyn Write,
    image: &BuiltImage,
    m: &Manifest,
    names: &[String],
    docker: bool,
    mtime: i64,
) -> Result<(), String> {
    let mut b = tar::Builder::new(w);
    add_dir(&mut b, "blobs/", mtime)?;
    add_dir(&mut b, "blobs/sha256/", mtime)?;
    let mut blobs: Vec<(String, Option<&Path>, &[u8])> = vec![
        (m.config_digest.clone(), None, &m.config),
        (m.digest.clone(), None, &m.manifest),
    ];
    for l in &image.layers {
        blobs.push((l.digest.clone(), Some(&l.path), &[]));
    }
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    blobs.dedup_by(|a, b| a.0 == b.0);
    for (digest, path, bytes) in blobs {
        let name = format!("blobs/sha256/{}", hexpart(&digest));
        match path {
            None => add_bytes(&mut b, &name, bytes, mtime)?,
            Some(p) => {
                let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let len = f.metadata().map_err(|e| e.to_string())?.len();
                let mut h = tar::Header::new_ustar();
                h.set_size(len);
                h.set_mode(0o644);
                h.set_mtime(mtime.max(0) as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, &name, f)
                    .map_err(|e| format!("{name}: {e}"))?;
            }
        }
    }
    let mut desc = serde_json::json!({
        "mediaType": MT_MANIFEST,
        "digest": m.digest,
        "size": m.manifest.len(),
    });
    if let Some(n) = names.first() {
        desc["annotations"] = serde_json::json!({
            "io.containerd.image.name": n,
            "org.opencontainers.image.ref.name": n.rsplit_once(':').map_or("latest", |(_, t)| t),
        });
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [desc]});
    let index = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
    add_bytes(&mut b, "index.json", &index, mtime)?;
    if docker {
        let repo_tags: Vec<String> = names
            .iter()
            .map(|n| {
                if n.rsplit('/').next().is_some_and(|last| last.contains(':')) {
                    n.clone()
                } else {
                    format!("{n}:latest")
                }
            })
            .collect();
        let layers: Vec<String> = image
            .layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", hexpart(&l.digest)))
            .collect();
        let manifest = serde_json::json!([{
            "Config": format!("blobs/sha256/{}", hexpart(&m.config_digest)),
            "RepoTags": repo_tags,
            "Layers": layers,
        }]);
        let bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
        add_bytes(&mut b, "manifest.json", &bytes, mtime)?;
    }
    add_bytes(
        &mut b,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        mtime,
    )?;
    b.finish().map_err(|e| e.to_string())
}

/// The image's filesystem with every file readable.
pub fn flatten(image: &BuiltImage, scratch: &Path) -> Result<FsView, String> {
    let mut view = FsView::new();
    for l in &image.layers {
        view.apply(read_layer_entries(&l.path)?);
    }
    let mut entries: Vec<(Entry, Origin)> = view
        .iter()
        .map(|(_, n)| (n.entry.clone(), n.origin.clone()))
        .collect();
    materialize(&mut entries, scratch)?;
    let mut out = FsView::new();
    out.apply(entries);
    Ok(out)
}

fn append_flat(b: &mut tar::Builder<&mut dyn Write>, e: &Entry) -> Result<(), String> {
    let path = e.path.to_string_lossy().to_string();
    let err = |x: std::io::Error| format!("/{path}: {x}");
    let mut h = tar::Header::new_gnu();
    h.set_mode(e.mode);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mtime(e.mtime.max(0) as u64);
    h.set_size(0);
    match &e.kind {
        Kind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{path}/"), std::io::empty())
                .map_err(err)
        }
        Kind::File { content, size } => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(*size);
            match content {
                Content::Bytes(bytes) => b.append_data(&mut h, &path, &bytes[..]).map_err(err),
                Content::Path(p) => {
                    let f = std::fs::File::open(p).map_err(|x| format!("{}: {x}", p.display()))?;
                    b.append_data(&mut h, &path, f).map_err(err)
                }
            }
        }
        Kind::Symlink { target } | Kind::Hardlink { target } => {
            h.set_entry_type(if matches!(e.kind, Kind::Symlink { .. }) {
                tar::EntryType::Symlink
            } else {
                tar::EntryType::Link
            });
            b.append_link(&mut h, &path, target).map_err(err)
        }
        _ => Ok(()),
    }
}

/// Writes the filesystem into a directory (`type=local`), as the invoking
/// user: ownership is not reproduced, modes are.
fn write_local(dest: &Path, view: &FsView) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut dirs = Vec::new();
    for (path, node) in view.iter() {
        let target = dest.join(path);
        let err = |e: std::io::Error| format!("{}: {e}", target.display());
        match &node.entry.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&target).map_err(err)?;
                dirs.push((target.clone(), node.entry.mode));
            }
            Kind::File { content, .. } => {
                let _ = std::fs::remove_file(&target);
                match content {
                    Content::Bytes(b) => std::fs::write(&target, b).map_err(err)?,
                    Content::Path(p) => {
                        std::fs::copy(p, &target).map_err(err)?;
                    }
                }
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(node.entry.mode))
                    .map_err(err)?;
            }
            Kind::Symlink { target: t } => {
                let _ = std::fs::remove_file(&target);
                std::os::unix::fs::symlink(t, &target).map_err(err)?;
            }
            Kind::Hardlink { target: t } => {
                let _ = std::fs::remove_file(&target);
                std::fs::hard_link(dest.join(t), &target).map_err(err)?;
            }
            _ => {}
        }
    }
    // Directory modes last, so a read-only directory can still be filled.
    for (d, mode) in dirs.into_iter().rev() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", d.display()))?;
    }
    Ok(())
}
