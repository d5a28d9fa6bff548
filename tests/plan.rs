//! `nixoci plan`: the layering plan of a closure graph, driven through the
//! binary, on graph files written here and on one Nix 2.8 writes.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

/// A closure graph of 40 paths: an app over a chain of libraries, each
/// referring to glibc; sizes from 2 KiB to 64 MiB.
fn graph() -> Value {
    let glibc = "/nix/store/00000000000000000000000000000000-glibc-2.38-44";
    let mut entries = vec![json!({
        "path": glibc, "narSize": 30 << 20, "references": [glibc],
        "narHash": "sha256:x", "closureSize": 1
    })];
    let mut below = glibc.to_owned();
    for i in 1..40 {
        let path = format!("/nix/store/{i:032}-lib{i}-1.{i}");
        entries.push(json!({
            "path": path,
            "narSize": 2048u64 << (i % 16),
            "references": [below, glibc],
        }));
        below = path;
    }
    Value::Array(entries)
}

fn plan_cmd(graph: &Path) -> std::process::Command {
    let mut c = nixoci();
    c.arg("plan").arg(graph);
    c
}

fn stdout(cmd: &mut std::process::Command) -> Vec<u8> {
    run(cmd).stdout
}

/// Every path of the plan, checking that none is there twice.
fn planned(plan: &Value) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for l in plan["layers"].as_array().unwrap() {
        for p in l["paths"].as_array().unwrap() {
            assert!(seen.insert(p.as_str().unwrap().to_owned()), "{p} twice");
        }
    }
    seen
}

fn paths_of(graph: &Value) -> BTreeSet<String> {
    graph
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn plan_to_a_file_and_to_stdout_same_bytes_every_path_once() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("graph.json");
    write_json(&g, &graph());
    for strategy in ["stable", "popularity"] {
        let out = dir.path().join(format!("{strategy}.json"));
        fs::write(&out, "old").unwrap();
        // An existing file is replaced only with --force.
        let err = run_fail(
            plan_cmd(&g)
                .args(["--max-layers", "10", "--strategy", strategy, "-o"])
                .arg(&out),
        );
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(fs::read(&out).unwrap(), b"old");
        let printed = run(plan_cmd(&g)
            .args([
                "--max-layers",
                "10",
                "--strategy",
                strategy,
                "--force",
                "-o",
            ])
            .arg(&out))
        .stdout;
        assert!(printed.is_empty());
        let to_stdout = stdout(plan_cmd(&g).args(["--max-layers", "10", "--strategy", strategy]));
        assert_eq!(fs::read(&out).unwrap(), to_stdout);
        let plan: Value = serde_json::from_slice(&to_stdout).unwrap();
        assert_eq!(plan["strategy"], strategy);
        assert_eq!(plan["maxLayers"], 10);
        assert!(plan["layers"].as_array().unwrap().len() <= 10);
        assert_eq!(planned(&plan), paths_of(&graph()));
        for l in plan["layers"].as_array().unwrap() {
            assert!(!l["why"].as_str().unwrap().is_empty());
        }
    }
    // The default strategy is stable, and the default budget 100.
    let plan: Value = serde_json::from_slice(&stdout(&mut plan_cmd(&g))).unwrap();
    assert_eq!(plan["strategy"], "stable");
    assert_eq!(plan["maxLayers"], 100);
}

/// The file's order of entries and of references changes no byte.
#[test]
fn shuffled_graph_file_same_plan() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    write_json(&a, &graph());
    let mut reversed = graph().as_array().unwrap().clone();
    reversed.reverse();
    for e in &mut reversed {
        e["references"].as_array_mut().unwrap().reverse();
    }
    write_json(&b, &Value::Array(reversed));
    for strategy in ["stable", "popularity"] {
        let args = ["--max-layers", "7", "--strategy", strategy];
        assert_eq!(
            stdout(plan_cmd(&a).args(args)),
            stdout(plan_cmd(&b).args(args))
        );
    }
}

