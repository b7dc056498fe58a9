//! ADD of a local archive: tar, optionally gzip, bzip2 or xz compressed
//! (not zstd, as in docker 20.10), detected by content, extracted as if chrooted into the
//! destination (as BuildKit's chrootarchive does): `..` stops at the
//! destination, absolute names and link targets start at it, symlinks met
//! on the way are resolved inside it. Nothing can land outside.
use std::cell::Cell;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::copy::{CopyOptions, LayerBuilder};
use super::fsview::{base, clean, join, parent, FsView, Origin};
use crate::bytename;
use crate::fsentry::{Content, Entry, Kind};

/// Files larger than this are spooled to the scratch directory rather than
/// held in memory.
const IN_MEMORY_LIMIT: u64 = 1 << 20;

/// Opens the file (with `open`; `path` names it in messages) and returns a
/// reader of its decompressed bytes when it is an archive kiln unpacks, or
/// None for any other file.
pub fn open_archive(
    path: &Path,
    open: impl Fn() -> std::io::Result<std::fs::File>,
) -> Result<Option<Box<dyn Read>>, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut head = [0u8; 6];
    let n = {
        let mut f = open().map_err(err)?;
        read_full(&mut f, &mut head).map_err(err)?
    };
    let f = BufReader::new(open().map_err(err)?);
    let h = &head[..n];
    let mut reader: Box<dyn Read> = if h.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if h.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(f))
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        let mut out = Vec::new();
        let mut input = f;
        lzma_rs::xz_decompress(&mut input, &mut out)
            .map_err(|e| format!("{}: xz: {e}", path.display()))?;
        Box::new(std::io::Cursor::new(out))
    } else {
        // zstd is not among them: docker 20.10's archive package (the
        // reference) copies a .tar.zst as a file; moby and BuildKit unpack
        // it only since 2021-2022 (moby#41759, Docker 23).
        Box::new(f)
    };
    // A tar has "ustar" at offset 257 of its first block.
    let mut block = vec![0u8; 512];
    let got = read_full(&mut reader, &mut block).map_err(err)?;
    let is_tar = got == 512 && (&block[257..262] == b"ustar" || tar_checksum_ok(&block));
    if !is_tar {
        return Ok(None);
    }
    Ok(Some(Box::new(std::io::Cursor::new(block).chain(reader))))
}

/// Go's tar reader takes an archive that stops inside the padding after a
/// member's data as ending there (its `tryReadFull` gives io.EOF), so docker
/// 20.10 unpacks it; the tar crate calls it a truncated archive. This reader
/// answers such a missing padding with zeros, after which the archive ends
/// cleanly. `padding` holds the current member's data end and padded end;
/// an end anywhere else (inside data or a header) stays an error, as in Go.
struct PaddedEnd {
    inner: Box<dyn Read>,
    pos: u64,
    padding: Rc<Cell<(u64, u64)>>,
}

impl Read for PaddedEnd {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            self.pos += n as u64;
            return Ok(n);
        }
        let (data_end, padded_end) = self.padding.get();
        if self.pos < data_end || self.pos >= padded_end {
            return Ok(0);
        }
        let missing = usize::try_from(padded_end - self.pos).unwrap_or(usize::MAX);
        let fill = missing.min(buf.len());
        buf.iter_mut().take(fill).for_each(|b| *b = 0);
        self.pos += fill as u64;
        Ok(fill)
    }
}

