//! `nixoci layers`: several layers built at once from a plan's groups of
//! store paths, with a stand-in store (`NIX_STORE`), and read as layers of
//! an image by `nixoci manifest` / `build` / `layout` and by umoci.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// A stand-in store with paths of a few sizes, and a plan over them.
fn store_and_plan(t: &Path) -> (PathBuf, Vec<Vec<PathBuf>>) {
    let store = t.join("store");
    let noise = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(i as u8 >> 3))
            .collect()
    };
    file(
        &store,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-big/share/data",
        &noise(3 << 20, 7),
        0o444,
    );
    file(
        &store,
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-mid/lib/libm.so",
        &noise(300_000, 11),
        0o444,
    );
    file(
        &store,
        "cccccccccccccccccccccccccccccccc-small/etc/conf",
        b"small\n",
        0o444,
    );
    file(
        &store,
        "dddddddddddddddddddddddddddddddd-tiny/bin/tool",
        b"#!/bin/sh\n",
        0o555,
    );
    file(
        &store,
        "55555555555555555555555555555555-other/share/x",
        &noise(40_000, 13),
        0o444,
    );
    let p = |n: &str| store.join(n);
    let groups = vec![
        vec![p("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-big")],
        vec![
            p("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-mid"),
            p("55555555555555555555555555555555-other"),
        ],
        vec![
            p("cccccccccccccccccccccccccccccccc-small"),
            p("dddddddddddddddddddddddddddddddd-tiny"),
        ],
    ];
    let plan = json!({
        "strategy": "stable",
        "maxLayers": 3,
        "layers": groups.iter().map(|g| json!({"paths": g, "why": "a test"})).collect::<Vec<_>>(),
    });
    write_json(&t.join("plan.json"), &plan);
    write_json(
        &t.join("layers.json"),
        &json!({"plan": "plan.json", "compression": "gzip"}),
    );
    (store, groups)
}

fn layers(t: &Path, store: &Path, out: &str, threads: &str) -> Value {
    run(nixoci()
        .env("NIX_STORE", store)
        .arg("layers")
        .arg(t.join("layers.json"))
        .arg("-o")
        .arg(t.join(out))
        .args(["--threads", threads, "--quiet"]));
    read_json(&t.join(out).join("layers.json"))
}

/// The store paths (top-level entries under the store) a layer blob holds.
fn store_paths_in(blob: &Path, store: &Path) -> BTreeSet<PathBuf> {
    let data = fs::read(blob).unwrap();
    let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&data[..]));
    let rel = store.strip_prefix("/").unwrap();
    tar.entries()
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path().unwrap().into_owned();
            let under = path.strip_prefix(rel).ok()?;
            let first = under.components().next()?;
            Some(store.join(first))
        })
        .collect()
}

/// Each group becomes one layer, in the plan's order, holding exactly its
/// store paths; the same bytes whatever the thread count; the plan is kept.
#[test]
fn one_layer_per_group_same_bytes_at_any_thread_count() {
    let t = tempfile::tempdir().unwrap();
    let (store, groups) = store_and_plan(t.path());
    let one = layers(t.path(), &store, "one", "1");
    let three = layers(t.path(), &store, "three", "3");
    assert_eq!(one, three);
    assert_eq!(blobs(&t.path().join("one")), blobs(&t.path().join("three")));
    let listed = one["layers"].as_array().unwrap();
    assert_eq!(listed.len(), groups.len());
    for (layer, group) in listed.iter().zip(&groups) {
        let want: BTreeSet<PathBuf> = group.iter().cloned().collect();
        let blob = blob_path(&t.path().join("one"), layer["digest"].as_str().unwrap());
        assert_eq!(store_paths_in(&blob, &store), want);
        let paths: BTreeSet<PathBuf> = serde_json::from_value(layer["storePaths"].clone()).unwrap();
        assert_eq!(paths, want);
    }
    assert_eq!(one["plan"], read_json(&t.path().join("plan.json")));
}

