//! The distribution-spec requests nixoci makes itself on a connection
//! ([`super::client::Remote`]): HEAD and GET of manifests (bounded by
//! [`crate::oci::json::MAX_DOCUMENT`] and checked against their digest), PUT
//! of manifests, HEAD and GET of blobs (cut off at their declared size),
//! and the walk of a remote image index. Each request goes through the
//! retry wrapper and comes back explained.

use std::collections::BTreeSet;

use serde_json::Value;

use super::client::Remote;
use super::errors::{read_capped, status_error, Failure, MIN_RATE};
use super::failure::RemoteError;
use crate::error::{Content, Error, RegistryErrorKind, Result, TransportFailure};
use crate::oci::descriptor::*;
use crate::oci::digest::Sha256Digest;
use crate::oci::reference::Reference;
use crate::oci::MediaType;

/// Manifest media types asked for when reading.
const ACCEPT: [MediaType; 4] = [
    MediaType::MANIFEST,
    MediaType::INDEX,
    MediaType::DOCKER_MANIFEST,
    MediaType::DOCKER_MANIFEST_LIST,
];

/// The path part of a reference: its digest, else its tag.
fn manifest_path(r: &Reference) -> String {
    let at = r
        .digest
        .as_ref()
        .map(Sha256Digest::to_string)
        .or_else(|| r.tag.clone())
        .unwrap_or_else(|| "latest".into());
    format!("/v2/{}/manifests/{at}", r.repository)
}

