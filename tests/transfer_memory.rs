//! The memory a pull of large blobs holds: each download hands its bytes
//! to the thread writing its blob through a queue bounded by bytes, not
//! only by chunks, so a pull of large layers holds a few MB more than any
//! registry command does, whatever the blob sizes and however far the
//! writers fall behind. Peak memory is what the kernel counted, as GNU
//! `time` reports it (`%M`: a child's own, from its exec on; the rusage of
//! a child forked from this large test process would count the test's
//! pages), against that of `nixoci inspect` of the same image (the floor
//! of a registry command: the program, its runtime and HTTP client),
//! never a time.

mod common;

use std::path::Path;
use std::process::Command;

use common::registry::{Registry, Setup};
use common::*;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Run `cmd` under GNU time: its peak resident memory, in bytes.
fn peak_memory(cmd: &Command, scratch: &Path) -> u64 {
    assert!(
        Path::new("/usr/bin/time").is_file(),
        "this test needs GNU time at /usr/bin/time: run `bash .ci/install-deps`"
    );
    let report = scratch.join("time.out");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    run(&mut timed);
    let text = std::fs::read_to_string(&report).unwrap();
    let kib: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time wrote {text:?}"));
    kib * KIB
}

/// Two layers of 60 MB of noise, pulled with `--jobs 4` from registry
/// 2.8: at most 14 MiB above the floor (4 to 5 MiB seen). With a queue of
/// 16 chunks and no byte limit, a fast registry's chunks (the HTTP
/// client's reads, up to 408 KiB) let each download's queue hold 6.5 MB,
/// and such a pull peaked 18 to 24 MiB above the floor.
#[test]
fn a_pull_of_large_layers_holds_a_few_mb_above_the_floor() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "large", 31, 32, 60 << 20);
    let reference = reg.reference("memory/large:v1");
    run(nixoci_in(t.path())
        .args(["push", "--quiet"])
        .arg(&layout)
        .arg(&reference));
    let mut inspect = nixoci_in(t.path());
    inspect.arg("inspect").arg(&reference);
    let floor = peak_memory(&inspect, t.path());
    let pulled = t.path().join("pulled");
    let mut pull = nixoci_in(t.path());
    pull.args(["pull", "--quiet", "--jobs", "4"])
        .arg(&reference)
        .arg(&pulled);
    let peak = peak_memory(&pull, t.path());
    assert_eq!(blobs(&pulled), blobs(&layout));
    assert!(
        peak <= floor + 14 * MIB,
        "the pull of 120 MB peaked at {} MiB, {} MiB above the {} MiB of inspect",
        peak / MIB,
        peak.saturating_sub(floor) / MIB,
        floor / MIB
    );
}
