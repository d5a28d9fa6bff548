//! Scratch space (an extracted base archive, the tree `sbom` unpacks, an
//! image `diff` pulls, the files `artifact pull` unpacks beside its
//! target) and the temporaries written inside a layout: removed when a run
//! is interrupted (SIGINT, SIGTERM, SIGHUP), and, when a run was killed
//! (SIGKILL, which no handler sees), by the next run, which leaves a live
//! run's alone. Every test gives nixoci a private TMPDIR, and waits for
//! the scratch directory to be there (never a fixed time) before the
//! signal.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use common::registry::{Registry, Setup};
use common::*;
use serde_json::json;

const SIGNALS: [(libc::c_int, &str); 3] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
];

/// The scratch directories in `dir`: named `.nixoci.tmp-PID-HOST-KIND-…`
/// (before, `nixoci-KIND-…` in TMPDIR and `.nixoci-artifact-…` in a
/// target: any name with `nixoci` in it counts).
fn scratch_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("nixoci"))
        .collect();
    found.sort();
    found
}

/// Wait (up to a minute, however busy the machine) until `ready` holds.
fn wait_for(what: &str, child: &mut Child, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what}: the run ended ({status}) before it was ready");
        }
        assert!(Instant::now() < deadline, "{what}: never ready");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: a signal to the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn nixoci_tmp(tmp: &Path) -> Command {
    let mut c = nixoci();
    c.env("TMPDIR", tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// A docker archive of a layout of one layer of 8 MB of noise, and the
/// spec of an image built on it (`fromImage`) from `dir/base.tar`, which the
/// test makes.
fn base_archive(dir: &Path) -> (Vec<u8>, PathBuf) {
    noise(&dir.join("in/big"), 8 << 20, 7);
    write_json(
        &dir.join("base.json"),
        &json!({
            "layers": [{"files": [{"source": "in/big", "destination": "/big"}], "compression": "none"}],
            "architecture": "amd64"
        }),
    );
    let layout = build(&dir.join("base.json"), &dir.join("base"));
    let tar = dir.join("made.tar");
    run(nixoci()
        .arg("archive")
        .arg(&layout)
        .args(["--format", "docker", "-q", "-o"])
        .arg(&tar));
    file(dir, "in/app", b"app\n", 0o644);
    let spec = dir.join("app.json");
    write_json(
        &spec,
        &json!({
            "fromImage": "base.tar",
            "layers": [{"files": [{"source": "in/app", "destination": "/app"}]}],
        }),
    );
    (fs::read(&tar).unwrap(), spec)
}

/// `build` of `spec`, whose `fromImage` archive comes through a FIFO that
/// gives the first half of `archive` and then nothing more, so the run is
/// in the middle of extracting it for as long as the test likes. Returns
/// the run, and the sender that ends the FIFO's writer.
fn build_stuck_in_extraction(
    dir: &Path,
    tmp: &Path,
    archive: &[u8],
    spec: &Path,
) -> (Child, std::sync::mpsc::Sender<()>) {
    let fifo = dir.join("base.tar");
    let _ = fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let child = nixoci_tmp(tmp)
        .arg("build")
        .arg(spec)
        .arg("-o")
        .arg(dir.join("out"))
        .spawn()
        .unwrap();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let half = archive[..archive.len() / 2].to_vec();
    std::thread::spawn(move || {
        let mut w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let _ = w.write_all(&half);
        let _ = wait.recv();
    });
    (child, done)
}

/// A `build` in `dir` (scratch space in `dir/tmp`) killed with SIGKILL
/// while it extracts its base archive: the archive, the spec, that `tmp`
/// and the killed run's PID.
fn killed_in_extraction(dir: &Path) -> (Vec<u8>, PathBuf, PathBuf, u32) {
    let (archive, spec) = base_archive(dir);
    let tmp = dir.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let (mut child, done) = build_stuck_in_extraction(dir, &tmp, &archive, &spec);
    wait_for("SIGKILL", &mut child, || extracting(&tmp));
    let killed = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(done);
    (archive, spec, tmp, killed)
}

/// Whether the one scratch directory in `tmp` holds an extracted file.
fn extracting(tmp: &Path) -> bool {
    scratch_in(tmp)
        .first()
        .and_then(|s| fs::read_dir(s.join("archive")).ok())
        .is_some_and(|mut d| d.next().is_some())
}

fn interrupted(status: ExitStatus, what: &str) {
    assert_eq!(status.code(), Some(130), "{what}: exits 130 ({status})");
}

/// Regression: an interrupted `build` with an archive `fromImage` left the
/// extracted archive (`/tmp/nixoci-base-*`, hundreds of MB) behind. Now
/// each of SIGINT, SIGTERM and SIGHUP in the middle of the extraction
/// leaves nothing: no scratch directory, no output.
#[test]
fn interrupted_build_leaves_no_extracted_archive() {
    let t = tempfile::tempdir().unwrap();
    let (archive, spec) = base_archive(t.path());
    for (sig, name) in SIGNALS {
        let tmp = t.path().join(format!("tmp-{name}"));
        fs::create_dir(&tmp).unwrap();
        let (mut child, done) = build_stuck_in_extraction(t.path(), &tmp, &archive, &spec);
        wait_for(name, &mut child, || extracting(&tmp));
        signal(&child, sig);
        interrupted(child.wait().unwrap(), name);
        drop(done);
        assert_eq!(scratch_in(&tmp), Vec::<PathBuf>::new(), "{name}");
        let outputs: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("out"))
            .collect();
        assert!(outputs.is_empty(), "{name}: {outputs:?}");
    }
}

/// A run killed with SIGKILL leaves its extracted archive; the next run
/// that makes scratch space in the same TMPDIR removes it, and leaves a
/// live run's scratch directory (one named with this test's PID) alone.
#[test]
fn a_killed_runs_scratch_is_removed_by_the_next_run() {
    let t = tempfile::tempdir().unwrap();
    let (archive, spec, tmp, killed) = killed_in_extraction(t.path());
    let left = scratch_in(&tmp);
    assert_eq!(left.len(), 1, "SIGKILL leaves the scratch directory");
    let dead = left[0].clone();
    let live = tmp.join(dead.file_name().unwrap().to_string_lossy().replacen(
        &format!("-{killed}-"),
        &format!("-{}-", std::process::id()),
        1,
    ));
    fs::create_dir(&live).unwrap();

    fs::remove_file(t.path().join("base.tar")).unwrap();
    fs::write(t.path().join("base.tar"), &archive).unwrap();
    run(nixoci_tmp(&tmp)
        .arg("build")
        .arg(&spec)
        .arg("-o")
        .arg(t.path().join("out")));
    assert_eq!(scratch_in(&tmp), vec![live], "the dead run's is gone");
    run(nixoci().arg("verify").arg(t.path().join("out")));
}

/// `sbom` unpacks the image into a scratch directory: SIGINT, SIGTERM and
/// SIGHUP while it is there remove it. The signal is sent as soon as the
/// directory appears; a run that finished first cannot show the removal
/// (it removed the directory itself), so each signal is tried until one
/// has landed: a handful of runs at most on any machine, as unpacking and
/// hashing 48 MB takes far longer than noticing the directory.
#[test]
fn interrupted_sbom_leaves_no_unpacked_image() {
    let t = tempfile::tempdir().unwrap();
    noise(&t.path().join("in/big"), 48 << 20, 3);
    write_json(
        &t.path().join("s.json"),
        &json!({
            "layers": [{"files": [{"source": "in/big", "destination": "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-big-1/big"}], "compression": "none"}],
            "architecture": "amd64"
        }),
    );
    let layout = build(&t.path().join("s.json"), &t.path().join("layout"));
    for (sig, name) in SIGNALS {
        let tmp = t.path().join(format!("tmp-{name}"));
        fs::create_dir(&tmp).unwrap();
        let mut landed = false;
        for _ in 0..20 {
            let mut child = nixoci_tmp(&tmp).arg("sbom").arg(&layout).spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while scratch_in(&tmp).is_empty()
                && child.try_wait().unwrap().is_none()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            signal(&child, sig);
            let status = child.wait().unwrap();
            assert_eq!(scratch_in(&tmp), Vec::<PathBuf>::new(), "{name}");
            if status.code() == Some(130) {
                landed = true;
                break;
            }
            assert!(status.success(), "{name}: {status}");
        }
        assert!(landed, "{name}: no signal landed in 20 runs");
    }
}

/// `diff` against a registry reference pulls it into a scratch directory;
/// interrupted there (the "registry" here accepts connections and never
/// answers, so the pull waits), it leaves nothing.
#[test]
fn interrupted_diff_leaves_no_pulled_image() {
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "a", 1, 2, 1000);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let reference = format!("{}/x/y:1", silent.local_addr().unwrap());
    for (sig, name) in SIGNALS {
        let tmp = t.path().join(format!("tmp-{name}"));
        fs::create_dir(&tmp).unwrap();
        let mut child = nixoci_tmp(&tmp)
            .env("HOME", t.path())
            .arg("diff")
            .arg(&layout)
            .arg(&reference)
            .args(["--timeout", "600", "--plain-http"])
            .spawn()
            .unwrap();
        wait_for(name, &mut child, || !scratch_in(&tmp).is_empty());
        signal(&child, sig);
        interrupted(child.wait().unwrap(), name);
        assert_eq!(scratch_in(&tmp), Vec::<PathBuf>::new(), "{name}");
    }
}

