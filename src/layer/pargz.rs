//! Parallel, deterministic gzip: one gzip member per 1 MiB chunk.
//!
//! The input is cut into fixed 1 MiB chunks and each chunk becomes a
//! complete gzip member of its own (header with no name, time 0, OS
//! unknown; deflate data; crc32 and length), compressed by libdeflate,
//! which deflates a whole buffer at once: at level 6 it is about 1.6 times
//! as fast as zlib-rs with slightly smaller output (`benches/layer.sh`).
//! The members are written in order, so the layer is a multi-member gzip
//! file (RFC 1952 section 2.2), the framing BGZF, eStargz and apko images
//! use. Go's `compress/gzip` (containerd, Docker, podman, skopeo, umoci),
//! GNU gzip, busybox, Python and flate2's `MultiGzDecoder` read every
//! member; a reader that stops after the first member does not.
//!
//! Chunk boundaries depend only on the input, never on the thread count,
//! and a member's bytes depend only on its chunk and the level (libdeflate
//! keeps no state between calls), so the bytes are the same with 1 or 64
//! threads. At most `2 * threads` chunks are in flight: memory is bounded
//! whatever the layer size.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes per independently compressed chunk.
pub const CHUNK: usize = 1 << 20;

struct Job {
    seq: u64,
    data: Vec<u8>,
}

type Done = (u64, io::Result<Vec<u8>>);

/// A gzip writer that compresses on `threads` threads.
pub struct ParallelGzip<W: Write> {
    /// `None` only after `finish` took it.
    out: Option<W>,
    level: u32,
    buf: Vec<u8>,
    next_seq: u64,
    next_write: u64,
    ready: BTreeMap<u64, Vec<u8>>,
    /// Chunks submitted but not yet written, at most.
    max_unwritten: u64,
    pool: Option<Pool>,
    /// The most chunks ever submitted but not yet written.
    #[cfg(test)]
    peak_unwritten: u64,
}

/// Tests: hold the first chunk's worker back this long.
#[cfg(test)]
static SLOW_FIRST_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct Pool {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

thread_local! {
    /// This thread's compressor and its level, kept between chunks:
    /// allocating one costs more than compressing a small chunk.
    static COMPRESSOR: RefCell<Option<(u32, libdeflater::Compressor)>> =
        const { RefCell::new(None) };
}

/// Compress one chunk into a gzip member.
fn member(level: u32, data: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(l, _)| *l != level) {
            let lvl = libdeflater::CompressionLvl::new(level as i32)
                .map_err(|e| io::Error::other(format!("gzip level {level}: {e:?}")))?;
            *cell = Some((level, libdeflater::Compressor::new(lvl)));
        }
        let (_, c) = cell.as_mut().expect("set above");
        let mut out = vec![0; c.gzip_compress_bound(data.len())];
        let n = c
            .gzip_compress(data, &mut out)
            .map_err(|e| io::Error::other(format!("gzip: {e:?}")))?;
        out.truncate(n);
        Ok(out)
    })
}

