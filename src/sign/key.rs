//! Signing keys: ECDSA P-256, the only kind cosign makes.
//!
//! A private key is read from PEM: PKCS#8 (`PRIVATE KEY`). A public key
//! is read from PEM: SubjectPublicKeyInfo (`PUBLIC KEY`), as `cosign
//! generate-key-pair` writes `cosign.pub`. Signatures are ECDSA with
//! SHA-256 over the message, DER-encoded, as cosign writes and checks
//! them.

use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _, LineEnding};

use crate::error::{Error, IoContext as _, Result};

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
