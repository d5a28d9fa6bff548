//! `nixoci artifact push` / `pull` against a real registry on 127.0.0.1,
//! both ways with the ORAS project's python client (`oras` 0.2, in the
//! peers' virtualenv): files, several files, a directory, annotations.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{Registry, Setup};
use common::*;
use serde_json::{json, Value};

/// Run python with the `oras` client: `script` gets the registry host as
/// `HOST` and the working directory as `WORK`; what it prints is returned.
fn oras(host: &str, work: &Path, script: &str) -> String {
    let full = format!(
        "import json, os, oras.client\nHOST = {host:?}\nWORK = {work:?}\nc = oras.client.OrasClient(hostname=HOST, insecure=True)\n{script}"
    );
    let out = run(Command::new(peer("python"))
        .args(["-c", &full])
        .current_dir(work));
    String::from_utf8(out.stdout).unwrap()
}

/// Files and a directory (nested, with a link inside it) to move.
fn inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    let a = dir.join("notes.txt");
    fs::write(&a, "release notes\n").unwrap();
    let b = dir.join("data.bin");
    fs::write(
        &b,
        (0..5000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let d = dir.join("site");
    fs::create_dir_all(d.join("css")).unwrap();
    fs::write(d.join("index.html"), "<p>hi</p>\n").unwrap();
    fs::write(d.join("css/a.css"), "p{}\n").unwrap();
    symlink("index.html", d.join("home.html")).unwrap();
    (a, b, d)
}

/// The same paths, file contents and link targets (modes aside: a packed
/// directory's are normalised).
fn same_tree(a: &Path, b: &Path) {
    let view = |root: &Path| -> Vec<(Vec<u8>, Vec<u8>)> {
        snapshot(root)
            .into_iter()
            .map(|(k, n)| {
                let v = match n {
                    Node::Dir { .. } => b"dir".to_vec(),
                    Node::File { content, .. } => content,
                    Node::Symlink { target } => [b"->".to_vec(), target].concat(),
                };
                (k, v)
            })
            .collect()
    };
    assert_eq!(view(a), view(b), "{} and {}", a.display(), b.display());
}

/// ORAS pushes; nixoci pulls the same bytes, the directory unpacked.
#[test]
fn oras_pushes_nixoci_pulls() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("in");
    let (a, b, d) = inputs(&work);
    for (tag, files) in [
        ("one", "['notes.txt']"),
        ("several", "['notes.txt', 'data.bin']"),
        ("dir", "['site']"),
    ] {
        oras(
            &reg.host(),
            &work,
            &format!(
                "c.push(target=HOST + '/oras/x:{tag}', files={files}, manifest_annotations={{'made-by': 'oras', 'tag': '{tag}'}})"
            ),
        );
        let out = t.path().join(format!("out-{tag}"));
        run(nixoci()
            .args(["artifact", "pull"])
            .arg(reg.reference(&format!("oras/x:{tag}")))
            .arg(&out)
            .arg("-q"));
        match tag {
            "dir" => same_tree(&d, &out.join("site")),
            _ => {
                assert_eq!(
                    fs::read(out.join("notes.txt")).unwrap(),
                    fs::read(&a).unwrap()
                );
                if tag == "several" {
                    assert_eq!(
                        fs::read(out.join("data.bin")).unwrap(),
                        fs::read(&b).unwrap()
                    );
                }
            }
        }
    }
    // In a layout: nixoci pull writes the artifact as one, which
    // verifies, unpacks to the same files, and pushes back.
    let layout = t.path().join("layout");
    run(nixoci()
        .arg("pull")
        .arg(reg.reference("oras/x:dir"))
        .arg(&layout)
        .arg("-q"));
    run(nixoci().arg("verify").arg(&layout));
    let unpacked = t.path().join("unpacked");
    run(nixoci().arg("unpack").arg(&layout).arg(&unpacked).arg("-q"));
    same_tree(&d, &unpacked.join("site"));
    run(nixoci()
        .arg("push")
        .arg(&layout)
        .arg(reg.reference("oras/copy:dir"))
        .arg("-q"));
    let again = t.path().join("again");
    run(nixoci()
        .args(["artifact", "pull"])
        .arg(reg.reference("oras/copy:dir"))
        .arg(&again)
        .arg("-q"));
    same_tree(&d, &again.join("site"));

    // A second pull into the same place: refused, nothing replaced;
    // --overwrite replaces.
    let out = t.path().join("out-several");
    fs::write(out.join("data.bin"), "changed").unwrap();
    let err = run_fail(
        nixoci()
            .args(["artifact", "pull"])
            .arg(reg.reference("oras/x:several"))
            .arg(&out),
    );
    assert!(
        err.contains("already exists") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(fs::read(out.join("data.bin")).unwrap(), b"changed");
    let leftovers: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    run(nixoci()
        .args(["artifact", "pull", "--overwrite"])
        .arg(reg.reference("oras/x:several"))
        .arg(&out)
        .arg("-q"));
    assert_eq!(
        fs::read(out.join("data.bin")).unwrap(),
        fs::read(&b).unwrap()
    );
}

/// nixoci pushes (files with media types, a directory, annotations from
/// ORAS's annotations file); ORAS pulls the same bytes and reads the
/// annotations; the manifest is OCI 1.1's (artifactType, the empty
/// config) and the same inputs give the same digest from another copy.
#[test]
fn nixoci_pushes_oras_pulls() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("in");
    let (_, _, d) = inputs(&work);
    let annotations = t.path().join("annotations.json");
    fs::write(
        &annotations,
        r#"{"$manifest": {"org.opencontainers.image.source": "https://example.org"}, "notes.txt": {"kind": "notes"}}"#,
    )
    .unwrap();
    let push = |from: &Path, tag: &str| -> Value {
        let out = run(nixoci()
            .args(["artifact", "push"])
            .arg(reg.reference(&format!("nix/art:{tag}")))
            .arg(format!("{}:text/plain", from.join("notes.txt").display()))
            .arg(from.join("data.bin"))
            .arg(from.join("site"))
            .args(["--artifact-type", "application/vnd.example.release"])
            .arg("--annotations-file")
            .arg(&annotations)
            .arg("--json"));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = push(&work, "1");
    let got = t.path().join("oras-out");
    fs::create_dir_all(&got).unwrap();
    let printed = oras(
        &reg.host(),
        &got,
        "c.pull(target=HOST + '/nix/art:1', outdir=WORK)\nprint(json.dumps(c.get_manifest(HOST + '/nix/art:1')))",
    );
    let manifest: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        manifest["artifactType"],
        json!("application/vnd.example.release")
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        json!("application/vnd.oci.empty.v1+json")
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        json!("https://example.org")
    );
    assert_eq!(manifest["layers"][0]["annotations"]["kind"], json!("notes"));
    assert_eq!(manifest["layers"][0]["mediaType"], json!("text/plain"));
    assert_eq!(
        fs::read(got.join("notes.txt")).unwrap(),
        fs::read(work.join("notes.txt")).unwrap()
    );
    assert_eq!(
        fs::read(got.join("data.bin")).unwrap(),
        fs::read(work.join("data.bin")).unwrap()
    );
    same_tree(&d, &got.join("site"));

    // The same inputs elsewhere (other mtimes, other path): the same
    // manifest, byte for byte.
    let copy = t.path().join("copy");
    let (_, _, _) = inputs(&copy);
    let second = push(&copy, "2");
    assert_eq!(first["digest"], second["digest"]);

    // The size limits: a file, and the whole, refused on push before
    // anything is sent, and on pull with nothing written.
    let err = run_fail(
        nixoci()
            .args(["artifact", "push", "--max-file-size", "100"])
            .arg(reg.reference("nix/art:big"))
            .arg(work.join("data.bin")),
    );
    assert!(err.contains("5000 bytes, more than the 100"), "{err}");
    let err = run_fail(
        nixoci()
            .args(["artifact", "push", "--max-total-size", "5010"])
            .arg(reg.reference("nix/art:big"))
            .arg(work.join("data.bin"))
            .arg(work.join("notes.txt")),
    );
    assert!(err.contains("add up to more than the 5010 bytes"), "{err}");
    let small = t.path().join("small");
    let err = run_fail(
        nixoci()
            .args(["artifact", "pull", "--max-file-size", "100"])
            .arg(reg.reference("nix/art:1"))
            .arg(&small),
    );
    assert!(
        err.contains("--max-file-size") || err.contains("100"),
        "{err}"
    );
    let left: Vec<_> = fs::read_dir(&small)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        left.iter().all(|n| *n == 0),
        "left behind in {}",
        small.display()
    );

    // A link out of a directory is refused, before anything is sent.
    let bad = t.path().join("bad");
    fs::create_dir_all(&bad).unwrap();
    symlink("../../etc/passwd", bad.join("escape")).unwrap();
    let err = run_fail(
        nixoci()
            .args(["artifact", "push"])
            .arg(reg.reference("nix/art:bad"))
            .arg(&bad),
    );
    assert!(err.contains("leads out of the directory"), "{err}");
    let err = run_fail(
        nixoci()
            .args(["artifact", "push"])
            .arg(reg.reference("nix/art:bad"))
            .arg(format!("{}:text/pl ain", work.join("notes.txt").display())),
    );
    assert!(err.contains("is not type/subtype"), "{err}");
}

