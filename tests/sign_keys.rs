//! Signing keys against the real cosign (v2.6.5, from `.ci/install-deps`),
//! both ways (issue 25): a key `cosign generate-key-pair` makes signs with
//! nixoci and `cosign verify-blob` accepts the signature; a key `nixoci
//! generate-key-pair` makes signs with `cosign sign-blob`, nixoci checks
//! that signature with the `.pub` it wrote, and `cosign public-key` of the
//! key gives that `.pub`. Plain PKCS#8 and SEC1 keys from openssl are
//! read; RSA, Ed25519 and P-384 keys are refused by name; a wrong
//! passphrase and an unknown encryption say so; the passphrase comes from
//! COSIGN_PASSWORD, then --password-stdin, and without a terminal the error
//! says how to give it; no passphrase is ever printed; no key is
//! overwritten; two keys differ and the private one is mode 0600.

mod common;

use std::cell::Cell;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::peers::cosign;
use common::sign::{cosign_key_pair, openssl_private_key};
use common::*;
use nixoci::sign::key::{PrivateKey, PublicKey};
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A passphrase no message may show.
const SECRET: &str = "correct-horse-7Qz";

/// Load `path` with `passphrase`, counting how often it is asked.
fn load(path: &Path, passphrase: &str, asked: &Cell<u32>) -> nixoci::error::Result<PrivateKey> {
    PrivateKey::load(path, &|| {
        asked.set(asked.get() + 1);
        Ok(Zeroizing::new(passphrase.to_owned()))
    })
}

/// Load a key that must not be encrypted: asking is a failure.
fn load_plain(path: &Path) -> nixoci::error::Result<PrivateKey> {
    PrivateKey::load(path, &|| {
        panic!(
            "{} is not encrypted: no passphrase is asked",
            path.display()
        )
    })
}

