//! A writer that hands its bytes to another thread.
//!
//! Writing a plain layer is two halves of about equal cost: making the tar
//! (reading every file) and taking it in (sha256 and the write into the
//! store). On one thread a build's second core idles through both; here
//! the second half runs on its own thread, a few chunks behind.
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Bytes handed over at a time.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: bounds the memory to about `(DEPTH + 2) * CHUNK`.
const DEPTH: usize = 4;

/// Writes to `W` on a thread of its own; [`ThreadedWriter::finish`] gives
/// `W` back once every byte reached it, or the first error it returned.
pub struct ThreadedWriter<W: Write + Send + 'static> {
    tx: Option<SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> ThreadedWriter<W> {
    /// Starts the thread that writes to `inner`.
    pub fn new(mut inner: W) -> io::Result<ThreadedWriter<W>> {
        let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
        let thread = std::thread::Builder::new()
            .name("kiln-layer-write".into())
            .spawn(move || {
                for chunk in rx {
                    inner.write_all(&chunk)?;
                }
                inner.flush()?;
                Ok(inner)
            })?;
        Ok(ThreadedWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
            thread: Some(thread),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let sent = self.tx.as_ref().map(|tx| tx.send(chunk).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped: its error says why.
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("layer writer thread stopped early")),
        }
    }

    fn join(&mut self) -> io::Result<W> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("layer writer thread panicked"))?,
            None => Err(io::Error::other("layer writer already finished")),
        }
    }

    /// Hands over what is left, waits for the thread and returns `W`.
    pub fn finish(mut self) -> io::Result<W> {
        self.send()?;
        self.join()
    }
}

impl<W: Write + Send + 'static> Write for ThreadedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Bytes reach `W` in order, but only [`ThreadedWriter::finish`] waits
    /// for them.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for ThreadedWriter<W> {
    fn drop(&mut self) {
        // Stop the thread; `W`'s own Drop cleans up (a blob writer removes
        // its temp file).
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_whole_and_in_order() {
        let mut w = ThreadedWriter::new(Vec::new()).unwrap();
        let data: Vec<u8> = (0..5 * CHUNK + 123).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(70_001) {
            w.write_all(piece).unwrap();
        }
        assert_eq!(w.finish().unwrap(), data);
    }

    struct Fails(usize);
    impl Write for Fails {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 < b.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_inner_writers_error_comes_back() {
        let mut w = ThreadedWriter::new(Fails(CHUNK)).unwrap();
        let data = vec![1u8; 20 * CHUNK];
        let r = w.write_all(&data).and_then(|_| w.finish().map(|_| ()));
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("disk full"), "{e}");
    }
}
