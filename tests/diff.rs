//! `nixoci diff A B`: layers same, added and removed, the files of a
//! changed layer named, and the bytes a push of B over A sends, checked
//! against the layouts themselves and against a real registry's access
//! log (`common::registry`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::*;
use common::*;
use serde_json::{json, Value};

/// A store path name (32 characters of hash, then the name), for a layer
/// that holds one.
const STORE_PATH: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-app-1.0";

use common::nixoci_in as tool;

/// An image of two layers: layer 0 the files of `app` (given as
/// name -> content) under the store path, layer 1 a data file the same in
/// every image.
fn image(dir: &Path, name: &str, app: &[(&str, &str)]) -> PathBuf {
    let src = dir.join(format!("{name}-in"));
    for (f, content) in app {
        file(&src.join("app"), f, content.as_bytes(), 0o644);
    }
    file(&src.join("data"), "table", b"the same in A and B\n", 0o644);
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({
            "layers": [
                {"files": [{"source": format!("{name}-in/app"), "destination": STORE_PATH}]},
                {"files": [{"source": format!("{name}-in/data"), "destination": "/data"}]}
            ],
            "architecture": "amd64",
            "tags": ["latest"]
        }),
    );
    build(&spec, &dir.join(name))
}

/// A: `x`, `y`, `z`; B: `y` changed, `x` removed, `w` added.
fn a_and_b(dir: &Path) -> (PathBuf, PathBuf) {
    let a = image(
        dir,
        "a",
        &[("x", "one\n"), ("y", "two\n"), ("z", "three\n")],
    );
    let b = image(
        dir,
        "b",
        &[("w", "new\n"), ("y", "TWO\n"), ("z", "three\n")],
    );
    (a, b)
}