/// A layers directory is taken wherever a layer directory is: its layers
/// go into the image in order, after an explicit layer; as a base, its
/// store paths are left out; umoci unpacks the result to every file.
#[test]
fn a_layers_directory_is_a_list_of_layers_in_an_image() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let (store, _) = store_and_plan(t.path());
    let closure = layers(t.path(), &store, "closure", "2");
    file(t.path(), "top/app", b"the app\n", 0o555);
    write_json(
        &t.path().join("top.json"),
        &json!({
            "files": [{"source": "top/app", "destination": "/bin/app"},
                      {"source": store.join("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-mid")}],
            "base": ["closure"],
        }),
    );
    run(nixoci()
        .env("NIX_STORE", &store)
        .arg("layer")
        .arg(t.path().join("top.json"))
        .arg("-o")
        .arg(t.path().join("top-layer"))
        .arg("-q"));
    let top = read_json(&t.path().join("top-layer/layer.json"));
    assert_eq!(
        top["storePaths"],
        json!([]),
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-mid is in the base"
    );
    write_json(
        &t.path().join("image.json"),
        &json!({"layers": ["closure", "top-layer"], "config": {"Cmd": ["/bin/app"]}}),
    );
    let layout = build(&t.path().join("image.json"), &t.path().join("layout"));
    run(nixoci().arg("verify").arg(&layout));
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob_path(
        &layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let digests: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = closure["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    want.push(top["digest"].as_str().unwrap());
    assert_eq!(digests, want);
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--rootless")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let root = bundle.join("rootfs");
    let rel = |p: &str| root.join(store.strip_prefix("/").unwrap()).join(p);
    assert_eq!(
        fs::read(rel("cccccccccccccccccccccccccccccccc-small/etc/conf")).unwrap(),
        b"small\n"
    );
    assert_eq!(
        fs::read(rel("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-big/share/data")).unwrap(),
        fs::read(store.join("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-big/share/data")).unwrap()
    );
    assert_eq!(fs::read(root.join("bin/app")).unwrap(), b"the app\n");
}

/// A plan that names a path outside the store, or a missing plan, is an
/// error naming it, and nothing is left behind.
#[test]
fn bad_plans_are_named() {
    let t = tempfile::tempdir().unwrap();
    let (store, _) = store_and_plan(t.path());
    let fail = || {
        run_fail(
            nixoci()
                .env("NIX_STORE", &store)
                .arg("layers")
                .arg(t.path().join("layers.json"))
                .arg("-o")
                .arg(t.path().join("out")),
        )
    };
    write_json(
        &t.path().join("plan.json"),
        &json!({"strategy": "stable", "maxLayers": 1, "layers": [{"paths": ["/elsewhere/x"]}]}),
    );
    let err = fail();
    assert!(err.contains("/elsewhere/x"), "{err}");
    assert!(!t.path().join("out").exists());
    fs::remove_file(t.path().join("plan.json")).unwrap();
    let err = fail();
    assert!(err.contains("plan.json"), "{err}");
}

/// A hand-edited plan is taken only as `nixoci plan` would have made it:
/// each broken rule is refused before anything is written, with the plan
/// file named once and the layer or path at fault.
#[test]
fn hand_edited_plans_that_break_the_rules_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (store, groups) = store_and_plan(t.path());
    let plan_file = t.path().join("plan.json");
    let try_plan = |plan: Value| {
        write_json(&plan_file, &plan);
        let err = run_fail(
            nixoci()
                .env("NIX_STORE", &store)
                .arg("layers")
                .arg(t.path().join("layers.json"))
                .arg("-o")
                .arg(t.path().join("out")),
        );
        assert!(!t.path().join("out").exists(), "{err}");
        let name = plan_file.display().to_string();
        assert_eq!(err.matches(&name).count(), 1, "the plan named once: {err}");
        assert!(!err.contains("layers.json"), "{err}");
        err
    };
    let plan = |layers: Value, max: usize| json!({"strategy": "stable", "maxLayers": max, "layers": layers});
    let layer = |paths: &[&PathBuf]| json!({"paths": paths, "narSize": 1, "why": "by hand"});
    let (a, b, c) = (&groups[0][0], &groups[1][0], &groups[2][0]);

    let err = try_plan(plan(json!([layer(&[a, b]), layer(&[c, b])]), 3));
    assert!(
        err.contains(&format!(
            "{} is in layers[0] and layers[1]: a store path goes in one layer only",
            b.display()
        )),
        "{err}"
    );
    let err = try_plan(plan(json!([layer(&[a, a])]), 3));
    assert!(err.contains("is twice in layers[0]"), "{err}");
    let err = try_plan(plan(json!([layer(&[a]), {"paths": []}]), 3));
    assert!(err.contains("layers[1] is empty"), "{err}");
    let err = try_plan(plan(json!([layer(&[a]), layer(&[b]), layer(&[c])]), 2));
    assert!(
        err.contains("3 layers, more than its maxLayers (2)"),
        "{err}"
    );
    let many: Vec<Value> = (0..128).map(|_| layer(&[a])).collect();
    let err = try_plan(plan(json!(many), 128));
    assert!(
        err.contains("maxLayers: 128 layers is more than 127"),
        "{err}"
    );
    let mut p = plan(json!([layer(&[a])]), 3);
    p["strategy"] = json!("by hand");
    let err = try_plan(p);
    assert!(
        err.contains("strategy: unknown strategy \"by hand\": expected popularity or stable"),
        "{err}"
    );
    let err = try_plan(json!({"maxLayers": 3, "layers": [layer(&[a])]}));
    assert!(err.contains("missing field `strategy`"), "{err}");
    let mut p = plan(json!([layer(&[a])]), 3);
    p["maxlayers"] = json!(4);
    let err = try_plan(p);
    assert!(err.contains("unknown field `maxlayers`"), "{err}");
    for (bad, why) in [
        ("/".to_owned(), "not under"),
        (
            format!("{}/{}-x\0y", store.display(), "a".repeat(32)),
            "'\\0' in its name",
        ),
        (format!("{}/short-x", store.display()), "no hash part"),
        (
            format!("{}/etc/conf", a.display()),
            "a path inside a store path",
        ),
    ] {
        let err = try_plan(plan(json!([layer(&[a]), {"paths": [bad]}]), 3));
        assert!(err.contains("layers[1].paths[0]: "), "{err}");
        assert!(
            err.contains(&format!("is not a store path ({why}")),
            "{err}"
        );
    }
}

