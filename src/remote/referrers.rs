//! Referrers to a registry, as the distribution spec 1.1 has them: a
//! referrer (an artifact manifest with a `subject`) is pushed after its
//! subject, by digest. A registry that keeps referrers itself says so with
//! an `OCI-Subject` header on that push, or, when it sends none, answers
//! the referrers API with an image index ([`keeps`] asks it once per
//! repository and run, as the spec allows and oras-go does). One that does
//! not (Docker's registry 2.8) gets the fallback: the tag `sha256-<subject
//! hex>` names an image index listing the subject's referrers, which the
//! client reads, de-duplicates, appends to and writes back, then reads
//! back until it is sure the referrers stay listed
//! ([`list_under_fallback`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::client::{Remote, RemoteOptions};
use super::report::BlobReport;
use super::runtime::with_runtime;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::canonical_json;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;
use crate::referrers::{artifact_type_of, fallback_document, listing_entry};

/// What happened to one referrer on a push.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReferrerReport {
    /// The digest of the referrer's manifest.
    pub digest: Sha256Digest,
    /// Its artifact type, if it has one.
    pub artifact_type: Option<String>,
    /// The manifest (or index) it refers to.
    pub subject: Sha256Digest,
    /// `api` (the registry keeps referrers: it answered `OCI-Subject`, or
    /// its referrers API answered with an image index), `fallback` (listed under
    /// the fallback tag), or `unchanged` (listed already, by the API or
    /// under the fallback tag).
    pub listed: &'static str,
}

/// The fallback tag of `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Sha256Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// Push each referrer of `referrers` (manifest and blobs from `layout`)
/// into the repository of `target`, after the subject is there; list them
/// under the fallback tag of their subject (all of one subject at once)
/// unless the registry keeps referrers itself.
pub(super) async fn push(
    remote: &Remote,
    layout: &Layout,
    target: &Reference,
    referrers: &[(Descriptor, Sha256Digest)],
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<(Vec<ReferrerReport>, Vec<BlobReport>)> {
    let mut reports = Vec::new();
    let mut blobs = Vec::new();
    // Per subject, the referrers to list under its fallback tag: their
    // place in `reports`, and their entries.
    let mut to_list: BTreeMap<Sha256Digest, Vec<(usize, Value)>> = BTreeMap::new();
    for (desc, subject) in referrers {
        let by_digest = target.with_digest(&desc.digest);
        let mut report = ReferrerReport {
            digest: desc.digest.clone(),
            artifact_type: desc.artifact_type.clone(),
            subject: subject.clone(),
            listed: "unchanged",
        };
        // Already there and listed (by the registry's referrers API, or
        // under the fallback tag): nothing to write.
        if remote.manifest_digest(&by_digest).await?.as_ref() == Some(&desc.digest)
            && listing(remote, target, subject)
                .await?
                .1
                .iter()
                .any(|d| d.digest == desc.digest)
        {
            reports.push(report);
            continue;
        }
        // The local layout's files: block_in_place lets the runtime move
        // its other tasks off this thread while it reads.
        let (docs, files) = tokio::task::block_in_place(|| super::upload::collect(layout, desc))?;
        blobs.extend(
            super::upload::push_blobs(remote, target, &files, opts, progress.clone()).await?,
        );
        let doc = docs
            .iter()
            .find(|d| d.digest == desc.digest)
            .ok_or_else(|| Error::Invalid(format!("referrer {} has no manifest", desc.digest)))?;
        let (_, said_so) = remote
            .put_manifest_answer(&by_digest, &doc.bytes, &doc.media_type)
            .await?;
        if keeps(remote, target, subject, said_so).await? {
            report.listed = "api";
        } else {
            to_list
                .entry(subject.clone())
                .or_default()
                .push((reports.len(), listing_entry(desc, &doc.bytes)));
        }
        reports.push(report);
    }
    for (subject, listed) in to_list {
        let entries: Vec<Value> = listed.iter().map(|(_, e)| e.clone()).collect();
        let how = list_under_fallback(remote, target, &subject, &entries).await?;
        for ((i, _), how) in listed.iter().zip(how) {
            reports[*i].listed = how;
        }
    }
    Ok((reports, blobs))
}

/// The index the fallback tag `at` names, if there is one.
async fn fallback_index(remote: &Remote, at: &Reference) -> Result<Option<Value>> {
    if remote.manifest_digest(at).await?.is_none() {
        return Ok(None);
    }
    let (b, _) = remote.manifest_raw(at).await?;
    serde_json::from_slice(&b).map(Some).map_err(|e| {
        Error::Invalid(format!(
            "{at}: the referrers fallback index is not JSON: {e}"
        ))
    })
}

/// The digest an index entry names.
fn digest_of(entry: &Value) -> &str {
    entry["digest"].as_str().unwrap_or_default()
}

/// How many times [`list_under_fallback`] writes the fallback index before
/// it gives up.
const FALLBACK_WRITES: u32 = 10;
/// The shortest wait between writing the fallback index and reading it
/// back; longer when the registry answers slowly (four times its slowest
/// answer), at most [`MAX_SETTLE`].
const MIN_SETTLE: Duration = Duration::from_millis(250);
const MAX_SETTLE: Duration = Duration::from_secs(5);

/// A random wait of up to `max`, so that clients that collided do not
/// collide again.
pub(super) fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    max.mul_f64((random % 10_000) as f64 / 10_000.0)
}

