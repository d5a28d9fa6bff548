//! crane (go-containerregistry's CLI, v0.22.1 from `.ci/install-deps`),
//! the tool of the flow the project exists for: `crane push` of every
//! layout the CLI writes, `crane pull --format oci` and `crane export` of
//! what `nixoci push` sent, `crane manifest` and `crane config` against the
//! layout's bytes, and images crane made (`append`, `mutate`) as `fromImage`
//! bases. On the referrers registry (`tests/peers/registry`) and on
//! registry 2.8. (The Nix-built layouts are pushed in tests/nix.rs.)

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::crane::{
    assert_served_as_in_layout, crane_push_and_check, crane_push_and_check_alone, fresh_reference,
    Crane,
};
use common::registry::{Registry, Setup};
use common::*;
use serde_json::{json, Value};

/// A one-platform image of busybox and a small tree, with a config of
/// each inheritable kind, tagged `tags`; `extra` merged into the spec.
fn busybox_image(dir: &Path, name: &str, tags: &[&str], extra: Value) -> PathBuf {
    file(dir, &format!("{name}-in/etc/motd"), b"from nixoci\n", 0o644);
    let mut spec = json!({
        "layers": [
            {"files": [{"source": busybox(), "destination": "/bin/busybox"}]},
            {"files": [{"source": format!("{name}-in"), "destination": "/"}]}
        ],
        "architecture": "amd64",
        "config": {
            "Env": ["PATH=/bin", "GREETING=base"],
            "Entrypoint": ["/bin/busybox", "echo"],
            "Cmd": ["base"],
            "Labels": {"from": "base", "keep": "1"},
            "ExposedPorts": {"80/tcp": {}},
            "User": "1000",
            "WorkingDir": "/"
        },
        "tags": tags
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let path = dir.join(format!("{name}.json"));
    write_json(&path, &spec);
    build(&path, &dir.join(name))
}

/// A layout of `manifests` (directories of `nixoci manifest`) under
/// `tags`, with or without platform tags.
fn layout_of(
    dir: &Path,
    name: &str,
    manifests: &[&str],
    tags: &[&str],
    platform_tags: bool,
) -> PathBuf {
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({"manifests": manifests, "tags": tags, "platformTags": platform_tags}),
    );
    run(nixoci()
        .arg("layout")
        .arg(&spec)
        .arg("-o")
        .arg(dir.join(name))
        .arg("-q"));
    dir.join(name)
}

/// `nixoci push LAYOUT REF` with a private environment.
fn nixoci_push(env: &Path, layout: &Path, reference: &str) {
    run(nixoci_in(env)
        .arg("push")
        .arg(layout)
        .arg(reference)
        .arg("-q"));
}

/// `nixoci unpack IMAGE DIR`: the snapshot of the tree.
fn unpacked(image: &str, dir: &Path) -> std::collections::BTreeMap<Vec<u8>, Node> {
    run(nixoci().arg("unpack").arg(image).arg(dir).arg("-q"));
    snapshot(dir)
}

/// The config of a layout's image.
fn config_of(layout: &Path) -> Value {
    let manifest = read_json(&blob_path(layout, &manifest_digest(layout)));
    read_json(&blob_path(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
}

/// Every shape of layout `nixoci build` and `nixoci layout` write: one tag,
/// several tags, two platforms, platform tags, an image on a base
/// (`fromImage`). `crane push DIR REF` takes each, on both registries;
/// `crane digest` is the layout's digest, `crane validate --remote`
/// passes, and `crane manifest` and `crane config` give the layout's
/// blobs byte for byte.
#[test]
fn crane_pushes_every_layout_the_cli_writes() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let one = busybox_image(dir, "one", &["latest"], json!({}));
    let tags = busybox_image(dir, "tags", &["latest", "1.0", "1"], json!({}));
    platform_layout(dir, "unused", &["amd64", "arm64"]);
    let two = layout_of(dir, "two", &["amd64", "arm64"], &["latest"], false);
    let platform_tags = layout_of(dir, "ptags", &["amd64", "arm64"], &["latest", "2"], true);
    file(dir, "extra-in/etc/extra", b"on the base\n", 0o644);
    let on_base = busybox_image(
        dir,
        "on-base",
        &["latest"],
        json!({
            "fromImage": one,
            "layers": [{"files": [{"source": "extra-in", "destination": "/"}]}],
            "config": {"Cmd": ["on a base"]}
        }),
    );
    let crane = Crane::new();
    for (name, layout) in [
        ("one", &one),
        ("tags", &tags),
        ("two", &two),
        ("ptags", &platform_tags),
        ("on-base", &on_base),
    ] {
        crane_push_and_check_alone(&crane, layout, name);
        crane_push_and_check(&crane, layout, &reg.reference(&format!("{name}:latest")));
    }
}

/// `nixoci sbom --attach` keeps the layout one image to crane: `crane
/// push` takes it, and the registry has the image, as in the layout.
#[test]
fn crane_pushes_a_cli_layout_with_an_sbom() {
    let t = tempfile::tempdir().unwrap();
    let layout = busybox_image(t.path(), "sbom", &["latest"], json!({}));
    run(nixoci().arg("sbom").arg(&layout).arg("--attach").arg("-q"));
    crane_push_and_check_alone(&Crane::new(), &layout, "sbom");
}

/// `crane pull --format oci` of an image `nixoci push` sent (crane records
/// the image in `index.json` untagged, with its config's media type as
/// `artifactType`): `nixoci verify` passes, `unpack` gives the original's
/// tree, `diff` against the original finds it identical, and it is a
/// `fromImage` base. `crane manifest`/`config` of the pushed image are the
/// layout's blobs. Before, nixoci took such an entry for a referrer and
/// found "the layout holds no image".
#[test]
fn crane_pull_of_a_nixoci_push_is_a_layout_nixoci_reads() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let original = busybox_image(dir, "original", &["latest"], json!({}));
    let reference = fresh_reference("pulled");
    nixoci_push(dir, &original, &reference);
    let crane = Crane::new();
    assert_served_as_in_layout(&crane, &original, &reference);
    let pulled = dir.join("pulled");
    crane.pull_layout(&reference, &pulled);
    let entry = &read_json(&pulled.join("index.json"))["manifests"][0];
    assert_eq!(
        entry["artifactType"], "application/vnd.oci.image.config.v1+json",
        "crane's entry: {entry}"
    );
    assert_eq!(entry["digest"], json!(manifest_digest(&original)));

    let verified = run(nixoci().arg("verify").arg(&pulled));
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains(": ok"),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let original_tree = unpacked(&original.display().to_string(), &dir.join("u0"));
    let pulled_tree = unpacked(&pulled.display().to_string(), &dir.join("u1"));
    assert_eq!(diff(&original_tree, &pulled_tree), None);
    let compared = run(nixoci().arg("diff").arg(&original).arg(&pulled));
    let text = String::from_utf8_lossy(&compared.stdout);
    assert!(
        text.contains("\nidentical\n") && text.contains("bytes to push: 0 B"),
        "{text}"
    );

    file(dir, "new/etc/new", b"over crane's pull\n", 0o644);
    let spec = dir.join("over.json");
    write_json(
        &spec,
        &json!({"fromImage": pulled, "layers": [{"files": [{"source": "new", "destination": "/"}]}], "architecture": "amd64"}),
    );
    let over = build(&spec, &dir.join("over"));
    let manifest = read_json(&blob_path(&over, &manifest_digest(&over)));
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.digest"],
        json!(manifest_digest(&original))
    );
    assert_eq!(config_of(&over)["config"], config_of(&original)["config"]);
    let tree = unpacked(&over.display().to_string(), &dir.join("u2"));
    let mut expected = original_tree.clone();
    expected.extend(snapshot_of_new(dir));
    assert_eq!(diff(&expected, &tree), None);
}