/// Regression: a SIGKILLed `artifact pull` left `.nixoci-artifact-*` (up
/// to the artifact's size) in the target for good. Now the next pull into
/// the target removes what a dead run left there and keeps a live run's.
#[test]
fn a_killed_artifact_pulls_scratch_is_removed_by_the_next_pull() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "in/notes.txt", b"notes\n", 0o644);
    let reference = reg.reference("art/notes:1");
    run(nixoci_in(t.path())
        .args(["artifact", "push", "-q"])
        .arg(&reference)
        .arg(t.path().join("in/notes.txt")));
    let target = t.path().join("target");
    // Stuck: a "registry" that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = nixoci_in(t.path())
        .args(["artifact", "pull", "--timeout", "600", "--plain-http"])
        .arg(format!("{}/art/notes:1", silent.local_addr().unwrap()))
        .arg(&target)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("artifact pull", &mut child, || {
        target.is_dir() && !scratch_in(&target).is_empty()
    });
    let killed = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let left = scratch_in(&target);
    assert_eq!(left.len(), 1, "SIGKILL leaves the scratch directory");
    let live = target.join(left[0].file_name().unwrap().to_string_lossy().replacen(
        &format!("-{killed}-"),
        &format!("-{}-", std::process::id()),
        1,
    ));
    fs::create_dir(&live).unwrap();

    run(nixoci_in(t.path())
        .args(["artifact", "pull", "-q"])
        .arg(&reference)
        .arg(&target));
    assert_eq!(scratch_in(&target), vec![live.clone()]);
    assert_eq!(fs::read(target.join("notes.txt")).unwrap(), b"notes\n");
    fs::remove_dir(&live).unwrap();
}

