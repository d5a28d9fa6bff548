//! Concurrency and load: two builds racing to one output; eight pushes at
//! once of images that share a layer, sharing one blob-location cache; a
//! push of 120 layers and of a 4-platform index; an unpack of a layer of
//! 30,000 entries (200,000 in the benchmark). Peak RSS and time of the big ones are measured by
//! `benches/load.sh` (docs/reliability.md, "Concurrency and load"), not here.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::registry::{Registry, Setup};
use common::*;
use serde_json::json;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Of two builds started together to one `-o`, one wins and the other fails
/// saying the output exists; the result verifies and nothing else is left.
#[test]
fn two_builds_to_one_output_one_wins_the_other_fails_cleanly() {
    let t = tempfile::tempdir().unwrap();
    for j in 0..6 {
        noise(&t.path().join(format!("in/f{j}")), 400_000, j + 1);
    }
    let spec = t.path().join("image.json");
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": "in", "destination": "/in"}], "compression": "gzip"}],
            "architecture": "amd64"
        }),
    );
    for round in 0..8 {
        let parent = t.path().join(format!("round{round}"));
        fs::create_dir(&parent).unwrap();
        let out = parent.join("out");
        let children: Vec<_> = (0..2)
            .map(|_| {
                nixoci()
                    .arg("build")
                    .arg(&spec)
                    .arg("-o")
                    .arg(&out)
                    .arg("-q")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let won: Vec<&Output> = outputs.iter().filter(|o| o.status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: {} won", won.len());
        let lost = outputs.iter().find(|o| !o.status.success()).unwrap();
        assert!(
            stderr(lost).contains("already exists"),
            "round {round}: {}",
            stderr(lost)
        );
        run(nixoci().arg("verify").arg(&out));
        let names: Vec<_> = fs::read_dir(&parent)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out"], "round {round}: left behind");
    }
}

/// How many times the registry's access log shows each blob's upload
/// committed (a PUT with `digest=`).
fn commits(reg: &Registry) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for r in reg.requests() {
        if let Some(at) = r.find("digest=sha256%3A") {
            if r.starts_with("PUT ") {
                let hex: String = r[at + 16..].chars().take(64).collect();
                *n.entry(format!("sha256:{hex}")).or_default() += 1;
            }
        }
    }
    n
}

fn push_all(env: &Path, layouts: &[std::path::PathBuf], reg: &Registry, repo: &str) {
    let children: Vec<_> = layouts
        .iter()
        .enumerate()
        .map(|(i, l)| {
            nixoci_in(env)
                .args(["push", "--quiet"])
                .arg(l)
                .arg(reg.reference(&format!("{repo}-{i}:v1")))
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "push {repo}-{i}: {}", stderr(&o));
    }
}

/// Eight pushes at once of images sharing their first layer, with one
/// blob-location cache: all succeed and each image arrives whole. Each
/// blob of one image alone is uploaded once; the shared one at most once
/// per push (racing pushes cannot know of each other). Pushed again at
/// once, nothing is uploaded (HEAD tells); pushed at once to eight new
/// repositories, nothing is uploaded either: every blob is mounted, which
/// needs every push's entries in the shared cache (a lost update would
/// cost uploads).
#[test]
fn eight_concurrent_pushes_share_blobs_and_the_cache() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layouts: Vec<_> = (0..8)
        .map(|i| image(t.path(), &format!("img{i}"), 1, 100 + i, 200_000))
        .collect();
    let env = t.path().join("env");
    push_all(&env, &layouts, &reg, "load");
    let first = commits(&reg);
    let shared = {
        let m = read_json(&layouts[0].join("index.json"));
        let manifest = read_json(&blob_path(
            &layouts[0],
            m["manifests"][0]["digest"].as_str().unwrap(),
        ));
        manifest["layers"][0]["digest"].as_str().unwrap().to_owned()
    };
    for (d, n) in &first {
        if *d == shared {
            assert!((1..=8).contains(n), "shared blob uploaded {n} times");
        } else {
            assert_eq!(*n, 1, "{d} uploaded {n} times");
        }
    }
    eprintln!(
        "8 pushes at once: the shared blob uploaded {} times, the {} others once each",
        first[&shared],
        first.len() - 1
    );
    for (i, l) in layouts.iter().enumerate() {
        let pulled = t.path().join(format!("pulled{i}"));
        run(nixoci_in(&env)
            .args(["pull", "--quiet"])
            .arg(reg.reference(&format!("load-{i}:v1")))
            .arg(&pulled));
        assert_eq!(blobs(&pulled), blobs(l), "image {i}");
    }
    let cache = read_json(&env.join("cache/nixoci/blobs.json"));
    let holders = cache[reg.host()][&shared].as_array().unwrap().len();
    assert_eq!(holders, 8, "the cache lost entries: {cache}");

    push_all(&env, &layouts, &reg, "load");
    assert_eq!(commits(&reg), first, "a re-push uploaded");
    push_all(&env, &layouts, &reg, "again");
    assert_eq!(commits(&reg), first, "a push to a new repository uploaded");
    for i in 0..8 {
        run(nixoci_in(&env)
            .args(["exists"])
            .arg(reg.reference(&format!("again-{i}:v1"))));
    }
}

