//! Signatures that cosign accepts (issue 25): keys in cosign's formats,
//! the payloads cosign signs, and their checks. The cryptography is
//! RustCrypto's (`p256`'s ECDSA over P-256 with SHA-256); nothing here
//! hand-writes any of it.
//!
//! - [`key`]: reading and writing the keys;
//! - `encrypted`: the passphrase encryption of cosign's private keys
//!   (RustCrypto's `scrypt` and `crypto_secretbox`);
//! - `simple`: cosign's simple-signing payload, its signature image
//!   (`sha256-<hex>.sig`) and the check of one of its layers;
//! - `bundle`: the sigstore bundle (v0.3, a DSSE envelope of an
//!   in-toto statement) that cosign 3 attaches as a referrer, and its
//!   check;
//! - `checked`: what a format's check gives back, and the layer digest
//!   check both formats start with;
//! - `found`: every signature of an image, checked, in one list;
//! - `local`: signatures in a local image layout, as referrers.

pub(crate) mod bundle;
pub(crate) mod checked;
pub(crate) mod encrypted;
pub(crate) mod found;
pub mod key;
pub(crate) mod local;
pub(crate) mod simple;
