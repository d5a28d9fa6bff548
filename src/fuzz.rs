//! Entry points for fuzzing: each takes arbitrary bytes and must return
//! (an error is fine) without panicking, hanging or writing outside its
//! scratch directory. The cargo-fuzz targets in `fuzz/` call these, and
//! `tests/fuzz_corpus.rs` runs every committed corpus input through them
//! in every test run.

use std::path::Path;

use serde_json::{json, Value};

use crate::oci::descriptor::Descriptor;
use crate::oci::json::parse_json;
use crate::oci::MediaType;
use crate::untar::Limits;

/// Small bounds: a fuzz input may not make a run slow by asking for much.
fn limits() -> Limits {
    Limits {
        max_entries: 10_000,
        max_file_size: 16 << 20,
        max_total_size: 64 << 20,
    }
}

/// The image, layer, layers and layout spec parsers.
pub fn specs(data: &[u8]) {
    let p = Path::new("fuzz.json");
    let _ = parse_json::<crate::spec::ImageSpec>(p, data);
    let _ = parse_json::<crate::spec::LayerSpec>(p, data);
    let _ = parse_json::<crate::spec::LayersSpec>(p, data);
    let _ = parse_json::<crate::spec::LayoutSpec>(p, data);
}

/// The reference parser, both readings, and the tag rule.
pub fn reference(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(r) = crate::oci::reference::Reference::parse(s) {
            // What it prints parses back to itself.
            let again = crate::oci::reference::Reference::parse(&r.to_string())
                .expect("a parsed reference prints as one");
            assert_eq!(again.to_string(), r.to_string());
        }
        let _ = crate::oci::reference::Reference::parse_as_written(s);
        let _ = crate::oci::reference::validate_tag(s);
        let _ = s.parse::<crate::oci::Platform>();
        let _ = crate::oci::media_type::validate_media_type(s);
    }
}

/// The Nix builder's `.attrs.json` and closure graph readers.
pub fn attrs_json(data: &[u8]) {
    let _ = parse_json::<crate::nix::BuilderAttrs>(Path::new(".attrs.json"), data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::nix::parse_attrs_json(text, "closure");
        let _ = crate::nix::parse_references_graph(text);
    }
}

/// Index, manifest and config documents, checked as `verify` checks them.
pub fn documents(data: &[u8]) {
    if crate::oci::json::check_duplicate_keys(data).is_err() {
        return;
    }
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = crate::oci::validate::validate_manifest(&doc);
    let _ = crate::oci::validate::validate_index(&doc);
    let _ = crate::oci::validate::validate_config(&doc);
    let _ = serde_json::from_slice::<oci_spec::image::ImageManifest>(data);
    let _ = serde_json::from_slice::<oci_spec::image::ImageIndex>(data);
    let _ = serde_json::from_slice::<oci_spec::image::ImageConfiguration>(data);
}

/// A layer blob read as gzip, as zstd and as a plain tar, entry by entry
/// (the reader `verify`, `diff`, fromImage and the SBOM share).
pub fn layer_reader(data: &[u8]) {
    for media_type in [
        MediaType::LAYER_GZIP,
        MediaType::LAYER_ZSTD,
        MediaType::LAYER,
    ] {
        let desc = Descriptor {
            media_type,
            digest: crate::oci::digest::Sha256Digest::of(data),
            size: data.len() as u64,
            platform: None,
            annotations: Default::default(),
            artifact_type: None,
        };
        let _ = crate::base::tree::layer_entries(data, &desc, None, &limits(), "fuzz");
    }
}

/// Unpack `data` as a one-layer image (an uncompressed tar) into a scratch
/// directory with the safe extractor, then check that nothing was written
/// outside the target directory.
pub fn unpack_tar(data: &[u8]) {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let layout = scratch.path().join("layout");
    let blobs = crate::layout::BlobDir::new(&layout);
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("the blobs directory");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let mut w = blobs.writer().expect("a blob writer");
    std::io::Write::write_all(&mut w, data).expect("the layer");
    let (digest, size) = w.complete().expect("the layer blob");
    let config = blobs
        .write_json(
            &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest]}}),
            MediaType::CONFIG,
        )
        .expect("the config");
    let manifest = blobs
        .write_json(
            &json!({"schemaVersion": 2, "mediaType": MediaType::MANIFEST, "config": config,
                "layers": [{"mediaType": MediaType::LAYER, "digest": digest, "size": size}]}),
            MediaType::MANIFEST,
        )
        .expect("the manifest");
    std::fs::write(
        layout.join("index.json"),
        crate::oci::json::canonical_json(&json!({"schemaVersion": 2, "manifests": [manifest]})),
    )
    .expect("index.json");
    let root = scratch.path().join("root");
    let opts = crate::unpack::UnpackOptions {
        limits: limits(),
        ..Default::default()
    };
    let _ = crate::unpack::unpack(&layout, None, &root, &opts);
    // Nothing beside the layout and the target.
    for e in std::fs::read_dir(scratch.path()).expect("the scratch directory") {
        let name = e.expect("an entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            name == "layout" || name == "root" || name.starts_with(".root"),
            "the unpack wrote {name:?} outside its target"
        );
    }
    crate::unpack::make_removable(scratch.path());
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus test and `fuzz/`.
pub const TARGETS: [(&str, Target); 6] = [
    ("specs", specs),
    ("reference", reference),
    ("attrs_json", attrs_json),
    ("documents", documents),
    ("layer_reader", layer_reader),
    ("unpack_tar", unpack_tar),
];
