//! Layouts with referrers, beyond the one-platform image of
//! tests/referrers_layout.rs: a two-platform image with an SBOM attached
//! to each platform's manifest (`nixoci sbom --attach --platform`), which
//! `crane push`, `nixoci push`, `oras cp -r --from-oci-layout
//! DIR/referrers:TAG` and `nixoci pull --referrers` carry whole; and the
//! layout nested at `referrers/` given where a layout is changed
//! (`sbom --attach DIR/referrers`), refused with the layout to attach to,
//! nothing written.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::peers::*;
use common::registry::*;
use common::*;
use serde_json::{json, Value};

/// A layout tagged `latest` naming an index over an amd64 and an arm64
/// image, each holding a store path of its own, with an SPDX SBOM
/// attached to the amd64 image and a CycloneDX one to the arm64 image;
/// at `dir/name`. Returns it and the two platform manifests' digests.
fn two_platforms_with_sboms(dir: &Path, name: &str) -> (PathBuf, [String; 2]) {
    file(dir, "f", b"hi\n", 0o644);
    let mut manifests = Vec::new();
    for (arch, hash) in [
        ("amd64", "0123456789abcdfghijklmnpqrsvwxyz"),
        ("arm64", "zyxwvsrqpnmlkjihgfdcba9876543210"),
    ] {
        let spec = dir.join(format!("{name}-{arch}.json"));
        write_json(
            &spec,
            &json!({
                "layers": [{"files": [{"source": dir.join("f"), "destination": format!("/nix/store/{hash}-app-1.0/{arch}")}]}],
                "architecture": arch,
            }),
        );
        let out = dir.join(format!("{name}-{arch}"));
        run(nixoci()
            .arg("manifest")
            .arg(&spec)
            .arg("-o")
            .arg(&out)
            .arg("-q"));
        manifests.push(out);
    }
    let spec = dir.join(format!("{name}-layout.json"));
    write_json(&spec, &json!({"manifests": manifests, "tags": ["latest"]}));
    let layout = dir.join(name);
    run(nixoci()
        .arg("layout")
        .arg(&spec)
        .arg("-o")
        .arg(&layout)
        .arg("-q"));
    let mut subjects = Vec::new();
    for (platform, format) in [("linux/amd64", "spdx"), ("linux/arm64", "cyclonedx")] {
        let out = run(nixoci().arg("sbom").arg(&layout).args([
            "--attach",
            "--json",
            "--platform",
            platform,
            "--format",
            format,
        ]));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        subjects.push(report["manifest"].as_str().unwrap().to_owned());
    }
    let subjects: [String; 2] = subjects.try_into().unwrap();
    assert_ne!(subjects[0], subjects[1]);
    (layout, subjects)
}

/// The referrers of `digest` in `repo` at `host` as `nixoci referrers`
/// lists them: (digest, artifact type).
fn referrers(env: &Path, host: &str, repo: &str, digest: &str) -> Vec<(String, String)> {
    let out = run(nixoci_in(env)
        .arg("referrers")
        .arg(format!("{host}/{repo}@{digest}"))
        .arg("--json"));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    list["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_owned(),
                m["artifactType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What the layout lists as referrers of `subject` (its nested layout's
/// entries whose manifest names it): (digest, artifact type, `(none)`
/// when the entry has none).
fn in_layout(layout: &Path, subject: &str) -> Vec<(String, String)> {
    let nested = read_json(&layout.join("referrers/index.json"));
    nested["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            let doc = read_json(&blob_path(layout, m["digest"].as_str().unwrap()));
            doc["subject"]["digest"] == json!(subject)
        })
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_owned(),
                m["artifactType"].as_str().unwrap_or("(none)").to_owned(),
            )
        })
        .collect()
}

