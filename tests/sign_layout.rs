//! Issue 25: cosign signatures of a local layout, and at push time, against
//! the real cosign and oras, on registry 2.8 and on the registry with the
//! referrers API: `nixoci sign LAYOUT` writes a signature referrer that
//! `verify-signature LAYOUT` checks, that `nixoci push` carries to where
//! cosign finds it (the `.sig` tag) and that `oras cp -r` carries as a
//! referrer (where `cosign verify --experimental-oci11` finds it);
//! `push --sign-key` signs each pushed manifest, and a bad key fails it
//! before anything is written.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::peers::{cosign, oras, ReferrersRegistry};
use common::registry::{Registry, Setup};
use common::sign::{
    nixoci_sign, nixoci_verify as verify, openssl_keys as keys, report as json, stderr,
};
use common::*;
use serde_json::Value;

/// `nixoci sign --key KEY ARGS TARGET --json`, which must succeed.
fn sign(env: &Path, key: &Path, target: &str, args: &[&str]) -> Value {
    json(&nixoci_sign(env, key, target, args))
}

/// `cosign verify --key PUB` offline, with extra arguments.
fn cosign_verify(env: &Path, public: &Path, reference: &str, args: &[&str]) -> Output {
    cosign(env)
        .arg("verify")
        .arg("--key")
        .arg(public)
        .args(["--insecure-ignore-tlog=true", "--allow-insecure-registry"])
        .args(args)
        .arg(reference)
        .output()
        .unwrap()
}

/// Every file of `dir` with its bytes (links as their targets), to show
/// that a failed command changed nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let p = e.path().to_owned();
        let bytes = if e.path_is_symlink() {
            std::fs::read_link(&p)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if e.file_type().is_file() {
            std::fs::read(&p).unwrap()
        } else {
            Vec::new()
        };
        out.push((p, bytes));
    }
    out
}

/// A layout signed twice (two keys), verified in the layout, pushed:
/// cosign verifies each signature in the registry, by the `.sig` tag.
fn signed_layout_is_pushed_where_cosign_finds_it(host: &str) {
    let env = tempfile::tempdir().unwrap();
    let env = env.path();
    let layout = image(&env.join("img"), "app", 1, 7, 512);
    let target = layout.display().to_string();
    let (key, public) = keys(env, "a");
    let (key2, public2) = keys(env, "b");

    let out = verify(env, &public, &target);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no signature referrer of it"),
        "{}",
        stderr(&out)
    );

    let identity = format!("{host}/signed-layout");
    let args = ["-a", "team=x", "--identity", &identity];
    let first = sign(env, &key, &target, &args);
    assert_eq!(first["action"], "added", "{first}");
    assert_eq!(first["signatures"], 1, "{first}");
    let again = sign(env, &key, &target, &args);
    assert_eq!(again["action"], "unchanged", "{again}");
    let second = sign(env, &key2, &target, &[]);
    assert_eq!(
        second["signatures"], 2,
        "signing twice keeps both: {second}"
    );

    for public in [&public, &public2] {
        let out = verify(env, public, &target);
        assert!(out.status.success(), "{}", stderr(&out));
        let r = json(&out);
        assert_eq!(r["digest"], first["digest"], "{r}");
        assert_eq!(r["signatures"].as_array().unwrap().len(), 2, "{r}");
    }
    let (_, other) = keys(env, "c");
    let out = verify(env, &other, &target);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("none of the 2 signatures"),
        "{}",
        stderr(&out)
    );
    // verify checks the layout's referrers layout too.
    run(nixoci_in(env).arg("verify").arg(&layout));

    let reference = format!("{host}/signed-layout:v1");
    let pushed = json(&run(nixoci_in(env)
        .args(["push", "--json"])
        .arg(&layout)
        .arg(&reference)));
    assert_eq!(pushed["digest"], first["digest"], "{pushed}");
    assert_eq!(
        pushed["signatures"].as_array().unwrap().len(),
        1,
        "{pushed}"
    );
    let out = cosign_verify(env, &public, &reference, &["-a", "team=x"]);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
    let out = cosign_verify(env, &public2, &reference, &[]);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
    let out = nixoci_in(env)
        .args(["sign", "--key"])
        .arg(&key)
        .args(["--identity", "elsewhere/x"])
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("--identity is for a layout"),
        "{}",
        stderr(&out)
    );
    let out = verify(env, &public2, &reference);
    assert!(out.status.success(), "{}", stderr(&out));
    // Pushing again adds nothing to the `.sig` image.
    let out = verify(env, &public, &reference);
    assert_eq!(json(&out)["signatures"].as_array().unwrap().len(), 2);
    run(nixoci_in(env).arg("push").arg(&layout).arg(&reference));
    let out = verify(env, &public, &reference);
    assert_eq!(json(&out)["signatures"].as_array().unwrap().len(), 2);
}

