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
//!
//! The direct writes run on a thread of their own, one chunk behind the
//! caller: hashing a chunk and waiting for the disk to take the previous
//! one overlap, which is where a plain layer's write spent its time.
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes per direct write: a multiple of any block size in use.
const CHUNK: usize = 1 << 20;
/// Alignment of the buffer, the file offset and the length of a direct
/// write (the page size; a multiple of every logical block size).
const ALIGN: usize = 4096;
/// Chunks in use at once: one filling, one being written.
const CHUNKS: usize = 2;

/// A [`CHUNK`]-sized buffer at an [`ALIGN`]ed address.
struct Chunk {
    /// `CHUNK + ALIGN` bytes, of which `start..start + CHUNK` is aligned.
    mem: Vec<u8>,
    start: usize,
}

impl Chunk {
    fn new() -> Chunk {
        let mem = vec![0u8; CHUNK + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        Chunk { mem, start }
    }

    /// No memory: what a [`DirectWriter`] holds while its buffer is being
    /// swapped.
    fn empty() -> Chunk {
        Chunk {
            mem: Vec::new(),
            start: 0,
        }
    }

    fn bytes(&self, len: usize) -> &[u8] {
        self.mem
            .get(self.start..self.start + len.min(CHUNK))
            .unwrap_or_default()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.mem
            .get_mut(self.start..self.start + CHUNK)
            .unwrap_or_default()
    }
}

/// Turns `O_DIRECT` on or off for `file`; whether it took.
fn set_direct(file: &File, on: bool) -> bool {
    let fd = file.as_raw_fd();
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
    unsafe { libc::fcntl(fd, libc::F_SETFL, new) == 0 }
}

/// Writes `bytes` at `pos`; a direct write the filesystem refuses (`EINVAL`:
/// accepted by fcntl, not by the write, or its block size) is done again
/// through the page cache, which `direct` then stays off for. Writes are
/// positioned, so the retry rewrites the same range.
fn write_at(file: &File, bytes: &[u8], pos: u64, direct: &mut bool) -> io::Result<()> {
    match file.write_all_at(bytes, pos) {
        Err(e) if *direct && e.raw_os_error() == Some(libc::EINVAL) => {
            *direct = false;
            set_direct(file, false);
            file.write_all_at(bytes, pos)
        }
        r => r,
    }
}

/// The thread that writes whole chunks with `O_DIRECT` and hands each
/// buffer back.
struct Background {
    to_disk: Option<SyncSender<(Chunk, u64)>>,
    spare: Receiver<Chunk>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Chunks made so far (at most [`CHUNKS`]).
    made: usize,
}

impl Background {
    fn start(file: Arc<File>) -> io::Result<Background> {
        let (to_disk, from_caller) = sync_channel::<(Chunk, u64)>(1);
        let (give_back, spare) = sync_channel::<Chunk>(CHUNKS);
        let thread = std::thread::Builder::new()
            .name("kiln-blob-io".into())
            .spawn(move || {
                let mut direct = true;
                for (chunk, pos) in from_caller {
                    write_at(&file, chunk.bytes(CHUNK), pos, &mut direct)?;
                    let _ = give_back.send(chunk);
                }
                Ok(())
            })?;
        Ok(Background {
            to_disk: Some(to_disk),
            spare,
            thread: Some(thread),
            made: 1,
        })
    }

    /// Waits for every chunk handed over; the first error.
    fn join(&mut self) -> io::Result<()> {
        self.to_disk = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("blob writer thread panicked"))?,
            None => Ok(()),
        }
    }

    /// Hands `full` (written at `pos`) to the thread; an empty chunk back.
    fn hand_over(&mut self, full: Chunk, pos: u64) -> io::Result<Chunk> {
        let sent = self
            .to_disk
            .as_ref()
            .is_some_and(|tx| tx.send((full, pos)).is_ok());
        if !sent {
            self.join()?;
            return Err(io::Error::other("blob writer thread stopped early"));
        }
        if self.made < CHUNKS {
            self.made += 1;
            return Ok(Chunk::new());
        }
        match self.spare.recv() {
            Ok(c) => Ok(c),
            Err(_) => {
                self.join()?;
                Err(io::Error::other("blob writer thread stopped early"))
            }
        }
    }
}

/// Buffers writes into [`CHUNK`]-sized aligned blocks for a file.
pub(super) struct DirectWriter {
    file: Arc<File>,
    buf: Chunk,
    len: usize,
    /// Where the buffered bytes go in the file.
    pos: u64,
    /// Writing whole chunks direct (started at the first whole chunk).
    background: Option<Background>,
    /// The filesystem refused `O_DIRECT`: the page cache from here on.
    refused: bool,
}

impl DirectWriter {
    pub(super) fn new(file: File) -> DirectWriter {
        DirectWriter {
            file: Arc::new(file),
            buf: Chunk::new(),
            len: 0,
            pos: 0,
            background: None,
            refused: false,
        }
    }

    /// Writes the full buffer: to the direct-writing thread once `O_DIRECT`
    /// is on, else through the page cache.
    fn drain_whole(&mut self) -> io::Result<()> {
        if self.background.is_none() && !self.refused {
            if set_direct(&self.file, true) {
                self.background = Some(Background::start(Arc::clone(&self.file))?);
            } else {
                self.refused = true;
            }
        }
        match &mut self.background {
            Some(b) => {
                let full = std::mem::replace(&mut self.buf, Chunk::empty());
                self.buf = b.hand_over(full, self.pos)?;
            }
            None => {
                let mut direct = false;
                write_at(&self.file, self.buf.bytes(CHUNK), self.pos, &mut direct)?;
            }
        }
        self.pos += CHUNK as u64;
        self.len = 0;
        Ok(())
    }

    /// Writes what is buffered and gives the file back (not yet synced;
    /// no other thread holds it any more).
    pub(super) fn finish(mut self) -> io::Result<Arc<File>> {
        if let Some(mut b) = self.background.take() {
            b.join()?;
            // The tail: a length the disk may not take directly.
            set_direct(&self.file, false);
        }
        if self.len > 0 {
            let mut direct = false;
            write_at(&self.file, self.buf.bytes(self.len), self.pos, &mut direct)?;
            self.pos += self.len as u64;
            self.len = 0;
        }
        Ok(Arc::clone(&self.file))
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.len);
        let (Some(dst), Some(src)) = (
            self.buf.bytes_mut().get_mut(self.len..self.len + n),
            data.get(..n),
        ) else {
            return Err(io::Error::other("direct writer: buffer out of range"));
        };
        dst.copy_from_slice(src);
        self.len += n;
        if self.len == CHUNK {
            self.drain_whole()?;
        }
        Ok(n)
    }

    /// Buffered bytes stay until a whole chunk or [`DirectWriter::finish`]:
    /// writing them early would break the alignment.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        // A blob given up on: let the thread end before the temp file goes.
        if let Some(mut b) = self.background.take() {
            let _ = b.join();
        }
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
    fn a_write_that_fails_on_the_thread_fails_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"").unwrap();
        // Opened read-only: every write fails, on whichever thread.
        let mut w = DirectWriter::new(File::open(&path).unwrap());
        let data = vec![3u8; 4 * CHUNK + 10];
        let r = w.write_all(&data).and_then(|_| w.finish().map(|_| ()));
        let e = r.expect_err("writes to a read-only file succeeded");
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
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