/// A tar of `(name, kind, content or link target, mode)` entries, owned
/// by 1234:1234.
fn tar_of(entries: &[(&str, tar::EntryType, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(1234);
        h.set_gid(1234);
        h.set_mtime(1);
        if *kind == tar::EntryType::Symlink {
            h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
            h.set_size(0);
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Push a layout of one manifest whose layers are `layers` (bytes, media
/// type, annotations), with the empty config (or an image config listing
/// no diff_ids when `image`), to `reference`.
fn push_crafted(reference: &str, dir: &Path, layers: &[(Vec<u8>, &str, Value)], image: bool) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| put_blob(dir, bytes);
    let descs: Vec<Value> = layers
        .iter()
        .map(|(bytes, media_type, annotations)| {
            let (d, n) = put(bytes);
            json!({"mediaType": media_type, "digest": d, "size": n, "annotations": annotations})
        })
        .collect();
    let mut manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": descs});
    if image {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let (cd, cs) = put(config);
        manifest["config"] = json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs});
    } else {
        let (cd, cs) = put(b"{}");
        manifest["config"] =
            json!({"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": cs});
        manifest["artifactType"] = json!("application/vnd.example.thing");
    }
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    write_json(
        &dir.join("index.json"),
        &json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}),
    );
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    run(nixoci().arg("push").arg(dir).arg(reference).arg("-q"));
}