#[test]
fn a_signed_layout_pushed_verifies_with_cosign_on_registry_2_8() {
    let r = Registry::start(Setup::default());
    signed_layout_is_pushed_where_cosign_finds_it(&r.host());
}

#[test]
fn a_signed_layout_pushed_verifies_with_cosign_on_the_referrers_registry() {
    signed_layout_is_pushed_where_cosign_finds_it(&ReferrersRegistry::shared().host());
}

/// `oras cp -r` carries the signature as a referrer: cosign finds it by
/// the referrers API (`--experimental-oci11`), and nixoci verifies the
/// layout oras pulls back with it.
#[test]
fn oras_cp_carries_the_signature() {
    let env = tempfile::tempdir().unwrap();
    let env = env.path();
    let host = ReferrersRegistry::shared().host();
    let layout = image(&env.join("img"), "app", 1, 9, 512);
    let (key, public) = keys(env, "a");
    sign(env, &key, &layout.display().to_string(), &[]);
    let reference = format!("{host}/oras-signed:v1");
    run(oras(env)
        .args(["cp", "-r", "--from-oci-layout", "--to-plain-http"])
        .arg(format!("{}/referrers:latest", layout.display()))
        .arg(&reference));
    let out = cosign_verify(env, &public, &reference, &["--experimental-oci11"]);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
    let back = env.join("back");
    run(oras(env)
        .args(["cp", "-r", "--from-plain-http", "--to-oci-layout"])
        .arg(&reference)
        .arg(format!("{}:latest", back.display())));
    let out = verify(env, &public, &format!("{}:latest", back.display()));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `push --sign-key` signs the image, and for a multi-platform one the
/// index and each manifest; cosign verifies each.
#[test]
fn push_sign_key_signs_each_pushed_manifest() {
    let env = tempfile::tempdir().unwrap();
    let env = env.path();
    let host = ReferrersRegistry::shared().host();
    let (key, public) = keys(env, "a");

    let single = image(&env.join("img"), "app", 1, 11, 512);
    let reference = format!("{host}/push-signed:v1");
    let r = json(&run(nixoci_in(env)
        .args(["push", "--json", "--sign-key"])
        .arg(&key)
        .arg(&single)
        .arg(&reference)));
    assert_eq!(r["signed"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["signed"][0]["digest"], r["digest"], "{r}");
    let out = cosign_verify(env, &public, &reference, &[]);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
    // The text report names the signed image once: the repository at the
    // digest, not the digest twice, and one signature in the singular.
    let text = run(nixoci_in(env)
        .args(["push", "--sign-key"])
        .arg(&key)
        .arg(&single)
        .arg(&reference));
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let digest = r["digest"].as_str().unwrap();
    let named = format!("{host}/push-signed@{digest}: signed (unchanged);");
    assert!(text.contains(&named), "{named:?} in:\n{text}");
    assert!(!text.contains(&format!("{digest}@")), "{text}");
    assert!(text.contains("holds 1 signature\n"), "{text}");

    let multi = two_platform_layout(env, "multi");
    let reference = format!("{host}/push-signed-multi:v1");
    let r = json(&run(nixoci_in(env)
        .args(["push", "--json", "--sign-key"])
        .arg(&key)
        .arg(format!("{}:multi", multi.display()))
        .arg(&reference)));
    let signed: Vec<&str> = r["signed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["digest"].as_str().unwrap())
        .collect();
    assert_eq!(signed.len(), 3, "the index and its two manifests: {r}");
    assert_eq!(signed[0], r["digest"], "{r}");
    for d in signed {
        let at = format!("{host}/push-signed-multi@{d}");
        let out = cosign_verify(env, &public, &at, &[]);
        assert!(out.status.success(), "cosign verify {at}: {}", stderr(&out));
    }
}

/// A key that cannot be used fails `push --sign-key` before anything is
/// written to the registry; a failed `sign` leaves the layout as it was,
/// and a read-only layout is refused with the advice to copy it.
#[test]
fn a_bad_key_fails_before_anything_is_written() {
    let env = tempfile::tempdir().unwrap();
    let env = env.path();
    let registry = ReferrersRegistry::start();
    let layout = image(&env.join("img"), "app", 1, 13, 512);
    let bad = env.join("bad.key");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let before = snapshot(&layout);
    let out = nixoci_in(env)
        .args(["push", "--sign-key"])
        .arg(&bad)
        .arg(&layout)
        .arg(registry.reference("bad-key:v1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.key"), "{}", stderr(&out));
    assert_eq!(registry.writes(), Vec::<String>::new());

    // A key of another curve: refused before the push, its bytes unshown.
    let p384 = env.join("p384.key");
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-384")
        .arg("-out")
        .arg(&p384));
    let out = nixoci_in(env)
        .args(["push", "--sign-key"])
        .arg(&p384)
        .arg(&layout)
        .arg(registry.reference("bad-key:v1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("p384.key"), "{}", stderr(&out));
    let pem = std::fs::read_to_string(&p384).unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !stderr(&out).contains(line),
            "the key shows: {}",
            stderr(&out)
        );
    }
    assert_eq!(registry.writes(), Vec::<String>::new());

    let out = nixoci_in(env)
        .args(["sign", "--key"])
        .arg(&bad)
        .arg(&layout)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.key"), "{}", stderr(&out));
    assert!(snapshot(&layout) == before, "the layout changed");

    let (key, _) = keys(env, "a");
    let out = nixoci_in(env)
        .args(["sign", "--key"])
        .arg(&key)
        .arg(format!("{}:nosuchtag", layout.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nosuchtag"), "{}", stderr(&out));
    assert!(snapshot(&layout) == before, "the layout changed");

    run(Command::new("chmod").arg("-R").arg("a-w").arg(&layout));
    let out = nixoci_in(env)
        .args(["sign", "--key"])
        .arg(&key)
        .arg(&layout)
        .output()
        .unwrap();
    run(Command::new("chmod").arg("-R").arg("u+w").arg(&layout));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cp -rH"), "{}", stderr(&out));
    assert!(snapshot(&layout) == before, "the layout changed");
}

/// `nixoci inspect` of a layout with a signature and an SBOM attached names
/// the platform of neither the same way: "no platform" (the signature's
/// empty platform once printed as "/").
#[test]
fn inspect_says_no_platform_for_attached_artifacts() {
    let env = tempfile::tempdir().unwrap();
    let env = env.path();
    let layout = image(&env.join("img"), "app", 1, 7, 512);
    let target = layout.display().to_string();
    let (key, _) = keys(env, "a");
    sign(env, &key, &target, &[]);
    run(nixoci().arg("sbom").arg(&layout).args(["--attach", "-q"]));
    let text = String::from_utf8(run(nixoci().arg("inspect").arg(&layout)).stdout).unwrap();
    let labels: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains("  manifest sha256:"))
        .map(|l| l.trim_start().split("  ").next().unwrap())
        .collect();
    assert_eq!(
        labels.len(),
        3,
        "the image, the signature, the SBOM:\n{text}"
    );
    assert_eq!(
        labels.iter().filter(|l| **l == "no platform").count(),
        2,
        "{text}"
    );
}