#[test]
fn bad_budgets_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("graph.json");
    write_json(&g, &graph());
    for (n, says) in [
        ("0", "at least 1"),
        ("128", "more than 127"),
        ("-1", "not a number"),
    ] {
        let out = dir.path().join("layers.json");
        let err = run_fail(
            plan_cmd(&g)
                .arg(format!("--max-layers={n}"))
                .arg("-o")
                .arg(&out),
        );
        assert!(err.contains("--max-layers"), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!out.exists());
    }
    // 127 and 1 are budgets.
    run(plan_cmd(&g).args(["--max-layers", "127"]));
    let one: Value =
        serde_json::from_slice(&stdout(plan_cmd(&g).args(["--max-layers", "1"]))).unwrap();
    assert_eq!(one["layers"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_graphs_name_the_file_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("graph.json");
    let out = dir.path().join("layers.json");
    let fail = |v: &Value, extra: &[&str]| {
        write_json(&g, v);
        let err = run_fail(plan_cmd(&g).args(extra).arg("-o").arg(&out));
        assert!(err.contains(&g.display().to_string()), "{err}");
        assert!(!out.exists(), "{err}");
        err
    };
    let ax = format!("/nix/store/{}-x", "a".repeat(32));
    let by = format!("/nix/store/{}-y", "b".repeat(32));
    let err = fail(
        &json!([{"path": ax, "narSize": 1, "references": [by]}]),
        &[],
    );
    assert!(
        err.contains(&format!(
            "{ax} refers to {by}, which the graph does not list"
        )),
        "{err}"
    );
    let err = fail(
        &json!([
            {"path": ax, "narSize": 1, "references": []},
            {"path": ax, "narSize": 1, "references": []},
        ]),
        &[],
    );
    assert!(err.contains(&format!("{ax} is listed twice")), "{err}");
    let err = fail(
        &json!([
            {"path": ax, "narSize": 1, "references": [by]},
            {"path": by, "narSize": 1, "references": [ax]},
        ]),
        &[],
    );
    assert!(
        err.contains(&format!("reference cycle: {ax} -> {by} -> {ax}")),
        "{err}"
    );
    let err = fail(&json!([{"path": ax, "references": []}]), &[]);
    assert!(err.contains(&format!("entry 0 ({ax})")), "{err}");
    assert!(err.contains("narSize"), "{err}");
    let err = fail(&json!({"other": []}), &[]);
    assert!(err.contains("no attribute \"closure\""), "{err}");
    assert!(err.contains("--attr"), "{err}");
    let err = fail(&json!([]), &["--attr", "graph"]);
    assert!(err.contains("is a list, not an object"), "{err}");
    let err = fail(&json!("x"), &[]);
    assert!(err.contains("expected a list"), "{err}");
    // Only store paths of the store in use: not "/", a name with NUL, a
    // path with no hash part, a file inside a store path, another store.
    for (bad, why) in [
        ("/".to_owned(), "not under /nix/store"),
        (
            format!("/nix/store/{}-x\0y", "a".repeat(32)),
            "'\\0' in its name",
        ),
        ("/nix/store/abc-x".to_owned(), "no hash part"),
        (format!("{ax}/bin/x"), "a path inside a store path"),
        (
            format!("/gnu/store/{}-x", "a".repeat(32)),
            "not under /nix/store",
        ),
        (
            format!("/nix/store/{}", "a".repeat(32)),
            "no name after the hash part",
        ),
    ] {
        let err = fail(&json!([{"path": bad, "narSize": 1, "references": []}]), &[]);
        assert!(
            err.contains(&format!("entry 0: {:?} is not a store path ({why}", bad)),
            "{err}"
        );
        assert!(
            err.contains("expected /nix/store/<32 base-32 characters>-<name>"),
            "{err}"
        );
    }
    // The output is not written over an input.
    write_json(&g, &graph());
    let err = run_fail(plan_cmd(&g).arg("-o").arg(&g));
    assert!(err.contains("graph.json"), "{err}");
    assert_eq!(read_json(&g), graph());
}

/// A .attrs.json: the graph under the attribute --attr names, beside the
/// other attributes.
/// Regression: `NIX_STORE_DIR` (Nix's setting for another store
/// directory) was read by the rule that nothing is written in the store,
/// but not by the store-path check, so a plan of `/custom/store` paths was
/// refused as "not under /nix/store". One store directory now serves both.
#[test]
fn another_store_dir_is_taken_from_nix_store_dir() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("graph.json");
    let path = format!("/custom/store/{}-app", "a".repeat(32));
    write_json(&g, &json!([{"path": path, "narSize": 1, "references": []}]));
    let out = stdout(
        plan_cmd(&g)
            .env("NIX_STORE_DIR", "/custom/store")
            .env_remove("NIX_STORE"),
    );
    let plan: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(planned(&plan), BTreeSet::from([path.clone()]));
    let err = run_fail(
        plan_cmd(&g)
            .env_remove("NIX_STORE_DIR")
            .env_remove("NIX_STORE"),
    );
    assert!(err.contains("not under /nix/store"), "{err}");
}

