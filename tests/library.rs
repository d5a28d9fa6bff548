//! The library's surface (docs/library.md, "Using nixoci as a library"): a
//! Rust program builds, verifies and reads the results through the public
//! API alone, and no module is public unless docs/library.md says it is.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::registry::*;
use common::*;

/// The public API builds the bundled example into the same bytes as
/// `nixoci build`, reports what it wrote, verifies it with the default
/// limits and with tighter ones (options set field by field, as a
/// `#[non_exhaustive]` struct allows), and fails with a typed error that
/// says what to do.
#[test]
fn the_api_builds_and_verifies_what_the_command_does() {
    let t = tempfile::tempdir().unwrap();
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/image.json");
    let spec: nixoci::spec::ImageSpec = nixoci::spec::load(&spec_path).unwrap();
    let mut options = nixoci::BuildOptions::default();
    options.threads = 2;
    let report = nixoci::build(&spec, &spec_path, &t.path().join("lib"), &options).unwrap();
    let cli = t.path().join("cli");
    run(nixoci()
        .arg("build")
        .arg(&spec_path)
        .arg("-o")
        .arg(&cli)
        .arg("-q"));
    assert_eq!(blobs(&report.layout), blobs(&cli));
    assert_eq!(
        fs::read(report.layout.join("index.json")).unwrap(),
        fs::read(cli.join("index.json")).unwrap()
    );
    assert_eq!(report.tags, ["latest", "1.0"]);
    assert_eq!(report.manifests.len(), 1);
    let image = &report.manifests[0];
    assert_eq!(image.digest.to_string(), manifest_digest(&cli));
    assert_eq!(image.platform.to_string(), "linux/amd64");
    assert_eq!(image.layers.len(), 1);

    let verified = nixoci::verify(&report.layout);
    assert!(verified.ok, "{:?}", verified.problems);
    assert_eq!((verified.manifests, verified.blobs_checked), (1, 3));
    let mut limits = nixoci::Limits::default();
    limits.max_entries = 2;
    let bounded = nixoci::verify_with(&report.layout, &limits);
    assert!(!bounded.ok);
    assert!(
        bounded
            .problems
            .iter()
            .any(|p| p.contains("max-entries") && p.contains(" 2 entries")),
        "{:?}",
        bounded.problems
    );

    let err = nixoci::build(&spec, &spec_path, &report.layout, &options).unwrap_err();
    assert!(
        matches!(&err, nixoci::Error::OutputExists(p) if *p == report.layout),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("remove it or pass --force"),
        "{err}"
    );
}

/// Push and pull through the API, with options made from their defaults
/// and set field by field, against a real registry (distribution 2.8):
/// the reports say what was sent and named, and the pulled layout holds
/// the built one's bytes.
#[test]
fn the_api_pushes_and_pulls() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/image.json");
    let spec: nixoci::spec::ImageSpec = nixoci::spec::load(&spec_path).unwrap();
    let built = nixoci::build(
        &spec,
        &spec_path,
        &t.path().join("built"),
        &Default::default(),
    )
    .unwrap();
    let reference = nixoci::oci::Reference::parse(&reg.reference("hello:v1")).unwrap();
    let mut remote = nixoci::RemoteOptions::default();
    remote.retries = 1;
    let pushed = nixoci::push(
        &built.layout,
        Some("latest"),
        &reference,
        &remote,
        Arc::new(nixoci::progress::Silent),
    )
    .unwrap();
    assert_eq!(pushed.digest, built.manifests[0].digest);
    assert_eq!(pushed.uploaded, 2, "the config and the layer: {pushed:?}");

    let pulled = nixoci::pull(
        &reference,
        &t.path().join("pulled"),
        &nixoci::PullOptions::default(),
        &remote,
        Arc::new(nixoci::progress::Silent),
    )
    .unwrap();
    assert_eq!(pulled.digest, built.manifests[0].digest);
    assert_eq!(pulled.tag.as_deref(), Some("v1"));
    assert_eq!(blobs(&pulled.layout), blobs(&built.layout));
    assert!(nixoci::verify(&pulled.layout).ok);
}

/// `extraConfig` can be set from Rust: its type, `nixoci::oci::Json`,
/// is public, and a number keeps the text it is given.
#[test]
fn extra_config_is_set_through_the_api() {
    use nixoci::oci::{Json, JsonObject};
    let t = tempfile::tempdir().unwrap();
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/image.json");
    let mut spec: nixoci::spec::ImageSpec = nixoci::spec::load(&spec_path).unwrap();
    let labels = JsonObject::from([("org.example.size".to_string(), Json::String("1e2".into()))]);
    let config = JsonObject::from([
        ("Labels".to_string(), Json::Object(labels)),
        ("StopSignal".to_string(), Json::String("SIGINT".into())),
    ]);
    spec.extra_config = Some(JsonObject::from([(
        "config".to_string(),
        Json::Object(config),
    )]));
    let report = nixoci::build(
        &spec,
        &spec_path,
        &t.path().join("out"),
        &Default::default(),
    )
    .unwrap();
    let config_path = blob_path(
        &report.layout,
        &report.manifests[0].config.digest.to_string(),
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(config_path).unwrap()).unwrap();
    assert_eq!(config["config"]["StopSignal"], "SIGINT", "{config}");
    assert_eq!(
        config["config"]["Labels"]["org.example.size"], "1e2",
        "{config}"
    );
}

/// Every module of the library is private but those docs/library.md ("Using
/// nixoci as a library") names: the OCI types, the spec, errors and
/// progress, and, hidden from the documentation and outside the API, the
/// command line, the fuzz entry points and what the tests reach. A new
/// public module is a decision to take there, not a side effect.
#[test]
fn only_the_named_modules_are_public() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let public: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches([';', '{', ' ']))
        .collect();
    assert_eq!(
        public,
        [
            "cli",
            "error",
            "fuzz",
            "oci",
            "progress",
            "sign",
            "spec",
            "test_support"
        ]
    );
    // No module is public by another spelling.
    assert!(
        !lib.lines()
            .any(|l| l.starts_with("pub(") && l.contains(" mod ")),
        "a module with restricted visibility at the root: write `mod x;`"
    );
}
