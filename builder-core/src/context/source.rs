//! Where a build context comes from (a directory, a tar stream on standard
//! input, a tar archive) and where its Dockerfile is.
//!
//! Archives are unpacked into a private temporary directory and from then
//! on treated like any directory context, so the walk, the ignore rules
//! and the digests have one code path.
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use super::error::ContextError;

/// The first argument of `kiln build`: what the context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A directory on the host.
    Dir(PathBuf),
    /// A tar stream (plain, gzip, bzip2, xz or zstd) on standard input; a
    /// stream that is not an archive is a Dockerfile with an empty context.
    Stdin,
    /// A tar archive file (compression detected from its content).
    Archive(PathBuf),
}

impl ContextSource {
    /// Interprets a command-line argument: `-` is standard input, a
    /// regular file is an archive, anything else a directory.
    pub fn from_arg(arg: &str) -> ContextSource {
        if arg == "-" {
            return ContextSource::Stdin;
        }
        let path = PathBuf::from(arg);
        if path.is_file() {
            ContextSource::Archive(path)
        } else {
            ContextSource::Dir(path)
        }
    }
}

/// The `-f` flag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DockerfileFlag {
    /// No flag: `Dockerfile` at the context root, else `dockerfile`.
    #[default]
    Default,
    /// `-f -`: the Dockerfile is read from standard input.
    Stdin,
    /// `-f PATH`: for a directory context a host path (relative to the
    /// current directory, and it may lie outside the context); for an
    /// archive context a path inside the archive.
    Path(PathBuf),
}

/// The Dockerfile a build will use.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// Where it was read from, for messages (`-` for standard input).
    pub name: String,
    /// The host path it was read from, if any.
    pub host_path: Option<PathBuf>,
    /// Its bytes.
    pub text: Vec<u8>,
}

/// Compression of a context archive, recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream (or not an archive at all).
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Recognises a compression format from a stream's first bytes.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What unpacking a stream produced.
#[derive(Debug)]
pub(crate) enum Unpacked {
    /// A tar archive, now unpacked into the directory.
    Tree,
    /// The stream was not an archive: its bytes are a Dockerfile.
    Dockerfile(Vec<u8>),
}

/// Whether a 512-byte block is a tar header (its checksum adds up).
fn looks_like_tar(block: &[u8]) -> bool {
    let Some(stored) = block.get(148..156) else {
        return false;
    };
    let text = String::from_utf8_lossy(stored);
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    let Ok(stored) = u32::from_str_radix(text, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .take(512)
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// Unpacks `input` (any supported compression) into the empty private
/// directory `dest`. `name` labels errors.
pub(crate) fn unpack(input: impl Read, dest: &Path, name: &str) -> Result<Unpacked, ContextError> {
    let archive_err = |message: String| ContextError::Archive {
        archive: name.to_string(),
        message,
    };
    let mut input = input;
    let mut head = Vec::with_capacity(6);
    // `take` keeps reading until it has the magic's length or the end.
    (&mut input)
        .take(6)
        .read_to_end(&mut head)
        .map_err(|e| archive_err(e.to_string()))?;
    let stream = std::io::Cursor::new(head.clone()).chain(input);
    let decoded: Box<dyn Read> = match Compression::detect(&head) {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream).map_err(|e| archive_err(e.to_string()))?,
        ),
        Compression::Xz => {
            // lzma-rs decodes into a writer; stage the tar beside the tree.
            let staged = dest.join(".kiln-context.tar");
            let mut out = File::create(&staged).map_err(|e| ContextError::io(&staged, e))?;
            let mut reader = BufReader::new(stream);
            lzma_rs::xz_decompress(&mut reader, &mut out)
                .map_err(|e| archive_err(format!("xz: {e}")))?;
            out.flush().map_err(|e| ContextError::io(&staged, e))?;
            drop(out);
            let file = File::open(&staged).map_err(|e| ContextError::io(&staged, e))?;
            std::fs::remove_file(&staged).map_err(|e| ContextError::io(&staged, e))?;
            Box::new(file)
        }
    };
    let mut decoded = BufReader::with_capacity(1 << 16, decoded);
    let mut first = Vec::with_capacity(512);
    (&mut decoded)
        .take(512)
        .read_to_end(&mut first)
        .map_err(|e| archive_err(e.to_string()))?;
    if !looks_like_tar(&first) {
        // `docker build - < Dockerfile`: no context, the stream is the Dockerfile.
        let mut text = first;
        decoded
            .read_to_end(&mut text)
            .map_err(|e| archive_err(e.to_string()))?;
        return Ok(Unpacked::Dockerfile(text));
    }
    extract(std::io::Cursor::new(first).chain(decoded), dest, name)?;
    Ok(Unpacked::Tree)
}

