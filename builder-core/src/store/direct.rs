//! A file writer that bypasses the page cache for big blobs.
//!
//! Every blob is fsynced before it is named, so its bytes reach the disk
//! before a build goes on either way. Written through the page cache they
//! are first copied into freshly allocated pages (the costliest part of a
//! RUN layer's write on a VM whose host hands pages back lazily) and then
//! written out by the fsync; with `O_DIRECT` the disk reads them straight
//! from one reused buffer, and the page cache is left to the steps. Whole
//! aligned chunks go direct; a blob smaller than one chunk, the unaligned
//! tail of any blob, and every write on a filesystem that refuses
//! `O_DIRECT` go through the page cache as before.
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Bytes per direct write: a multiple of any block size in use.
const CHUNK: usize = 1 << 20;
/// Alignment of the buffer, the file offset and the length of a direct
/// write (the page size; a multiple of every logical block size).
const ALIGN: usize = 4096;

/// Buffers writes into [`CHUNK`]-sized aligned blocks for `file`.
pub(super) struct DirectWriter {
    file: File,
    /// `CHUNK + ALIGN` bytes, of which `start..start + CHUNK` is aligned.
    mem: Vec<u8>,
    start: usize,
    len: usize,
    /// Where the buffered bytes go in the file (writes are positioned, so
    /// a retry after a refused direct write rewrites the same range).
    pos: u64,
    /// `O_DIRECT` is on for `file` (turned on at the first whole chunk).
    direct: bool,
    /// The filesystem refused `O_DIRECT`: never try again.
    refused: bool,
}

impl DirectWriter {
    pub(super) fn new(file: File) -> DirectWriter {
        let mem = vec![0u8; CHUNK + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        DirectWriter {
            file,
            mem,
            start,
            len: 0,
            pos: 0,
            direct: false,
            refused: false,
        }
    }

    fn set_direct(&mut self, on: bool) -> bool {
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own, with integer arguments.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return false;
        }
        let new = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        // SAFETY: as above.
        let ok = unsafe { libc::fcntl(fd, libc::F_SETFL, new) } == 0;
        if ok {
            self.direct = on;
        }
        ok
    }

    /// Writes the buffered bytes: direct when they are a whole chunk.
    fn drain(&mut self) -> io::Result<()> {
        let whole = self.len == CHUNK;
        if whole && !self.direct && !self.refused && !self.set_direct(true) {
            self.refused = true;
        }
        if !whole && self.direct {
            // The tail: a length the disk may not take directly.
            self.set_direct(false);
        }
        let range = self.start..self.start + self.len;
        let r = match self.mem.get(range.clone()) {
            Some(bytes) => self.file.write_all_at(bytes, self.pos),
            None => Err(io::Error::other("direct writer: buffer out of range")),
        };
        match r {
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                // Accepted by fcntl, refused by the write (the filesystem
                // or its block size): the page cache, from here on.
                self.refused = true;
                self.set_direct(false);
                let bytes = self.mem.get(range).unwrap_or_default();
                self.file.write_all_at(bytes, self.pos)?;
            }
            r => r?,
        }
        self.pos += self.len as u64;
        self.len = 0;
        Ok(())
    }

    /// Writes what is buffered and gives the file back (not yet synced).
    pub(super) fn finish(mut self) -> io::Result<File> {
        if self.len > 0 {
            self.drain()?;
        }
        if self.direct {
            self.set_direct(false);
        }
        Ok(self.file)
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.len);
        let at = self.start + self.len;
        let (Some(dst), Some(src)) = (self.mem.get_mut(at..at + n), data.get(..n)) else {
            return Err(io::Error::other("direct writer: buffer out of range"));
        };
        dst.copy_from_slice(src);
        self.len += n;
        if self.len == CHUNK {
            self.drain()?;
        }
        Ok(n)
    }

    /// Buffered bytes stay until a whole chunk or [`DirectWriter::finish`]:
    /// writing them early would break the alignment.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(len: usize, piece: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = DirectWriter::new(File::create(&path).unwrap());
        for p in data.chunks(piece.max(1)) {
            w.write_all(p).unwrap();
        }
        w.finish().unwrap().sync_all().unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "content differs for len {len}");
    }

    #[test]
    fn every_length_comes_back_whole() {
        for len in [
            0,
            1,
            511,
            4096,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 512,
            5 * CHUNK + 12_345,
        ] {
            roundtrip(len, 70_001);
        }
        roundtrip(2 * CHUNK + 77, CHUNK + 3);
    }

    #[test]
    fn a_filesystem_without_direct_io_still_gets_the_bytes() {
        // /dev/shm (tmpfs) refused O_DIRECT before Linux 6.6; either way
        // the bytes must arrive.
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("blob");
        let data = vec![9u8; 2 * CHUNK + 100];
        let mut w = DirectWriter::new(File::create(&path).unwrap());
        w.write_all(&data).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
