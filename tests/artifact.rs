//! `nixoci artifact push` / `pull` against a real registry on 127.0.0.1,
//! both ways with the ORAS project's python client (`oras` 0.2, in the
//! peers' virtualenv): files, several files, a directory, annotations.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{Registry, Setup};
use common::*;
use serde_json::{json, Value};

/// Run python with the `oras` client: `script` gets the registry host as
/// `HOST` and the working directory as `WORK`; what it prints is returned.
fn oras(host: &str, work: &Path, script: &str) -> String {
    let full = format!(
        "import json, os, oras.client\nHOST = {host:?}\nWORK = {work:?}\nc = oras.client.OrasClient(hostname=HOST, insecure=True)\n{script}"
    );
    let out = run(Command::new(peer("python"))
        .args(["-c", &full])
        .current_dir(work));
    String::from_utf8(out.stdout).unwrap()
}

/// Files and a directory (nested, with a link inside it) to move.
fn inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    let a = dir.join("notes.txt");
    fs::write(&a, "release notes\n").unwrap();
    let b = dir.join("data.bin");
    fs::write(
        &b,
        (0..5000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let d = dir.join("site");
    fs::create_dir_all(d.join("css")).unwrap();
    fs::write(d.join("index.html"), "<p>hi</p>\n").unwrap();
    fs::write(d.join("css/a.css"), "p{}\n").unwrap();
    symlink("index.html", d.join("home.html")).unwrap();
    (a, b, d)
}

/// The same paths, file contents and link targets (modes aside: a packed
/// directory's are normalised).
fn same_tree(a: &Path, b: &Path) {
    let view = |root: &Path| -> Vec<(Vec<u8>, Vec<u8>)> {
        snapshot(root)
            .into_iter()
            .map(|(k, n)| {
                let v = match n {
                    Node::Dir { .. } => b"dir".to_vec(),
                    Node::File { content, .. } => content,
                    Node::Symlink { target } => [b"->".to_vec(), target].concat(),
                };
                (k, v)
            })
            .collect()
    };
    assert_eq!(view(a), view(b), "{} and {}", a.display(), b.display());
}

/// ORAS pushes; nixoci pulls the same bytes, the directory unpacked.
#[test]
fn oras_pushes_nixoci_pulls() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("in");
    let (a, b, d) = inputs(&work);
    for (tag, files) in [
        ("one", "['notes.txt']"),
        ("several", "['notes.txt', 'data.bin']"),
        ("dir", "['site']"),
    ] {
        oras(
            &reg.host(),
            &work,
            &format!(
                "c.push(target=HOST + '/oras/x:{tag}', files={files}, manifest_annotations={{'made-by': 'oras', 'tag': '{tag}'}})"
            ),
        );
        let out = t.path().join(format!("out-{tag}"));
        run(nixoci()
            .args(["artifact", "pull"])
            .arg(reg.reference(&format!("oras/x:{tag}")))
            .arg(&out)
            .arg("-q"));
        match tag {
            "dir" => same_tree(&d, &out.join("site")),
            _ => {
                assert_eq!(
                    fs::read(out.join("notes.txt")).unwrap(),
                    fs::read(&a).unwrap()
                );
                if tag == "several" {
                    assert_eq!(
                        fs::read(out.join("data.bin")).unwrap(),
                        fs::read(&b).unwrap()
                    );
                }
            }
        }
    }
    // In a layout: nixoci pull writes the artifact as one, which
    // verifies, unpacks to the same files, and pushes back.
    let layout = t.path().join("layout");
    run(nixoci()
        .arg("pull")
        .arg(reg.reference("oras/x:dir"))
        .arg(&layout)
        .arg("-q"));
    run(nixoci().arg("verify").arg(&layout));
    let unpacked = t.path().join("unpacked");
    run(nixoci().arg("unpack").arg(&layout).arg(&unpacked).arg("-q"));
    same_tree(&d, &unpacked.join("site"));
    run(nixoci()
        .arg("push")
        .arg(&layout)
        .arg(reg.reference("oras/copy:dir"))
        .arg("-q"));
    let again = t.path().join("again");
    run(nixoci()
        .args(["artifact", "pull"])
        .arg(reg.reference("oras/copy:dir"))
        .arg(&again)
        .arg("-q"));
    same_tree(&d, &again.join("site"));

    // A second pull into the same place: refused, nothing replaced;
    // --overwrite replaces.
    let out = t.path().join("out-several");
    fs::write(out.join("data.bin"), "changed").unwrap();
    let err = run_fail(
        nixoci()
            .args(["artifact", "pull"])
            .arg(reg.reference("oras/x:several"))
            .arg(&out),
    );
    assert!(
        err.contains("already exists") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(fs::read(out.join("data.bin")).unwrap(), b"changed");
    let leftovers: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    run(nixoci()
        .args(["artifact", "pull", "--overwrite"])
        .arg(reg.reference("oras/x:several"))
        .arg(&out)
        .arg("-q"));
    assert_eq!(
        fs::read(out.join("data.bin")).unwrap(),
        fs::read(&b).unwrap()
    );
}

/// nixoci pushes (files with media types, a directory, annotations from
/// ORAS's annotations file); ORAS pulls the same bytes and reads the
/// annotations; the manifest is OCI 1.1's (artifactType, the empty
/// config) and the same inputs give the same digest from another copy.
#[test]
fn nixoci_pushes_oras_pulls() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("in");
    let (_, _, d) = inputs(&work);
    let annotations = t.path().join("annotations.json");
    fs::write(
        &annotations,
        r#"{"$manifest": {"org.opencontainers.image.source": "https://example.org"}, "notes.txt": {"kind": "notes"}}"#,
    )
    .unwrap();
    let push = |from: &Path, tag: &str| -> Value {
        let out = run(nixoci()
            .args(["artifact", "push"])
            .arg(reg.reference(&format!("nix/art:{tag}")))
            .arg(format!("{}:text/plain", from.join("notes.txt").display()))
            .arg(from.join("data.bin"))
            .arg(from.join("site"))
            .args(["--artifact-type", "application/vnd.example.release"])
            .arg("--annotations-file")
            .arg(&annotations)
            .arg("--json"));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = push(&work, "1");
    let got = t.path().join("oras-out");
    fs::create_dir_all(&got).unwrap();
    let printed = oras(
        &reg.host(),
        &got,
        "c.pull(target=HOST + '/nix/art:1', outdir=WORK)\nprint(json.dumps(c.get_manifest(HOST + '/nix/art:1')))",
    );
    let manifest: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        manifest["artifactType"],
        json!("application/vnd.example.release")
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        json!("application/vnd.oci.empty.v1+json")
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        json!("https://example.org")
    );
    assert_eq!(manifest["layers"][0]["annotations"]["kind"], json!("notes"));
    assert_eq!(manifest["layers"][0]["mediaType"], json!("text/plain"));
    assert_eq!(
        fs::read(got.join("notes.txt")).unwrap(),
        fs::read(work.join("notes.txt")).unwrap()
    );
    assert_eq!(
        fs::read(got.join("data.bin")).unwrap(),
        fs::read(work.join("data.bin")).unwrap()
    );
    same_tree(&d, &got.join("site"));

    // The same inputs elsewhere (other mtimes, other path): the same
    // manifest, byte for byte.
    let copy = t.path().join("copy");
    let (_, _, _) = inputs(&copy);
    let second = push(&copy, "2");
    assert_eq!(first["digest"], second["digest"]);

    // The size limits: a file, and the whole, refused on push before
    // anything is sent, and on pull with nothing written.
    let err = run_fail(
        nixoci()
            .args(["artifact", "push", "--max-file-size", "100"])
            .arg(reg.reference("nix/art:big"))
            .arg(work.join("data.bin")),
    );
    assert!(err.contains("5000 bytes, more than the 100"), "{err}");
    let err = run_fail(
        nixoci()
            .args(["artifact", "push", "--max-total-size", "5010"])
            .arg(reg.reference("nix/art:big"))
            .arg(work.join("data.bin"))
            .arg(work.join("notes.txt")),
    );
    assert!(err.contains("add up to more than the 5010 bytes"), "{err}");
    let small = t.path().join("small");
    let err = run_fail(
        nixoci()
            .args(["artifact", "pull", "--max-file-size", "100"])
            .arg(reg.reference("nix/art:1"))
            .arg(&small),
    );
    assert!(
        err.contains("--max-file-size") || err.contains("100"),
        "{err}"
    );
    let left: Vec<_> = fs::read_dir(&small)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        left.iter().all(|n| *n == 0),
        "left behind in {}",
        small.display()
    );

    // A link out of a directory is refused, before anything is sent.
    let bad = t.path().join("bad");
    fs::create_dir_all(&bad).unwrap();
    symlink("../../etc/passwd", bad.join("escape")).unwrap();
    let err = run_fail(
        nixoci()
            .args(["artifact", "push"])
            .arg(reg.reference("nix/art:bad"))
            .arg(&bad),
    );
    assert!(err.contains("leads out of the directory"), "{err}");
    let err = run_fail(
        nixoci()
            .args(["artifact", "push"])
            .arg(reg.reference("nix/art:bad"))
            .arg(format!("{}:text/pl ain", work.join("notes.txt").display())),
    );
    assert!(err.contains("is not type/subtype"), "{err}");
}