/// A two-platform image whose SBOMs are referrers of its platform
/// manifests (not of the index): `index.json` holds the index alone, so
/// `crane push` takes it; `nixoci push` and `oras cp -r --from-oci-layout
/// DIR/referrers:latest` each deliver both SBOMs, listed under their own
/// platform's manifest, on registry 2.8 and on the referrers registry;
/// `nixoci pull --referrers` of what oras pushed writes a layout of the
/// same shape and entries, which verifies and which crane pushes; and the
/// layout `oras cp -r REF --to-oci-layout` writes of it (with a
/// signature of one SBOM, attached by `oras attach`) is read as one image
/// with its referrers.
#[test]
fn a_two_platform_image_carries_the_sbom_of_each_platform() {
    let t = tempfile::tempdir().unwrap();
    let (layout, subjects) = two_platforms_with_sboms(t.path(), "img");
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    let want: Vec<Vec<(String, String)>> = subjects.iter().map(|s| in_layout(&layout, s)).collect();
    assert_eq!(want[0].len(), 1, "{want:?}");
    assert_eq!(want[0][0].1, "application/spdx+json");
    assert_eq!(want[1].len(), 1, "{want:?}");
    assert_eq!(want[1][0].1, "application/vnd.cyclonedx+json");
    run(nixoci().arg("verify").arg(&layout));
    let top = manifest_digest(&layout);

    let plain = Registry::start(Setup::default());
    let api = ReferrersRegistry::start();
    for host in [plain.host(), api.host()] {
        run(crane(t.path())
            .args(["push", "--insecure"])
            .arg(&layout)
            .arg(format!("{host}/crane/app:1")));
        let digest = run(crane(t.path())
            .args(["digest", "--insecure"])
            .arg(format!("{host}/crane/app:1")));
        assert_eq!(String::from_utf8_lossy(&digest.stdout).trim(), top);

        run(nixoci_in(t.path())
            .arg("push")
            .arg(&layout)
            .arg(format!("{host}/nixoci/app:1"))
            .arg("-q"));
        run(oras(t.path())
            .args(["cp", "-r", "--to-plain-http", "--from-oci-layout"])
            .arg(format!("{}:latest", layout.join("referrers").display()))
            .arg(format!("{host}/oras/app:1")));
        for repo in ["nixoci/app", "oras/app"] {
            for (subject, want) in subjects.iter().zip(&want) {
                assert_eq!(
                    &referrers(t.path(), &host, repo, subject),
                    want,
                    "{host}/{repo}"
                );
            }
        }

        let pulled = t.path().join(format!("pulled-{}", host.replace(':', "-")));
        run(nixoci_in(t.path())
            .arg("pull")
            .arg(format!("{host}/oras/app:1"))
            .arg(&pulled)
            .args(["--referrers", "--tag", "latest", "-q"]));
        run(nixoci().arg("verify").arg(&pulled));
        assert_eq!(
            fs::read(pulled.join("index.json")).unwrap(),
            fs::read(layout.join("index.json")).unwrap()
        );
        for (subject, want) in subjects.iter().zip(&want) {
            assert_eq!(&in_layout(&pulled, subject), want, "{}", pulled.display());
        }
        run(crane(t.path())
            .args(["push", "--insecure"])
            .arg(&pulled)
            .arg(format!("{host}/pulled/app:1")));

        // A signature of the amd64 SBOM: a referrer of a referrer.
        let sig = t.path().join("sig.json");
        fs::write(&sig, b"{}").unwrap();
        let out = run(oras(t.path())
            .args(["attach", "--plain-http", "--format", "json"])
            .args(["--artifact-type", "application/vnd.example.sig"])
            .arg(format!("{host}/nixoci/app@{}", want[0][0].0))
            .arg("sig.json")
            .current_dir(t.path()));
        let attached: Value = serde_json::from_slice(&out.stdout).unwrap();
        let sig_digest = attached["digest"].as_str().unwrap().to_owned();

        // What oras writes from the registry: index.json lists the index
        // (tagged), each referrer, and each platform manifest that has
        // one, untagged, and the SBOM that has a signature without its
        // artifactType. Those manifests are part of the image, not images
        // of their own, and that SBOM is a referrer (its manifest has a
        // subject): push takes the layout without a tag and carries both
        // SBOMs and the signature (it stopped with "holds several images
        // (latest)").
        let from_oras = t.path().join(format!("oras-{}", host.replace(':', "-")));
        run(oras(t.path())
            .args(["cp", "-r", "--from-plain-http"])
            .arg(format!("{host}/nixoci/app:1"))
            .arg("--to-oci-layout")
            .arg(format!("{}:latest", from_oras.display())));
        let listed = read_json(&from_oras.join("index.json"));
        assert_eq!(listed["manifests"].as_array().unwrap().len(), 6, "{listed}");
        run(nixoci_in(t.path())
            .arg("push")
            .arg(&from_oras)
            .arg(format!("{host}/from-oras/app:1"))
            .arg("-q"));
        for (subject, want) in subjects.iter().zip(&want) {
            assert_eq!(
                &referrers(t.path(), &host, "from-oras/app", subject),
                want,
                "{host}"
            );
        }
        assert_eq!(
            referrers(t.path(), &host, "from-oras/app", &want[0][0].0),
            [(sig_digest.clone(), "application/vnd.example.sig".to_owned())],
            "{host}"
        );
        // An attach moves the referrers into referrers/ and leaves the
        // index alone in index.json, which crane takes.
        run(nixoci().arg("sbom").arg(&from_oras).args([
            "--attach",
            "-q",
            "--platform",
            "linux/arm64",
            "--format",
            "spdx",
        ]));
        assert_eq!(
            read_json(&from_oras.join("index.json")),
            read_json(&layout.join("index.json"))
        );
        run(nixoci().arg("verify").arg(&from_oras));
        let nested = read_json(&from_oras.join("referrers/index.json"));
        assert!(nested.to_string().contains(&sig_digest), "{nested}");
        // Each listed with its own artifact type (oras's index.json gave
        // the empty config's, or none).
        let amd64 = in_layout(&from_oras, &subjects[0]);
        assert_eq!(amd64, want[0], "{nested}");
        run(crane(t.path())
            .args(["push", "--insecure"])
            .arg(&from_oras)
            .arg(format!("{host}/from-oras-attached/app:1")));
    }
}