/// Names of what is in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Regressions: a packed directory titled `site` whose tar also held
/// `.envrc` wrote it beside `site`, and with `--overwrite` replaced an
/// unrelated file there; an ordinary image (untitled layers) was
/// extracted whole into the target. Now each is refused, naming the entry
/// or the layer, and nothing in the target changes; a mix of titled and
/// untitled layers is refused too, naming the untitled one.
#[test]
fn artifact_pull_writes_only_what_titles_name() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    use tar::EntryType::{Directory as D, Regular as F};
    let packed = |entries: &[(&str, tar::EntryType, &[u8], u32)]| {
        (
            gzip(&tar_of(entries)),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            json!({"org.opencontainers.image.title": "site", "io.deis.oras.content.unpack": "true"}),
        )
    };
    let site = [
        ("site/", D, &b""[..], 0o755),
        ("site/index.html", F, b"<p>hi</p>\n", 0o644),
    ];
    for (tag, extra) in [
        (".envrc", ".envrc"),
        ("makefile", "Makefile"),
        ("keep", "keep"),
    ] {
        let mut entries = site.to_vec();
        entries.push((extra, F, b"export EVIL=1\n", 0o644));
        let reference = reg.reference(&format!("hostile/site:{}", tag.trim_start_matches('.')));
        push_crafted(&reference, &t.path().join(tag), &[packed(&entries)], false);
        let out = t.path().join(format!("out-{tag}"));
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join(extra), "mine\n").unwrap();
        let err = run_fail(
            nixoci()
                .args(["artifact", "pull", "--overwrite"])
                .arg(&reference)
                .arg(&out),
        );
        assert!(
            err.contains(&format!("entry {extra:?} refused: it is outside \"site\"")),
            "{err}"
        );
        assert_eq!(fs::read(out.join(extra)).unwrap(), b"mine\n");
        assert_eq!(listing(&out), vec![extra.to_owned()], "{tag}");
    }

    // ORAS's io.deis.oras.content.digest (the tar's digest) is checked when
    // given: a wrong one is refused before anything is written, the right
    // one pulls.
    let tar = tar_of(&site);
    let tar_digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&tar))
    );
    for (tag, digest) in [
        ("wrong", format!("sha256:{}", "0".repeat(64))),
        ("right", tar_digest.clone()),
    ] {
        let layer = (
            gzip(&tar),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            json!({"org.opencontainers.image.title": "site", "io.deis.oras.content.unpack": "true", "io.deis.oras.content.digest": digest}),
        );
        let reference = reg.reference(&format!("digest/site:{tag}"));
        push_crafted(
            &reference,
            &t.path().join(format!("digest-{tag}")),
            &[layer],
            false,
        );
        let out = t.path().join(format!("out-digest-{tag}"));
        let mut pull = nixoci();
        pull.args(["artifact", "pull"]).arg(&reference).arg(&out);
        if tag == "wrong" {
            let err = run_fail(&mut pull);
            assert!(
                err.contains(&format!("its tar has digest {tar_digest}, but its io.deis.oras.content.digest annotation says {digest}")),
                "{err}"
            );
            assert!(
                !out.exists() || listing(&out).is_empty(),
                "{:?}",
                listing(&out)
            );
        } else {
            run(&mut pull);
            assert_eq!(
                fs::read(out.join("site/index.html")).unwrap(),
                b"<p>hi</p>\n"
            );
        }
    }

    // An ordinary image: no titles.
    let spec = t.path().join("image.json");
    fs::write(t.path().join("hello"), "hello\n").unwrap();
    write_json(
        &spec,
        &json!({"layers": [{"files": [{"source": t.path().join("hello"), "destination": "/etc/hello"}]}]}),
    );
    let image = build(&spec, &t.path().join("image"));
    run(nixoci()
        .arg("push")
        .arg(&image)
        .arg(reg.reference("plain/image:1"))
        .arg("-q"));
    let out = t.path().join("out-image");
    let err = run_fail(
        nixoci()
            .args(["artifact", "pull"])
            .arg(reg.reference("plain/image:1"))
            .arg(&out),
    );
    assert!(
        err.contains(
            "not an artifact: its layers have no titles (org.opencontainers.image.title); use `nixoci pull` then `unpack`"
        ),
        "{err}"
    );
    assert!(listing(&out).is_empty(), "{:?}", listing(&out));

    // Titled and untitled mixed, under either config: the untitled named.
    let file = (
        b"notes\n".to_vec(),
        "text/plain",
        json!({"org.opencontainers.image.title": "notes.txt"}),
    );
    let rootfs = (
        gzip(&tar_of(&[("etc/evil", F, b"x", 0o644)])),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        json!({}),
    );
    for image in [false, true] {
        let reference = reg.reference(&format!("hostile/mixed:{image}"));
        push_crafted(
            &reference,
            &t.path().join(format!("mixed-{image}")),
            &[file.clone(), rootfs.clone()],
            image,
        );
        let out = t.path().join(format!("out-mixed-{image}"));
        let err = run_fail(
            nixoci()
                .args(["artifact", "pull"])
                .arg(&reference)
                .arg(&out),
        );
        assert!(
            err.contains("layer 1 (sha256:") && err.contains("has no title"),
            "{err}"
        );
        assert!(listing(&out).is_empty(), "{:?}", listing(&out));
    }
}

