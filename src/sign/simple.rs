//! cosign's default signature format ("simple signing"), as cosign 2
//! writes and every cosign version verifies it:
//!
//! - the payload is the JSON of containers/image's signature format,
//!   `{"critical":{"identity":{"docker-reference":REPO},"image":
//!   {"docker-manifest-digest":DIGEST},"type":"cosign container image
//!   signature"},"optional":ANNOTATIONS}`, written byte for byte as cosign
//!   writes it (Go's `encoding/json`: fields in that order, annotation keys
//!   sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped, `null` without
//!   annotations);
//! - the signature (ECDSA P-256, SHA-256, DER) is over those bytes, in
//!   base64, in the layer annotation [`SIGNATURE_ANNOTATION`];
//! - the payload is a layer of media type [`PAYLOAD_MEDIA_TYPE`] of an
//!   image tagged `sha256-<hex>.sig` in the image's repository
//!   ([`signature_tag`]), whose config ([`config`]) is what
//!   go-containerregistry gives an empty image with those layers appended.
//!
//! Checking one layer ([`check`]) is: its bytes are its digest's, the
//! signature verifies over them with the key, they are a payload of that
//! type naming the image's digest.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use super::checked::{check_layer_digest, Checked};
use super::key::{PrivateKey, PublicKey};
use crate::oci::digest::Sha256Digest;
use crate::oci::reference::Reference;

/// The media type of a payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation that holds the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The tag of the signature image of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Sha256Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// The `docker-reference` cosign writes for an image of `r`'s repository:
/// `REGISTRY/REPOSITORY`, with Docker Hub named `index.docker.io` as
/// go-containerregistry names it.
pub fn identity(r: &Reference) -> String {
    let registry = if r.registry == crate::oci::reference::DOCKER_HUB {
        "index.docker.io"
    } else {
        r.registry.as_str()
    };
    format!("{registry}/{}", r.repository)
}

#[derive(Serialize)]
struct Payload<'a> {
    critical: Critical<'a>,
    optional: Option<&'a BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct Critical<'a> {
    identity: Identity<'a>,
    image: Image,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
struct Identity<'a> {
    #[serde(rename = "docker-reference")]
    docker_reference: &'a str,
}

#[derive(Serialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The payload that signs `digest` as an image of `identity`'s
/// repository, with `annotations` (its `optional`), in cosign's bytes.
pub fn payload(
    identity: &str,
    digest: &Sha256Digest,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let doc = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: identity,
            },
            image: Image {
                docker_manifest_digest: digest.to_string(),
            },
            kind: PAYLOAD_TYPE,
        },
        optional: (!annotations.is_empty()).then_some(annotations),
    };
    let text = serde_json::to_string(&doc).expect("a payload is plain JSON");
    // Go's encoder escapes these wherever they are; in this document they
    // can only be inside strings, so replacing them keeps it the same JSON.
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// A signed payload: the layer descriptor of the signature image (media
/// type, digest, size, the signature annotation) and the payload bytes.
pub struct Signed {
    /// The layer's descriptor, as JSON.
    pub layer: Value,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Sign `payload` with `key`: the layer that carries it.
pub fn sign(payload: Vec<u8>, key: &PrivateKey) -> Signed {
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload));
    Signed {
        layer: json!({
            "mediaType": PAYLOAD_MEDIA_TYPE,
            "digest": Sha256Digest::of(&payload),
            "size": payload.len(),
            "annotations": {SIGNATURE_ANNOTATION: signature},
        }),
        payload,
    }
}

/// Whether the layer descriptor `layer` holds `payload` signed by `key`
/// (its digest is the payload's, and its signature verifies): signing it
/// again would add nothing, as cosign finds such a duplicate.
pub fn is_signed_by(layer: &Value, payload: &[u8], key: &PublicKey) -> bool {
    layer["mediaType"].as_str() == Some(PAYLOAD_MEDIA_TYPE)
        && layer["digest"].as_str() == Some(Sha256Digest::of(payload).to_string().as_str())
        && signature_of(layer)
            .ok()
            .is_some_and(|s| key.verify(payload, &s).is_ok())
}

/// The DER signature in a layer descriptor's annotation.
fn signature_of(layer: &Value) -> Result<Vec<u8>, String> {
    let text = layer["annotations"][SIGNATURE_ANNOTATION]
        .as_str()
        .ok_or_else(|| format!("the layer has no {SIGNATURE_ANNOTATION} annotation"))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("the {SIGNATURE_ANNOTATION} annotation is not base64 ({e})"))
}

