//! Kill trials: `build`, `layer`, `pull`, `unpack`, `archive` and `push`
//! killed with SIGKILL at random moments (and the Nix builder, in
//! tests/nix.rs). After every kill:
//!
//! - whatever exists at the output's name is complete: the same bytes as
//!   an uninterrupted run (a layout also passes `verify`), or nothing is
//!   there;
//! - no tag of the registry names an image whose blobs it lacks;
//! - the same command run again succeeds and gives the same bytes, and
//!   removes the hidden temporary the killed run left (its PID is dead):
//!   afterwards the output's directory holds the output and nothing else.
//!
//! `NIXOCI_KILL_TRIALS` kills per command (default 8 here; the campaign of
//! docs/reliability.md ran 50), `NIXOCI_KILL_SEED` the seed (default: from the
//! clock); both are printed, and a failure names the seed, the command and
//! the trial to run it again.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::{Registry, Setup};
use common::*;
use serde_json::json;

/// xorshift64*: the trials' moments, from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, max).
    fn below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

fn trials() -> usize {
    std::env::var("NIXOCI_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// What an output is, to compare a killed run's leftovers and a re-run with
/// an uninterrupted run: every file's path, mode and bytes (hashed).
fn fingerprint(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(path).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(path).unwrap().display().to_string();
        let meta = e.path().symlink_metadata().unwrap();
        let what = if meta.is_file() {
            let bytes = fs::read(e.path()).unwrap();
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        } else if meta.file_type().is_symlink() {
            format!("-> {}", fs::read_link(e.path()).unwrap().display())
        } else {
            "dir".into()
        };
        use std::os::unix::fs::PermissionsExt;
        out.insert(
            rel,
            format!("{:o} {what}", meta.permissions().mode() & 0o7777),
        );
    }
    out
}

/// One command under trial.
struct Subject<'a> {
    name: &'a str,
    /// The command, writing to `out`.
    command: Box<dyn Fn(&Path) -> Command + 'a>,
    /// Whether the output is an image layout (`verify` must pass on it).
    layout: bool,
    /// After a kill, before the re-run: a check of the world (the
    /// registry's tags, for push).
    after_kill: Box<dyn Fn(usize) + 'a>,
    /// The output to compare with the uninterrupted run's; `None`: the
    /// command writes no file (push: its result is checked by `after_kill`).
    output: bool,
}

/// Run the trials of `s`; returns (kills that landed mid-run, runs that
/// had finished before the kill).
fn trial(s: &Subject, rng: &mut Rng, seed: u64, work: &Path) -> (usize, usize) {
    let parent = work.join(s.name);
    fs::create_dir_all(&parent).unwrap();
    let out = parent.join("out");
    let clear = |p: &Path| {
        if p.is_dir() {
            fs::remove_dir_all(p).unwrap();
        } else if p.exists() {
            fs::remove_file(p).unwrap();
        }
    };
    // The uninterrupted run: the reference, and how long a run takes.
    let started = Instant::now();
    run(&mut (s.command)(&out));
    let took = started.elapsed();
    let reference = s.output.then(|| fingerprint(&out));
    clear(&out);

    let (mut landed, mut finished) = (0, 0);
    for n in 0..trials() {
        let again = format!(
            "{} trial {n} (NIXOCI_KILL_SEED={seed} NIXOCI_KILL_TRIALS={})",
            s.name,
            trials()
        );
        let delay = rng.below(took.mul_f64(1.2));
        let mut child = (s.command)(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let done_before = child.try_wait().unwrap().is_some();
        // SIGKILL: no handler runs, nothing is cleaned up.
        let _ = child.kill();
        let _ = child.wait();
        if done_before {
            finished += 1;
        } else {
            landed += 1;
        }
        // What exists at the output's name is complete.
        if let Some(reference) = &reference {
            if out.exists() {
                if s.layout {
                    run(nixoci().arg("verify").arg(&out));
                }
                assert_eq!(
                    &fingerprint(&out),
                    reference,
                    "{again}: an incomplete output at {}",
                    out.display()
                );
            }
        }
        (s.after_kill)(n);
        // No run was left half-done for the next: the re-run succeeds with
        // the same bytes, and leaves only the output.
        clear(&out);
        let rerun = (s.command)(&out).output().unwrap();
        assert!(
            rerun.status.success(),
            "{again}: the re-run failed: {}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        if let Some(reference) = &reference {
            assert_eq!(&fingerprint(&out), reference, "{again}: other bytes");
        }
        let left: Vec<_> = fs::read_dir(&parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "out")
            .collect();
        assert!(left.is_empty(), "{again}: left beside the output: {left:?}");
        clear(&out);
    }
    eprintln!(
        "{}: {} kills, {landed} mid-run, {finished} after the run had ended (a run takes {:.0} ms)",
        s.name,
        trials(),
        took.as_secs_f64() * 1000.0
    );
    (landed, finished)
}

/// Every tag of `repo` names an image the registry has whole: pulled
/// straight from it, it verifies.
fn assert_tags_complete(reg: &Registry, env: &Path, repo: &str, what: &str) {
    let out = Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}", reg.reference(repo)))
        .output()
        .unwrap();
    if !out.status.success() {
        return; // the repository does not exist yet: no tag at all
    }
    let tags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for tag in tags["Tags"].as_array().into_iter().flatten() {
        let tag = tag.as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pulled = dir.path().join("p");
        let o = nixoci_in(env)
            .args(["pull", "--quiet"])
            .arg(reg.reference(&format!("{repo}:{tag}")))
            .arg(&pulled)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{what}: tag {tag} names an incomplete image: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        run(nixoci().arg("verify").arg(&pulled));
    }
}

