//! `push`: an image of a local layout to a registry. Tags that already
//! name the image are left alone (a re-push writes nothing); blobs the
//! registry has are skipped (HEAD), blobs other repositories of the registry
//! hold are mounted ([`super::mounts`]), the rest uploaded in parallel; the
//! manifest (or index) goes last, so a registry never names an image whose
//! blobs it lacks.
//!
//! [`collect`] reads the local layout (it is not network code); the blobs
//! go through [`super::upload`].

use std::path::Path;
use std::sync::Arc;

use super::client::RegistryOperation;
use serde::Serialize;

use super::client::{Remote, RemoteOptions};
use super::mounts::remember;
use super::report::{BlobAction, BlobReport};
use super::runtime::with_runtime;
use super::upload::{collect, push_blobs, Blob, Doc};
use crate::error::{Content, Error, Result};
use crate::layout::Layout;
use crate::oci::descriptor::*;
use crate::oci::digest::Sha256Digest;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;

/// What `push` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PushReport {
    /// The reference pushed to.
    pub reference: String,
    /// Digest of the manifest or index the reference now names.
    pub digest: Sha256Digest,
    /// The media type of the image (manifest or index).
    pub media_type: MediaType,
    /// What happened to each blob.
    pub blobs: Vec<BlobReport>,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the repository had already.
    pub skipped: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
    /// Bytes uploaded.
    pub bytes_sent: u64,
    /// Manifests and indexes written.
    pub manifests: usize,
    /// True when the registry already named the image under every tag:
    /// nothing was written.
    pub up_to_date: bool,
    /// What happened to each tag.
    pub tags: Vec<TagReport>,
    /// The layout's referrers of the image, pushed after it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<super::referrers::ReferrerReport>,
    /// The `sha256-<hex>.sig` images the layout's cosign signatures (its
    /// signature referrers) were added to, where cosign looks for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<String>,
}

impl PushReport {
    /// Count in the referrers pushed after the image, and their blobs.
    fn add_referrers(
        &mut self,
        listed: Vec<super::referrers::ReferrerReport>,
        blobs: Vec<BlobReport>,
    ) {
        let written = listed.iter().filter(|r| r.listed != "unchanged").count();
        let sent = |a: BlobAction| blobs.iter().filter(|b| b.action == a).count();
        self.uploaded += sent(BlobAction::Uploaded);
        self.skipped += sent(BlobAction::Skipped);
        self.mounted += sent(BlobAction::Mounted);
        self.bytes_sent += blobs
            .iter()
            .filter(|b| b.action == BlobAction::Uploaded)
            .map(|b| b.size)
            .sum::<u64>();
        // A referrer's manifest, and for the fallback its subject's index
        // (written once for all of a subject's referrers, as `diff`
        // counts it; rewrites after a lost write are not counted).
        let indexes: std::collections::BTreeSet<&Sha256Digest> = listed
            .iter()
            .filter(|r| r.listed == "fallback")
            .map(|r| &r.subject)
            .collect();
        self.manifests += written + indexes.len();
        self.up_to_date &= written == 0 && sent(BlobAction::Uploaded) == 0;
        self.blobs.extend(blobs);
        self.blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
        self.referrers = listed;
    }
}

/// What a push did to one tag.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct TagReport {
    /// The tag.
    pub tag: String,
    /// `set`, or `unchanged` (it already named the image: nothing sent).
    pub action: &'static str,
}

/// The image to push, as the local layout holds it.
struct Image<'a> {
    /// The layout's path, for messages.
    layout: &'a Path,
    /// The manifest or index pushed.
    root: Descriptor,
    docs: Vec<Doc>,
    blobs: Vec<Blob>,
}

impl Image<'_> {
    /// The document `digest` of the image.
    fn doc(&self, digest: &Sha256Digest) -> Result<&Doc> {
        self.docs
            .iter()
            .find(|d| d.digest == *digest)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: manifest {digest} is missing",
                    self.layout.display()
                ))
            })
    }
}

