//! `nixoci build` / `layer` / `manifest` / `layout` through the real binary:
//! golden digests, determinism across machines-worth of differences, layer
//! semantics, and every bad input leaving nothing behind.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use serde_json::json;

fn fixture_spec(dir: &Path, input: &Path, compression: &str) -> std::path::PathBuf {
    let spec = dir.join("image.json");
    write_json(
        &spec,
        &json!({
            "layers": [{
                "files": [
                    {"source": input, "destination": "/"},
                    {"source": input.join("etc/app/config.json"), "destination": "/etc/app/override.json", "mode": "0640", "uid": 1000, "gid": 100}
                ],
                "compression": compression
            }],
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/bin/tool"], "Env": ["A=1"], "ExposedPorts": ["8080/tcp"]},
            "tags": ["latest"]
        }),
    );
    spec
}

/// An entry of a layer: (path bytes, type, mode, uid, link name, mtime).
type TarEntry = (Vec<u8>, u8, u32, u64, Option<Vec<u8>>, u64);

/// Entries of an uncompressed or gzip layer.
fn layer_entries(blob: &Path) -> Vec<TarEntry> {
    let bytes = fs::read(blob).unwrap();
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(&bytes[..]))
    } else {
        Box::new(&bytes[..])
    };
    let mut ar = tar::Archive::new(reader);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path_bytes().into_owned(),
                h.entry_type().as_byte(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                e.link_name_bytes().map(|l| l.into_owned()),
                h.mtime().unwrap(),
            )
        })
        .collect()
}

fn first_layer(layout: &Path) -> std::path::PathBuf {
    let m = read_json(&blob_path(layout, &manifest_digest(layout)));
    blob_path(layout, m["layers"][0]["digest"].as_str().unwrap())
}

#[test]
fn golden_manifest_digest() {
    // Fixed content (no fixture randomness: explicit bytes and modes).
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    file(&input, "bin/hello", b"#!/bin/sh\necho hello\n", 0o755);
    file(&input, "etc/greeting", b"hello\n", 0o600);
    std::os::unix::fs::symlink("hello", input.join("bin/hi")).unwrap();
    let spec = t.path().join("spec.json");
    write_json(
        &spec,
        &json!({
            "layers": [
                {"files": [{"source": "in/", "destination": "/"}]},
                {"files": [{"source": "in/etc/greeting", "destination": "/etc/zstd/"}], "compression": "zstd"},
                {"files": [{"source": "in/bin/hello", "destination": "/opt/hello", "mode": "0750", "uid": 7}], "compression": "none"}
            ],
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/hello"], "Labels": {"b": "2", "a": "1"}},
            "annotations": {"org.opencontainers.image.title": "golden"},
            "tags": ["v1", "latest"]
        }),
    );
    let layout = build(&spec, &t.path().join("out"));
    assert_eq!(
        manifest_digest(&layout),
        "sha256:6f4175b766c48e38d5030de963cc1ee937758ef931ef65da13aa9bf0d0517667",
        "the bytes of a fixed image changed: if intended, update this digest and say why in the commit"
    );
}

#[test]
fn same_bytes_from_different_dirs_mtimes_umask_and_creation_order() {
    let mut layouts = Vec::new();
    for (i, opts) in [
        FixtureOptions {
            umask: 0o022,
            mtime: 1_000_000_000,
            reverse: false,
        },
        FixtureOptions {
            umask: 0o077,
            mtime: 1_700_000_000,
            reverse: true,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let t = tempfile::Builder::new()
            .prefix(&format!("det{i}-"))
            .tempdir()
            .unwrap();
        let input = t.path().join(format!("input-{i}"));
        make_fixture(&input, opts);
        for compression in ["gzip", "zstd", "none"] {
            let spec = fixture_spec(t.path(), &input, compression);
            let out = t.path().join(format!("out-{compression}"));
            let umask = if i == 0 { "022" } else { "077" };
            run(std::process::Command::new("sh")
                .env_remove("SOURCE_DATE_EPOCH")
                .arg("-c")
                .arg(format!(
                    "umask {umask} && exec \"$0\" build \"$1\" -o \"$2\" --quiet"
                ))
                .arg(env!("CARGO_BIN_EXE_nixoci"))
                .arg(&spec)
                .arg(&out));
        }
        layouts.push(t);
    }
    for compression in ["gzip", "zstd", "none"] {
        let a = blobs(&layouts[0].path().join(format!("out-{compression}")));
        let b = blobs(&layouts[1].path().join(format!("out-{compression}")));
        assert_eq!(a.len(), 3, "config, manifest, one layer");
        assert_eq!(a, b, "{compression}: blobs differ between the two builds");
        let ia = fs::read(
            layouts[0]
                .path()
                .join(format!("out-{compression}/index.json")),
        )
        .unwrap();
        let ib = fs::read(
            layouts[1]
                .path()
                .join(format!("out-{compression}/index.json")),
        )
        .unwrap();
        assert_eq!(ia, ib);
    }
}

#[test]
fn source_date_epoch_sets_mtimes_and_created() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "in/f", b"x", 0o644);
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({"layers": [{"files": [{"source": "in/f", "destination": "/f"}], "compression": "none"}]}),
    );
    let out = t.path().join("o");
    run(nixoci()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--quiet", "-o"])
        .arg(&out)
        .arg(&spec));
    let m = read_json(&blob_path(&out, &manifest_digest(&out)));
    let config = read_json(&blob_path(&out, m["config"]["digest"].as_str().unwrap()));
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert!(layer_entries(&first_layer(&out))
        .iter()
        .all(|e| e.5 == 1_700_000_000));
    let out2 = t.path().join("o2");
    run(nixoci()
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--quiet", "-o"])
        .arg(&out2)
        .arg(&spec));
    let m = read_json(&blob_path(&out2, &manifest_digest(&out2)));
    let config = read_json(&blob_path(&out2, m["config"]["digest"].as_str().unwrap()));
    assert_eq!(config["created"], "1970-01-01T00:00:01Z");
    assert!(layer_entries(&first_layer(&out2)).iter().all(|e| e.5 == 1));
}

#[test]
fn layer_semantics() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    make_fixture(&input, FixtureOptions::default());
    let spec = fixture_spec(t.path(), &input, "none");
    let layout = build(&spec, &t.path().join("out"));
    let entries = layer_entries(&first_layer(&layout));
    let names: Vec<&[u8]> = entries.iter().map(|e| e.0.as_slice()).collect();

    // Sorted by byte order, each path once, parents first.
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "entries are sorted and unique");
    let get = |p: &[u8]| {
        entries
            .iter()
            .find(|e| e.0 == p)
            .unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(p)))
    };

    // Modes normalised Nix style; override applied; owners 0 unless set.
    assert_eq!(get(b"bin/tool").2, 0o555);
    assert_eq!(get(b"etc/app/config.json").2, 0o444);
    assert_eq!(get(b"etc/app/").2, 0o555);
    let o = get(b"etc/app/override.json");
    assert_eq!((o.2, o.3), (0o640, 1000));
    assert!(entries
        .iter()
        .filter(|e| e.0 != b"etc/app/override.json")
        .all(|e| e.3 == 0));
    // Empty directory kept.
    assert_eq!(get(b"var/empty/").1, b'5');
    // Symlinks stay symlinks, targets byte-exact.
    assert_eq!(
        get(b"share/dangling").4.as_deref(),
        Some(&b"../nowhere"[..])
    );
    assert_eq!(
        get(b"share/abs-link").4.as_deref(),
        Some(&b"/etc/app/config.json"[..])
    );
    // Hard links: the first path is a file, the second a link to it.
    assert_eq!(get(b"lib/a.so").1, b'0');
    let b = get(b"lib/b.so");
    assert_eq!((b.1, b.4.as_deref()), (b'1', Some(&b"lib/a.so"[..])));
    // Long and non-UTF-8 names kept byte-exact.
    assert!(names.iter().any(|n| n.len() > 255), "a name over 255 bytes");
    assert!(names
        .iter()
        .any(|n| n.ends_with(format!("share/{}", "l".repeat(120)).as_bytes())));
    let mut latin = b"share/".to_vec();
    latin.extend_from_slice(non_utf8_name().as_bytes());
    latin.extend_from_slice(b"/x");
    get(&latin);
}

