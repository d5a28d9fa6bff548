//! Every committed fuzz corpus input (`fuzz/corpus/TARGET/*`) through its
//! target, in every test run: what the long campaigns of `fuzz/run.sh`
//! found, and the seeds, stay fixed. Each must return (an error is fine)
//! without a panic, within a second of CPU time, and writing nothing
//! outside its scratch directory (the targets check that themselves).
//!
//! The bound is on CPU time, not wall-clock time: on a busy machine (CI
//! shares its cores) a wall-clock second may hold a fraction of a second of
//! work, and the bound is there to catch inputs that make the code work
//! too hard, not machines that are slow.

use std::path::Path;
use std::time::Duration;

/// CPU time (user and system) used by the whole process so far: the targets
/// may use threads of their own (parallel compression), and this binary
/// runs one test, so the process's figure is the target's.
fn cpu_time() -> Duration {
    // SAFETY: rusage holds only integers, for which all zeroes is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the struct we own; RUSAGE_SELF
    // is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
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
            let start = cpu_time();
            target(&data);
            let took = cpu_time() - start;
            assert!(
                took < Duration::from_secs(1),
                "{}: {took:?} of CPU time, over the 1 s an input may take",
                input.display()
            );
            count += 1;
        }
    }
    assert!(count >= 20, "{count} inputs");
}
