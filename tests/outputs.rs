//! What a command may write, by one rule for every command: an existing
//! output is replaced only with `--force`, and never when that deletes or
//! changes an input (a layout, a file or blob of it, an input file, a
//! directory holding an input); nothing goes into the Nix store; and a
//! layout in the Nix store or read-only by its mode is never changed in
//! place, even by root (these tests run as root in CI).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

/// The store path the test image holds.
const STORE_PATH: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-1.0";

/// An image holding one store path (what `sbom` lists), tagged `latest`;
/// its spec is `dir/s.json`, and `dir/layer.json` is a layer spec.
fn store_image(dir: &Path) -> PathBuf {
    file(dir, "in/hello", b"#!/bin/sh\necho hello\n", 0o755);
    write_json(
        &dir.join("s.json"),
        &json!({
            "layers": [{"files": [{"source": "in/hello", "destination": format!("{STORE_PATH}/bin/hello")}]}],
            "architecture": "amd64",
            "tags": ["latest"]
        }),
    );
    write_json(
        &dir.join("layer.json"),
        &json!({"files": [{"source": "in/hello", "destination": "/hello"}]}),
    );
    build(&dir.join("s.json"), &dir.join("layout"))
}

/// A closure graph for `plan`.
fn graph(dir: &Path) -> PathBuf {
    let g = dir.join("graph.json");
    write_json(
        &g,
        &json!([{"path": STORE_PATH, "narSize": 100, "references": []}]),
    );
    g
}

/// Every command that writes a file or a directory, as (name, the command
/// writing `out`).
#[allow(clippy::type_complexity)]
fn writers(t: &Path, layout: &Path) -> Vec<(&'static str, Box<dyn Fn(&Path) -> Command>)> {
    let (spec, layout, g) = (t.join("s.json"), layout.to_owned(), graph(t));
    let layout2 = layout.clone();
    let layout3 = layout.clone();
    let spec2 = t.join("layer.json");
    vec![
        (
            "build",
            Box::new(move |out: &Path| {
                let mut c = nixoci();
                c.arg("build").arg(&spec).arg("-o").arg(out).arg("-q");
                c
            }),
        ),
        (
            "layer",
            Box::new(move |out: &Path| {
                let mut c = nixoci();
                c.arg("layer").arg(&spec2).arg("-o").arg(out).arg("-q");
                c
            }),
        ),
        (
            "unpack",
            Box::new(move |out: &Path| {
                let mut c = nixoci();
                c.arg("unpack").arg(&layout).arg(out).arg("-q");
                c
            }),
        ),
        (
            "archive",
            Box::new(move |out: &Path| {
                let mut c = nixoci();
                c.arg("archive").arg(&layout2).arg("-o").arg(out).arg("-q");
                c
            }),
        ),
        (
            "plan",
            Box::new(move |out: &Path| {
                let mut c = nixoci();
                c.arg("plan").arg(&g).arg("-o").arg(out);
                c
            }),
        ),
        (
            "sbom",
            Box::new(move |out: &Path| {
                let mut c = nixoci();
                c.arg("sbom").arg(&layout3).arg("-o").arg(out);
                c
            }),
        ),
        (
            "manpages",
            Box::new(move |out: &Path| {
                let mut c = nixoci();
                c.arg("manpages").arg("-o").arg(out).arg("-q");
                c
            }),
        ),
    ]
}

/// Regression: `sbom LAYOUT -o LAYOUT/index.json` (or onto a blob)
/// replaced it without --force and exited 0; the layout then failed
/// `verify`. Now no name inside the layout, existing or not, nor the
/// layout itself, is written, with or without --force.
#[test]
fn sbom_never_writes_into_its_layout() {
    let t = tempfile::tempdir().unwrap();
    let layout = store_image(t.path());
    let before = snapshot(&layout);
    let blob = blob_path(&layout, &manifest_digest(&layout));
    for out in [
        layout.join("index.json"),
        blob,
        layout.join("oci-layout"),
        layout.join("blobs/sha256/new"),
        layout.join("sbom.json"),
        layout.clone(),
    ] {
        for force in [false, true] {
            let mut c = nixoci();
            c.arg("sbom").arg(&layout).arg("-o").arg(&out);
            if force {
                c.arg("--force");
            }
            let err = run_fail(&mut c);
            assert!(
                err.contains(&format!(
                    "the output {} is inside the input {}",
                    out.display(),
                    layout.display()
                )) || err.contains(&format!(
                    "the input {} is inside (or is) the output",
                    layout.display()
                )),
                "-o {} (force: {force}): {err}",
                out.display()
            );
        }
    }
    assert!(
        diff(&before, &snapshot(&layout)).is_none(),
        "layout changed"
    );
    run(nixoci().arg("verify").arg(&layout));
}

