//! The ORAS project's Go CLI (`oras` v1.3.6, from `.ci/install-deps`)
//! against nixoci, both ways: `oras push`/`pull` with `nixoci artifact
//! push`/`pull` (files, a directory, annotations from a file), `oras
//! attach` read by `nixoci referrers` and `pull --referrers`, `oras
//! discover` of what `nixoci attach` and `push` listed, on registry 2.8
//! (the fallback tag) and on a registry with the referrers API, and the
//! layouts each writes read by the other.

mod common;
#[path = "oras_go/layouts.rs"]
mod layouts;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::peers::{oras, ReferrersRegistry};
use common::registry::{Registry, Setup};
use common::*;
use serde_json::{json, Value};

/// Run `oras ARGS` in `cwd` (oras titles a file with the path it is given),
/// with its configuration in `home`; what it prints.
fn oras_in(home: &Path, cwd: &Path, args: &[&str]) -> String {
    let out = run(oras(home).args(args).current_dir(cwd));
    String::from_utf8(out.stdout).unwrap()
}

/// `oras ARGS --format json`, parsed.
fn oras_json(home: &Path, cwd: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let printed = oras_in(home, cwd, &all);
    serde_json::from_str(&printed).unwrap_or_else(|e| panic!("oras {args:?}: {e}: {printed}"))
}

