//! Sending blobs to a registry for `push`: the ones the repository has
//! are skipped (HEAD), the ones another repository of the registry holds
//! are mounted (the repositories given, then those [`super::mounts`]
//! remembers), the rest uploaded, in parallel, with retries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;

use super::client::{oci_ref, Remote, RemoteOptions, DEFAULT_CHUNKED_ABOVE};
use super::mounts::load_locations;
use super::report::{BlobAction, BlobReport};
use crate::error::{Content, Error, Result};
use crate::layout::Layout;
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::Sha256Digest;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;

/// A blob to push: a file of the local layout.
#[derive(Clone)]
pub(super) struct Blob {
    pub(super) digest: Sha256Digest,
    pub(super) size: u64,
    pub(super) path: PathBuf,
}

/// A document (manifest or index) to push, with its bytes.
pub(super) struct Doc {
    pub(super) digest: Sha256Digest,
    pub(super) media_type: MediaType,
    pub(super) bytes: Vec<u8>,
}

/// Everything under `root`: documents children first, then unique blobs
/// (in digest order), each a file of its descriptor's size.
pub(super) fn collect(layout: &Layout, root: &Descriptor) -> Result<(Vec<Doc>, Vec<Blob>)> {
    let graph = layout.graph(root)?;
    // A config is a document: one `pull` (and `verify`) would refuse is
    // not sent.
    let max = crate::oci::json::MAX_DOCUMENT;
    for d in &graph.documents {
        if let Some(c) = d.refs.config.as_ref().filter(|c| c.size > max) {
            return Err(Error::Invalid(format!(
                "{}: the config {} of manifest {} is {} bytes, more than {} ({max} bytes), the most nixoci pull and verify read; refused before sending anything",
                layout.dir().display(),
                c.digest,
                d.descriptor.digest,
                c.size,
                super::errors::limit_text(max)
            )));
        }
    }
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

/// Every blob the repository lacks, mounted or uploaded: HEADs first, in
/// parallel; then mounts and uploads, in parallel.
pub(super) async fn push_blobs(
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
    // A file read: block_in_place lets the runtime move its other tasks
    // off this thread meanwhile.
    let locations = tokio::task::block_in_place(|| load_locations(opts.blob_cache.as_deref()));
    let known = locations.get(&target.registry).cloned().unwrap_or_default();
    let sent: Vec<BlobReport> = futures_util::stream::iter(missing)
        .map(|b| {
            let dest = &dest;
            let progress = progress.clone();
            let candidates = mount_candidates(opts, &known, target, &b);
            async move { push_blob(remote, dest, target, &b, &candidates, progress).await }
        })
        .buffer_unordered(opts.jobs.max(1))
        .try_collect()
        .await?;
    results.extend(sent);
    Ok(results)
}

/// The repositories to try to mount `b` from, in order: those the
/// command line gives, then those `known` (the blob-location cache of the
/// registry) says hold it; never the target's own.
fn mount_candidates(
    opts: &RemoteOptions,
    known: &BTreeMap<String, BTreeSet<String>>,
    target: &Reference,
    b: &Blob,
) -> Vec<String> {
    opts.mount_from
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
        .collect()
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
    if mount_blob(remote, dest, target, b, mount_candidates).await {
        progress.blob_done(&b.digest.to_string(), BlobAction::Mounted.as_str());
        return Ok(report(BlobAction::Mounted));
    }
    progress.blob_start(&b.digest.to_string(), b.size);
    if let Some((digest, size)) = upload_blob(remote, dest, b, &progress).await? {
        if digest != b.digest.to_string() || size != b.size {
            return Err(Error::DigestMismatch {
                context: format!(
                    "blob {} sent from {} (the file changed while it was sent: run `nixoci verify`)",
                    b.digest,
                    b.path.display()
                ),
                expected: Content::Blob(b.digest.clone(), b.size),
                found: match Sha256Digest::parse(&digest) {
                    Some(d) => Content::Blob(d, size),
                    None => Content::Size(size),
                },
            });
        }
    }
    progress.blob_done(&b.digest.to_string(), BlobAction::Uploaded.as_str());
    Ok(report(BlobAction::Uploaded))
}

/// Whether `b` could be mounted at `dest` from one of `candidates`, tried
/// in order: a mount counts when a HEAD then finds the blob.
async fn mount_blob(
    remote: &Remote,
    dest: &oci_client::Reference,
    target: &Reference,
    b: &Blob,
    candidates: &[String],
) -> bool {
    for repo in candidates {
        let from = oci_ref(&target.in_repository(repo));
        if remote
            .client
            .mount_blob(dest, &from, &b.digest.to_string())
            .await
            .is_ok()
            && remote.blob_exists(target, &b.digest).await.unwrap_or(false)
        {
            return true;
        }
    }
    false
}

/// Upload the file of `b` to `dest`, with retries: in chunks above
/// [`RemoteOptions::chunked_above`], else in one streamed request whose
/// digest the registry checks. For a chunked upload, the digest and size
/// the client computed while sending. A failed try takes back the
/// progress it reported: a retry sends (and reports) the blob again.
async fn upload_blob(
    remote: &Remote,
    dest: &oci_client::Reference,
    b: &Blob,
    progress: &Arc<dyn Progress + Send>,
) -> Result<Option<(String, u64)>> {
    remote
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
            let reported = Arc::new(AtomicU64::new(0));
            let rewind = (progress.clone(), digest.clone(), reported.clone());
            let attempt = async move {
                let file = tokio::fs::File::open(&path).await?;
                let stream = tokio_util::io::ReaderStream::with_capacity(
                    tokio::io::AsyncReadExt::take(file, size),
                    1 << 20,
                )
                .map_ok(move |chunk| {
                    reported.fetch_add(chunk.len() as u64, Ordering::Relaxed);
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
            };
            async move {
                let done = attempt.await;
                if done.is_err() {
                    let (progress, digest, reported) = rewind;
                    progress.blob_rewind(&digest, reported.load(Ordering::Relaxed));
                }
                done
            }
        })
        .await
        .map_err(|e| {
            let what = format!("blob {} ({} bytes, {})", b.digest, b.size, b.path.display());
            remote.explain_about(&what, e)
        })
}
