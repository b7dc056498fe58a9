//! Reading one file out of an image without flattening it, e.g. the stage's
//! `/etc/passwd` and `/etc/group` for `COPY --chown=NAME`.
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::ExportError;
use crate::image::Manifest;
use crate::layer::decompressing_reader;
use crate::store::Store;

fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// The content of regular file `path` in the image (layers applied in
/// order, whiteouts and opaque directories honoured, hardlinks resolved
/// within a layer), or `None` if it does not exist or is not a regular file.
/// Symlinks are not followed.
pub fn read_image_file(
    store: &Store,
    manifest: &Manifest,
    path: &Path,
) -> Result<Option<Vec<u8>>, ExportError> {
    let want = clean(path);
    let mut found: Option<Vec<u8>> = None;
    for l in &manifest.layers {
        let blob = store.blob_path(&l.digest);
        let bad = |e: io::Error| ExportError::BadLayer {
            digest: l.digest.to_string(),
            reason: e.to_string(),
        };
        let f = store.open_blob(&l.digest)?;
        let r = decompressing_reader(io::BufReader::new(f)).map_err(|e| ExportError::Io {
            path: blob.clone(),
            source: e,
        })?;
        let mut a = tar::Archive::new(r);
        let mut files: std::collections::HashMap<PathBuf, Vec<u8>> = Default::default();
        for entry in a.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let name = clean(&entry.path().map_err(bad)?);
            let base = name.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
            let parent = name.parent().map(Path::to_path_buf).unwrap_or_default();
            if base == b".wh..wh..opq" {
                if want.starts_with(&parent) && want != parent {
                    found = None;
                }
                continue;
            }
            if let Some(victim) = base.strip_prefix(b".wh.") {
                if want.starts_with(parent.join(std::ffi::OsStr::from_bytes(victim))) {
                    found = None;
                }
                continue;
            }
            let et = entry.header().entry_type();
            if want.starts_with(&name) && want != name && !et.is_dir() {
                // A non-directory replaced a parent of the file.
                found = None;
            }
            if name != want {
                if et.is_file() && entry.size() < (1 << 20) {
                    // Small files are kept in case `want` hardlinks to one.
                    let mut v = Vec::new();
                    entry.read_to_end(&mut v).map_err(bad)?;
                    files.insert(name, v);
                }
                continue;
            }
            found = if et.is_file() {
                let mut v = Vec::new();
                entry.read_to_end(&mut v).map_err(bad)?;
                Some(v)
            } else if et.is_hard_link() {
                let target = entry.link_name().map_err(bad)?.unwrap_or_default();
                files.get(&clean(&target)).cloned()
            } else {
                None
            };
        }
    }
    Ok(found)
}
