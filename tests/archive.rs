//! `nixoci archive`: interrupted runs leave nothing, names that cannot
//! name a loaded image are refused up front, and a docker archive carries
//! every tag of the layout into podman.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A layout of one layer holding a sparse file of `size` bytes.
fn big_layout(dir: &Path, size: u64, compression: &str) -> std::path::PathBuf {
    fs::create_dir_all(dir.join("in")).unwrap();
    fs::File::create(dir.join("in/big"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let spec = dir.join("s.json");
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": "in/big", "destination": "/big"}], "compression": compression}],
            "architecture": "amd64"
        }),
    );
    build(&spec, &dir.join("layout"))
}

/// Regression: SIGINT or SIGTERM during `archive` exited 130 but left its
/// `.nixoci-archive-XXXXXX` temporary file (hundreds of MB), in both
/// formats.
#[test]
fn interrupted_archive_leaves_nothing_behind() {
    for (format, compression, signal) in [("oci", "none", "-INT"), ("docker", "gzip", "-TERM")] {
        let t = tempfile::tempdir().unwrap();
        let layout = big_layout(t.path(), 1 << 30, compression);
        let out_dir = t.path().join("out");
        fs::create_dir(&out_dir).unwrap();
        let mut child = nixoci()
            .arg("archive")
            .arg(&layout)
            .arg("-o")
            .arg(out_dir.join("image.tar"))
            .args(["--format", format])
            .spawn()
            .unwrap();
        // Interrupt it once its temporary file exists.
        let deadline = Instant::now() + Duration::from_secs(30);
        while fs::read_dir(&out_dir).unwrap().count() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        run(std::process::Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string()));
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(130),
            "{format}: exits 130 when interrupted"
        );
        let left: Vec<_> = fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{format}: left behind {left:?}");
    }
}

/// Regression: `--format docker --tag 'a@sha256:...'` was accepted, and
/// podman load then refused the archive.
#[test]
fn a_digest_cannot_name_a_loaded_image() {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "f", b"x\n", 0o644);
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({"layers": [{"files": [{"source": "f", "destination": "/f"}]}], "architecture": "amd64"}),
    );
    let layout = build(&spec, &t.path().join("layout"));
    let digest = format!("sha256:{}", "0".repeat(64));
    for format in ["docker", "oci"] {
        for name in [format!("app@{digest}"), format!("app:1@{digest}")] {
            let out = t.path().join(format!("{format}.tar"));
            let err = run_fail(
                nixoci()
                    .arg("archive")
                    .arg(&layout)
                    .arg("-o")
                    .arg(&out)
                    .args(["--format", format, "--tag", &name]),
            );
            assert!(err.contains("NAME[:TAG]") && err.contains(&name), "{err}");
            assert!(!out.exists());
        }
    }
}

/// A docker archive of a layout with several tags loads into podman under
/// every one of them.
#[test]
fn docker_archive_carries_every_tag() {
    let busybox = busybox();
    let podman = Podman::new();
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("s.json");
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": busybox, "destination": "/bin/busybox"}]}],
            "config": {"Entrypoint": ["/bin/busybox", "echo", "tagged"]},
            "tags": ["latest", "1.0", "1"]
        }),
    );
    let layout = build(&spec, &t.path().join("app"));
    let archive = t.path().join("app.tar");
    run(nixoci()
        .arg("archive")
        .arg(&layout)
        .arg("-o")
        .arg(&archive)
        .args(["--format", "docker", "-q"]));
    run(podman.cmd().arg("load").arg("-i").arg(&archive));
    let listed = run(podman
        .cmd()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let mut names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "localhost/app:1",
            "localhost/app:1.0",
            "localhost/app:latest"
        ]
    );
    let ran = run(podman
        .cmd()
        .args(["run", "--rm", "--network=none", "localhost/app:1.0"]));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "tagged\n");
}

/// An OCI archive holds the whole index, or one platform with --platform;
/// an index nesting another index (which podman load and skopeo refuse in
/// an OCI archive) is refused unless one platform is chosen.
#[test]
fn oci_archive_of_one_platform_or_of_a_nested_index() {
    require("skopeo");
    let t = tempfile::tempdir().unwrap();
    let layout = two_platform_layout(t.path(), "multi");
    let index_digest = manifest_digest(&layout);
    let inner = read_json(&blob_path(&layout, &index_digest));
    let arm64 = inner["manifests"][1]["digest"].as_str().unwrap().to_owned();

    let one = t.path().join("arm64.tar");
    assert_eq!(archived_platform(&layout, &one, "linux/arm64"), arm64);

    // index.json -> an index -> the two-platform index.
    let outer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": fs::metadata(blob_path(&layout, &index_digest)).unwrap().len()}]
    }))
    .unwrap();
    let outer_digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&outer))
    );
    fs::write(blob_path(&layout, &outer_digest), &outer).unwrap();
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"][0]["digest"] = json!(outer_digest);
    index["manifests"][0]["size"] = json!(outer.len());
    write_json(&layout.join("index.json"), &index);
    run(nixoci().arg("verify").arg(&layout));
    let nested = t.path().join("nested.tar");
    let err = run_fail(nixoci().arg("archive").arg(&layout).arg("-o").arg(&nested));
    assert!(
        err.contains("lists another image index") && err.contains("--platform"),
        "{err}"
    );
    assert!(!nested.exists());
    assert_eq!(archived_platform(&layout, &nested, "linux/arm64"), arm64);
}

/// Archive one `platform` of `layout` as an OCI archive at `out`; the
/// digest of the manifest skopeo reads from it.
fn archived_platform(layout: &Path, out: &Path, platform: &str) -> String {
    run(nixoci()
        .arg("archive")
        .arg(layout)
        .arg("-o")
        .arg(out)
        .args(["--platform", platform, "-q"]));
    let raw = run(std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", out.display())));
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw.stdout))
    )
}
