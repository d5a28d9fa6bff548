//! `nixoci sbom` reads the image's own `/nix/store`, never the machine's:
//! an image whose `/nix/store` or `/nix` is a symbolic link (absolute, or
//! relative with more `..` than it has directories) has it resolved
//! inside the image, as a container would (issue 21, 1.1), or is refused
//! when no container could open it. And the image is named by its tag.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Hash parts (Nix base 32) of the store paths the tests make.
const OWN: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
const DEP: &str = "1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r6s";
const LINK: &str = "2c3d4f5g6h7i8j9k0l1m2n3p4q5r6s7v";
const OUT: &str = "3d4f5g6h7i8j9k0l1m2n3p4q5r6s7v8w";
const HOST: &str = "4f5g6h7i8j9k0l1m2n3p4q5r6s7v8w9x";

/// A store directory of this machine, outside every image: what a link
/// in an image must never lead the SBOM to. It holds one path named
/// `HOST-host-secret-1.0`.
fn host_store(dir: &Path) -> PathBuf {
    let store = dir.join("host/nix/store");
    file(
        &store.join(format!("{HOST}-host-secret-1.0")),
        "bin/secret",
        b"the machine's, not the image's\n",
        0o755,
    );
    store
}

/// `nixoci build` of the tree `root` placed at `/`, as the issue's repro
/// does.
fn image_of(dir: &Path, name: &str, root: &Path) -> PathBuf {
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": root, "destination": "/"}]}],
            "architecture": "amd64",
            "tags": ["latest"]
        }),
    );
    build(&spec, &dir.join(name))
}

/// [`image_of`], with a first layer of its own below (`/filler`), so that
/// the layer a store path is found in is the second one.
fn image_over_filler(dir: &Path, name: &str, root: &Path) -> PathBuf {
    let filler = dir.join("filler");
    file(&filler, "motd", b"below\n", 0o644);
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({
            "layers": [
                {"files": [{"source": filler, "destination": "/filler"}]},
                {"files": [{"source": root, "destination": "/"}]}
            ],
            "architecture": "amd64",
            "tags": ["latest"]
        }),
    );
    build(&spec, &dir.join(name))
}

fn sbom(layout: &Path, format: &str) -> Value {
    let out = run(nixoci().arg("sbom").arg(layout).args(["--format", format]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn store_paths(cdx: &Value) -> Vec<String> {
    cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap().to_owned())
        .collect()
}

/// The sha256 of `nix-store --dump PATH` (a link is dumped as the link).
fn nix_nar_sha256(path: &Path) -> String {
    let nar = run(nix_command("nix-store").arg("--dump").arg(path)).stdout;
    hex::encode(Sha256::digest(&nar))
}

/// The issue's repro and its class: links at `/nix/store` and at `/nix`
/// that lead out of the image on the host (an absolute path, a relative
/// path with many `..`, the host's `/nix/store` itself). The old code
/// listed the host's store paths (`HOST-host-secret` here, 963 paths of
/// the real `/nix/store` in the issue) and exited 0. Now: inside the
/// image they lead nowhere, so the SBOM lists nothing; a link that leads
/// back to itself inside the image is refused, as a container could not
/// open it either. No host path name appears in any output.
#[test]
fn links_out_of_the_image_never_reach_the_host_store() {
    let t = tempfile::tempdir().unwrap();
    let host = host_store(t.path());
    let up = "../".repeat(40);
    let relative = format!("{up}{}", host.to_str().unwrap().trim_start_matches('/'));
    // (name, where the link is, its target)
    let cases: Vec<(&str, &str, String)> = vec![
        ("absolute", "nix/store", host.to_str().unwrap().to_owned()),
        ("dotdot", "nix/store", relative.clone()),
        (
            "nix-link",
            "nix",
            host.parent().unwrap().to_str().unwrap().to_owned(),
        ),
        (
            "nix-link-dotdot",
            "nix",
            format!("{up}{}", host.parent().unwrap().to_str().unwrap()),
        ),
    ];
    for (name, at, target) in &cases {
        let root = t.path().join(format!("{name}-root"));
        let link = root.join(at);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(target, &link).unwrap();
        file(&root, "etc/motd", b"hello\n", 0o644);
        let layout = image_of(t.path(), name, &root);
        for format in ["cyclonedx", "spdx"] {
            let out = run(nixoci().arg("sbom").arg(&layout).args(["--format", format]));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains(HOST) && !text.contains("host-secret"),
                "{name}: the SBOM lists the host's store:\n{text}"
            );
        }
        let cdx = sbom(&layout, "cyclonedx");
        assert_eq!(store_paths(&cdx), Vec::<String>::new(), "{name}");
        let spdx = sbom(&layout, "spdx");
        assert_eq!(spdx["packages"].as_array().unwrap().len(), 1, "{name}");
    }

    // The repro as the issue gives it: `/nix/store -> /nix/store`, which
    // inside the image is a link to itself.
    let root = t.path().join("repro-root");
    fs::create_dir_all(root.join("nix")).unwrap();
    symlink("/nix/store", root.join("nix/store")).unwrap();
    let layout = image_of(t.path(), "repro", &root);
    let err = run_fail(nixoci().arg("sbom").arg(&layout));
    assert!(
        err.contains("the image: /nix/store: more than 40 symbolic links followed")
            && err.contains("a container could not open it either"),
        "{err}"
    );
    // No name of the machine's store is printed.
    if let Ok(entries) = fs::read_dir("/nix/store") {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.len() > 33 {
                assert!(!err.contains(&n[..32]), "{n} printed: {err}");
            }
        }
    }
    // The same loop spelled with `..`.
    let root = t.path().join("repro-dotdot-root");
    fs::create_dir_all(root.join("nix")).unwrap();
    symlink(format!("{up}nix/store"), root.join("nix/store")).unwrap();
    let layout = image_of(t.path(), "repro-dotdot", &root);
    let err = run_fail(nixoci().arg("sbom").arg(&layout));
    assert!(err.contains("more than 40 symbolic links"), "{err}");
}