impl Remote {
    /// HEAD a blob: whether the repository of `r` has it.
    pub(super) async fn blob_exists(&self, r: &Reference, digest: &Sha256Digest) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        self.retry(|| async {
            let res = self.request(reqwest::Method::HEAD, &path).send().await?;
            match res.status().as_u16() {
                200..=299 => Ok(true),
                404 => Ok(false),
                _ => Err(status_error(res, self.deadline()).await),
            }
        })
        .await
        .map_err(|e| self.explain(e))
    }

    /// The digest `r` names, `None` when the registry has no such manifest:
    /// a HEAD, and a bounded GET when the registry gives no digest header.
    pub(super) async fn manifest_digest(&self, r: &Reference) -> Result<Option<Sha256Digest>> {
        let found = self
            .retry(|| async {
                let res = self
                    .request(reqwest::Method::HEAD, &manifest_path(r))
                    .header(
                        reqwest::header::ACCEPT,
                        ACCEPT.map(|m| m.to_string()).join(", "),
                    )
                    .send()
                    .await?;
                match res.status().as_u16() {
                    200..=299 => Ok(Some(
                        res.headers()
                            .get("docker-content-digest")
                            .and_then(|v| v.to_str().ok())
                            .and_then(Sha256Digest::parse),
                    )),
                    404 => Ok(None),
                    _ => Err(status_error(res, self.deadline()).await),
                }
            })
            .await
            .map_err(|e| self.explain(e))?;
        match found {
            None => Ok(None),
            Some(Some(d)) => Ok(Some(d)),
            Some(None) => Ok(Some(self.manifest_raw(r).await?.1)),
        }
    }

    /// GET the manifest or index `r` names, at most
    /// [`crate::oci::json::MAX_DOCUMENT`] bytes, checked against the digest of
    /// `r` when it has one.
    pub(super) async fn manifest_raw(&self, r: &Reference) -> Result<(Vec<u8>, Sha256Digest)> {
        let max = crate::oci::json::MAX_DOCUMENT;
        let bytes = self
            .retry(|| async {
                let mut res = self
                    .request(reqwest::Method::GET, &manifest_path(r))
                    .header(
                        reqwest::header::ACCEPT,
                        ACCEPT.map(|m| m.to_string()).join(", "),
                    )
                    .send()
                    .await?;
                if !res.status().is_success() {
                    return Err(status_error(res, self.deadline()).await);
                }
                read_capped(&mut res, max, self.deadline())
                    .await?
                    .map_err(|why| {
                        Failure::Local(why.explain(
                            &r.to_string(),
                            "the manifest the registry sent",
                            max,
                        ))
                    })
            })
            .await
            .map_err(|e| self.explain(e))?;
        let digest = Sha256Digest::of(&bytes);
        if let Some(want) = &r.digest {
            if *want != digest {
                return Err(Error::DigestMismatch {
                    context: format!("manifest of {r}"),
                    expected: Content::Digest(want.clone()),
                    found: Content::Digest(digest.clone()),
                });
            }
        }
        Ok((bytes, digest))
    }

    /// The referrers API (distribution spec 1.1): the image index of the
    /// manifests whose subject is `digest`, in the repository of `r`, or
    /// `None` when the repository has no such API. What this run learns
    /// of the repository is remembered ([`Remote::keeps_referrers`]).
    ///
    /// An API is a success whose `Content-Type` is an image index and
    /// whose body, at most [`crate::oci::json::MAX_DOCUMENT`] bytes, is
    /// one (`schemaVersion` 2, a `manifests` list, and an index's
    /// `mediaType` when it has one); a registry that answers anything else
    /// with a success (a web page, an error in JSON) has none, as one that
    /// answers 404 (distribution 2.8), 400, 405, 406 or 501. Its entries
    /// are left for the caller to read (see [`is_index_body`]).
    ///
    /// A registry may page the list: then its answer has a `Link` header
    /// whose `rel="next"` target (relative to the page's URL, or absolute)
    /// is the next page, and so on; the pages' `manifests` are merged into
    /// the first page's index, each digest once. Every page must be an
    /// image index, on this registry (a link to another scheme, host or
    /// port is refused: the request would carry its credentials), never
    /// one seen before, at most [`MAX_REFERRERS_PAGES`] pages and
    /// [`crate::oci::descriptor::MAX_INDEX_NODES`] referrers in all.
    pub(super) async fn referrers_api(
        &self,
        r: &Reference,
        digest: &Sha256Digest,
    ) -> Result<Option<Value>> {
        let first = self.url(&format!("/v2/{}/referrers/{digest}", r.repository))?;
        let Some((mut index, mut next)) = self.referrers_page(r, &first).await? else {
            self.learn_keeps_referrers(&r.repository, false);
            return Ok(None);
        };
        self.learn_keeps_referrers(&r.repository, true);
        let of = |what: String| {
            Error::Invalid(format!(
                "{}: the referrers of {digest} in {}: {what}",
                r.registry, r.repository
            ))
        };
        let mut seen = BTreeSet::from([first]);
        let mut listed: BTreeSet<String> = BTreeSet::new();
        let mut merged = Vec::new();
        let mut page = index["manifests"].take();
        for n in 2.. {
            for entry in page.as_array_mut().map(std::mem::take).unwrap_or_default() {
                let d = entry["digest"].as_str().unwrap_or_default().to_owned();
                if listed.insert(d) {
                    merged.push(entry);
                }
            }
            if merged.len() > crate::oci::descriptor::MAX_INDEX_NODES {
                return Err(of(format!(
                    "the registry lists more than {} over its pages; nixoci reads no more (as for any image index)",
                    crate::oci::descriptor::MAX_INDEX_NODES
                )));
            }
            let Some(url) = next.take() else { break };
            if !self.is_ours(&url) {
                return Err(of(format!(
                    "the registry's Link to the next page leads to {}, off the registry {} (another scheme, host or port); nixoci follows it only on the registry itself (the request would carry its credentials): refused, ask the registry's operator to link its pages on the registry",
                    url.origin().ascii_serialization(),
                    r.registry
                )));
            }
            if !seen.insert(url.clone()) {
                return Err(of(format!(
                    "the registry's Link to page {n} leads back to a page it sent before ({}), a loop; refused (a fault of the registry: report it to its operator)",
                    super::errors::without_queries(url.as_str())
                )));
            }
            if n > MAX_REFERRERS_PAGES {
                return Err(of(format!(
                    "the registry sends more than {MAX_REFERRERS_PAGES} pages; nixoci reads no more (report it to the registry's operator)"
                )));
            }
            (page, next) = match self.referrers_page(r, &url).await? {
                Some((mut doc, next)) => (doc["manifests"].take(), next),
                None => {
                    return Err(of(format!(
                        "page {n} ({}), which the registry's Link names, is not an image index; refused (a fault of the registry: report it to its operator)",
                        super::errors::without_queries(url.as_str())
                    )))
                }
            };
        }
        index["manifests"] = Value::Array(merged);
        Ok(Some(index))
    }

    /// One page of the referrers API at `url`: its image index and the
    /// URL of the next page (its `Link`'s `rel="next"`, resolved against
    /// the page's URL), or `None` when the answer is no image index (see
    /// [`Remote::referrers_api`]).
    async fn referrers_page(
        &self,
        r: &Reference,
        url: &reqwest::Url,
    ) -> Result<Option<(Value, Option<reqwest::Url>)>> {
        let max = crate::oci::json::MAX_DOCUMENT;
        let answer = self
            .retry(|| async {
                let mut res = self
                    .request_url(reqwest::Method::GET, url.clone())
                    .header(reqwest::header::ACCEPT, MediaType::INDEX.as_str())
                    .send()
                    .await?;
                if matches!(res.status().as_u16(), 400 | 404 | 405 | 406 | 501) {
                    return Ok(None);
                }
                if !res.status().is_success() {
                    return Err(status_error(res, self.deadline()).await);
                }
                let index_type = res
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case(MediaType::INDEX.as_str()));
                if !index_type {
                    return Ok(None);
                }
                // Its error counts only for a page that is an index.
                let next = next_page(r, &res);
                let body = read_capped(&mut res, max, self.deadline())
                    .await?
                    .map_err(|why| {
                        Failure::Local(why.explain(
                            &r.to_string(),
                            "the referrers the registry sent",
                            max,
                        ))
                    })?;
                Ok(Some((body, next)))
            })
            .await
            .map_err(|e| self.explain(e))?;
        let Some((body, next)) = answer else {
            return Ok(None);
        };
        match serde_json::from_slice::<Value>(&body) {
            Ok(index) if is_index_body(&index) => Ok(Some((index, next?))),
            _ => Ok(None),
        }
    }

    /// PUT a manifest or index at `r` (its tag, else its digest); the
    /// digest the registry says it stored, when it says.
    pub(super) async fn put_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &MediaType,
    ) -> Result<Option<String>> {
        Ok(self.put_manifest_answer(r, bytes, media_type).await?.0)
    }

    /// [`Remote::put_manifest`], and whether the registry answered with an
    /// `OCI-Subject` header: then it keeps the referrers of the manifest's
    /// subject itself (distribution spec 1.1), and no fallback tag is due.
    pub(super) async fn put_manifest_answer(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &MediaType,
    ) -> Result<(Option<String>, bool)> {
        let content_type = reqwest::header::HeaderValue::from_str(media_type.as_str())
            .map_err(|_| Error::Invalid(format!("media type {media_type:?} cannot be sent")))?;
        let path = match &r.tag {
            Some(t) => format!("/v2/{}/manifests/{t}", r.repository),
            None => manifest_path(r),
        };
        // A registry that is still committing a blob another client sent
        // at the same time (distribution 2.8 rewrites the repository's
        // link to it in place) may refuse the manifest as naming an
        // unknown or invalid blob; every blob was sent before the manifest,
        // so that is retried like a transient failure.
        let worth_retrying = |f: &Failure| super::errors::transient(f) || blob_race(f);
        super::errors::retry(self.opts.retries, worth_retrying, || async {
            let res = self
                .request(reqwest::Method::PUT, &path)
                .header(reqwest::header::CONTENT_TYPE, content_type.clone())
                .body(bytes.to_vec())
                .send()
                .await?;
            if !res.status().is_success() {
                return Err(status_error(res, self.deadline()).await);
            }
            let digest = res
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((digest, res.headers().contains_key("oci-subject")))
        })
        .await
        .map_err(|e| self.explain(e))
    }

    /// GET a blob of the repository of `r` that must be `size` bytes,
    /// handing its chunks to `sink` (the download waits while the future
    /// it returns does); a longer body is cut off and refused.
    pub(super) async fn get_blob<F, Fut>(
        &self,
        r: &Reference,
        digest: &Sha256Digest,
        size: u64,
        mut sink: F,
    ) -> std::result::Result<(), Failure>
    where
        F: FnMut(bytes::Bytes) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        let mut res = self.request(reqwest::Method::GET, &path).send().await?;
        if !res.status().is_success() {
            return Err(status_error(res, self.deadline()).await);
        }
        let too_long = || {
            Failure::Local(Error::DigestMismatch {
                context: format!("blob {digest} of {r}"),
                expected: Content::Size(size),
                found: Content::MoreThan(size),
            })
        };
        if res.content_length().is_some_and(|n| n > size) {
            return Err(too_long());
        }
        // The minimum rate, over each period of --timeout seconds.
        let period = if self.opts.timeout.is_zero() {
            super::client::DEFAULT_TIMEOUT
        } else {
            self.opts.timeout
        };
        let (mut since, mut at_start) = (std::time::Instant::now(), 0u64);
        let mut received = 0u64;
        while let Some(chunk) = res.chunk().await? {
            received += chunk.len() as u64;
            if received > size {
                return Err(too_long());
            }
            sink(chunk).await?;
            let elapsed = since.elapsed();
            if elapsed >= period {
                let got = received - at_start;
                let needed =
                    ((MIN_RATE as f64 * elapsed.as_secs_f64()) as u64).min(size - at_start);
                if got < needed {
                    return Err(Failure::Slow(self.failure(
                        RegistryErrorKind::Transport(TransportFailure::Timeout),
                        format!(
                        "blob {digest} of {r}: the registry sent {got} bytes in {:.1} s, less than {} KiB/s, the least nixoci takes over each --timeout period ({} s); the registry or the network is too slow, or the server is hostile",
                        elapsed.as_secs_f64(),
                        MIN_RATE >> 10,
                        period.as_secs_f64()
                    ),
                    )));
                }
                (since, at_start) = (std::time::Instant::now(), received);
            }
        }
        Ok(())
    }
}

