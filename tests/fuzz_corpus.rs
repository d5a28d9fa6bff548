//! Every committed fuzz corpus input (`fuzz/corpus/TARGET/*`) through its
//! target, in every test run: what the long campaigns of `fuzz/run.sh`
//! found, and the seeds, stay fixed. Each must return (an error is fine)
//! without a panic, writing nothing outside its scratch directory (the
//! targets check that themselves), and within bounds on the work it does.
//!
//! The bounds are on work, not time, so that a busy machine (CI shares its
//! cores) cannot fail them: every byte an input makes the code write comes
//! from the input (the layer blob, then file content, zeros being written
//! as holes), so it writes at most twice its size and a little for the
//! layout's documents (a sparse file written out as data, a bomb inflated
//! to disk, would not); and the process's peak memory stays small (an
//! extension header read whole into memory would not).
//! CPU time is only a guard against an input that never returns, with a
//! margin far above what any input takes (milliseconds) that a loaded
//! machine meets: CPU time does not grow with the other work on the
//! machine as wall-clock time does.

use std::path::Path;
use std::time::Duration;

/// CPU time (user and system) used by the whole process so far: the targets
/// may use threads of their own (parallel compression), and this binary
/// runs one test, so the process's figure is the target's.
fn cpu_time() -> Duration {
    let usage = rusage();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn rusage() -> libc::rusage {
    // SAFETY: rusage holds only integers, for which all zeroes is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the struct we own; RUSAGE_SELF
    // is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    usage
}

/// Bytes this process has passed to `write` and similar calls so far
/// (`wchar` of `/proc/self/io`).
fn bytes_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no wchar in /proc/self/io: {io}"))
}

/// What one input may make the code write: its own bytes twice (the
/// layer blob, then the files of an uncompressed tar, whose zeros are
/// holes), and 1 MiB for the layout's documents.
fn write_bound(input: &[u8]) -> u64 {
    2 * input.len() as u64 + (1 << 20)
}

#[test]
fn every_corpus_input_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut count = 0;
    for (name, target) in nixoci::fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}: every target has a corpus", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{}: an empty corpus", dir.display());
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let (start, written) = (cpu_time(), bytes_written());
            target(&data);
            let (took, wrote) = (cpu_time() - start, bytes_written() - written);
            assert!(
                wrote <= write_bound(&data),
                "{}: wrote {wrote} bytes, more than twice its size and 1 MiB ({}): it wrote what it does not hold",
                input.display(),
                write_bound(&data)
            );
            assert!(
                took < Duration::from_secs(60),
                "{}: {took:?} of CPU time: it does not return",
                input.display()
            );
            count += 1;
        }
    }
    // Peak memory, all inputs through: the binary and a few buffers (a
    // layer's 1 MiB read buffer, 256 KiB copy buffers, the zstd window).
    let peak = rusage().ru_maxrss as u64 * 1024;
    assert!(peak < 256 << 20, "{} MB at peak", peak >> 20);
    assert!(count >= 20, "{count} inputs");
}