/// `nixoci generate-key-pair ARGS` in `dir`, with no terminal; stdin is
/// `input` when given.
fn generate(dir: &Path, password: Option<&str>, input: Option<&str>, args: &[&str]) -> Output {
    let mut c = nixoci_in(dir);
    c.current_dir(dir).arg("generate-key-pair").args(args);
    c.env_remove("COSIGN_PASSWORD");
    if let Some(p) = password {
        c.env("COSIGN_PASSWORD", p);
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// Assert a run failed, its output holds no passphrase of `secrets`;
/// its stderr.
fn failed_without_secrets(out: &Output, secrets: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "it succeeded: {stdout}{stderr}");
    for s in secrets {
        assert!(
            !stdout.contains(s) && !stderr.contains(s),
            "a passphrase appears in the output:\n{stdout}\n{stderr}"
        );
    }
    stderr
}

/// The message of a key refused by the library, checked to hold no secret.
fn refusal(result: nixoci::error::Result<PrivateKey>) -> String {
    let message = match result {
        Ok(k) => panic!("{} was read", k.path.display()),
        Err(e) => e.to_string(),
    };
    assert!(!message.contains(SECRET), "{message}");
    message
}

fn openssl(dir: &Path, args: &[&str]) {
    require("openssl");
    run(Command::new("openssl").current_dir(dir).args(args));
}

#[test]
fn a_key_cosign_made_signs_with_nixoci_and_cosign_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cosign_key_pair(cosign(d), d, SECRET);
    let pem = fs::read_to_string(d.join("cosign.key")).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
        "{pem}"
    );

    let asked = Cell::new(0);
    let key = load(&d.join("cosign.key"), SECRET, &asked).unwrap();
    assert_eq!(asked.get(), 1);
    assert_eq!(
        key.public().to_pem().unwrap(),
        fs::read_to_string(d.join("cosign.pub")).unwrap()
    );

    let blob = d.join("blob");
    fs::write(&blob, b"an image's simple-signing payload, say\n").unwrap();
    fs::write(
        d.join("blob.sig"),
        B64.encode(key.sign(&fs::read(&blob).unwrap())),
    )
    .unwrap();
    let out = run(cosign(d).current_dir(d).args([
        "verify-blob",
        "--key",
        "cosign.pub",
        "--signature",
        "blob.sig",
        "--insecure-ignore-tlog=true",
        "blob",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Verified OK"));
    // And a signature of other bytes is refused by cosign: the check is real.
    fs::write(d.join("other.sig"), B64.encode(key.sign(b"other bytes"))).unwrap();
    let err = run_fail(cosign(d).current_dir(d).args([
        "verify-blob",
        "--key",
        "cosign.pub",
        "--signature",
        "other.sig",
        "--insecure-ignore-tlog=true",
        "blob",
    ]));
    assert!(err.contains("invalid signature"), "{err}");

    // The label older cosigns wrote reads the same.
    let old = d.join("old.key");
    fs::write(
        &old,
        pem.replace("SIGSTORE PRIVATE KEY", "COSIGN PRIVATE KEY"),
    )
    .unwrap();
    let again = load(&old, SECRET, &asked).unwrap();
    assert_eq!(
        again.public().to_pem().unwrap(),
        key.public().to_pem().unwrap()
    );

    // A wrong passphrase says so, and shows neither passphrase.
    let message = refusal(load(&d.join("cosign.key"), "not-the-one-3x", &asked));
    assert_eq!(
        message,
        format!(
            "{}: wrong passphrase: the key does not decrypt with it (or the file was altered); \
             give the one it was made with, in COSIGN_PASSWORD, on standard input or at the prompt",
            d.join("cosign.key").display()
        )
    );
    assert!(!message.contains("not-the-one-3x"), "{message}");
}

#[test]
fn a_key_nixoci_made_signs_with_cosign_and_nixoci_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = generate(
        d,
        Some(SECRET),
        None,
        &["--output-key-prefix", "nixoci", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let public_pem = fs::read_to_string(d.join("nixoci.pub")).unwrap();
    assert_eq!(report["privateKey"], "nixoci.key");
    assert_eq!(report["publicKey"], "nixoci.pub");
    assert_eq!(report["publicKeyPem"], public_pem.as_str());
    let pem = fs::read_to_string(d.join("nixoci.key")).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
        "{pem}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    let mode = fs::metadata(d.join("nixoci.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the private key is mode {mode:o}");

    let blob = d.join("blob");
    fs::write(&blob, b"what cosign signs\n").unwrap();
    let signed = run(cosign(d)
        .current_dir(d)
        .env("COSIGN_PASSWORD", SECRET)
        .args([
            "sign-blob",
            "--key",
            "nixoci.key",
            "--tlog-upload=false",
            "blob",
        ]));
    let signature = B64
        .decode(String::from_utf8(signed.stdout).unwrap().trim())
        .unwrap();
    let public = PublicKey::load(&d.join("nixoci.pub")).unwrap();
    public
        .verify(&fs::read(&blob).unwrap(), &signature)
        .unwrap();
    assert_eq!(
        public.verify(b"other bytes", &signature),
        Err(format!(
            "the signature does not verify with the key {}",
            d.join("nixoci.pub").display()
        ))
    );

    let from_cosign = run(cosign(d)
        .current_dir(d)
        .env("COSIGN_PASSWORD", SECRET)
        .args(["public-key", "--key", "nixoci.key"]));
    assert_eq!(String::from_utf8(from_cosign.stdout).unwrap(), public_pem);

    // cosign refuses a wrong passphrase on it too: the encryption is real.
    let err = run_fail(
        cosign(d)
            .current_dir(d)
            .env("COSIGN_PASSWORD", "wrong")
            .args([
                "sign-blob",
                "--key",
                "nixoci.key",
                "--tlog-upload=false",
                "blob",
            ]),
    );
    assert!(err.contains("decryption failed"), "{err}");
}

#[test]
fn plain_keys_from_openssl_are_read_and_other_kinds_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_private_key(&d.join("p256.pem"));
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "sec1.pem",
        ],
    );
    for name in ["p256.pem", "sec1.pem"] {
        let key = load_plain(&d.join(name)).unwrap();
        let public = run(Command::new("openssl")
            .current_dir(d)
            .args(["pkey", "-in", name, "-pubout"]));
        assert_eq!(
            key.public().to_pem().unwrap(),
            String::from_utf8(public.stdout).unwrap()
        );
        key.public().verify(b"m", &key.sign(b"m")).unwrap();
    }

    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "rsa.pem",
        ],
    );
    openssl(
        d,
        &["genpkey", "-algorithm", "ED25519", "-out", "ed25519.pem"],
    );
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "p384.pem",
        ],
    );
    openssl(
        d,
        &[
            "rsa",
            "-in",
            "rsa.pem",
            "-traditional",
            "-out",
            "rsa-traditional.pem",
        ],
    );
    let expected = "; nixoci signs with ECDSA P-256 keys, the kind cosign makes \
                    (`nixoci generate-key-pair` or `cosign generate-key-pair` makes one)";
    for (name, what) in [
        ("rsa.pem", "an RSA private key"),
        ("rsa-traditional.pem", "an RSA private key"),
        ("ed25519.pem", "an Ed25519 private key"),
        ("p384.pem", "an EC private key on the curve P-384"),
        ("p256.pem.pub", "a public key, not a private one"),
    ] {
        if name == "p256.pem.pub" {
            openssl(d, &["pkey", "-in", "p256.pem", "-pubout", "-out", name]);
        }
        assert_eq!(
            refusal(load_plain(&d.join(name))),
            format!("{}: {what}{expected}", d.join(name).display())
        );
    }

    // Encrypted by cosign (import-key-pair), a P-384 key is refused the same
    // way once decrypted.
    run(cosign(d)
        .current_dir(d)
        .env("COSIGN_PASSWORD", SECRET)
        .args([
            "import-key-pair",
            "--key",
            "p384.pem",
            "--output-key-prefix",
            "imported",
        ]));
    let asked = Cell::new(0);
    assert_eq!(
        refusal(load(&d.join("imported.key"), SECRET, &asked)),
        format!(
            "{}: an EC private key on the curve P-384{expected}",
            d.join("imported.key").display()
        )
    );
}

