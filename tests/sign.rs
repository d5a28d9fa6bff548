//! Issue 25: `nixoci sign` and `nixoci verify-signature` in cosign's
//! default format (the `sha256-<hex>.sig` image), against the real cosign
//! (`.ci/install-deps` builds it), on registry 2.8 and on the registry
//! with the referrers API: each verifies what the other signs, signing
//! twice keeps both signatures, every tampering is refused naming why,
//! and the private key never shows.

mod common;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::peers::cosign;
use common::sign::{cosign_key_pair, report, stderr, Bench};
use common::*;
use serde_json::{json, Value};

impl Bench {
    /// `cosign generate-key-pair` in a directory of its own: (cosign.key,
    /// cosign.pub); the password is [`COSIGN_PASSWORD`].
    fn cosign_keys(&self) -> (PathBuf, PathBuf) {
        let dir = self.env().join("cosign-keys");
        cosign_key_pair(cosign(self.env()), &dir, COSIGN_PASSWORD)
    }

    /// `cosign verify --key PUB` offline, with `-a` for each annotation.
    fn cosign_verify(&self, public: &Path, reference: &str, annotations: &[&str]) -> Output {
        let mut c = cosign(self.env());
        c.arg("verify")
            .arg("--key")
            .arg(public)
            .args(["--insecure-ignore-tlog=true", "--allow-insecure-registry"]);
        for a in annotations {
            c.args(["-a", a]);
        }
        c.arg(reference).output().unwrap()
    }

    /// `cosign sign --key cosign.key` offline, with `-a` annotations.
    fn cosign_sign(&self, key: &Path, reference: &str, annotations: &[&str]) {
        let mut c = cosign(self.env());
        c.arg("sign")
            .arg("--key")
            .arg(key)
            .args(["--tlog-upload=false", "--allow-insecure-registry"])
            .env("COSIGN_PASSWORD", COSIGN_PASSWORD);
        for a in annotations {
            c.args(["-a", a]);
        }
        run(c.arg(reference));
    }

