//! Every signature found of an image, each checked, in one list: what
//! `verify-signature` reports. A signature is a payload layer of the
//! `sha256-<hex>.sig` image ([`Candidate::Simple`]) or the bundle layer of
//! a sigstore bundle referrer ([`Candidate::Bundle`]), each checked into
//! the same [`Found`].

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::checked::Checked;
use super::key::PublicKey;
use crate::oci::digest::Sha256Digest;

/// The format of a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// cosign's simple signing: a payload layer of the `.sig` image.
    Simple,
    /// A sigstore bundle v0.3: the layer of a referrer of the image.
    Bundle,
}

impl Format {
    /// Its name, as `--format` and the reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Bundle => "bundle",
        }
    }
}

/// A signature as fetched, not yet checked.
pub enum Candidate {
    /// A layer of the `.sig` image: where it is (for messages), its
    /// descriptor, and the bytes the registry sent for it (or why it sent
    /// none).
    Simple {
        /// The signature image and the layer's place in it.
        location: String,
        /// The layer's descriptor.
        layer: Value,
        /// The layer's bytes.
        bytes: Result<Vec<u8>, String>,
    },
    /// The bundle layer of a referrer: where it is, its descriptor (or
    /// `Null` when the referrer has none to check), and its bytes (or why
    /// there are none).
    Bundle {
        /// The referrer, by digest.
        location: String,
        /// The layer's descriptor.
        layer: Value,
        /// The layer's bytes.
        bytes: Result<Vec<u8>, String>,
    },
}

/// One signature found, checked.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    /// Its format.
    pub format: Format,
    /// Where it is.
    #[serde(rename = "where")]
    pub location: String,
    /// The digest of what holds it (the payload layer, the bundle layer).
    pub digest: String,
    /// The annotations it signs (a payload's `optional`, a statement
    /// subject's `annotations`).
    pub annotations: BTreeMap<String, Value>,
    /// Whether it verifies with the key.
    pub verified: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A format's check of one layer of `image` with `key`.
type Check = fn(&Value, &[u8], &Sha256Digest, &PublicKey) -> Checked;

/// Check each of `candidates` as a signature of `image` with `key`.
pub fn check_all(candidates: Vec<Candidate>, image: &Sha256Digest, key: &PublicKey) -> Vec<Found> {
    candidates
        .into_iter()
        .map(|c| {
            let (format, check, location, layer, bytes): (Format, Check, _, _, _) = match c {
                Candidate::Simple {
                    location,
                    layer,
                    bytes,
                } => (Format::Simple, super::simple::check, location, layer, bytes),
                Candidate::Bundle {
                    location,
                    layer,
                    bytes,
                } => (Format::Bundle, super::bundle::check, location, layer, bytes),
            };
            let digest = layer["digest"].as_str().unwrap_or_default().to_owned();
            let (annotations, result) = match bytes {
                Ok(b) => {
                    let c = check(&layer, &b, image, key);
                    (c.annotations, c.result)
                }
                Err(why) => (BTreeMap::new(), Err(why)),
            };
            Found {
                format,
                location,
                digest,
                annotations,
                verified: result.is_ok(),
                reason: result.err(),
            }
        })
        .collect()
}