#[test]
fn attrs_json_with_attr() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join(".attrs.json");
    write_json(
        &g,
        &json!({"name": "x", "outputs": {"out": "/nix/store/o-x"}, "graph": graph()}),
    );
    let plan: Value =
        serde_json::from_slice(&stdout(plan_cmd(&g).args(["--attr", "graph"]))).unwrap();
    assert_eq!(planned(&plan), paths_of(&graph()));
}

/// Excluded paths, and only they, are left out: what they refer to stays
/// unless excluded too; paths the graph does not list are ignored. Both
/// forms of the file, and two files at once.
#[test]
fn exclude_leaves_out_those_paths_only() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("graph.json");
    write_json(&g, &graph());
    let glibc = "/nix/store/00000000000000000000000000000000-glibc-2.38-44";
    let lib5 = format!("/nix/store/{:032}-lib5-1.5", 5);
    let lib9 = format!("/nix/store/{:032}-lib9-1.9", 9);
    let lines = dir.path().join("base.txt");
    let elsewhere = format!("/nix/store/{}-elsewhere", "z".repeat(32));
    fs::write(&lines, format!("{glibc}\n\n{elsewhere}\n")).unwrap();
    let list = dir.path().join("explicit.json");
    write_json(&list, &json!([lib5, lib9]));
    for strategy in ["stable", "popularity"] {
        let plan: Value = serde_json::from_slice(&stdout(
            plan_cmd(&g)
                .args(["--max-layers", "5", "--strategy", strategy, "--exclude"])
                .arg(&lines)
                .arg("--exclude")
                .arg(&list),
        ))
        .unwrap();
        let mut want = paths_of(&graph());
        for p in [glibc, &lib5, &lib9] {
            assert!(want.remove(p));
        }
        assert_eq!(planned(&plan), want, "{strategy}");
    }
    let bad = dir.path().join("bad.txt");
    fs::write(&bad, format!("{glibc}\nnix/store/relative\n")).unwrap();
    let err = run_fail(plan_cmd(&g).arg("--exclude").arg(&bad));
    assert!(err.contains("bad.txt: line 2: "), "{err}");
    assert!(
        err.contains("\"nix/store/relative\" is not a store path (not under /nix/store)"),
        "{err}"
    );
    write_json(&bad, &json!(["/", glibc]));
    let err = run_fail(plan_cmd(&g).arg("--exclude").arg(&bad));
    assert!(
        err.contains("bad.txt: [0]: \"/\" is not a store path"),
        "{err}"
    );
}

/// An exclude file of the wrong shape (a JSON object, a string) gets a
/// short message saying what was expected, not the file quoted back; a
/// long line is cut.
#[test]
fn exclude_of_the_wrong_shape_says_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("graph.json");
    write_json(&g, &graph());
    let bad = dir.path().join("exclude.json");
    let long = "x".repeat(5000);
    for (content, want) in [
        (
            json!({"paths": [long.clone()]}).to_string(),
            "not a JSON object",
        ),
        (json!(long.clone()).to_string(), "not a JSON string"),
    ] {
        fs::write(&bad, content).unwrap();
        let err = run_fail(plan_cmd(&g).arg("--exclude").arg(&bad));
        assert!(
            err.contains(&format!(
                "exclude.json: expected a JSON list of store paths, or one store path per line, {want}"
            )),
            "{err}"
        );
        assert!(!err.contains("xxxx"), "the file quoted back: {err}");
        assert!(err.len() < 400, "{err}");
    }
    fs::write(&bad, format!("/nix/store/{long}\n")).unwrap();
    let err = run_fail(plan_cmd(&g).arg("--exclude").arg(&bad));
    assert!(err.contains("line 1: "), "{err}");
    assert!(err.contains("… (5011 bytes)"), "{err}");
    assert!(err.len() < 400, "{err}");
}

