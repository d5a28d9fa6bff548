//! Signatures in a registry, in cosign's default format
//! ([`crate::sign::simple`]): [`sign`] adds a signed payload layer to the
//! image tagged `sha256-<hex>.sig` in the image's repository (made when
//! missing), [`copy_layers`] adds the layers a layout's signature
//! referrers hold (for `push`), and [`signatures`] fetches every layer of
//! it to be checked, and every sigstore bundle referrer (`super::bundle`
//! writes them).
//!
//! Adding a layer is a read-modify-write of a tag, which the distribution
//! spec cannot do atomically. As the referrers fallback tag is written
//! (`super::referrers::list_under_fallback`): the tag is read back after
//! each write, twice, a wait apart; a tag that lacks the new signature,
//! or a layer seen in it during the run, is merged and written again
//! after a random wait, at most [`SIG_WRITES`] times; a merge of a read
//! older than half the wait is read again first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::client::{RegistryOperation, Remote, RemoteOptions};
use super::report::BlobReport;
use super::runtime::with_runtime;
use super::upload::{push_blobs, Blob};
use crate::error::{Error, IoContext as _, RegistryErrorKind, Result};
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::canonical_json;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;
use crate::sign::bundle;
use crate::sign::found::{Candidate, Format};
use crate::sign::key::{PrivateKey, PublicKey};
use crate::sign::simple;

/// How many times [`sign`] writes the signature tag before it gives up.
const SIG_WRITES: u32 = 10;
/// The shortest wait between writing the signature tag and reading it
/// back; longer when the registry answers slowly (four times its slowest
/// answer), at most [`MAX_SETTLE`].
const MIN_SETTLE: Duration = Duration::from_millis(250);
const MAX_SETTLE: Duration = Duration::from_secs(5);

/// What [`sign`] did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignReport {
    /// The image, as given.
    pub reference: String,
    /// The digest signed: of what the reference names (an index for a
    /// multi-platform image).
    pub digest: Sha256Digest,
    /// The signature format.
    pub format: Format,
    /// The signature image: `REPOSITORY:sha256-<hex>.sig`.
    pub signature: String,
    /// The digest of the signature image's manifest now.
    pub signature_digest: Sha256Digest,
    /// The annotations signed (the payload's `optional`).
    pub annotations: BTreeMap<String, String>,
    /// `added`, or `unchanged` when the signature image held this
    /// payload signed by this key already.
    pub action: &'static str,
    /// How many signatures the signature image holds now.
    pub signatures: usize,
    /// The blobs sent.
    pub blobs: Vec<BlobReport>,
}

/// The image `target` names must exist: its digest.
pub(super) async fn image_digest(remote: &Remote, target: &Reference) -> Result<Sha256Digest> {
    remote.manifest_digest(target).await?.ok_or_else(|| {
        remote.failure(
            RegistryErrorKind::NotFound,
            format!("{target}: no such image in the registry (push it first, then sign it)"),
        )
    })
}

/// The layers of the signature image at `at`, with its manifest digest;
/// `None` when the tag does not exist.
async fn signature_image(
    remote: &Remote,
    at: &Reference,
) -> Result<Option<(Vec<Value>, Sha256Digest)>> {
    if remote.manifest_digest(at).await?.is_none() {
        return Ok(None);
    }
    let (bytes, digest) = remote.manifest_raw(at).await?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{at}: the signature image is not JSON: {e}")))?;
    let layers = doc["layers"].as_array().cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "{at}: this tag holds no signature image (a manifest with layers); nixoci leaves it alone: remove the tag, or sign into another repository"
        ))
    })?;
    Ok(Some((layers, digest)))
}

