//! `tag`, `exists` and `inspect` of a registry reference: questions about
//! (and a new name for) a manifest, moving no blob.

use super::client::RegistryOperation;
use serde_json::Value;

use super::api::{fetch_graph, media_type_of};
use super::client::{Remote, RemoteOptions};
use super::errors::limit_text;
use super::runtime::with_runtime;
use crate::error::{Content, Error, Result};
use crate::oci::descriptor::*;
use crate::oci::digest::Sha256Digest;
use crate::oci::reference::Reference;

/// Give the manifest `source` names the tag `new_tag` in the same
/// repository, moving no blob. A tag that names that digest already is
/// left alone (asked with a HEAD), as a re-push leaves it: nothing is
/// written. Returns the digest, and whether the tag was written.
pub fn tag(
    source: &Reference,
    new_tag: &str,
    opts: &RemoteOptions,
) -> Result<(Sha256Digest, bool)> {
    crate::oci::reference::validate_tag(new_tag)?;
    with_runtime(|rt| {
        rt.block_on(async {
            let remote = Remote::connect(source, opts, RegistryOperation::Push).await?;
            let (bytes, digest, _, media_type) = fetch_root(&remote, source).await?;
            let at = source.with_tag(new_tag);
            if remote.manifest_digest(&at).await?.as_ref() == Some(&digest) {
                return Ok((digest, false));
            }
            remote.put_manifest(&at, &bytes, &media_type).await?;
            Ok((digest, true))
        })
    })
}

/// The document `r` names: its bytes, digest, JSON and media type.
async fn fetch_root(
    remote: &Remote,
    r: &Reference,
) -> Result<(Vec<u8>, Sha256Digest, Value, crate::oci::MediaType)> {
    let (bytes, digest) = remote.manifest_raw(r).await?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{r}: the manifest is not JSON: {e}")))?;
    let media_type = media_type_of(&doc);
    Ok((bytes, digest, doc, media_type))
}

/// What [`resolve`] found a reference to name.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The image manifest for the platform, or the index when no
    /// platform was asked for.
    pub digest: Sha256Digest,
    /// Whether the reference named an index.
    pub was_index: bool,
}

/// The digest of what `r` names: for an index and a `platform`, of that
/// platform's image manifest (nested indexes searched as `pull` searches
/// them); otherwise of the document itself.
pub fn resolve(
    r: &Reference,
    platform: Option<&Platform>,
    opts: &RemoteOptions,
) -> Result<Resolved> {
    with_runtime(|rt| {
        rt.block_on(async {
            let remote = Remote::connect(r, opts, RegistryOperation::Pull).await?;
            let (_, digest, doc, media_type) = fetch_root(&remote, r).await?;
            if !media_type.is_index() {
                return Ok(Resolved {
                    digest,
                    was_index: false,
                });
            }
            let Some(p) = platform else {
                return Ok(Resolved {
                    digest,
                    was_index: true,
                });
            };
            let children: Vec<Descriptor> = serde_json::from_value(doc["manifests"].clone())
                .map_err(|e| Error::Invalid(format!("{r}: invalid image index: {e}")))?;
            let chosen = super::pull::find_platform(&remote, r, children, p).await?;
            Ok(Resolved {
                digest: chosen.digest,
                was_index: true,
            })
        })
    })
}

/// Whether `r` names a manifest: `Ok(Some(digest))`, `Ok(None)` when the
/// registry says it does not exist.
pub fn exists(r: &Reference, opts: &RemoteOptions) -> Result<Option<Sha256Digest>> {
    with_runtime(|rt| {
        rt.block_on(async {
            let remote = Remote::connect(r, opts, RegistryOperation::Pull).await?;
            remote.manifest_digest(r).await
        })
    })
}

/// What `r` names: its digest, platforms, layers and config, as
/// [`crate::inspect::Tagged`].
pub fn inspect(r: &Reference, opts: &RemoteOptions) -> Result<crate::inspect::Tagged> {
    with_runtime(|rt| {
        rt.block_on(async {
            let remote = Remote::connect(r, opts, RegistryOperation::Pull).await?;
            let (_, digest, doc, media_type) = fetch_root(&remote, r).await?;
            let mut images = Vec::new();
            for (platform, manifest, m) in image_manifests(&remote, r, &digest, doc).await? {
                let refs: Refs = serde_json::from_value(m)
                    .map_err(|e| Error::Invalid(format!("{r}: invalid manifest: {e}")))?;
                let Some(config_desc) = refs.config else {
                    continue;
                };
                let config = fetch_config(&remote, r, &config_desc).await?;
                images.push(crate::inspect::summary(
                    platform,
                    manifest,
                    config_desc.digest.clone(),
                    &config,
                    refs.layers,
                ));
            }
            Ok(crate::inspect::Tagged {
                tag: r.tag.clone(),
                tags: r.tag.clone().into_iter().collect(),
                media_type,
                digest,
                images,
            })
        })
    })
}

/// The image manifests of `doc` (the document `r` names, of `digest`):
/// `doc` itself, or every manifest under an index, nested indexes
/// walked, each with the platform its index gives it.
async fn image_manifests(
    remote: &Remote,
    r: &Reference,
    digest: &Sha256Digest,
    doc: Value,
) -> Result<Vec<(Option<Platform>, Sha256Digest, Value)>> {
    if !media_type_of(&doc).is_index() {
        return Ok(vec![(None, digest.clone(), doc)]);
    }
    let children: Vec<Descriptor> = serde_json::from_value(doc["manifests"].clone())
        .map_err(|e| Error::Invalid(format!("{r}: invalid image index: {e}")))?;
    Ok(fetch_graph(remote, r, children)
        .await?
        .into_iter()
        .filter(|node| !node.is_index)
        .map(|node| (node.descriptor.platform, node.digest, node.doc))
        .collect())
}

/// The config `config_desc` of an image of `r`, fetched (bounded as
/// `verify` bounds a document) and checked against its digest; JSON null
/// when it is not JSON.
async fn fetch_config(remote: &Remote, r: &Reference, config_desc: &Descriptor) -> Result<Value> {
    let max = crate::oci::json::MAX_DOCUMENT;
    if config_desc.size > max {
        return Err(Error::Invalid(format!(
            "{r}: the config is {} bytes, more than {} ({max} bytes), the most nixoci reads (as `verify` does)",
            config_desc.size,
            limit_text(max)
        )));
    }
    let config_bytes = remote
        .retry(|| async {
            let mut v: Vec<u8> = Vec::new();
            remote
                .get_blob(r, &config_desc.digest, config_desc.size, |c| {
                    v.extend_from_slice(&c);
                    std::future::ready(Ok(()))
                })
                .await
                .map(|_| v)
        })
        .await
        .map_err(|e| {
            remote
                .explain(e)
                .within(format!("config of {r}, {} bytes", config_desc.size))
        })?;
    if Sha256Digest::of(&config_bytes) != config_desc.digest {
        return Err(Error::DigestMismatch {
            context: format!("config of {r}"),
            expected: Content::Digest(config_desc.digest.clone()),
            found: Content::Digest(Sha256Digest::of(&config_bytes)),
        });
    }
    Ok(serde_json::from_slice(&config_bytes).unwrap_or(Value::Null))
}
