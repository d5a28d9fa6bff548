//! cosign signatures in a local image layout (docs/signing.md, "Signing a
//! layout, and signing at push time"). A signature is a referrer of the image, in
//! the form cosign writes a simple signature as an OCI 1.1 referrer
//! (`cosign sign --registry-referrers-mode=oci-1-1`): an image manifest of
//! artifact type [`ARTIFACT_TYPE`] (its config's media type too, the
//! config being the signature image's, [`super::simple::config`]), one
//! simple-signing payload layer with its signature annotation, and a
//! `subject` naming the image. It is listed in the nested referrers layout
//! as an SBOM is ([`crate::referrers::attach_document`]), so that
//! `nixoci push` and `oras cp -r` carry it; `push` also adds its layer to
//! the image's `sha256-<hex>.sig` tag, where cosign looks by default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use super::found::{Candidate, Format};
use super::key::PrivateKey;
use super::simple;
use crate::error::{Error, Result};
use crate::layout::{nested, Layout};
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::{canonical_json, read_limited, MAX_DOCUMENT};
use crate::oci::MediaType;

/// The artifact type of a cosign simple signature as a referrer, as
/// cosign names it.
pub const ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// What [`sign`] did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutSignReport {
    /// The layout.
    pub layout: PathBuf,
    /// The digest signed: of what `LAYOUT[:TAG]` names (an index for a
    /// multi-platform image).
    pub digest: Sha256Digest,
    /// The signature format.
    pub format: Format,
    /// The referrer that holds the signature.
    pub referrer: Sha256Digest,
    /// The annotations signed (the payload's `optional`).
    pub annotations: BTreeMap<String, String>,
    /// `added`, or `unchanged` when a signature referrer of the image held
    /// this payload signed by this key already.
    pub action: &'static str,
    /// How many signatures of the image the layout holds now.
    pub signatures: usize,
}

/// The image's signature referrers in `layout`: each descriptor with its
/// manifest.
fn signature_referrers(layout: &Layout, image: &Sha256Digest) -> Result<Vec<(Descriptor, Value)>> {
    let mut out = Vec::new();
    for r in layout.referrers()? {
        let bytes = layout.read_document(&r)?;
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if is_signature_of(&doc, image) {
            out.push((r, doc));
        }
    }
    Ok(out)
}

/// Whether the manifest `doc` is a signature referrer of `image`.
fn is_signature_of(doc: &Value, image: &Sha256Digest) -> bool {
    crate::referrers::artifact_type_of(doc) == Some(ARTIFACT_TYPE)
        && doc["subject"]["digest"].as_str() == Some(image.to_string().as_str())
}

/// The signed payload layers of the manifest `doc` when it is a cosign
/// signature referrer (else `None`): what `push` adds to the `.sig` tag.
pub fn signature_layers(doc: &Value) -> Option<Vec<Value>> {
    if crate::referrers::artifact_type_of(doc) != Some(ARTIFACT_TYPE) {
        return None;
    }
    let layers = doc["layers"].as_array()?;
    Some(
        layers
            .iter()
            .filter(|l| l["mediaType"].as_str() == Some(simple::PAYLOAD_MEDIA_TYPE))
            .cloned()
            .collect(),
    )
}