/// `oras attach --plain-http SUBJECT --artifact-type
/// application/vnd.example.signature sig.json` run in `cwd`: the digest of
/// the referrer oras pushed.
fn oras_attach_signature(home: &Path, cwd: &Path, subject: &str) -> String {
    oras_json(
        home,
        cwd,
        &[
            "attach",
            "--plain-http",
            subject,
            "--artifact-type",
            "application/vnd.example.signature",
            "sig.json",
        ],
    )["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `nixoci ARGS --json`, parsed.
fn nixoci_json(args: &[&str]) -> Value {
    let out = run(nixoci().args(args).arg("--json"));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The manifest a reference names, as oras fetches it.
fn manifest(home: &Path, reference: &str) -> Value {
    let printed = oras_in(
        home,
        home,
        &["manifest", "fetch", "--plain-http", reference],
    );
    serde_json::from_str(&printed).unwrap()
}

/// Files and a directory to move: modes an ordinary checkout has, each
/// with the owner's read and write (and search), so that what comes back
/// from either pull can be compared with them exactly.
fn inputs(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("notes.txt"), "release notes\n").unwrap();
    noise(&dir.join("data.bin"), 70_000, 7);
    let site = dir.join("site");
    fs::create_dir_all(site.join("css")).unwrap();
    fs::write(site.join("index.html"), "<p>hi</p>\n").unwrap();
    fs::write(site.join("css/a.css"), "p{}\n").unwrap();
    fs::write(site.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    noise(&site.join("css/font.bin"), 3000, 11);
    symlink("index.html", site.join("home.html")).unwrap();
    fs::write(site.join("css/é ü.txt"), "unicode and a space\n").unwrap();
    fs::create_dir_all(site.join("empty")).unwrap();
    for (rel, mode) in [
        ("", 0o755),
        ("empty", 0o700),
        ("css/é ü.txt", 0o644),
        ("css", 0o750),
        ("index.html", 0o644),
        ("css/a.css", 0o600),
        ("css/font.bin", 0o640),
        ("run.sh", 0o755),
    ] {
        fs::set_permissions(site.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
    site
}

/// The annotations file both tools read (ORAS's format): the manifest's
/// (its creation time given, so oras adds none of its own), a file's and
/// the directory's.
fn annotations_file(dir: &Path) -> PathBuf {
    let path = dir.join("annotations.json");
    write_json(
        &path,
        &json!({
            "$manifest": {"org.opencontainers.image.created": "2026-01-02T03:04:05Z",
                          "org.opencontainers.image.source": "https://example.org/app"},
            "notes.txt": {"kind": "notes"},
            "site": {"kind": "site"}
        }),
    );
    path
}

/// What each case pushes: the arguments of both tools, alike.
const CASES: [(&str, &[&str]); 4] = [
    ("file", &["notes.txt"]),
    ("several", &["notes.txt:text/plain", "data.bin"]),
    ("dir", &["site"]),
    ("all", &["notes.txt:text/plain", "data.bin", "site"]),
];

/// The names a case's pull must write, each compared with its input: a
/// file byte for byte, a directory as a tree (paths, bytes, links, modes).
fn check_pulled(case: &[&str], inputs: &Path, out: &Path, modes: impl Fn(&Path) -> Snapshot) {
    let mut names: Vec<String> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = case
        .iter()
        .map(|a| a.split(':').next().unwrap().to_owned())
        .collect();
    want.sort();
    assert_eq!(names, want, "{}", out.display());
    for name in &want {
        let (a, b) = (inputs.join(name), out.join(name));
        if a.is_dir() {
            let (x, y) = (modes(&a), snapshot(&b));
            assert!(x == y, "{}: {:?}", b.display(), diff(&x, &y));
        } else {
            assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{name}");
        }
    }
}

type Snapshot = std::collections::BTreeMap<Vec<u8>, Node>;

/// A manifest without what differs between two packings of one directory
/// (each tool's tar: nixoci's deterministic, oras's with the files' times
/// and owners): the packed layers' digest, size and tar digest.
fn without_packed_bytes(mut m: Value) -> Value {
    for l in m["layers"].as_array_mut().unwrap() {
        if l["annotations"]["io.deis.oras.content.unpack"] == "true" {
            let o = l.as_object_mut().unwrap();
            o.remove("digest");
            o.remove("size");
            o["annotations"]
                .as_object_mut()
                .unwrap()
                .remove("io.deis.oras.content.digest");
        }
    }
    m
}

/// `oras push` → `nixoci artifact pull`, and `nixoci artifact push` →
/// `oras pull`, of a file, several files, a directory and all of them,
/// with annotations from one file: every byte comes back, a directory
/// with its paths, links and modes (oras keeps the tar's modes, so a
/// directory nixoci packed comes out of oras with Nix's 0444/0555, as
/// docs/artifacts.md says), and the two manifests are the same document but for the
/// packed directory's own bytes (artifactType, config, media types,
/// titles, annotations).
#[test]
fn push_and_pull_both_ways() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let work = t.path().join("in");
    inputs(&work);
    let annotations = annotations_file(t.path());
    let ann = annotations.to_str().unwrap();
    for (case, files) in CASES {
        let by_oras = reg.reference(&format!("oras/{case}:1"));
        let by_nixoci = reg.reference(&format!("nixoci/{case}:1"));
        let mut args = vec!["push", "--plain-http", &by_oras];
        args.extend(files);
        args.extend([
            "--artifact-type",
            "application/vnd.example.release",
            "--annotation-file",
            ann,
        ]);
        oras_in(&home, &work, &args);
        run(nixoci()
            .args(["artifact", "push", &by_nixoci])
            .args(files)
            .args(["--artifact-type", "application/vnd.example.release"])
            .args(["--annotations-file", ann, "-q"])
            .current_dir(&work));

        let (o, n) = (manifest(&home, &by_oras), manifest(&home, &by_nixoci));
        assert_eq!(o["artifactType"], "application/vnd.example.release");
        assert_eq!(
            o["annotations"]["org.opencontainers.image.source"],
            "https://example.org/app"
        );
        assert_eq!(
            without_packed_bytes(o.clone()),
            without_packed_bytes(n.clone()),
            "{case}"
        );
        if !files.contains(&"site") {
            assert_eq!(o["layers"], n["layers"], "{case}: the same file layers");
        }

        // oras pushed, nixoci pulls: the inputs as they are.
        let out = t.path().join(format!("nixoci-pulled-{case}"));
        run(nixoci()
            .args(["artifact", "pull", &by_oras])
            .arg(&out)
            .arg("-q"));
        check_pulled(files, &work, &out, snapshot);

        // nixoci pushed, oras pulls: the bytes and links, with Nix's modes.
        let out = t.path().join(format!("oras-pulled-{case}"));
        fs::create_dir_all(&out).unwrap();
        oras_in(&home, &out, &["pull", "--plain-http", &by_nixoci]);
        check_pulled(files, &work, &out, |p| normalised(snapshot(p)));
        run(Command::new("chmod").arg("-R").arg("u+w").arg(&out));
    }
}

/// Regression: oras titles a file with the path it is given (`oras push
/// REF in/notes.txt` gives `in/notes.txt`), which nixoci refuses (a name
/// is not a path), and the refusal only said that; it now says how to
/// push such a file so that it pulls, and nothing is written.
#[test]
fn a_title_with_a_path_is_refused_saying_what_to_do() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    inputs(&t.path().join("in"));
    let reference = reg.reference("oras/path:1");
    oras_in(
        &home,
        t.path(),
        &["push", "--plain-http", &reference, "in/notes.txt"],
    );
    let out = t.path().join("out");
    let err = run_fail(nixoci().args(["artifact", "pull", &reference]).arg(&out));
    assert!(
        err.contains(
            "artifact file name \"in/notes.txt\" contains a path separator; a name is not a path \
             (oras titles a file with the path it is pushed by: push it from its own directory, \
             `cd in && oras push REF notes.txt`)"
        ),
        "{err}"
    );
    assert!(
        !out.exists() || fs::read_dir(&out).unwrap().next().is_none(),
        "something was written into {}",
        out.display()
    );
}

/// A small image layout, tagged `latest`, in `dir/name`.
fn small_image(dir: &Path, name: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("hello"), format!("hello from {name}\n")).unwrap();
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({"layers": [{"files": [{"source": dir.join("hello"), "destination": "/etc/hello"}]}],
                "architecture": "amd64", "tags": ["latest"]}),
    );
    build(&spec, &dir.join(name))
}

/// A registry of each kind: registry 2.8, where referrers are listed
/// under the fallback tag, and one with the referrers API.
enum Either {
    Fallback(Registry),
    Api(ReferrersRegistry),
}

impl Either {
    fn both() -> [Either; 2] {
        [
            Either::Fallback(Registry::start(Setup::default())),
            Either::Api(ReferrersRegistry::start()),
        ]
    }

    fn reference(&self, repo_tag: &str) -> String {
        match self {
            Either::Fallback(r) => r.reference(repo_tag),
            Either::Api(r) => r.reference(repo_tag),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Either::Fallback(_) => "registry 2.8",
            Either::Api(_) => "referrers-registry",
        }
    }

    /// The artifact type a listing of this registry gives a referrer of
    /// artifact type `t`: go-containerregistry's pkg/registry (v0.22.1)
    /// lists the config's media type (OCI 1.1's empty one) in place of the
    /// manifest's `artifactType`, against the distribution spec.
    fn listed_type<'a>(&self, t: &'a str) -> &'a str {
        match self {
            Either::Fallback(_) => t,
            Either::Api(_) => "application/vnd.oci.empty.v1+json",
        }
    }
}

