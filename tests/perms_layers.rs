//! Issue 24: `perms` rules of `nixoci layers` (automatic layering, what
//! `ociLayers` runs), with a stand-in store (`NIX_STORE`): a rule on one
//! store path's `var` directory sets mode and owner on exactly what it
//! matches, in the layer that holds it, and leaves the other layers as
//! they are; umoci unpacks the same; two builds give the same bytes; a
//! rule that matches in no layer, and two rules that disagree, are refused
//! by name, leaving nothing behind.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const APP: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-app";
const DEP: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-dep";

/// A stand-in store of two paths, each with a `var` directory, and a plan
/// putting each in a layer of its own (app first).
fn store_and_plan(t: &Path) -> PathBuf {
    let store = t.join("store");
    file(&store, &format!("{APP}/bin/app"), b"app\n", 0o555);
    file(&store, &format!("{APP}/var/cache/c"), b"c\n", 0o444);
    file(&store, &format!("{APP}/var/log/l"), b"l\n", 0o444);
    file(&store, &format!("{APP}/share/var.txt"), b"v\n", 0o444);
    file(&store, &format!("{DEP}/var/d"), b"d\n", 0o444);
    file(&store, &format!("{DEP}/lib/libd.so"), b"lib\n", 0o555);
    write_json(
        &t.join("plan.json"),
        &json!({
            "strategy": "stable",
            "maxLayers": 2,
            "layers": [
                {"paths": [store.join(APP)]},
                {"paths": [store.join(DEP)]}
            ]
        }),
    );
    store
}

/// `nixoci layers` of a spec with `plan.json` and `perms` into `out`:
/// stderr on failure, else the layers' descriptors.
fn layers(t: &Path, store: &Path, perms: Value, out: &str) -> Result<Vec<Value>, String> {
    let spec = t.join(format!("{out}.json"));
    let mut v = json!({"plan": "plan.json"});
    if perms != json!(null) {
        v["perms"] = perms;
    }
    write_json(&spec, &v);
    let o = nixoci()
        .env("NIX_STORE", store)
        .arg("layers")
        .arg(&spec)
        .arg("-o")
        .arg(t.join(out))
        .args(["--threads", "2", "--quiet"])
        .output()
        .unwrap();
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    Ok(read_json(&t.join(out).join("layers.json"))["layers"]
        .as_array()
        .unwrap()
        .clone())
}

/// (mode, uid, gid) of each entry of a gzip layer blob, by tar path.
fn headers(blob: &Path) -> BTreeMap<String, (u32, u64, u64)> {
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&fs::read(blob).unwrap()[..])
        .read_to_end(&mut tar)
        .unwrap();
    tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            )
        })
        .collect()
}

fn blob_of(t: &Path, out: &str, layer: &Value) -> PathBuf {
    blob_path(&t.join(out), layer["digest"].as_str().unwrap())
}

