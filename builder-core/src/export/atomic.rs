//! Destinations that appear whole or not at all.
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Dest, ExportError};

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A sibling of `dest` with a unique temporary name.
pub(super) fn temp_sibling(dest: &Path, tag: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dest.with_file_name(format!(".{name}.kiln-{tag}-{}-{nanos}", std::process::id()))
}

/// A file output: a temp file renamed over `dest` on [`commit`](Self::commit),
/// or standard output.
pub(super) enum OutFile {
    File {
        w: BufWriter<File>,
        tmp: TempPath,
        dest: PathBuf,
    },
    Stdout(BufWriter<io::Stdout>),
}

impl OutFile {
    pub(super) fn create(dest: &Dest) -> Result<OutFile, ExportError> {
        match dest {
            Dest::Stdout => Ok(OutFile::Stdout(BufWriter::with_capacity(
                1 << 20,
                io::stdout(),
            ))),
            Dest::Path(p) => {
                let tmp = temp_sibling(p, "tmp");
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(io_err(&tmp))?;
                Ok(OutFile::File {
                    w: BufWriter::with_capacity(1 << 20, f),
                    tmp: TempPath(tmp),
                    dest: p.clone(),
                })
            }
        }
    }

    pub(super) fn commit(self) -> Result<(), ExportError> {
        match self {
            OutFile::Stdout(mut w) => w.flush().map_err(io_err(Path::new("<stdout>"))),
            OutFile::File { w, tmp, dest } => {
                let f = w.into_inner().map_err(|e| io_err(&tmp.0)(e.into_error()))?;
                f.sync_all().map_err(io_err(&tmp.0))?;
                drop(f);
                fs::rename(&tmp.0, &dest).map_err(io_err(&dest))?;
                Ok(())
            }
        }
    }

    pub(super) fn name(&self) -> PathBuf {
        match self {
            OutFile::Stdout(_) => PathBuf::from("<stdout>"),
            OutFile::File { dest, .. } => dest.clone(),
        }
    }
}

impl Write for OutFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            OutFile::File { w, .. } => w.write(buf),
            OutFile::Stdout(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            OutFile::File { w, .. } => w.flush(),
            OutFile::Stdout(w) => w.flush(),
        }
    }
}

/// A temp file path removed on drop unless it was renamed away first.
pub(super) struct TempPath(pub(super) PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Fills a fresh temp directory with `fill`, then swaps it in for `dest`
/// (an existing `dest` is replaced as a whole).
pub(super) fn with_temp_dir<F>(dest: &Path, fill: F) -> Result<(), ExportError>
where
    F: FnOnce(&Path) -> Result<(), ExportError>,
{
    let tmp = temp_sibling(dest, "dir");
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let r = fill(&tmp);
    if let Err(e) = r {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = temp_sibling(dest, "old");
    let had_old = dest.exists();
    if had_old {
        fs::rename(dest, &old).map_err(io_err(dest))?;
    }
    fs::rename(&tmp, dest).map_err(io_err(dest))?;
    if had_old {
        let _ = make_writable_and_remove(&old);
    }
    Ok(())
}

/// Removes a tree even if it holds read-only directories.
pub(super) fn make_writable_and_remove(p: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if fs::remove_dir_all(p).is_ok() {
        return Ok(());
    }
    for e in fs::read_dir(p)?.flatten() {
        if let Ok(ft) = e.file_type() {
            if ft.is_dir() {
                let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o700));
                let _ = make_writable_and_remove(&e.path());
            }
        }
    }
    fs::remove_dir_all(p)
}
