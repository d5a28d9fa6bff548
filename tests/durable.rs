//! Durable commits (issue 22): what a command renames into place is synced
//! to the disk before its rename, and the directory holding the new name
//! after it, so that after a power cut no `blobs/sha256/<digest>` is an
//! empty file whose name lies. Watched with `strace -f -y` (descriptors
//! printed with their paths): every blob's temporary file is synced
//! before it is renamed to its digest, the staged layout (its
//! `index.json`, `blobs/sha256`, itself) before it is renamed to the
//! output, and the output's parent after. In the output of the Nix build
//! the process runs in (or with `NIXOCI_SYNC=0`) nothing is synced.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

/// One syscall of the trace: its name and the text of its arguments.
struct Call {
    name: String,
    args: String,
}

impl Call {
    /// The path of the descriptor of a sync (`fsync(3</a/b>)` -> `/a/b`).
    fn synced(&self) -> Option<&str> {
        if !matches!(self.name.as_str(), "fsync" | "fdatasync" | "syncfs") {
            return None;
        }
        self.descriptor()
    }

    /// The path of the file whose writing back to the disk is started
    /// (`sync_file_range`, which does not wait for it).
    fn written_back(&self) -> Option<&str> {
        if self.name != "sync_file_range" {
            return None;
        }
        self.descriptor()
    }

    /// The path of the call's descriptor argument, as `strace -y` prints it.
    fn descriptor(&self) -> Option<&str> {
        let start = self.args.find('<')? + 1;
        let end = self.args.rfind('>')?;
        Some(&self.args[start..end])
    }

    /// The (from, to) paths of a rename.
    fn renamed(&self) -> Option<(String, String)> {
        if !self.name.starts_with("rename") {
            return None;
        }
        let quoted: Vec<&str> = self.args.split('"').skip(1).step_by(2).collect();
        match quoted[..] {
            [from, to] => Some((from.to_owned(), to.to_owned())),
            _ => None,
        }
    }
}

/// Run `cmd` under strace, tracing syncs (and starts of writeback) and
/// renames; the successful
/// calls, in order. Fails (never skips) when strace is missing.
fn traced(t: &Path, cmd: &Command) -> Vec<Call> {
    require("strace");
    let log = t.join("strace.log");
    let mut s = Command::new("strace");
    s.args(["-f", "-y", "-qq", "-s", "4096", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=fsync,fdatasync,syncfs,sync_file_range,rename,renameat,renameat2",
        ]);
    s.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    run(&mut s);
    // A call that another thread interrupts is logged on two lines, "PID
    // name(args <unfinished ...>" and, when it returns, "PID <... name
    // resumed>rest) = 0": joined here, at the place it returned.
    let mut unfinished: std::collections::HashMap<String, String> = Default::default();
    fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (pid, rest) = l.split_once(' ').unwrap_or(("", l));
            let rest = rest.trim_start();
            if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
                unfinished.insert(pid.to_owned(), head.to_owned());
                return None;
            }
            let joined = match rest.strip_prefix("<... ") {
                Some(resumed) => {
                    let (_, tail) = resumed.split_once(" resumed>")?;
                    unfinished.remove(pid)? + tail
                }
                None => rest.to_owned(),
            };
            // "name(args) = 0"; failed calls are not commits.
            let l = joined.as_str();
            let (call, result) = l.rsplit_once(" = ")?;
            if !result.starts_with('0') {
                return None;
            }
            let (name, args) = call.split_once('(')?;
            Some(Call {
                name: name.to_owned(),
                args: args.to_owned(),
            })
        })
        .collect()
}