/// A change to an encrypted key's JSON.
type Edit = fn(String) -> String;

/// The encrypted key's JSON, changed by `edit`, written back as PEM.
fn tamper(src: &Path, dst: &Path, edit: impl Fn(String) -> String) {
    let pem = fs::read_to_string(src).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let json = String::from_utf8(B64.decode(body).unwrap()).unwrap();
    let changed = B64.encode(edit(json));
    let lines: Vec<&str> = changed
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    fs::write(
        dst,
        format!(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
}

#[test]
fn unknown_encryptions_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cosign_key_pair(cosign(d), d, SECRET);
    let asked = Cell::new(0);
    let cases: [(&str, Edit, &str); 3] = [
        (
            "kdf.key",
            |j| j.replace(r#""name":"scrypt""#, r#""name":"argon2id""#),
            "key derivation \"argon2id\" is not supported (only \"scrypt\", as cosign writes)",
        ),
        (
            "cipher.key",
            |j| j.replace(r#""name":"nacl/secretbox""#, r#""name":"aes-256-gcm""#),
            "cipher \"aes-256-gcm\" is not supported (only \"nacl/secretbox\", as cosign writes)",
        ),
        (
            "params.key",
            |j| j.replace(r#""N":65536"#, r#""N":1073741824"#),
            "scrypt parameters N=1073741824, r=8, p=1 are not supported (only N of 32768, 65536 \
             or 131072 with r=8 and p=1, as cosign writes and reads)",
        ),
    ];
    for (name, edit, why) in cases {
        let path = d.join(name);
        tamper(&d.join("cosign.key"), &path, |j| {
            let changed = edit(j.clone());
            assert_ne!(changed, j, "the test's edit changed nothing");
            changed
        });
        assert_eq!(
            refusal(load(&path, SECRET, &asked)),
            format!("{}: cannot read the encrypted key: {why}", path.display())
        );
    }
}

#[test]
fn the_passphrase_comes_from_cosign_password_then_stdin_and_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let asked = Cell::new(0);
    let opens = |name: &str, passphrase: &str| {
        load(&d.join(format!("{name}.key")), passphrase, &asked)
            .unwrap_or_else(|e| panic!("{name}.key does not open with its passphrase: {e}"));
    };

    // The first line of standard input, without its line ending.
    let out = generate(
        d,
        None,
        Some(&format!("{SECRET}\r\nnot this line\n")),
        &["--password-stdin", "--output-key-prefix", "stdin", "-q"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "-q printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    opens("stdin", SECRET);

    // COSIGN_PASSWORD first, even with --password-stdin.
    let out = generate(
        d,
        Some("from-the-env"),
        Some("from-stdin\n"),
        &["--password-stdin", "--output-key-prefix", "env"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    opens("env", "from-the-env");
    // An empty COSIGN_PASSWORD is an empty passphrase, as cosign has it, and
    // cosign reads that key with it.
    let out = generate(d, Some(""), None, &["--output-key-prefix", "empty"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    opens("empty", "");
    fs::write(d.join("blob"), b"x").unwrap();
    run(cosign(d).current_dir(d).env("COSIGN_PASSWORD", "").args([
        "sign-blob",
        "--key",
        "empty.key",
        "--tlog-upload=false",
        "blob",
    ]));

    // No source and no terminal: say how to give it; nothing written.
    let stderr = failed_without_secrets(
        &generate(d, None, None, &["--output-key-prefix", "none"]),
        &[],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: the passphrase of the new none.key is needed and there is no terminal to ask it \
         on: set COSIGN_PASSWORD or pass --password-stdin and give it on standard input"
    );
    let stderr = failed_without_secrets(
        &generate(
            d,
            None,
            Some(""),
            &["--password-stdin", "--output-key-prefix", "none"],
        ),
        &[],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: --password-stdin: standard input is empty; give the passphrase of the new none.key as its first line"
    );
    assert!(!d.join("none.key").exists() && !d.join("none.pub").exists());

    // A missing directory is named before any passphrase is asked.
    let stderr = failed_without_secrets(
        &generate(d, None, None, &["--output-key-prefix", "no-such-dir/k"]),
        &[],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: no-such-dir: no such directory, for the key files of --output-key-prefix; create it first"
    );

    // A command that read the passphrase and then refused it prints it
    // nowhere, even at RUST_LOG=trace, from either source.
    let mut not_utf8 = SECRET.as_bytes().to_vec();
    not_utf8.push(0xff);
    let from_env = {
        let mut c = nixoci_in(d);
        c.current_dir(d)
            .env("RUST_LOG", "trace")
            .env("COSIGN_PASSWORD", std::ffi::OsStr::from_bytes(&not_utf8))
            .args(["generate-key-pair", "--output-key-prefix", "bad"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let stderr = failed_without_secrets(&from_env, &[SECRET]);
    assert_eq!(
        stderr.trim_end(),
        "error: COSIGN_PASSWORD is not valid UTF-8; give the passphrase of the new bad.key in UTF-8"
    );
    let from_stdin = {
        let mut c = nixoci_in(d);
        c.current_dir(d)
            .env("RUST_LOG", "trace")
            .env_remove("COSIGN_PASSWORD")
            .args([
                "generate-key-pair",
                "--password-stdin",
                "--output-key-prefix",
                "bad",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&not_utf8).unwrap();
        stdin.write_all(b"\n").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let stderr = failed_without_secrets(&from_stdin, &[SECRET]);
    assert_eq!(
        stderr.trim_end(),
        "error: the passphrase of the new bad.key on standard input is not valid UTF-8"
    );
    assert!(!d.join("bad.key").exists() && !d.join("bad.pub").exists());
}

#[test]
fn no_key_is_overwritten_and_two_keys_differ() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("keys")).unwrap();
    let out = generate(d, Some(SECRET), None, &["--output-key-prefix", "keys/a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "keys/a.key: private key, encrypted with the passphrase (keep it out of the Nix store)\n\
         keys/a.pub: public key\n"
    );
    let before = (
        fs::read(d.join("keys/a.key")).unwrap(),
        fs::read(d.join("keys/a.pub")).unwrap(),
    );

    let stderr = failed_without_secrets(
        &generate(d, Some(SECRET), None, &["--output-key-prefix", "keys/a"]),
        &[SECRET],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: keys/a.key: already exists, and a key is never overwritten; remove it, or choose another --output-key-prefix"
    );
    assert_eq!(before.0, fs::read(d.join("keys/a.key")).unwrap());
    assert_eq!(before.1, fs::read(d.join("keys/a.pub")).unwrap());

    // Only the .pub there: refused, and no .key left beside it.
    fs::write(d.join("keys/b.pub"), b"someone's public key\n").unwrap();
    let stderr = failed_without_secrets(
        &generate(d, Some(SECRET), None, &["--output-key-prefix", "keys/b"]),
        &[SECRET],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: keys/b.pub: already exists, and a key is never overwritten; remove it, or choose another --output-key-prefix"
    );
    assert!(!d.join("keys/b.key").exists());
    let leftovers: Vec<PathBuf> = fs::read_dir(d.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");

    // Never into the Nix store (no Nix needed: the path alone says it).
    let stderr = failed_without_secrets(
        &generate(
            d,
            Some(SECRET),
            None,
            &["--output-key-prefix", "/nix/store/nixoci-test-key"],
        ),
        &[SECRET],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: /nix/store/nixoci-test-key.key: a private key never goes into the Nix store \
         (/nix/store), which every user of the machine can read and which is copied to binary \
         caches; choose an --output-key-prefix outside it"
    );

    // Same passphrase, another key: the randomness is real (key, salt, nonce).
    let out = generate(d, Some(SECRET), None, &["--output-key-prefix", "keys/c"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = Cell::new(0);
    let a = load(&d.join("keys/a.key"), SECRET, &asked).unwrap();
    let c = load(&d.join("keys/c.key"), SECRET, &asked).unwrap();
    assert_ne!(a.public().to_pem().unwrap(), c.public().to_pem().unwrap());
    assert_ne!(before.0, fs::read(d.join("keys/c.key")).unwrap());
    assert_eq!(
        fs::metadata(d.join("keys/c.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(d.join("keys/c.pub"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    // The Debug form of a key shows no secret.
    assert_eq!(
        format!("{a:?}"),
        format!("PrivateKey {{ path: {:?}, .. }}", d.join("keys/a.key"))
    );
}
