//! Issue 25: `nixoci sign --format bundle` (a sigstore bundle v0.3 as an
//! OCI 1.1 referrer, cosign 3's default) and its verification, against the
//! real cosign 3 (`cosign3`, `.ci/install-deps` builds it) offline, on
//! registry 2.8 (the referrers fallback tag) and on the registry with the
//! referrers API: each verifies what the other signs, both formats live
//! on one image, and every tampering is refused naming why.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::peers::{cosign, go_peer};
use common::sign::{cosign_key_pair, report, stderr, Bench};
use common::*;
use serde_json::Value;

const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const COSIGN_PASSWORD: &str = "cosign3-pw-for-tests";
/// A sigstore trusted root with no authority, log or timestamp service:
/// what cosign 2.6 needs, offline, to verify a key-signed bundle.
const TRUSTED_ROOT: &str =
    r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#;

/// cosign 3, its configuration in `home`, never prompting, offline: any
/// request off this machine goes to a proxy on a closed loopback port and
/// fails at once (the registries, on 127.0.0.1, are reached directly).
fn cosign3(home: &Path) -> Command {
    let mut c = Command::new(go_peer("cosign3"));
    c.env("HOME", home)
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1")
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("COSIGN_YES", "true")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    c
}

impl Bench {
    /// `cosign3 generate-key-pair`: (cosign.key, cosign.pub).
    fn cosign3_keys(&self) -> (PathBuf, PathBuf) {
        let dir = self.env().join("cosign3-keys");
        cosign_key_pair(cosign3(self.env()), &dir, COSIGN_PASSWORD)
    }

    /// `cosign3 verify --key PUB` offline (no transparency log, no TUF),
    /// with `-a` for each annotation.
    fn cosign3_verify(&self, public: &Path, reference: &str, annotations: &[&str]) -> Output {
        let mut c = cosign3(self.env());
        c.arg("verify")
            .arg("--key")
            .arg(public)
            .args(["--insecure-ignore-tlog=true", "--allow-insecure-registry"]);
        for a in annotations {
            c.args(["-a", a]);
        }
        let out = c.arg(reference).output().unwrap();
        // Offline means no TUF fetch either (of the public trusted root).
        assert!(!stderr(&out).contains("TUF"), "{}", stderr(&out));
        out
    }

    /// `cosign3 sign --key cosign.key` offline: its default, the bundle.
    fn cosign3_sign(&self, key: &Path, reference: &str, annotations: &[&str]) {
        let mut c = cosign3(self.env());
        c.arg("sign")
            .arg("--key")
            .arg(key)
            .args([
                "--tlog-upload=false",
                "--use-signing-config=false",
                "--allow-insecure-registry",
            ])
            .env("COSIGN_PASSWORD", COSIGN_PASSWORD);
        for a in annotations {
            c.args(["-a", a]);
        }
        let out = run(c.arg(reference));
        assert!(!stderr(&out).contains("TUF"), "{}", stderr(&out));
    }

    /// The referrers of `reference` as `nixoci referrers --json` lists
    /// them.
    fn list_referrers(&self, reference: &str) -> Value {
        let out = run(nixoci_in(self.env())
            .args(["referrers", "--json"])
            .arg(reference));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The bundle layer's bytes of the referrer `referrer` in `repo`.
    fn bundle_of(&self, repo: &str, referrer: &str) -> (Value, Vec<u8>) {
        let m = self.manifest(repo, referrer);
        let layer = m["layers"][0].clone();
        let bytes = self.blob(repo, layer["digest"].as_str().unwrap());
        (layer, bytes)
    }

    /// Attach `bytes` to `reference` as a bundle referrer, with
    /// `nixoci attach` (listed as the registry lists referrers).
    fn attach_bundle(&self, reference: &str, bytes: &[u8]) {
        let file = self.env().join("bundle.json");
        fs::write(&file, bytes).unwrap();
        run(nixoci_in(self.env())
            .args(["attach", "--artifact-type", BUNDLE_TYPE])
            .arg(reference)
            .arg(format!("{}:{BUNDLE_TYPE}", file.display())));
    }
}

/// The bundle signatures a verification report lists.
fn bundles(v: &Value) -> Vec<Value> {
    v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["format"] == "bundle")
        .cloned()
        .collect()
}

