//! Sending blobs to a registry for `push`: the ones the repository has
//! are skipped (HEAD), the ones another repository of the registry holds
//! are mounted (the repositories given, then those [`super::mounts`]
//! remembers), the rest uploaded, in parallel, with retries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use sha2::Digest as _;
use tokio::io::AsyncReadExt as _;

use super::client::{Remote, RemoteOptions, DEFAULT_CHUNKED_ABOVE};
use super::errors::{status_error, Failure};
use super::failure::{RemoteError, StatusError};
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
    // A file read: block_in_place lets the runtime move its other tasks
    // off this thread meanwhile.
    let locations = tokio::task::block_in_place(|| load_locations(opts.blob_cache.as_deref()));
    let known = locations.get(&target.registry).cloned().unwrap_or_default();
    let sent: Vec<BlobReport> = futures_util::stream::iter(missing)
        .map(|b| {
            let progress = progress.clone();
            let candidates = mount_candidates(opts, &known, target, &b);
            async move { push_blob(remote, target, &b, &candidates, progress).await }
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
    let session = match mount_blob(remote, target, b, mount_candidates).await {
        Mount::Mounted => {
            progress.blob_done(&b.digest.to_string(), BlobAction::Mounted.as_str());
            return Ok(report(BlobAction::Mounted));
        }
        Mount::Session(url) => Some(url),
        Mount::Refused => None,
    };
    progress.blob_start(&b.digest.to_string(), b.size);
    if let Some((digest, size)) = upload_blob(remote, target, b, session, &progress).await? {
        if digest != b.digest || size != b.size {
            return Err(Error::DigestMismatch {
                context: format!(
                    "blob {} sent from {} (the file changed while it was sent: run `nixoci verify`)",
                    b.digest,
                    b.path.display()
                ),
                expected: Content::Blob(b.digest.clone(), b.size),
                found: Content::Blob(digest, size),
            });
        }
    }
    progress.blob_done(&b.digest.to_string(), BlobAction::Uploaded.as_str());
    Ok(report(BlobAction::Uploaded))
}

/// What a mount request (distribution spec, "Mounting a blob from another
/// repository") gave.
enum Mount {
    /// 201: the repository has the blob now.
    Mounted,
    /// 202: no mount, but an upload session began there (its location),
    /// which the upload may use.
    Session(reqwest::Url),
    /// Anything else (refused, not allowed by the token, unreachable):
    /// upload as usual.
    Refused,
}

/// Mount `b` into the repository of `target` from one of `candidates`,
/// tried in order: a 201 counts when a HEAD then finds the blob. Best
/// effort, never retried: a mount that fails costs an upload. Of the
/// upload sessions 202 answers begin, the first is kept for the upload and
/// the others are cancelled.
async fn mount_blob(remote: &Remote, target: &Reference, b: &Blob, candidates: &[String]) -> Mount {
    let mut session = None;
    for repo in candidates {
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={}&from={repo}",
            target.repository, b.digest
        );
        let Ok(res) = remote
            .request(reqwest::Method::POST, &path)
            .header(reqwest::header::CONTENT_LENGTH, 0)
            .send()
            .await
        else {
            continue;
        };
        match res.status().as_u16() {
            201 if remote.blob_exists(target, &b.digest).await.unwrap_or(false) => {
                cancel(remote, session).await;
                return Mount::Mounted;
            }
            202 => match (location(&res), &session) {
                (Ok(url), None) => session = Some(url),
                (Ok(url), Some(_)) => cancel(remote, Some(url)).await,
                (Err(_), _) => {}
            },
            _ => {}
        }
    }
    session.map_or(Mount::Refused, Mount::Session)
}

/// Cancel the upload session at `url` (best effort: a registry forgets an
/// abandoned session by itself, later).
async fn cancel(remote: &Remote, url: Option<reqwest::Url>) {
    if let Some(url) = url {
        let _ = remote
            .request_url(reqwest::Method::DELETE, url)
            .send()
            .await;
    }
}

/// Where an answer's `Location` header points, resolved against the URL
/// asked (the spec allows an absolute URL, or a path); an answer without
/// one is an error of the registry.
fn location(res: &reqwest::Response) -> std::result::Result<reqwest::Url, Failure> {
    let missing = |why: &str| {
        Failure::Remote(RemoteError::Status(StatusError {
            status: res.status().as_u16(),
            url: res.url().to_string(),
            errors: Vec::new(),
            body: format!("{why} (an upload needs it)"),
        }))
    };
    let value = res
        .headers()
        .get(reqwest::header::LOCATION)
        .ok_or_else(|| missing("no Location header"))?
        .to_str()
        .map_err(|_| missing("a Location header that is not text"))?;
    res.url()
        .join(value)
        .map_err(|_| missing("a Location header that is not a URL"))
}

/// The size of each request of a chunked upload.
const CHUNK: usize = 4 << 20;