    /// Upload `bytes` as a blob through the registry API: its digest.
    fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha(bytes);
        let headers = run(Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-D", "-", "-X", "POST"])
            .arg(self.url(&format!("/v2/{repo}/blobs/uploads/"))));
        let headers = String::from_utf8(headers.stdout).unwrap();
        let location = headers
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .expect("an upload location");
        let location = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let file = self.env().join("upload");
        fs::write(&file, bytes).unwrap();
        run(Command::new("curl")
            .args([
                "-sf",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{location}{sep}digest={digest}")));
        digest
    }

    /// PUT a manifest at `repo:at` through the registry API.
    fn put_manifest(&self, repo: &str, at: &str, doc: &Value) {
        let file = self.env().join("manifest.json");
        fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
        run(Command::new("curl")
            .args(["-sf", "-X", "PUT", "-H"])
            .arg("Content-Type: application/vnd.oci.image.manifest.v1+json")
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(self.url(&format!("/v2/{repo}/manifests/{at}"))));
    }
}

const COSIGN_PASSWORD: &str = "cosign-pw-for-tests";

/// The tag of the signature image of `digest`.
fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// nixoci signs (with `-a`), cosign verifies (and checks the annotation);
/// nixoci verifies, lists the annotation and says no transparency log was
/// consulted; signing again writes nothing.
fn nixoci_signs_cosign_verifies(b: &Bench) {
    let digest = b.push_image("app:v1", 2);
    let (key, public) = b.openssl_keys("nixoci");
    let r = b.reference("app:v1");
    let signed = b.sign(&key, &r, &["-a", "env=prod", "-a", "team=a&b"]);
    assert_eq!(signed["digest"], digest, "{signed}");
    assert_eq!(signed["format"], "simple");
    assert_eq!(signed["action"], "added");
    assert_eq!(signed["signatures"], 1);
    assert_eq!(
        signed["signature"],
        b.reference(&format!("app:{}", sig_tag(&digest)))
    );
    assert_eq!(signed["annotations"], json!({"env": "prod", "team": "a&b"}));
    // cosign's own check of the format, the key and the annotations.
    let out = b.cosign_verify(&public, &r, &["env=prod", "team=a&b"]);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
    let by_digest = b.reference(&format!("app@{digest}"));
    let out = b.cosign_verify(&public, &by_digest, &[]);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
    let out = b.cosign_verify(&public, &r, &["env=dev"]);
    assert!(!out.status.success(), "cosign accepted a wrong annotation");
    // The manifest is cosign's: its media types and config.
    let m = b.manifest("app", &sig_tag(&digest));
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let config: Value =
        serde_json::from_slice(&b.blob("app", m["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([m["layers"][0]["digest"]])
    );
    // nixoci's check.
    let out = b.verify(&public, &r);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no transparency log was consulted"),
        "{}",
        stderr(&out)
    );
    let v = report(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(v["transparencyLog"], "not consulted");
    assert_eq!(v["digest"], digest);
    let sigs = v["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "{v}");
    assert_eq!(sigs[0]["format"], "simple");
    assert_eq!(sigs[0]["verified"], true);
    assert_eq!(
        sigs[0]["annotations"],
        json!({"env": "prod", "team": "a&b"})
    );
    // The same key and annotations again: nothing written.
    let again = b.sign(&key, &r, &["-a", "env=prod", "-a", "team=a&b"]);
    assert_eq!(again["action"], "unchanged", "{again}");
    assert_eq!(again["signatures"], 1);
    assert_eq!(again["signatureDigest"], signed["signatureDigest"]);
}

#[test]
fn nixoci_signs_cosign_verifies_on_registry_2_8() {
    nixoci_signs_cosign_verifies(&Bench::registry2());
}

#[test]
fn nixoci_signs_cosign_verifies_on_the_referrers_registry() {
    nixoci_signs_cosign_verifies(&Bench::referrers());
}

/// cosign signs, nixoci verifies and lists it; nixoci signs with another
/// key: both signatures kept, each verifies with its key in both tools,
/// and a third key verifies neither, each listed with why.
fn cosign_and_nixoci_signatures_are_both_kept(b: &Bench) {
    let digest = b.push_image("both:v1", 3);
    let r = b.reference("both:v1");
    let (cosign_key, cosign_pub) = b.cosign_keys();
    b.cosign_sign(&cosign_key, &r, &["by=cosign"]);
    let out = b.verify(&cosign_pub, &r);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = report(&out);
    assert_eq!(v["signatures"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["signatures"][0]["annotations"], json!({"by": "cosign"}));
    assert_eq!(v["signatures"][0]["verified"], true);

    let (key, public) = b.openssl_keys("second");
    let signed = b.sign(&key, &r, &["-a", "by=nixoci"]);
    assert_eq!(signed["signatures"], 2, "{signed}");
    for (public, by) in [(&cosign_pub, "cosign"), (&public, "nixoci")] {
        let out = b.cosign_verify(public, &r, &[&format!("by={by}")]);
        assert!(
            out.status.success(),
            "cosign verify ({by}): {}",
            stderr(&out)
        );
        let out = b.verify(public, &r);
        assert!(out.status.success(), "{}", stderr(&out));
        let v = report(&out);
        let sigs = v["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 2, "{v}");
        let verified: Vec<&Value> = sigs.iter().filter(|s| s["verified"] == true).collect();
        assert_eq!(verified.len(), 1, "{v}");
        assert_eq!(verified[0]["annotations"], json!({"by": by}));
    }
    // cosign's layer is kept as cosign wrote it.
    let m = b.manifest("both", &sig_tag(&digest));
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);

    let (_, third) = b.openssl_keys("third");
    let out = b.verify(&third, &r);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("none of the 2 signatures") && err.contains("third.pub"),
        "{err}"
    );
    assert_eq!(
        err.matches("does not verify with the key").count(),
        2,
        "{err}"
    );
    assert!(err.contains("annotations by=cosign"), "{err}");
}

#[test]
fn cosign_and_nixoci_signatures_are_both_kept_on_registry_2_8() {
    cosign_and_nixoci_signatures_are_both_kept(&Bench::registry2());
}

#[test]
fn cosign_and_nixoci_signatures_are_both_kept_on_the_referrers_registry() {
    cosign_and_nixoci_signatures_are_both_kept(&Bench::referrers());
}

/// Run verify-signature, expect exit 1 with one signature listed, whose
/// reason contains `why`.
fn refused(b: &Bench, public: &Path, reference: &str, why: &str) {
    let out = b.verify(public, reference);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{err}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("the one signature of") && err.contains("does not verify with the key"),
        "{err}"
    );
    assert!(err.contains(why), "expected {why:?} in:\n{err}");
    let v = report(&out);
    assert_eq!(v["verified"], false);
    assert_eq!(v["signatures"][0]["verified"], false);
    assert!(
        v["signatures"][0]["reason"].as_str().unwrap().contains(why),
        "{v}"
    );
}

/// Each way a signature can be wrong, made through the registry API (a
/// signature manifest pushed in place of the real one), is refused naming
/// why: another key, a payload naming another image, a changed
/// annotation; and no signature, or no image, at all.
fn tampered_signatures_are_refused(b: &Bench) {
    let digest = b.push_image("t:v1", 41);
    let other = b.push_image("t:other", 43);
    let r = b.reference("t:v1");
    let (key, public) = b.openssl_keys("k");
    let (_, stranger) = b.openssl_keys("stranger");

    // No signature at all.
    let out = b.verify(&public, &r);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("has no signature") && err.contains(&sig_tag(&digest)),
        "{err}"
    );
    assert!(err.contains("no transparency log was consulted"), "{err}");

    // Another key.
    b.sign(&key, &r, &["-a", "env=prod"]);
    refused(b, &stranger, &r, "does not verify with the key");
    let good = b.manifest("t", &sig_tag(&digest));

    // A changed annotation: the payload's bytes changed, the layer's
    // digest and size made to match them, the signature kept.
    let layer = &good["layers"][0];
    let payload = b.blob("t", layer["digest"].as_str().unwrap());
    let changed = String::from_utf8(payload.clone())
        .unwrap()
        .replace("\"env\":\"prod\"", "\"env\":\"dev\"");
    assert_ne!(changed.as_bytes(), payload.as_slice());
    let changed_digest = b.put_blob("t", changed.as_bytes());
    let mut m = good.clone();
    m["layers"][0]["digest"] = json!(changed_digest);
    m["layers"][0]["size"] = json!(changed.len());
    b.put_manifest("t", &sig_tag(&digest), &m);
    refused(b, &public, &r, "does not verify with the key");

    // A payload naming another image, signed by the right key: the other
    // image's signature layer put in this image's signature image.
    let or = b.reference("t:other");
    b.sign(&key, &or, &[]);
    let theirs = b.manifest("t", &sig_tag(&other));
    b.put_manifest("t", &sig_tag(&digest), &theirs);
    refused(b, &public, &r, &format!("names the image \"{other}\""));

    // Missing image: both commands name it, with the registry's status.
    let missing = b.reference("t:nope");
    let out = nixoci_in(b.env())
        .args(["sign", "--key"])
        .arg(&key)
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(21), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{missing}: no such image")),
        "{}",
        stderr(&out)
    );
    let out = b.verify(&public, &missing);
    assert_eq!(out.status.code(), Some(21), "{}", stderr(&out));
    assert!(stderr(&out).contains(&missing), "{}", stderr(&out));
}

#[test]
fn tampered_signatures_are_refused_on_registry_2_8() {
    tampered_signatures_are_refused(&Bench::registry2());
}

#[test]
fn tampered_signatures_are_refused_on_the_referrers_registry() {
    tampered_signatures_are_refused(&Bench::referrers());
}

/// A signature layer whose bytes were altered where the registry keeps
/// them (its storage, since no registry accepts a blob that is not its
/// digest's; the referrers registry keeps them in memory, out of reach):
/// refused as altered, and cosign refuses it too.
#[test]
fn altered_signature_layer_bytes_are_refused() {
    let b = Bench::registry2();
    let digest = b.push_image("alt:v1", 6);
    let r = b.reference("alt:v1");
    let (key, public) = b.openssl_keys("k");
    b.sign(&key, &r, &[]);
    let m = b.manifest("alt", &sig_tag(&digest));
    let hex = m["layers"][0]["digest"]
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
    let i = bytes.iter().position(|c| *c == b'c').unwrap();
    bytes[i] = b'C';
    fs::write(&data, &bytes).unwrap();
    refused(&b, &public, &r, "the layer's bytes were altered");
    let out = b.cosign_verify(&public, &r, &[]);
    assert!(!out.status.success(), "cosign accepted altered bytes");
}

/// A multi-platform image: the index's digest is signed (as cosign signs
/// by default), and cosign verifies it through the tag.
#[test]
fn a_multi_platform_index_is_signed_by_its_own_digest() {
    let b = Bench::referrers();
    let layout = two_platform_layout(b.env(), "multi");
    let out = run(nixoci_in(b.env())
        .args(["push", "--json"])
        .arg(format!("{}:multi", layout.display()))
        .arg(b.reference("multi:v1")));
    let pushed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (key, public) = b.openssl_keys("k");
    let signed = b.sign(&key, &b.reference("multi:v1"), &[]);
    assert_eq!(signed["digest"], pushed["digest"], "{signed}");
    let out = b.cosign_verify(&public, &b.reference("multi:v1"), &[]);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
}

/// The private key is read, never shown: not at `RUST_LOG=trace`, not in
/// an error about a key that is not P-256, nor one that cannot be read.
#[test]
fn the_private_key_never_shows() {
    let b = Bench::referrers();
    b.push_image("secret:v1", 7);
    let (key, _) = b.openssl_keys("k");
    let pem = fs::read_to_string(&key).unwrap();
    let body: Vec<&str> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 8)
        .collect();
    assert!(!body.is_empty());
    let shows = |out: &Output| {
        let all = [out.stdout.clone(), out.stderr.clone()].concat();
        let all = String::from_utf8_lossy(&all).into_owned();
        body.iter()
            .find(|l| all.contains(**l))
            .map(|l| l.to_string())
    };
    let out = nixoci_in(b.env())
        .args(["sign", "--key"])
        .arg(&key)
        .arg(b.reference("secret:v1"))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("TRACE"), "no trace logging");
    assert_eq!(shows(&out), None);
    // A P-384 key: refused, naming the file, not showing it.
    let p384 = b.env().join("p384.key");
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-384")
        .arg("-out")
        .arg(&p384));
    let p384_body: Vec<String> = fs::read_to_string(&p384)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    let out = nixoci_in(b.env())
        .args(["sign", "--key"])
        .arg(&p384)
        .arg(b.reference("secret:v1"))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: an EC private key on the curve P-384; nixoci signs with ECDSA P-256 keys",
            p384.display()
        )),
        "{err}"
    );
    assert!(!p384_body.iter().any(|l| err.contains(l.as_str())), "{err}");
    // A key file that is not there.
    let out = nixoci_in(b.env())
        .args(["sign", "--key", "/nonexistent/cosign.key"])
        .arg(b.reference("secret:v1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the signing key /nonexistent/cosign.key"),
        "{}",
        stderr(&out)
    );
}