/// The tree `etc/new` adds to an image whose `etc` is already there.
fn snapshot_of_new(dir: &Path) -> std::collections::BTreeMap<Vec<u8>, Node> {
    let mut new = normalised(snapshot(&dir.join("new")));
    new.remove(b"etc".as_slice());
    new
}

/// A multi-platform index that `nixoci push` sent, pulled whole by `crane
/// pull --format oci`: nixoci verifies it and unpacks each platform.
#[test]
fn crane_pull_of_a_nixoci_pushed_index_is_a_layout_nixoci_reads() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let layout = platform_layout(dir, "two", &["amd64", "arm64"]);
    let reference = fresh_reference("index");
    nixoci_push(dir, &layout, &reference);
    let crane = Crane::new();
    assert_served_as_in_layout(&crane, &layout, &reference);
    let pulled = dir.join("pulled");
    crane.pull_layout(&reference, &pulled);
    run(nixoci().arg("verify").arg(&pulled));
    assert_eq!(manifest_digest(&pulled), manifest_digest(&layout));
    for arch in ["amd64", "arm64"] {
        let out = dir.join(format!("u-{arch}"));
        run(nixoci().arg("unpack").arg(&pulled).arg(&out).args([
            "--platform",
            &format!("linux/{arch}"),
            "-q",
        ]));
        assert_eq!(fs::read(out.join(arch)).unwrap(), b"x\n", "{arch}");
    }
}