#[test]
fn identical_content_twice_is_written_once() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "a/conf", b"same\n", 0o644);
    file(t.path(), "b/conf", b"same\n", 0o600);
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({"layers": [{"files": [
            {"source": "a/conf", "destination": "/etc/conf"},
            {"source": "b/conf", "destination": "/etc/conf"}
        ], "compression": "none"}]}),
    );
    let layout = build(&spec, &t.path().join("out"));
    let entries = layer_entries(&first_layer(&layout));
    assert_eq!(entries.iter().filter(|e| e.0 == b"etc/conf").count(), 1);
}

#[test]
fn closure_files_and_base_layers() {
    // A stand-in store: NIX_STORE points the tool at it.
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    file(&store, "aaaa-app/bin/app", b"app\n", 0o555);
    file(&store, "bbbb-lib/lib/libx.so", b"lib\n", 0o444);
    let app = store.join("aaaa-app");
    let lib = store.join("bbbb-lib");
    fs::write(
        t.path().join("graph"),
        format!(
            "{}\n\n1\n{}\n{}\n\n0\n",
            app.display(),
            lib.display(),
            lib.display()
        ),
    )
    .unwrap();
    write_json(
        &t.path().join(".attrs.json"),
        &json!({"closure": [{"path": lib, "references": []}], "outputs": {"out": "/x"}}),
    );
    let base_spec = t.path().join("base.json");
    write_json(
        &base_spec,
        &json!({"closure": {"file": ".attrs.json"}, "compression": "none"}),
    );
    let top_spec = t.path().join("top.json");
    write_json(
        &top_spec,
        &json!({"closure": {"file": "graph"}, "base": ["base-layer"], "compression": "none"}),
    );
    let full_spec = t.path().join("full.json");
    write_json(
        &full_spec,
        &json!({"closure": {"file": "graph"}, "compression": "none"}),
    );

    let layer = |spec: &Path, out: &str| {
        run(nixoci()
            .env("NIX_STORE", &store)
            .arg("layer")
            .arg(spec)
            .arg("-o")
            .arg(t.path().join(out))
            .arg("--quiet"));
        read_json(&t.path().join(out).join("layer.json"))
    };
    let base = layer(&base_spec, "base-layer");
    assert_eq!(base["storePaths"], json!([lib]));
    let top = layer(&top_spec, "top-layer");
    assert_eq!(
        top["storePaths"],
        json!([app]),
        "the base's store path is left out"
    );
    let full = layer(&full_spec, "full-layer");
    assert_eq!(full["storePaths"], json!([app, lib]));

    let names = |l: &serde_json::Value, dir: &str| -> Vec<String> {
        let blob = blob_path(&t.path().join(dir), l["digest"].as_str().unwrap());
        layer_entries(&blob)
            .into_iter()
            .map(|e| String::from_utf8(e.0).unwrap())
            .collect()
    };
    let rel = |p: &Path| p.strip_prefix("/").unwrap().to_str().unwrap().to_owned();
    assert!(names(&top, "top-layer")
        .iter()
        .all(|n| !n.starts_with(&rel(&lib))));
    assert!(names(&full, "full-layer")
        .iter()
        .any(|n| n.starts_with(&rel(&lib))));
    assert!(names(&full, "full-layer").contains(&format!("{}/bin/app", rel(&app))));
}

#[test]
fn building_blocks_compose_to_the_same_image_as_build() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    make_fixture(&input, FixtureOptions::default());
    // One-shot.
    let spec = fixture_spec(t.path(), &input, "gzip");
    let one_shot = build(&spec, &t.path().join("one-shot"));
    // Building blocks: layer -> manifest -> layout.
    let image: serde_json::Value = read_json(&spec);
    write_json(&t.path().join("layer.json"), &image["layers"][0]);
    run(nixoci()
        .arg("layer")
        .arg(t.path().join("layer.json"))
        .arg("-o")
        .arg(t.path().join("L"))
        .arg("-q"));
    let mut manifest_spec = image.clone();
    manifest_spec["layers"] = json!(["L"]);
    manifest_spec.as_object_mut().unwrap().remove("tags");
    write_json(&t.path().join("manifest.json"), &manifest_spec);
    run(nixoci()
        .arg("manifest")
        .arg(t.path().join("manifest.json"))
        .arg("-o")
        .arg(t.path().join("M"))
        .arg("-q"));
    write_json(
        &t.path().join("layout.json"),
        &json!({"manifests": ["M"], "tags": ["latest"]}),
    );
    run(nixoci()
        .arg("layout")
        .arg(t.path().join("layout.json"))
        .arg("-o")
        .arg(t.path().join("O"))
        .arg("-q"));
    assert_eq!(blobs(&one_shot), blobs(&t.path().join("O")));
    assert_eq!(
        fs::read(one_shot.join("index.json")).unwrap(),
        fs::read(t.path().join("O/index.json")).unwrap()
    );
    // The manifest directory references the layer, it does not copy it.
    assert_eq!(blobs(&t.path().join("M")).len(), 2);
}

#[test]
fn json_report_and_inspect() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    make_fixture(&input, FixtureOptions::default());
    let spec = fixture_spec(t.path(), &input, "zstd");
    let out = run(nixoci()
        .arg("build")
        .arg(&spec)
        .arg("-o")
        .arg(t.path().join("o"))
        .arg("--json"));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tags"], json!(["latest"]));
    assert_eq!(
        report["manifests"][0]["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let digest = report["descriptor"]["digest"].as_str().unwrap();
    assert_eq!(digest, manifest_digest(&t.path().join("o")));

    let out = run(nixoci()
        .arg("inspect")
        .arg(t.path().join("o"))
        .arg("--json"));
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected[0]["tag"], "latest");
    assert_eq!(
        inspected[0]["images"][0]["platform"]["architecture"],
        "amd64"
    );
    assert_eq!(
        inspected[0]["images"][0]["entrypoint"],
        json!(["/bin/tool"])
    );
    let text =
        String::from_utf8(run(nixoci().arg("inspect").arg(t.path().join("o"))).stdout).unwrap();
    assert!(text.starts_with(&format!("latest  {digest}")), "{text}");
    assert!(text.contains("linux/amd64"), "{text}");
}

#[test]
fn two_platforms_make_an_index() {
    let t = tempfile::tempdir().unwrap();
    two_platform_layout(t.path(), "out");
    let index = read_json(&t.path().join("out/index.json"));
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let nested = read_json(&blob_path(
        &t.path().join("out"),
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let archs: Vec<_> = nested["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].clone())
        .collect();
    assert_eq!(archs, vec![json!("amd64"), json!("arm64")]);
    run(nixoci().arg("verify").arg(t.path().join("out")));
}

// ---- bad input: non-zero exit, a message naming the problem, nothing left behind ----

/// Build `spec` (written into a fresh dir) into `parent/out`; expect failure
/// whose stderr contains every one of `needles`, and an empty `parent`.
fn expect_build_error(t: &Path, spec_text: &str, needles: &[&str]) {
    let spec = t.join("spec.json");
    fs::write(&spec, spec_text).unwrap();
    let parent = t.join("parent");
    fs::create_dir_all(&parent).unwrap();
    let err = run_fail(
        nixoci()
            .arg("build")
            .arg(&spec)
            .arg("-o")
            .arg(parent.join("out")),
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    let left: Vec<_> = fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn layer_spec(files: serde_json::Value) -> String {
    json!({"layers": [{"files": files}]}).to_string()
}

#[test]
fn error_missing_source() {
    let t = tempfile::tempdir().unwrap();
    expect_build_error(
        t.path(),
        &layer_spec(json!([{"source": "nope/file", "destination": "/x"}])),
        &["nope/file", "does not exist", "spec.json"],
    );
}

#[test]
fn error_relative_destination() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    expect_build_error(
        t.path(),
        &layer_spec(json!([{"source": "f", "destination": "etc/x"}])),
        &["\"etc/x\"", "absolute"],
    );
}

#[test]
fn error_dotdot_destination() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    expect_build_error(
        t.path(),
        &layer_spec(json!([{"source": "f", "destination": "/etc/../x"}])),
        &["/etc/../x", "'..'"],
    );
}

#[test]
fn error_nul_in_destination() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    expect_build_error(
        t.path(),
        &layer_spec(json!([{"source": "f", "destination": "/a\u{0}b"}])),
        &["NUL"],
    );
}

#[test]
fn error_conflicting_destinations() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "one", b"1", 0o644);
    file(t.path(), "two", b"2", 0o644);
    expect_build_error(
        t.path(),
        &layer_spec(
            json!([{"source": "one", "destination": "/etc/x"}, {"source": "two", "destination": "/etc/x"}]),
        ),
        &["/etc/x", "one", "two", "different content"],
    );
}

