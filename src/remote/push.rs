//! `push`: an image of a local layout to a registry. Tags that already
//! name the image are left alone (a re-push writes nothing); blobs the
//! registry has are skipped (HEAD), blobs other repositories of the registry
//! hold are mounted ([`super::mounts`]), the rest uploaded in parallel; the
//! manifest (or index) goes last, so a registry never names an image whose
//! blobs it lacks.
//!
//! [`collect`] reads the local layout (it is not network code).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_client::RegistryOperation;
use serde::Serialize;

use super::client::{oci_ref, runtime, Remote, RemoteOptions, DEFAULT_CHUNKED_ABOVE};
use super::mounts::{load_locations, remember};
use super::{BlobAction, BlobReport};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::oci::descriptor::*;
use crate::oci::digest::Sha256Digest;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;

/// What `push` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    pub reference: String,
    /// Digest of the manifest or index the reference now names.
    pub digest: Sha256Digest,
    pub media_type: MediaType,
    pub blobs: Vec<BlobReport>,
    pub uploaded: usize,
    pub skipped: usize,
    pub mounted: usize,
    pub bytes_sent: u64,
    /// Manifests and indexes written.
    pub manifests: usize,
    /// True when the registry already named the image under every tag:
    /// nothing was written.
    pub up_to_date: bool,
    /// What happened to each tag.
    pub tags: Vec<TagReport>,
}

/// What a push did to one tag.
#[derive(Clone, Debug, Serialize)]
pub struct TagReport {
    pub tag: String,
    /// `set`, or `unchanged` (it already named the image: nothing sent).
    pub action: &'static str,
}

/// A document (manifest or index) to push, with its bytes.
struct Doc {
    digest: Sha256Digest,
    media_type: MediaType,
    bytes: Vec<u8>,
}

/// A blob to push.
#[derive(Clone)]
struct Blob {
    digest: Sha256Digest,
    size: u64,
    path: PathBuf,
}