/// A tag to set, with the digest it is to name.
type TagTarget = (String, Sha256Digest);

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
    let tags = tags_to_set(&reader, target, &root, &docs)?;
    // The layout's referrers of the image (of its index or any of its
    // manifests) go after it.
    let subjects = docs.iter().map(|d| d.digest.clone()).collect();
    let referrers = crate::referrers::of_subjects(&reader, &subjects)?;
    let image = Image {
        layout,
        root,
        docs,
        blobs,
    };
    with_runtime(|rt| {
        let remote = rt.block_on(Remote::connect(target, opts, RegistryOperation::Push))?;
        let (mut report, sent) =
            rt.block_on(send(&remote, &image, target, &tags, opts, progress.clone()))?;
        if sent {
            // The cache's file is read and written here, not on a task.
            remember(
                opts.blob_cache.as_deref(),
                &target.registry,
                &target.repository,
                image.blobs.iter().map(|b| b.digest.clone()),
            );
        }
        if !referrers.is_empty() {
            let (listed, blobs) = rt.block_on(super::referrers::push(
                &remote,
                &reader,
                target,
                &referrers,
                opts,
                progress.clone(),
            ))?;
            report.add_referrers(listed, blobs);
        }
        // The signature referrers' layers also go to the `.sig` tag of
        // their subject, where cosign looks by default.
        for (subject, layers) in signature_layers(&reader, &referrers)? {
            let (at, _) = rt.block_on(super::signature::copy_layers(
                &remote,
                target,
                &subject,
                layers,
                opts,
                progress.clone(),
            ))?;
            report.signatures.push(at.to_string());
        }
        Ok(report)
    })
}

/// Signed payload layers, each descriptor with its payload.
type PayloadLayers = Vec<(serde_json::Value, Vec<u8>)>;

/// The payload layers of the cosign signature referrers among
/// `referrers`, by subject.
fn signature_layers(
    reader: &Layout,
    referrers: &[(Descriptor, Sha256Digest)],
) -> Result<Vec<(Sha256Digest, PayloadLayers)>> {
    let mut out: Vec<(Sha256Digest, PayloadLayers)> = Vec::new();
    for (r, subject) in referrers {
        let bytes = reader.read_document(r)?;
        let Ok(doc) = serde_json::from_slice(&bytes) else {
            continue;
        };
        let Some(layers) = crate::sign::local::signature_layers(&doc) else {
            continue;
        };
        let mut with_bytes = Vec::new();
        for l in layers {
            let d: Descriptor = serde_json::from_value(l.clone()).map_err(|e| {
                Error::Invalid(format!(
                    "{}: signature referrer {}: a layer is not a descriptor: {e}",
                    reader.dir().display(),
                    r.digest
                ))
            })?;
            with_bytes.push((l, reader.read_document(&d)?));
        }
        match out.iter_mut().find(|(s, _)| s == subject) {
            Some((_, all)) => all.extend(with_bytes),
            None => out.push((subject.clone(), with_bytes)),
        }
    }
    out.retain(|(_, l)| !l.is_empty());
    Ok(out)
}

