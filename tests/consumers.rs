//! Real, strict consumers accept what nixoci writes (each run as the test
//! helpers in common/ set them up): oci-image-tool validates it, umoci unpacks it to exactly the input
//! tree, skopeo copies it (checking digests and sizes), podman loads and runs
//! it, and GNU gzip, busybox and Python read its multi-member gzip layers
//! whole. Each test fails, never skips, when its tool is missing.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::trees::*;
use common::*;
use serde_json::json;

fn fixture_image(t: &Path) -> std::path::PathBuf {
    let input = t.join("input");
    make_fixture(&input, FixtureOptions::default());
    file(t, "override", b"secret-ish\n", 0o600);
    let spec = t.join("image.json");
    write_json(
        &spec,
        &json!({
            "layers": [
                {"files": [{"source": "input", "destination": "/"}]},
                {"files": [{"source": "override", "destination": "/opt/override", "mode": "0640", "uid": 1000, "gid": 100}], "compression": "none"}
            ],
            "architecture": "amd64",
            "config": {"Entrypoint": ["/bin/tool"], "WorkingDir": "/", "ExposedPorts": {"80/tcp": {}}},
            "tags": ["latest", "v1"]
        }),
    );
    build(&spec, &t.join("layout"))
}

/// The layout names its one image by its first tag (`ref.name`), which is
/// what other tools look up; the other tags are nixoci's (src/tags.rs).
#[test]
fn oci_image_tool_validates_the_tagged_image() {
    require("oci-image-tool");
    let t = tempfile::tempdir().unwrap();
    let layout = fixture_image(t.path());
    let out = run(Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", "name=latest"])
        .arg(&layout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Validation succeeded"), "{text}");
}

#[test]
fn umoci_unpacks_exactly_the_input_tree() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let layout = fixture_image(t.path());
    let rootfs = umoci_unpack(&layout, &t.path().join("bundle"));
    let mut got = snapshot(&rootfs);

    // The second layer's file, checked on its own, then set aside.
    let o = got
        .remove(&b"opt/override"[..])
        .expect("opt/override unpacked");
    assert!(
        matches!(o, Node::File { mode: 0o640, ref content, .. } if content == b"secret-ish\n"),
        "{o:?}"
    );
    let meta = fs::symlink_metadata(rootfs.join("opt/override")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (1000, 100));
    assert!(
        matches!(got.remove(&b"opt"[..]), Some(Node::Dir { mode: 0o755 })),
        "implicit parent is 0755"
    );

    let want = normalised(snapshot(&t.path().join("input")));
    if let Some(d) = diff(&want, &got) {
        panic!("unpacked rootfs differs from the input: {d}");
    }
    assert_eq!(want, got);
    // Hard links survived as hard links.
    let a = fs::metadata(rootfs.join("lib/a.so")).unwrap();
    let b = fs::metadata(rootfs.join("lib/b.so")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn skopeo_copies_and_inspects() {
    require("skopeo");
    let t = tempfile::tempdir().unwrap();
    let layout = fixture_image(t.path());
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:latest", layout.display())));
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["Digest"], manifest_digest(&layout));
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    let dest = t.path().join("copy");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("dir:{}", dest.display())));
    // skopeo verified digests while copying; the copy holds our exact bytes.
    let manifest = fs::read(dest.join("manifest.json")).unwrap();
    assert_eq!(
        manifest,
        fs::read(blob_path(&layout, &manifest_digest(&layout))).unwrap()
    );
}

#[test]
fn podman_loads_and_runs_a_busybox_image() {
    podman_runs_busybox("gzip");
}

/// zstd layers (image-spec 1.1): umoci 0.4.7 and oci-image-tool 1.0.0-rc1
/// predate them, podman (containers/image) reads them.
#[test]
fn podman_loads_and_runs_a_zstd_image() {
    podman_runs_busybox("zstd");
}

fn podman_runs_busybox(compression: &str) {
    let busybox = busybox();
    let podman = Podman::new();
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("image.json");
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": busybox, "destination": "/bin/busybox"}], "compression": compression}],
            "config": {"Entrypoint": ["/bin/busybox", "echo"], "Cmd": ["hello from a nixoci image"]},
            "tags": ["latest"]
        }),
    );
    let layout = build(&spec, &t.path().join("layout"));
    let (image, output) = podman.load_and_run(&layout);
    assert_eq!(output, "hello from a nixoci image\n");
    // podman's image ID is the config digest, its digest the manifest's.
    let ids = run(podman
        .cmd()
        .args(["image", "inspect", "--format", "{{.Id}} {{.Digest}}"])
        .arg(&image));
    let manifest = read_json(&blob_path(&layout, &manifest_digest(&layout)));
    let config = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ids.stdout).trim(),
        format!(
            "{} {}",
            config.strip_prefix("sha256:").unwrap(),
            manifest_digest(&layout)
        )
    );
}

/// The README's first command, and what it says to do with the result.
#[test]
fn readme_example_builds_verifies_and_podman_pulls_it() {
    let podman = Podman::new();
    let t = tempfile::tempdir().unwrap();
    let layout = build(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/image.json"),
        &t.path().join("hello-image"),
    );
    run(nixoci().arg("verify").arg(&layout));
    // podman names the image after the path, which must be lowercase.
    let named = std::env::temp_dir().join(format!("nixoci-readme-{}", std::process::id()));
    let _ = fs::remove_file(&named);
    std::os::unix::fs::symlink(&layout, &named).unwrap();
    run(podman
        .cmd()
        .arg("pull")
        .arg(format!("oci:{}:latest", named.display())));
    fs::remove_file(&named).unwrap();
    let ids = run(podman
        .cmd()
        .args(["images", "--format", "{{.ID}}", "--no-trunc"]));
    let manifest = read_json(&blob_path(&layout, &manifest_digest(&layout)));
    let config = manifest["config"]["digest"].as_str().unwrap();
    let listed = String::from_utf8_lossy(&ids.stdout).into_owned();
    assert!(
        listed.lines().all(|l| l.trim() == config),
        "{listed} vs {config}"
    );
}

