//! Helpers shared by the integration tests: run the real binary, require the
//! real tools, make fixture trees, and snapshot trees for comparison.
#![allow(dead_code)]

pub mod crane;
pub mod peers;
pub mod registry;
pub mod sign;
pub mod trees;
pub mod usage;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The binary under test.
/// The binary under test, with the environment variables it reads cleared
/// (a test that wants one sets it again).
pub fn nixoci() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nixoci"));
    c.env_remove("SOURCE_DATE_EPOCH").env_remove("NIX_STORE");
    c
}

/// nixoci with a private credential and cache environment under `env`
/// (home, cache, Docker and podman auth files), so that no test reads or
/// writes the machine's.
pub fn nixoci_in(env: &Path) -> Command {
    let mut c = nixoci();
    private_env(&mut c, env);
    c
}

/// `c` (nixoci, or a shell that runs it) with the environment variables
/// nixoci reads cleared and a private credential and cache environment
/// under `env`, as `nixoci_in` has it.
pub fn private_env<'a>(c: &'a mut Command, env: &Path) -> &'a mut Command {
    c.env_remove("SOURCE_DATE_EPOCH")
        .env_remove("NIX_STORE")
        .env("HOME", env)
        .env("XDG_CACHE_HOME", env.join("cache"))
        .env("DOCKER_CONFIG", env.join("docker"))
        .env("REGISTRY_AUTH_FILE", env.join("auth.json"))
        .env_remove("XDG_RUNTIME_DIR")
}

/// busybox-static, which the image tests put in layers; fails (never
/// skips) when it is missing.
pub fn busybox() -> &'static Path {
    let bin = Path::new("/bin/busybox");
    assert!(
        bin.is_file(),
        "this test needs busybox-static: run `bash .ci/install-deps`"
    );
    bin
}

