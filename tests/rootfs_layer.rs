//! A declared root filesystem at the layer level (issue 24): inline files
//! (`files` entries with `text`) and `directories`, checked in the layer's
//! tar headers, in the trees umoci and `nixoci unpack` make of the image
//! (modes with their setuid, setgid and sticky bits, owners, contents), in
//! two builds' digests, and in the messages of what is refused.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// One tar entry: (type byte, mode, uid, gid, content).
type Header = (u8, u32, u64, u64, Vec<u8>);

/// The entries of the image's only layer, by path.
fn layer_headers(layout: &Path) -> std::collections::BTreeMap<String, Header> {
    let m = read_json(&blob_path(layout, &manifest_digest(layout)));
    let blob = blob_path(layout, m["layers"][0]["digest"].as_str().unwrap());
    let bytes = fs::read(blob).unwrap();
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut tar)
        .unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                (
                    h.entry_type().as_byte(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    content,
                ),
            )
        })
        .collect()
}

fn rootfs_spec(t: &Path, layer: Value) -> PathBuf {
    let spec = t.join("image.json");
    write_json(&spec, &json!({"layers": [layer], "architecture": "amd64"}));
    spec
}

fn declared_layer(t: &Path) -> Value {
    file(t, "conf", b"listen 80\n", 0o644);
    json!({
        "files": [
            {"text": "listen 80\n", "destination": "/etc/app.conf"},
            {"source": "conf", "destination": "/etc/app.conf"},
            {"text": "secret\n", "destination": "/etc/app/key", "mode": "0640", "uid": 1000, "gid": 1000},
            {"text": "", "destination": "/var/lib/app/.keep"}
        ],
        "directories": [
            {"path": "/tmp", "mode": "1777"},
            {"path": "/var/lib/app", "uid": 1000, "gid": 1000, "mode": "0750"},
            {"path": "/srv/shared", "mode": "2775", "gid": 100},
            {"path": "/opt"}
        ]
    })
}

/// Issue 24: inline files and declared directories, in the tar headers.
#[test]
fn inline_files_and_directories_are_in_the_layer_headers() {
    let t = tempfile::tempdir().unwrap();
    let layer = declared_layer(t.path());
    let layout = build(&rootfs_spec(t.path(), layer), &t.path().join("layout"));
    let h = layer_headers(&layout);
    let (dir, reg) = (b'5', b'0');
    let want: Vec<(&str, Header)> = vec![
        ("etc/", (dir, 0o755, 0, 0, vec![])),
        ("etc/app/", (dir, 0o755, 0, 0, vec![])),
        ("etc/app.conf", (reg, 0o444, 0, 0, b"listen 80\n".to_vec())),
        (
            "etc/app/key",
            (reg, 0o640, 1000, 1000, b"secret\n".to_vec()),
        ),
        ("opt/", (dir, 0o755, 0, 0, vec![])),
        ("srv/", (dir, 0o755, 0, 0, vec![])),
        ("srv/shared/", (dir, 0o2775, 0, 100, vec![])),
        ("tmp/", (dir, 0o1777, 0, 0, vec![])),
        ("var/", (dir, 0o755, 0, 0, vec![])),
        ("var/lib/", (dir, 0o755, 0, 0, vec![])),
        ("var/lib/app/", (dir, 0o750, 1000, 1000, vec![])),
        ("var/lib/app/.keep", (reg, 0o444, 0, 0, vec![])),
    ];
    let got: Vec<(&str, Header)> = h.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut want_sorted = want.clone();
    want_sorted.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(got, want_sorted);
}

