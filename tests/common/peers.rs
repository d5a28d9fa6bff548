//! The Go peers (`.ci/install-deps` puts them in `.tools/bin`, ignored by
//! git): crane, the oras CLI, cosign, and `referrers-registry`, a registry that
//! serves the OCI 1.1 referrers API (go-containerregistry's
//! `pkg/registry`, from `tests/peers/registry`). A test that needs one
//! fails, never skips, when it is missing.

use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The path of a Go peer (`crane`, `oras`, `referrers-registry`).
pub fn go_peer(program: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/bin")
        .join(program);
    assert!(
        bin.is_file(),
        "this test needs {program} from the Go peers: run `bash .ci/install-deps` (it needs Go 1.26 or later on PATH; docs/tests.md)"
    );
    bin
}

/// `crane`, its configuration in `home` (a test's own, so no user's
/// credentials); the caller adds `--insecure` for the plain-HTTP loopback
/// registries.
pub fn crane(home: &Path) -> Command {
    let mut c = Command::new(go_peer("crane"));
    c.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    c
}

/// The oras CLI; `--plain-http` is the caller's to add (it is a flag of
/// each subcommand). Its configuration in `home`.
pub fn oras(home: &Path) -> Command {
    let mut c = Command::new(go_peer("oras"));
    c.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    c
}

/// `cosign` (v2.6.5, `.ci/install-deps` builds it), its configuration and
/// caches in `home` (a test's own: no user's keys, credentials or trust
/// roots), never prompting (`COSIGN_YES`) and with no passphrase unless the
/// caller sets `COSIGN_PASSWORD`; offline use and the plain-HTTP loopback
/// registries are the caller's (`--tlog-upload=false`,
/// `--insecure-ignore-tlog=true`, `--allow-insecure-registry`).
pub fn cosign(home: &Path) -> Command {
    let mut c = Command::new(go_peer("cosign"));
    c.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("TUF_ROOT", home.join(".sigstore"))
        .env("COSIGN_YES", "true")
        .env_remove("COSIGN_PASSWORD")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    c
}

/// A registry that serves the referrers API natively, in memory, on a free
/// loopback port; stopped by PID when dropped. Its log holds a line per
/// request: `METHOD URL` (and the status and error code of a refused one).
pub struct ReferrersRegistry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl ReferrersRegistry {
    pub fn start() -> ReferrersRegistry {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(go_peer("referrers-registry"))
            .arg("-log")
            .arg(dir.path().join("registry.log"))
            .arg("-stop-on-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("referrers-registry printed no port: {line:?}"));
        ReferrersRegistry { dir, port, child }
    }

    /// One registry for the whole test binary, for checks that only need
    /// somewhere to push (each should use a repository of its own). It is
    /// never dropped: it stops when the test process exits and so closes
    /// its standard input (`-stop-on-eof`).
    pub fn shared() -> &'static ReferrersRegistry {
        static SHARED: std::sync::OnceLock<ReferrersRegistry> = std::sync::OnceLock::new();
        SHARED.get_or_init(ReferrersRegistry::start)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The requests so far, as `METHOD PATH?QUERY`.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                let mut words = l.split(' ');
                Some(format!("{} {}", words.next()?, words.next()?))
            })
            .collect()
    }

    /// The requests so far that write: PUT, POST, PATCH and DELETE.
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
            .collect()
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