/// The graph Nix 2.8 writes (exportReferencesGraph with structured attrs)
/// is read as it is. app -> lib, mid, busybox; mid -> lib; lib -> busybox.
/// Popularity: contest(bb) = {}; contest(lib) = {bb:1}; contest(mid) =
/// {lib:1, bb:2}; contest(app) = {lib:1+2, bb:2+3+1, mid:1} = {lib:3,
/// bb:6, mid:1}; with app the only root: bb 7, lib 4, mid 2, app 1. With 3
/// layers: bb, lib, and mid with app.
#[test]
fn graph_written_by_nix() {
    let dir = tempfile::tempdir().unwrap();
    let bb = dir.path().join("bb");
    fs::create_dir(&bb).unwrap();
    fs::copy(busybox(), bb.join("busybox")).unwrap();
    let expr = dir.path().join("graph.nix");
    fs::write(
        &expr,
        format!(
            r#"
let
  bb = builtins.path {{ path = {bb}; name = "busybox"; }};
  sh = script: {{
    system = builtins.currentSystem;
    builder = "${{bb}}/busybox";
    args = [ "sh" "-c" script ];
  }};
  mk = name: deps: derivation (sh "echo ${{toString deps}} > $out" // {{ inherit name; }});
  lib = mk "lib-1.0" [ bb ];
  mid = mk "mid-2.0" [ lib ];
  app = mk "app" [ lib mid bb ];
in
{{
  inherit app;
  graph = derivation (sh ''
    out=$(${{bb}}/busybox sed -n 's/.*"outputs":{{"out":"\([^"]*\)"}}.*/\1/p' .attrs.json)
    ${{bb}}/busybox cp .attrs.json "$out"
  '' // {{
    name = "graph";
    __structuredAttrs = true;
    exportReferencesGraph.graph = [ app ];
  }});
}}
"#,
            bb = bb.display()
        ),
    )
    .unwrap();
    let build = |attr: &str| {
        let out = run(nix_command("nix-build")
            .arg(&expr)
            .args(["-A", attr, "--no-out-link"]));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    let app = build("app");
    let attrs = build("graph");
    let closure = run(nix_command("nix-store").arg("-qR").arg(&app)).stdout;
    let closure: BTreeSet<String> = String::from_utf8(closure)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(closure.len(), 4);
    for strategy in ["stable", "popularity"] {
        let plan: Value = serde_json::from_slice(&stdout(plan_cmd(&attrs).args([
            "--attr",
            "graph",
            "--max-layers",
            "3",
            "--strategy",
            strategy,
        ])))
        .unwrap();
        assert_eq!(planned(&plan), closure, "{strategy}");
        let sizes: u64 = plan["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["narSize"].as_u64().unwrap())
            .sum();
        assert!(sizes > fs::metadata(busybox()).unwrap().len(), "{plan}");
        if strategy == "popularity" {
            let name = |p: &Value| {
                let p = p.as_str().unwrap();
                p[p.find('-').unwrap() + 1..].to_owned()
            };
            let layers: Vec<Vec<String>> = plan["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["paths"].as_array().unwrap().iter().map(name).collect())
                .collect();
            let mut last = vec!["app".to_owned(), "mid-2.0".to_owned()];
            last.sort_by_key(|n| {
                closure
                    .iter()
                    .find(|p| p.ends_with(&format!("-{n}")))
                    .unwrap()
                    .clone()
            });
            assert_eq!(
                layers,
                [vec!["busybox".to_owned()], vec!["lib-1.0".to_owned()], last]
            );
        }
    }
}

fn layer_sets(plan: &Value) -> BTreeSet<Vec<String>> {
    plan["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_value(l["paths"].clone()).unwrap())
        .collect()
}

fn plan_of(dir: &Path, graph: &Value, budget: usize) -> Value {
    let g = dir.join("graph.json");
    write_json(&g, graph);
    serde_json::from_slice(&stdout(
        plan_cmd(&g).args(["--max-layers", &budget.to_string()]),
    ))
    .unwrap()
}

/// The roots of the closure (what an image names; they change with every
/// release) get a layer of their own when the budget allows, even when
/// small: an app of 200 bytes over 40 libraries of up to 64 MiB, in 12
/// layers (and in 11, as `ociImage { maxLayers = 12; }` leaves the
/// closure), is alone in the last layer, and a new version of it changes
/// that layer and no other. Before, it shared a bucket with libraries.
#[test]
fn stable_roots_get_a_layer_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let base = graph();
    let top = format!("/nix/store/{:032}-lib39-1.39", 39);
    let glibc = "/nix/store/00000000000000000000000000000000-glibc-2.38-44";
    let with_app = |hash: &str| {
        let app = format!("/nix/store/{hash}-app-1.0");
        let mut g = base.as_array().unwrap().clone();
        g.push(json!({"path": app, "narSize": 200, "references": [top, glibc]}));
        (app, Value::Array(g))
    };
    let (app, g) = with_app(&"a".repeat(32));
    let (app2, g2) = with_app(&"b".repeat(32));
    for budget in [11, 12, 20] {
        let plan = plan_of(dir.path(), &g, budget);
        let layers = plan["layers"].as_array().unwrap();
        assert_eq!(layers.len(), budget, "{plan}");
        let last = layers.last().unwrap();
        assert_eq!(last["paths"], json!([app]), "{plan}");
        assert_eq!(
            last["why"],
            "own layer: a root of the closure (nothing refers to it), 200 B"
        );
        assert_eq!(planned(&plan), paths_of(&g));
        let after = plan_of(dir.path(), &g2, budget);
        let (a, b) = (layer_sets(&plan), layer_sets(&after));
        assert_eq!(
            a.difference(&b).cloned().collect::<Vec<_>>(),
            [vec![app.clone()]],
            "{budget}"
        );
        assert_eq!(
            b.difference(&a).cloned().collect::<Vec<_>>(),
            [vec![app2.clone()]],
            "{budget}"
        );
    }
}

/// Every slot of the budget is used, also when names share a bucket
/// (`openssl`, `openssl-dev` and `openssl-bin` have one bucket key) and
/// when hashing leaves buckets empty: 141 small paths in 127 layers give
/// 127 layers (before: 88). And it stays stable: a new hash for any one
/// path changes that path's layer and no other.
#[test]
fn stable_fills_every_slot_and_an_update_moves_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..140)
        .map(|i| match i {
            0 => "openssl-3.0.12".to_owned(),
            1 => "openssl-3.0.12-dev".to_owned(),
            2 => "openssl-3.0.12-bin".to_owned(),
            _ => format!("lib{i}-1.{i}"),
        })
        .collect();
    let make = |changed: Option<usize>| {
        let path = |i: usize| {
            let h = if changed == Some(i) { 'z' } else { '0' };
            format!("/nix/store/{}{:031}-{}", h, i, names[i])
        };
        let mut g: Vec<Value> = (0..140)
            .map(|i| json!({"path": path(i), "narSize": 1000 + i, "references": []}))
            .collect();
        let all: Vec<String> = (0..140).map(path).collect();
        g.push(json!({
            "path": format!("/nix/store/{}-app-1", "a".repeat(32)),
            "narSize": 500, "references": all,
        }));
        Value::Array(g)
    };
    let g = make(None);
    let plan = plan_of(dir.path(), &g, 127);
    assert_eq!(plan["layers"].as_array().unwrap().len(), 127, "{plan}");
    assert_eq!(planned(&plan), paths_of(&g));
    let before = layer_sets(&plan);
    for i in 0..140 {
        let after = layer_sets(&plan_of(dir.path(), &make(Some(i)), 127));
        assert_eq!(after.len(), 127);
        assert_eq!(before.difference(&after).count(), 1, "path {i}");
        assert_eq!(after.difference(&before).count(), 1, "path {i}");
    }
}