fn tar_checksum_ok(block: &[u8]) -> bool {
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == want && block.iter().any(|&b| b != 0)
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Extracts a decompressed tar stream into `dest` (a clean image path that
/// exists as a directory). `scratch` holds spooled large files.
pub fn extract(
    layer: &mut LayerBuilder,
    reader: Box<dyn Read>,
    dest: &str,
    opts: &CopyOptions,
    scratch: &Path,
    name: &str,
) -> Result<(), String> {
    let padding = Rc::new(Cell::new((0, 0)));
    let mut archive = tar::Archive::new(PaddedEnd {
        inner: reader,
        pos: 0,
        padding: Rc::clone(&padding),
    });
    let entries = archive
        .entries()
        .map_err(|e| format!("{name}: reading archive: {e}"))?;
    for item in entries {
        let mut item = item.map_err(|e| format!("{name}: reading archive: {e}"))?;
        let data_end = item
            .raw_file_position()
            .saturating_add(item.header().entry_size().unwrap_or(0));
        padding.set((data_end, data_end.div_ceil(512).saturating_mul(512)));
        // Member names are kept byte for byte (see `crate::bytename`).
        let mut raw_path = bytename::from_bytes(&item.path_bytes()).into_owned();
        let pax = PaxFields::read(&mut item).map_err(|e| format!("{name}: {raw_path}: {e}"))?;
        // A PAX sparse file (GNU tar's `--format=posix --sparse`) is stored
        // under a made-up name; its own is in `GNU.sparse.name`.
        if let Some(real) = &pax.sparse.name {
            raw_path = real.clone();
        }
        let rel = clean(&raw_path);
        if rel.is_empty() {
            continue; // "./": the destination itself keeps its metadata
        }
        // Resolve the parent inside the destination (chroot semantics), then
        // put the last component below it without following it.
        let parent_resolved = layer.view.resolve_under(dest, parent(&rel), true)?;
        if !layer.view.is_dir(&parent_resolved) {
            // Parents an archive leaves implicit are created, owned by root
            // whatever --chown says (Docker's unpack makes them with the
            // root pair), but never through a symlink whose target is
            // missing: there the unpack's mkdir or open fails.
            if let Some(link) = dangling_link_on_the_way(&layer.view, dest, parent(&rel))? {
                return Err(format!(
                    "{name}: entry {:?}: no such file or directory (the symlink /{link} points to nothing)",
                    bytename::to_path(&raw_path)
                ));
            }
            let implied = CopyOptions {
                chown: None,
                ..opts.clone()
            };
            layer.mkdir_all(&parent_resolved, &implied)?;
        }
        let target = join(&parent_resolved, base(&rel));
        if !within(dest, &target) {
            return Err(format!(
                "{name}: entry {:?} escapes the destination",
                bytename::to_path(&raw_path)
            ));
        }
        let header = item.header().clone();
        // A symlink's mode is always 0777 on disk, whatever the member says
        // (Docker's unpack makes it with symlink(2), its differ lstats it).
        let mode = if header.entry_type() == tar::EntryType::Symlink {
            0o777
        } else {
            header.mode().unwrap_or(0o644) & 0o7777
        };
        // The members keep the archive's owners whatever --chown says, as
        // the reference BuildKit (docker 20.10) extracts them; BuildKit
        // applies --chown to them only since May 2025 (see decisions.md).
        let (uid, gid) = (
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        );
        let (mtime, mtime_nanos) = extracted_mtime(pax.mtime.unwrap_or((
            i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(i64::MAX),
            0,
        )));
        let kind = match header.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous if pax.sparse.is_sparse() => {
                let spool = super::images::spool_path(scratch, "add-");
                let size = pax
                    .sparse
                    .expand(&mut item, &spool)
                    .map_err(|e| format!("{name}: {raw_path}: sparse file: {e}"))?;
                Kind::File {
                    content: Content::Path(spool),
                    size,
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = header.size().unwrap_or(0);
                let content = if size <= IN_MEMORY_LIMIT {
                    let mut buf = Vec::with_capacity(size as usize);
                    item.read_to_end(&mut buf)
                        .map_err(|e| format!("{name}: {raw_path}: {e}"))?;
                    Content::Bytes(buf.into())
                } else {
                    let spool = super::images::spool_path(scratch, "add-");
                    let mut f = std::fs::File::create(&spool)
                        .map_err(|e| format!("{}: {e}", spool.display()))?;
                    std::io::copy(&mut item, &mut f)
                        .map_err(|e| format!("{name}: {raw_path}: {e}"))?;
                    Content::Path(spool)
                };
                Kind::File { content, size }
            }
            tar::EntryType::Symlink => {
                let t = item
                    .link_name_bytes()
                    .map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(&b)))
                    .unwrap_or_default();
                Kind::Symlink { target: t }
            }
            tar::EntryType::Link => {
                // A hard link becomes a copy of its target, looked up inside
                // the destination only. Like link(2) in Docker's unpack it
                // may name a symlink (not followed), a fifo or a device, but
                // never a directory.
                let t = item
                    .link_name_bytes()
                    .map(|b| bytename::from_bytes(&b).into_owned())
                    .unwrap_or_default();
                let t = layer.view.resolve_under(dest, &clean(&t), false)?;
                let node = layer
                    .view
                    .get(&t)
                    .filter(|n| within(dest, &t) && n.entry.kind != Kind::Dir)
                    .ok_or_else(|| {
                        format!(
                            "{name}: hard link {:?} points outside the archive's files",
                            bytename::to_path(&raw_path)
                        )
                    })?
                    .clone();
                let mut e = node.entry;
                // A link to a file this ADD wrote stays a hard link, as
                // Docker's unpack makes it with link(2).
                let first = match &e.kind {
                    Kind::Hardlink { target } => clean(&bytename::from_path(target)),
                    _ => t.clone(),
                };
                if matches!(e.kind, Kind::File { .. } | Kind::Hardlink { .. })
                    && first != target
                    && layer.wrote(&first)
                {
                    e.kind = Kind::Hardlink {
                        target: bytename::to_path(&first),
                    };
                    e.path = bytename::to_path(&target);
                    layer.put(e, Origin::Entry);
                    continue;
                }
                // A file of a lower layer: link(2) in Docker's unpack shares
                // its inode, which overlay copies up, and the member's owner,
                // mode and time then apply to it. The layer holds that file
                // again with them, and the link names it.
                if matches!(e.kind, Kind::File { .. }) && t != target {
                    e.path = bytename::to_path(&t);
                    (e.mode, e.uid, e.gid) = (mode, uid, gid);
                    (e.mtime, e.mtime_nanos) = (mtime, mtime_nanos);
                    let mut link = e.clone();
                    layer.put(e, node.origin);
                    link.path = bytename::to_path(&target);
                    link.kind = Kind::Hardlink {
                        target: bytename::to_path(&t),
                    };
                    layer.put(link, Origin::Entry);
                    continue;
                }
                // Anything else (a symlink, a fifo, a device, a lower
                // layer's own link) is a copy.
                e.path = bytename::to_path(&target);
                layer.put(e, node.origin);
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                if header.entry_type() == tar::EntryType::Char {
                    Kind::CharDevice { major, minor }
                } else {
                    Kind::BlockDevice { major, minor }
                }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            // PAX/GNU long-name records are consumed by the tar reader.
            _ => continue,
        };
        // A non-directory member replaces whatever is there, a populated
        // directory included (BuildKit removes it first); the layer's entry
        // for the path hides the lower directory's children.
        let entry = Entry {
            path: bytename::to_path(&target),
            kind,
            mode,
            uid,
            gid,
            mtime,
            mtime_nanos,
            xattrs: pax.xattrs,
        };
        layer.put(entry, Origin::Entry);
    }
    Ok(())
}

/// What kiln takes from a member's PAX records beyond what the tar reader
/// applies itself (path, link, size, uid, gid).
struct PaxFields {
    /// `mtime`: seconds and nanoseconds (it may be negative, fractional or
    /// beyond the octal field).
    mtime: Option<(i64, u32)>,
    /// `SCHILY.xattr.security.capability`, the only extended attribute a
    /// layer carries (as the diff and containerd's archive writer keep).
    xattrs: std::collections::BTreeMap<String, Vec<u8>>,
    /// `GNU.sparse.*`: a sparse file in one of the PAX formats.
    sparse: Sparse,
}

/// The PAX sparse formats Go's reader (and so docker 20.10's ADD) expands:
/// 0.0 (`GNU.sparse.offset`/`numbytes` pairs), 0.1 (`GNU.sparse.map`) and
/// 1.0 (the map at the start of the data).
#[derive(Default)]
struct Sparse {
    major: Option<String>,
    name: Option<String>,
    /// The expanded size (`GNU.sparse.realsize`, or `GNU.sparse.size`).
    size: Option<u64>,
    /// Offset/length pairs given in the records (0.0, 0.1).
    map: Vec<u64>,
}

impl Sparse {
    fn is_sparse(&self) -> bool {
        self.major.is_some() || !self.map.is_empty()
    }

    /// Writes the expanded file to `spool` (holes left as holes) from the
    /// member's data, and returns its size.
    fn expand<R: Read>(&self, data: &mut R, spool: &Path) -> std::io::Result<u64> {
        use std::io::{Seek, SeekFrom};
        let bad = |what: &str| std::io::Error::other(what.to_string());
        let mut map = self.map.clone();
        if self.major.as_deref() == Some("1") {
            // "COUNT\nOFFSET\nLENGTH\n...", padded to a block.
            let mut consumed = 0u64;
            let mut number = || -> std::io::Result<u64> {
                let mut digits = Vec::new();
                loop {
                    let mut b = [0u8; 1];
                    data.read_exact(&mut b)?;
                    consumed += 1;
                    if b[0] == b'\n' {
                        break;
                    }
                    if !b[0].is_ascii_digit() || digits.len() > 20 {
                        return Err(bad("bad map"));
                    }
                    digits.push(b[0]);
                }
                std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| bad("bad map"))
            };
            let count = number()?;
            if count > 1 << 20 {
                return Err(bad("map too long"));
            }
            map.clear();
            for _ in 0..count * 2 {
                map.push(number()?);
            }
            let pad = (512 - consumed % 512) % 512;
            std::io::copy(&mut data.take(pad), &mut std::io::sink())?;
        }
        let size = self.size.ok_or_else(|| bad("no real size"))?;
        if !map.len().is_multiple_of(2) {
            return Err(bad("odd map"));
        }
        let mut f = std::fs::File::create(spool)?;
        f.set_len(size)?;
        let mut end = 0u64;
        for pair in map.chunks(2) {
            let (off, len) = match pair {
                [o, l] => (*o, *l),
                _ => return Err(bad("odd map")),
            };
            let stop = off.checked_add(len).ok_or_else(|| bad("bad map"))?;
            if off < end || stop > size {
                return Err(bad("fragments overlap or pass the real size"));
            }
            end = stop;
            f.seek(SeekFrom::Start(off))?;
            let copied = std::io::copy(&mut data.take(len), &mut f)?;
            if copied != len {
                return Err(bad("data ends early"));
            }
        }
        Ok(size)
    }
}

