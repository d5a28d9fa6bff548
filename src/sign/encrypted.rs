//! The encryption of cosign's private keys: the body of an `ENCRYPTED
//! SIGSTORE PRIVATE KEY` (or `ENCRYPTED COSIGN PRIVATE KEY`) PEM block is
//! a JSON document, as go-securesystemslib's `encrypted` package writes it:
//!
//! ```json
//! {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": "<base64>"},
//!  "cipher": {"name": "nacl/secretbox", "nonce": "<base64>"},
//!  "ciphertext": "<base64>"}
//! ```
//!
//! The passphrase goes through scrypt (32-byte salt) to a 32-byte key
//! that opens the NaCl secretbox (XSalsa20-Poly1305, 24-byte nonce, the
//! tag before the ciphertext) holding the PKCS#8 DER of the key. Both are
//! RustCrypto's (`scrypt`, `crypto_secretbox`); the salt and nonce come
//! from the system's random source.
//!
//! Only the scrypt parameters cosign has ever written are read (N of
//! 2^15, 2^16 or 2^17, r 8, p 1), as cosign reads them: a file cannot ask
//! for gigabytes of memory. Keys are written with N 2^16, as cosign does.

use base64::Engine as _;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use rand_core::RngCore as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The KDF and cipher names cosign writes.
const SCRYPT: &str = "scrypt";
const SECRETBOX: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// log2 of scrypt's N as cosign writes it (go-securesystemslib's
/// "standard" strength).
const WRITE_LOG_N: u8 = 16;

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Why an encrypted key does not open. Messages hold no secret.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The JSON is not cosign's encrypted-key document.
    Malformed(String),
    /// A KDF, cipher or parameters cosign does not write.
    Unsupported(String),
    /// The secretbox does not open: the passphrase is wrong (or the file
    /// was altered).
    WrongPassphrase,
}

/// The 32-byte secretbox key of `passphrase` with scrypt.
fn derive(passphrase: &[u8], salt: &[u8], log_n: u8) -> Result<Zeroizing<[u8; 32]>, String> {
    let params =
        scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| format!("scrypt parameters: {e}"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase, salt, &params, key.as_mut_slice())
        .map_err(|e| format!("scrypt: {e}"))?;
    Ok(key)
}

/// Encrypt `plaintext` (a PKCS#8 DER key) with `passphrase`: the JSON
/// document of cosign's encrypted keys.
pub fn seal(plaintext: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, String> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    let mut rng = rand_core::OsRng;
    rng.try_fill_bytes(&mut salt)
        .and_then(|()| rng.try_fill_bytes(&mut nonce))
        .map_err(|e| format!("the system's random source failed: {e}"))?;
    let key = derive(passphrase, &salt, WRITE_LOG_N)?;
    let ciphertext = XSalsa20Poly1305::new(key.as_ref().into())
        .encrypt(&Nonce::from(nonce), plaintext)
        .map_err(|_| "cannot encrypt the key".to_owned())?;
    let b64 = &base64::engine::general_purpose::STANDARD;
    let envelope = Envelope {
        kdf: Kdf {
            name: SCRYPT.to_owned(),
            params: ScryptParams {
                n: 1 << WRITE_LOG_N,
                r: 8,
                p: 1,
            },
            salt: b64.encode(salt),
        },
        cipher: Cipher {
            name: SECRETBOX.to_owned(),
            nonce: b64.encode(nonce),
        },
        ciphertext: b64.encode(ciphertext),
    };
    serde_json::to_vec(&envelope).map_err(|e| format!("cannot encode the key: {e}"))
}

/// Decrypt cosign's encrypted-key JSON `document` with `passphrase`: the
/// PKCS#8 DER of the key.
pub fn open(document: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let envelope: Envelope = serde_json::from_slice(document).map_err(|e| {
        OpenError::Malformed(format!("its body is not cosign's encrypted-key JSON ({e})"))
    })?;
    if envelope.kdf.name != SCRYPT {
        return Err(OpenError::Unsupported(format!(
            "key derivation {:?} is not supported (only {SCRYPT:?}, as cosign writes)",
            envelope.kdf.name
        )));
    }
    if envelope.cipher.name != SECRETBOX {
        return Err(OpenError::Unsupported(format!(
            "cipher {:?} is not supported (only {SECRETBOX:?}, as cosign writes)",
            envelope.cipher.name
        )));
    }
    let ScryptParams { n, r, p } = envelope.kdf.params;
    let log_n = match n {
        32768 => 15,
        65536 => 16,
        131072 => 17,
        _ => 0,
    };
    if log_n == 0 || r != 8 || p != 1 {
        return Err(OpenError::Unsupported(format!(
            "scrypt parameters N={n}, r={r}, p={p} are not supported (only N of 32768, 65536 \
             or 131072 with r=8 and p=1, as cosign writes and reads)"
        )));
    }
    let b64 = &base64::engine::general_purpose::STANDARD;
    let field = |name: &str, value: &str| {
        b64.decode(value)
            .map_err(|e| OpenError::Malformed(format!("its {name} is not base64 ({e})")))
    };
    let salt = field("salt", &envelope.kdf.salt)?;
    let nonce = field("nonce", &envelope.cipher.nonce)?;
    let ciphertext = field("ciphertext", &envelope.ciphertext)?;
    let nonce: [u8; NONCE_LEN] = nonce.as_slice().try_into().map_err(|_| {
        OpenError::Malformed(format!(
            "its nonce has {} bytes, not {NONCE_LEN}",
            nonce.len()
        ))
    })?;
    let key = derive(passphrase, &salt, log_n).map_err(OpenError::Malformed)?;
    XSalsa20Poly1305::new(key.as_ref().into())
        .decrypt(&Nonce::from(nonce), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| OpenError::WrongPassphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open() {
        let doc = seal(b"the key", b"pass").unwrap();
        assert_eq!(open(&doc, b"pass").unwrap().as_slice(), b"the key");
        assert_eq!(open(&doc, b"other"), Err(OpenError::WrongPassphrase));
        let text = String::from_utf8(doc).unwrap();
        assert!(text
            .starts_with(r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#));
    }

    #[test]
    fn refuses_what_cosign_does_not_write() {
        let doc = String::from_utf8(seal(b"k", b"").unwrap()).unwrap();
        let other_kdf = doc.replace(r#""name":"scrypt""#, r#""name":"pbkdf2""#);
        assert_eq!(
            open(other_kdf.as_bytes(), b""),
            Err(OpenError::Unsupported(
                "key derivation \"pbkdf2\" is not supported (only \"scrypt\", as cosign writes)"
                    .into()
            ))
        );
        let other_cipher = doc.replace("nacl/secretbox", "aes-gcm");
        assert!(matches!(open(other_cipher.as_bytes(), b""),
            Err(OpenError::Unsupported(m)) if m.starts_with("cipher \"aes-gcm\" is not supported")));
        let huge = doc.replace(r#""N":65536"#, r#""N":1073741824"#);
        assert!(matches!(open(huge.as_bytes(), b""),
            Err(OpenError::Unsupported(m)) if m.starts_with("scrypt parameters N=1073741824, r=8, p=1 are not supported")));
    }
}
