//! Helpers shared by the signing tests (`tests/sign*.rs`): key pairs made
//! by openssl, `nixoci sign` and `nixoci verify-signature`, and the bench
//! of a registry (2.8, or the one with the referrers API) a test pushes an
//! image to and signs it in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::peers::ReferrersRegistry;
use super::registry::{Registry, Setup};
use super::{image, nixoci_in, require, run};

/// A P-256 private key in PKCS#8 PEM made by openssl, written to `key`.
pub fn openssl_private_key(key: &Path) {
    require("openssl");
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .arg("-out")
        .arg(key));
}

/// A P-256 key pair in PKCS#8 PEM made by openssl in `dir`: (private,
/// public).
pub fn openssl_keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    openssl_private_key(&key);
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public));
    (key, public)
}

/// `generate-key-pair` run by `cosign` (a cosign command, see
/// [`super::peers::cosign`]) in `dir` (made if missing), with the password
/// `password` in `COSIGN_PASSWORD`, which must succeed: (cosign.key,
/// cosign.pub).
pub fn cosign_key_pair(mut cosign: Command, dir: &Path, password: &str) -> (PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    run(cosign
        .arg("generate-key-pair")
        .env("COSIGN_PASSWORD", password)
        .current_dir(dir));
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// `nixoci sign --key KEY ARGS TARGET --json` with its environment in
/// `env`, which must succeed: its output.
pub fn nixoci_sign(env: &Path, key: &Path, target: &str, args: &[&str]) -> Output {
    run(nixoci_in(env)
        .arg("sign")
        .arg("--key")
        .arg(key)
        .args(args)
        .arg(target)
        .arg("--json"))
}

/// `nixoci verify-signature --key PUB TARGET --json` with its environment
/// in `env`: its output.
pub fn nixoci_verify(env: &Path, public: &Path, target: &str) -> Output {
    nixoci_in(env)
        .arg("verify-signature")
        .arg("--key")
        .arg(public)
        .arg(target)
        .arg("--json")
        .output()
        .unwrap()
}

/// A command's standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A command's standard output as JSON (a `--json` report), or a panic
/// showing both outputs.
pub fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// Where a test pushes: a registry's host, and for registry 2.8 the
/// directory of its storage (to alter a blob under it). Each test file
/// adds the methods of its own format.
pub struct Bench {
    /// The private environment of every command (home, caches, keys).
    pub env: tempfile::TempDir,
    /// The registry's `host:port`.
    pub host: String,
    /// Registry 2.8's storage directory; `None` for the referrers registry.
    pub storage: Option<PathBuf>,
    /// Registry 2.8, stopped when the bench goes.
    pub _registry: Option<Registry>,
}

impl Bench {
    /// A bench on a registry 2.8 of its own.
    pub fn registry2() -> Bench {
        let r = Registry::start(Setup::default());
        Bench {
            env: tempfile::tempdir().unwrap(),
            host: r.host(),
            storage: Some(r.dir.path().join("data")),
            _registry: Some(r),
        }
    }

    /// A bench on the shared registry with the referrers API.
    pub fn referrers() -> Bench {
        Bench {
            env: tempfile::tempdir().unwrap(),
            host: ReferrersRegistry::shared().host(),
            storage: None,
            _registry: None,
        }
    }

    /// The environment directory.
    pub fn env(&self) -> &Path {
        self.env.path()
    }

    /// `repo_tag` in this registry.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// A small image pushed to `repo:tag`; its manifest digest. Seeds
    /// that differ only in their lowest bit give the same image.
    pub fn push_image(&self, repo_tag: &str, seed: u64) -> String {
        let dir = self.env().join(format!("img-{seed}"));
        let layout = image(&dir, "app", 1, seed, 512);
        let out = run(nixoci_in(self.env())
            .args(["push", "--json"])
            .arg(&layout)
            .arg(self.reference(repo_tag)));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["digest"].as_str().unwrap().to_owned()
    }

    /// `http://host` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// GET a manifest through the registry API.
    pub fn manifest(&self, repo: &str, at: &str) -> Value {
        let out = run(Command::new("curl")
            .args(["-sf", "-H"])
            .arg("Accept: application/vnd.oci.image.manifest.v1+json")
            .arg(self.url(&format!("/v2/{repo}/manifests/{at}"))));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// GET a blob through the registry API.
    pub fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        run(Command::new("curl")
            .arg("-sf")
            .arg(self.url(&format!("/v2/{repo}/blobs/{digest}"))))
        .stdout
    }

    /// A P-256 key pair made by openssl in the environment: (private,
    /// public).
    pub fn openssl_keys(&self, name: &str) -> (PathBuf, PathBuf) {
        openssl_keys(self.env(), name)
    }

    /// `nixoci sign --key KEY ARGS REF --json`, which must succeed: its
    /// report.
    pub fn sign(&self, key: &Path, reference: &str, args: &[&str]) -> Value {
        let out = nixoci_sign(self.env(), key, reference, args);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `nixoci verify-signature --key PUB REF --json`: its output.
    pub fn verify(&self, public: &Path, reference: &str) -> Output {
        nixoci_verify(self.env(), public, reference)
    }
}