/// Regression: a `..` after a directory that does not exist yet hid where
/// an output goes: `unpack L L/new/../blobs --force` passed the input
/// check (`L/new/../blobs` did not exist), the writer made `L/new`, and
/// the commit replaced the layout's own `blobs`. Now refused, for a file
/// output (sbom) and a directory output (unpack), nothing written.
#[test]
fn a_dot_dot_after_a_missing_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let layout = store_image(t.path());
    let before = snapshot(&layout);
    for (cmd, out) in [
        ("unpack", layout.join("new/../blobs")),
        ("sbom", layout.join("new/../index.json")),
    ] {
        let mut c = nixoci();
        c.arg(cmd).arg(&layout);
        if cmd == "sbom" {
            c.arg("-o");
        }
        c.arg(&out).arg("--force");
        let err = run_fail(&mut c);
        assert!(
            err.contains("a '..' follows a directory that does not exist yet"),
            "{cmd}: {err}"
        );
        assert!(!layout.join("new").exists(), "{cmd} made new/");
    }
    assert!(
        diff(&before, &snapshot(&layout)).is_none(),
        "layout changed"
    );
    run(nixoci().arg("verify").arg(&layout));
}

/// Regression: `sbom -o FILE` (and `archive -o`, `plan -o`) replaced an
/// unrelated existing file without --force. Every command that writes:
/// an existing output stays as it is without --force (and the message
/// says so); with --force it is replaced.
#[test]
fn every_output_is_replaced_only_with_force() {
    let t = tempfile::tempdir().unwrap();
    let layout = store_image(t.path());
    for (name, cmd) in writers(t.path(), &layout) {
        for existing_dir in [false, true] {
            let out = t.path().join(format!("{name}-{existing_dir}"));
            if existing_dir {
                file(&out, "precious", b"keep me\n", 0o644);
            } else {
                file(
                    t.path(),
                    &format!("{name}-{existing_dir}"),
                    b"keep me\n",
                    0o644,
                );
            }
            let before = snapshot(t.path());
            let err = run_fail(&mut cmd(&out));
            assert!(
                err.contains(&format!("{}: the output already exists", out.display()))
                    && err.contains("--force"),
                "{name}: {err}"
            );
            assert!(diff(&before, &snapshot(t.path())).is_none(), "{name}");
            // Replacing a directory by a file (or a file by a directory)
            // is the file system's to refuse; the rest is replaced.
            let file_output = matches!(name, "archive" | "plan" | "sbom");
            if existing_dir != file_output {
                run(cmd(&out).arg("--force"));
                assert!(!out.join("precious").exists(), "{name}: replaced");
                assert_ne!(fs::read(&out).ok(), Some(b"keep me\n".to_vec()), "{name}");
            }
        }
    }
    run(nixoci().arg("verify").arg(&layout));
}