/// The position of the first call that matches.
fn position(calls: &[Call], what: &str, f: impl Fn(&Call) -> bool) -> usize {
    calls.iter().position(f).unwrap_or_else(|| {
        panic!(
            "no {what} in the trace:\n{}",
            calls
                .iter()
                .map(|c| format!("{}({}", c.name, c.args))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Where the file at `to` came from: the rename that gave it its name.
fn rename_to(calls: &[Call], to: &Path) -> (usize, String) {
    let to = to.to_str().unwrap();
    let i = position(calls, &format!("rename to {to}"), |c| {
        c.renamed().is_some_and(|(_, t)| t == to)
    });
    (i, calls[i].renamed().unwrap().0)
}

/// Whether `path` is synced in `calls`.
fn syncs(calls: &[Call], path: &str) -> bool {
    calls.iter().any(|c| c.synced() == Some(path))
}

/// An image spec of two layers in `t` (absolute paths throughout, as
/// strace prints them).
fn spec(t: &Path) -> PathBuf {
    file(t, "in/a", b"first layer\n", 0o644);
    file(t, "in/b", b"second layer\n", 0o755);
    let s = t.join("s.json");
    write_json(
        &s,
        &json!({
            "layers": [
                {"files": [{"source": t.join("in/a"), "destination": "/a"}]},
                {"files": [{"source": t.join("in/b"), "destination": "/b"}]}
            ],
            "architecture": "amd64",
            "tags": ["latest"]
        }),
    );
    s
}

fn build_cmd(spec: &Path, out: &Path) -> Command {
    let mut c = nixoci();
    c.arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .arg("--quiet")
        .env_remove("NIX_BUILD_TOP")
        .env_remove("NIXOCI_SYNC");
    c
}

/// `nixoci build`: each blob synced under its temporary name before it is
/// named by its digest; `index.json`, `blobs/sha256` and the staged
/// directory synced before the staged directory becomes the output; the
/// output's parent synced after.
#[test]
fn build_syncs_every_blob_before_its_name_and_the_directory_after() {
    let t = tempfile::tempdir().unwrap();
    let t = fs::canonicalize(t.path()).unwrap();
    let out = t.join("out");
    let calls = traced(&t, &build_cmd(&spec(&t), &out));

    let (commit, staged) = rename_to(&calls, &out);
    let blobs = common::blobs(&out);
    assert_eq!(blobs.len(), 4, "2 layers, a config, a manifest: {blobs:?}");
    for hex in blobs.keys() {
        let named = Path::new(&staged).join("blobs/sha256").join(hex);
        let (renamed, tmp) = rename_to(&calls, &named);
        let synced = position(&calls, &format!("sync of {tmp}"), |c| {
            c.synced() == Some(&tmp)
        });
        assert!(synced < renamed, "{tmp} synced after its rename to {hex}");
        assert!(renamed < commit);
    }
    for part in ["index.json", "oci-layout", "blobs/sha256", "blobs", ""] {
        let p = Path::new(&staged).join(part);
        let p = p.to_str().unwrap().trim_end_matches('/');
        let i = position(&calls, &format!("sync of {p}"), |c| c.synced() == Some(p));
        assert!(i < commit, "{p} synced after the output was named");
    }
    let parent = position(&calls, "sync of the output's parent", |c| {
        c.synced() == t.to_str()
    });
    assert!(
        parent > commit,
        "the parent was synced only before the rename"
    );

    // --force swaps the new output in: the parent is synced after that too.
    let mut again = build_cmd(&t.join("s.json"), &out);
    again.arg("--force");
    let calls = traced(&t, &again);
    let (commit, _) = rename_to(&calls, &out);
    assert!(calls[commit + 1..].iter().any(|c| c.synced() == t.to_str()));
}

/// `nixoci archive`: the archive is synced under its temporary name before
/// it is renamed, and the directory after; so is a new parent directory
/// of a staged output, in the directory above it.
#[test]
fn archive_and_new_parents_are_synced() {
    let t = tempfile::tempdir().unwrap();
    let t = fs::canonicalize(t.path()).unwrap();
    let layout = t.join("layout");
    run(&mut build_cmd(&spec(&t), &layout));
    let tar = t.join("image.tar");
    let mut archive = nixoci();
    archive
        .arg("archive")
        .arg(&layout)
        .arg("-o")
        .arg(&tar)
        .arg("--quiet")
        .env_remove("NIXOCI_SYNC");
    let calls = traced(&t, &archive);
    let (renamed, tmp) = rename_to(&calls, &tar);
    let synced = position(&calls, &format!("sync of {tmp}"), |c| {
        c.synced() == Some(&tmp)
    });
    assert!(synced < renamed, "the archive was synced after its rename");
    assert!(calls[renamed + 1..]
        .iter()
        .any(|c| c.synced() == t.to_str()));

    // `-o new/deeper/out`: new and deeper are new, so their names are
    // synced in t and new.
    let out = t.join("new/deeper/out");
    let calls = traced(&t, &build_cmd(&t.join("s.json"), &out));
    let (commit, _) = rename_to(&calls, &out);
    for dir in [t.join("new/deeper"), t.join("new"), t.clone()] {
        assert!(
            calls[commit + 1..]
                .iter()
                .any(|c| c.synced() == dir.to_str()),
            "{} not synced after the commit",
            dir.display()
        );
    }
}

/// In a Nix build, the build's own output is Nix's to make durable:
/// nothing is synced. Any other output of a process with `NIX_BUILD_TOP`
/// set (as in `nix-shell` and `nix develop`) is synced. `NIXOCI_SYNC=0`
/// turns syncing off; a value other than 0 or 1 is an error.
#[test]
fn nothing_is_synced_in_a_nix_build_output_or_when_turned_off() {
    let t = tempfile::tempdir().unwrap();
    let t = fs::canonicalize(t.path()).unwrap();
    let s = spec(&t);
    fs::create_dir(t.join("build-top")).unwrap();

    let out = t.join("nix-out");
    let mut in_nix = build_cmd(&s, &out);
    in_nix
        .env("NIX_BUILD_TOP", t.join("build-top"))
        .env("out", &out);
    let calls = traced(&t, &in_nix);
    rename_to(&calls, &out);
    let synced: Vec<&str> = calls.iter().filter_map(Call::synced).collect();
    assert_eq!(synced, Vec::<&str>::new(), "synced in a Nix build's output");

    // The Nix builder writes in place in the store, with its outputs in
    // the structured attrs (no `$out`).
    let store = t.join("store");
    fs::create_dir(&store).unwrap();
    let in_store = store.join("0123456789abcdfghijklmnpqrsvwxyz-layer");
    write_json(
        &t.join("build-top/.attrs.json"),
        &json!({
            "command": "layer",
            "spec": {"files": [{"source": t.join("in/a"), "destination": "/a"}]},
            "outputs": {"out": in_store}
        }),
    );
    let mut builder = nixoci();
    builder
        .arg("nix-builder")
        .env("NIX_BUILD_TOP", t.join("build-top"))
        .env("NIX_STORE_DIR", &store)
        .env_remove("out")
        .env_remove("NIXOCI_SYNC");
    let calls = traced(&t, &builder);
    assert!(in_store.join("blobs/sha256").is_dir(), "no layer written");
    let synced: Vec<&str> = calls.iter().filter_map(Call::synced).collect();
    assert_eq!(synced, Vec::<&str>::new(), "synced in the Nix store");

    let shell_out = t.join("shell-out");
    let mut shell = build_cmd(&s, &shell_out);
    shell
        .env("NIX_BUILD_TOP", t.join("build-top"))
        .env("out", &out);
    let calls = traced(&t, &shell);
    let (_, staged) = rename_to(&calls, &shell_out);
    assert!(
        syncs(&calls, &staged),
        "a nix-shell's output was not synced"
    );

    let off = t.join("off");
    let mut turned_off = build_cmd(&s, &off);
    turned_off.env("NIXOCI_SYNC", "0");
    let calls = traced(&t, &turned_off);
    rename_to(&calls, &off);
    let synced: Vec<&str> = calls.iter().filter_map(Call::synced).collect();
    assert_eq!(synced, Vec::<&str>::new(), "synced with NIXOCI_SYNC=0");

    let bad = t.join("bad");
    let err = run_fail(build_cmd(&s, &bad).env("NIXOCI_SYNC", "no"));
    assert!(
        err.contains("NIXOCI_SYNC=\"no\" is not 0 or 1"),
        "unexpected error: {err}"
    );
    assert!(!bad.exists(), "an output was left");
}

/// Scratch space (the tree `sbom` unpacks the image into) is removed when
/// the work ends: nothing there is synced, only the SBOM itself.
#[test]
fn scratch_space_is_never_synced() {
    let t = tempfile::tempdir().unwrap();
    let t = fs::canonicalize(t.path()).unwrap();
    let layout = t.join("layout");
    run(build_cmd(&spec(&t), &layout).env("NIXOCI_SYNC", "0"));
    let sbom = t.join("sbom.json");
    let mut cmd = nixoci();
    cmd.arg("sbom")
        .arg(&layout)
        .arg("-o")
        .arg(&sbom)
        .arg("--quiet")
        .env_remove("NIXOCI_SYNC")
        .env("TMPDIR", &t);
    let calls = traced(&t, &cmd);
    let (renamed, tmp) = rename_to(&calls, &sbom);
    let synced: Vec<&str> = calls.iter().filter_map(Call::synced).collect();
    assert_eq!(synced, [tmp.as_str(), t.to_str().unwrap()], "{renamed}");
}

/// `nixoci unpack`: the unpacked tree (300 files, beyond which one
/// `syncfs` syncs a tree) is synced before it is named, and the parent
/// after; so is a small one, entry by entry.
#[test]
fn unpacked_trees_are_synced_before_they_are_named() {
    let t = tempfile::tempdir().unwrap();
    let t = fs::canonicalize(t.path()).unwrap();
    for (files, call) in [(300, "syncfs"), (3, "fsync")] {
        for i in 0..files {
            file(&t, &format!("tree{files}/d{}/f{i}", i / 50), b"x\n", 0o644);
        }
        let s = t.join(format!("tree{files}.json"));
        write_json(
            &s,
            &json!({
                "layers": [{"files": [{"source": t.join(format!("tree{files}")), "destination": "/tree"}]}],
                "architecture": "amd64",
                "tags": ["latest"]
            }),
        );
        let layout = t.join(format!("layout{files}"));
        run(build_cmd(&s, &layout).env("NIXOCI_SYNC", "0"));
        let out = t.join(format!("rootfs{files}"));
        let mut unpack = nixoci();
        unpack
            .arg("unpack")
            .arg(&layout)
            .arg(&out)
            .arg("--quiet")
            .env_remove("NIXOCI_SYNC");
        let calls = traced(&t, &unpack);
        let (commit, staged) = rename_to(&calls, &out);
        let tree = position(&calls, &format!("{call} of {staged}"), |c| {
            c.name == call && c.synced() == Some(&staged)
        });
        assert!(tree < commit, "{files} files: synced after the rename");
        if files == 3 {
            let f = format!("{staged}/tree/d0/f2");
            assert!(syncs(&calls[..commit], &f), "{f} not synced");
        }
        assert!(calls[commit + 1..].iter().any(|c| c.synced() == t.to_str()));
    }
}

/// A large blob is handed to the disk while it arrives: every 8 MiB its
/// new bytes are given to the kernel to write back (`sync_file_range`,
/// which does not wait), so that its sync, still before its rename, has
/// little left to wait for. Seen on `pull` from registry 2.8 (and `build`,
/// through the same blob writer) of a 20 MiB layer; never when nothing is
/// synced (`NIXOCI_SYNC=0`).
#[test]
fn large_blobs_are_written_back_while_they_arrive() {
    let reg = common::registry::Registry::start(common::registry::Setup::default());
    let t = tempfile::tempdir().unwrap();
    let t = fs::canonicalize(t.path()).unwrap();
    // 20 MiB that no compression shrinks (xorshift).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..20 << 17)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    file(&t, "in/big", &data, 0o644);
    let s = t.join("s.json");
    write_json(
        &s,
        &json!({
            "layers": [{"files": [{"source": t.join("in/big"), "destination": "/big"}], "compression": "none"}],
            "architecture": "amd64",
            "tags": ["latest"]
        }),
    );
    // Where the largest blob of `layout` was written back and synced.
    let check = |calls: &[Call], layout: &Path, what: &str| {
        let (commit, staged) = rename_to(calls, layout);
        let hex = fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap())
            .max_by_key(|e| e.metadata().unwrap().len())
            .unwrap()
            .file_name();
        let named = Path::new(&staged).join("blobs/sha256").join(hex);
        let (renamed, tmp) = rename_to(calls, &named);
        let synced = position(calls, &format!("sync of {tmp}"), |c| {
            c.synced() == Some(&tmp)
        });
        let early: Vec<usize> = (0..calls.len())
            .filter(|&i| calls[i].written_back() == Some(&tmp))
            .collect();
        assert_eq!(early.len(), 2, "{what}: {tmp} written back at 8 and 16 MiB");
        assert!(early.iter().all(|&i| i < synced), "{what}: after its sync");
        assert!(synced < renamed && renamed < commit, "{what}: synced late");
    };
    let layout = t.join("layout");
    check(&traced(&t, &build_cmd(&s, &layout)), &layout, "build");

    let reference = reg.reference("big:1");
    run(nixoci_in(&t)
        .arg("push")
        .arg(format!("{}:latest", layout.display()))
        .arg(&reference)
        .arg("-q"));
    let pull = |dest: &Path| {
        let mut c = nixoci_in(&t);
        c.arg("pull")
            .arg(&reference)
            .arg(dest)
            .arg("-q")
            .env_remove("NIX_BUILD_TOP")
            .env_remove("NIXOCI_SYNC");
        c
    };
    let pulled = t.join("pulled");
    check(&traced(&t, &pull(&pulled)), &pulled, "pull");

    let off = t.join("off");
    let calls = traced(&t, pull(&off).env("NIXOCI_SYNC", "0"));
    rename_to(&calls, &off);
    let early: Vec<&str> = calls.iter().filter_map(Call::written_back).collect();
    assert_eq!(early, Vec::<&str>::new(), "written back with NIXOCI_SYNC=0");
}