/// Regression: a directory nixoci pushed came back 0555/0444, which a
/// user who is not root cannot remove; one ORAS pushed came back
/// 0755/0644. Both now come back as ORAS packs an ordinary directory: the
/// tar's modes with the owner's read and write (and search, for
/// directories) added, owned by the user who pulls (not the tar's 1234),
/// with no set-user-ID, set-group-ID or sticky bit.
#[test]
fn pulled_directories_are_the_users_whoever_packed_them() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("in");
    let (_, _, d) = inputs(&work);
    fs::write(d.join("run.sh"), "#!/bin/sh\n").unwrap();
    for (rel, mode) in [
        ("", 0o755),
        ("css", 0o755),
        ("index.html", 0o644),
        ("css/a.css", 0o644),
        ("run.sh", 0o755),
    ] {
        fs::set_permissions(d.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
    let modes = |root: &Path| -> Vec<(String, u32)> {
        let mut all: Vec<(String, u32)> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| !e.path_is_symlink())
            .map(|e| {
                let m = e.metadata().unwrap();
                assert_eq!(
                    (m.uid(), m.gid()),
                    // SAFETY: geteuid and getegid take nothing and cannot fail.
                    unsafe { (libc::geteuid(), libc::getegid()) },
                    "{}",
                    e.path().display()
                );
                (
                    e.path().strip_prefix(root).unwrap().display().to_string(),
                    m.mode() & 0o7777,
                )
            })
            .collect();
        all.sort();
        all
    };
    let want = modes(&d);
    run(nixoci()
        .args(["artifact", "push"])
        .arg(reg.reference("modes/x:nixoci"))
        .arg(&d)
        .arg("-q"));
    oras(
        &reg.host(),
        &work,
        "c.push(target=HOST + '/modes/x:oras', files=['site'])",
    );
    for by in ["nixoci", "oras"] {
        let out = t.path().join(format!("out-{by}"));
        run(nixoci()
            .args(["artifact", "pull"])
            .arg(reg.reference(&format!("modes/x:{by}")))
            .arg(&out)
            .arg("-q"));
        assert_eq!(modes(&out.join("site")), want, "pushed by {by}");
    }

    // Read-only and owned by someone else in the tar: the user's, writable.
    use tar::EntryType::{Directory as D, Regular as F};
    let entries = [
        ("site/", D, &b""[..], 0o500),
        ("site/sub/", D, b"", 0o500),
        ("site/sub/a", F, b"a\n", 0o400),
        ("site/run", F, b"#!/bin/sh\n", 0o500),
        // Set-user-ID, set-group-ID and sticky bits are dropped: a pull as
        // root would otherwise write root-owned setuid programs.
        ("site/suid", F, b"#!/bin/sh\n", 0o4755),
        ("site/sgid", F, b"#!/bin/sh\n", 0o2755),
        ("site/tmp/", D, b"", 0o1777),
    ];
    push_crafted(
        &reg.reference("modes/x:readonly"),
        &t.path().join("readonly"),
        &[(
            gzip(&tar_of(&entries)),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            json!({"org.opencontainers.image.title": "site", "io.deis.oras.content.unpack": "true"}),
        )],
        false,
    );
    let out = t.path().join("out-readonly");
    run(nixoci()
        .args(["artifact", "pull"])
        .arg(reg.reference("modes/x:readonly"))
        .arg(&out)
        .arg("-q"));
    assert_eq!(
        modes(&out.join("site")),
        vec![
            (String::new(), 0o700),
            ("run".to_owned(), 0o700),
            ("sgid".to_owned(), 0o755),
            ("sub".to_owned(), 0o700),
            ("sub/a".to_owned(), 0o600),
            ("suid".to_owned(), 0o755),
            ("tmp".to_owned(), 0o777),
        ]
    );
    fs::remove_dir_all(&out).unwrap();
}
