//! A declared root filesystem at the layer level (issue 24): inline files
//! (`files` entries with `text`), `directories`, `symlinks` and `perms`, checked in the layer's
//! tar headers, in the trees umoci and `nixoci unpack` make of the image
//! (modes with their setuid, setgid and sticky bits, owners, contents), in
//! two builds' digests, and in the messages of what is refused.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::trees::*;
use common::*;
use serde_json::{json, Value};

/// `nixoci build SPEC -o OUT` with `store` as the Nix store; the layout.
fn build_in_store(store: &Path, spec: &Path, out: &Path) -> PathBuf {
    run(nixoci()
        .env("NIX_STORE", store)
        .arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .arg("--quiet"));
    out.to_owned()
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
    let h = layer_headers(&layout, Some(0));
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
    let (mine, theirs) = unpack_both(&layout, t.path());
    assert_same_snapshot(&mine, &theirs);
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

/// The error of building an image of `layer`, whose `STORE` in a symlink
/// target stands for a stand-in store holding `aaaa-coreutils`.
fn build_error(layer: Value) -> String {
    let t = tempfile::tempdir().unwrap();
    file(t.path(), "store/aaaa-coreutils/bin/env", b"env\n", 0o555);
    file(t.path(), "conf", b"other\n", 0o644);
    let store = t.path().join("store");
    let layer: Value =
        serde_json::from_str(&layer.to_string().replace("STORE", store.to_str().unwrap())).unwrap();
    run_fail(
        nixoci()
            .arg("build")
            .env("NIX_STORE", t.path().join("store"))
            .arg(rootfs_spec(t.path(), layer))
            .arg("-o")
            .arg(t.path().join("layout"))
            .arg("--quiet"),
    )
}

/// Issue 24: each refusal names the entry at fault (both, for a conflict).
#[test]
fn bad_declared_entries_are_named() {
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
            json!({"files": [{"text": "x", "destination": "/x", "link": true}]}),
            vec!["files[0]", "\"link\" is for a source in the Nix store"],
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
        (
            json!({"symlinks": [
                {"path": "/bin/sh", "target": "busybox"},
                {"path": "/bin/sh", "target": "bash"}
            ]}),
            vec!["bin/sh", "symlinks[0]", "symlinks[1]", "symlink targets"],
        ),
        (
            json!({
                "symlinks": [{"path": "/bin", "target": "usr/bin"}],
                "files": [{"text": "x", "destination": "/bin/x"}]
            }),
            vec!["bin", "symlinks[0]", "files[0]"],
        ),
        (
            json!({"symlinks": [{"path": "/usr/bin/env", "target": "STORE/cccc-gone/bin/env"}]}),
            vec![
                "symlinks[0]",
                "cccc-gone/bin/env",
                "is in store path",
                "not on this machine",
            ],
        ),
        (
            json!({"symlinks": [{"path": "/usr/bin/", "target": "x"}]}),
            vec!["symlinks[0]", "not ending in /"],
        ),
        (
            json!({"symlinks": [{"path": "/usr/bin/env", "target": ""}]}),
            vec!["symlinks[0]", "/usr/bin/env", "empty"],
        ),
        (
            json!({"symlinks": [{"path": "/usr/bin/env"}]}),
            vec!["symlinks[0]", "missing field `target`"],
        ),
        (
            json!({
                "symlinks": [{"path": "/usr/bin/env", "target": "STORE/aaaa-coreutils/bin/env"}],
                "perms": [{"path": "STORE/aaaa-coreutils", "regex": ".*/var", "mode": "0775"}]
            }),
            vec![
                "perms[0]",
                "regex \".*/var\" matches no entry",
                "aaaa-coreutils",
            ],
        ),
        (
            json!({
                "symlinks": [{"path": "/usr/bin/env", "target": "STORE/aaaa-coreutils/bin/env"}],
                "perms": [
                    {"path": "STORE/aaaa-coreutils", "regex": ".*/bin(/.*)?", "uid": 1000},
                    {"path": "STORE/aaaa-coreutils/bin", "regex": ".*/env", "uid": 1001}
                ]
            }),
            vec![
                "/bin/env",
                "perms[0] and perms[1] set different owners (uid) (1000 and 1001)",
            ],
        ),
        (
            json!({"files": [{"text": "x", "destination": "/x"}], "perms": [{"path": "/", "regex": "[", "mode": "0700"}]}),
            vec!["perms[0]", "regex \"[\" is not valid"],
        ),
        (
            json!({"files": [{"text": "x", "destination": "/x"}], "perms": [{"path": "/", "regex": ".*"}]}),
            vec!["perms[0] sets nothing"],
        ),
    ];
    for (layer, needles) in cases {
        let e = build_error(layer.clone());
        for n in needles {
            assert!(e.contains(n), "{layer}: missing {n:?} in: {e}");
        }
    }
}