#[test]
fn sigkill_at_random_moments_leaves_nothing_incomplete() {
    require("skopeo");
    let seed = kill_seed();
    eprintln!(
        "kill trials: NIXOCI_KILL_SEED={seed} NIXOCI_KILL_TRIALS={}",
        trials()
    );
    let mut rng = Rng(seed);
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let input = t.path().join("in");
    // The input: three directories of noise (6 MB), and some small files.
    for (i, d) in ["a", "b", "c"].iter().enumerate() {
        for j in 0..8 {
            noise(
                &input.join(d).join(format!("f{j}")),
                250_000,
                (i * 100 + j + 1) as u64,
            );
        }
        for j in 0..50 {
            file(
                &input,
                &format!("{d}/small/s{j}"),
                format!("{j}\n").as_bytes(),
                0o644,
            );
        }
    }
    let spec = t.path().join("image.json");
    let layers: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|d| {
            json!({
                "files": [{"source": format!("in/{d}"), "destination": format!("/{d}")}],
                "compression": "gzip"
            })
        })
        .collect();
    write_json(
        &spec,
        &json!({
            "layers": layers,
            "architecture": "amd64",
            "config": {"Cmd": ["/bin/true"]},
            "tags": ["latest"]
        }),
    );
    let layer_spec = t.path().join("layer.json");
    write_json(
        &layer_spec,
        &json!({
            "files": [{"source": "in", "destination": "/data"}],
            "compression": "gzip"
        }),
    );
    let layout = build(&spec, &t.path().join("layout"));
    let reg = Registry::start(Setup::default());
    run(nixoci_in(t.path())
        .args(["push", "--quiet"])
        .arg(&layout)
        .arg(reg.reference("src:v1")));

    // Each push trial goes to a repository of its own, with a cache of its
    // own (so nothing is mounted and every blob is uploaded).
    let push_env = |n: &str| t.path().join("push-env").join(n);
    let push_count = std::cell::Cell::new(0usize);
    let subjects = vec![
        Subject {
            name: "build",
            command: Box::new(|out| {
                let mut c = nixoci();
                c.arg("build").arg(&spec).arg("-o").arg(out).arg("-q");
                c
            }),
            layout: true,
            after_kill: Box::new(|_| {}),
            output: true,
        },
        Subject {
            name: "layer",
            command: Box::new(|out| {
                let mut c = nixoci();
                c.arg("layer").arg(&layer_spec).arg("-o").arg(out);
                c
            }),
            layout: false,
            after_kill: Box::new(|_| {}),
            output: true,
        },
        Subject {
            name: "pull",
            command: Box::new(|out| {
                let mut c = nixoci_in(t.path());
                c.args(["pull", "--quiet"])
                    .arg(reg.reference("src:v1"))
                    .arg(out);
                c
            }),
            layout: true,
            after_kill: Box::new(|_| {}),
            output: true,
        },
        Subject {
            name: "unpack",
            command: Box::new(|out| {
                let mut c = nixoci();
                c.arg("unpack").arg(&layout).arg(out);
                c
            }),
            layout: false,
            after_kill: Box::new(|_| {}),
            output: true,
        },
        Subject {
            name: "archive",
            command: Box::new(|out| {
                let mut c = nixoci();
                c.arg("archive").arg(&layout).arg("-o").arg(out);
                c
            }),
            layout: false,
            after_kill: Box::new(|_| {}),
            output: true,
        },
        Subject {
            name: "push",
            command: Box::new(|_out| {
                // A new repository for each run but the re-run after a kill.
                let n = push_count.get();
                push_count.set(n + 1);
                let repo = match n {
                    0 => "kill-reference".to_owned(),
                    n => format!("kill-{}", (n - 1) / 2),
                };
                let env = push_env(&format!("{n}"));
                let mut c = nixoci_in(&env);
                c.args(["push", "--quiet"])
                    .arg(&layout)
                    .arg(reg.reference(&format!("{repo}:v1")));
                c
            }),
            layout: false,
            after_kill: Box::new(|n| {
                assert_tags_complete(&reg, t.path(), &format!("kill-{n}"), "after a killed push")
            }),
            output: false,
        },
    ];
    let mut total = (0, 0);
    for s in &subjects {
        let (landed, finished) = trial(s, &mut rng, seed, &work);
        total.0 += landed;
        total.1 += finished;
    }
    eprintln!(
        "kill trials: {} kills, {} mid-run, {} after the end (seed {seed})",
        total.0 + total.1,
        total.0,
        total.1
    );
    assert!(
        total.0 * 2 >= total.0 + total.1,
        "most kills should land mid-run: the trials would prove little"
    );
}