/// Whether a manifest PUT was refused for naming a blob the registry does
/// not know or whose digest it cannot check: what a registry says while
/// another upload of the same blob is being committed.
fn blob_race(f: &Failure) -> bool {
    match f {
        Failure::Remote(RemoteError::Status(s)) => {
            s.has_code(&["BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN", "DIGEST_INVALID"])
        }
        _ => false,
    }
}

/// The most pages of one referrers list that nixoci reads
/// ([`Remote::referrers_api`]).
const MAX_REFERRERS_PAGES: usize = 1000;

/// The next page of a paged answer `res`: the target of its `Link`'s
/// `rel="next"`, resolved against the URL it answered ([`super::link`]).
fn next_page(r: &Reference, res: &reqwest::Response) -> Result<Option<reqwest::Url>> {
    let unreadable = |why: String| {
        Error::Invalid(format!(
            "{}: the referrers API of {}: {why}; nixoci cannot tell whether more pages follow",
            r.registry, r.repository
        ))
    };
    let values = res
        .headers()
        .get_all(reqwest::header::LINK)
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| "a Link header is not text".to_owned())
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    let Some(target) = super::link::next_target(values).map_err(unreadable)? else {
        return Ok(None);
    };
    res.url()
        .join(&target)
        .map(Some)
        .map_err(|e| unreadable(format!("the next page's link {target:?} is no URL ({e})")))
}

