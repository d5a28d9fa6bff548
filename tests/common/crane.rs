//! crane (go-containerregistry's CLI, from `.ci/install-deps`) on the
//! loopback registries: `crane push DIR REF` of a layout, then what crane
//! reads back from the registry, checked against the layout's own bytes.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::peers::{crane, ReferrersRegistry};
use super::{blob_path, read_json, run};

/// crane with a private home (no user's credentials) and `--insecure`
/// (plain HTTP to the loopback registries) after `args`.
pub struct Crane {
    home: tempfile::TempDir,
}

impl Crane {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Crane {
        Crane {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// `crane ARGS --insecure`.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = crane(self.home.path());
        c.args(args).arg("--insecure");
        c
    }

    /// Run `crane ARGS --insecure`, panicking with its output unless it
    /// succeeds; its standard output.
    pub fn out<S: AsRef<OsStr>>(&self, args: &[S]) -> Vec<u8> {
        run(&mut self.cmd(args)).stdout
    }

    /// `crane pull --format oci REF DIR`: the image as an OCI layout.
    pub fn pull_layout(&self, reference: &str, dir: &Path) {
        self.out(&[
            OsStr::new("pull"),
            OsStr::new("--format"),
            OsStr::new("oci"),
            OsStr::new(reference),
            dir.as_os_str(),
        ]);
    }

    /// `crane digest REF`.
    pub fn digest(&self, reference: &str) -> String {
        String::from_utf8(self.out(&["digest", reference]))
            .unwrap()
            .trim()
            .to_owned()
    }
}

/// The repository part of `HOST:PORT/REPO:TAG` (`HOST:PORT/REPO`).
pub fn repository(reference: &str) -> &str {
    let slash = reference.rfind('/').unwrap_or(0);
    match reference[slash..].find([':', '@']) {
        Some(i) => &reference[..slash + i],
        None => reference,
    }
}

/// The one descriptor of a layout's `index.json` (what `crane push` takes).
pub fn root_descriptor(layout: &Path) -> Value {
    let index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array().expect("index.json manifests");
    assert_eq!(
        entries.len(),
        1,
        "{}: crane push takes a layout of one index.json entry: {index}",
        layout.display()
    );
    entries[0].clone()
}

/// `crane push LAYOUT REF`, then: `crane digest REF` is the digest of the
/// layout's one `index.json` descriptor; `crane validate --remote=REF`
/// passes (every manifest of an index, every layer); `crane manifest` of
/// the image (and of each platform's manifest by digest) and `crane
/// config` of each image are the layout's blobs, byte for byte.
pub fn crane_push_and_check(crane: &Crane, layout: &Path, reference: &str) {
    crane.out(&[
        OsStr::new("push"),
        layout.as_os_str(),
        OsStr::new(reference),
    ]);
    let root = root_descriptor(layout);
    let digest = root["digest"].as_str().unwrap();
    assert_eq!(
        crane.digest(reference),
        digest,
        "crane digest {reference} after crane push {}",
        layout.display()
    );
    let validated = crane.out(&["validate", format!("--remote={reference}").as_str()]);
    assert_eq!(
        String::from_utf8_lossy(&validated).trim(),
        format!("PASS: {reference}")
    );
    assert_served_as_in_layout(crane, layout, reference);
}

/// `crane manifest REF` is the blob of the layout's one descriptor; for
/// an index, each platform's manifest (by digest) too; `crane config` of
/// each image is its config blob.
pub fn assert_served_as_in_layout(crane: &Crane, layout: &Path, reference: &str) {
    let root = root_descriptor(layout);
    let digest = root["digest"].as_str().unwrap();
    let bytes = fs::read(blob_path(layout, digest)).unwrap();
    assert!(
        crane.out(&["manifest", reference]) == bytes,
        "crane manifest {reference} is not the layout's blob {digest}"
    );
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let images: Vec<String> = match doc["manifests"].as_array() {
        Some(children) => children
            .iter()
            .map(|c| c["digest"].as_str().unwrap().to_owned())
            .collect(),
        None => vec![digest.to_owned()],
    };
    for image in images {
        let by_digest = format!("{}@{image}", repository(reference));
        let manifest = fs::read(blob_path(layout, &image)).unwrap();
        assert!(
            crane.out(&["manifest", &by_digest]) == manifest,
            "crane manifest {by_digest} is not the layout's blob"
        );
        let doc: Value = serde_json::from_slice(&manifest).unwrap();
        let config = doc["config"]["digest"].as_str().unwrap();
        assert!(
            crane.out(&["config", &by_digest]) == fs::read(blob_path(layout, config)).unwrap(),
            "crane config {by_digest} is not the layout's blob {config}"
        );
    }
}

/// A reference in a repository of its own on the test binary's shared
/// referrers registry: `crane-N/NAME:latest`, N counting up. Only for
/// images that do not check crane's reading of a layout: that registry
/// keeps blobs registry-wide (go-containerregistry's `pkg/registry`
/// answers a blob HEAD in any repository), and `crane push` does not read
/// a blob the registry has.
pub fn fresh_reference(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    ReferrersRegistry::shared().reference(&format!("crane-{n}/{name}:latest"))
}

/// [`crane_push_and_check`] to `NAME:latest` on a referrers registry of
/// its own, which has none of the layout's blobs: crane reads every one.
pub fn crane_push_and_check_alone(crane: &Crane, layout: &Path, name: &str) {
    let registry = ReferrersRegistry::start();
    crane_push_and_check(
        crane,
        layout,
        &registry.reference(&format!("{name}:latest")),
    );
}

/// The real `crane push LAYOUT REF` to a referrers registry of its own
/// (empty, so that crane reads every blob of the layout: it skips a blob
/// the registry has), and `crane digest REF` is the digest of the
/// layout's one `index.json` descriptor.
pub fn crane_pushes(layout: &Path) {
    let crane = Crane::new();
    let registry = ReferrersRegistry::start();
    let reference = registry.reference("accepts:latest");
    crane.out(&[
        OsStr::new("push"),
        layout.as_os_str(),
        OsStr::new(&reference),
    ]);
    let root = root_descriptor(layout);
    assert_eq!(
        crane.digest(&reference),
        root["digest"].as_str().unwrap(),
        "crane digest {reference} after crane push {}",
        layout.display()
    );
}
