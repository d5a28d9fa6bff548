//! The sigstore bundle format, as `cosign sign` 3 writes it by default:
//!
//! - the payload is an in-toto statement (v1) whose one subject is the
//!   image's digest, with the signed annotations as the subject's
//!   `annotations`, of predicate type [`PREDICATE_TYPE`] and an empty
//!   predicate; like cosign 3's, it names no repository: what is signed
//!   is the digest;
//! - a DSSE envelope carries it (payload type [`PAYLOAD_TYPE`]); its one
//!   signature (ECDSA P-256, SHA-256, DER) is over the DSSE
//!   pre-authentication encoding ([`pae`]) of the payload type and the
//!   payload;
//! - a sigstore bundle v0.3 ([`MEDIA_TYPE`]) holds the envelope, and as
//!   verification material a `publicKey` whose `hint` is the base64 of
//!   the SHA-256 of the key's SubjectPublicKeyInfo DER, as cosign writes
//!   it; no transparency log entry and no timestamp;
//! - the bundle is the one layer of an OCI 1.1 referrer of the image
//!   ([`manifest`]).
//!
//! The JSON types are this module's own (the protobuf-specs' JSON field
//! names). Checking a bundle ([`check`]) is: its bytes are its digest's,
//! it is a v0.3 bundle with a DSSE envelope of an in-toto statement, a
//! signature of the envelope verifies with the key, the statement is a
//! cosign signature (not another attestation) and its subject is the
//! image's digest.

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::checked::{check_layer_digest, Checked};
use super::key::{PrivateKey, PublicKey};
use crate::error::{Error, Result};
use crate::oci::digest::Sha256Digest;
use crate::oci::MediaType;

/// The media type of a sigstore bundle v0.3: the layer's, and the
/// referrer's artifact type.
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The other spelling of the v0.3 media type that the bundle spec allows.
const MEDIA_TYPE_PARAM: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement's `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of a cosign 3 image signature.
pub const PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The referrer manifest's annotation that says what the bundle holds.
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// The referrer manifest's annotation that names the predicate type.
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// Bytes as protobuf's JSON has them: base64, standard alphabet with
/// padding when written; either alphabet, padded or not, when read.
mod b64 {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(&text).ok())
            .ok_or_else(|| serde::de::Error::custom("not base64"))
    }
}

/// A sigstore bundle (the fields a key-signed DSSE bundle has).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Option<VerificationMaterial>,
    dsse_envelope: Option<Envelope>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyHint>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyHint {
    #[serde(default)]
    hint: String,
}

/// A DSSE envelope, with its bytes in base64 as protobuf's JSON has them.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(with = "b64")]
    payload: Vec<u8>,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Serialize, Deserialize)]
struct EnvelopeSignature {
    #[serde(with = "b64")]
    sig: Vec<u8>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    keyid: String,
}

/// An in-toto statement.
#[derive(Serialize, Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(default)]
    predicate: Value,
}

#[derive(Serialize, Deserialize)]
struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default)]
    digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, Value>,
}

/// DSSE's pre-authentication encoding of `payload` of `payload_type`:
/// `DSSEv1 LEN(type) type LEN(payload) payload`, separated by spaces,
/// lengths in decimal ASCII. The signature is over these bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The statement that signs `digest` with `annotations` (the subject's).
pub fn statement(digest: &Sha256Digest, annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let doc = Statement {
        kind: STATEMENT_TYPE.to_owned(),
        subject: vec![Subject {
            name: None,
            digest: [("sha256".to_owned(), digest.hex())].into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        }],
        predicate_type: PREDICATE_TYPE.to_owned(),
        predicate: json!({}),
    };
    serde_json::to_vec(&doc).expect("a statement is plain JSON")
}