/// Extracts a tar stream into `dest`, refusing any entry whose path or
/// hard-link target would leave it. Symlinks are written as they are; the
/// tar crate refuses to write through one that leads outside `dest`.
fn extract(input: impl Read, dest: &Path, name: &str) -> Result<(), ContextError> {
    let archive_err = |message: String| ContextError::Archive {
        archive: name.to_string(),
        message,
    };
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(|e| archive_err(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(e.to_string()))?;
        let raw = entry.path_bytes().into_owned();
        let shown = crate::bytename::show(&crate::bytename::from_bytes(&raw)).into_owned();
        let unsafe_entry = || ContextError::UnsafeEntry {
            archive: name.to_string(),
            entry: shown.clone(),
        };
        let path = entry.path().map_err(|_| unsafe_entry())?.into_owned();
        if escapes(&path) {
            return Err(unsafe_entry());
        }
        if entry.header().entry_type().is_hard_link() {
            match entry.link_name().map_err(|e| archive_err(e.to_string()))? {
                Some(target) if !escapes(&target) => {}
                _ => return Err(unsafe_entry()),
            }
        }
        let unpacked = entry
            .unpack_in(dest)
            .map_err(|e| archive_err(format!("{shown}: {e}")))?;
        if !unpacked {
            return Err(unsafe_entry());
        }
    }
    Ok(())
}

/// Whether a relative archive path climbs above its root (a leading `/`
/// is harmless: it is read relative to the root).
fn escapes(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for comp in path.components() {
        match comp {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Finds and reads the Dockerfile for a context rooted at `root`.
/// `in_archive` says the context came from an archive, where `-f` names
/// a path inside it. `stdin` serves `-f -`.
pub fn locate_dockerfile(
    root: &Path,
    flag: &DockerfileFlag,
    in_archive: bool,
    stdin: &mut dyn Read,
) -> Result<Dockerfile, ContextError> {
    match flag {
        DockerfileFlag::Stdin => {
            let mut text = Vec::new();
            stdin
                .read_to_end(&mut text)
                .map_err(|e| ContextError::io("-", e))?;
            Ok(Dockerfile {
                name: "-".to_string(),
                host_path: None,
                text,
            })
        }
        DockerfileFlag::Path(p) => {
            let host = if in_archive {
                // Inside the archive, so it cannot leave the unpacked tree.
                let rel = super::pattern::go_clean(&format!("/{}", p.to_string_lossy()));
                root.join(rel.trim_start_matches('/'))
            } else {
                p.clone()
            };
            let text = crate::sandbox::read_owned(&host).map_err(|e| ContextError::io(p, e))?;
            Ok(Dockerfile {
                name: p.display().to_string(),
                host_path: Some(host),
                text,
            })
        }
        DockerfileFlag::Default => {
            for candidate in ["Dockerfile", "dockerfile"] {
                let host = root.join(candidate);
                match crate::sandbox::read_owned(&host) {
                    Ok(text) => {
                        return Ok(Dockerfile {
                            name: candidate.to_string(),
                            host_path: Some(host),
                            text,
                        })
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(ContextError::io(host, e)),
                }
            }
            Err(ContextError::NoDockerfile {
                looked_for: format!("{0}/Dockerfile and {0}/dockerfile", root.display()),
            })
        }
    }
}
