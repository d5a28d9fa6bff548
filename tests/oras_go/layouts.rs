//! Layouts each tool writes, read by the other: `oras cp -r
//! --to-oci-layout` and `oras push --oci-layout` read by nixoci, `oras
//! pull --oci-layout` of a layout nixoci wrote, and `oras cp -r
//! --from-oci-layout` of a layout's referrers layout.

use super::*;

/// Layouts oras writes, read by nixoci: `oras cp -r --to-oci-layout` of
/// an image with an SBOM and a signature verifies, unpacks to the image's
/// files, and `nixoci push` of it carries both referrers (oras discover
/// finds them); `oras push --oci-layout` of files and a directory
/// verifies, inspects as an artifact, and unpacks to the same files. And
/// the other way: oras pulls the files out of the layout `nixoci pull`
/// wrote of an artifact.
#[test]
fn layouts_oras_writes_are_read_by_nixoci() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let image = small_image(t.path(), "image");
    let (layout, sbom) = with_sbom(&image, t.path());
    fs::write(t.path().join("sig.json"), br#"{"signature":"b3Jhcw=="}"#).unwrap();
    let [Either::Fallback(reg), Either::Api(api)] = Either::both() else {
        unreachable!()
    };
    let reference = reg.reference("app/copied:1");
    run(nixoci().arg("push").arg(&layout).arg(&reference).arg("-q"));
    let sig = oras_attach_signature(&home, t.path(), &reference);

    let copied = t.path().join("copied");
    oras_in(
        &home,
        t.path(),
        &[
            "cp",
            "-r",
            "--from-plain-http",
            &reference,
            "--to-oci-layout",
            "copied:v1",
        ],
    );
    run(nixoci().arg("verify").arg(&copied));
    let unpacked = t.path().join("unpacked");
    run(nixoci().arg("unpack").arg(&copied).arg(&unpacked).arg("-q"));
    assert_eq!(
        fs::read(unpacked.join("etc/hello")).unwrap(),
        b"hello from image\n"
    );
    for (again, name) in [
        (reg.reference("app/again:1"), "registry 2.8"),
        (api.reference("app/again:1"), "referrers-registry"),
    ] {
        let report = nixoci_json(&["push", copied.to_str().unwrap(), &again]);
        assert_eq!(report["digest"].as_str(), Some(&*manifest_digest(&layout)));
        let mut carried: Vec<&str> = report["referrers"]
            .as_array()
            .unwrap_or_else(|| panic!("{report:#}"))
            .iter()
            .map(|r| r["digest"].as_str().unwrap())
            .collect();
        carried.sort();
        let mut want = vec![sbom.as_str(), sig.as_str()];
        want.sort();
        assert_eq!(carried, want, "{name}: {report:#}");
        let found: Vec<String> = discover(&home, &again).into_iter().map(|r| r.0).collect();
        assert_eq!(found, want, "{name}");
    }

    // An artifact oras writes into a layout: nixoci reads it as one.
    let work = t.path().join("in");
    inputs(&work);
    oras_in(
        &home,
        &work,
        &[
            "push",
            "--oci-layout",
            "../artifact:v1",
            "notes.txt",
            "data.bin",
            "site",
            "--artifact-type",
            "application/vnd.example.release",
        ],
    );
    let artifact = t.path().join("artifact");
    run(nixoci().arg("verify").arg(&artifact));
    let inspected = nixoci_json(&["inspect", artifact.to_str().unwrap()]);
    let written = read_json(&blob_path(&artifact, &manifest_digest(&artifact)));
    assert_eq!(inspected[0]["tag"], "v1", "{inspected:#}");
    assert_eq!(written["artifactType"], "application/vnd.example.release");
    assert_eq!(
        inspected[0]["images"][0]["layers"], written["layers"],
        "{inspected:#}"
    );
    let files = t.path().join("artifact-files");
    run(nixoci().arg("unpack").arg(&artifact).arg(&files).arg("-q"));
    check_pulled(&["notes.txt", "data.bin", "site"], &work, &files, snapshot);
    let sent = reg.reference("art/from-oras-layout:1");
    run(nixoci().arg("push").arg(&artifact).arg(&sent).arg("-q"));
    assert_eq!(manifest(&home, &sent), written);
    let files = t.path().join("artifact-pulled");
    run(nixoci()
        .args(["artifact", "pull", &sent])
        .arg(&files)
        .arg("-q"));
    check_pulled(&["notes.txt", "data.bin", "site"], &work, &files, snapshot);

    // The other way: nixoci pulls an artifact into a layout, oras reads
    // its files out of it.
    let pushed = reg.reference("art/files:1");
    run(nixoci()
        .args([
            "artifact",
            "push",
            &pushed,
            "notes.txt",
            "data.bin",
            "site",
            "-q",
        ])
        .current_dir(&work));
    let pulled = t.path().join("pulled-artifact");
    run(nixoci().args(["pull", &pushed]).arg(&pulled).arg("-q"));
    let out = t.path().join("oras-from-layout");
    fs::create_dir_all(&out).unwrap();
    oras_in(
        &home,
        &out,
        &["pull", "--oci-layout", &format!("{}:1", pulled.display())],
    );
    check_pulled(&["notes.txt", "data.bin", "site"], &work, &out, |p| {
        normalised(snapshot(p))
    });
    run(Command::new("chmod").arg("-R").arg("u+w").arg(&out));
}

/// The layout shape whose referrers live in a layout of their own,
/// `DIR/referrers/` (its `index.json` lists the image, then its
/// referrers; its blobs are the layout's), so that `DIR`'s own
/// `index.json` keeps the one entry crane pushes: `oras cp -r
/// --from-oci-layout DIR/referrers:latest REF` delivers the image and its
/// SBOM, on both registries (and `oras discover --oci-layout` finds the
/// SBOM there offline).
#[test]
fn oras_cp_delivers_a_layouts_sbom_from_its_referrers_layout() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let image = small_image(t.path(), "image");
    let (layout, sbom) = with_sbom(&image, t.path());
    let root = read_json(&layout.join("index.json"));
    assert_eq!(
        root["manifests"].as_array().unwrap().len(),
        1,
        "{}: {root:#}",
        layout.display()
    );
    assert!(
        layout.join("referrers/index.json").is_file(),
        "{} has no referrers layout",
        layout.display()
    );
    let offline = oras_json(
        &home,
        t.path(),
        &[
            "discover",
            "--oci-layout",
            &format!("{}/referrers:latest", layout.display()),
        ],
    );
    assert_eq!(offline["digest"].as_str(), Some(&*manifest_digest(&layout)));
    assert_eq!(offline["referrers"][0]["digest"].as_str(), Some(&*sbom));
    assert_eq!(
        offline["referrers"][0]["artifactType"],
        "application/spdx+json"
    );
    for reg in Either::both() {
        let reference = reg.reference("app/shaped:1");
        oras_in(
            &home,
            t.path(),
            &[
                "cp",
                "-r",
                "--from-oci-layout",
                &format!("{}/referrers:latest", layout.display()),
                "--to-plain-http",
                &reference,
            ],
        );
        let found = oras_json(&home, &home, &["discover", "--plain-http", &reference]);
        assert_eq!(found["digest"].as_str(), Some(&*manifest_digest(&layout)));
        let listed: Vec<String> = discover(&home, &reference)
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(listed, vec![sbom.clone()], "{}", reg.name());
    }
}
