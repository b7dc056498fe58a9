//! Parallel gzip whose output does not depend on the thread count.
//!
//! The input is cut into fixed 128 KiB blocks by offset. Each block is
//! raw-deflated on its own with the 32 KiB of input before it as the preset
//! dictionary and ends in a sync flush (the last one in a final block), so the
//! concatenation is one valid deflate stream inside one gzip member — the
//! scheme pigz uses. A block's bytes depend only on its input, its dictionary
//! and the level, never on which thread compressed it or when; one thread and
//! many give identical files. Memory is bounded by blocks in flight
//! (2 × threads × 128 KiB), whatever the stream's length.
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of input per independently compressed block.
pub const BLOCK: usize = 128 * 1024;
const WINDOW: usize = 32 * 1024;

struct Job {
    seq: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

type Done = (u64, io::Result<(Vec<u8>, Crc)>);

struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    results: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

/// A gzip writer compressing on `threads` threads.
pub struct ParGzEncoder<W: Write> {
    // An Option only so `finish` can move it out of a type with Drop.
    out: Option<W>,
    level: u32,
    block: Vec<u8>,
    dict: Vec<u8>,
    crc: Crc,
    pool: Option<Pool>,
    next_seq: u64,
    next_write: u64,
    ready: BTreeMap<u64, (Vec<u8>, Crc)>,
    max_in_flight: u64,
    finished: bool,
}

fn deflate_block(c: &mut Compress, job: &Job) -> io::Result<(Vec<u8>, Crc)> {
    c.reset();
    if !job.dict.is_empty() {
        c.set_dictionary(&job.dict).map_err(io::Error::other)?;
    }
    let mut crc = Crc::new();
    crc.update(&job.data);
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
        let input = job.data.get(consumed..).unwrap_or(&[]);
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = usize::try_from(c.total_in()).is_ok_and(|n| n == job.data.len());
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and zlib stopped
            // before filling the output.
            _ if !job.last && all_in && room_left => break,
            _ => {}
        }
    }
    Ok((out, crc))
}

impl<W: Write> ParGzEncoder<W> {
    /// A writer compressing at `level` (0–9) on `threads` threads (1 means
    /// inline, no threads at all), writing gzip to `out`.
    pub fn new(out: W, level: u32, threads: usize) -> ParGzEncoder<W> {
        let level = level.min(9);
        let pool = (threads > 1).then(|| {
            let (jtx, jrx) = mpsc::channel::<Job>();
            let (rtx, rrx) = mpsc::channel::<Done>();
            let jrx = Arc::new(Mutex::new(jrx));
            let workers = (0..threads)
                .map(|_| {
                    let jrx = Arc::clone(&jrx);
                    let rtx = rtx.clone();
                    std::thread::spawn(move || loop {
                        let job = match jrx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A fresh compressor per block: zlib-rs's reset
                        // plus set_dictionary leaves state from the previous
                        // block behind, so reusing one made the output
                        // depend on which worker took which block.
                        let mut c = Compress::new(Compression::new(level), false);
                        let r = deflate_block(&mut c, &job);
                        if rtx.send((job.seq, r)).is_err() {
                            return;
                        }
                    })
                })
                .collect();
            Pool {
                jobs: Some(jtx),
                results: rrx,
                workers,
            }
        });
        ParGzEncoder {
            out: Some(out),
            level,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            crc: Crc::new(),
            pool,
            next_seq: 0,
            next_write: 0,
            ready: BTreeMap::new(),
            max_in_flight: 2 * threads.max(1) as u64,
            finished: false,
        }
    }

    fn sink(&mut self) -> io::Result<&mut W> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip encoder already finished"))
    }

    fn header(&mut self) -> io::Result<()> {
        // Go's gzip header: no name, mtime 0, XFL by level, OS "unknown".
        let xfl = match self.level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        self.sink()?
            .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        if self.next_seq == 0 {
            self.header()?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let job = Job {
            seq: self.next_seq,
            dict: std::mem::take(&mut self.dict),
            data,
            last,
        };
        // The next block's dictionary: the last 32 KiB of input so far.
        let tail_from = job.data.len().saturating_sub(WINDOW);
        let mut dict = job.data.get(tail_from..).unwrap_or(&[]).to_vec();
        if dict.len() < WINDOW {
            let need = WINDOW - dict.len();
            let prev = job
                .dict
                .get(job.dict.len().saturating_sub(need)..)
                .unwrap_or(&[]);
            let mut d = prev.to_vec();
            d.extend_from_slice(&dict);
            dict = d;
        }
        self.dict = dict;
        self.next_seq += 1;
        match &self.pool {
            None => {
                let mut c = Compress::new(Compression::new(self.level), false);
                let r = deflate_block(&mut c, &job)?;
                self.ready.insert(job.seq, r);
                self.drain_ready()
            }
            Some(p) => {
                let sent = p.jobs.as_ref().map(|tx| tx.send(job));
                if !matches!(sent, Some(Ok(()))) {
                    return Err(io::Error::other("gzip worker pool stopped"));
                }
                while self.next_seq - self.next_write > self.max_in_flight {
                    self.wait_one()?;
                }
                Ok(())
            }
        }
    }

    fn wait_one(&mut self) -> io::Result<()> {
        let got = match &self.pool {
            Some(p) => p
                .results
                .recv()
                .map_err(|_| io::Error::other("gzip worker died"))?,
            None => return Ok(()),
        };
        let (seq, r) = got;
        self.ready.insert(seq, r?);
        self.drain_ready()
    }

    fn drain_ready(&mut self) -> io::Result<()> {
        while let Some((bytes, crc)) = self.ready.remove(&self.next_write) {
            self.sink()?.write_all(&bytes)?;
            self.crc.combine(&crc);
            self.next_write += 1;
        }
        Ok(())
    }

    /// Compresses what is buffered, writes the trailer and returns the
    /// inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.finish_inner()?;
        self.shutdown();
        self.out
            .take()
            .ok_or_else(|| io::Error::other("gzip encoder already finished"))
    }

    fn finish_inner(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.submit(true)?;
        while self.next_write < self.next_seq {
            self.wait_one()?;
        }
        let crc = self.crc.sum();
        let len = self.crc.amount();
        self.sink()?.write_all(&crc.to_le_bytes())?;
        self.sink()?.write_all(&len.to_le_bytes())?;
        self.sink()?.flush()?;
        self.finished = true;
        Ok(())
    }

    fn shutdown(&mut self) {
        if let Some(p) = &mut self.pool {
            p.jobs = None;
            for w in p.workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(buf.get(..n).unwrap_or(buf));
        if self.block.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParGzEncoder<W> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
