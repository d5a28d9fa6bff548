//! Signing keys: ECDSA P-256, the only kind cosign makes.
//!
//! A private key is read from PEM, in any of the forms cosign writes or
//! imports that hold a P-256 key:
//!
//! - `ENCRYPTED SIGSTORE PRIVATE KEY` (what `cosign generate-key-pair`
//!   and [`PrivateKey::to_encrypted_pem`] write) and the older `ENCRYPTED
//!   COSIGN PRIVATE KEY`: PKCS#8 DER sealed with a passphrase
//!   (`sign::encrypted`);
//! - `PRIVATE KEY`: plain PKCS#8, as `openssl genpkey` writes it;
//! - `EC PRIVATE KEY`: plain SEC1, as `openssl ecparam -genkey` writes it.
//!
//! Any other key (RSA, Ed25519, another curve) is refused by name. A
//! public key is read from PEM: SubjectPublicKeyInfo (`PUBLIC KEY`), as
//! `cosign generate-key-pair` writes `cosign.pub`. Signatures are ECDSA
//! with SHA-256 over the message, DER-encoded, as cosign writes and checks
//! them.
//!
//! Secrets (the file's bytes, the DER, the passphrase) are zeroed when
//! dropped and never put in a message or in `Debug` output.

use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::der::pem;
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    LineEnding, ObjectIdentifier, PrivateKeyInfo,
};
use zeroize::Zeroizing;

use super::encrypted::{self, OpenError};
use crate::error::{Error, IoContext as _, Result};

/// The PEM label of the encrypted private keys cosign writes (and nixoci).
pub const SIGSTORE_PEM_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM label of the encrypted private keys older cosigns wrote.
pub const COSIGN_PEM_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// What every refusal of a key says nixoci wants.
const EXPECTED: &str = "nixoci signs with ECDSA P-256 keys, the kind cosign makes \
     (`nixoci generate-key-pair` or `cosign generate-key-pair` makes one)";

/// How a command gets the passphrase of an encrypted key: called only
/// when the key is encrypted.
pub type PassphraseFn<'a> = &'a dyn Fn() -> Result<Zeroizing<String>>;

/// A private key that signs.
pub struct PrivateKey {
    key: SigningKey,
    /// The file it was read from, for messages.
    pub path: PathBuf,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("PrivateKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A public key that checks signatures.
#[derive(Clone, Debug)]
pub struct PublicKey {
    key: VerifyingKey,
    /// The file it was read from, for messages.
    pub path: PathBuf,
}

impl PrivateKey {
    /// A new random key (from the system's random source).
    pub fn generate(path: &Path) -> PrivateKey {
        PrivateKey {
            key: SigningKey::random(&mut rand_core::OsRng),
            path: path.to_owned(),
        }
    }

    /// Read a private key file in any of the forms of the module's
    /// documentation; `passphrase` is asked only for an encrypted one.
    pub fn load(path: &Path, passphrase: PassphraseFn<'_>) -> Result<PrivateKey> {
        let bytes = Zeroizing::new(std::fs::read(path).at(path)?);
        PrivateKey::from_pem(&bytes, path, passphrase)
    }

    /// [`PrivateKey::load`] of the file's bytes; `path` is for messages.
    pub fn from_pem(bytes: &[u8], path: &Path, passphrase: PassphraseFn<'_>) -> Result<PrivateKey> {
        let refuse = |what: &str| Error::Invalid(format!("{}: {what}; {EXPECTED}", path.display()));
        let (label, der) = pem::decode_vec(bytes)
            .map_err(|e| refuse(&format!("not a private key in PEM ({e})")))?;
        let der = Zeroizing::new(der);
        match label {
            SIGSTORE_PEM_LABEL | COSIGN_PEM_LABEL => {
                let passphrase = passphrase()?;
                let der = encrypted::open(&der, passphrase.as_bytes()).map_err(|e| match e {
                    OpenError::WrongPassphrase => Error::Invalid(format!(
                        "{}: wrong passphrase: the key does not decrypt with it (or the file \
                         was altered); give the one it was made with, in COSIGN_PASSWORD, on \
                         standard input or at the prompt",
                        path.display()
                    )),
                    OpenError::Malformed(m) | OpenError::Unsupported(m) => Error::Invalid(format!(
                        "{}: cannot read the encrypted key: {m}",
                        path.display()
                    )),
                })?;
                PrivateKey::from_pkcs8_der(&der, path)
            }
            "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&der, path),
            "EC PRIVATE KEY" => {
                let key = p256::SecretKey::from_sec1_der(&der).map_err(|_| {
                    refuse("an EC private key (SEC1) that is not on the curve P-256")
                })?;
                Ok(PrivateKey {
                    key: key.into(),
                    path: path.to_owned(),
                })
            }
            "RSA PRIVATE KEY" => Err(refuse("an RSA private key")),
            "ENCRYPTED PRIVATE KEY" => Err(refuse(
                "a PKCS#8 key encrypted by openssl, which nixoci does not read (decrypt it \
                 with `openssl pkcs8`, or convert it with `cosign import-key-pair`)",
            )),
            "PUBLIC KEY" => Err(refuse("a public key, not a private one")),
            other => Err(refuse(&format!("a PEM {other:?} block, not a private key"))),
        }
    }

    /// Read an unencrypted PKCS#8 PEM private key of P-256.
    pub fn from_pkcs8_pem(pem: &str, path: &Path) -> Result<PrivateKey> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| {
            Error::Invalid(format!(
                "{}: not an ECDSA P-256 private key in PKCS#8 PEM ({e}); nixoci and cosign sign with P-256 keys (`nixoci generate-key-pair` makes one)",
                path.display()
            ))
        })?;
        Ok(PrivateKey {
            key,
            path: path.to_owned(),
        })
    }