/// Whether `doc`, the body of a referrers API answer, is an image index:
/// `schemaVersion` 2, a `manifests` list, and no `mediaType` but an
/// index's. Its entries are not looked at here: an index whose entries
/// are not descriptors is an error of a registry that has the API, not a
/// sign that it has none.
fn is_index_body(doc: &Value) -> bool {
    doc["schemaVersion"].as_u64() == Some(2)
        && doc["manifests"].is_array()
        && doc
            .get("mediaType")
            .is_none_or(|m| m.as_str() == Some(MediaType::INDEX.as_str()))
}

/// The media type of a fetched manifest or index: its `mediaType`, else
/// guessed from its fields.
pub(super) fn media_type_of(doc: &Value) -> MediaType {
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(m) => m.into(),
        None if doc.get("manifests").is_some() => MediaType::INDEX,
        None => MediaType::MANIFEST,
    }
}

/// A manifest or index fetched from a registry while walking an index.
pub(super) struct Node {
    pub(super) descriptor: Descriptor,
    pub(super) digest: Sha256Digest,
    pub(super) bytes: Vec<u8>,
    pub(super) doc: Value,
    pub(super) is_index: bool,
}

/// Fetch `children` of an index and, depth-first, the children of every
/// nested index among them, in the order listed: each digest once, at most
/// [`crate::oci::descriptor::MAX_INDEX_DEPTH`] deep and
/// [`crate::oci::descriptor::MAX_INDEX_NODES`] descriptors, as every reader of
/// nested indexes does.
pub(super) async fn fetch_graph(
    remote: &Remote,
    source: &Reference,
    children: Vec<Descriptor>,
) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    let mut stack: Vec<(Descriptor, usize)> = children.into_iter().rev().map(|c| (c, 1)).collect();
    let mut seen = BTreeSet::new();
    while let Some((c, depth)) = stack.pop() {
        if !seen.insert(c.digest.clone()) {
            continue;
        }
        if seen.len() > crate::oci::descriptor::MAX_INDEX_NODES {
            return Err(Error::TooManyDescriptors {
                max: crate::oci::descriptor::MAX_INDEX_NODES,
            }
            .within(source.to_string()));
        }
        let (bytes, digest) = remote.manifest_raw(&source.with_digest(&c.digest)).await?;
        if bytes.len() as u64 != c.size {
            return Err(Error::DigestMismatch {
                context: format!("size of manifest {}", c.digest),
                expected: Content::Size(c.size),
                found: Content::Size(bytes.len() as u64),
            });
        }
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{source}: manifest {digest} is not JSON: {e}")))?;
        let is_index = c.media_type.is_index() || media_type_of(&doc).is_index();
        if is_index {
            if depth + 1 > crate::oci::descriptor::MAX_INDEX_DEPTH {
                return Err(Error::NestedTooDeep {
                    index: digest,
                    max: crate::oci::descriptor::MAX_INDEX_DEPTH,
                }
                .within(source.to_string()));
            }
            let nested: Vec<Descriptor> = serde_json::from_value(doc["manifests"].clone())
                .map_err(|e| {
                    Error::Invalid(format!("{source}: image index {digest} is not valid: {e}"))
                })?;
            stack.extend(nested.into_iter().rev().map(|g| (g, depth + 1)));
        }
        out.push(Node {
            descriptor: c,
            digest,
            bytes,
            doc,
            is_index,
        });
    }
    Ok(out)
}