#[test]
fn error_unknown_field() {
    let t = tempfile::tempdir().unwrap();
    expect_build_error(
        t.path(),
        r#"{"layers": [], "tagz": ["x"]}"#,
        &["spec.json", "unknown field `tagz`"],
    );
}

#[test]
fn error_malformed_json() {
    let t = tempfile::tempdir().unwrap();
    expect_build_error(
        t.path(),
        r#"{"layers": [}"#,
        &["spec.json", "invalid JSON", "line 1"],
    );
}

#[test]
fn error_unreadable_file() {
    // Root reads anything, so the tool runs as nobody on a file it may not read.
    require("setpriv");
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o777)).unwrap();
    file(t.path(), "secret", b"x", 0o000);
    let spec = t.path().join("spec.json");
    fs::write(
        &spec,
        layer_spec(json!([{"source": "secret", "destination": "/secret"}])),
    )
    .unwrap();
    let parent = t.path().join("parent");
    fs::create_dir_all(&parent).unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).unwrap();
    let err = run_fail(
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_nixoci"))
            .arg("build")
            .arg(&spec)
            .arg("-o")
            .arg(parent.join("out")),
    );
    assert!(
        err.contains("secret") && err.contains("Permission denied"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(&parent).unwrap().count(),
        0,
        "nothing left behind"
    );
}

#[test]
fn error_output_exists_unless_forced() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    let spec = t.path().join("s.json");
    fs::write(
        &spec,
        layer_spec(json!([{"source": "f", "destination": "/f"}])),
    )
    .unwrap();
    let out = t.path().join("out");
    build(&spec, &out);
    let err = run_fail(nixoci().arg("build").arg(&spec).arg("-o").arg(&out));
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    run(nixoci()
        .arg("build")
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .arg("--force"));
    run(nixoci().arg("verify").arg(&out));
}

#[test]
fn error_write_through_symlink() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    std::os::unix::fs::symlink("/usr/bin", t.path().join("l")).unwrap();
    expect_build_error(
        t.path(),
        &layer_spec(
            json!([{"source": "l", "destination": "/bin"}, {"source": "f", "destination": "/bin/f"}]),
        ),
        &["/bin/f", "symlink"],
    );
}

// ---- verify catches each breakage a hand-edited or damaged layout can have ----

fn good_layout(t: &Path) -> std::path::PathBuf {
    file(t, "in/bin/x", b"#!/bin/sh\n", 0o755);
    file(t, "in/etc/y", b"y\n", 0o644);
    let spec = t.join("s.json");
    write_json(
        &spec,
        &json!({"layers": [{"files": [{"source": "in", "destination": "/"}]}], "architecture": "amd64"}),
    );
    let out = build(&spec, &t.join("out"));
    run(nixoci().arg("verify").arg(&out));
    out
}

fn verify_problems(layout: &Path) -> String {
    let out = nixoci().arg("verify").arg(layout).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify must exit 1 on a broken layout"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn manifest_of(layout: &Path) -> serde_json::Value {
    read_json(&blob_path(layout, &manifest_digest(layout)))
}

#[test]
fn verify_catches_corrupt_blob() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    let layer = blob_path(
        &out,
        manifest_of(&out)["layers"][0]["digest"].as_str().unwrap(),
    );
    let mut bytes = fs::read(&layer).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&layer, bytes).unwrap();
    assert!(verify_problems(&out).contains("digest mismatch"));
}

#[test]
fn verify_catches_size_off_by_one() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    let mut index = read_json(&out.join("index.json"));
    let size = index["manifests"][0]["size"].as_u64().unwrap();
    index["manifests"][0]["size"] = json!(size + 1);
    write_json(&out.join("index.json"), &index);
    let err = verify_problems(&out);
    assert!(
        err.contains("size mismatch") && err.contains(&format!("{}", size + 1)),
        "{err}"
    );
}

#[test]
fn verify_catches_wrong_diff_id() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    // Rewrite the config with a wrong diff_id, and the chain above it, so
    // every digest is right and only the diff_id is wrong.
    let mut manifest = manifest_of(&out);
    let mut config = read_json(&blob_path(
        &out,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    config["rootfs"]["diff_ids"][0] = json!(format!("sha256:{}", "0".repeat(64)));
    let put = |v: &serde_json::Value| {
        let bytes = serde_json::to_vec(v).unwrap();
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        );
        fs::write(blob_path(&out, &digest), &bytes).unwrap();
        (digest, bytes.len())
    };
    let (cd, cs) = put(&config);
    manifest["config"]["digest"] = json!(cd);
    manifest["config"]["size"] = json!(cs);
    let (md, ms) = put(&manifest);
    let mut index = read_json(&out.join("index.json"));
    index["manifests"][0]["digest"] = json!(md);
    index["manifests"][0]["size"] = json!(ms);
    write_json(&out.join("index.json"), &index);
    let err = verify_problems(&out);
    assert!(err.contains("diff_id mismatch"), "{err}");
    assert!(
        !err.contains("digest mismatch"),
        "only the diff_id is wrong: {err}"
    );
}

#[test]
fn verify_catches_missing_oci_layout() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    fs::remove_file(out.join("oci-layout")).unwrap();
    assert!(verify_problems(&out).contains("oci-layout"));
}

#[test]
fn verify_catches_missing_blob() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    let config = manifest_of(&out)["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::remove_file(blob_path(&out, &config)).unwrap();
    let err = verify_problems(&out);
    assert!(err.contains("missing") && err.contains(&config), "{err}");
}

#[test]
fn verify_catches_gzip_layer_labelled_plain_tar_and_reports_all_problems() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    // Relabel the layer (manifest rewritten so its own digest is right) and
    // also remove oci-layout: both must be reported.
    let mut manifest = manifest_of(&out);
    manifest["layers"][0]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    fs::write(blob_path(&out, &digest), &bytes).unwrap();
    let mut index = read_json(&out.join("index.json"));
    index["manifests"][0]["digest"] = json!(digest);
    index["manifests"][0]["size"] = json!(bytes.len());
    write_json(&out.join("index.json"), &index);
    fs::remove_file(out.join("oci-layout")).unwrap();
    let err = verify_problems(&out);
    assert!(err.contains("gzip-compressed but the media type"), "{err}");
    assert!(err.contains("oci-layout"), "{err}");
    assert!(err.contains("2 problems found"), "{err}");
}

// ---- safety and validation added after review ----

#[test]
fn force_never_deletes_sources_inside_the_output() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "work/src/p", b"precious\n", 0o644);
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({"files": [{"source": "work/src", "destination": "/x"}]}),
    );
    let err = run_fail(
        nixoci()
            .arg("layer")
            .arg(&spec)
            .arg("-o")
            .arg(t.path().join("work"))
            .arg("--force"),
    );
    assert!(err.contains("inside (or is) the output"), "{err}");
    assert_eq!(
        fs::read(t.path().join("work/src/p")).unwrap(),
        b"precious\n"
    );
    // Nor the spec itself.
    file(t.path(), "work2/s.json", b"{\"files\": []}", 0o644);
    let err = run_fail(
        nixoci()
            .arg("layer")
            .arg(t.path().join("work2/s.json"))
            .arg("-o")
            .arg(t.path().join("work2"))
            .arg("--force"),
    );
    assert!(err.contains("inside (or is) the output"), "{err}");
    assert!(t.path().join("work2/s.json").exists());
}

#[test]
fn output_inside_a_source_is_refused() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "tree/f", b"x", 0o644);
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({"files": [{"source": "tree", "destination": "/"}]}),
    );
    let err = run_fail(
        nixoci()
            .arg("layer")
            .arg(&spec)
            .arg("-o")
            .arg(t.path().join("tree/out")),
    );
    assert!(
        err.contains(&format!(
            "the output {} is inside the input {}",
            t.path().join("tree/out").display(),
            t.path().join("tree").display()
        )),
        "{err}"
    );
    assert!(!t.path().join("tree/out").exists());
}

#[test]
fn failed_build_removes_the_parent_directories_it_created() {
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({"layers": [{"files": [{"source": "missing", "destination": "/x"}]}]}),
    );
    run_fail(
        nixoci()
            .arg("build")
            .arg(&spec)
            .arg("-o")
            .arg(t.path().join("new/a/b/out")),
    );
    assert!(
        !t.path().join("new").exists(),
        "created parents left behind"
    );
}