/// `sbom --attach` writes `index.json`, blobs and the layout of the
/// referrers (`referrers/`, its `index.json`) through temporaries; those a
/// killed run left (named with a dead run's PID and this machine's tag,
/// which a killed `build` shows) are removed by the next attach, a live
/// run's kept, and the layout verifies.
#[test]
fn a_killed_attachs_temporaries_in_the_layout_are_removed_by_the_next() {
    let t = tempfile::tempdir().unwrap();
    // A name a killed run of this machine really leaves.
    let (_, _, tmp, killed) = killed_in_extraction(t.path());
    let left = scratch_in(&tmp)[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let rest = left
        .strip_prefix(&format!(".nixoci.tmp-{killed}-"))
        .unwrap();
    let host = rest.split('-').next().unwrap();

    noise(&t.path().join("in/lib"), 1000, 5);
    write_json(
        &t.path().join("s.json"),
        &json!({
            "layers": [{"files": [{"source": "in/lib", "destination": "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-lib-1/lib"}]}],
            "architecture": "amd64"
        }),
    );
    let layout = build(&t.path().join("s.json"), &t.path().join("layout"));
    // A first attach makes the layout of the referrers.
    run(nixoci()
        .arg("sbom")
        .arg(&layout)
        .args(["--attach", "--format", "cyclonedx"]));
    let blobs = layout.join("blobs/sha256");
    let named = |pid: u32| {
        [
            layout.join(format!(".index.json.tmp-{pid}-{host}-abc123")),
            blobs.join(format!(".incoming.tmp-{pid}-{host}-def456")),
            layout.join(format!(".referrers.tmp-{pid}-{host}-ghi789")),
            layout.join(format!("referrers/.index.json.tmp-{pid}-{host}-jkl012")),
        ]
    };
    for p in named(killed).iter().chain(&named(std::process::id())) {
        fs::write(p, b"partial").unwrap();
    }
    run(nixoci().arg("sbom").arg(&layout).arg("--attach"));
    for p in named(killed) {
        assert!(!p.exists(), "{} is left", p.display());
    }
    for p in named(std::process::id()) {
        assert!(p.exists(), "{} is removed", p.display());
        fs::remove_file(p).unwrap();
    }
    run(nixoci().arg("verify").arg(&layout));
}