/// The `hint` cosign gives a public key: the base64 of the SHA-256 of its
/// SubjectPublicKeyInfo DER.
pub fn hint(key: &PublicKey) -> Result<String> {
    let pem = key.to_pem()?;
    let der = VerifyingKey::from_public_key_pem(&pem)
        .and_then(|k| k.to_public_key_der())
        .map_err(|e| Error::Invalid(format!("cannot encode the public key: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256Digest::of(der.as_bytes()).0))
}

/// The bundle of `statement` signed with `key`, as JSON.
pub fn sign(statement: Vec<u8>, key: &PrivateKey) -> Result<Vec<u8>> {
    let sig = key.sign(&pae(PAYLOAD_TYPE, &statement));
    let bundle = Bundle {
        media_type: MEDIA_TYPE.to_owned(),
        verification_material: Some(VerificationMaterial {
            public_key: Some(PublicKeyHint {
                hint: hint(&key.public())?,
            }),
        }),
        dsse_envelope: Some(Envelope {
            payload: statement,
            payload_type: PAYLOAD_TYPE.to_owned(),
            signatures: vec![EnvelopeSignature {
                sig,
                keyid: String::new(),
            }],
        }),
    };
    Ok(serde_json::to_vec(&bundle).expect("a bundle is plain JSON"))
}

/// The referrer manifest that attaches `bundle` to `subject` (its
/// descriptor), as cosign 3 writes it: artifact type [`MEDIA_TYPE`], the
/// empty config (with that artifact type too), the bundle as its one
/// layer, and the annotations [`CONTENT_ANNOTATION`] and
/// [`PREDICATE_ANNOTATION`]. cosign adds `org.opencontainers.image.created`
/// with the time of signing; nixoci reads no clock, so the same
/// signature makes the same referrer.
pub fn manifest(bundle: &[u8], subject: Value) -> Value {
    let empty = b"{}";
    json!({
        "schemaVersion": 2,
        "mediaType": MediaType::MANIFEST,
        "artifactType": MEDIA_TYPE,
        "config": {
            "mediaType": MediaType::EMPTY,
            "artifactType": MEDIA_TYPE,
            "digest": Sha256Digest::of(empty),
            "size": empty.len(),
        },
        "layers": [{
            "mediaType": MEDIA_TYPE,
            "digest": Sha256Digest::of(bundle),
            "size": bundle.len(),
        }],
        "subject": subject,
        "annotations": {
            CONTENT_ANNOTATION: "dsse-envelope",
            PREDICATE_ANNOTATION: PREDICATE_TYPE,
        },
    })
}

/// Whether a referrer of this artifact type may hold a bundle.
pub fn is_bundle_type(artifact_type: &str) -> bool {
    artifact_type == MEDIA_TYPE || artifact_type == MEDIA_TYPE_PARAM
}

/// Check the bundle layer `layer` (its descriptor), whose bytes the
/// registry sent as `bytes`, as a signature of `image` with `key`.
pub fn check(layer: &Value, bytes: &[u8], image: &Sha256Digest, key: &PublicKey) -> Checked {
    let mut annotations = BTreeMap::new();
    let result = verdict(layer, bytes, image, key, &mut annotations);
    Checked {
        annotations,
        result,
    }
}

fn verdict(
    layer: &Value,
    bytes: &[u8],
    image: &Sha256Digest,
    key: &PublicKey,
    annotations: &mut BTreeMap<String, Value>,
) -> std::result::Result<(), String> {
    check_layer_digest(layer, bytes, "the bundle layer")?;
    let bundle: Bundle = serde_json::from_slice(bytes)
        .map_err(|e| format!("the layer is not a sigstore bundle: {e}"))?;
    if !is_bundle_type(&bundle.media_type) {
        return Err(format!(
            "the bundle is of media type {:?}, not {MEDIA_TYPE:?}",
            bundle.media_type
        ));
    }
    let envelope = bundle.dsse_envelope.ok_or(
        "the bundle holds no DSSE envelope (a message signature is not an image signature)",
    )?;
    if envelope.signatures.is_empty() {
        return Err("the bundle's DSSE envelope holds no signature".into());
    }
    let named = |s: &Subject| s.digest.get("sha256") == Some(&image.hex());
    // The annotations are reported whether or not the signature verifies.
    let statement = serde_json::from_slice::<Statement>(&envelope.payload);
    if let Ok(st) = &statement {
        if let Some(s) = st.subject.iter().find(|s| named(s)).or(st.subject.first()) {
            annotations.extend(s.annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let signed = pae(&envelope.payload_type, &envelope.payload);
    let mut last = String::new();
    if !envelope
        .signatures
        .iter()
        .any(|s| match key.verify(&signed, &s.sig) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        })
    {
        return Err(format!(
            "{last}: it was made with another key, or the statement (its annotations, its digest) was changed after signing"
        ));
    }
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(format!(
            "the signed payload is of type {:?}, not {PAYLOAD_TYPE:?}",
            envelope.payload_type
        ));
    }
    let statement =
        statement.map_err(|e| format!("the signed payload is not an in-toto statement: {e}"))?;
    if !statement.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(format!(
            "the signed payload is a statement of type {:?}, not {STATEMENT_TYPE:?}",
            statement.kind
        ));
    }
    if statement.predicate_type != PREDICATE_TYPE {
        return Err(format!(
            "the signed statement is an attestation of predicate type {:?}, not a signature ({PREDICATE_TYPE:?})",
            statement.predicate_type
        ));
    }
    if !statement.subject.iter().any(named) {
        let names: Vec<String> = statement
            .subject
            .iter()
            .filter_map(|s| s.digest.get("sha256").map(|h| format!("sha256:{h}")))
            .collect();
        return Err(format!(
            "the signed statement names the image {:?}, not this image's {image}: a signature of another image",
            names.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public key of a `cosign generate-key-pair` (cosign v3.1.3).
    const COSIGN_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeywnc6cBn/WuY8mRKWg7daN7zuAx
+DPam/uPcHJKLJUj+oL73xNIj5Fm9jaxASAmOJkkoLLIaaXR/489dpLwlQ==
-----END PUBLIC KEY-----
";
    /// The bundle `cosign sign -a foo=bar` (v3.1.3) attached with that key
    /// to the image [`image`], read back from registry 2.8.
    const COSIGN_BUNDLE: &str = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"YVakWojc8NXDGVRAbpPbW9irTpHA90JbMMKhxhEPi74="}},"dsseEnvelope":{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJzdWJqZWN0IjpbeyJkaWdlc3QiOnsic2hhMjU2IjoiYWRlMjdhYjVhNDhiNTU3N2FjZGMwMTZiNTRmNmQ1YzFkZWNhYmNhMWVmODlhMThjYTMxMWYyMGJiMjBiNTllNSJ9LCJhbm5vdGF0aW9ucyI6eyJmb28iOiJiYXIifX1dLCJwcmVkaWNhdGVUeXBlIjoiaHR0cHM6Ly9zaWdzdG9yZS5kZXYvY29zaWduL3NpZ24vdjEiLCJwcmVkaWNhdGUiOnt9fQ==","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEUCIQCn2b9R0mO3GLcEhZv9vjrkVXgHVAGBiExlywQ+q60K/gIgeRrphDFArnIOvYc009i2o90ALtI1LkwM0f0klAOJPeM="}]}}"#;

    fn image() -> Sha256Digest {
        Sha256Digest::parse(
            "sha256:ade27ab5a48b5577acdc016b54f6d5c1decabca1ef89a18ca311f20bb20b59e5",
        )
        .unwrap()
    }

    fn cosign_key(dir: &std::path::Path) -> PublicKey {
        let path = dir.join("cosign.pub");
        std::fs::write(&path, COSIGN_PUB).unwrap();
        PublicKey::load(&path).unwrap()
    }

    /// The DSSE spec's example of the encoding.
    #[test]
    fn pae_is_dsses() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn hint_is_cosigns() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            hint(&cosign_key(dir.path())).unwrap(),
            "YVakWojc8NXDGVRAbpPbW9irTpHA90JbMMKhxhEPi74="
        );
    }

    #[test]
    fn cosigns_bundle_verifies_and_a_changed_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = cosign_key(dir.path());
        let bytes = COSIGN_BUNDLE.as_bytes();
        let layer = json!({"mediaType": MEDIA_TYPE, "digest": Sha256Digest::of(bytes)});
        let c = check(&layer, bytes, &image(), &key);
        assert_eq!(c.result, Ok(()));
        assert_eq!(
            c.annotations,
            BTreeMap::from([("foo".into(), json!("bar"))])
        );
        let other = Sha256Digest::of(b"another image");
        let why = check(&layer, bytes, &other, &key).result.unwrap_err();
        assert!(why.contains("a signature of another image"), "{why}");
        let changed = COSIGN_BUNDLE.replace("MEUCIQCn", "MEUCIQCm");
        let layer = json!({"digest": Sha256Digest::of(changed.as_bytes())});
        let why = check(&layer, changed.as_bytes(), &image(), &key)
            .result
            .unwrap_err();
        assert!(why.contains("does not verify with the key"), "{why}");
    }

    #[test]
    fn statement_is_cosigns_shape() {
        let a = BTreeMap::from([("foo".to_owned(), "bar".to_owned())]);
        let doc: Value = serde_json::from_slice(&statement(&image(), &a)).unwrap();
        let bundle: Value = serde_json::from_str(COSIGN_BUNDLE).unwrap();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let cosigns: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(doc, cosigns);
    }
}