/// Issue 24: a link into the store brings its store path, at its own
/// path; a relative link is kept as written. Checked in the headers, in
/// umoci's and nixoci's unpacked trees, and in two builds' digests.
#[test]
fn symlinks_into_the_store_bring_their_store_path() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    file(&store, "aaaa-coreutils/bin/env", b"env\n", 0o555);
    file(&store, "bbbb-other/x", b"x\n", 0o444);
    let env = store.join("aaaa-coreutils/bin/env");
    let layer = json!({"symlinks": [
        {"path": "/usr/bin/env", "target": env},
        {"path": "/bin/env", "target": "../usr/bin/env"}
    ]});
    let spec = rootfs_spec(t.path(), layer);
    let build_to = |out: &str| build_in_store(&store, &spec, &t.path().join(out));
    let layout = build_to("layout");
    let h = layer_headers(&layout, Some(0));
    let link = |target: &[u8]| (b'2', 0o777, 0, 0, target.to_vec());
    assert_eq!(h["usr/bin/env"], link(env.to_str().unwrap().as_bytes()));
    assert_eq!(h["bin/env"], link(b"../usr/bin/env"));
    let in_store = |p: &str| {
        let full = store.join(p);
        full.strip_prefix("/").unwrap().to_str().unwrap().to_owned()
    };
    assert_eq!(
        h[&in_store("aaaa-coreutils/bin/env")],
        (b'0', 0o555, 0, 0, b"env\n".to_vec())
    );
    assert_eq!(h[&format!("{}/", in_store("aaaa-coreutils"))].1, 0o555);
    assert!(
        !h.keys().any(|k| k.contains("bbbb-other")),
        "only the linked store path: {:?}",
        h.keys()
    );

    let (mine, theirs) = unpack_both(&layout, t.path());
    assert_same_snapshot(&mine, &theirs);
    assert_eq!(
        fs::read_link(mine.join("bin/env")).unwrap(),
        Path::new("../usr/bin/env")
    );
    assert_eq!(
        manifest_digest(&layout),
        manifest_digest(&build_to("again"))
    );
}

/// Issue 24: a `perms` rule on a store path's `var` directory sets mode
/// and owner on it and everything in it, nothing else; checked in the tar
/// headers, in umoci's and nixoci's unpacked trees, and in two builds'
/// digests.
#[test]
fn perms_set_modes_and_owners_inside_a_store_path() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    file(&store, "aaaa-app/bin/app", b"app\n", 0o555);
    file(&store, "aaaa-app/var/cache/c", b"c\n", 0o444);
    let app = store.join("aaaa-app");
    let layer = json!({
        "closure": [app],
        "perms": [{"path": app, "regex": ".*/var(/.*)?", "mode": "0775", "uid": 1000, "gid": 1000}]
    });
    let spec = rootfs_spec(t.path(), layer);
    let build_to = |out: &str| build_in_store(&store, &spec, &t.path().join(out));
    let layout = build_to("layout");
    assert_eq!(
        manifest_digest(&layout),
        manifest_digest(&build_to("again"))
    );
    let h = layer_headers(&layout, Some(0));
    let rel = |p: &str| app.join(p).to_str().unwrap()[1..].to_owned();
    let meta = |k: String| {
        let (_, mode, uid, gid, _) = h[&k];
        (mode, uid, gid)
    };
    assert_eq!(meta(rel("var") + "/"), (0o775, 1000, 1000));
    assert_eq!(meta(rel("var/cache") + "/"), (0o775, 1000, 1000));
    assert_eq!(meta(rel("var/cache/c")), (0o775, 1000, 1000));
    assert_eq!(meta(rel("bin/app")), (0o555, 0, 0));
    assert_eq!(meta(rel("bin") + "/"), (0o555, 0, 0));
    assert_eq!(meta(rel("")), (0o555, 0, 0));

    let (mine, theirs) = unpack_both(&layout, t.path());
    assert_same_snapshot(&mine, &theirs);
    for root in [&mine, &theirs] {
        let stat = |p: &str| {
            let m = fs::symlink_metadata(root.join(rel(p))).unwrap();
            (m.mode() & 0o7777, m.uid(), m.gid())
        };
        assert_eq!(
            stat("var/cache/c"),
            (0o775, 1000, 1000),
            "{}",
            root.display()
        );
        assert_eq!(stat("var"), (0o775, 1000, 1000));
        assert_eq!(stat("bin/app"), (0o555, 0, 0));
    }
}