/// Nothing is written into the Nix store (`NIX_STORE_DIR`, here a stand-in
/// directory), however the output is named: directly, or through a link
/// (a `result` link), new or with --force over an existing path.
#[test]
fn no_output_goes_into_the_nix_store() {
    let t = tempfile::tempdir().unwrap();
    let layout = store_image(t.path());
    let store = t.path().join("store");
    file(
        &store,
        "0000000000000000000000000000000a-old/f",
        b"x\n",
        0o444,
    );
    std::os::unix::fs::symlink(&store, t.path().join("result")).unwrap();
    let before = snapshot(&store);
    let writers = writers(t.path(), &layout);
    // With NIX_STORE_DIR set, plan's store paths are those of that store.
    write_json(
        &t.path().join("graph.json"),
        &json!([{
            "path": store.join("0123456789abcdfghijklmnpqrsvwxyz-hello-1.0"),
            "narSize": 100,
            "references": []
        }]),
    );
    for (name, cmd) in writers {
        for out in [
            store.join(format!("0000000000000000000000000000000b-{name}")),
            t.path().join("result").join(format!("{name}-new")),
            store.join("0000000000000000000000000000000a-old"),
        ] {
            let err = run_fail(
                cmd(&out)
                    .arg("--force")
                    .env("NIX_STORE_DIR", &store)
                    .current_dir(t.path()),
            );
            assert!(
                err.contains(&format!(
                    "{} is in the Nix store ({})",
                    out.display(),
                    store.display()
                )),
                "{name} -o {}: {err}",
                out.display()
            );
        }
    }
    assert!(diff(&before, &snapshot(&store)).is_none());
}

/// Regression: run as root, `sbom --attach` rewrote a Nix-built layout in
/// the store in place (blobs added, modes changed, `index.json`
/// replaced). Now a layout in the Nix store (named through a `result`
/// link, and writable by its mode, so only the store rule refuses it) and
/// a read-only one outside it (so only the mode refuses it) are left byte
/// for byte and mode for mode as they were, and the message says what to
/// do instead; the writable copy it suggests takes the SBOM.
#[test]
fn sbom_attach_changes_no_layout_in_the_store_or_read_only() {
    let t = tempfile::tempdir().unwrap();
    let layout = store_image(t.path());
    let store = t.path().join("store");
    let in_store = store.join("0123456789abcdfghijklmnpqrsvwxy-image");
    fs::create_dir_all(&store).unwrap();
    run(Command::new("cp").arg("-r").arg(&layout).arg(&in_store));
    std::os::unix::fs::symlink(&in_store, t.path().join("result")).unwrap();
    let read_only = t.path().join("read-only");
    run(Command::new("cp").arg("-r").arg(&layout).arg(&read_only));
    run(Command::new("chmod").arg("-R").arg("a-w").arg(&read_only));

    for (dir, says) in [
        (
            t.path().join("result"),
            format!("is in the Nix store ({})", store.display()),
        ),
        (
            read_only.clone(),
            format!("{} is read-only", read_only.display()),
        ),
    ] {
        let real = fs::canonicalize(&dir).unwrap();
        let before = (snapshot(&real), fs::metadata(&real).unwrap().permissions());
        let err = run_fail(
            nixoci()
                .arg("sbom")
                .arg(&dir)
                .arg("--attach")
                .env("NIX_STORE_DIR", &store),
        );
        for s in [&says, "cp -rH", "chmod -R u+w", "ociImage { sbom = true; }"] {
            assert!(err.contains(s), "{}: no {s:?} in: {err}", dir.display());
        }
        assert!(
            diff(&before.0, &snapshot(&real)).is_none(),
            "{}",
            dir.display()
        );
        assert_eq!(fs::metadata(&real).unwrap().permissions(), before.1);
    }
    // A writable copy whose blobs lead into the store (`cp -r` of a layout
    // whose blobs are a link there, with the modes made writable): what
    // would change is in the store, so it is refused too.
    let linked = t.path().join("linked");
    fs::create_dir_all(&linked).unwrap();
    for f in ["oci-layout", "index.json"] {
        fs::copy(in_store.join(f), linked.join(f)).unwrap();
    }
    std::os::unix::fs::symlink(in_store.join("blobs"), linked.join("blobs")).unwrap();
    let before = snapshot(&in_store);
    let err = run_fail(
        nixoci()
            .arg("sbom")
            .arg(&linked)
            .arg("--attach")
            .env("NIX_STORE_DIR", &store),
    );
    assert!(
        err.contains(&format!("is in the Nix store ({})", store.display())),
        "{err}"
    );
    assert!(diff(&before, &snapshot(&in_store)).is_none());
    // What the message says to do works.
    // It works again on a layout that has referrers already: `-H` follows
    // the link named on the command line only, so the nested layout's
    // `blobs/sha256` link stays a link (with `-L` it became a second copy
    // of every blob, which verify and attach refuse).
    let writable_copy = |from: &Path, to: &Path| {
        run(Command::new("cp").arg("-rH").arg(from).arg(to));
        run(Command::new("chmod").arg("-R").arg("u+w").arg(to));
    };
    let copy = t.path().join("copy");
    writable_copy(&t.path().join("result"), &copy);
    run(nixoci()
        .arg("sbom")
        .arg(&copy)
        .arg("--attach")
        .env("NIX_STORE_DIR", &store));
    run(nixoci().arg("verify").arg(&copy));
    let index = read_json(&copy.join("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    let nested = read_json(&copy.join("referrers/index.json"));
    assert_eq!(nested["manifests"].as_array().unwrap().len(), 2, "{nested}");
    let link = t.path().join("link-to-copy");
    std::os::unix::fs::symlink(&copy, &link).unwrap();
    let again = t.path().join("again");
    writable_copy(&link, &again);
    assert!(fs::symlink_metadata(again.join("referrers/blobs/sha256"))
        .unwrap()
        .file_type()
        .is_symlink());
    run(nixoci()
        .arg("sbom")
        .arg(&again)
        .args(["--attach", "--format", "cyclonedx"])
        .env("NIX_STORE_DIR", &store));
    run(nixoci().arg("verify").arg(&again));
    let nested = read_json(&again.join("referrers/index.json"));
    assert_eq!(nested["manifests"].as_array().unwrap().len(), 3, "{nested}");
}

/// `artifact pull` writes into no directory of the Nix store and no
/// read-only one, and says so before it asks the registry anything (the
/// reference here names a port nothing listens on).
#[test]
fn artifact_pull_writes_nothing_into_the_store_or_a_read_only_dir() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let read_only = t.path().join("read-only");
    fs::create_dir_all(&store).unwrap();
    fs::create_dir(&read_only).unwrap();
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).unwrap();
    for (dir, says) in [
        (
            store.join("0000000000000000000000000000000c-files"),
            "is in the Nix store",
        ),
        (read_only.clone(), "is read-only"),
    ] {
        let err = run_fail(
            nixoci_in(t.path())
                .args(["artifact", "pull", "127.0.0.1:9/none/x:1"])
                .arg(&dir)
                .env("NIX_STORE_DIR", &store),
        );
        assert!(
            err.contains(&format!("{} {says}", dir.display())),
            "{}: {err}",
            dir.display()
        );
    }
    assert_eq!(fs::read_dir(&store).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&read_only).unwrap().count(), 0);
}