#[test]
fn interrupted_build_leaves_nothing_behind() {
    let t = tempfile::tempdir().unwrap();
    // A sparse 4 GB file: seconds of compression, no disk space.
    fs::create_dir_all(t.path().join("in")).unwrap();
    fs::File::create(t.path().join("in/big"))
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({"files": [{"source": "in/big", "destination": "/big"}]}),
    );
    let parent = t.path().join("parent");
    let mut child = nixoci()
        .arg("layer")
        .arg(&spec)
        .arg("-o")
        .arg(parent.join("deeper/out"))
        .spawn()
        .unwrap();
    // Wait until it is writing, then interrupt it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !parent.join("deeper").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    run(std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string()));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exits 130 when interrupted");
    assert!(
        !parent.exists(),
        "left behind: {:?}",
        fs::read_dir(&parent).map(|d| d.count())
    );
}

#[test]
fn error_mode_as_a_number() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    expect_build_error(
        t.path(),
        &layer_spec(json!([{"source": "f", "destination": "/f", "mode": 755}])),
        &["files[0]", "mode must be an octal string"],
    );
}

#[test]
fn error_closure_entry_outside_the_store() {
    let t = tempfile::tempdir().unwrap();
    expect_build_error(
        t.path(),
        &json!({"layers": [{"closure": ["/etc/passwd"]}]}).to_string(),
        &["/etc/passwd", "is not a store path"],
    );
}

#[test]
fn error_image_without_layers() {
    let t = tempfile::tempdir().unwrap();
    expect_build_error(t.path(), r#"{"layers": []}"#, &["at least one layer"]);
}

#[test]
fn error_impossible_created_time() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    expect_build_error(
        t.path(),
        &json!({"layers": [{"files": [{"source": "f", "destination": "/f"}]}], "created": "2024-13-45T99:00:00Z"}).to_string(),
        &["2024-13-45T99:00:00Z", "RFC 3339"],
    );
}

#[test]
fn layout_annotations_of_a_single_manifest_go_on_index_json() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    write_json(
        &t.path().join("m.json"),
        &json!({"layers": [{"files": [{"source": "f", "destination": "/f"}]}]}),
    );
    run(nixoci()
        .arg("manifest")
        .arg(t.path().join("m.json"))
        .arg("-o")
        .arg(t.path().join("M"))
        .arg("-q"));
    write_json(
        &t.path().join("l.json"),
        &json!({"manifests": ["M"], "annotations": {"a": "b"}}),
    );
    run(nixoci()
        .arg("layout")
        .arg(t.path().join("l.json"))
        .arg("-o")
        .arg(t.path().join("O"))
        .arg("-q"));
    assert_eq!(
        read_json(&t.path().join("O/index.json"))["annotations"],
        json!({"a": "b"})
    );
    run(nixoci().arg("verify").arg(t.path().join("O")));
}

#[test]
fn verify_does_not_hang_on_devices_fifos_or_huge_files() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    // The manifest blob becomes /dev/zero, index.json a FIFO in a copy.
    let manifest = blob_path(&out, &manifest_digest(&out));
    fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
    let err = verify_problems(&out);
    assert!(err.contains("not a regular file"), "{err}");
    fs::remove_file(out.join("index.json")).unwrap();
    run(std::process::Command::new("mkfifo").arg(out.join("index.json")));
    let err = verify_problems(&out);
    assert!(
        err.contains("index.json") && err.contains("not a regular file"),
        "{err}"
    );
    let inspect = run_fail(nixoci().arg("inspect").arg(&out));
    assert!(inspect.contains("not a regular file"), "{inspect}");
}

#[test]
fn verify_catches_one_name_for_two_manifests() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    // A second image, its blobs copied in, named "latest" too.
    file(t.path(), "other/f", b"other\n", 0o644);
    let spec = t.path().join("other.json");
    write_json(
        &spec,
        &json!({"layers": [{"files": [{"source": "other", "destination": "/"}]}], "architecture": "amd64"}),
    );
    let other = build(&spec, &t.path().join("other-out"));
    for (name, bytes) in blobs(&other) {
        fs::write(out.join("blobs/sha256").join(name), bytes).unwrap();
    }
    let mut index = read_json(&out.join("index.json"));
    let second = read_json(&other.join("index.json"))["manifests"][0].clone();
    index["manifests"].as_array_mut().unwrap().push(second);
    write_json(&out.join("index.json"), &index);
    let err = verify_problems(&out);
    assert!(
        err.contains("\"latest\" is given to two different manifests"),
        "{err}"
    );
}

/// Parallel compression cuts the stream into blocks that do not depend on
/// the thread count: the same bytes at 1, 2 and 16 threads.
#[test]
fn same_bytes_at_any_thread_count() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    make_fixture(&input, FixtureOptions::default());
    // More than a few 1 MiB blocks, compressible.
    let text: Vec<u8> = (0..6_000_000u32)
        .map(|i| b"nix store layer oci\n"[(i % 20) as usize] ^ (i % 251 == 0) as u8)
        .collect();
    fs::write(input.join("share/text"), text).unwrap();
    for (compression, level) in [("gzip", None), ("gzip", Some(9)), ("zstd", None)] {
        let mut all = Vec::new();
        for threads in ["1", "2", "16"] {
            let mut layer = json!({"files": [{"source": "in", "destination": "/"}], "compression": compression});
            if let Some(l) = level {
                layer["level"] = json!(l);
            }
            let spec = t.path().join("s.json");
            write_json(&spec, &layer);
            let out = t.path().join(format!("{compression}-{level:?}-{threads}"));
            run(nixoci().arg("layer").arg(&spec).arg("-o").arg(&out).args([
                "--threads",
                threads,
                "-q",
            ]));
            all.push(blobs(&out));
        }
        assert_eq!(all[0], all[1], "{compression} {level:?}: 1 vs 2 threads");
        assert_eq!(all[0], all[2], "{compression} {level:?}: 1 vs 16 threads");
    }
}

#[test]
fn error_level_out_of_range() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    expect_build_error(
        t.path(),
        &json!({"layers": [{"files": [{"source": "f", "destination": "/f"}], "level": 12}]})
            .to_string(),
        &["layers[0]", "level 12 is out of range for gzip"],
    );
}

// ---- issue "Defects found trying nixoci as a new user would" (build side) ----

const INPUT_IN_OUTPUT: &str = "is inside (or is) the output";

/// A layer directory at `t/rel` holding one small file.
fn small_layer(t: &Path, rel: &str) -> std::path::PathBuf {
    file(t, "data/f", b"layer content\n", 0o644);
    let spec = t.join(format!("{}.layer.json", rel.replace('/', "_")));
    write_json(
        &spec,
        &json!({"files": [{"source": t.join("data/f"), "destination": "/f"}]}),
    );
    let out = t.join(rel);
    run(nixoci()
        .arg("layer")
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .arg("-q"));
    out
}

/// Run `cmd` (it must fail naming an input inside the output) and check
/// that every path of `kept` still exists.
fn expect_inputs_kept(cmd: &mut std::process::Command, kept: &[&Path]) {
    let err = run_fail(cmd);
    assert!(
        err.contains(INPUT_IN_OUTPUT) || err.contains("is inside the input"),
        "{err}"
    );
    for k in kept {
        assert!(k.exists(), "{} was deleted; stderr: {err}", k.display());
    }
}