    /// A PKCS#8 DER key, refused by its kind unless it is P-256.
    fn from_pkcs8_der(der: &[u8], path: &Path) -> Result<PrivateKey> {
        let refuse = |what: &str| Error::Invalid(format!("{}: {what}; {EXPECTED}", path.display()));
        let info = PrivateKeyInfo::try_from(der)
            .map_err(|e| refuse(&format!("not a PKCS#8 private key ({e})")))?;
        let kind = key_kind(info.algorithm.oid, info.algorithm.parameters_oid().ok());
        if kind != "an EC private key on the curve P-256" {
            return Err(refuse(&kind));
        }
        let key = SigningKey::try_from(info)
            .map_err(|e| refuse(&format!("an unreadable P-256 private key ({e})")))?;
        Ok(PrivateKey {
            key,
            path: path.to_owned(),
        })
    }

    /// The key encrypted with `passphrase`, as cosign writes it: PEM
    /// `ENCRYPTED SIGSTORE PRIVATE KEY` (scrypt and secretbox over the
    /// PKCS#8 DER).
    pub fn to_encrypted_pem(&self, passphrase: &str) -> Result<Zeroizing<String>> {
        let der = self
            .key
            .to_pkcs8_der()
            .map_err(|e| Error::Invalid(format!("cannot encode the private key: {e}")))?;
        let sealed = encrypted::seal(der.as_bytes(), passphrase.as_bytes())
            .map_err(|e| Error::Invalid(format!("cannot encrypt the private key: {e}")))?;
        pem::encode_string(SIGSTORE_PEM_LABEL, LineEnding::LF, &sealed)
            .map(Zeroizing::new)
            .map_err(|e| Error::Invalid(format!("cannot encode the private key: {e}")))
    }

    /// Sign `message`: ECDSA P-256 with SHA-256, DER-encoded.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: DerSignature = self.key.sign(message);
        signature.as_bytes().to_vec()
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: *self.key.verifying_key(),
            path: self.path.clone(),
        }
    }
}

impl PublicKey {
    /// Read a public key file (`cosign.pub`).
    pub fn load(path: &Path) -> Result<PublicKey> {
        let pem = std::fs::read_to_string(path).at(path)?;
        let key = VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
            Error::Invalid(format!(
                "{}: not an ECDSA P-256 public key in PEM ({e}); give the cosign.pub that belongs to the signing key",
                path.display()
            ))
        })?;
        Ok(PublicKey {
            key,
            path: path.to_owned(),
        })
    }

    /// The key as PEM (SubjectPublicKeyInfo), as `cosign.pub` holds it.
    pub fn to_pem(&self) -> Result<String> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::Invalid(format!("cannot encode the public key: {e}")))
    }

    /// Check a DER-encoded ECDSA P-256 SHA-256 signature of `message`;
    /// the error says why it does not verify.
    pub fn verify(&self, message: &[u8], signature_der: &[u8]) -> std::result::Result<(), String> {
        let signature = DerSignature::from_bytes(signature_der)
            .map_err(|e| format!("the signature is not a DER-encoded ECDSA signature ({e})"))?;
        self.key.verify(message, &signature).map_err(|_| {
            format!(
                "the signature does not verify with the key {}",
                self.path.display()
            )
        })
    }
}