/// List `entries` (referrers of `subject`, as [`listing_entry`] makes
/// them) in the index the fallback tag of `subject` names, and make sure
/// they stay listed: the read-append-write of the tag has no atomic form
/// in the distribution spec, so a client writing it at the same time can
/// replace the index with one that lacks them.
///
/// So: read the index (none yet: a new one); write it back with what it
/// lacks; read it again after a wait ([`MIN_SETTLE`], longer when the
/// registry is slow), and once more after another: done when both list
/// every entry. An index that lacks one is merged and written again, after
/// a random wait that grows with each try, at most [`FALLBACK_WRITES`]
/// times; then an error. Entries of other referrers seen in the index
/// during this are kept listed too, so that a client that replaced the
/// index with an older one does not make another lose its referrer
/// silently. A write is skipped (and the index read again) when more than
/// half the wait passed since the read it merges, which a busy machine can
/// make happen. Returns, for each entry, `fallback` (listed now) or
/// `unchanged` (the index listed it already).
pub(super) async fn list_under_fallback(
    remote: &Remote,
    target: &Reference,
    subject: &Sha256Digest,
    entries: &[Value],
) -> Result<Vec<&'static str>> {
    let at = target.with_tag(&fallback_tag(subject));
    let mut keep: Vec<Value> = entries.to_vec();
    let mut before: Option<Vec<bool>> = None;
    let mut settle = MIN_SETTLE;
    let (mut writes, mut reads, mut confirmed, mut backed_off) = (0u32, 0u32, 0u32, false);
    loop {
        reads += 1;
        let started = Instant::now();
        let index = fallback_index(remote, &at).await?;
        let read_at = Instant::now();
        settle = settle.max((read_at - started) * 4).min(MAX_SETTLE);
        let mut index = index.unwrap_or_else(|| fallback_document(Vec::new()));
        let current = index["manifests"].as_array().ok_or_else(|| {
            Error::Invalid(format!(
                "{at}: the referrers fallback index has no manifests list"
            ))
        })?;
        let listed = |d: &str| current.iter().any(|e| digest_of(e) == d);
        let before =
            before.get_or_insert_with(|| entries.iter().map(|e| listed(digest_of(e))).collect());
        if writes == 0 && before.iter().all(|b| *b) {
            return Ok(vec!["unchanged"; entries.len()]);
        }
        for e in current {
            if !keep.iter().any(|k| digest_of(k) == digest_of(e)) {
                keep.push(e.clone());
            }
        }
        let mut missing: Vec<Value> = keep
            .iter()
            .filter(|k| !listed(digest_of(k)))
            .cloned()
            .collect();
        let exhausted = writes >= FALLBACK_WRITES || reads > 4 * FALLBACK_WRITES;
        if exhausted {
            // No more writes: only this run's referrers still matter.
            missing.retain(|m| entries.iter().any(|e| digest_of(e) == digest_of(m)));
        }
        if missing.is_empty() {
            confirmed += 1;
            if confirmed >= 2 {
                return Ok(before
                    .iter()
                    .map(|b| if *b { "unchanged" } else { "fallback" })
                    .collect());
            }
            tokio::time::sleep(settle).await;
            continue;
        }
        confirmed = 0;
        if exhausted {
            let lost: Vec<&str> = missing.iter().map(digest_of).collect();
            return Err(Error::Invalid(format!(
                "{at}: cannot list the referrers {} of {subject}: this registry has no referrers API, and other clients replaced the fallback index each of the {writes} times nixoci wrote it (a tag cannot be updated atomically); the referrers' manifests are in the repository but not listed: run the command again (it writes only what is missing)",
                lost.join(", ")
            )));
        }
        // After a lost write: wait a random while, then merge a fresh read.
        if writes > 0 && !backed_off {
            backed_off = true;
            tokio::time::sleep(jitter(settle * (1 << writes.min(4)))).await;
            continue;
        }
        // A merge of a read this old may drop what others wrote since.
        if read_at.elapsed() > settle / 2 {
            continue;
        }
        backed_off = false;
        index["manifests"]
            .as_array_mut()
            .expect("checked above")
            .extend(missing);
        remote
            .put_manifest(&at, &canonical_json(&index), &MediaType::INDEX)
            .await?;
        writes += 1;
        tokio::time::sleep(settle).await;
    }
}

