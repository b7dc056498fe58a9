//! `--iidfile` and `--metadata-file`, as buildx writes them.
use std::path::Path;

use super::atomic::OutFile;
use super::{Dest, ExportError, ExportReport};
use crate::image::to_canonical_json;

/// Writes the image id (the config digest for docker outputs, else the
/// manifest digest, as buildx does) to `path`, without a newline.
pub fn write_iidfile(path: &Path, report: &ExportReport, docker: bool) -> Result<(), ExportError> {
    let id = if docker {
        report.config.digest.to_string()
    } else {
        report.manifest.digest.to_string()
    };
    write(path, id.as_bytes())
}

/// buildx's metadata JSON: `containerimage.digest`,
/// `containerimage.config.digest`, `containerimage.descriptor` and
/// `image.name` (comma-joined) when names were given.
pub fn metadata_json(report: &ExportReport, names: &[String]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "containerimage.config.digest".into(),
        report.config.digest.to_string().into(),
    );
    m.insert(
        "containerimage.digest".into(),
        report.manifest.digest.to_string().into(),
    );
    let mut d = report.manifest.clone();
    d.platform = None;
    m.insert(
        "containerimage.descriptor".into(),
        serde_json::to_value(&d).unwrap_or_default(),
    );
    if !names.is_empty() {
        m.insert("image.name".into(), names.join(",").into());
    }
    serde_json::Value::Object(m)
}

/// Writes [`metadata_json`] to `path`.
pub fn write_metadata_file(
    path: &Path,
    report: &ExportReport,
    names: &[String],
) -> Result<(), ExportError> {
    let json = to_canonical_json(&metadata_json(report, names))?;
    write(path, &json)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let mut f = OutFile::create(&Dest::Path(path.to_path_buf()))?;
    std::io::Write::write_all(&mut f, bytes).map_err(super::atomic::io_err(path))?;
    f.commit()
}