/// Issue 24: umoci and `nixoci unpack` make the same tree of the image,
/// with the sticky and setgid bits and the owners the spec gives.
#[test]
fn umoci_and_nixoci_unpack_the_declared_tree() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let layer = declared_layer(t.path());
    let layout = build(&rootfs_spec(t.path(), layer), &t.path().join("layout"));
    let mine = t.path().join("mine");
    run(nixoci()
        .arg("unpack")
        .arg(format!("{}:latest", layout.display()))
        .arg(&mine)
        .arg("-q"));
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let theirs = bundle.join("rootfs");
    let (a, b) = (snapshot(&mine), snapshot(&theirs));
    if let Some(d) = diff(&a, &b) {
        panic!("nixoci unpack and umoci unpack differ: {d}");
    }
    for root in [&mine, &theirs] {
        let stat = |p: &str| {
            let m = fs::symlink_metadata(root.join(p)).unwrap();
            (m.mode() & 0o7777, m.uid(), m.gid())
        };
        assert_eq!(stat("tmp"), (0o1777, 0, 0), "{}", root.display());
        assert_eq!(stat("srv/shared"), (0o2775, 0, 100), "{}", root.display());
        assert_eq!(stat("var/lib/app"), (0o750, 1000, 1000));
        assert_eq!(stat("etc/app/key"), (0o640, 1000, 1000));
        assert_eq!(fs::read(root.join("etc/app.conf")).unwrap(), b"listen 80\n");
    }
}

/// Issue 24: the same spec built twice, from different directories,
/// gives the same manifest.
#[test]
fn declared_entries_build_to_the_same_digest_twice() {
    let digests: Vec<String> = (0..2)
        .map(|_| {
            let t = tempfile::tempdir().unwrap();
            let layer = declared_layer(t.path());
            let layout = build(&rootfs_spec(t.path(), layer), &t.path().join("layout"));
            manifest_digest(&layout)
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
}

fn build_error(layer: Value) -> String {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "conf", b"other\n", 0o644);
    run_fail(
        nixoci()
            .arg("build")
            .arg(rootfs_spec(t.path(), layer))
            .arg("-o")
            .arg(t.path().join("layout"))
            .arg("--quiet"),
    )
}

/// Issue 24: each refusal names the entry at fault (both, for a conflict).
#[test]
fn bad_inline_files_and_directories_are_named() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"files": [{"text": "x", "source": "conf", "destination": "/x"}]}),
            vec!["files[0]", "both \"source\" and \"text\""],
        ),
        (
            json!({"files": [{"destination": "/x"}]}),
            vec!["files[0]", "needs a \"source\""],
        ),
        (
            json!({"files": [{"text": "x"}]}),
            vec!["files[0]", "\"text\" needs a \"destination\""],
        ),
        (
            json!({"files": [{"text": "x", "destination": "/etc/"}]}),
            vec!["files[0]", "/etc/", "not ending in /"],
        ),
        (
            json!({"files": [{"text": "x", "destination": "etc/x"}]}),
            vec!["files[0]", "absolute"],
        ),
        (
            json!({"files": [
                {"text": "mine\n", "destination": "/etc/app.conf"},
                {"source": "conf", "destination": "/etc/app.conf"}
            ]}),
            vec!["etc/app.conf", "files[0] (inline text)", "conf", "content"],
        ),
        (
            json!({"directories": [
                {"path": "/tmp", "mode": "1777"},
                {"path": "/tmp", "mode": "0755"}
            ]}),
            vec!["tmp", "directories[0]", "directories[1]", "modes or owners"],
        ),
        (
            json!({"directories": [{"path": "/tmp", "mode": 1777}]}),
            vec!["directories[0]", "octal string"],
        ),
        (
            json!({"directories": [{"path": "/tmp/"}]}),
            vec!["directories[0]", "not ending in /"],
        ),
        (
            json!({"directories": [{"path": "/x", "owner": 1}]}),
            vec!["directories[0]", "unknown field `owner`"],
        ),
    ];
    for (layer, needles) in cases {
        let e = build_error(layer.clone());
        for n in needles {
            assert!(e.contains(n), "{layer}: missing {n:?} in: {e}");
        }
    }
}