/// Regression: `verify` and `sbom` took no `-q/--quiet` (nor did inspect,
/// diff, referrers, exists or plan). Every command takes `--json` and
/// `-q`: quiet prints nothing on success (a failed `verify` still lists its
/// problems); `sbom` and `plan` report what `-o` or `--attach` wrote, and
/// without them print the document itself, whatever the mode.
#[test]
fn every_command_takes_quiet_and_json() {
    let t = tempfile::tempdir().unwrap();
    let layout = store_image(t.path());
    let quiet = |c: &mut Command| {
        let out = run(c.arg("-q"));
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{c:?}: {out:?}"
        );
    };
    quiet(nixoci().arg("verify").arg(&layout));
    quiet(nixoci().arg("inspect").arg(&layout));
    quiet(nixoci().arg("diff").arg(&layout).arg(&layout));
    quiet(
        nixoci()
            .arg("sbom")
            .arg(&layout)
            .arg("-o")
            .arg(t.path().join("q.json")),
    );
    quiet(
        nixoci()
            .arg("plan")
            .arg(graph(t.path()))
            .arg("-o")
            .arg(t.path().join("p.json")),
    );

    // sbom: the report, in JSON or as text; the document when it is the
    // result.
    let report: serde_json::Value = serde_json::from_slice(
        &run(nixoci()
            .arg("sbom")
            .arg(&layout)
            .args(["--json", "--format", "cyclonedx", "-o"])
            .arg(t.path().join("r.json")))
        .stdout,
    )
    .unwrap();
    assert_eq!(report["packages"], 1, "{report}");
    assert_eq!(
        report["format"], "application/vnd.cyclonedx+json",
        "{report}"
    );
    assert_eq!(
        read_json(&t.path().join("r.json"))["bomFormat"],
        "CycloneDX"
    );
    let document: serde_json::Value =
        serde_json::from_slice(&run(nixoci().arg("sbom").arg(&layout).arg("-q")).stdout).unwrap();
    assert_eq!(document["spdxVersion"], "SPDX-2.3");
    let copy = t.path().join("copy");
    run(Command::new("cp").arg("-r").arg(&layout).arg(&copy));
    let text = run(nixoci().arg("sbom").arg(&copy).arg("--attach"));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("application/spdx+json SBOM sha256:") && text.contains(" attached to "),
        "{text}"
    );
    let plan: serde_json::Value = serde_json::from_slice(
        &run(nixoci()
            .arg("plan")
            .arg(graph(t.path()))
            .args(["--json", "-o"])
            .arg(t.path().join("p2.json")))
        .stdout,
    )
    .unwrap();
    assert_eq!(plan["layers"], 1, "{plan}");

    // A failed verify lists its problems, quiet or not.
    fs::write(layout.join("index.json"), b"{}").unwrap();
    let err = run_fail(nixoci().arg("verify").arg(&layout).arg("-q"));
    assert!(err.contains("problems found"), "{err}");

    // The registry commands take them too (here, of a port nothing
    // listens on: the error is the registry's, not the command line's).
    for (cmd, says) in [
        ("exists", "cannot tell whether"),
        ("referrers", "cannot list the referrers"),
        ("inspect", "cannot inspect"),
    ] {
        for flag in ["-q", "--json"] {
            let err = run_fail(nixoci_in(t.path()).args([
                cmd,
                "127.0.0.1:9/none/x:1",
                flag,
                "--plain-http",
                "--retries",
                "0",
            ]));
            assert!(err.contains(says), "{cmd} {flag}: {err}");
        }
    }
}