/// Upload the file of `b` to the repository of `target`, with retries: in
/// chunks above [`RemoteOptions::chunked_above`], else in one streamed
/// request whose digest the registry checks. `session`: an upload session
/// a mount request began, used by the first attempt. For a chunked upload,
/// the digest and size of what was sent. A failed try takes back the
/// progress it reported: a retry sends (and reports) the blob again.
async fn upload_blob(
    remote: &Remote,
    target: &Reference,
    b: &Blob,
    session: Option<reqwest::Url>,
    progress: &Arc<dyn Progress + Send>,
) -> Result<Option<(Sha256Digest, u64)>> {
    let chunked_above = if remote.opts.chunked_above == 0 {
        DEFAULT_CHUNKED_ABOVE
    } else {
        remote.opts.chunked_above
    };
    let mut session = session;
    remote
        .retry(|| {
            let first = session.take();
            let reported = Arc::new(AtomicU64::new(0));
            async move {
                let attempt = async {
                    let url = match first {
                        Some(url) => url,
                        None => start_upload(remote, target).await?,
                    };
                    if b.size > chunked_above {
                        upload_chunked(remote, url, b, progress, &reported)
                            .await
                            .map(Some)
                    } else {
                        upload_whole(remote, url, b, progress, &reported)
                            .await
                            .map(|()| None)
                    }
                };
                let done = attempt.await;
                if done.is_err() {
                    progress.blob_rewind(&b.digest.to_string(), reported.load(Ordering::Relaxed));
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

/// Begin an upload session (POST): its location.
async fn start_upload(
    remote: &Remote,
    target: &Reference,
) -> std::result::Result<reqwest::Url, Failure> {
    let path = format!("/v2/{}/blobs/uploads/", target.repository);
    let res = remote
        .request(reqwest::Method::POST, &path)
        .header(reqwest::header::CONTENT_LENGTH, 0)
        .send()
        .await?;
    if res.status().as_u16() != 202 {
        return Err(status_error(res, remote.deadline()).await);
    }
    location(&res)
}

/// `url` with `digest=DIGEST` added to its query (the session's own query,
/// the registry's state, is kept).
fn with_digest(mut url: reqwest::Url, digest: &Sha256Digest) -> reqwest::Url {
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    url
}

/// The commit of an upload: a PUT of `url` with the digest, and `body` (the
/// whole blob, or nothing after chunks); 201 Created.
async fn commit(
    remote: &Remote,
    url: reqwest::Url,
    digest: &Sha256Digest,
    length: u64,
    body: reqwest::Body,
) -> std::result::Result<(), Failure> {
    let res = remote
        .request_url(reqwest::Method::PUT, with_digest(url, digest))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, length)
        .body(body)
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(status_error(res, remote.deadline()).await);
    }
    Ok(())
}

/// The file of `b`, opened without blocking and then checked through the
/// open file: a regular file (a FIFO swapped in since the blob was hashed
/// would block the open, and the upload, for ever).
async fn open(b: &Blob) -> std::result::Result<tokio::fs::File, Failure> {
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&b.path)
        .await
        .map_err(|e| Failure::Local(Error::io(&b.path, e)))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| Failure::Local(Error::io(&b.path, e)))?;
    if !meta.is_file() {
        return Err(Failure::Local(Error::Invalid(format!(
            "{}: not a regular file (it was one when it was hashed)",
            b.path.display()
        ))));
    }
    Ok(file)
}

/// The size of each read of a blob's file for a streamed upload: the few
/// reads in flight per upload (the file's, the body's, the connection's)
/// stay under a MB. With 1 MiB reads a push of three 70 MB layers peaked
/// at 23 MB of memory, with 128 KiB at 14 MB (as crane), in the same time
/// (`benches/push.sh`).
const READ_SIZE: usize = 128 << 10;

/// The whole blob in the commit's body, streamed from its file (the
/// registry checks the digest it is given).
async fn upload_whole(
    remote: &Remote,
    url: reqwest::Url,
    b: &Blob,
    progress: &Arc<dyn Progress + Send>,
    reported: &Arc<AtomicU64>,
) -> std::result::Result<(), Failure> {
    let file = open(b).await?;
    let digest = b.digest.to_string();
    let progress = progress.clone();
    let reported = reported.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(b.size), READ_SIZE).map_ok(
        move |chunk| {
            reported.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            progress.blob_advance(&digest, chunk.len() as u64);
            chunk
        },
    );
    let body = reqwest::Body::wrap_stream(stream);
    commit(remote, url, &b.digest, b.size, body).await
}

/// The blob in [`CHUNK`]-byte PATCH requests (each with its
/// `Content-Range`, each answered with the location of the next), then the
/// commit with the digest of what was read; that digest and size.
async fn upload_chunked(
    remote: &Remote,
    mut url: reqwest::Url,
    b: &Blob,
    progress: &Arc<dyn Progress + Send>,
    reported: &AtomicU64,
) -> std::result::Result<(Sha256Digest, u64), Failure> {
    let mut file = open(b).await?.take(b.size);
    let mut hasher = sha2::Sha256::new();
    let mut sent = 0u64;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            let n = (&mut file)
                .take((CHUNK - chunk.len()) as u64)
                .read_to_end(&mut chunk)
                .await
                .map_err(|e| Failure::Local(Error::io(&b.path, e)))?;
            if n == 0 {
                break;
            }
        }
        if chunk.is_empty() {
            break;
        }
        hasher.update(&chunk);
        let n = chunk.len() as u64;
        let res = remote
            .request_url(reqwest::Method::PATCH, url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(
                reqwest::header::CONTENT_RANGE,
                format!("{sent}-{}", sent + n - 1),
            )
            .header(reqwest::header::CONTENT_LENGTH, n)
            .body(chunk)
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(status_error(res, remote.deadline()).await);
        }
        url = location(&res)?;
        sent += n;
        reported.fetch_add(n, Ordering::Relaxed);
        progress.blob_advance(&b.digest.to_string(), n);
    }
    let digest = Sha256Digest(hasher.finalize().into());
    commit(remote, url, &digest, 0, reqwest::Body::from(Vec::new())).await?;
    Ok((digest, sent))
}