fn diff_json(cmd: &mut Command) -> Value {
    let out = run(cmd.arg("--json"));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The report without where each side was read from (a layout path or a
/// reference), for comparing reports of the same images.
fn without_sources(mut v: Value) -> Value {
    for side in ["a", "b"] {
        v[side].as_object_mut().unwrap().remove("source");
    }
    v
}

/// The descriptor `index.json` gives (the image, or the index).
fn top(layout: &Path) -> Value {
    read_json(&layout.join("index.json"))["manifests"][0].clone()
}

/// The manifest document of a one-image layout.
fn manifest(layout: &Path) -> Value {
    read_json(&blob_path(layout, &manifest_digest(layout)))
}

fn size_of(layout: &Path, digest: &str) -> u64 {
    fs::metadata(blob_path(layout, digest)).unwrap().len()
}

#[test]
fn changed_layer_names_its_files_and_push_bytes_come_from_the_layouts() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = a_and_b(t.path());
    let report = diff_json(nixoci().arg("diff").arg(&a).arg(&b));

    let (ma, mb) = (manifest(&a), manifest(&b));
    let statuses: Vec<(&str, u64, &str)> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["status"].as_str().unwrap(),
                l["index"].as_u64().unwrap(),
                l["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("added", 0, mb["layers"][0]["digest"].as_str().unwrap()),
            ("same", 1, mb["layers"][1]["digest"].as_str().unwrap()),
            ("removed", 0, ma["layers"][0]["digest"].as_str().unwrap()),
        ],
        "{report:#}"
    );
    assert_eq!(ma["layers"][1]["digest"], mb["layers"][1]["digest"]);
    assert_eq!(report["identical"], false);
    assert_eq!(report["a"]["manifest"], manifest_digest(&a));
    assert_eq!(report["b"]["config"], mb["config"]["digest"]);
    let config_b = read_json(&blob_path(&b, mb["config"]["digest"].as_str().unwrap()));
    assert_eq!(
        report["layers"][0]["diffId"],
        config_b["rootfs"]["diff_ids"][0]
    );

    let changed = &report["changed"][0];
    assert_eq!(report["changed"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&changed["aIndex"], &changed["bIndex"]),
        (&json!(0), &json!(0))
    );
    let files: Vec<(&str, &str, Value)> = changed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                f["change"].as_str().unwrap(),
                f.get("fields").cloned().unwrap_or(json!([])),
            )
        })
        .collect();
    let p = |f: &str| format!("{STORE_PATH}/{f}");
    assert_eq!(
        files,
        vec![
            (p("w").as_str(), "added", json!([])),
            (p("x").as_str(), "removed", json!([])),
            (p("y").as_str(), "changed", json!(["content"])),
        ],
        "{changed:#}"
    );
    assert_eq!(changed["filesTotal"], 3);
    assert_eq!(changed["storePaths"], json!([STORE_PATH]));
    // The content digests are those of the files.
    let sha = |s: &str| {
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(s.as_bytes()))
        )
    };
    assert_eq!(changed["files"][2]["a"]["digest"], sha("two\n"));
    assert_eq!(changed["files"][2]["b"]["digest"], sha("TWO\n"));

    // What a push of B over A sends: the changed layer, the config and
    // the manifest, as the layouts give their sizes.
    let layer0 = mb["layers"][0]["digest"].as_str().unwrap();
    let config = mb["config"]["digest"].as_str().unwrap();
    let want = size_of(&b, layer0) + size_of(&b, config) + size_of(&b, &manifest_digest(&b));
    assert_eq!(
        top(&b)["size"].as_u64(),
        Some(size_of(&b, &manifest_digest(&b)))
    );
    assert_eq!(report["push"]["bytes"].as_u64(), Some(want), "{report:#}");

    // As text: the first N files, how many more, the store path, the bytes.
    let text = run(nixoci().arg("diff").arg(&a).arg(&b).args(["--files", "1"]));
    let text = String::from_utf8(text.stdout).unwrap();
    for line in [
        format!("added    {}", p("w")),
        "... and 2 more".to_owned(),
        format!("    {STORE_PATH}"),
        format!(
            "bytes to push: {} ({want} bytes: 2 blobs, 1 manifest)",
            nixoci_size(want)
        ),
    ] {
        assert!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains(&p("y")), "--files 1 listed more:\n{text}");
    let all = String::from_utf8(run(nixoci().arg("diff").arg(&a).arg(&b)).stdout).unwrap();
    assert!(
        all.contains(&format!("changed  {}  (content)", p("y"))),
        "{all}"
    );

    // Differing is not an error, unless asked.
    let status = |extra: &[&str]| {
        nixoci()
            .arg("diff")
            .arg(&a)
            .arg(&b)
            .args(extra)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(status(&[]), Some(0));
    assert_eq!(status(&["--exit-code"]), Some(1));
}

/// `human_size` as the text output writes it (1000-based, one decimal).
fn nixoci_size(n: u64) -> String {
    if n < 1000 {
        format!("{n} B")
    } else {
        format!("{:.1} kB", n as f64 / 1000.0)
    }
}

#[test]
fn identical_images_are_all_same_and_push_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (a, _) = a_and_b(t.path());
    // The same spec built again elsewhere: the same bytes.
    fs::create_dir(t.path().join("again")).unwrap();
    let again = image(
        &t.path().join("again"),
        "a",
        &[("x", "one\n"), ("y", "two\n"), ("z", "three\n")],
    );
    let report = diff_json(nixoci().arg("diff").arg(&a).arg(&again));
    assert_eq!(report["identical"], true);
    assert!(
        report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "same"),
        "{report:#}"
    );
    assert_eq!(report["layers"].as_array().unwrap().len(), 2);
    assert_eq!(report["changed"], json!([]));
    assert_eq!(
        report["push"],
        json!({"bytes": 0, "blobs": [], "manifests": []})
    );
    let out = nixoci()
        .arg("diff")
        .arg(&a)
        .arg(&again)
        .arg("--exit-code")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bytes to push: 0 B"));
}