/// Sign the image `tag` of the layout at `dir` (or its only image) with
/// `key`, the payload naming `identity` (its `docker-reference`) and
/// carrying `annotations`: a signature referrer is written into the
/// layout, unless one holds this payload signed by this key already.
/// A layout in the Nix store, or read-only, or whose referrers layout is
/// not as nixoci writes it, is refused before anything is written.
pub fn sign(
    dir: &Path,
    tag: Option<&str>,
    key: &PrivateKey,
    identity: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<LayoutSignReport> {
    // The nested layout first: the store's advice would copy it alone.
    nested::check_own_blobs(dir)?;
    nested::check_shape(dir)?;
    crate::layout::check_may_change(dir)?;
    let layout = Layout::open(dir)?;
    let image = layout.select(tag)?;
    let payload = simple::payload(identity, &image.digest, annotations);
    let public = key.public();
    let existing = signature_referrers(&layout, &image.digest)?;
    let report = |referrer: Sha256Digest, action, signatures| LayoutSignReport {
        layout: dir.to_owned(),
        digest: image.digest.clone(),
        format: Format::Simple,
        referrer,
        annotations: annotations.clone(),
        action,
        signatures,
    };
    let count = |sigs: &[(Descriptor, Value)]| {
        sigs.iter()
            .map(|(_, d)| signature_layers(d).map_or(0, |l| l.len()))
            .sum::<usize>()
    };
    for (r, doc) in &existing {
        let layers = signature_layers(doc).unwrap_or_default();
        if layers
            .iter()
            .any(|l| simple::is_signed_by(l, &payload, &public))
        {
            return Ok(report(r.digest.clone(), "unchanged", count(&existing)));
        }
    }
    let signed = simple::sign(payload, key);
    let config = canonical_json(&simple::config(&[signed.layer["digest"].clone()]));
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": ARTIFACT_TYPE,
            "digest": Sha256Digest::of(&config),
            "size": config.len(),
        },
        "layers": [signed.layer],
        "subject": {
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": image.size,
        },
    });
    let desc = crate::referrers::attach_document(dir, &doc, &[&signed.payload, &config])?;
    let now = signature_referrers(&Layout::open(dir)?, &image.digest)?;
    Ok(report(desc.digest, "added", count(&now)))
}

/// The signatures of an image in a layout, not yet checked.
pub struct LayoutSignatures {
    /// The digest of what `LAYOUT[:TAG]` names.
    pub digest: Sha256Digest,
    /// Every signature found.
    pub candidates: Vec<Candidate>,
}

/// Every signature of the image `tag` of the layout at `dir` (or its only
/// image): each payload layer of its signature referrers, with its bytes
/// from the layout (or why there are none).
pub fn signatures(dir: &Path, tag: Option<&str>) -> Result<LayoutSignatures> {
    let layout = Layout::open(dir)?;
    let image = layout.select(tag)?;
    let mut candidates = Vec::new();
    for (r, doc) in signature_referrers(&layout, &image.digest)? {
        for (i, layer) in signature_layers(&doc)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let bytes = layer_bytes(&layout, &layer);
            candidates.push(Candidate::Simple {
                location: format!("{} referrer {} layer {i}", dir.display(), r.digest),
                layer,
                bytes,
            });
        }
    }
    Ok(LayoutSignatures {
        digest: image.digest,
        candidates,
    })
}

/// The bytes of the payload layer `layer` in `layout`, or why there are
/// none (they are checked against its digest by the verdict).
fn layer_bytes(layout: &Layout, layer: &Value) -> std::result::Result<Vec<u8>, String> {
    let digest = layer["digest"]
        .as_str()
        .and_then(Sha256Digest::parse)
        .ok_or("the layer has no sha256 digest")?;
    let size = layer["size"].as_u64().unwrap_or(0);
    if size > MAX_DOCUMENT {
        return Err(format!(
            "the layer is {size} bytes, more than the {MAX_DOCUMENT} a signature payload may have"
        ));
    }
    let path = layout.blobs().path(&digest);
    read_limited(&path, MAX_DOCUMENT).map_err(|e| match e {
        Error::Io { .. } => format!("the layout has no blob {digest}: {e}"),
        e => e.to_string(),
    })
}

/// The digests `push --sign-key` signs of the image `tag` of the layout at
/// `dir`: what it names and, for an index, each manifest it lists.
pub fn signed_at_push(dir: &Path, tag: Option<&str>) -> Result<Vec<Sha256Digest>> {
    let layout = Layout::open(dir)?;
    let root = layout.select(tag)?;
    let mut out = vec![root.digest.clone()];
    if root.media_type.is_index() {
        for m in layout.refs(&root)?.manifests {
            if !out.contains(&m.digest) {
                out.push(m.digest);
            }
        }
    }
    Ok(out)
}
