//! Layer compressions and the streaming encoders for them.
use std::io::{self, Write};
use std::str::FromStr;

use super::pgzip::ParGzEncoder;
use crate::image::media;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// gzip (the default, what every consumer reads).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// A plain tar.
    Uncompressed,
}

/// Why a compression name is unknown.
#[derive(Debug, thiserror::Error)]
#[error("unknown compression {0:?}: expected gzip, zstd or uncompressed")]
pub struct UnknownCompression(pub String);

impl FromStr for Compression {
    type Err = UnknownCompression;
    fn from_str(s: &str) -> Result<Compression, UnknownCompression> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "uncompressed" => Ok(Compression::Uncompressed),
            _ => Err(UnknownCompression(s.to_string())),
        }
    }
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => media::OCI_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
            Compression::Uncompressed => media::OCI_LAYER_TAR,
        }
    }

    /// The Docker layer media type for this compression.
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => media::DOCKER_LAYER_GZIP,
            Compression::Zstd => media::DOCKER_LAYER_ZSTD,
            Compression::Uncompressed => media::DOCKER_LAYER_TAR,
        }
    }

    /// The compression a layer media type says, if it names a layer.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        match mt {
            media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => Some(Compression::Gzip),
            media::OCI_LAYER_ZSTD | media::DOCKER_LAYER_ZSTD => Some(Compression::Zstd),
            media::OCI_LAYER_TAR | media::DOCKER_LAYER_TAR => Some(Compression::Uncompressed),
            _ => None,
        }
    }

    /// The level used when none is given (gzip 6 as zlib and Go, zstd 3).
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Gzip => 6,
            Compression::Zstd => 3,
            Compression::Uncompressed => 0,
        }
    }
}

/// Compression settings for writing a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionOptions {
    /// The algorithm.
    pub compression: Compression,
    /// The level; `None` for the algorithm's default.
    pub level: Option<i32>,
    /// Threads for gzip (the output does not depend on it); 0 means all cores.
    pub threads: usize,
}

impl Default for CompressionOptions {
    fn default() -> CompressionOptions {
        CompressionOptions {
            compression: Compression::Gzip,
            level: None,
            threads: 0,
        }
    }
}

impl CompressionOptions {
    fn thread_count(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// A streaming encoder for any [`Compression`].
pub enum Encoder<W: Write> {
    /// Parallel gzip.
    Gzip(ParGzEncoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// Pass-through.
    Plain(W),
}

impl<W: Write> Encoder<W> {
    /// An encoder writing to `out`.
    pub fn new(out: W, opts: &CompressionOptions) -> io::Result<Encoder<W>> {
        let level = opts.level.unwrap_or(opts.compression.default_level());
        Ok(match opts.compression {
            Compression::Gzip => Encoder::Gzip(ParGzEncoder::new(
                out,
                level.clamp(0, 9) as u32,
                opts.thread_count(),
            )),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, level)?;
                // Fixed frame parameters: no checksum, content size unknown,
                // as containerd's and BuildKit's zstd writers leave them.
                e.include_checksum(false)?;
                Encoder::Zstd(e)
            }
            Compression::Uncompressed => Encoder::Plain(out),
        })
    }

    /// Ends the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Zstd(e) => e.write_all(buf),
            Encoder::Plain(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}

/// A reader that decompresses gzip, zstd or nothing, by sniffing magic bytes.
pub fn decompressing_reader<R: io::BufRead + 'static>(mut r: R) -> io::Result<Box<dyn io::Read>> {
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}
