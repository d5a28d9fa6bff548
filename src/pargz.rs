//! Parallel, deterministic gzip (the pigz technique).
//!
//! The input is cut into fixed 1 MiB chunks. Each chunk is deflated on its
//! own, primed with the previous 32 KiB as a dictionary so the ratio stays
//! close to a single stream's, and ends with a sync flush (the last with
//! finish), which makes the pieces concatenate into one valid deflate
//! stream. One gzip member wraps it: a header with no name, time or OS, and
//! a crc32 and length over the whole input. Chunk boundaries depend only on
//! the input, never on the thread count, so the bytes are the same with 1
//! or 64 threads. At most `2 * threads` chunks are in flight: memory is
//! bounded whatever the layer size.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Bytes per independently compressed chunk.
pub const CHUNK: usize = 1 << 20;
/// The deflate window: how much of the previous chunk primes the next.
const WINDOW: usize = 32 << 10;

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

type Done = (u64, io::Result<Vec<u8>>);

/// A gzip writer that compresses on `threads` threads.
pub struct ParallelGzip<W: Write> {
    /// `None` only after `finish` took it.
    out: Option<W>,
    level: u32,
    buf: Vec<u8>,
    dict: Vec<u8>,
    crc: flate2::Crc,
    next_seq: u64,
    next_write: u64,
    ready: BTreeMap<u64, Vec<u8>>,
    in_flight: usize,
    max_in_flight: usize,
    pool: Option<Pool>,
    /// Compress on the caller's thread (no pool).
    inline: bool,
}

struct Pool {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

fn deflate(level: u32, job: &Job) -> io::Result<Vec<u8>> {
    // A fresh compressor per chunk: a reset one keeps state (seen with
    // zlib-rs) that makes the bytes depend on which chunks it compressed
    // before, and so on the thread count.
    let c = &mut Compress::new(flate2::Compression::new(level), false);
    if !job.dict.is_empty() {
        c.set_dictionary(&job.dict).map_err(io::Error::other)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    let start = c.total_in();
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 << 10));
        }
        let consumed = (c.total_in() - start) as usize;
        let status = c
            .compress_vec(&job.data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = (c.total_in() - start) as usize;
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            _ if !job.last && consumed == job.data.len() && room_left => break,
            _ => {}
        }
    }
    Ok(out)
}

impl<W: Write> ParallelGzip<W> {
    /// Start a gzip member on `out` at `level` (0-9), compressing on
    /// `threads` threads (1: on the caller's).
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        let level = level.min(9);
        // No FNAME/FCOMMENT/FEXTRA, mtime 0, XFL as gzip sets it, OS unknown.
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        let threads = threads.max(1);
        let pool = (threads > 1).then(|| {
            let (jobs, rx) = mpsc::sync_channel::<Job>(threads);
            let rx = Arc::new(Mutex::new(rx));
            let (done_tx, done) = mpsc::channel::<Done>();
            let workers = (0..threads)
                .map(|_| {
                    let rx = Arc::clone(&rx);
                    let done_tx = done_tx.clone();
                    std::thread::spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if done_tx.send((job.seq, deflate(level, &job))).is_err() {
                            return;
                        }
                    })
                })
                .collect();
            Pool {
                jobs: Some(jobs),
                done,
                workers,
            }
        });
        Ok(ParallelGzip {
            out: Some(out),
            level,
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            crc: flate2::Crc::new(),
            next_seq: 0,
            next_write: 0,
            ready: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: 2 * threads,
            inline: pool.is_none(),
            pool,
        })
    }

    /// The compression level.
    pub fn level(&self) -> u32 {
        self.level
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let job = Job {
            seq: self.next_seq,
            data,
            dict,
            last,
        };
        self.next_seq += 1;
        match (self.inline, &self.pool) {
            (true, _) => {
                let bytes = deflate(self.level, &job)?;
                self.sink().write_all(&bytes)?;
                self.next_write += 1;
            }
            (false, Some(pool)) => {
                let jobs = pool.jobs.as_ref().expect("open until finish");
                jobs.send(job)
                    .map_err(|_| io::Error::other("a compression thread stopped"))?;
                self.in_flight += 1;
                // Keep memory bounded: wait while too many chunks are out.
                while self.in_flight >= self.max_in_flight {
                    self.collect(true)?;
                }
                self.collect(false)?;
            }
            (false, None) => unreachable!("either inline or a pool"),
        }
        Ok(())
    }

    /// Take finished chunks (waiting for one if `block`) and write those
    /// next in order.
    fn collect(&mut self, block: bool) -> io::Result<()> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let mut got = Vec::new();
        if block {
            got.push(
                pool.done
                    .recv()
                    .map_err(|_| io::Error::other("a compression thread stopped"))?,
            );
        }
        while let Ok(d) = pool.done.try_recv() {
            got.push(d);
        }
        for (seq, bytes) in got {
            self.in_flight -= 1;
            self.ready.insert(seq, bytes?);
        }
        while let Some(bytes) = self.ready.remove(&self.next_write) {
            self.sink().write_all(&bytes)?;
            self.next_write += 1;
        }
        Ok(())
    }

    /// Compress what is left, write the trailer, return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.next_write < self.next_seq {
            self.collect(true)?;
        }
        let crc = self.crc.sum();
        let len = self.crc.amount();
        let sink = self.sink();
        sink.write_all(&crc.to_le_bytes())?;
        sink.write_all(&len.to_le_bytes())?;
        sink.flush()?;
        self.stop();
        Ok(self.out.take().expect("finish runs once"))
    }

    fn sink(&mut self) -> &mut W {
        self.out.as_mut().expect("the sink is there until finish")
    }

    fn stop(&mut self) {
        if let Some(pool) = &mut self.pool {
            pool.jobs = None; // closes the channel: workers return
            for w in pool.workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        if self.buf.len() == CHUNK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn data(n: usize) -> Vec<u8> {
        let words = [
            "nix", "store", "layer", "oci", "image", "/bin/sh", "\n", "lib", "0123",
        ];
        let mut x = 12345u64;
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
            if x % 7 == 0 {
                v.push((x >> 32) as u8);
            }
        }
        v.truncate(n);
        v
    }

    fn gz(input: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), 6, threads).unwrap();
        // Odd write sizes, so chunking does not follow the caller's writes.
        for piece in input.chunks(77_777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_is_thread_count_independent() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345] {
            let input = data(n);
            let one = gz(&input, 1);
            for threads in [2, 3, 16] {
                assert_eq!(gz(&input, threads), one, "{n} bytes, {threads} threads");
            }
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input, "{n} bytes");
        }
    }

    #[test]
    fn close_to_a_single_stream_in_size() {
        let input = data(4 * CHUNK);
        let ours = gz(&input, 2).len() as f64;
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&input).unwrap();
        let single = single.finish().unwrap().len() as f64;
        assert!(ours / single < 1.03, "{ours} vs {single}");
    }
}