/// `link`: a store path's files are put at a destination as symbolic links
/// into the store (directories made), not copied; a source outside the
/// store is refused, naming it.
#[test]
fn link_puts_symlinks_into_the_store_not_copies() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    file(
        &store,
        "ffff-pkg/bin/tool",
        b"#!/bin/sh\necho tool\n",
        0o555,
    );
    file(
        &store,
        "ffff-pkg/share/doc/readme",
        &vec![b'x'; 100_000],
        0o444,
    );
    std::os::unix::fs::symlink("tool", store.join("ffff-pkg/bin/alias")).unwrap();
    let pkg = store.join("ffff-pkg");
    write_json(
        &t.path().join("spec.json"),
        &json!({"files": [{"source": pkg, "destination": "/", "link": true}, {"source": pkg}],
                "compression": "none"}),
    );
    run(nixoci()
        .env("NIX_STORE", &store)
        .arg("layer")
        .arg(t.path().join("spec.json"))
        .arg("-o")
        .arg(t.path().join("out"))
        .arg("-q"));
    let info = read_json(&t.path().join("out/layer.json"));
    let blob = blob_path(&t.path().join("out"), info["digest"].as_str().unwrap());
    let data = fs::read(&blob).unwrap();
    let mut tar = tar::Archive::new(&data[..]);
    let mut seen = std::collections::BTreeMap::new();
    for e in tar.entries().unwrap() {
        let e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        seen.insert(path, (e.header().entry_type(), link, e.size()));
    }
    for (rel, target) in [
        ("bin/tool", pkg.join("bin/tool")),
        ("bin/alias", pkg.join("bin/alias")),
        ("share/doc/readme", pkg.join("share/doc/readme")),
    ] {
        let (kind, link, _) = &seen[rel];
        assert!(kind.is_symlink(), "{rel}: {kind:?}");
        assert_eq!(link.as_deref(), Some(target.to_str().unwrap()), "{rel}");
    }
    assert!(seen["share/doc"].0.is_dir());
    // The content is in the layer once: at the store path.
    let store_rel = pkg.strip_prefix("/").unwrap().join("share/doc/readme");
    assert_eq!(seen[store_rel.to_str().unwrap()].2, 100_000);
    let copies = seen
        .values()
        .filter(|(_, _, size)| *size == 100_000)
        .count();
    assert_eq!(copies, 1);

    file(t.path(), "outside/x", b"x", 0o444);
    write_json(
        &t.path().join("bad.json"),
        &json!({"files": [{"source": "outside", "destination": "/", "link": true}]}),
    );
    let err = run_fail(
        nixoci()
            .env("NIX_STORE", &store)
            .arg("layer")
            .arg(t.path().join("bad.json"))
            .arg("-o")
            .arg(t.path().join("bad")),
    );
    assert!(err.contains("outside") && err.contains("link"), "{err}");
}