/// `manifest`, `config` and `build` over a layer directory inside the
/// output: named relatively, absolutely, through a symlink, and as the
/// output itself.
#[test]
fn force_keeps_layer_directories_of_manifest_config_and_build() {
    let t = tempfile::tempdir().unwrap();
    let t = &fs::canonicalize(t.path()).unwrap();
    let layer = small_layer(t, "out/L");
    std::os::unix::fs::symlink(t.join("out"), t.join("link")).unwrap();
    let names = [
        json!("out/L"),
        json!(layer),
        json!("link/L"),
        json!(t.join("link/L")),
    ];
    for cmd in ["manifest", "config", "build"] {
        for name in &names {
            let spec = t.join("m.json");
            write_json(&spec, &json!({"layers": [name], "architecture": "amd64"}));
            // Replacing `link` deletes the symlink only: an input named
            // through it is affected, one named otherwise is not.
            let through_link = name.as_str().is_some_and(|n| n.contains("link"));
            let mut outs = vec![t.join("out"), layer.clone()];
            if through_link {
                outs.push(t.join("link"));
            }
            for out in outs {
                expect_inputs_kept(
                    nixoci()
                        .arg(cmd)
                        .arg(&spec)
                        .arg("-o")
                        .arg(&out)
                        .arg("--force"),
                    &[&layer.join("layer.json")],
                );
            }
        }
        // From the spec's directory, with `-o $PWD/out`.
        expect_inputs_kept(
            nixoci()
                .current_dir(t)
                .arg(cmd)
                .arg("m.json")
                .arg("-o")
                .arg(t.join("out"))
                .arg("--force"),
            &[&layer.join("layer.json")],
        );
    }
    // An image config directory (and the layer directory its blobs are in).
    let cfg_spec = t.join("c.json");
    write_json(
        &cfg_spec,
        &json!({"layers": [t.join("other/L2")], "architecture": "amd64"}),
    );
    let layer2 = small_layer(t, "other/L2");
    run(nixoci()
        .arg("config")
        .arg(&cfg_spec)
        .arg("-o")
        .arg(t.join("cfgs/C"))
        .arg("-q"));
    let spec = t.join("m2.json");
    write_json(&spec, &json!({"imageConfig": "cfgs/C"}));
    for out in [t.join("cfgs"), t.join("other")] {
        expect_inputs_kept(
            nixoci()
                .arg("manifest")
                .arg(&spec)
                .arg("-o")
                .arg(&out)
                .arg("--force"),
            &[&t.join("cfgs/C/config.json"), &layer2.join("layer.json")],
        );
    }
}

/// `layout` over a manifest directory (and its layer directory) inside the
/// output.
#[test]
fn force_keeps_manifest_directories_of_layout() {
    let t = tempfile::tempdir().unwrap();
    let t = &fs::canonicalize(t.path()).unwrap();
    let layer = small_layer(t, "layers/L");
    let mspec = t.join("m.json");
    write_json(&mspec, &json!({"layers": [layer], "architecture": "amd64"}));
    run(nixoci()
        .arg("manifest")
        .arg(&mspec)
        .arg("-o")
        .arg(t.join("out/M"))
        .arg("-q"));
    let spec = t.join("layout.json");
    write_json(&spec, &json!({"manifests": ["out/M"]}));
    for out in [t.join("out"), t.join("out/M"), t.join("layers")] {
        expect_inputs_kept(
            nixoci()
                .arg("layout")
                .arg(&spec)
                .arg("-o")
                .arg(&out)
                .arg("--force"),
            &[&t.join("out/M/manifest.json"), &layer.join("layer.json")],
        );
    }
}

/// `layer` with a `base` directory, a closure file, or a source (also a
/// symlink source) inside the output.
#[test]
fn force_keeps_base_closure_and_sources_of_layer() {
    let t = tempfile::tempdir().unwrap();
    let t = &fs::canonicalize(t.path()).unwrap();
    let base = small_layer(t, "out/B");
    file(t, "out/graph", b"", 0o644);
    file(t, "out/src/p", b"precious\n", 0o644);
    std::os::unix::fs::symlink("/etc/hostname", t.join("out/link")).unwrap();
    let f = t.join("data/f");
    for (spec_doc, kept) in [
        (
            json!({"files": [{"source": f, "destination": "/f"}], "base": ["out/B"]}),
            base.join("layer.json"),
        ),
        (
            json!({"files": [{"source": f, "destination": "/f"}], "closure": {"file": "out/graph"}}),
            t.join("out/graph"),
        ),
        (
            json!({"files": [{"source": "./out/src/", "destination": "/x"}]}),
            t.join("out/src/p"),
        ),
        (
            json!({"files": [{"source": "out/link", "destination": "/l"}]}),
            t.join("out/link"),
        ),
    ] {
        let spec = t.join("s.json");
        write_json(&spec, &spec_doc);
        expect_inputs_kept(
            nixoci()
                .arg("layer")
                .arg(&spec)
                .arg("-o")
                .arg(t.join("out"))
                .arg("--force"),
            &[&kept],
        );
    }
}

/// `unpack img "$PWD" --force` in the directory holding `img`, and the
/// layout as its own output.
#[test]
fn force_keeps_the_layout_of_unpack() {
    let t = tempfile::tempdir().unwrap();
    let t = &fs::canonicalize(t.path()).unwrap();
    let work = t.join("work");
    let layout = good_layout(&work);
    file(&work, "other", b"unrelated\n", 0o644);
    for out in [work.clone(), layout.clone(), layout.join("blobs")] {
        expect_inputs_kept(
            nixoci()
                .current_dir(&work)
                .arg("unpack")
                .arg(layout.file_name().unwrap())
                .arg(&out)
                .arg("--force"),
            &[&layout.join("index.json"), &work.join("other")],
        );
    }
    run(nixoci().arg("verify").arg(&layout));
}

/// `archive -o FILE` where FILE is the layout, or a file inside it.
#[test]
fn archive_never_replaces_its_layout() {
    let t = tempfile::tempdir().unwrap();
    let layout = good_layout(t.path());
    let index = fs::read(layout.join("index.json")).unwrap();
    for out in [layout.join("index.json"), layout.clone()] {
        let err = run_fail(nixoci().arg("archive").arg(&layout).arg("-o").arg(&out));
        assert!(
            err.contains(INPUT_IN_OUTPUT) || err.contains("is inside the input"),
            "{err}"
        );
    }
    assert_eq!(fs::read(layout.join("index.json")).unwrap(), index);
    run(nixoci().arg("verify").arg(&layout));
}

/// A relative source without destination is refused whatever the spec's
/// own name: relative, absolute, standard input, a Nix builder's attrs.
#[test]
fn relative_source_without_destination_whatever_the_spec_is_called() {
    let t = tempfile::tempdir().unwrap();
    let t = &fs::canonicalize(t.path()).unwrap();
    file(t, "x/other", b"o\n", 0o644);
    let doc = json!({"layers": [{"files": [{"source": "other"}]}], "architecture": "amd64"});
    write_json(&t.join("x/s.json"), &doc);
    let needles = [
        "files[0]",
        "\"other\"",
        "a relative source needs a destination",
    ];
    let check = |err: String| {
        for n in needles {
            assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
        }
    };
    check(run_fail(
        nixoci()
            .current_dir(t.join("x"))
            .args(["build", "s.json", "-o", "out"]),
    ));
    check(run_fail(
        nixoci()
            .current_dir("/")
            .arg("build")
            .arg(t.join("x/s.json"))
            .arg("-o")
            .arg(t.join("o")),
    ));
    assert!(!t.join("o").exists());
    // Standard input.
    let mut child = nixoci()
        .current_dir(t.join("x"))
        .args(["build", "-", "-o", "out"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    check(String::from_utf8_lossy(&out.stderr).into_owned());
    // A Nix builder: the attrs file is named absolutely.
    write_json(
        &t.join("x/.attrs.json"),
        &json!({"command": "layer", "spec": {"files": [{"source": "other"}]},
                "outputs": {"out": t.join("nixout")}}),
    );
    check(run_fail(
        nixoci()
            .current_dir("/")
            .env("NIX_ATTRS_JSON_FILE", t.join("x/.attrs.json"))
            .arg("nix-builder"),
    ));
    assert!(!t.join("nixout").exists());
}

/// Sources whose path in the layer has a `.wh.` component would be OCI
/// whiteouts: refused, from a file, a directory walk or a destination.
#[test]
fn whiteout_names_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let t = &fs::canonicalize(t.path()).unwrap();
    file(t, "plain", b"x\n", 0o644);
    file(t, ".wh.file", b"x\n", 0o644);
    file(t, "tree/sub/.wh.hidden", b"x\n", 0o644);
    file(t, "tree2/.wh..wh..opq/f", b"x\n", 0o644);
    for (files, path, source) in [
        (
            json!([{"source": ".wh.file", "destination": "/etc/"}]),
            "/etc/.wh.file",
            t.join(".wh.file"),
        ),
        (
            json!([{"source": t.join(".wh.file")}]),
            &*format!("{}/.wh.file", t.display()),
            t.join(".wh.file"),
        ),
        (
            json!([{"source": "tree", "destination": "/opt"}]),
            "/opt/sub/.wh.hidden",
            t.join("tree/sub/.wh.hidden"),
        ),
        (
            json!([{"source": "tree2", "destination": "/opt"}]),
            "/opt/.wh..wh..opq",
            t.join("tree2/.wh..wh..opq"),
        ),
        (
            json!([{"source": "plain", "destination": "/etc/.wh.passwd"}]),
            "/etc/.wh.passwd",
            t.join("plain"),
        ),
        (
            json!([{"source": "plain", "destination": "/.wh.etc/x"}]),
            "/.wh.etc/x",
            t.join("plain"),
        ),
    ] {
        let spec = t.join("s.json");
        write_json(&spec, &json!({"files": files}));
        let err = run_fail(
            nixoci()
                .arg("layer")
                .arg(&spec)
                .arg("-o")
                .arg(t.join("out")),
        );
        for n in [path, &*source.display().to_string(), "whiteout"] {
            assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
        }
        assert!(!t.join("out").exists());
    }
    // `.wh` alone, or `x.wh.y`, is an ordinary name.
    file(t, "ok/.wh", b"x\n", 0o644);
    file(t, "ok/a.wh.b", b"x\n", 0o644);
    let spec = t.join("ok.json");
    write_json(
        &spec,
        &json!({"files": [{"source": "ok", "destination": "/ok"}]}),
    );
    run(nixoci()
        .arg("layer")
        .arg(&spec)
        .arg("-o")
        .arg(t.join("ok-out")));
}

/// A huge `NIX_BUILD_CORES` is an error naming it, not a panic, and leaves
/// nothing behind.
#[test]
fn huge_nix_build_cores_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({"files": [{"source": "f", "destination": "/f"}]}),
    );
    let parent = t.path().join("parent");
    fs::create_dir(&parent).unwrap();
    for cores in ["99999", "many"] {
        let out = nixoci()
            .env("NIX_BUILD_CORES", cores)
            .arg("layer")
            .arg(&spec)
            .arg("-o")
            .arg(parent.join("o"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("NIX_BUILD_CORES") && err.contains("--threads"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&parent).unwrap().count(), 0, "left behind");
    }
    // --threads still wins, and 0 means all cores.
    run(nixoci()
        .env("NIX_BUILD_CORES", "99999")
        .arg("layer")
        .arg(&spec)
        .arg("-o")
        .arg(parent.join("a"))
        .args(["--threads", "2"]));
    run(nixoci()
        .env("NIX_BUILD_CORES", "0")
        .arg("layer")
        .arg(&spec)
        .arg("-o")
        .arg(parent.join("b")));
}