/// The config of a signature image whose layers have the digests
/// `diff_ids` (a payload layer is not compressed: its digest is its
/// diff_id): what go-containerregistry makes of an empty image with these
/// layers appended, the zero time and one history entry per layer.
pub fn config(diff_ids: &[Value]) -> Value {
    let zero = "0001-01-01T00:00:00Z";
    json!({
        "architecture": "",
        "created": zero,
        "history": vec![json!({"created": zero}); diff_ids.len()],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    })
}

/// Check the payload layer `layer` (its descriptor), whose bytes the
/// registry sent as `bytes`, as a signature of `image` with `key`.
pub fn check(layer: &Value, bytes: &[u8], image: &Sha256Digest, key: &PublicKey) -> Checked {
    let doc: Option<Value> = serde_json::from_slice(bytes).ok();
    let annotations = doc
        .as_ref()
        .and_then(|d| d["optional"].as_object())
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let result = verdict(layer, bytes, doc.as_ref(), image, key);
    Checked {
        annotations,
        result,
    }
}

fn verdict(
    layer: &Value,
    bytes: &[u8],
    doc: Option<&Value>,
    image: &Sha256Digest,
    key: &PublicKey,
) -> Result<(), String> {
    check_layer_digest(layer, bytes, "the layer")?;
    let signature = signature_of(layer)?;
    key.verify(bytes, &signature).map_err(|e| {
        format!("{e}: it was made with another key, or the payload (its annotations, its digest) was changed after signing")
    })?;
    let doc = doc.ok_or("the signed payload is not JSON")?;
    let kind = doc["critical"]["type"].as_str().unwrap_or_default();
    if kind != PAYLOAD_TYPE {
        return Err(format!(
            "the signed payload is of type {kind:?}, not {PAYLOAD_TYPE:?}"
        ));
    }
    let named = doc["critical"]["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap_or_default();
    if named != image.to_string() {
        return Err(format!(
            "the signed payload names the image {named:?}, not this image's {image}: a signature of another image"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Sha256Digest {
        Sha256Digest::parse(
            "sha256:fad8cce45038fd90926eb171a9a8b778b4f8e3b6ca014ec11d8350246059e604",
        )
        .unwrap()
    }

    /// The bytes cosign v2.6.5 wrote for this image, without and with
    /// `-a foo=bar -a 'x=<&>' -a n=3`, read back from the registry.
    #[test]
    fn payload_is_cosigns_bytes() {
        let none = payload("127.0.0.1:5731/test", &digest(), &BTreeMap::new());
        assert_eq!(
            String::from_utf8(none).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5731/test"},"image":{"docker-manifest-digest":"sha256:fad8cce45038fd90926eb171a9a8b778b4f8e3b6ca014ec11d8350246059e604"},"type":"cosign container image signature"},"optional":null}"#
        );
        let a: BTreeMap<String, String> = [("foo", "bar"), ("x", "<&>"), ("n", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            String::from_utf8(payload("127.0.0.1:5731/test", &digest(), &a)).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5731/test"},"image":{"docker-manifest-digest":"sha256:fad8cce45038fd90926eb171a9a8b778b4f8e3b6ca014ec11d8350246059e604"},"type":"cosign container image signature"},"optional":{"foo":"bar","n":"3","x":"\u003c\u0026\u003e"}}"#
        );
    }

    /// go-containerregistry's config of cosign's two-layer signature image,
    /// as the registry held it.
    #[test]
    fn config_is_go_containerregistrys() {
        let ids = [
            json!("sha256:1748e94e7d5d72b6f915d77c0fea18dfb6d6cac3b2c1f03e5afececb45271e98"),
            json!("sha256:63e117ed64ed4400d9085e91340d3841e59d5ca197af1b4ad092fe9fbcd263dd"),
        ];
        let cosign: Value = serde_json::from_str(r#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"},{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:1748e94e7d5d72b6f915d77c0fea18dfb6d6cac3b2c1f03e5afececb45271e98","sha256:63e117ed64ed4400d9085e91340d3841e59d5ca197af1b4ad092fe9fbcd263dd"]},"config":{}}"#).unwrap();
        assert_eq!(config(&ids), cosign);
    }

    #[test]
    fn docker_hub_is_named_as_cosign_names_it() {
        let r = Reference::parse("nginx:1").unwrap();
        assert_eq!(identity(&r), "index.docker.io/library/nginx");
        let r = Reference::parse("127.0.0.1:5000/a/b:1").unwrap();
        assert_eq!(identity(&r), "127.0.0.1:5000/a/b");
    }
}