/// `crane export REF -` (the image's filesystem, layers applied) gives the
/// tree `nixoci unpack` gives: names (long ones, a non-UTF-8 one), modes,
/// contents, hard links and link targets; a file a later layer replaces
/// and one it removes (a whiteout) as the second layer leaves them.
#[test]
fn crane_export_gives_the_tree_nixoci_unpack_gives() {
    require("tar");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    make_fixture(&dir.join("input"), FixtureOptions::default());
    file(
        dir,
        "later/etc/app/config.json",
        b"{\"port\": 9090}\n",
        0o600,
    );
    let spec = dir.join("image.json");
    write_json(
        &spec,
        &json!({
            "layers": [
                {"files": [{"source": "input", "destination": "/"}]},
                {"files": [{"source": "later", "destination": "/", "uid": 1000, "gid": 100}],
                 "remove": ["/share/doc/README"], "compression": "zstd"}
            ],
            "architecture": "amd64",
            "tags": ["latest"]
        }),
    );
    let layout = build(&spec, &dir.join("layout"));
    let reference = fresh_reference("export");
    nixoci_push(dir, &layout, &reference);

    let exported = dir.join("exported");
    fs::create_dir(&exported).unwrap();
    let mut export = Crane::new().cmd(&["export", reference.as_str(), "-"]);
    let mut export = export.stdout(Stdio::piped()).spawn().unwrap();
    let extracted = Command::new("tar")
        .args(["--numeric-owner", "-xpf", "-", "-C"])
        .arg(&exported)
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(export.wait().unwrap().success(), "crane export failed");
    assert!(
        extracted.status.success(),
        "tar -x of crane export: {}",
        String::from_utf8_lossy(&extracted.stderr)
    );
    let from_crane = snapshot(&exported);
    let from_nixoci = unpacked(&layout.display().to_string(), &dir.join("unpacked"));
    assert_eq!(diff(&from_nixoci, &from_crane), None);
    assert!(!from_crane.contains_key(b"share/doc/README".as_slice()));
    assert_eq!(
        from_crane.get(b"etc/app/config.json".as_slice()),
        Some(&Node::File {
            mode: 0o444,
            content: b"{\"port\": 9090}\n".to_vec(),
            link_group: None
        })
    );
    assert_eq!(
        fs::symlink_metadata(exported.join("etc/app/config.json"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap(),
        1000
    );
}

/// An image crane made on a nixoci base: `crane append` of a tar layer,
/// then `crane mutate` of labels, entrypoint, command, env and working
/// directory. As a `fromImage` base, pulled to a layout (`crane pull
/// --format oci`) and as crane's tarball (`crane pull REF FILE`, a docker
/// archive), it gives the config docs/base-images.md's rules say (Env merged by
/// name, Labels merged with the new image winning, Entrypoint, Cmd, User,
/// WorkingDir and ExposedPorts inherited, history extended by the new
/// layer), crane's layer files are in the unpacked image, and podman runs
/// it with crane's entrypoint.
#[test]
fn crane_made_images_are_from_image_bases() {
    require("tar");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let base = busybox_image(dir, "base", &["latest"], json!({}));
    let reference = fresh_reference("base");
    nixoci_push(dir, &base, &reference);

    file(dir, "add/opt/crane/added", b"appended by crane\n", 0o644);
    let tarball = dir.join("add.tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "-cf"])
        .arg(&tarball)
        .arg("-C")
        .arg(dir.join("add"))
        .arg("opt"));
    let crane = Crane::new();
    let appended = fresh_reference("appended");
    crane.out(&[
        OsStr::new("append"),
        OsStr::new("-f"),
        tarball.as_os_str(),
        OsStr::new("-b"),
        OsStr::new(&reference),
        OsStr::new("-t"),
        OsStr::new(&appended),
    ]);
    let mutated = fresh_reference("mutated");
    crane.out(&[
        "mutate",
        appended.as_str(),
        "--label",
        "from=crane",
        "--label",
        "crane=1",
        "--entrypoint",
        "/bin/busybox,cat",
        "--cmd",
        "/opt/crane/added",
        "--env",
        "GREETING=crane",
        "--workdir",
        "/opt",
        "-t",
        mutated.as_str(),
    ]);
    let crane_config: Value =
        serde_json::from_slice(&crane.out(&["config", mutated.as_str()])).unwrap();
    assert_eq!(
        crane_config["config"]["Labels"],
        json!({"from": "crane", "keep": "1", "crane": "1"})
    );

    let as_layout = dir.join("crane-layout");
    crane.pull_layout(&mutated, &as_layout);
    let as_tarball = dir.join("crane.tar");
    crane.out(&[
        OsStr::new("pull"),
        OsStr::new(&mutated),
        as_tarball.as_os_str(),
    ]);

    file(dir, "new/etc/new", b"over crane's image\n", 0o644);
    let mut configs = Vec::new();
    for (name, from) in [("over-layout", &as_layout), ("over-tarball", &as_tarball)] {
        let spec = dir.join(format!("{name}.json"));
        write_json(
            &spec,
            &json!({
                "fromImage": from,
                "layers": [{"files": [{"source": "new", "destination": "/"}]}],
                "architecture": "amd64",
                "config": {"Env": ["GREETING=nix", "NEW=1"], "Labels": {"crane": "nix"}}
            }),
        );
        let image = build(&spec, &dir.join(name));
        let config = config_of(&image);
        assert_eq!(
            config["config"],
            json!({
                "Env": ["PATH=/bin", "GREETING=nix", "NEW=1"],
                "Entrypoint": ["/bin/busybox", "cat"],
                "Cmd": ["/opt/crane/added"],
                "Labels": {"from": "crane", "keep": "1", "crane": "nix"},
                "ExposedPorts": {"80/tcp": {}},
                "User": "1000",
                "WorkingDir": "/opt"
            }),
            "{name}"
        );
        let base_history = crane_config["history"].as_array().unwrap();
        let history = config["history"].as_array().unwrap();
        assert_eq!(history.len(), base_history.len() + 1, "{name}: {config}");
        assert_eq!(history[..base_history.len()], base_history[..], "{name}");
        let mut diff_ids = crane_config["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(diff_ids.len(), 3, "busybox, the tree and crane's layer");
        diff_ids.push(config["rootfs"]["diff_ids"][3].clone());
        assert_eq!(config["rootfs"]["diff_ids"], json!(diff_ids), "{name}");

        let tree = unpacked(&image.display().to_string(), &dir.join(format!("u-{name}")));
        assert_eq!(
            tree.get(b"opt/crane/added".as_slice()),
            Some(&Node::File {
                mode: 0o644,
                content: b"appended by crane\n".to_vec(),
                link_group: None
            }),
            "{name}"
        );
        for path in ["bin/busybox", "etc/motd", "etc/new"] {
            assert!(tree.contains_key(path.as_bytes()), "{name}: {path}");
        }
        configs.push(config);
    }
    assert_eq!(configs[0], configs[1], "the same base in both forms");
    let (_, output) = Podman::new().load_and_run(&dir.join("over-layout"));
    assert_eq!(output, "appended by crane\n");
}