/// Whether the repository of `target` keeps referrers itself, asked after
/// pushing a referrer of `subject` there: yes when the registry answered
/// that push with `OCI-Subject` (`said_so`); else as this run learnt it
/// already; else as its referrers API answers for `subject`, once per
/// repository and run ([`Remote::referrers_api`]: an image index, and not a
/// 404 or anything else, means it keeps them).
pub(super) async fn keeps(
    remote: &Remote,
    target: &Reference,
    subject: &Sha256Digest,
    said_so: bool,
) -> Result<bool> {
    if said_so {
        remote.learn_keeps_referrers(&target.repository, true);
        return Ok(true);
    }
    if let Some(known) = remote.keeps_referrers(&target.repository) {
        return Ok(known);
    }
    Ok(remote.referrers_api(target, subject).await?.is_some())
}

/// The referrers of `subject` in the repository of `target` as the
/// registry lists them, and where the list came from: the referrers API
/// (`api`, sorted by digest: the API gives no order, and
/// go-containerregistry's changes from one answer to the next), the
/// fallback tag (`fallback`, in its order), or neither (`none`, no
/// referrers).
async fn listing(
    remote: &Remote,
    target: &Reference,
    subject: &Sha256Digest,
) -> Result<(&'static str, Vec<Descriptor>)> {
    let from_api = match remote.keeps_referrers(&target.repository) {
        Some(false) => None,
        _ => remote.referrers_api(target, subject).await?,
    };
    let (source, index) = match from_api {
        Some(index) => ("api", index),
        None => match fallback_index(remote, &target.with_tag(&fallback_tag(subject))).await? {
            Some(index) => ("fallback", index),
            None => return Ok(("none", Vec::new())),
        },
    };
    let mut manifests: Vec<Descriptor> = serde_json::from_value(index["manifests"].clone())
        .map_err(|e| {
            Error::Invalid(format!(
                "{target}: the referrers index of {subject} is not valid: {e}"
            ))
        })?;
    if source == "api" {
        manifests.sort_by(|a, b| a.digest.cmp(&b.digest));
    }
    Ok((source, manifests))
}

/// The referrers of `subject` in the repository of `target`, each with
/// its artifact type, and where the list came from (see [`listing`]).
///
/// A listing's `artifactType` is the manifest's own, else its config's
/// media type (image spec 1.1). Some registries give the config's media
/// type even when the manifest has its own (go-containerregistry's
/// `pkg/registry`: an artifact with the empty config is listed as
/// `application/vnd.oci.empty.v1+json`), or none: for such an entry (no
/// type, or the empty descriptor's, which names no artifact) the type is
/// read from the referrer's manifest, fetched by digest.
pub(super) async fn of_subject(
    remote: &Remote,
    target: &Reference,
    subject: &Sha256Digest,
) -> Result<(&'static str, Vec<Descriptor>)> {
    let (source, mut manifests) = listing(remote, target, subject).await?;
    for d in manifests.iter_mut().filter(|d| {
        d.artifact_type
            .as_deref()
            .is_none_or(|t| t == MediaType::EMPTY.as_str())
    }) {
        let (bytes, _) = remote.manifest_raw(&target.with_digest(&d.digest)).await?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{target}: referrer {} of {subject} is not JSON: {e}",
                d.digest
            ))
        })?;
        if let Some(t) = artifact_type_of(&doc) {
            d.artifact_type = Some(t.to_owned());
        }
    }
    Ok((source, manifests))
}

/// The referrers of the image a reference names.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrers {
    pub reference: String,
    pub subject: Sha256Digest,
    /// Where the list came from: `api` (the registry's referrers API) or
    /// `fallback` (the fallback tag; `none` when it does not exist).
    /// Each entry's `artifactType` is the referrer's own (see
    /// [`of_subject`]).
    pub source: &'static str,
    pub manifests: Vec<Descriptor>,
}

/// The referrers of the manifest `target` names, of `artifact_type` when
/// given: from the registry's referrers API when it has one, else from
/// the fallback tag. The whole list is asked for and filtered here, by
/// each referrer's own type ([`of_subject`]): a registry may ignore the
/// API's `artifactType` filter (go-containerregistry's does, and says so
/// by sending no `OCI-Filters-Applied`).
pub fn list(
    target: &Reference,
    artifact_type: Option<&str>,
    opts: &RemoteOptions,
) -> Result<Referrers> {
    with_runtime(|rt| {
        rt.block_on(async {
            let remote =
                Remote::connect(target, opts, super::client::RegistryOperation::Pull).await?;
            let subject = remote.manifest_digest(target).await?.ok_or_else(|| {
                remote.failure(
                    crate::error::RegistryErrorKind::NotFound,
                    format!("{target}: no such image in the registry"),
                )
            })?;
            let (source, mut manifests) = of_subject(&remote, target, &subject).await?;
            if let Some(t) = artifact_type {
                manifests.retain(|d| d.artifact_type.as_deref() == Some(t));
            }
            Ok(Referrers {
                reference: target.to_string(),
                subject,
                source,
                manifests,
            })
        })
    })
}