impl<W: Write> ParallelGzip<W> {
    /// Write gzip to `out` at `level` (1-9 as layers use it; 0 stores, and
    /// higher values are taken as 9), compressing on `threads` threads (1:
    /// on the caller's).
    pub fn new(out: W, level: u32, threads: usize) -> io::Result<Self> {
        let level = level.min(9);
        let threads = threads.max(1);
        let pool = if threads == 1 {
            None
        } else {
            let (jobs, rx) = mpsc::sync_channel::<Job>(threads);
            let rx = Arc::new(Mutex::new(rx));
            let (done_tx, done) = mpsc::channel::<Done>();
            let workers = (0..threads)
                .map(|_| {
                    let rx = Arc::clone(&rx);
                    let done_tx = done_tx.clone();
                    // Spawning can fail (too many threads for the system's
                    // limits): an error, not a panic.
                    std::thread::Builder::new().spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panic (a bug in the compressor or its bindings;
                        // running out of memory aborts the process in Rust,
                        // it does not panic) becomes an error for this
                        // chunk: the writer waits for every chunk, so a lost
                        // one would hang it.
                        #[cfg(test)]
                        if job.seq == 0 {
                            let ms = SLOW_FIRST_MS.load(std::sync::atomic::Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(ms));
                        }
                        let bytes = std::panic::catch_unwind(|| member(level, &job.data))
                            .unwrap_or_else(|_| {
                                Err(io::Error::other("a compression thread panicked"))
                            });
                        if done_tx.send((job.seq, bytes)).is_err() {
                            return;
                        }
                    })
                })
                .collect::<io::Result<Vec<_>>>()
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot start {threads} compression threads ({e}): use fewer with --threads"),
                    )
                })?;
            Some(Pool {
                jobs: Some(jobs),
                done,
                workers,
            })
        };
        Ok(ParallelGzip {
            out: Some(out),
            level,
            buf: Vec::with_capacity(CHUNK),
            next_seq: 0,
            next_write: 0,
            ready: BTreeMap::new(),
            max_unwritten: 2 * threads as u64,
            pool,
            #[cfg(test)]
            peak_unwritten: 0,
        })
    }

    /// The compression level.
    pub fn level(&self) -> u32 {
        self.level
    }

    fn submit(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let job = Job {
            seq: self.next_seq,
            data,
        };
        self.next_seq += 1;
        // No pool: compress on the caller's thread.
        match &self.pool {
            None => {
                let bytes = member(self.level, &job.data)?;
                self.sink().write_all(&bytes)?;
                self.next_write += 1;
            }
            Some(pool) => {
                let jobs = pool.jobs.as_ref().expect("open until finish");
                jobs.send(job)
                    .map_err(|_| io::Error::other("a compression thread stopped"))?;
                #[cfg(test)]
                {
                    self.peak_unwritten = self.peak_unwritten.max(self.next_seq - self.next_write);
                }
                // Keep memory bounded: wait while too many chunks are not
                // yet written, compressed or not (finished ones wait in
                // `ready` behind a slower earlier one).
                while self.next_seq - self.next_write >= self.max_unwritten {
                    self.collect(true)?;
                }
                self.collect(false)?;
            }
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
            self.ready.insert(seq, bytes?);
        }
        while let Some(bytes) = self.ready.remove(&self.next_write) {
            self.sink().write_all(&bytes)?;
            self.next_write += 1;
        }
        Ok(())
    }

    /// Compress what is left and return the sink. Empty input still gets
    /// one (empty) member: a gzip file has at least one.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.next_seq == 0 {
            self.submit()?;
        }
        while self.next_write < self.next_seq {
            self.collect(true)?;
        }
        self.sink().flush()?;
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
        if self.buf.len() == CHUNK {
            self.submit()?;
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
            flate2::read::MultiGzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input, "{n} bytes");
        }
    }

    #[test]
    fn memory_stays_bounded_behind_a_slow_chunk() {
        // While the first chunk is held back, the others finish and wait to
        // be written: they count against the bound too.
        SLOW_FIRST_MS.store(300, std::sync::atomic::Ordering::Relaxed);
        let input = data(64 * CHUNK);
        let mut w = ParallelGzip::new(Vec::new(), 1, 4).unwrap();
        w.write_all(&input).unwrap();
        let pending = w.peak_unwritten;
        let out = w.finish().unwrap();
        SLOW_FIRST_MS.store(0, std::sync::atomic::Ordering::Relaxed);
        assert!(pending <= 8, "{pending} chunks pending with 4 threads");
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == input);
    }

    #[test]
    fn one_complete_member_per_chunk() {
        for n in [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345] {
            let input = data(n);
            let gz = gz(&input, 2);
            // Read member by member: each is a whole gzip file of one chunk.
            let mut rest = &gz[..];
            let mut members = Vec::new();
            while !rest.is_empty() {
                let mut d = flate2::bufread::GzDecoder::new(rest);
                let mut chunk = Vec::new();
                d.read_to_end(&mut chunk).unwrap();
                rest = d.into_inner();
                members.push(chunk);
            }
            assert_eq!(members.len(), n.div_ceil(CHUNK).max(1), "{n} bytes");
            assert!(members.iter().all(|m| m.len() <= CHUNK));
            assert_eq!(members.concat(), input, "{n} bytes");
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