/// nixoci signs with `--format bundle`, `-a` annotations in the statement:
/// cosign 3 verifies it (and its annotations) offline; the referrer is
/// listed where the registry lists referrers; signing again with the same
/// key and annotations writes nothing, with others adds a referrer.
fn nixoci_bundle_cosign3_verifies(b: &Bench, source: &str) {
    let digest = b.push_image("nb:v1", 21);
    let r = b.reference("nb:v1");
    let (key, public) = b.openssl_keys("k");
    let signed = b.sign(&key, &r, &["--format", "bundle", "-a", "env=prod"]);
    assert_eq!(signed["format"], "bundle", "{signed}");
    assert_eq!(signed["action"], "added", "{signed}");
    assert_eq!(signed["signatures"], 1, "{signed}");

    let listed = b.list_referrers(&r);
    assert_eq!(listed["source"], source, "{listed}");
    let entry = &listed["manifests"][0];
    assert_eq!(entry["artifactType"], BUNDLE_TYPE, "{listed}");
    assert_eq!(entry["digest"], signed["signatureDigest"], "{listed}");
    let m = b.manifest("nb", entry["digest"].as_str().unwrap());
    assert_eq!(m["subject"]["digest"], digest.as_str());
    assert_eq!(m["layers"][0]["mediaType"], BUNDLE_TYPE);
    assert_eq!(
        m["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );

    let by_digest = b.reference(&format!("nb@{digest}"));
    let out = b.cosign3_verify(&public, &by_digest, &["env=prod"]);
    assert!(out.status.success(), "cosign3 verify: {}", stderr(&out));
    let claims = String::from_utf8_lossy(&out.stdout);
    assert!(claims.contains(&digest), "{claims}");
    let out = b.cosign3_verify(&public, &by_digest, &["env=dev"]);
    assert!(!out.status.success(), "cosign3 accepted a wrong annotation");

    let out = b.verify(&public, &r);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = report(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(v["signatures"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["signatures"][0]["format"], "bundle", "{v}");
    assert_eq!(v["signatures"][0]["annotations"]["env"], "prod", "{v}");

    let again = b.sign(&key, &r, &["--format", "bundle", "-a", "env=prod"]);
    assert_eq!(again["action"], "unchanged", "{again}");
    assert_eq!(again["signatures"], 1, "{again}");
    let second = b.sign(&key, &r, &["--format", "bundle", "-a", "env=staging"]);
    assert_eq!(second["action"], "added", "{second}");
    assert_eq!(second["signatures"], 2, "{second}");
    let v = report(&b.verify(&public, &r));
    let found = bundles(&v);
    assert_eq!(found.len(), 2, "{v}");
    assert!(found.iter().all(|s| s["verified"] == true), "{v}");
    let out = b.cosign3_verify(&public, &by_digest, &["env=staging"]);
    assert!(out.status.success(), "cosign3 verify: {}", stderr(&out));
}

#[test]
fn nixoci_bundle_cosign3_verifies_on_registry_2_8() {
    nixoci_bundle_cosign3_verifies(&Bench::registry2(), "fallback");
}

#[test]
fn nixoci_bundle_cosign3_verifies_on_the_referrers_registry() {
    nixoci_bundle_cosign3_verifies(&Bench::referrers(), "api");
}

/// cosign 3 signs with its default (a bundle referrer): nixoci finds it,
/// verifies it with cosign's public key and reports format `bundle` and
/// its annotations; another key is refused.
fn cosign3_signs_nixoci_verifies(b: &Bench) {
    let digest = b.push_image("cb:v1", 23);
    let r = b.reference("cb:v1");
    let (key, public) = b.cosign3_keys();
    b.cosign3_sign(&key, &b.reference(&format!("cb@{digest}")), &["by=cosign3"]);
    let out = b.verify(&public, &r);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = report(&out);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["signatures"][0]["format"], "bundle", "{v}");
    assert_eq!(v["signatures"][0]["annotations"]["by"], "cosign3", "{v}");
    let text = run(nixoci_in(b.env())
        .args(["verify-signature", "--key"])
        .arg(&public)
        .arg(&r));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("bundle signature at") && text.contains("verified"),
        "{text}"
    );

    let (_, stranger) = b.openssl_keys("stranger");
    let out = b.verify(&stranger, &r);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not verify with the key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cosign3_signs_nixoci_verifies_on_registry_2_8() {
    cosign3_signs_nixoci_verifies(&Bench::registry2());
}

#[test]
fn cosign3_signs_nixoci_verifies_on_the_referrers_registry() {
    cosign3_signs_nixoci_verifies(&Bench::referrers());
}

/// Both formats on one image, from both tools: nixoci's simple and bundle
/// signatures and cosign 3's bundle; nixoci lists all three and verifies
/// each with its key; cosign 3 verifies the bundles, as cosign 2.6 does
/// given a local trusted root.
fn both_formats_on_one_image(b: &Bench) {
    let digest = b.push_image("both:v1", 25);
    let r = b.reference("both:v1");
    let by_digest = b.reference(&format!("both@{digest}"));
    let (key, public) = b.openssl_keys("k");
    b.sign(&key, &r, &["-a", "f=simple"]);
    b.sign(&key, &r, &["--format", "bundle", "-a", "f=bundle"]);
    let (key3, public3) = b.cosign3_keys();
    b.cosign3_sign(&key3, &by_digest, &[]);
    let out = b.verify(&public, &r);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = report(&out);
    let s = v["signatures"].as_array().unwrap();
    assert_eq!(s.len(), 3, "{v}");
    let mine: Vec<&Value> = s.iter().filter(|s| s["verified"] == true).collect();
    assert_eq!(mine.len(), 2, "{v}");
    assert_eq!(mine[0]["format"], "simple", "{v}");
    assert_eq!(mine[0]["annotations"]["f"], "simple", "{v}");
    assert_eq!(mine[1]["format"], "bundle", "{v}");
    assert_eq!(mine[1]["annotations"]["f"], "bundle", "{v}");
    let v3 = report(&b.verify(&public3, &r));
    assert_eq!(v3["verified"], true, "{v3}");

    // cosign 2.6 (like cosign 3) verifies the bundles once an image has
    // one, not the .sig image, and then wants a trusted root: offline, a
    // local one (with no authority in it) does.
    let cosign2 = |extra: &[&str]| {
        cosign(b.env())
            .args(["verify", "--key"])
            .arg(&public)
            .args(["--insecure-ignore-tlog=true", "--allow-insecure-registry"])
            .args(extra)
            .arg(&by_digest)
            .output()
            .unwrap()
    };
    let out = cosign2(&[]);
    assert!(
        stderr(&out).contains("trusted root is required when using new bundle format"),
        "{}",
        stderr(&out)
    );
    let root = b.env().join("trusted_root.json");
    fs::write(&root, TRUSTED_ROOT).unwrap();
    let out = cosign2(&["--trusted-root", root.to_str().unwrap()]);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
    let out = b.cosign3_verify(&public, &by_digest, &["f=bundle"]);
    assert!(out.status.success(), "cosign3 verify: {}", stderr(&out));
    let out = b.cosign3_verify(&public3, &by_digest, &[]);
    assert!(out.status.success(), "cosign3 verify: {}", stderr(&out));
}

#[test]
fn both_formats_on_one_image_on_registry_2_8() {
    both_formats_on_one_image(&Bench::registry2());
}

#[test]
fn both_formats_on_one_image_on_the_referrers_registry() {
    both_formats_on_one_image(&Bench::referrers());
}

/// `verify-signature` with `public` on `reference` exits 1, and names
/// `why` for the one bundle signature there is.
fn refused(b: &Bench, public: &Path, reference: &str, why: &str) {
    let out = b.verify(public, reference);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("bundle signature at"), "{err}");
    assert!(err.contains(why), "expected {why:?} in:\n{err}");
    let v = report(&out);
    assert_eq!(v["verified"], false);
    let found = bundles(&v);
    assert_eq!(found.len(), 1, "{v}");
    assert!(found[0]["reason"].as_str().unwrap().contains(why), "{v}");
}

/// Each way a bundle can be wrong is refused naming why, by nixoci and by
/// cosign 3: another key; a statement naming another digest (the other
/// image's bundle, signed by the right key, attached to this one); a
/// statement changed after signing (an annotation).
fn tampered_bundles_are_refused(b: &Bench) {
    let digest = b.push_image("tb:v1", 27);
    let other = b.push_image("tb:other", 29);
    let (key, public) = b.openssl_keys("k");
    let (_, stranger) = b.openssl_keys("stranger");

    // Another key.
    let r = b.reference("tb:v1");
    b.sign(&key, &r, &["--format", "bundle", "-a", "env=prod"]);
    refused(b, &stranger, &r, "does not verify with the key");
    let by_digest = b.reference(&format!("tb@{digest}"));
    assert!(!b
        .cosign3_verify(&stranger, &by_digest, &[])
        .status
        .success());

    // A statement naming another digest, attached to an image unsigned so
    // far (this tag's image is the one pushed with seed 31).
    let o = b.reference("tb:other");
    let signed = b.sign(&key, &o, &["--format", "bundle"]);
    let (_, other_bundle) = b.bundle_of("tb", signed["signatureDigest"].as_str().unwrap());
    let fresh = b.push_image("tb:fresh", 31);
    let f = b.reference("tb:fresh");
    b.attach_bundle(&f, &other_bundle);
    refused(b, &public, &f, "a signature of another image");
    assert!(refused_text(b, &public, &f).contains(&other));
    let out = b.cosign3_verify(&public, &b.reference(&format!("tb@{fresh}")), &[]);
    assert!(
        !out.status.success(),
        "cosign3 accepted another image's bundle"
    );

    // A changed annotation: the statement's bytes changed, the signature
    // kept, attached to the same image in a repository of its own (so
    // that it is the only bundle there).
    let (_, bundle) = b.bundle_of("tb", &signed_digest(b, &r, &public));
    let mut doc: Value = serde_json::from_slice(&bundle).unwrap();
    let payload = doc["dsseEnvelope"]["payload"].as_str().unwrap().to_owned();
    let statement = String::from_utf8(b64_decode(&payload)).unwrap();
    let changed = statement.replace("\"env\":\"prod\"", "\"env\":\"dev\"");
    assert_ne!(changed, statement);
    doc["dsseEnvelope"]["payload"] = Value::String(b64_encode(changed.as_bytes()));
    // Seed 26 gives seed 27's image.
    assert_eq!(b.push_image("tc:v1", 26), digest);
    let c = b.reference("tc:v1");
    b.attach_bundle(&c, &serde_json::to_vec(&doc).unwrap());
    refused(b, &public, &c, "does not verify with the key");
    let v = report(&b.verify(&public, &c));
    assert_eq!(bundles(&v)[0]["annotations"]["env"], "dev", "{v}");
    let out = b.cosign3_verify(&public, &b.reference(&format!("tc@{digest}")), &[]);
    assert!(
        !out.status.success(),
        "cosign3 accepted a changed statement"
    );
}

/// The digest of the verified bundle referrer of `reference`.
fn signed_digest(b: &Bench, reference: &str, public: &Path) -> String {
    let v = report(&b.verify(public, reference));
    let s = bundles(&v);
    let at = s[0]["where"].as_str().unwrap();
    at.split('@')
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// The standard error of a refused verification.
fn refused_text(b: &Bench, public: &Path, reference: &str) -> String {
    stderr(&b.verify(public, reference))
}

fn b64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn tampered_bundles_are_refused_on_registry_2_8() {
    tampered_bundles_are_refused(&Bench::registry2());
}

#[test]
fn tampered_bundles_are_refused_on_the_referrers_registry() {
    tampered_bundles_are_refused(&Bench::referrers());
}

/// A bundle layer whose bytes were altered in registry 2.8's storage (the
/// registry then serves bytes that are not the digest's): refused as
/// altered, and cosign 3 refuses it too.
#[test]
fn altered_bundle_layer_bytes_are_refused() {
    let b = Bench::registry2();
    let digest = b.push_image("alt:v1", 35);
    let r = b.reference("alt:v1");
    let (key, public) = b.openssl_keys("k");
    let signed = b.sign(&key, &r, &["--format", "bundle"]);
    let (layer, _) = b.bundle_of("alt", signed["signatureDigest"].as_str().unwrap());
    let hex = layer["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let data = b.storage.as_ref().unwrap().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = fs::read(&data).unwrap();
    // Same length: the registry serves it as it is.
    let i = bytes.iter().position(|c| *c == b'e').unwrap();
    bytes[i] = b'E';
    fs::write(&data, &bytes).unwrap();
    refused(&b, &public, &r, "the bundle layer's bytes were altered");
    let out = b.cosign3_verify(&public, &b.reference(&format!("alt@{digest}")), &[]);
    assert!(!out.status.success(), "cosign3 accepted altered bytes");
}

/// Signing a bundle at `RUST_LOG=trace` shows no line of the private key.
#[test]
fn the_private_key_never_shows_when_signing_a_bundle() {
    let b = Bench::registry2();
    b.push_image("sec:v1", 37);
    let (key, _) = b.openssl_keys("k");
    let out = run(nixoci_in(b.env())
        .env("RUST_LOG", "trace")
        .args(["sign", "--format", "bundle", "--key"])
        .arg(&key)
        .arg(b.reference("sec:v1")));
    let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(shown.contains("signed"), "{shown}");
    let pem = fs::read_to_string(&key).unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line), "a line of the key shows: {shown}");
    }
}

/// A bundle referrer listed under the fallback tag whose manifest the
/// registry no longer has (deleted) is reported with that reason, and the
/// image's other signature is still checked and verifies.
#[test]
fn a_listed_bundle_the_registry_lost_is_reported_and_the_rest_checked() {
    let b = Bench::registry2();
    b.push_image("lost:v1", 39);
    let r = b.reference("lost:v1");
    let (key, public) = b.openssl_keys("k");
    let signed = b.sign(&key, &r, &["--format", "bundle"]);
    b.sign(&key, &r, &[]);
    let referrer = signed["signatureDigest"].as_str().unwrap();
    run(Command::new("curl")
        .args(["-sf", "-X", "DELETE"])
        .arg(b.url(&format!("/v2/lost/manifests/{referrer}"))));
    let out = b.verify(&public, &r);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = report(&out);
    let found = bundles(&v);
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["verified"], false, "{v}");
    let why = found[0]["reason"].as_str().unwrap();
    assert!(why.contains("the registry has no such manifest"), "{why}");
    assert!(v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["format"] == "simple" && s["verified"] == true));
}
