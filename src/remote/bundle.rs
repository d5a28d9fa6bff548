//! Signatures in a registry in the sigstore bundle format
//! ([`crate::sign::bundle`]), as cosign 3 attaches them: [`sign`] pushes a
//! referrer of the image whose one layer is the bundle, listed as the
//! registry lists referrers (its referrers API, or the fallback tag
//! `sha256-<hex>` on a registry without one, such as registry 2.8), with
//! the machinery `nixoci attach` uses ([`super::referrers`]).
//! `verify-signature` gathers them with the `.sig` image's layers
//! (`super::signature::signatures`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::client::{RegistryOperation, Remote, RemoteOptions};
use super::runtime::with_runtime;
use super::signature::{bundle_referrers, image_digest, SignReport};
use super::upload::{push_blobs, Blob};
use crate::error::{Error, IoContext as _, Result};
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::canonical_json;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;
use crate::sign::bundle;
use crate::sign::found::Format;
use crate::sign::key::PrivateKey;

/// Sign the image `target` names with `key` in the sigstore bundle format,
/// with `annotations` in the statement: a referrer of the image holding
/// the bundle, pushed by digest and listed. The same key and annotations
/// make the same referrer (ECDSA here is deterministic, RFC 6979, and no
/// clock is read): one that is there and listed already is not written
/// again (`unchanged`); another key or other annotations add a referrer.
pub fn sign(
    target: &Reference,
    key: &PrivateKey,
    annotations: &BTreeMap<String, String>,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<SignReport> {
    let tmp = crate::layout::Scratch::new("sign-bundle")?;
    with_runtime(|rt| {
        rt.block_on(async {
            let remote = Remote::connect(target, opts, RegistryOperation::Push).await?;
            let digest = image_digest(&remote, target).await?;
            let (image, _) = remote.manifest_raw(&target.with_digest(&digest)).await?;
            let doc: Value = serde_json::from_slice(&image)
                .map_err(|e| Error::Invalid(format!("{target}: the manifest is not JSON: {e}")))?;
            let subject = json!({
                "mediaType": super::api::media_type_of(&doc),
                "digest": digest,
                "size": image.len(),
            });
            let signed = bundle::sign(bundle::statement(&digest, annotations), key)?;
            let manifest = canonical_json(&bundle::manifest(&signed, subject));
            let referrer = Sha256Digest::of(&manifest);
            let bundle_file = tmp.path().join("bundle.json");
            std::fs::write(&bundle_file, &signed).at(&bundle_file)?;
            let empty_file = tmp.path().join("empty.json");
            std::fs::write(&empty_file, b"{}").at(&empty_file)?;
            let at = target.with_digest(&referrer);
            let listed_before = super::referrers::of_subject(&remote, target, &digest)
                .await?
                .1
                .iter()
                .any(|d| d.digest == referrer);
            let there = remote.manifest_digest(&at).await?.as_ref() == Some(&referrer);
            let mut blobs = Vec::new();
            let action = if there && listed_before {
                "unchanged"
            } else {
                let files = [
                    Blob {
                        digest: Sha256Digest::of(&signed),
                        size: signed.len() as u64,
                        path: bundle_file,
                    },
                    Blob {
                        digest: Sha256Digest::of(b"{}"),
                        size: 2,
                        path: empty_file,
                    },
                ];
                blobs = push_blobs(&remote, target, &files, opts, progress).await?;
                let (_, said_so) = remote
                    .put_manifest_answer(&at, &manifest, &MediaType::MANIFEST)
                    .await?;
                if !super::referrers::keeps(&remote, target, &digest, said_so).await? {
                    let desc = Descriptor {
                        media_type: MediaType::MANIFEST,
                        digest: referrer.clone(),
                        size: manifest.len() as u64,
                        platform: None,
                        annotations: BTreeMap::from([
                            (
                                bundle::CONTENT_ANNOTATION.to_owned(),
                                "dsse-envelope".to_owned(),
                            ),
                            (
                                bundle::PREDICATE_ANNOTATION.to_owned(),
                                bundle::PREDICATE_TYPE.to_owned(),
                            ),
                        ]),
                        artifact_type: Some(bundle::MEDIA_TYPE.to_owned()),
                    };
                    let entry = crate::referrers::listing_entry(&desc, &manifest);
                    super::referrers::list_under_fallback(&remote, target, &digest, &[entry])
                        .await?;
                }
                "added"
            };
            let count = bundle_referrers(&remote, target, &digest).await?.len();
            Ok(SignReport {
                reference: target.to_string(),
                digest: digest.clone(),
                format: Format::Bundle,
                signature: at.to_string(),
                signature_digest: referrer,
                annotations: annotations.clone(),
                action,
                signatures: count,
                blobs,
            })
        })
    })
}