/// The files of a new key pair, `PREFIX.key` and `PREFIX.pub`, as
/// `cosign generate-key-pair --output-key-prefix PREFIX` names them.
pub fn pair_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |extension: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(extension);
        PathBuf::from(name)
    };
    (with(".key"), with(".pub"))
}

/// The directory a key file goes into.
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Refuse to write a key pair at `paths` if either file exists (a key is
/// never replaced), would go into the Nix store, or has no directory to go
/// into.
pub fn check_pair_paths(paths: &(PathBuf, PathBuf)) -> Result<()> {
    let dir = directory_of(&paths.0);
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: no such directory, for the key files of --output-key-prefix; create it first",
            dir.display()
        )));
    }
    for path in [&paths.0, &paths.1] {
        crate::layout::check_output(path, true, &[]).map_err(|e| match e {
            Error::InNixStore { path, store } => Error::Invalid(format!(
                "{}: a private key never goes into the Nix store ({}), which every user of the \
                 machine can read and which is copied to binary caches; choose an \
                 --output-key-prefix outside it",
                path.display(),
                store.display()
            )),
            e => e,
        })?;
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Error::Invalid(format!(
                "{}: already exists, and a key is never overwritten; remove it, or choose \
                 another --output-key-prefix",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Write `key`, encrypted with `passphrase`, to `paths.0` (mode 0600) and
/// its public key to `paths.1` (0644): both or neither, and neither file
/// replaced if it exists.
pub fn write_pair(key: &PrivateKey, passphrase: &str, paths: &(PathBuf, PathBuf)) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    check_pair_paths(paths)?;
    let private = key.to_encrypted_pem(passphrase)?;
    let public = key.public().to_pem()?;
    let write = |path: &Path, text: &str, mode: u32| -> Result<tempfile::NamedTempFile> {
        let dir = directory_of(path);
        // Made 0600 by tempfile, so the key is never readable by others.
        let mut file = tempfile::Builder::new()
            .prefix(".nixoci-key-")
            .tempfile_in(dir)
            .at(dir)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.as_file().sync_all())
            .and_then(|()| {
                file.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(mode))
            })
            .at(path)?;
        Ok(file)
    };
    let private_file = write(&paths.0, &private, 0o600)?;
    let public_file = write(&paths.1, &public, 0o644)?;
    let exists = |path: &Path, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Invalid(format!(
                "{}: already exists, and a key is never overwritten; remove it, or choose \
                 another --output-key-prefix",
                path.display()
            ))
        } else {
            Error::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    };
    private_file
        .persist_noclobber(&paths.0)
        .map_err(|e| exists(&paths.0, e.error))?;
    if let Err(e) = public_file.persist_noclobber(&paths.1) {
        // Both or neither.
        let _ = std::fs::remove_file(&paths.0);
        return Err(exists(&paths.1, e.error));
    }
    Ok(())
}

/// What a PKCS#8 key is, in words, from its algorithm (and curve).
fn key_kind(algorithm: ObjectIdentifier, parameter: Option<ObjectIdentifier>) -> String {
    const EC: &str = "1.2.840.10045.2.1";
    let oid = algorithm.to_string();
    match oid.as_str() {
        EC => {
            let curve = parameter.map(|p| p.to_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "an EC private key on the curve P-256".to_owned(),
                Some("1.3.132.0.34") => "an EC private key on the curve P-384".to_owned(),
                Some("1.3.132.0.35") => "an EC private key on the curve P-521".to_owned(),
                Some("1.3.132.0.10") => "an EC private key on the curve secp256k1".to_owned(),
                Some(other) => format!("an EC private key on the curve {other}"),
                None => "an EC private key that names no curve".to_owned(),
            }
        }
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "an RSA private key".to_owned(),
        "1.3.101.112" => "an Ed25519 private key".to_owned(),
        "1.3.101.113" => "an Ed448 private key".to_owned(),
        "1.3.101.110" | "1.3.101.111" => "an X25519 or X448 key, which does not sign".to_owned(),
        "1.2.840.10040.4.1" => "a DSA private key".to_owned(),
        other => format!("a private key of algorithm {other}"),
    }
}