/// `--level` out of range is the command line's mistake, not the spec's.
#[test]
fn error_level_from_the_command_line_names_the_option() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    let spec = t.path().join("spec.json");
    write_json(
        &spec,
        &json!({"layers": [{"files": [{"source": "f", "destination": "/f"}]}]}),
    );
    // Outside every compression's range: a usage error (exit 2), as
    // `--level -1` or `--level x` are.
    for level in ["0", "20", "-1"] {
        let out = nixoci()
            .arg("build")
            .arg(&spec)
            .arg("-o")
            .arg(t.path().join("o"))
            .args(["--level", level])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--level {level}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--level"));
    }
    // A zstd level the layer's gzip lacks: an error naming the option.
    let err = run_fail(
        nixoci()
            .arg("build")
            .arg(&spec)
            .arg("-o")
            .arg(t.path().join("o"))
            .args(["--level", "10"]),
    );
    assert!(
        err.starts_with("error: --level: level 10 is out of range for gzip (1-9)"),
        "{err}"
    );
    assert!(!t.path().join("o").exists());
}

/// `"compression": null` (or an unknown name) gets our message, not
/// serde's "expected value".
#[test]
fn error_compression_null_or_unknown() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    for (value, shown) in [
        (json!(null), "null"),
        (json!("lz4"), "\"lz4\""),
        (json!(1), "1"),
    ] {
        let layer = json!({"files": [{"source": "f", "destination": "/f"}], "compression": value});
        expect_build_error(
            t.path(),
            &json!({"layers": [layer]}).to_string(),
            &[
                "spec.json",
                &format!("compression must be \"gzip\", \"zstd\" or \"none\", not {shown}"),
            ],
        );
        let spec = t.path().join("layer.json");
        write_json(&spec, &layer);
        let err = run_fail(
            nixoci()
                .arg("layer")
                .arg(&spec)
                .arg("-o")
                .arg(t.path().join("o")),
        );
        assert!(err.contains("compression must be"), "{err}");
        assert!(!err.contains("invalid JSON"), "{err}");
    }
}

/// A key twice in one object is refused at every level of every spec kind
/// and of the building blocks' files, naming the key and where it is.
#[test]
fn error_duplicate_keys_anywhere() {
    let t = tempfile::tempdir().unwrap();
    let t = &fs::canonicalize(t.path()).unwrap();
    file(t, "f", b"x", 0o644);
    let f = r#"{"source": "f", "destination": "/a"}"#;
    // (command, spec text, key, where)
    let cases = [
        (
            "build",
            r#"{"layers": [{"files": [{"source": "f", "destination": "/a", "destination": "/b"}]}]}"#
                .to_owned(),
            "destination",
            "in layers[0].files[0]",
        ),
        (
            "build",
            format!(
                r#"{{"layers": [{{"files": [{f}], "compression": "gzip", "compression": "zstd"}}]}}"#
            ),
            "compression",
            "in layers[0]",
        ),
        (
            "build",
            format!(
                r#"{{"layers": [{{"files": [{f}], "closure": {{"file": "g", "file": "h"}}}}]}}"#
            ),
            "file",
            "in layers[0].closure",
        ),
        (
            "build",
            format!(
                r#"{{"layers": [{{"files": [{f}]}}], "extraConfig": {{"config": {{"User": "a", "User": "b"}}}}}}"#
            ),
            "User",
            "in extraConfig.config",
        ),
        (
            "build",
            format!(
                r#"{{"layers": [{{"files": [{f}]}}], "config": {{"Env": ["A=1"], "Env": []}}}}"#
            ),
            "Env",
            "in config",
        ),
        (
            "build",
            format!(r#"{{"layers": [{{"files": [{f}]}}], "tags": ["a"], "tags": ["b"]}}"#),
            "tags",
            "at the top level",
        ),
        (
            "layer",
            r#"{"files": [{"source": "f", "source": "g", "destination": "/a"}]}"#.to_owned(),
            "source",
            "in files[0]",
        ),
        (
            "layout",
            r#"{"manifests": ["m"], "extraIndex": {"annotations": {"k": "1", "k": "2"}}}"#
                .to_owned(),
            "k",
            "in extraIndex.annotations",
        ),
    ];
    for (cmd, text, key, place) in &cases {
        let spec = t.join("spec.json");
        fs::write(&spec, text).unwrap();
        let err = run_fail(nixoci().arg(cmd).arg(&spec).arg("-o").arg(t.join("o")));
        let want = format!("duplicate key {key:?} {place}");
        assert!(
            err.contains(&want) && err.contains("spec.json"),
            "{want}:\n{err}"
        );
        assert!(!t.join("o").exists());
    }
    // A building block's file: layer.json of a layer directory.
    let layer = small_layer(t, "L");
    let text = fs::read_to_string(layer.join("layer.json")).unwrap();
    let doubled = text.replacen("\"size\":", "\"size\":1,\"size\":", 1);
    fs::write(layer.join("layer.json"), doubled).unwrap();
    let spec = t.join("m.json");
    write_json(&spec, &json!({"layers": ["L"]}));
    let err = run_fail(
        nixoci()
            .arg("manifest")
            .arg(&spec)
            .arg("-o")
            .arg(t.join("o")),
    );
    assert!(
        err.contains("duplicate key \"size\" at the top level"),
        "{err}"
    );
    assert!(err.contains("layer.json"), "{err}");
    // A Nix builder's attrs.
    fs::write(
        t.join(".attrs.json"),
        format!(
            r#"{{"command": "layer", "spec": {{"files": [{{"source": "{}", "destination": "/a", "destination": "/b"}}]}}, "outputs": {{"out": "{}"}}}}"#,
            t.join("f").display(),
            t.join("nixout").display()
        ),
    )
    .unwrap();
    let err = run_fail(
        nixoci()
            .env("NIX_ATTRS_JSON_FILE", t.join(".attrs.json"))
            .arg("nix-builder"),
    );
    assert!(
        err.contains("duplicate key \"destination\" in spec.files[0]"),
        "{err}"
    );
}

/// A Nix builder's attrs with a command nixoci does not have: the error
/// names the attrs file and every command the builder takes (archive was
/// once left out of the list), and nothing is written.
#[test]
fn nix_builder_unknown_command_names_the_attrs_file_and_the_commands() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    let attrs = t.join(".attrs.json");
    write_json(
        &attrs,
        &json!({"command": "image", "spec": {}, "outputs": {"out": t.join("nixout")}}),
    );
    let err = run_fail(
        nixoci()
            .env("NIX_ATTRS_JSON_FILE", &attrs)
            .arg("nix-builder"),
    );
    assert!(err.contains("unknown command \"image\""), "{err}");
    assert!(err.contains(&attrs.display().to_string()), "{err}");
    assert!(
        err.contains("expected layer, layers, config, manifest, layout, archive, verify or script"),
        "{err}"
    );
    assert!(!t.join("nixout").exists());
}

