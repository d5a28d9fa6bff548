//! Referrers to a registry, as the distribution spec 1.1 has them: a
//! referrer (an artifact manifest with a `subject`) is pushed after its
//! subject, by digest; a registry that keeps referrers itself says so with
//! an `OCI-Subject` header on that push. One that does not (Docker's
//! registry 2.8) gets the fallback: the tag `sha256-<subject hex>` names an
//! image index listing the subject's referrers, which the client reads,
//! de-duplicates, appends to and writes back.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::client::{Remote, RemoteOptions};
use super::report::BlobReport;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::canonical_json;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;

/// What happened to one referrer on a push.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerReport {
    pub digest: Sha256Digest,
    pub artifact_type: Option<String>,
    pub subject: Sha256Digest,
    /// `api` (the registry keeps referrers: it answered `OCI-Subject`),
    /// `fallback` (listed under the fallback tag), or `unchanged` (the
    /// fallback tag listed it already).
    pub listed: &'static str,
}

/// The fallback tag of `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Sha256Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The referrers of `layout` whose subject is one of `subjects`, each
/// with its subject's digest.
pub(super) fn of_subjects(
    layout: &Layout,
    subjects: &BTreeSet<Sha256Digest>,
) -> Result<Vec<(Descriptor, Sha256Digest)>> {
    let mut out = Vec::new();
    for r in layout.referrers()? {
        let bytes = layout.read_document(&r)?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{}: referrer {}: {e}",
                layout.dir().display(),
                r.digest
            ))
        })?;
        let subject = doc["subject"]["digest"]
            .as_str()
            .and_then(Sha256Digest::parse);
        if let Some(s) = subject.filter(|s| subjects.contains(s)) {
            out.push((r, s));
        }
    }
    Ok(out)
}

/// Push each referrer of `referrers` (manifest and blobs from `layout`)
/// into the repository of `target`, after the subject is there; list it
/// under the fallback tag unless the registry keeps referrers itself.
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
    for (desc, subject) in referrers {
        let by_digest = target.with_digest(&desc.digest);
        // Already there and listed (by the registry's referrers API, or
        // under the fallback tag): nothing to write.
        if remote.manifest_digest(&by_digest).await?.as_ref() == Some(&desc.digest)
            && of_subject(remote, target, subject)
                .await?
                .1
                .iter()
                .any(|d| d.digest == desc.digest)
        {
            reports.push(ReferrerReport {
                digest: desc.digest.clone(),
                artifact_type: desc.artifact_type.clone(),
                subject: subject.clone(),
                listed: "unchanged",
            });
            continue;
        }
        let (docs, files) = super::upload::collect(layout, desc)?;
        blobs.extend(
            super::upload::push_blobs(remote, target, &files, opts, progress.clone()).await?,
        );
        let doc = docs
            .iter()
            .find(|d| d.digest == desc.digest)
            .ok_or_else(|| Error::Invalid(format!("referrer {} has no manifest", desc.digest)))?;
        let (_, keeps) = remote
            .put_manifest_answer(
                &target.with_digest(&desc.digest),
                &doc.bytes,
                &doc.media_type,
            )
            .await?;
        let listed = if keeps {
            "api"
        } else {
            list_under_fallback(remote, target, subject, desc, &doc.bytes).await?
        };
        reports.push(ReferrerReport {
            digest: desc.digest.clone(),
            artifact_type: desc.artifact_type.clone(),
            subject: subject.clone(),
            listed,
        });
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

/// Whether the index lists `digest`.
fn lists(index: &Value, digest: &Sha256Digest) -> bool {
    let d = digest.to_string();
    index["manifests"]
        .as_array()
        .is_some_and(|m| m.iter().any(|e| e["digest"].as_str() == Some(d.as_str())))
}

/// Add `desc` (the referrer manifest `bytes`) to the index the fallback tag
/// of `subject` names: read it (none yet: a new one), leave it if it lists
/// the referrer, else append and write it back.
pub(super) async fn list_under_fallback(
    remote: &Remote,
    target: &Reference,
    subject: &Sha256Digest,
    desc: &Descriptor,
    bytes: &[u8],
) -> Result<&'static str> {
    let at = target.with_tag(&fallback_tag(subject));
    let mut index = fallback_index(remote, &at).await?.unwrap_or_else(
        || json!({"schemaVersion": 2, "mediaType": MediaType::INDEX, "manifests": []}),
    );
    if lists(&index, &desc.digest) {
        return Ok("unchanged");
    }
    let manifests = index["manifests"].as_array_mut().ok_or_else(|| {
        Error::Invalid(format!(
            "{at}: the referrers fallback index has no manifests list"
        ))
    })?;
    // The descriptor as the referrers API gives it: the manifest's
    // artifactType and annotations.
    let manifest: Value = serde_json::from_slice(bytes).unwrap_or_default();
    let mut entry = json!({
        "mediaType": desc.media_type,
        "digest": desc.digest,
        "size": desc.size,
    });
    let artifact_type = manifest["artifactType"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| manifest["config"]["mediaType"].as_str().map(str::to_owned));
    if let Some(t) = artifact_type {
        entry["artifactType"] = json!(t);
    }
    if let Some(a) = manifest.get("annotations").filter(|a| a.is_object()) {
        entry["annotations"] = a.clone();
    }
    manifests.push(entry);
    remote
        .put_manifest(&at, &canonical_json(&index), &MediaType::INDEX)
        .await?;
    Ok("fallback")
}

/// The referrers of `subject` in the repository of `target`, and where the
/// list came from: the referrers API (`api`), the fallback tag
/// (`fallback`), or neither (`none`, no referrers).
pub(super) async fn of_subject(
    remote: &Remote,
    target: &Reference,
    subject: &Sha256Digest,
) -> Result<(&'static str, Vec<Descriptor>)> {
    let (source, index) = match remote.referrers_api(target, subject).await? {
        Some(b) => (
            "api",
            Some(serde_json::from_slice::<Value>(&b).map_err(|e| {
                Error::Invalid(format!(
                    "{target}: the referrers the registry sent are not JSON: {e}"
                ))
            })?),
        ),
        None => match fallback_index(remote, &target.with_tag(&fallback_tag(subject))).await? {
            Some(i) => ("fallback", Some(i)),
            None => ("none", None),
        },
    };
    let manifests: Vec<Descriptor> = match index {
        Some(i) => serde_json::from_value(i["manifests"].clone()).map_err(|e| {
            Error::Invalid(format!("{target}: the referrers index is not valid: {e}"))
        })?,
        None => Vec::new(),
    };
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
    pub source: &'static str,
    pub manifests: Vec<Descriptor>,
}

/// The referrers of the manifest `target` names, of `artifact_type` when
/// given: from the registry's referrers API when it has one, else from
/// the fallback tag.
pub fn list(
    target: &Reference,
    artifact_type: Option<&str>,
    opts: &RemoteOptions,
) -> Result<Referrers> {
    super::client::runtime()?.block_on(async {
        let remote = Remote::connect(target, opts, oci_client::RegistryOperation::Pull).await?;
        let subject = remote
            .manifest_digest(target)
            .await?
            .ok_or_else(|| Error::Invalid(format!("{target}: no such image in the registry")))?;
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
}
