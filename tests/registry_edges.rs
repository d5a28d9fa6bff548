//! Issue 21's rough edges of the registry commands, against a real
//! registry (distribution 2.8, `common::registry`): every `--platform` and
//! `--artifact-type` parse error is a usage error (exit 2) naming the
//! option; `prefetch` prints the image's platform, not the request's;
//! `tag` writes nothing when the tag already names the digest; a config
//! over 16 MiB is refused at build and at push.

mod common;

use std::path::{Path, PathBuf};

use common::registry::*;
use common::*;
use serde_json::{json, Value};

use common::nixoci_in as tool;

/// A layout of one image for `arch` (and `variant`), tagged `latest`.
fn image_for(dir: &Path, name: &str, arch: &str, variant: Option<&str>) -> PathBuf {
    file(&dir.join(format!("{name}-in")), "f", name.as_bytes(), 0o644);
    let mut spec = json!({
        "layers": [{"files": [{"source": format!("{name}-in/f"), "destination": "/f"}]}],
        "architecture": arch,
        "tags": ["latest"]
    });
    if let Some(v) = variant {
        spec["variant"] = json!(v);
    }
    let path = dir.join(format!("{name}.json"));
    write_json(&path, &spec);
    build(&path, &dir.join(name))
}

/// Every malformed `--platform`, whatever the command, and a malformed
/// `--artifact-type` (attach, referrers, artifact push): exit 2, the
/// option and the value named, nothing sent.
#[test]
fn malformed_platform_and_artifact_type_are_usage_errors() {
    let t = tempfile::tempdir().unwrap();
    let layout = image_for(t.path(), "app", "amd64", None);
    let l = layout.to_str().unwrap();
    let out_dir = t.path().join("out");
    let o = out_dir.to_str().unwrap();
    // No registry listens there: a usage error must come before any request.
    let r = "127.0.0.1:9/x/app:1";
    let note = t.path().join("note.txt");
    std::fs::write(&note, "n\n").unwrap();
    let n = note.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["prefetch", "--platform", "bogus", r], "--platform"),
        (vec!["pull", "--platform", "bogus", r, o], "--platform"),
        (vec!["unpack", "--platform", "linux/", l, o], "--platform"),
        (vec!["archive", "--platform", "bogus", l, o], "--platform"),
        (vec!["sbom", "--platform", "a/b/c/d", l], "--platform"),
        (vec!["diff", "--platform", "bogus", l, l], "--platform"),
        (
            vec!["referrers", "--artifact-type", "not a type", r],
            "--artifact-type",
        ),
        (
            vec!["attach", "--artifact-type", "not a type", r, n],
            "--artifact-type",
        ),
        (
            vec!["artifact", "push", "--artifact-type", "not a type", r, n],
            "--artifact-type",
        ),
    ];
    for (args, option) in cases {
        let out = nixoci().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let value = args[args.iter().position(|a| *a == option).unwrap() + 1];
        assert!(
            err.contains(&format!("invalid value '{value}' for '{option}")),
            "{args:?}: {err}"
        );
        assert!(!out_dir.exists(), "{args:?} wrote {o}");
    }
}

/// Asked for linux/arm64, an index whose arm64 image is linux/arm64/v8:
/// prefetch prints the image's variant, and the arguments it prints pull
/// that image.
#[test]
fn prefetch_prints_the_platform_of_the_image() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let env = t.path();
    // A layout of two images: amd64, and arm64 v8.
    for (name, arch, variant) in [("amd", "amd64", None), ("arm", "arm64", Some("v8"))] {
        file(env, &format!("{name}-m-in/f"), name.as_bytes(), 0o644);
        let mut spec = json!({
            "layers": [{"files": [{"source": format!("{name}-m-in/f"), "destination": "/f"}]}],
            "architecture": arch
        });
        if let Some(v) = variant {
            spec["variant"] = json!(v);
        }
        write_json(&env.join(format!("{name}-m.json")), &spec);
        run(nixoci()
            .arg("manifest")
            .arg(env.join(format!("{name}-m.json")))
            .arg("-o")
            .arg(env.join(name).with_extension("m"))
            .arg("-q"));
    }
    write_json(
        &env.join("layout.json"),
        &json!({"manifests": ["amd.m", "arm.m"], "tags": ["multi"]}),
    );
    run(nixoci()
        .arg("layout")
        .arg(env.join("layout.json"))
        .arg("-o")
        .arg(env.join("multi"))
        .arg("-q"));
    let reference = reg.reference("edges/multi:1");
    run(tool(env)
        .arg("push")
        .arg(format!("{}:multi", env.join("multi").display()))
        .arg(&reference)
        .arg("-q"));
    let out = run(tool(env).arg("prefetch").arg(&reference).args([
        "--platform",
        "linux/arm64",
        "--json",
    ]));
    let args: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&args["os"], &args["arch"], &args["variant"]),
        (&json!("linux"), &json!("arm64"), &json!("v8")),
        "{args}"
    );
    // The text form too.
    let out = run(tool(env)
        .arg("prefetch")
        .arg(&reference)
        .args(["--platform", "linux/arm64"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  variant = \"v8\";"), "{text}");
    // What it printed pulls the image (the pull checks the platform).
    let pinned = format!(
        "{}@{}",
        reg.reference("edges/multi"),
        args["imageDigest"].as_str().unwrap()
    );
    run(tool(env)
        .arg("pull")
        .arg(&pinned)
        .arg(env.join("pulled"))
        .args(["--platform", "linux/arm64/v8", "-q"]));
}