/// Sign the image `target` names with `key`, in cosign's simple-signing
/// format with `annotations`: its payload layer is added to the signature
/// image (its other layers kept), unless that image holds this payload
/// signed by this key already.
pub fn sign(
    target: &Reference,
    key: &PrivateKey,
    annotations: &BTreeMap<String, String>,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<SignReport> {
    let tmp = crate::layout::Scratch::new("sign")?;
    with_runtime(|rt| {
        rt.block_on(async {
            let remote = Remote::connect(target, opts, RegistryOperation::Push).await?;
            let digest = image_digest(&remote, target).await?;
            let payload = simple::payload(&simple::identity(target), &digest, annotations);
            let public = key.public();
            let signed = simple::sign(payload, key);
            let at = target.with_tag(&simple::signature_tag(&digest));
            let addition = Addition {
                layer: signed.layer.clone(),
                payload: signed.payload.clone(),
                signer: Some(&public),
            };
            let added = add_layers(
                &remote,
                &at,
                &[addition],
                tmp.path(),
                opts,
                progress.clone(),
            )
            .await?;
            Ok(SignReport {
                reference: target.to_string(),
                digest: digest.clone(),
                format: Format::Simple,
                signature: at.to_string(),
                signature_digest: added.digest,
                annotations: annotations.clone(),
                action: added.action,
                signatures: added.layers,
                blobs: added.blobs,
            })
        })
    })
}

/// Add the signed payload layers `layers` (each descriptor with its
/// payload) to the signature image of `subject` in `target`'s repository,
/// as [`sign`] adds one: what `push` does with the cosign signatures a
/// layout holds as referrers (docs/signing.md, "Signing a layout, and
/// signing at push time"), so that cosign finds them where it looks. A layer that is
/// there already (the same payload and signature) is not added again.
/// Returns the signature image's tag.
pub(super) async fn copy_layers(
    remote: &Remote,
    target: &Reference,
    subject: &Sha256Digest,
    layers: Vec<(Value, Vec<u8>)>,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<(Reference, Vec<BlobReport>)> {
    let tmp = crate::layout::Scratch::new("sign")?;
    let at = target.with_tag(&simple::signature_tag(subject));
    let additions: Vec<Addition> = layers
        .into_iter()
        .map(|(layer, payload)| Addition {
            layer,
            payload,
            signer: None,
        })
        .collect();
    let added = add_layers(remote, &at, &additions, tmp.path(), opts, progress).await?;
    Ok((at, added.blobs))
}

/// A signed payload layer to add to a signature image: its descriptor,
/// its payload, and the key that signed it when known.
struct Addition<'a> {
    layer: Value,
    payload: Vec<u8>,
    signer: Option<&'a PublicKey>,
}

impl Addition<'_> {
    /// Whether the layer `l` of a signature image holds this one already:
    /// this payload signed by this key (cosign's signatures differ each
    /// time), or, the key unknown, the same payload and signature.
    fn held_by(&self, l: &Value) -> bool {
        match self.signer {
            Some(key) => simple::is_signed_by(l, &self.payload, key),
            None => {
                l["digest"] == self.layer["digest"]
                    && l["annotations"][simple::SIGNATURE_ANNOTATION]
                        == self.layer["annotations"][simple::SIGNATURE_ANNOTATION]
            }
        }
    }
}

/// What [`add_layers`] did.
struct Added {
    /// The signature image's manifest digest now.
    digest: Sha256Digest,
    /// How many layers it holds now.
    layers: usize,
    /// `added`, or `unchanged` when it held every addition already.
    action: &'static str,
    blobs: Vec<BlobReport>,
}