/// Encrypted keys sign: one `cosign generate-key-pair` made and one `nixoci
/// generate-key-pair` made, with the passphrase from COSIGN_PASSWORD and
/// from --key-password-stdin (`--password-stdin` is the registry's), and
/// cosign verifies both signatures; a wrong
/// passphrase is refused as such; the passphrase shows nowhere, even at
/// `RUST_LOG=trace`.
#[test]
fn encrypted_keys_sign_and_their_passphrase_never_shows() {
    let b = Bench::referrers();
    b.push_image("enc:v1", 8);
    let r = b.reference("enc:v1");
    let (cosign_key, cosign_pub) = b.cosign_keys();
    let sign = |key: &Path, env: Option<&str>, stdin: Option<&str>| {
        let mut c = nixoci_in(b.env());
        c.args(["sign", "--key"])
            .arg(key)
            .arg(&r)
            .env("RUST_LOG", "trace")
            .env_remove("COSIGN_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = env {
            c.env("COSIGN_PASSWORD", p);
        }
        if stdin.is_some() {
            c.arg("--key-password-stdin");
        }
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    };
    let shows = |out: &Output, secret: &str| {
        String::from_utf8_lossy(&[out.stdout.clone(), out.stderr.clone()].concat()).contains(secret)
    };

    let out = sign(&cosign_key, Some(COSIGN_PASSWORD), None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("TRACE"), "no trace logging");
    assert!(!shows(&out, COSIGN_PASSWORD));
    let verified = b.cosign_verify(&cosign_pub, &r, &[]);
    assert!(
        verified.status.success(),
        "cosign verify: {}",
        stderr(&verified)
    );

    let keys = b.env().join("nixoci-keys");
    fs::create_dir_all(&keys).unwrap();
    run(nixoci_in(b.env())
        .args(["generate-key-pair", "-q", "--output-key-prefix"])
        .arg(keys.join("ci"))
        .env("COSIGN_PASSWORD", "ci-pass-Zu8"));
    let out = sign(&keys.join("ci.key"), None, Some("ci-pass-Zu8\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!shows(&out, "ci-pass-Zu8"));
    let verified = b.cosign_verify(&keys.join("ci.pub"), &r, &[]);
    assert!(
        verified.status.success(),
        "cosign verify: {}",
        stderr(&verified)
    );

    let out = sign(&keys.join("ci.key"), Some("not-it-Qp2"), None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{}: wrong passphrase",
            keys.join("ci.key").display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!shows(&out, "not-it-Qp2") && !shows(&out, "ci-pass-Zu8"));
    // No source and no terminal: how to give it.
    let out = sign(&keys.join("ci.key"), None, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("set COSIGN_PASSWORD or pass --key-password-stdin"),
        "{}",
        stderr(&out)
    );
}

/// Signers at the same time, each with its own key: the tag is rewritten
/// by each (no registry updates a tag atomically), and every signature is
/// there at the end, each verifying with its key.
fn concurrent_signers_keep_every_signature(b: &Bench) {
    let digest = b.push_image("race:v1", 51);
    let r = b.reference("race:v1");
    let keys: Vec<(PathBuf, PathBuf)> = (0..4)
        .map(|i| b.openssl_keys(&format!("race{i}")))
        .collect();
    let children: Vec<std::process::Child> = keys
        .iter()
        .map(|(key, _)| {
            nixoci_in(b.env())
                .args(["sign", "-q", "--key"])
                .arg(key)
                .arg(&r)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let m = b.manifest("race", &sig_tag(&digest));
    assert_eq!(m["layers"].as_array().unwrap().len(), 4, "{m}");
    for (_, public) in &keys {
        let out = b.verify(public, &r);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn concurrent_signers_keep_every_signature_on_registry_2_8() {
    concurrent_signers_keep_every_signature(&Bench::registry2());
}

#[test]
fn concurrent_signers_keep_every_signature_on_the_referrers_registry() {
    concurrent_signers_keep_every_signature(&Bench::referrers());
}