/// A one-layer image spec with `extra` merged into it.
fn image_with(t: &Path, extra: serde_json::Value) -> std::path::PathBuf {
    file(t, "in/f", b"x\n", 0o644);
    let mut spec = json!({"layers": [{"files": [{"source": "in", "destination": "/"}]}], "architecture": "amd64"});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let path = t.join("spec.json");
    write_json(&path, &spec);
    path
}

/// Replace the config of `layout`'s only image with `edit`ed JSON, and
/// re-digest the manifest and `index.json`: a layout as another tool could
/// write it.
fn edit_config(layout: &Path, edit: impl Fn(&mut serde_json::Value)) {
    use nixoci::oci::Sha256Digest;
    let mut index = read_json(&layout.join("index.json"));
    let manifest_path = blob_path(layout, index["manifests"][0]["digest"].as_str().unwrap());
    let mut manifest = read_json(&manifest_path);
    let mut config = read_json(&blob_path(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    edit(&mut config);
    let put = |bytes: Vec<u8>| -> (String, usize) {
        let d = Sha256Digest::of(&bytes).to_string();
        fs::write(blob_path(layout, &d), &bytes).unwrap();
        (d, bytes.len())
    };
    let (d, n) = put(serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(d);
    manifest["config"]["size"] = json!(n);
    let (d, n) = put(serde_json::to_vec(&manifest).unwrap());
    index["manifests"][0]["digest"] = json!(d);
    index["manifests"][0]["size"] = json!(n);
    write_json(&layout.join("index.json"), &index);
}

/// Whether the strict consumers accept a layout: skopeo reads the config,
/// umoci unpacks it.
fn consumers_accept(layout: &Path) -> Result<(), String> {
    let skopeo = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:latest", layout.display()))
        .output()
        .unwrap();
    if !skopeo.status.success() {
        return Err(String::from_utf8_lossy(&skopeo.stderr).into_owned());
    }
    let bundle = layout.with_extension("bundle");
    let umoci = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&bundle);
    if !umoci.status.success() {
        return Err(String::from_utf8_lossy(&umoci.stderr).into_owned());
    }
    Ok(())
}

/// What nixoci accepts in `extraConfig`, skopeo and umoci accept too.
#[test]
fn valid_extra_config_is_accepted_by_skopeo_and_umoci() {
    require("skopeo");
    require("umoci");
    for (i, extra) in [
        json!({"created": "2024-01-31T12:00:00.123+02:00", "author": "me"}),
        json!({"history": [{"created": "2024-01-31T12:00:00Z", "created_by": "step", "comment": "c", "empty_layer": false}]}),
        json!({"config": {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000i64, "Retries": 3}, "ArgsEscaped": true, "Labels": {"a": "b"}, "Env": null, "Shell": ["/bin/sh", "-c"]}}),
        json!({"os.version": "1", "os.features": ["f"], "variant": "v1", "com.example.unknown": {"kept": [1, "x"]}}),
    ]
    .into_iter()
    .enumerate()
    {
        let t = tempfile::tempdir().unwrap();
        let spec = image_with(t.path(), json!({"extraConfig": extra}));
        let layout = build(&spec, &t.path().join(format!("out{i}")));
        run(nixoci().arg("verify").arg(&layout));
        consumers_accept(&layout).unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
}

/// Issue 21: a key of `extraConfig`, `extraManifest` or `extraIndex` that
/// neither the OCI image spec nor Docker defines there is refused, with the
/// nearest known name; an extension in reverse-domain notation is kept.
#[test]
fn unknown_extra_keys_are_refused_with_the_nearest_name() {
    let t = tempfile::tempdir().unwrap();
    for (i, (extra, message)) in [
        (
            json!({"extraConfig": {"Healthcheck": {"Test": ["NONE"]}}}),
            "extraConfig.Healthcheck is not a field the OCI image spec or Docker defines there; did you mean extraConfig.config.Healthcheck?",
        ),
        (
            json!({"extraConfig": {"config": {"Entrypiont": ["/bin/sh"]}}}),
            "did you mean extraConfig.config.Entrypoint?",
        ),
        (
            json!({"extraManifest": {"artifactTyp": "a/b"}}),
            "did you mean extraManifest.artifactType?",
        ),
        (
            json!({"architecture": "x86_64"}),
            "architecture \"x86_64\" is the Nix (uname) name; OCI images and registries call it \"amd64\"",
        ),
        (
            json!({"config": {"WorkingDir": "app"}}),
            "config.WorkingDir must be an absolute path (runtimes refuse a relative working directory), not \"app\"",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let spec = image_with(t.path(), extra);
        let out = t.path().join(format!("out{i}"));
        let err = run_fail(nixoci().arg("build").arg(&spec).arg("-o").arg(&out));
        assert!(err.contains(message), "{err}");
        assert!(!out.exists());
    }
    let spec = image_with(
        t.path(),
        json!({"extraConfig": {"moby.buildkit.buildinfo.v1": "e30="}}),
    );
    let layout = build(&spec, &t.path().join("ok"));
    run(nixoci().arg("verify").arg(&layout));
}

/// Config documents strict consumers reject fail the build, naming the
/// field; the same document written by another tool fails `verify`, and
/// skopeo and umoci reject it too (so the check is theirs, not ours).
#[test]
fn invalid_config_fails_build_and_verify_naming_the_field() {
    require("skopeo");
    require("umoci");
    for (extra, field) in [
        (
            json!({"created": "garbage"}),
            "created must be an RFC 3339 time",
        ),
        (
            json!({"history": [{"created": "nope"}]}),
            "history[0].created must be an RFC 3339 time",
        ),
        (
            json!({"created": "1970-01-01t00:00:01z"}),
            "created must be an RFC 3339 time",
        ),
        (
            json!({"created": "2016-12-31T23:59:60Z"}),
            "created must be an RFC 3339 time",
        ),
        (json!({"created": 5}), "created must be an RFC 3339 time"),
        (
            json!({"history": {"created": "2024-01-31T12:00:00Z"}}),
            "history must be a list",
        ),
        (
            json!({"config": {"Env": "A=1"}}),
            "config.Env must be a list of strings",
        ),
        (
            json!({"config": {"Env": ["NOEQUALS"]}}),
            "config.Env[0] must be NAME=VALUE",
        ),
        (
            json!({"config": {"Env": ["A=1", "=x"]}}),
            "config.Env[1] must be NAME=VALUE",
        ),
        (
            json!({"config": {"Cmd": ["a", 1]}}),
            "config.Cmd[1] must be a string",
        ),
        (
            json!({"config": {"Labels": {"a": 1}}}),
            "config.Labels.a must be a string",
        ),
        (
            json!({"config": {"ExposedPorts": {"80/tcp": 1}}}),
            "config.ExposedPorts.80/tcp must be an object",
        ),
        (
            json!({"config": {"User": 0}}),
            "config.User must be a string",
        ),
        (
            json!({"config": {"Healthcheck": {"Interval": 1.5}}}),
            "config.Healthcheck.Interval must be an integer",
        ),
        (json!({"architecture": 1}), "architecture must be a string"),
    ] {
        let t = tempfile::tempdir().unwrap();
        let spec = image_with(t.path(), json!({"extraConfig": extra}));
        let err = run_fail(
            nixoci()
                .arg("build")
                .arg(&spec)
                .arg("-o")
                .arg(t.path().join("o")),
        );
        assert!(
            err.contains(field) && err.contains("extraConfig"),
            "{extra}: {err}"
        );
        assert!(!t.path().join("o").exists());

        let layout = good_layout(t.path());
        edit_config(&layout, |c| {
            for (k, v) in extra.as_object().unwrap() {
                if let (Some(slot @ serde_json::Value::Object(_)), Some(patch)) =
                    (c.get_mut(k), v.as_object())
                {
                    for (k2, v2) in patch {
                        slot[k2] = v2.clone();
                    }
                } else {
                    c[k] = v.clone();
                }
            }
        });
        let problems = verify_problems(&layout);
        assert!(problems.contains(field), "{extra}: {problems}");
        let refused = consumers_accept(&layout)
            .map(|()| "skopeo and umoci accept it")
            .unwrap_err();
        // Refused for the config's content (a time, a type, an Env
        // entry), not for anything else about the layout.
        assert!(
            [
                "parsing time",
                "cannot unmarshal",
                "environment variable must"
            ]
            .iter()
            .any(|why| refused.contains(why)),
            "{extra}: {refused}"
        );
    }
}

/// Manifests and indexes are checked the same way: `extraManifest` and
/// `extraIndex` cannot make them invalid.
#[test]
fn invalid_manifest_or_index_fails_the_build_naming_the_field() {
    let t = tempfile::tempdir().unwrap();
    for (extra, field) in [
        (
            json!({"extraManifest": {"annotations": {"a": 1}}}),
            "annotations.a must be a string",
        ),
        (
            json!({"extraManifest": {"subject": {"mediaType": "x", "digest": "sha256:nope", "size": 1}}}),
            "subject.digest must be a digest",
        ),
        (
            json!({"extraManifest": {"subject": {"mediaType": "x", "digest": format!("sha256:{}", "0".repeat(64)), "size": -1}}}),
            "subject.size must be a whole number",
        ),
        (
            json!({"extraManifest": {"artifactType": 1}}),
            "artifactType must be a string",
        ),
    ] {
        let spec = image_with(t.path(), extra.clone());
        let err = run_fail(
            nixoci()
                .arg("build")
                .arg(&spec)
                .arg("-o")
                .arg(t.path().join("o")),
        );
        assert!(
            err.contains(field) && err.contains("extraManifest"),
            "{extra}: {err}"
        );
    }
    let spec = image_with(t.path(), json!({}));
    run(nixoci()
        .arg("manifest")
        .arg(&spec)
        .arg("-o")
        .arg(t.path().join("m")));
    let layout_spec = t.path().join("layout.json");
    write_json(
        &layout_spec,
        &json!({"manifests": ["m"], "extraIndex": {"annotations": {"a": true}}}),
    );
    let err = run_fail(
        nixoci()
            .arg("layout")
            .arg(&layout_spec)
            .arg("-o")
            .arg(t.path().join("o")),
    );
    assert!(
        err.contains("annotations.a must be a string") && err.contains("extraIndex"),
        "{err}"
    );
}

/// Numbers merged in by `extraConfig`, `extraManifest` and `extraIndex` are
/// written as the spec writes them, not re-read as 64-bit floats.
#[test]
fn extra_numbers_are_kept_as_written() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    let numbers =
        r#"{"big": 12345678901234567890123, "exp": 1e2, "frac": 1.50, "neg": -0, "small": 7}"#;
    let written = r#"{"big":12345678901234567890123,"exp":1e2,"frac":1.50,"neg":-0,"small":7}"#;
    let spec = t.path().join("spec.json");
    fs::write(
        &spec,
        format!(
            r#"{{"layers": [{{"files": [{{"source": "f", "destination": "/f"}}]}}], "architecture": "amd64",
                "extraConfig": {{"com.example.numbers": {numbers}}}, "extraManifest": {{"com.example.numbers": {numbers}}}}}"#
        ),
    )
    .unwrap();
    let layout = build(&spec, &t.path().join("out"));
    let manifest_path = blob_path(&layout, &manifest_digest(&layout));
    let manifest = fs::read_to_string(&manifest_path).unwrap();
    assert!(
        manifest.contains(&format!("\"com.example.numbers\":{written}")),
        "{manifest}"
    );
    let config_digest = read_json(&manifest_path)["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let config = fs::read_to_string(blob_path(&layout, &config_digest)).unwrap();
    assert!(
        config.contains(&format!("\"com.example.numbers\":{written}")),
        "{config}"
    );
    run(nixoci().arg("verify").arg(&layout));

    run(nixoci()
        .arg("manifest")
        .arg(&spec)
        .arg("-o")
        .arg(t.path().join("m")));
    let layout_spec = t.path().join("layout.json");
    fs::write(
        &layout_spec,
        format!(r#"{{"manifests": ["m"], "extraIndex": {{"com.example.numbers": {numbers}}}}}"#),
    )
    .unwrap();
    run(nixoci()
        .arg("layout")
        .arg(&layout_spec)
        .arg("-o")
        .arg(t.path().join("l")));
    let index = fs::read_to_string(t.path().join("l/index.json")).unwrap();
    assert!(
        index.contains(&format!("\"com.example.numbers\":{written}")),
        "{index}"
    );
}

/// A config with a key given twice (readers disagree on which counts, and
/// nixoci's own readers refuse it) is a problem `verify` reports.
#[test]
fn verify_catches_a_duplicate_key_in_a_document() {
    let t = tempfile::tempdir().unwrap();
    let out = good_layout(t.path());
    let mut manifest = manifest_of(&out);
    let config = fs::read(blob_path(
        &out,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let text = String::from_utf8(config).unwrap();
    let twice = text.replacen('{', "{\"os\":\"windows\",", 1);
    let put = |bytes: &[u8]| {
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
        );
        fs::write(blob_path(&out, &digest), bytes).unwrap();
        (digest, bytes.len())
    };
    let (cd, cs) = put(twice.as_bytes());
    manifest["config"]["digest"] = json!(cd);
    manifest["config"]["size"] = json!(cs);
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let mut index = read_json(&out.join("index.json"));
    index["manifests"][0]["digest"] = json!(md);
    index["manifests"][0]["size"] = json!(ms);
    write_json(&out.join("index.json"), &index);
    let err = verify_problems(&out);
    assert!(err.contains("duplicate key \"os\""), "{err}");
}

/// An input named through a bind mount of the output is the same input:
/// `--force` refuses to replace the output (compared by device and inode,
/// not by name). Runs in a private mount namespace (needs root and
/// unshare, as .ci/fresh-nix does).
#[test]
fn force_keeps_an_input_reached_through_a_bind_mount() {
    require("unshare");
    let t = tempfile::tempdir().unwrap();
    let t = &fs::canonicalize(t.path()).unwrap();
    file(t, "out/src/a", b"precious\n", 0o644);
    fs::create_dir(t.join("bm")).unwrap();
    write_json(
        &t.join("s.json"),
        &json!({"layers": [{"files": [{"source": "bm/src/a", "destination": "/a"}]}], "architecture": "amd64"}),
    );
    let script = format!(
        "mount --bind {0}/out {0}/bm && exec {1} build {0}/s.json -o {0}/out --force",
        t.display(),
        env!("CARGO_BIN_EXE_nixoci")
    );
    let err = run_fail(
        std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(&script),
    );
    assert!(err.contains(INPUT_IN_OUTPUT), "{err}");
    assert_eq!(fs::read(t.join("out/src/a")).unwrap(), b"precious\n");
}

/// A value of the wrong type is named by its path in the spec, not only by
/// a line and column.
#[test]
fn error_wrong_type_names_the_field() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x", 0o644);
    let files = json!([{"source": "f", "destination": "/f"}]);
    for (spec, needle) in [
        (
            json!({"layers": [{"files": [{"source": "f", "destination": "/f", "uid": "0"}]}]}),
            "layers[0]: files[0].uid: invalid type: string \"0\"",
        ),
        (
            json!({"layers": [{"files": files}], "tags": null}),
            "tags: invalid type: null",
        ),
        (
            json!({"layers": [{"files": files}], "annotations": null}),
            "annotations: invalid type: null",
        ),
        (
            json!({"layers": [{"files": files}], "config": {"Env": [null]}}),
            "config: Env[0]: invalid type: null",
        ),
        (
            json!({"layers": [{"files": [5]}]}),
            "layers[0]: files[0]: expected an object",
        ),
    ] {
        expect_build_error(t.path(), &spec.to_string(), &[needle]);
    }
}