/// Add `additions` to the signature image at `at` (made when missing),
/// its other layers kept (see the module's documentation for the writes
/// and reads back); `tmp` holds the blobs to send.
async fn add_layers(
    remote: &Remote,
    at: &Reference,
    additions: &[Addition<'_>],
    tmp: &std::path::Path,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<Added> {
    let mut files = Vec::new();
    for (i, a) in additions.iter().enumerate() {
        let path = tmp.join(format!("payload-{i}"));
        std::fs::write(&path, &a.payload).at(&path)?;
        files.push((Sha256Digest::of(&a.payload), a.payload.len() as u64, path));
    }
    // Every layer seen in the tag during this run: one that a client's
    // stale write dropped is written back too.
    let mut seen: Vec<Value> = Vec::new();
    let mut blobs = Vec::new();
    let mut settle = MIN_SETTLE;
    let (mut writes, mut reads, mut confirmed, mut backed_off) = (0u32, 0u32, 0u32, false);
    loop {
        reads += 1;
        let started = Instant::now();
        let existing = signature_image(remote, at).await?;
        let read_at = Instant::now();
        settle = settle.max((read_at - started) * 4).min(MAX_SETTLE);
        let (current, current_digest) = match existing {
            Some((layers, d)) => (layers, Some(d)),
            None => (Vec::new(), None),
        };
        let absent: Vec<&Addition> = additions
            .iter()
            .filter(|a| !current.iter().any(|l| a.held_by(l)))
            .collect();
        if writes == 0 && absent.is_empty() {
            if let Some(digest) = current_digest {
                return Ok(Added {
                    digest,
                    layers: current.len(),
                    action: "unchanged",
                    blobs,
                });
            }
        }
        for l in &current {
            if !seen.contains(l) {
                seen.push(l.clone());
            }
        }
        let exhausted = writes >= SIG_WRITES || reads > 4 * SIG_WRITES;
        let mut missing: Vec<Value> = if exhausted {
            // No more writes: only this run's signatures matter.
            Vec::new()
        } else {
            seen.iter()
                .filter(|l| !current.contains(l))
                .cloned()
                .collect()
        };
        missing.extend(absent.iter().map(|a| a.layer.clone()));
        if missing.is_empty() {
            confirmed += 1;
            if confirmed >= 2 {
                if let Some(digest) = current_digest {
                    return Ok(Added {
                        digest,
                        layers: current.len(),
                        action: "added",
                        blobs,
                    });
                }
            }
            tokio::time::sleep(settle).await;
            continue;
        }
        confirmed = 0;
        if exhausted {
            return Err(Error::Invalid(format!(
                "{at}: other clients replaced the signature image each of the {writes} times nixoci wrote it (a tag cannot be updated atomically); run the command again (a signature that is there already is not added twice)"
            )));
        }
        // After a lost write: wait a random while, then merge a fresh read.
        if writes > 0 && !backed_off {
            backed_off = true;
            tokio::time::sleep(super::referrers::jitter(settle * (1 << writes.min(4)))).await;
            continue;
        }
        let mut layers = current;
        layers.extend(missing);
        let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
        let config = canonical_json(&simple::config(&diff_ids));
        let config_file = tmp.join("config");
        std::fs::write(&config_file, &config).at(&config_file)?;
        let mut send: Vec<Blob> = files
            .iter()
            .map(|(digest, size, path)| Blob {
                digest: digest.clone(),
                size: *size,
                path: path.clone(),
            })
            .collect();
        send.push(Blob {
            digest: Sha256Digest::of(&config),
            size: config.len() as u64,
            path: config_file,
        });
        blobs.extend(push_blobs(remote, at, &send, opts, progress.clone()).await?);
        // A merge of a read this old may drop what others wrote since:
        // read again (the blobs are there now).
        if read_at.elapsed() > settle / 2 {
            settle = settle.max(read_at.elapsed() * 4).min(MAX_SETTLE);
            continue;
        }
        backed_off = false;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MediaType::MANIFEST,
            "config": {
                "mediaType": MediaType::CONFIG,
                "digest": Sha256Digest::of(&config),
                "size": config.len(),
            },
            "layers": layers,
        });
        remote
            .put_manifest(at, &canonical_json(&manifest), &MediaType::MANIFEST)
            .await?;
        writes += 1;
        tokio::time::sleep(settle).await;
    }
}

/// The signatures of an image in a registry, fetched, not yet checked.
pub struct Signatures {
    /// The digest of what the reference names.
    pub digest: Sha256Digest,
    /// The signature image looked at (`REPOSITORY:sha256-<hex>.sig`).
    pub signature: String,
    /// Every signature found.
    pub candidates: Vec<Candidate>,
}

/// Every signature of the image `target` names: each layer of its
/// signature image, then each sigstore bundle referrer
/// ([`bundles_found`]), with the bytes the registry sends for it (a layer
/// larger than [`crate::oci::json::MAX_DOCUMENT`], or one the registry
/// does not have, comes with the reason instead).
pub fn signatures(target: &Reference, opts: &RemoteOptions) -> Result<Signatures> {
    with_runtime(|rt| {
        rt.block_on(async {
            let remote = Remote::connect(target, opts, RegistryOperation::Pull).await?;
            let digest = image_digest(&remote, target).await?;
            let at = target.with_tag(&simple::signature_tag(&digest));
            let layers = match signature_image(&remote, &at).await? {
                Some((layers, _)) => layers,
                None => Vec::new(),
            };
            let mut candidates = Vec::new();
            for (i, layer) in layers.into_iter().enumerate() {
                let bytes = layer_bytes(&remote, &at, &layer).await?;
                candidates.push(Candidate::Simple {
                    location: format!("{at} layer {i}"),
                    layer,
                    bytes,
                });
            }
            candidates.extend(bundles_found(&remote, target, &digest).await?);
            Ok(Signatures {
                digest,
                signature: at.to_string(),
                candidates,
            })
        })
    })
}