/// Issue 24's example on automatic layers: `{path = app; regex =
/// ".*/var(/.*)?"; mode = "0775"; uid = 1000; gid = 1000;}` sets the
/// `var` directory of app and everything in it, nothing else; dep's layer
/// (where the rule matches nothing, which is fine: it matches in app's)
/// is byte-identical to a build without rules; the same bytes twice;
/// umoci unpacks the modes and owners the headers say.
#[test]
fn a_rule_on_a_store_paths_var_directory_sets_exactly_what_it_matches() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    let store = store_and_plan(t);
    let app = store.join(APP);
    let rule =
        json!([{"path": app, "regex": ".*/var(/.*)?", "mode": "0775", "uid": 1000, "gid": 1000}]);
    let plain = layers(t, &store, json!(null), "plain").unwrap();
    let ruled = layers(t, &store, rule.clone(), "ruled").unwrap();
    let again = layers(t, &store, rule, "again").unwrap();
    assert_eq!(ruled, again);
    assert_eq!(blobs(&t.join("ruled")), blobs(&t.join("again")));
    assert_eq!(plain.len(), 2);
    assert_eq!(ruled[1], plain[1], "dep's layer does not change");
    assert_ne!(ruled[0]["digest"], plain[0]["digest"]);

    let before = headers(&blob_of(t, "plain", &plain[0]));
    let after = headers(&blob_of(t, "ruled", &ruled[0]));
    let prefix = &app.to_str().unwrap()[1..];
    let var = format!("{prefix}/var");
    let matched: Vec<&String> = after
        .keys()
        .filter(|p| p.trim_end_matches('/') == var || p.starts_with(&format!("{var}/")))
        .collect();
    let want: Vec<String> = ["var/", "var/cache/", "var/cache/c", "var/log/", "var/log/l"]
        .iter()
        .map(|p| format!("{prefix}/{p}"))
        .collect();
    assert_eq!(matched, want.iter().collect::<Vec<_>>());
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (p, meta) in &after {
        if matched.contains(&p) {
            assert_eq!(*meta, (0o775, 1000, 1000), "{p}");
        } else {
            // bin/, share/var.txt (a var, not a var directory), the
            // store path and its parents: as without the rule.
            assert_eq!(*meta, before[p], "{p}");
        }
    }
    assert_eq!(after[&format!("{prefix}/share/var.txt")], (0o444, 0, 0));
    assert_eq!(after[&format!("{prefix}/")], (0o555, 0, 0));

    write_json(
        &t.join("image.json"),
        &json!({"layers": ["ruled"], "architecture": "amd64"}),
    );
    let layout = build(&t.join("image.json"), &t.join("layout"));
    let bundle = t.join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let root = bundle.join("rootfs");
    for (p, want) in &after {
        let m = fs::symlink_metadata(root.join(p.trim_end_matches('/'))).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid() as u64, m.gid() as u64),
            *want,
            "{p}"
        );
    }
    let d = fs::symlink_metadata(root.join(store.join(DEP).join("var").strip_prefix("/").unwrap()))
        .unwrap();
    assert_eq!((d.mode() & 0o7777, d.uid(), d.gid()), (0o555, 0, 0));
}

/// A rule that matches no entry of any layer (a regex that never matches,
/// a path none of them holds), and two rules that set one entry's mode to
/// different values, are errors naming them; nothing is written.
#[test]
fn rules_that_match_nothing_or_disagree_are_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    let store = store_and_plan(t);
    let app = store.join(APP);
    let nowhere = store.join("cccccccccccccccccccccccccccccccc-gone");
    let cases = [
        (
            json!([{"path": app, "regex": ".*/var(/.*)?", "uid": 1000},
                   {"path": app, "regex": ".*/nope", "mode": "0700"}]),
            format!(
                "perms[1]: regex \".*/nope\" matches no entry of any layer at or under {}",
                app.display()
            ),
        ),
        (
            json!([{"path": nowhere, "regex": ".*", "mode": "0700"}]),
            format!(
                "perms[0]: regex \".*\" matches no entry of any layer at or under {}",
                nowhere.display()
            ),
        ),
        (
            json!([{"path": app, "regex": ".*/var(/.*)?", "mode": "0775"},
                   {"path": "/", "regex": ".*/cache", "mode": "0700"}]),
            format!(
                "{}/var/cache: perms[0] and perms[1] set different modes (775 and 700); make the rules agree or not overlap",
                app.display()
            ),
        ),
        (
            json!([{"path": app, "regex": ".*/var"}]),
            "perms[0] sets nothing: give \"mode\", \"uid\" or \"gid\"".to_owned(),
        ),
        (
            json!([{"path": app, "regex": ".*/var", "mode": 775}]),
            "perms[0].mode".to_owned(),
        ),
    ];
    for (i, (perms, want)) in cases.into_iter().enumerate() {
        let out = format!("bad{i}");
        let err = layers(t, &store, perms, &out).unwrap_err();
        assert!(err.contains(&want), "case {i}: want {want:?} in:\n{err}");
        assert!(
            err.contains(&format!("{out}.json")),
            "names the spec: {err}"
        );
        assert!(!t.join(&out).exists(), "case {i}: {out} written");
    }
}