/// Stage the stand-in nixpkgs in `to`: every file of tests/nix/standin,
/// busybox, and the binary under test as its prebuilt `nixoci`.
#[allow(dead_code)]
pub fn stage_standin(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nix/standin");
    std::fs::create_dir_all(to.join("busybox")).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    std::fs::copy(busybox(), to.join("busybox/busybox")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_nixoci"), to.join("nixoci")).unwrap();
}

/// Copy the directory tree `from` to `to` (regular files, directories and
/// symbolic links).
#[allow(dead_code)]
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        let t = entry.file_type();
        if t.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Fail (never skip) when a tool the test drives is missing.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{tool}`, which is not installed: run `bash .ci/install-deps` (or the README's test command)"
    );
}

/// A program of the python peers' virtualenv (`.venv-peers`, made by
/// `.ci/install-deps`: the SPDX and CycloneDX validators, the `oras`
/// client); fails (never skips) when it is missing.
pub fn peer(program: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv-peers/bin")
        .join(program);
    assert!(
        bin.is_file(),
        "this test needs {program} from the python peers: run `bash .ci/install-deps`"
    );
    bin
}

/// Validate `file` with the reference validators: SPDX 2.3 JSON with
/// `pyspdxtools -i`, CycloneDX 1.6 JSON with cyclonedx-python-lib's
/// `JsonStrictValidator`. Panics with their report when it is not valid.
pub fn validate_sbom(file: &Path, format: &str) {
    match format {
        "spdx" => {
            let out = Command::new(peer("pyspdxtools"))
                .arg("-i")
                .arg(file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "pyspdxtools refuses {}:\n{}{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        "cyclonedx" => {
            let script = "import sys\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
from cyclonedx.schema import SchemaVersion\n\
errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
print(errors if errors else 'valid')\n\
sys.exit(1 if errors else 0)\n";
            let out = Command::new(peer("python"))
                .args(["-c", script])
                .arg(file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "the CycloneDX 1.6 strict validator refuses {}:\n{}{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        other => panic!("no validator for {other}"),
    }
}

/// Nix 2.8 as the tests run it: offline, single-user as root, sandboxed
/// (the settings below).
pub const NIX_CONFIG: &str = "experimental-features = nix-command flakes
substituters =
sandbox = true
build-users-group =
extra-sandbox-paths = /lib64 /lib/x86_64-linux-gnu=/usr/lib/x86_64-linux-gnu
flake-registry = /dev/null";

/// A Nix command (`nix`, `nix-build`, `nix-instantiate`, ...) with
/// [`NIX_CONFIG`], to be run only after [`nix_ready`]; fails (never skips)
/// when Nix is missing.
pub fn nix_command(program: &str) -> Command {
    require(program);
    nix_ready();
    let mut c = Command::new(program);
    c.env("NIX_CONFIG", NIX_CONFIG);
    c
}

/// Make sure the Nix store is initialised before any test starts a Nix
/// command. Nix creates its database, `/nix/store` and `/nix/var/nix` on
/// first use, and commands started together on a machine where Nix never
/// ran race to create them ("SQLite database '/nix/var/nix/db/db.sqlite' is
/// busy", "creating symlink ... File exists"). So one `nix-store --init`
/// runs alone first: once per test process (the other threads wait for it)
/// and under an exclusive lock on a file every test process takes, so two
/// test processes (two `cargo test` runs at once) never initialise together.
/// Once the store exists Nix's own locking makes parallel commands safe.
pub fn nix_ready() {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        require("nix-store");
        let _lock = lock_file(&std::env::temp_dir().join("nixoci-tests-nix-init.lock"));
        run(Command::new("nix-store")
            .arg("--init")
            .env("NIX_CONFIG", NIX_CONFIG));
    });
}

/// An exclusive `flock` on `path` (created when missing), held until the
/// returned file is dropped.
pub fn lock_file(path: &Path) -> fs::File {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .or_else(|_| fs::File::open(path))
        .unwrap_or_else(|e| panic!("cannot open the lock file {}: {e}", path.display()));
    // SAFETY: flock on a descriptor this function owns.
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        assert!(
            e.kind() == std::io::ErrorKind::Interrupted,
            "cannot lock {}: {e}",
            path.display()
        );
    }
    f
}

/// Run `cmd`, panic with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `cmd`, expect failure, return stderr.
pub fn run_fail(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn write_json(path: &Path, v: &Value) {
    fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// `nixoci build SPEC -o OUT`, returning the layout path.
pub fn build(spec: &Path, out: &Path) -> PathBuf {
    run(nixoci()
        .arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .arg("--quiet"));
    assert_crane_accepts(out);
    out.to_owned()
}

/// `nixoci build SPEC -o OUT` under `umask` and without
/// `SOURCE_DATE_EPOCH`, as a build on another machine would run.
pub fn build_with_umask(spec: &Path, out: &Path, umask: &str) {
    run(Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask {umask} && exec \"$0\" build \"$1\" -o \"$2\" --quiet"
        ))
        .arg(env!("CARGO_BIN_EXE_nixoci"))
        .arg(spec)
        .arg(out)
        .env_remove("SOURCE_DATE_EPOCH"));
}

/// A deterministic, incompressible file of `len` bytes.
pub fn noise(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.truncate(len);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, buf).unwrap();
}

/// An image layout: a base layer (shared by every image with the same
/// `base_seed`) and one layer of its own, both uncompressed (the data is
/// noise: compression would only cost time).
pub fn image(dir: &Path, name: &str, base_seed: u64, own_seed: u64, size: usize) -> PathBuf {
    image_with(dir, name, base_seed, own_seed, size, "none")
}

pub fn image_with(
    dir: &Path,
    name: &str,
    base_seed: u64,
    own_seed: u64,
    size: usize,
    compression: &str,
) -> PathBuf {
    noise(&dir.join(format!("{name}-in/base/blob")), size, base_seed);
    noise(&dir.join(format!("{name}-in/own/blob")), size, own_seed);
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &serde_json::json!({
            "layers": [
                {"files": [{"source": format!("{name}-in/base/blob"), "destination": "/base/blob"}], "compression": compression},
                {"files": [{"source": format!("{name}-in/own/blob"), "destination": format!("/{name}/blob")}], "compression": compression}
            ],
            "architecture": "amd64",
            "config": {"Cmd": ["/bin/true"]},
            "tags": ["latest"]
        }),
    );
    build(&spec, &dir.join(name))
}

/// The seed of the kill trials (tests/kill.rs, tests/nix.rs):
/// `NIXOCI_KILL_SEED`, else from the clock; odd (a xorshift state must not
/// be 0).
pub fn kill_seed() -> u64 {
    std::env::var("NIXOCI_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1
}

/// The manifest digest the `latest` tag names in a layout.
pub fn manifest_digest(layout: &Path) -> String {
    let index = read_json(&layout.join("index.json"));
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

/// Every blob of a layout: file name -> sha256 of its bytes (computed here,
/// so two maps are equal exactly when the files are byte-equal, and a
/// failing comparison prints digests, not megabytes).
pub fn blobs(layout: &Path) -> BTreeMap<String, String> {
    fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = fs::read(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            )
        })
        .collect()
}

pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// How the fixture is made: permission mask (as a umask would), file mtime,
/// and whether entries are created in reverse order.
#[derive(Clone, Copy)]
pub struct FixtureOptions {
    pub umask: u32,
    pub mtime: i64,
    pub reverse: bool,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            umask: 0o022,
            mtime: 1_000_000_000,
            reverse: false,
        }
    }
}

/// A directory name that is not UTF-8.
pub fn non_utf8_name() -> &'static OsStr {
    OsStr::from_bytes(b"caf\xe9-\xff")
}

/// A tree with what a layer must carry byte-exact: nested and empty
/// directories, executables, symlinks (relative, absolute, dangling), hard
/// links, names over 100 and over 255 bytes, a non-UTF-8 name, a 1 MiB file.
/// Permission bits are the creation mode less `umask`, as a umask would make
/// them.
pub fn make_fixture(root: &Path, opts: FixtureOptions) {
    type Step = Box<dyn Fn(&Path)>;
    let long_component = "l".repeat(120);
    let deep = format!("{}/{}/{}", "d".repeat(90), "e".repeat(90), "f".repeat(90));
    let mut steps: Vec<Step> = vec![
        Box::new(|r| file(r, "etc/app/config.json", b"{\"port\": 8080}\n", 0o644)),
        Box::new(|r| file(r, "bin/tool", b"#!/bin/sh\necho tool\n", 0o755)),
        Box::new(|r| file(r, "share/doc/README", b"read me\n", 0o644)),
        Box::new(|r| file(r, "share/big.bin", &big_content(), 0o644)),
        Box::new(|r| dir(r, "var/empty")),
        Box::new(|r| {
            dir(r, "bin");
            symlink("tool", r.join("bin/tool-link")).unwrap()
        }),
        Box::new(|r| {
            dir(r, "share");
            symlink("/etc/app/config.json", r.join("share/abs-link")).unwrap()
        }),
        Box::new(|r| {
            dir(r, "share");
            symlink("../nowhere", r.join("share/dangling")).unwrap()
        }),
        Box::new(|r| {
            file(r, "lib/a.so", b"shared object bytes\n", 0o755);
            fs::hard_link(r.join("lib/a.so"), r.join("lib/b.so")).unwrap();
        }),
        Box::new(move |r| file(r, &format!("share/{long_component}"), b"long name\n", 0o644)),
        Box::new(move |r| file(r, &format!("{deep}/deep.txt"), b"deep\n", 0o644)),
        Box::new(|r| {
            let d = r.join("share").join(non_utf8_name());
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("x"), b"latin-1 directory\n").unwrap();
            fs::set_permissions(d.join("x"), fs::Permissions::from_mode(0o644)).unwrap();
        }),
    ];
    if opts.reverse {
        steps.reverse();
    }
    for s in &steps {
        s(root);
    }
    // Apply the mask and the mtime to everything, as creation would have.
    for e in walkdir::WalkDir::new(root).contents_first(true) {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        let executable = m.is_dir() || m.mode() & 0o100 != 0;
        let base = if executable { 0o777 } else { 0o666 };
        fs::set_permissions(e.path(), fs::Permissions::from_mode(base & !opts.umask)).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(opts.mtime as u64);
        fs::File::open(e.path()).unwrap().set_modified(t).unwrap();
    }
}

/// 3.5 MiB: a gzip layer of the fixture spans several 1 MiB members.
fn big_content() -> Vec<u8> {
    (0..7u32 << 19)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

pub fn file(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn dir(root: &Path, rel: &str) {
    fs::create_dir_all(root.join(rel)).unwrap();
}

/// One path of a snapshot.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        content: Vec<u8>,
        link_group: Option<usize>,
    },
    Symlink {
        target: Vec<u8>,
    },
}

/// Everything below `root` (not `root` itself): path bytes -> node. Hard
/// links are numbered by first appearance so two trees compare equal when
/// the same paths are linked together.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut inodes: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let mut entries: Vec<_> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by(|a, b| {
        a.path()
            .as_os_str()
            .as_bytes()
            .cmp(b.path().as_os_str().as_bytes())
    });
    for e in entries {
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let m = e.path().symlink_metadata().unwrap();
        let node = if m.file_type().is_symlink() {
            Node::Symlink {
                target: fs::read_link(e.path())
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            }
        } else if m.is_dir() {
            Node::Dir {
                mode: m.mode() & 0o7777,
            }
        } else {
            let link_group = (m.nlink() > 1).then(|| {
                let n = inodes.len();
                *inodes.entry((m.dev(), m.ino())).or_insert(n)
            });
            Node::File {
                mode: m.mode() & 0o7777,
                content: fs::read(e.path()).unwrap(),
                link_group,
            }
        };
        out.insert(rel, node);
    }
    out
}

/// The snapshot a layer of `snapshot` should unpack to: Nix-normalised
/// modes (files 0444 or 0555, directories 0555).
pub fn normalised(mut snap: BTreeMap<Vec<u8>, Node>) -> BTreeMap<Vec<u8>, Node> {
    for node in snap.values_mut() {
        match node {
            Node::Dir { mode } => *mode = 0o555,
            Node::File { mode, .. } => *mode = if *mode & 0o111 != 0 { 0o555 } else { 0o444 },
            Node::Symlink { .. } => {}
        }
    }
    snap
}

/// First difference between two snapshots, for readable failures.
pub fn diff(a: &BTreeMap<Vec<u8>, Node>, b: &BTreeMap<Vec<u8>, Node>) -> Option<String> {
    for (k, v) in a {
        match b.get(k) {
            None => {
                return Some(format!(
                    "{} missing from second",
                    String::from_utf8_lossy(k)
                ))
            }
            Some(w) if w != v => {
                let brief = |n: &Node| match n {
                    Node::File {
                        mode,
                        content,
                        link_group,
                    } => {
                        format!(
                            "file mode {mode:o} {} bytes link {link_group:?}",
                            content.len()
                        )
                    }
                    other => format!("{other:?}"),
                };
                return Some(format!(
                    "{}: {} vs {}",
                    String::from_utf8_lossy(k),
                    brief(v),
                    brief(w)
                ));
            }
            _ => {}
        }
    }
    b.keys()
        .find(|k| !a.contains_key(*k))
        .map(|k| format!("{} missing from first", String::from_utf8_lossy(k)))
}

/// podman with its own graph root, runc, no network (`--network=none`
/// always: the tests never give a container a network).
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        require("podman");
        require("runc");
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\nnetns = \"none\"\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        Podman { dir }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            );
        c
    }
}

impl Podman {
    /// Load a layout (as an oci-archive tarball) and run its image with no
    /// network; returns the image ID and what it printed.
    pub fn load_and_run(&self, layout: &Path) -> (String, String) {
        assert_crane_accepts(layout);
        let image = self.load(layout);
        let ran = run(self
            .cmd()
            .args(["run", "--rm", "--network=none"])
            .arg(&image));
        (image, String::from_utf8_lossy(&ran.stdout).into_owned())
    }

    /// Load a layout (as an oci-archive tarball); returns the image's name.
    pub fn load(&self, layout: &Path) -> String {
        require("tar");
        let t = tempfile::tempdir().unwrap();
        let archive = t.path().join("image.tar");
        run(Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(layout)
            .arg("."));
        let loaded = run(self.cmd().arg("load").arg("-i").arg(&archive));
        let text = String::from_utf8_lossy(&loaded.stdout).into_owned();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("Loaded image: ")
                    .or_else(|| l.strip_prefix("Loaded image(s): "))
            })
            .unwrap_or_else(|| panic!("no loaded image in {text:?}"))
            .trim()
            .to_owned()
    }
}

/// A layout whose tag `multi` names an index over two one-layer images,
/// amd64 and arm64, made with `manifest` and `layout`; written to
/// `dir/out`.
pub fn two_platform_layout(dir: &Path, out: &str) -> PathBuf {
    platform_layout(dir, out, &["amd64", "arm64"])
}

/// A layout of one index (tag `multi`) over an image for each of `archs`
/// (Linux), each with one small layer of its own.
pub fn platform_layout(dir: &Path, out: &str, archs: &[&str]) -> PathBuf {
    file(dir, "f", b"x\n", 0o644);
    for arch in archs {
        write_json(
            &dir.join(format!("{arch}.json")),
            &serde_json::json!({"layers": [{"files": [{"source": "f", "destination": format!("/{arch}")}]}], "architecture": arch}),
        );
        run(nixoci()
            .arg("manifest")
            .arg(dir.join(format!("{arch}.json")))
            .arg("-o")
            .arg(dir.join(arch))
            .arg("-q"));
    }
    write_json(
        &dir.join("layout.json"),
        &serde_json::json!({"manifests": archs, "tags": ["multi"]}),
    );
    run(nixoci()
        .arg("layout")
        .arg(dir.join("layout.json"))
        .arg("-o")
        .arg(dir.join(out))
        .arg("-q"));
    assert_crane_accepts(&dir.join(out));
    dir.join(out)
}

/// The real `crane push LAYOUT REF` takes the layout (one `index.json`
/// descriptor, an image or an index: otherwise it stops with "layout
/// contains N entries, consider --index") and every blob of it (a blob
/// that is a symbolic link is refused: "layout blob ... is a symlink"),
/// pushed to an empty referrers registry of its own, and `crane digest` of
/// it is the layout's digest. podman load -i refuses several descriptors
/// for the same reason.
pub fn assert_crane_accepts(layout: &Path) {
    crane::crane_pushes(layout);
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, bytes).unwrap();
    e.finish().unwrap()
}

/// `sha256:` and the hex digest of `bytes`.
pub fn sha(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

/// A layout of gzip layers made from raw tar streams, tagged `latest`.
/// `tamper` may change a layer blob after its digest was taken.
pub fn craft(dir: &Path, layers: &[Vec<u8>], tamper: impl Fn(usize, &mut Vec<u8>)) -> PathBuf {
    craft_with(dir, layers, tamper, false)
}

/// [`craft`], with a wrong diff_id for the first layer when `bad_diff_id`.
pub fn craft_with(
    dir: &Path,
    layers: &[Vec<u8>],
    tamper: impl Fn(usize, &mut Vec<u8>),
    bad_diff_id: bool,
) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| put_blob(dir, bytes);
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, tar) in layers.iter().enumerate() {
        diff_ids.push(if bad_diff_id && i == 0 {
            format!("sha256:{}", "1".repeat(64))
        } else {
            sha(tar)
        });
        let gz = gzip(tar);
        let (d, n) = put(&gz);
        let mut stored = gz.clone();
        tamper(i, &mut stored);
        fs::write(blobs.join(&d[7..]), &stored).unwrap();
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}});
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs}, "layers": descs});
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    write_json(
        &dir.join("index.json"),
        &serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}),
    );
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_owned()
}

/// Write `bytes` as a blob of the layout at `dir` (`blobs/sha256` made when
/// missing): its digest and size.
pub fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let d = sha(bytes);
    fs::write(blobs.join(&d[7..]), bytes).unwrap();
    (d, bytes.len())
}

/// A layout (tagged `latest`) of one image whose one layer blob is `gz` as
/// it is, gzip media type, with `diff_id` in its config whatever `gz`
/// holds.
pub fn layout_of_blob(dir: &Path, gz: &[u8], diff_id: &str) -> PathBuf {
    let (ld, ls) = put_blob(dir, gz);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
    let (cd, cs) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]});
    let (md, ms) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    write_json(
        &dir.join("index.json"),
        &serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}),
    );
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_owned()
}