/// The bytes of the payload layer (or bundle layer) `layer` of `at`, or
/// why there are none.
pub(super) async fn layer_bytes(
    remote: &Remote,
    at: &Reference,
    layer: &Value,
) -> Result<std::result::Result<Vec<u8>, String>> {
    let Some(digest) = layer["digest"].as_str().and_then(Sha256Digest::parse) else {
        return Ok(Err("the layer has no sha256 digest".into()));
    };
    let size = layer["size"].as_u64().unwrap_or(0);
    let max = crate::oci::json::MAX_DOCUMENT;
    if size > max {
        return Ok(Err(format!(
            "the layer is {size} bytes, more than the {max} a signature payload may have"
        )));
    }
    let fetched = remote
        .retry(|| async {
            let mut buf = Vec::new();
            remote
                .get_blob(at, &digest, size, |chunk| {
                    buf.extend_from_slice(&chunk);
                    std::future::ready(Ok(()))
                })
                .await?;
            Ok::<_, super::errors::Failure>(buf)
        })
        .await
        .map_err(|e| remote.explain(e));
    match fetched {
        Ok(b) => Ok(Ok(b)),
        Err(e) if e.registry_kind() == Some(&RegistryErrorKind::NotFound) => {
            Ok(Err(format!("the registry has no blob {digest}: {e}")))
        }
        // More bytes than the descriptor says: altered.
        Err(e @ Error::DigestMismatch { .. }) => Ok(Err(format!(
            "the layer's bytes were altered: {}",
            e.chain()
        ))),
        Err(e) => Err(e),
    }
}

/// The referrers of `digest` whose artifact type is a sigstore bundle's.
pub(super) async fn bundle_referrers(
    remote: &Remote,
    target: &Reference,
    digest: &Sha256Digest,
) -> Result<Vec<Descriptor>> {
    let (_, mut manifests) = super::referrers::of_subject(remote, target, digest).await?;
    manifests.retain(|d| {
        d.artifact_type
            .as_deref()
            .is_some_and(bundle::is_bundle_type)
    });
    Ok(manifests)
}

/// Every sigstore bundle referrer of the image `digest` (in the
/// repository of `target`): each one's bundle layer with the bytes the
/// registry sends for it, or why there is none to check (a referrer that
/// is not one bundle layer).
async fn bundles_found(
    remote: &Remote,
    target: &Reference,
    digest: &Sha256Digest,
) -> Result<Vec<Candidate>> {
    let mut candidates = Vec::new();
    for d in bundle_referrers(remote, target, digest).await? {
        let at = target.with_digest(&d.digest);
        let location = format!("{at} (referrer)");
        // A listed referrer the registry does not have is reported, not
        // fatal: the other signatures are still checked.
        let bytes = match remote.manifest_raw(&at).await {
            Ok((bytes, _)) => bytes,
            Err(e) if e.registry_kind() == Some(&RegistryErrorKind::NotFound) => {
                candidates.push(Candidate::Bundle {
                    location,
                    layer: Value::Null,
                    bytes: Err(format!("the registry has no such manifest: {e}")),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let layers = doc["layers"].as_array().cloned().unwrap_or_default();
        let layer = match layers.as_slice() {
            [one]
                if one["mediaType"]
                    .as_str()
                    .is_some_and(bundle::is_bundle_type) =>
            {
                one.clone()
            }
            _ => {
                candidates.push(Candidate::Bundle {
                    location,
                    layer: Value::Null,
                    bytes: Err(format!(
                        "the referrer has {} layers; a bundle referrer has one, of media type {}",
                        layers.len(),
                        bundle::MEDIA_TYPE
                    )),
                });
                continue;
            }
        };
        let bytes = layer_bytes(remote, &at, &layer).await?;
        candidates.push(Candidate::Bundle {
            location,
            layer,
            bytes,
        });
    }
    Ok(candidates)
}
