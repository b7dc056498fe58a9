//! Copying an image out of another OCI layout directory into the store
//! (`--build-context NAME=oci-layout://PATH[:TAG|@DIGEST]`), verifying every
//! blob against its digest on the way in.
use std::fs;
use std::path::Path;

use super::{Store, StoreError};
use crate::digest::Digest;
use crate::image::{media, Descriptor, Index};

impl Store {
    /// Imports the image `reference` (a tag or full name matched against
    /// `org.opencontainers.image.ref.name` / `io.containerd.image.name`, or
    /// `@sha256:…`; `None` when the layout holds exactly one image) from the
    /// OCI layout at `layout`. Returns the descriptor to tag or build on.
    pub fn import_layout(
        &self,
        layout: &Path,
        reference: Option<&str>,
    ) -> Result<Descriptor, StoreError> {
        let index_path = layout.join("index.json");
        let bytes = fs::read(&index_path).map_err(super::io_err(&index_path))?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            path: index_path.clone(),
            source,
        })?;
        let wanted = |d: &&Descriptor| match reference {
            None => true,
            Some(r) => {
                if let Some(dg) = r.strip_prefix('@') {
                    return d.digest.to_string() == dg;
                }
                d.annotations.as_ref().is_some_and(|a| {
                    a.get(media::ANNOTATION_REF_NAME).map(String::as_str) == Some(r)
                        || a.get(media::ANNOTATION_IMAGE_NAME).map(String::as_str) == Some(r)
                })
            }
        };
        let hits: Vec<&Descriptor> = index.manifests.iter().filter(wanted).collect();
        let root = match hits.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(StoreError::ImageNotFound(format!(
                    "{}:{}",
                    layout.display(),
                    reference.unwrap_or("")
                )))
            }
            _ => {
                return Err(StoreError::Ambiguous(format!(
                    "{}:{}",
                    layout.display(),
                    reference.unwrap_or("")
                )))
            }
        };
        let mut todo = vec![root.digest.clone()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            self.copy_in(layout, &d)?;
            todo.extend(super::refs::children(self, &d));
        }
        let mut out = root;
        out.annotations = None;
        Ok(out)
    }

    fn copy_in(&self, layout: &Path, d: &Digest) -> Result<(), StoreError> {
        if self.has_blob(d) {
            return Ok(());
        }
        let src = layout.join("blobs").join(d.algorithm()).join(d.hex());
        let f = fs::File::open(&src).map_err(super::io_err(&src))?;
        self.put_blob(f, Some(d))?;
        Ok(())
    }
}
