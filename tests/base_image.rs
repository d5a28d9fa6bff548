//! Base images from a registry: `nixoci prefetch` and `ociPullImage` (a
//! fixed-output derivation run by Nix 2.8 in its sandbox) against a real
//! registry on 127.0.0.1, plain, and with TLS from a private CA and
//! credentials.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::registry::{Registry, Setup, PASSWORD, USER};
use common::*;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A one-layer busybox image (`/bin/busybox`, echoing `words`), built by
/// `nixoci build` into `dir/name`.
fn busybox_image(dir: &Path, name: &str, words: &str) -> PathBuf {
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": busybox(), "destination": "/bin/busybox"}]}],
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/bin/busybox", "echo", words], "Env": ["BASE=1"]},
        }),
    );
    build(&spec, &dir.join(name))
}

fn push(layout: impl AsRef<std::ffi::OsStr>, reference: &str, extra: &[&str]) {
    run(nixoci()
        .arg("push")
        .arg(layout.as_ref())
        .arg(reference)
        .args(extra)
        .arg("-q"));
}

/// `nixoci prefetch REF --json` with `extra` arguments and environment.
fn prefetch(reference: &str, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let out = run(nixoci()
        .arg("prefetch")
        .arg(reference)
        .args(extra)
        .arg("--json")
        .envs(env.iter().copied()));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A name no earlier run used: a fixed-output derivation of the same name
/// and hash is never built again, and each run must really pull.
fn fresh_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// `nix-build tests/nix/base.nix -A pulled` with the prefetched arguments.
fn pull_in_nix(args: &Value, name: &str, ca: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut c = nix_command("nix-build");
    c.current_dir(repo())
        .arg("tests/nix/base.nix")
        .arg("--arg")
        .arg("tool")
        .arg(env!("CARGO_BIN_EXE_nixoci"))
        .args(["--argstr", "name", name])
        .arg("--no-out-link")
        .args(["-A", "pulled"])
        .envs(env.iter().copied());
    for key in ["imageName", "imageDigest", "hash", "os", "arch", "variant"] {
        if let Some(v) = args[key].as_str() {
            c.args(["--argstr", key, v]);
        }
    }
    if args["allPlatforms"] == json!(true) {
        c.args(["--arg", "allPlatforms", "true"]);
    }
    if let Some(ca) = ca {
        // A Nix path: copied to the store, so the sandbox sees it.
        c.arg("--arg").arg("caFile").arg(ca);
    }
    c.output().unwrap()
}

fn built(out: &Output) -> PathBuf {
    assert!(
        out.status.success(),
        "nix-build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout.clone()).unwrap().trim())
}

fn nix_hash(path: &Path) -> String {
    let out = run(nix_command("nix").args(["hash", "path"]).arg(path));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn index_digest(layout: &Path) -> String {
    read_json(&layout.join("index.json"))["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Prefetch prints the image's digest and the hash Nix computes of the
/// layout a pull writes; ociPullImage pulls it in the sandbox; a second
/// pull into another store path gives the same bytes. From a
/// multi-platform image, the platform's image is pinned, not the index
/// (unless every platform is asked for).
#[test]
fn prefetch_then_pull_in_nix_by_digest() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let image = busybox_image(t.path(), "bb", "from the base");
    let reference = reg.reference("base/busybox:1");
    push(&image, &reference, &[]);

    let args = prefetch(&reference, &[], &[]);
    assert_eq!(args["imageName"], json!(reg.reference("base/busybox")));
    assert_eq!(args["imageDigest"], json!(index_digest(&image)));
    assert_eq!(args["os"], json!("linux"));
    assert_eq!(args["arch"], json!("amd64"));
    assert_eq!(args["layers"], json!(1));
    let first = built(&pull_in_nix(&args, &fresh_name("bb"), None, &[]));
    let second = built(&pull_in_nix(&args, &fresh_name("bb-again"), None, &[]));
    assert_ne!(first, second);
    assert_eq!(nix_hash(&first), args["hash"].as_str().unwrap());
    assert_eq!(nix_hash(&second), args["hash"].as_str().unwrap());
    run(nixoci().arg("verify").arg(&first));
    assert_eq!(index_digest(&first), index_digest(&image));
    // The registry's bytes: every blob of the pushed layout, as it was.
    assert_eq!(blobs(&first), blobs(&image));

    // The text form is the Nix attribute set to paste.
    let text = run(nixoci().arg("prefetch").arg(&reference));
    let text = String::from_utf8(text.stdout).unwrap();
    for key in ["imageName", "imageDigest", "hash", "os", "arch"] {
        let line = format!("  {key} = \"{}\";", args[key].as_str().unwrap());
        assert!(text.contains(&line), "{line} in\n{text}");
    }

    // Two platforms: each pins its own image; all of them pins the index.
    let multi = two_platform_layout(t.path(), "multi");
    let multi_ref = reg.reference("base/multi:1");
    push(format!("{}:multi", multi.display()), &multi_ref, &[]);
    let index = read_json(&blob_path(&multi, &index_digest(&multi)));
    let digest_of = |arch: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == json!(arch))
            .unwrap()["digest"]
            .clone()
    };
    let arm = prefetch(&multi_ref, &["--platform", "linux/arm64"], &[]);
    assert_eq!(arm["imageDigest"], digest_of("arm64"));
    assert_eq!(
        (&arm["os"], &arm["arch"]),
        (&json!("linux"), &json!("arm64"))
    );
    // This machine's platform by default.
    let host = prefetch(&multi_ref, &[], &[]);
    assert_eq!(host["imageDigest"], digest_of("amd64"));
    let all = prefetch(&multi_ref, &["--all-platforms"], &[]);
    assert_eq!(all["imageDigest"], json!(index_digest(&multi)));
    assert_eq!(all["allPlatforms"], json!(true));
    for args in [&arm, &all] {
        let out = built(&pull_in_nix(args, &fresh_name("multi"), None, &[]));
        assert_eq!(nix_hash(&out), args["hash"].as_str().unwrap());
        assert_eq!(json!(index_digest(&out)), args["imageDigest"]);
        run(nixoci().arg("verify").arg(&out));
    }
    // A platform the index lacks is an error naming it.
    let err = run_fail(
        nixoci()
            .arg("prefetch")
            .arg(&multi_ref)
            .args(["--platform", "linux/s390x"]),
    );
    assert!(err.contains("s390x"), "{err}");
    // A wrong hash fails the build and names the right one, as Nix does.
    let mut wrong = args.clone();
    wrong["hash"] = json!("sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let out = pull_in_nix(&wrong, &fresh_name("wrong"), None, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(args["hash"].as_str().unwrap()), "{err}");
}

/// A registry with TLS from a private CA and htpasswd auth: ociPullImage
/// pulls with `caFile` and the credentials from NIXOCI_CREDS (passed
/// through impureEnvVars, never written to the store); without the CA it
/// fails on the certificate, without credentials on the authentication, and
/// the password never shows.
#[test]
fn pull_in_nix_from_a_private_ca_with_credentials() {
    let reg = Registry::start(Setup {
        htpasswd: true,
        tls: true,
    });
    let ca = reg.dir.path().join("ca.pem");
    let creds = format!("{USER}:{PASSWORD}");
    let t = tempfile::tempdir().unwrap();
    let image = busybox_image(t.path(), "bb", "over tls");
    let reference = reg.reference("private/busybox:1");
    let ca_arg = ca.to_str().unwrap();
    push(
        &image,
        &reference,
        &["--ca-file", ca_arg, "--creds", &creds],
    );
    let env = [("NIXOCI_CREDS", creds.as_str())];
    let args = prefetch(&reference, &["--ca-file", ca_arg], &env);
    assert_eq!(args["imageDigest"], json!(index_digest(&image)));

    let out = built(&pull_in_nix(&args, &fresh_name("tls"), Some(&ca), &env));
    assert_eq!(nix_hash(&out), args["hash"].as_str().unwrap());
    assert_eq!(blobs(&out), blobs(&image));
    // The store holds no credentials: not in the derivation, not in the
    // output.
    let drv = run(nix_command("nix-store")
        .args(["--query", "--deriver"])
        .arg(&out));
    let drv = String::from_utf8(drv.stdout).unwrap();
    let drv_text = fs::read_to_string(drv.trim()).unwrap_or_default();
    assert!(!drv_text.contains(PASSWORD));
    assert!(
        drv_text.contains("NIXOCI_CREDS"),
        "impureEnvVars: {drv_text}"
    );

    let no_ca = pull_in_nix(&args, &fresh_name("tls-no-ca"), None, &env);
    assert!(!no_ca.status.success());
    let err = String::from_utf8_lossy(&no_ca.stderr);
    // The sandbox has no CA roots: the built-in public ones are trusted
    // (without them the client could not even start), and they do not
    // include the private CA.
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("No CA certificates"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD));
    // The same outside Nix, with the system's roots hidden.
    let pulled = t.path().join("pulled");
    run(nixoci()
        .arg("pull")
        .arg(&reference)
        .arg(&pulled)
        .args(["--ca-file", ca_arg, "-q"])
        .envs(env)
        .env("SSL_CERT_FILE", t.path().join("no-such-bundle.pem"))
        .env("SSL_CERT_DIR", t.path().join("no-such-dir")));
    assert_eq!(blobs(&pulled), blobs(&image));
    let no_creds = pull_in_nix(&args, &fresh_name("tls-no-creds"), Some(&ca), &[]);
    assert!(!no_creds.status.success());
    let err = String::from_utf8_lossy(&no_creds.stderr);
    assert!(
        err.contains("refused the credentials (anonymously)"),
        "{err}"
    );
    assert!(
        err.contains("NIXOCI_CREDS"),
        "the message names the way to give them: {err}"
    );
}

/// The hash prefetch prints is Nix's own hash of the tree (`nix hash
/// path`, and the NAR `nix-store --dump` writes, byte for byte), for
/// files, executables, symbolic links, hard links, empty directories, long
/// and non-UTF-8 names.
#[test]
fn nar_hash_is_the_nix_hash_of_the_tree() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("tree");
    make_fixture(&root, FixtureOptions::default());
    let mut ours = Vec::new();
    nixoci::nar::dump(&root, &mut ours).unwrap();
    let theirs = run(nix_command("nix-store").arg("--dump").arg(&root)).stdout;
    assert!(ours == theirs, "the NAR differs from nix-store --dump's");
    let hash = nixoci::nar::hash(&root).unwrap();
    assert_eq!(nixoci::nar::sri(&hash), nix_hash(&root));
}