/// A push of an image of 120 layers and of an index of four platforms:
/// skopeo reads them from the registry, and pulled back they are the same
/// bytes.
#[test]
fn push_of_120_layers_and_of_a_four_platform_index() {
    require("skopeo");
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layers: Vec<_> = (0..120)
        .map(|i| {
            file(
                t.path(),
                &format!("in/{i}"),
                format!("layer {i}\n").as_bytes(),
                0o644,
            );
            json!({"files": [{"source": format!("in/{i}"), "destination": format!("/l/{i}")}]})
        })
        .collect();
    let spec = t.path().join("image.json");
    write_json(&spec, &json!({"layers": layers, "architecture": "amd64"}));
    let many = build(&spec, &t.path().join("many"));
    let index = platform_layout(
        &t.path().join("multi"),
        "layout",
        &["amd64", "arm64", "ppc64le", "s390x"],
    );
    for (layout, reference) in [
        (&many, reg.reference("many:v1")),
        (&index, reg.reference("multi:v1")),
    ] {
        run(nixoci_in(t.path())
            .args(["push", "--quiet"])
            .arg(layout)
            .arg(&reference));
        let pulled = t
            .path()
            .join(format!("pulled-{}", reference.replace([':', '/'], "-")));
        run(nixoci_in(t.path())
            .args(["pull", "--quiet"])
            .arg(&reference)
            .arg(&pulled));
        assert_eq!(blobs(&pulled), blobs(layout));
    }
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}", reg.reference("many:v1"))));
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 120);
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}", reg.reference("multi:v1"))));
    let idx: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let archs: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64", "ppc64le", "s390x"]);
}

/// A layer of 30,000 entries (files in 60 directories, and symlinks)
/// unpacks into a tree equal to its input. The 200,000 entries of the
/// issue are `benches/load.sh`'s: on this machine's disk creating a file
/// costs about 0.3 ms whoever does it (GNU tar takes a minute for them),
/// too long for every test run.
#[test]
fn unpack_of_a_layer_of_30000_entries() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("in");
    for d in 0..60 {
        let dir = root.join(format!("d{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..450 {
            fs::write(dir.join(format!("f{f:03}")), format!("{d}/{f}\n")).unwrap();
        }
        for l in 0..49 {
            std::os::unix::fs::symlink(format!("f{l:03}"), dir.join(format!("l{l:03}"))).unwrap();
        }
    }
    let spec = t.path().join("image.json");
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": "in", "destination": "/in"}], "compression": "zstd"}],
            "architecture": "amd64"
        }),
    );
    let layout = t.path().join("layout");
    run(nixoci()
        .arg("build")
        .arg(&spec)
        .arg("-o")
        .arg(&layout)
        .arg("-q"));
    let out = t.path().join("rootfs");
    run(nixoci().arg("unpack").arg(&layout).arg(&out));
    let entries = walkdir::WalkDir::new(out.join("in")).into_iter().count();
    assert_eq!(entries, 1 + 60 * (1 + 450 + 49), "every entry");
    assert_eq!(
        diff(
            &normalised(snapshot(&root)),
            &normalised(snapshot(&out.join("in")))
        ),
        None
    );
}