/// The tags to set, each with the digest it is to name: the target's tag
/// (a reference with a tag and a digest names the tag; the digest was
/// checked against the image); with neither, every name the layout gives
/// the image or, through platform tags, one of its manifests (`latest`
/// when it gives none).
fn tags_to_set(
    reader: &Layout,
    target: &Reference,
    root: &Descriptor,
    docs: &[Doc],
) -> Result<Vec<TagTarget>> {
    Ok(match (&target.tag, &target.digest) {
        (Some(t), _) => vec![(t.clone(), root.digest.clone())],
        (None, Some(_)) => Vec::new(),
        (None, None) => {
            let mut named: Vec<TagTarget> = Vec::new();
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
    })
}

/// Send what the registry lacks of `image`, then name it under each tag
/// still to set (or by digest, with no tag). Also returns whether
/// anything was to be sent (the registry now holds every blob).
async fn send(
    remote: &Remote,
    image: &Image<'_>,
    target: &Reference,
    tags: &[TagTarget],
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<(PushReport, bool)> {
    let root = &image.root;
    let (mut tag_reports, stale) = stale_tags(remote, target, tags).await?;
    let by_digest = target.with_digest(&root.digest);
    let have_root = if tags.is_empty() || !stale.is_empty() {
        remote.manifest_digest(&by_digest).await?.as_ref() == Some(&root.digest)
    } else {
        true
    };
    if stale.is_empty() && have_root {
        return Ok((report(target, root, Vec::new(), 0, tag_reports), false));
    }
    let mut results = Vec::new();
    let mut manifests = 0;
    if !have_root {
        results = push_blobs(remote, target, &image.blobs, opts, progress).await?;
        manifests += push_child_manifests(remote, target, image).await?;
    }
    let places: Vec<(Reference, &Doc)> = if tags.is_empty() {
        vec![(by_digest, image.doc(&root.digest)?)]
    } else {
        stale
            .iter()
            .map(|(t, d)| Ok((target.with_tag(t), image.doc(d)?)))
            .collect::<Result<_>>()?
    };
    for (at, doc) in &places {
        put_top(remote, at, doc).await?;
        manifests += 1;
        if let Some(t) = &at.tag {
            tag_reports.push(TagReport {
                tag: t.clone(),
                action: "set",
            });
        }
    }
    Ok((report(target, root, results, manifests, tag_reports), true))
}

/// Asks the registry what each tag names (HEAD, in order): the tags that
/// name their digest already, reported `unchanged`, and the tags still to
/// set.
async fn stale_tags(
    remote: &Remote,
    target: &Reference,
    tags: &[TagTarget],
) -> Result<(Vec<TagReport>, Vec<TagTarget>)> {
    let mut unchanged = Vec::new();
    let mut stale = Vec::new();
    for (t, digest) in tags {
        let now = remote.manifest_digest(&target.with_tag(t)).await?;
        if now.as_ref() == Some(digest) {
            unchanged.push(TagReport {
                tag: t.clone(),
                action: "unchanged",
            });
        } else {
            stale.push((t.clone(), digest.clone()));
        }
    }
    Ok((unchanged, stale))
}

/// Every document of `image` but its top one, children first, by digest:
/// how many were written.
async fn push_child_manifests(
    remote: &Remote,
    target: &Reference,
    image: &Image<'_>,
) -> Result<usize> {
    let mut written = 0;
    for doc in image.docs.iter().filter(|d| d.digest != image.root.digest) {
        remote
            .put_manifest(
                &target.with_digest(&doc.digest),
                &doc.bytes,
                &doc.media_type,
            )
            .await?;
        written += 1;
    }
    Ok(written)
}

/// Put `doc` at `at` and check that `at` now names it, as the registry
/// says (its answer to the PUT, or a HEAD when it gave none).
async fn put_top(remote: &Remote, at: &Reference, doc: &Doc) -> Result<()> {
    let stored = remote.put_manifest(at, &doc.bytes, &doc.media_type).await?;
    let now = match stored.as_deref().and_then(Sha256Digest::parse) {
        Some(d) => Some(d),
        None => remote.manifest_digest(at).await?,
    };
    if now.as_ref() != Some(&doc.digest) {
        return Err(Error::DigestMismatch {
            context: format!("{at} after the push"),
            expected: Content::Digest(doc.digest.clone()),
            found: now.map_or(Content::Nothing, Content::Digest),
        });
    }
    Ok(())
}

/// The report of a push of `root` to `target`: `blobs` as sent (listed in
/// digest order, whatever order the parallel transfers ended in), the
/// number of `manifests` written, what happened to each tag.
fn report(
    target: &Reference,
    root: &Descriptor,
    mut blobs: Vec<BlobReport>,
    manifests: usize,
    tags: Vec<TagReport>,
) -> PushReport {
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    let count = |a: BlobAction| blobs.iter().filter(|r| r.action == a).count();
    PushReport {
        reference: target.to_string(),
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        up_to_date: manifests == 0
            && count(BlobAction::Uploaded) == 0
            && count(BlobAction::Mounted) == 0,
        tags,
        uploaded: count(BlobAction::Uploaded),
        skipped: count(BlobAction::Skipped),
        mounted: count(BlobAction::Mounted),
        bytes_sent: blobs
            .iter()
            .filter(|r| r.action == BlobAction::Uploaded)
            .map(|r| r.size)
            .sum(),
        manifests,
        blobs,
        referrers: Vec::new(),
        signatures: Vec::new(),
    }
}