impl PaxFields {
    fn read<R: Read>(item: &mut tar::Entry<'_, R>) -> std::io::Result<PaxFields> {
        let mut out = PaxFields {
            mtime: None,
            xattrs: Default::default(),
            sparse: Sparse::default(),
        };
        let Some(exts) = item.pax_extensions()? else {
            return Ok(out);
        };
        for ext in exts {
            let ext = ext?;
            match ext.key() {
                Ok("mtime") => {
                    out.mtime = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(parse_pax_time)
                }
                Ok(k @ ("GNU.sparse.major" | "GNU.sparse.name")) => {
                    let v = bytename::from_bytes(ext.value_bytes()).into_owned();
                    if k == "GNU.sparse.major" {
                        out.sparse.major = Some(v);
                    } else {
                        out.sparse.name = Some(v);
                    }
                }
                Ok("GNU.sparse.realsize" | "GNU.sparse.size") => {
                    out.sparse.size = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(|v| v.parse().ok());
                }
                Ok("GNU.sparse.offset" | "GNU.sparse.numbytes") => {
                    if let Some(v) = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(|v| v.parse().ok())
                    {
                        out.sparse.map.push(v);
                    }
                }
                Ok("GNU.sparse.map") => {
                    out.sparse.map = std::str::from_utf8(ext.value_bytes())
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|v| v.parse().ok())
                        .collect();
                }
                Ok("SCHILY.xattr.security.capability") => {
                    out.xattrs.insert(
                        "security.capability".to_string(),
                        ext.value_bytes().to_vec(),
                    );
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A PAX time, `[-]SECONDS[.FRACTION]`, as seconds and nanoseconds (the
/// fraction cut to nanoseconds, as Go's reader does).
fn parse_pax_time(s: &str) -> Option<(i64, u32)> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos: u32 = format!("{:0<9}", frac.get(..frac.len().min(9))?)
        .parse()
        .ok()?;
    if !neg {
        return Some((secs, nanos));
    }
    // -1.5 is 1.5 seconds before the epoch: (-2, 0.5 s).
    if nanos == 0 {
        Some((-secs, 0))
    } else {
        Some((-secs - 1, 1_000_000_000 - nanos))
    }
}

/// The mtime an extracted member gets: Docker's unpack (moby's
/// `system.Chtimes`) sets a time before the epoch or past the end of
/// Unix nanosecond time (year 2262) to the epoch.
fn extracted_mtime((secs, nanos): (i64, u32)) -> (i64, u32) {
    const MAX_SECS: i64 = i64::MAX / 1_000_000_000;
    if !(0..=MAX_SECS).contains(&secs) {
        (0, 0)
    } else {
        (secs, nanos)
    }
}

/// The first symlink along `rel_parent` (inside `dest`) whose target does
/// not exist.
fn dangling_link_on_the_way(
    view: &FsView,
    dest: &str,
    rel_parent: &str,
) -> Result<Option<String>, String> {
    let mut prefix = String::new();
    for part in rel_parent.split('/').filter(|s| !s.is_empty()) {
        prefix = join(&prefix, part);
        let at = view.resolve_under(dest, &prefix, false)?;
        if let Some(Kind::Symlink { .. }) = view.get(&at).map(|n| &n.entry.kind) {
            let to = view.resolve_under(dest, &prefix, true)?;
            if to != dest && view.get(&to).is_none() {
                return Ok(Some(at));
            }
        }
    }
    Ok(None)
}

fn within(root: &str, path: &str) -> bool {
    root.is_empty() || path == root || path.starts_with(&format!("{root}/"))
}