/// Links that lead to a store inside the image are followed there, as a
/// container follows them (`/nix -> /opt/nix`, `/nix/store` as a
/// relative link with more `..` than directories, `/nix/store -> /`): the
/// SBOM lists exactly
/// the image's own store paths, as `/nix/store/...` (what a container
/// and the references see), each in the layer that holds it. A store
/// path that is itself a link is hashed as the link (`nix-store --dump`
/// of the link), not followed: here one leads to the host's store.
#[test]
fn links_inside_the_image_are_followed_there() {
    let t = tempfile::tempdir().unwrap();
    let host = host_store(t.path());
    let make = |root: &Path, store: &str| -> Vec<(String, PathBuf)> {
        let s = root.join(store);
        let own = format!("{OWN}-own-2.0");
        let dep = format!("{DEP}-dep-1.1");
        file(
            &s.join(&own),
            "bin/own",
            format!("#!/nix/store/{dep}/bin/sh\n").as_bytes(),
            0o755,
        );
        file(&s.join(&dep), "bin/sh", b"a shell\n", 0o755);
        let link = format!("{LINK}-link");
        symlink(&own, s.join(&link)).unwrap();
        let out = format!("{OUT}-out");
        symlink(host.join(format!("{HOST}-host-secret-1.0")), s.join(&out)).unwrap();
        [own, dep, link, out]
            .into_iter()
            .map(|n| (format!("/nix/store/{n}"), s.join(&n)))
            .collect()
    };
    let up = "../".repeat(20);
    // /nix -> /opt/nix, absolute.
    let a = t.path().join("a-root");
    let a_paths = make(&a, "opt/nix/store");
    symlink("/opt/nix", a.join("nix")).unwrap();
    // /nix/store -> ../../../.../srv/store, relative.
    let b = t.path().join("b-root");
    let b_paths = make(&b, "srv/store");
    fs::create_dir_all(b.join("nix")).unwrap();
    symlink(format!("{up}srv/store"), b.join("nix/store")).unwrap();
    // /nix/store -> /: the store is the image's root.
    let c = t.path().join("c-root");
    let c_paths = make(&c, "");
    fs::create_dir_all(c.join("nix")).unwrap();
    symlink("/", c.join("nix/store")).unwrap();
    for (name, root, paths) in [("a", &a, a_paths), ("b", &b, b_paths), ("c", &c, c_paths)] {
        let layout = image_over_filler(t.path(), name, root);
        let layer = read_json(&blob_path(&layout, &manifest_digest(&layout)))["layers"][1]
            ["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let cdx = sbom(&layout, "cyclonedx");
        let mut want: Vec<String> = paths.iter().map(|(p, _)| p.clone()).collect();
        want.sort();
        assert_eq!(store_paths(&cdx), want, "{name}");
        for (path, source) in &paths {
            let c = cdx["components"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["bom-ref"] == path.as_str())
                .unwrap();
            assert_eq!(
                c["hashes"][0]["content"].as_str().unwrap(),
                nix_nar_sha256(source),
                "{name}: {path}"
            );
            let props = c["properties"].as_array().unwrap();
            assert!(
                props
                    .iter()
                    .any(|p| p["name"] == "nixoci:layer" && p["value"] == layer.as_str()),
                "{name}: {path}: {props:?}"
            );
        }
        let deps = cdx["dependencies"].as_array().unwrap();
        let own = deps
            .iter()
            .find(|d| d["ref"] == format!("/nix/store/{OWN}-own-2.0").as_str())
            .unwrap();
        assert_eq!(
            own["dependsOn"],
            json!([format!("/nix/store/{DEP}-dep-1.1")])
        );
        let text = serde_json::to_string(&cdx).unwrap();
        assert!(!text.contains("host-secret-1.0\""), "{text}");
        let file = t.path().join(format!("{name}.cdx.json"));
        fs::write(&file, &text).unwrap();
        validate_sbom(&file, "cyclonedx");
    }
}

/// The image is named by its tag (SPDX `name`, CycloneDX metadata
/// component), as docs/artifacts.md says, when the layout gives it exactly one
/// and none is asked for; by the tag asked for; by its manifest digest
/// when it has several and none is asked for. The old code named it by
/// digest unless a tag was given.
#[test]
fn the_image_is_named_by_its_tag() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    file(&root, "etc/motd", b"hello\n", 0o644);
    let one = image_of(t.path(), "one", &root);
    let cdx = sbom(&one, "cyclonedx");
    assert_eq!(cdx["metadata"]["component"]["name"], "latest");
    let spdx = sbom(&one, "spdx");
    assert_eq!(spdx["name"], "latest (Nix closure)");
    assert_eq!(spdx["packages"][0]["name"], "latest");

    let spec = t.path().join("two.json");
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": root, "destination": "/"}]}],
            "architecture": "amd64",
            "tags": ["latest", "1.0"]
        }),
    );
    let two = build(&spec, &t.path().join("two"));
    let digest = manifest_digest(&two);
    assert_eq!(
        sbom(&two, "cyclonedx")["metadata"]["component"]["name"],
        digest
    );
    let out = run(nixoci()
        .arg("sbom")
        .arg(format!("{}:1.0", two.display()))
        .args(["--format", "cyclonedx"]));
    let named: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(named["metadata"]["component"]["name"], "1.0");
}

/// A store path deeper than the soft limit of open files: the tree's
/// readers hold a directory open per level (they never follow a path by
/// name), so with the usual soft limit of 1024 (here 64, under a hard
/// limit above the depth) a deep tree failed with "too many open files".
/// nixoci raises its soft limit to the hard one at start.
#[test]
fn a_store_path_deeper_than_the_soft_file_limit() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let deep: String = (0..200).map(|_| "d/").collect();
    file(
        &root.join(format!("nix/store/{}-deep-1.0", "a".repeat(32))),
        &format!("{deep}leaf"),
        b"at the bottom\n",
        0o644,
    );
    let layout = image_of(t.path(), "deep", &root);
    let out = run(std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -S -n 64 && ulimit -H -n 4096 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_nixoci"))
        .arg("sbom")
        .arg(&layout)
        .args(["--format", "cyclonedx"]));
    let cdx: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        store_paths(&cdx),
        vec![format!("/nix/store/{}-deep-1.0", "a".repeat(32))]
    );
}