/// The digests `oras discover` lists as `reference`'s referrers, with the
/// artifact type of each.
fn discover(home: &Path, reference: &str) -> Vec<(String, String)> {
    let found = oras_json(home, home, &["discover", "--plain-http", reference]);
    let mut all: Vec<(String, String)> = found["referrers"]
        .as_array()
        .unwrap_or_else(|| panic!("{found:#}"))
        .iter()
        .map(|r| {
            (
                r["digest"].as_str().unwrap().to_owned(),
                r["artifactType"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    all.sort();
    all
}

/// The referrers a layout lists (entries with an `artifactType`), sorted,
/// whichever of its two shapes it has: in its `index.json`, or in its
/// referrers layout's (`referrers/index.json`).
fn listed_referrers(layout: &Path) -> Vec<String> {
    let mut all: Vec<String> = ["index.json", "referrers/index.json"]
        .iter()
        .map(|f| layout.join(f))
        .filter(|f| f.is_file())
        .flat_map(|f| read_json(&f)["manifests"].as_array().unwrap().clone())
        .filter(|m| m.get("artifactType").is_some())
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// `oras attach` of a signature to an image nixoci pushed: `nixoci
/// referrers` lists it (from the fallback tag oras wrote on registry 2.8,
/// from the API on the other), and `nixoci pull --referrers` brings its
/// manifest and file in, byte for byte, into a layout that verifies; and
/// those attached to a two-platform image's index and to one of its
/// manifests.
#[test]
fn oras_attach_is_read_by_nixoci() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let image = small_image(t.path(), "image");
    fs::write(t.path().join("sig.json"), br#"{"signature":"c2lnbmVk"}"#).unwrap();
    for reg in Either::both() {
        let reference = reg.reference("app/signed:1");
        run(nixoci().arg("push").arg(&image).arg(&reference).arg("-q"));
        let digest = oras_attach_signature(&home, t.path(), &reference);

        let listed = nixoci_json(&["referrers", &reference]);
        let source = match reg {
            Either::Fallback(_) => "fallback",
            Either::Api(_) => "api",
        };
        assert_eq!(listed["source"], source, "{}: {listed:#}", reg.name());
        assert_eq!(listed["subject"].as_str(), Some(&*manifest_digest(&image)));
        let manifests = listed["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1, "{}: {listed:#}", reg.name());
        assert_eq!(manifests[0]["digest"], digest.as_str());
        // nixoci reads a referrer's own manifest when the registry lists
        // the empty config type, so it names the real type on both.
        assert_eq!(
            manifests[0]["artifactType"],
            "application/vnd.example.signature"
        );

        let pulled = t.path().join(format!("pulled-{source}"));
        run(nixoci()
            .args(["pull", &reference])
            .arg(&pulled)
            .args(["--referrers", "-q"]));
        run(nixoci().arg("verify").arg(&pulled));
        assert_eq!(
            listed_referrers(&pulled),
            vec![digest.clone()],
            "{}",
            reg.name()
        );
        let fetched = oras_in(
            &home,
            &home,
            &[
                "manifest",
                "fetch",
                "--plain-http",
                &format!("{}@{digest}", reference.rsplit_once(':').unwrap().0),
            ],
        );
        let manifest_blob = fs::read(blob_path(&pulled, &digest)).unwrap();
        assert_eq!(manifest_blob, fetched.as_bytes());
        let doc: Value = serde_json::from_slice(&manifest_blob).unwrap();
        assert_eq!(
            doc["subject"]["digest"].as_str(),
            Some(&*manifest_digest(&image))
        );
        assert_eq!(
            doc["layers"][0]["annotations"]["org.opencontainers.image.title"],
            "sig.json"
        );
        assert_eq!(
            fs::read(blob_path(
                &pulled,
                doc["layers"][0]["digest"].as_str().unwrap()
            ))
            .unwrap(),
            fs::read(t.path().join("sig.json")).unwrap()
        );

        // A two-platform image: oras attaches to its index and to one of
        // its manifests (by digest); pull --referrers brings both.
        let multi = two_platform_layout(&t.path().join(format!("multi-{source}")), "layout");
        let reference = reg.reference("app/multi:1");
        run(nixoci().arg("push").arg(&multi).arg(&reference).arg("-q"));
        let index = read_json(&blob_path(&multi, &manifest_digest(&multi)));
        let arm = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "arm64")
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let repo = reference.rsplit_once(':').unwrap().0;
        let mut attached: Vec<String> = [reference.clone(), format!("{repo}@{arm}")]
            .iter()
            .map(|subject| oras_attach_signature(&home, t.path(), subject))
            .collect();
        attached.sort();
        let pulled = t.path().join(format!("pulled-multi-{source}"));
        run(nixoci()
            .args(["pull", &reference])
            .arg(&pulled)
            .args(["--referrers", "-q"]));
        run(nixoci().arg("verify").arg(&pulled));
        let found = listed_referrers(&pulled);
        assert_eq!(found, attached, "{}", reg.name());
    }
}

/// A copy of `image` with its SBOM attached (`nixoci sbom --attach`), and
/// that SBOM referrer's manifest digest.
fn with_sbom(image: &Path, dir: &Path) -> (PathBuf, String) {
    let layout = dir.join("with-sbom");
    run(Command::new("cp").arg("-a").arg(image).arg(&layout));
    let report = nixoci_json(&["sbom", layout.to_str().unwrap(), "--attach"]);
    let digest = report["attached"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{report:#}"))
        .to_owned();
    (layout, digest)
}

/// `oras discover` lists what nixoci listed: the SBOM referrer `nixoci
/// push` carried from a layout, what `nixoci attach` attached and what
/// `nixoci artifact push --subject` pushed, on
/// both registries; oras pulls the SBOM document nixoci wrote, byte for
/// byte, and `--artifact-type` picks it out where the registry lists
/// artifact types.
#[test]
fn oras_discover_lists_what_nixoci_listed() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let image = small_image(t.path(), "image");
    let (layout, sbom) = with_sbom(&image, t.path());
    fs::write(t.path().join("sig.json"), br#"{"signature":"bml4b2Np"}"#).unwrap();
    for reg in Either::both() {
        let reference = reg.reference("app/listed:1");
        run(nixoci().arg("push").arg(&layout).arg(&reference).arg("-q"));
        let attached = nixoci_json(&[
            "attach",
            &reference,
            "--artifact-type",
            "application/vnd.example.signature",
            t.path().join("sig.json").to_str().unwrap(),
        ]);
        let sig = attached["digest"].as_str().unwrap().to_owned();
        let notes = nixoci_json(&[
            "artifact",
            "push",
            &reg.reference("app/listed:notes"),
            t.path().join("sig.json").to_str().unwrap(),
            "--subject",
            &reference,
            "--artifact-type",
            "application/vnd.example.notes",
        ])["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut want = vec![
            (
                notes.clone(),
                reg.listed_type("application/vnd.example.notes").to_owned(),
            ),
            (
                sbom.clone(),
                reg.listed_type("application/spdx+json").to_owned(),
            ),
            (
                sig.clone(),
                reg.listed_type("application/vnd.example.signature")
                    .to_owned(),
            ),
        ];
        want.sort();
        assert_eq!(discover(&home, &reference), want, "{}", reg.name());
        let found = oras_json(&home, &home, &["discover", "--plain-http", &reference]);
        assert_eq!(found["digest"].as_str(), Some(&*manifest_digest(&layout)));

        if let Either::Fallback(_) = reg {
            let only = oras_json(
                &home,
                &home,
                &[
                    "discover",
                    "--plain-http",
                    &reference,
                    "--artifact-type",
                    "application/spdx+json",
                ],
            );
            let digests: Vec<&Value> = only["referrers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| &r["digest"])
                .collect();
            assert_eq!(digests, vec![&json!(sbom)], "{only:#}");
        }

        let repo = reference.rsplit_once(':').unwrap().0;
        let out = t
            .path()
            .join(format!("sbom-{}", reg.name().replace(' ', "-")));
        fs::create_dir_all(&out).unwrap();
        oras_in(
            &home,
            &out,
            &["pull", "--plain-http", &format!("{repo}@{sbom}")],
        );
        let doc = read_json(&blob_path(&layout, &sbom));
        assert_eq!(
            fs::read(out.join("sbom.spdx.json")).unwrap(),
            fs::read(blob_path(
                &layout,
                doc["layers"][0]["digest"].as_str().unwrap()
            ))
            .unwrap()
        );
    }
}