/// `nixoci sbom DIR/referrers --attach` (the nested layout, as oras is
/// given it; named from inside it as `.` too) is refused before anything
/// is written, naming the layout to attach to. (It wrote the SBOM's blobs
/// through the nested layout's link and then stopped with
/// "DIR/referrers/blobs/sha256: Not a directory".) A layout whose own
/// `blobs/sha256` is a link elsewhere is refused the same way, and nothing
/// is written where the link leads; so is one whose nested layout has
/// another shape, before the SBOM's blobs are written.
#[test]
fn attaching_to_the_nested_layout_names_the_layout_to_attach_to() {
    let t = tempfile::tempdir().unwrap();
    let (layout, _) = two_platforms_with_sboms(t.path(), "img");
    let before = snapshot(&layout);
    let nested = layout.join("referrers");
    for (cwd, arg) in [
        (t.path(), nested.as_path()),
        (nested.as_path(), Path::new(".")),
    ] {
        let err = run_fail(nixoci().current_dir(cwd).arg("sbom").arg(arg).args([
            "--attach",
            "--platform",
            "linux/amd64",
            "--format",
            "cyclonedx",
        ]));
        assert!(
            err.contains(&format!(
                "the layout nested in {0} that lists {0}'s referrers",
                layout.display()
            )) && err.contains(&format!("attach to {} instead", layout.display()))
                && !err.contains("Not a directory"),
            "{err}"
        );
        assert!(diff(&before, &snapshot(&layout)).is_none(), "{err}");
    }
    // Attaching to the layout itself, as the message says, lists it.
    run(nixoci().arg("sbom").arg(&layout).args([
        "--attach",
        "-q",
        "--platform",
        "linux/amd64",
        "--format",
        "cyclonedx",
    ]));
    run(nixoci().arg("verify").arg(&layout));

    // A nested layout of another shape (its oci-layout removed): refused
    // before the SBOM's blobs are written (they were, then "nothing was
    // attached").
    let broken = t.path().join("broken");
    run(Command::new("cp").arg("-a").arg(&layout).arg(&broken));
    fs::remove_file(broken.join("referrers/oci-layout")).unwrap();
    let before = snapshot(&broken);
    let err = attach_arm64_spdx_fails(&broken);
    assert!(
        err.contains("the referrers layout is not as nixoci writes it, so nothing was attached")
            && err.contains("referrers/oci-layout: missing"),
        "{err}"
    );
    assert!(diff(&before, &snapshot(&broken)).is_none(), "{err}");

    // blobs/sha256 a link to another directory.
    let linked = t.path().join("linked");
    let elsewhere = t.path().join("elsewhere");
    run(Command::new("cp").arg("-a").arg(&layout).arg(&linked));
    fs::rename(linked.join("blobs/sha256"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, linked.join("blobs/sha256")).unwrap();
    fs::remove_dir_all(linked.join("referrers")).unwrap();
    let before = snapshot(&elsewhere);
    let err = attach_arm64_spdx_fails(&linked);
    assert!(
        err.contains(&format!(
            "{}: a symbolic link (to {})",
            linked.join("blobs/sha256").display(),
            elsewhere.display()
        )) && err.contains("never through a link"),
        "{err}"
    );
    assert!(diff(&before, &snapshot(&elsewhere)).is_none(), "{err}");
}

/// The message of `nixoci sbom LAYOUT --attach --platform linux/arm64
/// --format spdx`, which must fail.
fn attach_arm64_spdx_fails(layout: &Path) -> String {
    run_fail(nixoci().arg("sbom").arg(layout).args([
        "--attach",
        "--platform",
        "linux/arm64",
        "--format",
        "spdx",
    ]))
}