/// gzip layers are one gzip member per 1 MiB of tar (src/pargz.rs): every
/// reader that follows RFC 1952 reads them whole. The fixture's layer spans
/// several members.
#[test]
fn gzip_layers_are_read_whole_by_gzip_busybox_and_python() {
    for tool in ["gzip", "python3", "sha256sum"] {
        require(tool);
    }
    let busybox = busybox();
    let t = tempfile::tempdir().unwrap();
    let layout = fixture_image(t.path());
    let manifest = read_json(&blob_path(&layout, &manifest_digest(&layout)));
    let config = read_json(&blob_path(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let blob = blob_path(&layout, layer["digest"].as_str().unwrap());
    let diff_id = config["rootfs"]["diff_ids"][0].as_str().unwrap().to_owned();
    // The first word a script prints for the blob ("$1"), as a digest.
    let sh = |script: &str| {
        let out = run(Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&blob));
        format!(
            "sha256:{}",
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .unwrap()
        )
    };
    assert_eq!(sh("gzip -dc \"$1\" | sha256sum"), diff_id, "GNU gzip");
    assert_eq!(
        sh(&format!(
            "{} gunzip -c \"$1\" | sha256sum",
            busybox.display()
        )),
        diff_id,
        "busybox gunzip"
    );
    let py = "import gzip, hashlib, sys; print(hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())";
    assert_eq!(
        sh(&format!("python3 -c '{py}' \"$1\"")),
        diff_id,
        "Python gzip"
    );
    // More than one member: the first alone is a strict prefix of the tar.
    let first = "import zlib, sys; d = zlib.decompressobj(31); t = d.decompress(open(sys.argv[1], 'rb').read()); print(len(t), len(d.unused_data) > 0)";
    let out = run(Command::new("python3").args(["-c", first]).arg(&blob));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1048576 True");
}

/// Every shape of layout nixoci writes (one tag or several; one platform or
/// two; with and without platform tags) is one image to crane and to
/// `podman load -i`, which runs it; and nixoci itself resolves every tag
/// and platform tag the layout records.
#[test]
fn every_layout_shape_is_one_image_for_crane_and_podman_load() {
    let busybox = busybox();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    for arch in ["amd64", "arm64"] {
        write_json(
            &dir.join(format!("{arch}.json")),
            &json!({
                "layers": [{"files": [{"source": busybox, "destination": "/bin/busybox"}]}],
                "architecture": arch,
                "config": {"Entrypoint": ["/bin/busybox", "echo", arch]}
            }),
        );
        run(nixoci()
            .arg("manifest")
            .arg(dir.join(format!("{arch}.json")))
            .arg("-o")
            .arg(dir.join(arch))
            .arg("-q"));
    }
    let shapes = [
        (vec!["amd64"], vec!["latest"], false),
        (vec!["amd64"], vec!["latest", "1.0", "1"], false),
        (vec!["amd64", "arm64"], vec!["latest"], false),
        (vec!["amd64", "arm64"], vec!["latest", "2"], true),
    ];
    for (i, (manifests, tags, platform_tags)) in shapes.iter().enumerate() {
        let spec = dir.join(format!("layout{i}.json"));
        write_json(
            &spec,
            &json!({"manifests": manifests, "tags": tags, "platformTags": platform_tags}),
        );
        let layout = dir.join(format!("layout{i}"));
        run(nixoci()
            .arg("layout")
            .arg(&spec)
            .arg("-o")
            .arg(&layout)
            .arg("-q"));
        assert_crane_accepts(&layout);
        let (_, output) = Podman::new().load_and_run(&layout);
        assert_eq!(output, "amd64\n", "shape {i}");
        let mut names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        if *platform_tags {
            for t in tags {
                names.push(format!("{t}-linux-amd64"));
                names.push(format!("{t}-linux-arm64"));
            }
        }
        for name in &names {
            let rootfs = dir.join(format!("rootfs{i}-{name}"));
            run(nixoci()
                .arg("unpack")
                .arg(format!("{}:{name}", layout.display()))
                .arg(&rootfs)
                .args(["--platform", "linux/amd64", "-q"]));
            assert!(rootfs.join("bin/busybox").is_file(), "{name}");
            let inspected: serde_json::Value = serde_json::from_slice(
                &run(nixoci()
                    .args(["inspect", "--json"])
                    .arg(format!("{}:{name}", layout.display())))
                .stdout,
            )
            .unwrap();
            assert!(
                inspected[0]["tags"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!(name))),
                "{name}: {inspected}"
            );
        }
        // Listing the layout shows every name: tags on the image, platform
        // tags on each platform's manifest.
        let listed = String::from_utf8(run(nixoci().arg("inspect").arg(&layout)).stdout).unwrap();
        for name in &names {
            assert!(
                listed.contains(name.as_str()),
                "{name} not listed:\n{listed}"
            );
        }
        let err = run_fail(
            nixoci()
                .arg("unpack")
                .arg(format!("{}:nope", layout.display()))
                .arg(dir.join("never")),
        );
        assert!(
            err.contains(&format!("tags: {}", names.join(", "))),
            "{err}"
        );
    }
}