/// Everything under `root`: documents children first, then unique blobs
/// (in digest order), each a file of its descriptor's size.
fn collect(layout: &Layout, root: &Descriptor) -> Result<(Vec<Doc>, Vec<Blob>)> {
    let graph = layout.graph(root)?;
    let mut blobs = graph
        .blobs
        .iter()
        .map(|d| {
            Ok(Blob {
                digest: d.digest.clone(),
                size: d.size,
                path: layout.blob_file(d)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    let docs = graph
        .documents
        .into_iter()
        .map(|d| Doc {
            digest: d.descriptor.digest,
            media_type: d.descriptor.media_type,
            bytes: d.bytes,
        })
        .collect();
    Ok((docs, blobs))
}

/// Push the image `tag` of `layout` (or its only image) to `target`.
///
/// First, for each tag to set, the registry is asked what the tag names
/// (HEAD); a tag that names the local digest already is left alone, and
/// when every tag is, nothing at all is written. Otherwise blobs go first
/// (skipped when present, mounted when another repository of the registry
/// has them, else uploaded), then child manifests, then the top manifest
/// or index under each tag still to set. When the repository already holds
/// the image by digest, only the tags are written.
pub fn push(
    layout: &Path,
    tag: Option<&str>,
    target: &Reference,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<PushReport> {
    let reader = Layout::open(layout)?;
    let root = reader.select(tag)?;
    if let Some(d) = &target.digest {
        if *d != root.digest {
            return Err(Error::Invalid(format!(
                "{target} names digest {d}, but the image in {} is {}",
                layout.display(),
                root.digest
            )));
        }
    }
    let (docs, blobs) = collect(&reader, &root)?;
    // The tags to set, each with the digest it is to name: the target's tag
    // (a reference with a tag and a digest names the tag; the digest was
    // checked above); with neither, every name the layout gives the image
    // or, through platform tags, one of its manifests.
    let tags: Vec<(String, Sha256Digest)> = match (&target.tag, &target.digest) {
        (Some(t), _) => vec![(t.clone(), root.digest.clone())],
        (None, Some(_)) => Vec::new(),
        (None, None) => {
            let mut named: Vec<(String, Sha256Digest)> = Vec::new();
            for n in reader.names()? {
                if docs.iter().any(|d| d.digest == n.descriptor.digest)
                    && !named.iter().any(|(t, _)| *t == n.name)
                {
                    named.push((n.name, n.descriptor.digest));
                }
            }
            if named.is_empty() {
                named.push(("latest".to_owned(), root.digest.clone()));
            }
            named
        }
    };
    runtime()?.block_on(async {
        let remote = Remote::connect(target, opts, RegistryOperation::Push).await?;
        let mut tag_reports = Vec::new();
        let mut stale = Vec::new();
        for (t, digest) in &tags {
            let now = remote.manifest_digest(&target.with_tag(t)).await?;
            if now.as_ref() == Some(digest) {
                tag_reports.push(TagReport {
                    tag: t.clone(),
                    action: "unchanged",
                });
            } else {
                stale.push((t.clone(), digest.clone()));
            }
        }
        let by_digest = target.with_digest(&root.digest);
        let have_root = if tags.is_empty() || !stale.is_empty() {
            remote.manifest_digest(&by_digest).await?.as_ref() == Some(&root.digest)
        } else {
            true
        };
        let report = |results: Vec<BlobReport>, manifests: usize, tag_reports: Vec<TagReport>| {
            let count = |a: BlobAction| results.iter().filter(|r| r.action == a).count();
            PushReport {
                reference: target.to_string(),
                digest: root.digest.clone(),
                media_type: root.media_type.clone(),
                up_to_date: manifests == 0
                    && count(BlobAction::Uploaded) == 0
                    && count(BlobAction::Mounted) == 0,
                tags: tag_reports,
                uploaded: count(BlobAction::Uploaded),
                skipped: count(BlobAction::Skipped),
                mounted: count(BlobAction::Mounted),
                bytes_sent: results
                    .iter()
                    .filter(|r| r.action == BlobAction::Uploaded)
                    .map(|r| r.size)
                    .sum(),
                manifests,
                blobs: results,
            }
        };
        if stale.is_empty() && have_root {
            return Ok(report(Vec::new(), 0, tag_reports));
        }

        let mut results = Vec::new();
        let mut manifests = 0;
        if !have_root {
            results = push_blobs(&remote, target, &blobs, opts, progress).await?;
            for doc in docs.iter().filter(|d| d.digest != root.digest) {
                remote
                    .put_manifest(
                        &target.with_digest(&doc.digest),
                        &doc.bytes,
                        &doc.media_type,
                    )
                    .await?;
                manifests += 1;
            }
        }
        let doc_of = |digest: &Sha256Digest| {
            docs.iter().find(|d| d.digest == *digest).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: manifest {digest} is missing",
                    layout.display()
                ))
            })
        };
        let places: Vec<(Reference, &Doc)> = if tags.is_empty() {
            vec![(by_digest.clone(), doc_of(&root.digest)?)]
        } else {
            stale
                .iter()
                .map(|(t, d)| Ok((target.with_tag(t), doc_of(d)?)))
                .collect::<Result<_>>()?
        };
        for (at, doc) in &places {
            let stored = remote.put_manifest(at, &doc.bytes, &doc.media_type).await?;
            manifests += 1;
            // What the tag now names, as the registry says (its answer to
            // the PUT, or a HEAD when it gave none).
            let now = match stored.as_deref().and_then(Sha256Digest::parse) {
                Some(d) => Some(d),
                None => remote.manifest_digest(at).await?,
            };
            if now.as_ref() != Some(&doc.digest) {
                return Err(Error::DigestMismatch {
                    context: format!("{at} after the push"),
                    expected: doc.digest.to_string(),
                    found: now.map_or_else(|| "nothing".into(), |d| d.to_string()),
                });
            }
            if let Some(t) = &at.tag {
                tag_reports.push(TagReport {
                    tag: t.clone(),
                    action: "set",
                });
            }
        }
        remember(
            opts.blob_cache.as_deref(),
            &target.registry,
            &target.repository,
            blobs.iter().map(|b| b.digest.clone()),
        );
        Ok(report(results, manifests, tag_reports))
    })
}

/// Every blob the repository lacks, mounted or uploaded: HEADs first, in
/// parallel; then mounts and uploads, in parallel.
async fn push_blobs(
    remote: &Remote,
    target: &Reference,
    blobs: &[Blob],
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<Vec<BlobReport>> {
    let present: Vec<bool> = futures_util::stream::iter(blobs)
        .map(|b| remote.blob_exists(target, &b.digest))
        .buffered(opts.jobs.max(1))
        .try_collect()
        .await?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for (b, here) in blobs.iter().zip(present) {
        if here {
            progress.blob_done(&b.digest.to_string(), BlobAction::Skipped.as_str());
            results.push(BlobReport {
                digest: b.digest.clone(),
                size: b.size,
                action: BlobAction::Skipped,
            });
        } else {
            missing.push(b.clone());
        }
    }
    if missing.is_empty() {
        return Ok(results);
    }
    remote.prime(target).await?;
    let dest = oci_ref(target);
    let locations = load_locations(opts.blob_cache.as_deref());
    let known = locations.get(&target.registry).cloned().unwrap_or_default();
    let sent: Vec<BlobReport> = futures_util::stream::iter(missing)
        .map(|b| {
            let dest = &dest;
            let progress = progress.clone();
            let candidates: Vec<String> = opts
                .mount_from
                .iter()
                .cloned()
                .chain(
                    known
                        .get(&b.digest.to_string())
                        .into_iter()
                        .flatten()
                        .cloned(),
                )
                .filter(|repo| *repo != target.repository)
                .collect();
            async move { push_blob(remote, dest, target, &b, &candidates, progress).await }
        })
        .buffer_unordered(opts.jobs.max(1))
        .try_collect()
        .await?;
    results.extend(sent);
    Ok(results)
}

/// Mount `b` from one of `mount_candidates`, else upload it.
async fn push_blob(
    remote: &Remote,
    dest: &oci_client::Reference,
    target: &Reference,
    b: &Blob,
    mount_candidates: &[String],
    progress: Arc<dyn Progress + Send>,
) -> Result<BlobReport> {
    let report = |action| BlobReport {
        digest: b.digest.clone(),
        size: b.size,
        action,
    };
    for repo in mount_candidates {
        let from = oci_ref(&target.in_repository(repo));
        if remote
            .client
            .mount_blob(dest, &from, &b.digest.to_string())
            .await
            .is_ok()
            && remote.blob_exists(target, &b.digest).await.unwrap_or(false)
        {
            progress.blob_done(&b.digest.to_string(), BlobAction::Mounted.as_str());
            return Ok(report(BlobAction::Mounted));
        }
    }
    progress.blob_start(&b.digest.to_string(), b.size);
    let pushed = remote
        .retry(|| {
            let path = b.path.clone();
            let size = b.size;
            let digest = b.digest.to_string();
            let progress = progress.clone();
            let digest_for_commit = b.digest.to_string();
            let chunked_above = if remote.opts.chunked_above == 0 {
                DEFAULT_CHUNKED_ABOVE
            } else {
                remote.opts.chunked_above
            };
            async move {
                let file = tokio::fs::File::open(&path).await?;
                let stream = tokio_util::io::ReaderStream::with_capacity(
                    tokio::io::AsyncReadExt::take(file, size),
                    1 << 20,
                )
                .map_ok(move |chunk| {
                    progress.blob_advance(&digest, chunk.len() as u64);
                    chunk
                })
                .map_err(OciDistributionError::IoError);
                if size > chunked_above {
                    let pushed = remote.client.push_blob_stream_chunked(dest, stream).await?;
                    Ok(Some((pushed.blob_digest, pushed.size)))
                } else {
                    // The registry checks the digest it is given on commit.
                    remote
                        .client
                        .push_blob_stream(dest, stream, &digest_for_commit, Some(size))
                        .await?;
                    Ok::<_, OciDistributionError>(None)
                }
            }
        })
        .await
        .map_err(|e| remote.explain(e))?;
    if let Some((digest, size)) = pushed {
        if digest != b.digest.to_string() || size != b.size {
            return Err(Error::DigestMismatch {
                context: format!("blob {} sent from {}", b.digest, b.path.display()),
                expected: format!("{} ({} bytes)", b.digest, b.size),
                found: format!("{digest} ({size} bytes); the file changed, run `nixoci verify`"),
            });
        }
    }
    progress.blob_done(&b.digest.to_string(), BlobAction::Uploaded.as_str());
    Ok(report(BlobAction::Uploaded))
}