/// The text reports count in the number the count takes: "1 layer",
/// "0 store paths", "9 entries"; and name an archive's format as written
/// (OCI, Docker).
#[test]
fn text_reports_count_in_the_right_number() {
    let t = tempfile::tempdir().unwrap();
    let layout = store_image(t.path());
    let line = |args: &[&str]| {
        let out = run(nixoci().current_dir(t.path()).args(args));
        String::from_utf8(out.stdout).unwrap()
    };
    let built = line(&["build", "s.json", "-o", "again"]);
    assert!(built.contains("(linux/amd64), 1 layer, "), "{built}");
    let verified = line(&["verify", layout.to_str().unwrap()]);
    assert!(
        verified.contains("ok (1 manifest, 3 blobs verified)"),
        "{verified}"
    );
    let inspected = line(&["inspect", layout.to_str().unwrap()]);
    assert!(inspected.contains("  1 layer, "), "{inspected}");
    let layer = line(&["layer", "layer.json", "-o", "layer"]);
    assert!(layer.ends_with("), 0 store paths\n"), "{layer}");
    let unpacked = line(&["unpack", layout.to_str().unwrap(), "rootfs"]);
    assert!(unpacked.contains(": 1 layer of sha256:"), "{unpacked}");
    assert!(unpacked.contains(" entries, "), "{unpacked}");
    let sbom = line(&["sbom", layout.to_str().unwrap(), "-o", "sbom.json"]);
    assert!(sbom.ends_with(", 1 package\n"), "{sbom}");
    for (format, name) in [("oci", "OCI"), ("docker", "Docker")] {
        let file = format!("{format}.tar");
        let archived = line(&[
            "archive",
            layout.to_str().unwrap(),
            "--format",
            format,
            "-o",
            &file,
        ]);
        assert!(
            archived.contains(&format!(": {name} archive of sha256:")),
            "{archived}"
        );
    }
}