/// `tag` of a digest the tag already names writes nothing (as a re-push):
/// one HEAD of the tag, no PUT in the registry's access log; a tag that
/// names something else is written.
#[test]
fn tag_that_names_the_digest_already_writes_nothing() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let env = t.path();
    let one = image_for(env, "one", "amd64", None);
    let two = image_for(env, "two", "amd64", None);
    for (layout, tag) in [(&one, "1"), (&two, "2")] {
        run(tool(env)
            .arg("push")
            .arg(layout)
            .arg(reg.reference(&format!("edges/tag:{tag}")))
            .arg("-q"));
    }
    let tag = |from: &str, json: bool| -> (Vec<String>, String) {
        let start = reg.requests().len();
        let mut cmd = tool(env);
        cmd.arg("tag")
            .arg(reg.reference(&format!("edges/tag:{from}")))
            .arg("stable");
        if json {
            cmd.arg("--json");
        }
        let out = run(&mut cmd);
        (
            reg.requests()[start..].to_vec(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let puts = |r: &[String]| r.iter().filter(|l| l.starts_with("PUT ")).count();
    let (first, _) = tag("1", false);
    assert_eq!(puts(&first), 1, "{first:#?}");
    let (again, text) = tag("1", false);
    assert_eq!(
        puts(&again),
        0,
        "the tag named the digest already: {again:#?}"
    );
    assert!(
        text.contains(&manifest_digest(&one)) && text.contains("unchanged"),
        "{text}"
    );
    let (_, json) = tag("1", true);
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["action"], "unchanged", "{report}");
    assert_eq!(report["digest"], json!(manifest_digest(&one)));
    // Moved to another image: written.
    let (moved, json) = tag("2", true);
    assert_eq!(puts(&moved), 1, "{moved:#?}");
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["action"], "set", "{report}");
    assert_eq!(report["digest"], json!(manifest_digest(&two)));
}

/// sha256 of `bytes`, as `sha256:HEX`.
fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

/// A config over 16 MiB (the most `pull` and `verify` read): `build`
/// refuses to write it, naming the limit; `push` of a layout that holds
/// one (made by hand) refuses before sending anything, as does
/// `artifact push --config`.
#[test]
fn a_config_over_16_mib_is_refused_at_build_and_at_push() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let env = t.path();
    let big = "x".repeat(17 << 20);
    file(&env.join("in"), "f", b"f\n", 0o644);
    write_json(
        &env.join("big.json"),
        &json!({
            "layers": [{"files": [{"source": "in/f", "destination": "/f"}]}],
            "architecture": "amd64",
            "config": {"Labels": {"big": big}}
        }),
    );
    let err = run_fail(
        nixoci()
            .arg("build")
            .arg(env.join("big.json"))
            .arg("-o")
            .arg(env.join("big")),
    );
    assert!(
        err.contains("the image config would be") && err.contains("16 MiB (16777216 bytes)"),
        "{err}"
    );
    assert!(!env.join("big").exists());

    // The same config, put in a layout by hand.
    let layout = image_for(env, "small", "amd64", None);
    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path);
    let manifest_path = blob_path(&layout, index["manifests"][0]["digest"].as_str().unwrap());
    let mut manifest = read_json(&manifest_path);
    let mut config = read_json(&blob_path(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    config["config"]["Labels"] = json!({"big": big});
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = sha256(&config_bytes);
    std::fs::write(blob_path(&layout, &config_digest), &config_bytes).unwrap();
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_bytes.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = sha256(&manifest_bytes);
    std::fs::write(blob_path(&layout, &manifest_digest), &manifest_bytes).unwrap();
    index["manifests"][0]["digest"] = json!(manifest_digest);
    index["manifests"][0]["size"] = json!(manifest_bytes.len());
    write_json(&index_path, &index);

    let start = reg.requests().len();
    let err = run_fail(
        tool(env)
            .arg("push")
            .arg(&layout)
            .arg(reg.reference("edges/big:1")),
    );
    assert!(
        err.contains(&format!("the config {config_digest}"))
            && err.contains("more than 16 MiB (16777216 bytes)"),
        "{err}"
    );
    let sent: Vec<String> = reg.requests()[start..]
        .iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
        .cloned()
        .collect();
    assert!(sent.is_empty(), "sent: {sent:#?}");

    let config_file = env.join("config.json");
    std::fs::write(&config_file, &config_bytes).unwrap();
    let err = run_fail(
        tool(env)
            .args(["artifact", "push", "--config"])
            .arg(format!("{}:application/json", config_file.display()))
            .arg(reg.reference("edges/art:1"))
            .arg(env.join("in/f")),
    );
    assert!(err.contains("16 MiB (16777216 bytes)"), "{err}");
    let sent: Vec<String> = reg.requests()[start..]
        .iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
        .cloned()
        .collect();
    assert!(sent.is_empty(), "sent: {sent:#?}");
}