/// The blob and manifest uploads in `requests` (access-log lines, as
/// `Registry::requests` gives them) and their bytes: each uploaded blob's
/// size as `layout` holds it, each manifest PUT the size of the document
/// it names (`docs`: reference -> size).
fn uploaded_bytes(requests: &[String], layout: &Path, docs: &[(String, u64)]) -> u64 {
    let mut total = 0;
    for r in requests {
        let Some(path) = r.strip_prefix("PUT ") else {
            continue;
        };
        if path.contains("/blobs/uploads/") {
            let digest = path
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("digest="))
                .unwrap_or_else(|| panic!("an upload without a digest: {r}"))
                .replace("%3A", ":")
                .replace("%3a", ":");
            total += size_of(layout, &digest);
        } else if let Some((_, reference)) = path.split_once("/manifests/") {
            let size = docs
                .iter()
                .find(|(d, _)| d == reference)
                .unwrap_or_else(|| panic!("a manifest PUT the test did not expect: {r}"))
                .1;
            total += size;
        }
    }
    total
}

#[test]
fn against_a_registry_the_report_is_the_layouts_and_push_sends_what_it_says() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let env = t.path();
    let (a, b) = a_and_b(t.path());
    let (ref_a, ref_b) = (reg.reference("app:a"), reg.reference("app:b"));
    run(tool(env).arg("push").arg(&a).arg(&ref_a).arg("-q"));

    let local = without_sources(diff_json(nixoci().arg("diff").arg(&a).arg(&b)));
    let half = diff_json(tool(env).arg("diff").arg(&ref_a).arg(&b));
    assert_eq!(half["a"]["source"], ref_a);
    assert_eq!(without_sources(half), local);

    // Push B into the repository holding A: what the access log shows
    // uploaded is what diff said.
    let start = reg.requests().len();
    run(tool(env).arg("push").arg(&b).arg(&ref_b).arg("-q"));
    let pushed = reg.requests()[start..].to_vec();
    let sent = uploaded_bytes(
        &pushed,
        &b,
        &[("b".to_owned(), size_of(&b, &manifest_digest(&b)))],
    );
    assert_eq!(
        Some(sent),
        local["push"]["bytes"].as_u64(),
        "{pushed:#?}\n{local:#}"
    );
    assert_eq!(
        pushed
            .iter()
            .filter(|r| r.starts_with("PUT ") && r.contains("/blobs/uploads/"))
            .count(),
        local["push"]["blobs"].as_array().unwrap().len()
    );

    let both = diff_json(tool(env).arg("diff").arg(&ref_a).arg(&ref_b));
    assert_eq!(both["b"]["source"], ref_b);
    assert_eq!(without_sources(both), local);

    // A push of B over B: nothing, as diff says.
    let same = diff_json(tool(env).arg("diff").arg(&ref_b).arg(&b));
    assert_eq!(same["push"]["bytes"], 0);
    let start = reg.requests().len();
    run(tool(env).arg("push").arg(&b).arg(&ref_b).arg("-q"));
    assert_eq!(uploaded_bytes(&reg.requests()[start..], &b, &[]), 0);

    // Two indexes: a push of the second over the first sends what diff
    // says, whichever platform is compared.
    let ia = index(t.path(), "ia", "arm one\n");
    let ib = index(t.path(), "ib", "arm two, longer\n");
    let (ref_ia, ref_ib) = (reg.reference("multi:a"), reg.reference("multi:b"));
    run(tool(env).arg("push").arg(&ia).arg(&ref_ia).arg("-q"));
    let report = diff_json(
        tool(env)
            .arg("diff")
            .arg(&ref_ia)
            .arg(&ib)
            .args(["--platform", "linux/arm64"]),
    );
    let start = reg.requests().len();
    run(tool(env).arg("push").arg(&ib).arg(&ref_ib).arg("-q"));
    let pushed = reg.requests()[start..].to_vec();
    let index_b = read_json(&blob_path(&ib, top(&ib)["digest"].as_str().unwrap()));
    let mut docs = vec![("b".to_owned(), top(&ib)["size"].as_u64().unwrap())];
    for m in index_b["manifests"].as_array().unwrap() {
        docs.push((
            m["digest"].as_str().unwrap().to_owned(),
            m["size"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        Some(uploaded_bytes(&pushed, &ib, &docs)),
        report["push"]["bytes"].as_u64(),
        "{pushed:#?}\n{report:#}"
    );
}

/// A layout whose tag `multi` names an index of two one-layer images,
/// amd64 (the same in every such layout) and arm64 (`/etc/arch` holds
/// `arm`).
fn index(dir: &Path, name: &str, arm: &str) -> PathBuf {
    let src = dir.join(format!("{name}-in"));
    file(&src, "amd64/etc/arch", b"amd64\n", 0o644);
    file(&src, "arm64/etc/arch", arm.as_bytes(), 0o644);
    for arch in ["amd64", "arm64"] {
        write_json(
            &dir.join(format!("{name}-{arch}.json")),
            &json!({"layers": [{"files": [{"source": format!("{name}-in/{arch}"), "destination": "/"}]}], "architecture": arch}),
        );
        run(nixoci()
            .arg("manifest")
            .arg(dir.join(format!("{name}-{arch}.json")))
            .arg("-o")
            .arg(dir.join(format!("{name}-{arch}")))
            .arg("-q"));
    }
    write_json(
        &dir.join(format!("{name}-layout.json")),
        &json!({"manifests": [format!("{name}-amd64"), format!("{name}-arm64")], "tags": ["multi"]}),
    );
    run(nixoci()
        .arg("layout")
        .arg(dir.join(format!("{name}-layout.json")))
        .arg("-o")
        .arg(dir.join(name))
        .arg("-q"));
    dir.join(name)
}

#[test]
fn index_against_index_compares_the_platform_asked_for() {
    let t = tempfile::tempdir().unwrap();
    let ia = index(t.path(), "ia", "arm one\n");
    let ib = index(t.path(), "ib", "arm two, longer\n");
    let on = |platform: &str| {
        diff_json(
            nixoci()
                .arg("diff")
                .arg(format!("{}:multi", ia.display()))
                .arg(&ib)
                .args(["--platform", platform]),
        )
    };

    let arm = on("linux/arm64");
    assert_eq!(arm["a"]["platform"]["architecture"], "arm64");
    assert_eq!(arm["b"]["platform"]["architecture"], "arm64");
    assert_eq!(arm["changed"][0]["files"][0]["path"], "/etc/arch");
    assert_eq!(
        arm["changed"][0]["files"][0]["fields"],
        json!(["content", "size"])
    );
    assert_eq!(arm["changed"][0]["storePaths"], json!([]));

    let amd = on("linux/amd64");
    assert!(amd["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["status"] == "same"));
    assert_eq!(amd["a"]["manifest"], amd["b"]["manifest"]);
    // The indexes differ, so a push sends B's arm64 image and every
    // manifest, whichever platform was compared.
    assert_eq!(amd["identical"], false);
    assert_eq!(amd["push"], arm["push"]);
    let index_b = top(&ib);
    let sent: Vec<&str> = amd["push"]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(sent.len(), 3, "two manifests and the index: {amd:#}");
    assert_eq!(
        sent.last().copied(),
        index_b["digest"].as_str(),
        "the index goes last"
    );
    let blobs: Vec<&str> = amd["push"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    // The blobs B has and A lacks, by the layouts' files (the documents
    // aside): the arm64 config and layer.
    let (files_a, files_b) = (blobs_of(&ia), blobs_of(&ib));
    let mut new: Vec<String> = files_b
        .difference(&files_a)
        .filter(|d| !sent.contains(&d.as_str()))
        .cloned()
        .collect();
    new.sort();
    assert_eq!(blobs, new);
    assert_eq!(blobs.len(), 2);

    // A platform neither has: the error lists those they have.
    let err = run_fail(
        nixoci()
            .arg("diff")
            .arg(&ia)
            .arg(&ib)
            .args(["--platform", "linux/s390x"]),
    );
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
}

/// The digests of a layout's blob files.
fn blobs_of(layout: &Path) -> std::collections::BTreeSet<String> {
    blobs(layout)
        .keys()
        .map(|f| format!("sha256:{f}"))
        .collect()
}

#[test]
fn a_missing_layout_an_unknown_tag_and_a_damaged_blob_are_named() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = a_and_b(t.path());
    let fail = |x: &Path, y: &str| {
        let out = nixoci().arg("diff").arg(x).arg(y).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let coded = nixoci()
            .arg("diff")
            .arg(x)
            .arg(y)
            .arg("--exit-code")
            .output()
            .unwrap();
        assert_eq!(
            coded.status.code(),
            Some(2),
            "an error is 2 with --exit-code"
        );
        assert!(out.stdout.is_empty());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = t.path().join("nothing-here");
    let err = fail(&a, missing.to_str().unwrap());
    assert!(
        err.contains("nothing-here") && err.contains("no such image layout"),
        "{err}"
    );

    let err = fail(&a, &format!("{}:nosuch", b.display()));
    assert!(
        err.contains("\"nosuch\"") && err.contains("latest"),
        "{err}"
    );

    // The changed layer of B, one byte flipped (its size unchanged): found
    // when it is read, named with its layout and digest.
    let layer0 = manifest(&b)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = blob_path(&b, &layer0);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 9;
    bytes[last] ^= 0xff;
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&path, &bytes).unwrap();
    let err = fail(&a, b.to_str().unwrap());
    assert!(
        err.contains(&layer0) && err.contains(b.to_str().unwrap()),
        "{err}"
    );

    // The unchanged layer, cut short: a push could not send it.
    let layer1 = manifest(&a)["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = blob_path(&a, &layer1);
    let bytes = fs::read(&path).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    fs::create_dir(t.path().join("c")).unwrap();
    let again = image(&t.path().join("c"), "c", &[("x", "one\n")]);
    let err = fail(&a, again.to_str().unwrap());
    assert!(err.contains(&layer1), "{err}");
}

/// The index the registry's tag `repo_tag` names, as its bytes (the
/// referrers fallback index a push wrote).
fn registry_manifest(reg: &Registry, repo: &str, reference: &str) -> Vec<u8> {
    run(Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
        ])
        .arg(format!(
            "http://{}/v2/{repo}/manifests/{reference}",
            reg.host()
        )))
    .stdout
}

/// Issue 21: B carries an SBOM (a referrer). `diff` counts what `push B`
/// sends for it: the SBOM blob, the empty config, the referrer manifest
/// and the fallback index (registry 2.8 has no referrers API), checked
/// against the registry's access log: over A; over B's own image with
/// another referrer already listed (the index then holds both); over B
/// itself, nothing.
#[test]
fn referrers_are_counted_in_the_push_figure() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let env = t.path();
    let (a, b) = a_and_b(env);
    let plain = env.join("b-plain");
    run(Command::new("cp").arg("-a").arg(&b).arg(&plain));
    run(nixoci().arg("sbom").arg(&b).arg("--attach"));
    let index = read_json(&b.join("referrers/index.json"));
    let referrer = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m.get("artifactType").is_some())
        .unwrap()
        .clone();
    let referrer_doc = read_json(&blob_path(&b, referrer["digest"].as_str().unwrap()));
    let sbom_blob = referrer_doc["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let subject = manifest_digest(&b);
    let fallback_tag = format!("sha256-{}", subject.trim_start_matches("sha256:"));

    let local = without_sources(diff_json(nixoci().arg("diff").arg(&a).arg(&b)));
    let blobs: Vec<&str> = local["push"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["digest"].as_str().unwrap())
        .collect();
    assert!(blobs.contains(&sbom_blob.as_str()), "{local:#}");
    let manifests = local["push"]["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3, "{local:#}");
    assert_eq!(manifests[1]["digest"], referrer["digest"]);
    assert_eq!(
        manifests[2]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );

    let (ref_a, ref_b) = (reg.reference("app:a"), reg.reference("app:b"));
    run(tool(env).arg("push").arg(&a).arg(&ref_a).arg("-q"));
    let half = diff_json(tool(env).arg("diff").arg(&ref_a).arg(&b));
    assert_eq!(without_sources(half), local);
    let start = reg.requests().len();
    run(tool(env).arg("push").arg(&b).arg(&ref_b).arg("-q"));
    let pushed = reg.requests()[start..].to_vec();
    let index_bytes = registry_manifest(&reg, "app", &fallback_tag);
    let docs = [
        ("b".to_owned(), size_of(&b, &subject)),
        (
            referrer["digest"].as_str().unwrap().to_owned(),
            referrer["size"].as_u64().unwrap(),
        ),
        (fallback_tag.clone(), index_bytes.len() as u64),
    ];
    assert_eq!(
        Some(uploaded_bytes(&pushed, &b, &docs)),
        local["push"]["bytes"].as_u64(),
        "{pushed:#?}\n{local:#}"
    );
    assert_eq!(manifests[2]["size"], json!(index_bytes.len()));

    // B over B in the registry: the referrer is listed, nothing to send.
    let same = diff_json(tool(env).arg("diff").arg(&ref_b).arg(&b));
    assert_eq!(same["push"]["bytes"], 0, "{same:#}");

    // B's image alone, with another referrer listed: B's SBOM is new, and
    // the index written lists both.
    let ref_c = reg.reference("other:c");
    run(tool(env).arg("push").arg(&plain).arg(&ref_c).arg("-q"));
    let note = env.join("note.txt");
    fs::write(&note, "a note\n").unwrap();
    run(tool(env)
        .arg("attach")
        .arg(&ref_c)
        .args(["--artifact-type", "text/plain", "-q"])
        .arg(&note));
    let over = diff_json(tool(env).arg("diff").arg(&ref_c).arg(&b));
    let start = reg.requests().len();
    let report = run(tool(env).arg("push").arg(&b).arg(&ref_c).arg("--json"));
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    // The push report counts the documents as diff does.
    assert_eq!(
        report["manifests"].as_u64().map(|n| n as usize),
        over["push"]["manifests"].as_array().map(Vec::len),
        "{report:#}"
    );
    let pushed = reg.requests()[start..].to_vec();
    let index_bytes = registry_manifest(&reg, "other", &fallback_tag);
    let listed: Value = serde_json::from_slice(&index_bytes).unwrap();
    assert_eq!(listed["manifests"].as_array().unwrap().len(), 2, "{listed}");
    let docs = [
        (
            referrer["digest"].as_str().unwrap().to_owned(),
            referrer["size"].as_u64().unwrap(),
        ),
        (fallback_tag.clone(), index_bytes.len() as u64),
    ];
    assert_eq!(
        Some(uploaded_bytes(&pushed, &b, &docs)),
        over["push"]["bytes"].as_u64(),
        "{pushed:#?}\n{over:#}"
    );
    assert_eq!(over["push"]["manifests"].as_array().unwrap().len(), 2);
}

/// A reader that stops early (`nixoci diff A B --json | head`) is no
/// failure: the closed pipe ends the command quietly with status 0, in
/// both output modes, however the report was being written (a JSON report
/// fails inside serde_json, which holds the pipe's error).
#[test]
fn a_closed_pipe_ends_the_report_quietly() {
    let t = tempfile::tempdir().unwrap();
    // Enough changed files for a report far larger than a pipe's buffer,
    // so the command is still writing when the pipe closes.
    let names: Vec<String> = (0..3000).map(|i| format!("file-{i:05}")).collect();
    let a: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "a\n")).collect();
    let b: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "b\n")).collect();
    let a = image(t.path(), "a", &a);
    let b = image(t.path(), "b", &b);
    for json in [true, false] {
        let mut cmd = tool(t.path());
        cmd.arg("diff").arg(&a).arg(&b);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the report
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "--json {json}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
