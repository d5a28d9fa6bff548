//! `pull`: an image of a registry into a new image layout, every digest
//! and size verified while reading, the declared sizes checked against the
//! free disk space before anything is written, and the layout committed
//! only when complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::RegistryOperation;
use serde::Serialize;
use serde_json::Value;

use super::api::{fetch_graph, media_type_of};
use super::client::{runtime, Remote, RemoteOptions};
use super::errors::{Capped, Failure};
use super::mounts::remember;
use super::report::{BlobAction, BlobReport};
use crate::documents::index_document;
use crate::error::{Content, Error, IoContext, Result};
use crate::layout::{BlobDir, Staging};
use crate::oci::descriptor::*;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::read_json;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;

/// What `pull` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    pub reference: String,
    pub layout: PathBuf,
    pub digest: Sha256Digest,
    pub media_type: MediaType,
    pub tag: Option<String>,
    pub blobs: Vec<BlobReport>,
    pub bytes_received: u64,
    /// The referrers pulled with it (`--referrers`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<Sha256Digest>,
    /// With `--referrers`: the registry listed them through its referrers
    /// API (it keeps referrers itself), not a fallback tag.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub referrers_api: bool,
}

/// Bytes free for this user on the file system holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is a C struct of integers, for which all-zero bytes
    // are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a struct this function
    // owns; the call reads the one and writes only the other.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Pull `source` into a new image layout at `dir`, verifying every digest
/// and size while reading. For an index, `platform` picks one manifest
/// (the layout then holds just that image); without it, every platform is
/// pulled. The layout names the image with the reference's tag (or `tag`).
pub fn pull(
    source: &Reference,
    dir: &Path,
    platform: Option<&Platform>,
    tag: Option<&str>,
    force: bool,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<PullReport> {
    pull_with(source, dir, platform, tag, force, false, opts, progress)
}

/// [`pull`], and with `referrers` the image's referrers too (of its
/// manifest, or of its index and each manifest pulled): each artifact's
/// manifest and blobs, listed in `index.json` as referrers.
#[allow(clippy::too_many_arguments)]
pub fn pull_with(
    source: &Reference,
    dir: &Path,
    platform: Option<&Platform>,
    tag: Option<&str>,
    force: bool,
    referrers: bool,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<PullReport> {
    let name = tag.map(str::to_owned).or_else(|| source.tag.clone());
    if let Some(n) = &name {
        crate::oci::reference::validate_tag(n)?;
    }
    let staging = Staging::new(dir, force, &[])?;
    let (mut root, mut blobs, attached, referrers_api) = runtime()?.block_on(fetch_image(
        source, platform, referrers, &staging, opts, progress,
    ))?;
    // Listed in digest order, whatever order the parallel downloads ended in.
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    if let Some(n) = &name {
        root.annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), n.clone());
    }
    let mut entries = vec![root.clone()];
    entries.extend(attached.iter().cloned());
    staging.write_layout(&index_document(&entries, &BTreeMap::new(), None)?)?;
    let layout = staging.commit()?;
    Ok(PullReport {
        reference: source.to_string(),
        layout,
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        tag: name,
        bytes_received: blobs.iter().map(|b| b.size).sum(),
        blobs,
        referrers: attached.into_iter().map(|d| d.digest).collect(),
        referrers_api,
    })
}

/// Everything of the image into `staging`'s blobs: its documents and
/// blobs, fetched and verified. Returns the descriptor of the image the
/// layout is to name, what happened to each blob, the referrers, and
/// whether the registry listed them through its referrers API.
async fn fetch_image(
    source: &Reference,
    platform: Option<&Platform>,
    with_referrers: bool,
    staging: &Staging,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<(Descriptor, Vec<BlobReport>, Vec<Descriptor>, bool)> {
    let blobs_dir = staging.blobs();
    let remote = Remote::connect(source, opts, RegistryOperation::Pull).await?;
    let mut image = fetch_documents(&remote, source, platform).await?;
    // The referrers of every document pulled: their manifests join the
    // documents, their blobs the wanted ones.
    let mut attached: Vec<Descriptor> = Vec::new();
    let mut api = false;
    if with_referrers {
        let subjects: Vec<Sha256Digest> = image.documents.iter().map(|(d, _)| d.clone()).collect();
        for s in subjects {
            let (from, found) = super::referrers::of_subject(&remote, source, &s).await?;
            api |= from == "api";
            for r in found {
                if attached.iter().any(|a| a.digest == r.digest) {
                    continue;
                }
                let (bytes, _) = remote.manifest_raw(&source.with_digest(&r.digest)).await?;
                let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Invalid(format!("{source}: referrer {} is not JSON: {e}", r.digest))
                })?;
                if doc["subject"]["digest"].as_str() != Some(s.to_string().as_str()) {
                    return Err(Error::Invalid(format!(
                        "{source}: referrer {} is listed for {s} but names another subject",
                        r.digest
                    )));
                }
                image.documents.push((r.digest.clone(), bytes));
                image.manifests.push(doc);
                let mut entry = r.clone();
                entry.platform = None;
                entry.annotations.remove(ANNOTATION_REF_NAME);
                attached.push(entry);
            }
        }
    }
    let wanted = wanted_blobs(source, &image.manifests)?;
    check_free_space(source, &blobs_dir, &wanted)?;
    let results = pull_blobs(&remote, source, &blobs_dir, wanted, opts, progress).await?;
    if let (Some(p), false) = (platform, image.was_index) {
        check_platform(source, &image.manifests[0], &blobs_dir, p)?;
    }
    write_documents(staging, &blobs_dir, &image.documents)?;
    remember(
        opts.blob_cache.as_deref(),
        &source.registry,
        &source.repository,
        results.iter().map(|r| r.digest.clone()),
    );
    Ok((image.root, results, attached, api))
}

/// The documents of the image to pull, fetched and checked against their
/// descriptors, not yet written.
struct Documents {
    /// What the layout is to name: the reference's manifest or index, or
    /// the manifest the platform picked out of it.
    root: Descriptor,
    /// Every manifest and index under `root` (and `root`), with its bytes.
    documents: Vec<(Sha256Digest, Vec<u8>)>,
    /// The image manifests among them, parsed.
    manifests: Vec<Value>,
    /// Whether the reference named an index.
    was_index: bool,
}

/// The document `source` names and, for an index, the manifests chosen
/// out of it: the one for `platform`, or every one without it.
async fn fetch_documents(
    remote: &Remote,
    source: &Reference,
    platform: Option<&Platform>,
) -> Result<Documents> {
    let (bytes, digest) = remote.manifest_raw(source).await?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{source}: the manifest is not JSON: {e}")))?;
    let mut root = Descriptor {
        media_type: media_type_of(&doc),
        digest,
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
        artifact_type: None,
    };
    let mut documents: Vec<(Sha256Digest, Vec<u8>)> = vec![(root.digest.clone(), bytes)];
    let mut manifests: Vec<Value> = Vec::new();
    let was_index = root.media_type.is_index();
    if was_index {
        let children: Vec<Descriptor> = serde_json::from_value(doc["manifests"].clone())
            .map_err(|e| Error::Invalid(format!("{source}: invalid image index: {e}")))?;
        let chosen: Vec<Descriptor> = match platform {
            Some(p) => {
                let c = find_platform(remote, source, children, p).await?;
                documents.clear();
                root = c.clone();
                vec![c]
            }
            None => children,
        };
        for node in fetch_graph(remote, source, chosen).await? {
            if !node.is_index {
                manifests.push(node.doc);
            }
            documents.push((node.digest, node.bytes));
        }
    } else {
        manifests.push(doc);
    }
    Ok(Documents {
        root,
        documents,
        manifests,
        was_index,
    })
}

/// The manifest for `platform` among `children` of an index. Nested
/// indexes are searched as everywhere (one rule: `PlatformSearch`),
/// fetched as they are opened.
pub(super) async fn find_platform(
    remote: &Remote,
    source: &Reference,
    children: Vec<Descriptor>,
    platform: &Platform,
) -> Result<Descriptor> {
    let mut search = PlatformSearch::new(children, Some(platform));
    loop {
        match search
            .next_step()
            .map_err(|e| e.within(source.to_string()))?
        {
            SearchStep::Found(d) => return Ok(d),
            SearchStep::Open(d) => {
                let (b, _) = remote.manifest_raw(&source.with_digest(&d.digest)).await?;
                if b.len() as u64 != d.size {
                    return Err(Error::DigestMismatch {
                        context: format!("size of image index {}", d.digest),
                        expected: Content::Size(d.size),
                        found: Content::Size(b.len() as u64),
                    });
                }
                let nested: Refs = serde_json::from_slice(&b).map_err(|e| {
                    Error::Invalid(format!(
                        "{source}: image index {} is not valid: {e}",
                        d.digest
                    ))
                })?;
                search.enter(nested.manifests);
            }
        }
    }
}

/// The configs and layers of `manifests`, each digest once with its
/// declared size. A config is a document: bounded as `verify` bounds it.
fn wanted_blobs(source: &Reference, manifests: &[Value]) -> Result<BTreeMap<Sha256Digest, u64>> {
    let mut wanted: BTreeMap<Sha256Digest, u64> = BTreeMap::new();
    for m in manifests {
        let refs: Refs = serde_json::from_value(m.clone())
            .map_err(|e| Error::Invalid(format!("{source}: invalid manifest: {e}")))?;
        if let Some(c) = &refs.config {
            let max = crate::oci::json::MAX_DOCUMENT;
            if c.size > max {
                return Err(Capped::TooLarge.explain(
                    &source.to_string(),
                    &format!("the config {} it declares", c.digest),
                    max,
                ));
            }
        }
        for d in refs.config.iter().chain(refs.layers.iter()) {
            wanted.insert(d.digest.clone(), d.size);
        }
    }
    Ok(wanted)
}

/// Declared sizes must fit on the disk before anything is written: a
/// hostile or mistaken manifest cannot fill it.
fn check_free_space(
    source: &Reference,
    blobs_dir: &BlobDir,
    wanted: &BTreeMap<Sha256Digest, u64>,
) -> Result<()> {
    let need: u64 = wanted.values().fold(0u64, |a, b| a.saturating_add(*b));
    if let Some(free) = free_space(blobs_dir.root()) {
        if need > free {
            return Err(Error::Invalid(format!(
                "{source}: its blobs declare {need} bytes ({}), but {} has {free} bytes ({}) free; refused before writing",
                crate::inspect::human_size(need),
                blobs_dir.root().display(),
                crate::inspect::human_size(free)
            )));
        }
    }
    Ok(())
}

/// Every blob of `wanted` into `blobs_dir`, `opts.jobs` at once.
async fn pull_blobs(
    remote: &Remote,
    source: &Reference,
    blobs_dir: &BlobDir,
    wanted: BTreeMap<Sha256Digest, u64>,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<Vec<BlobReport>> {
    futures_util::stream::iter(wanted)
        .map(|(digest, size)| {
            let progress = progress.clone();
            async move { pull_blob(remote, source, blobs_dir, &digest, size, progress).await }
        })
        .buffer_unordered(opts.jobs.max(1))
        .try_collect()
        .await
}

/// A single-platform image must be the platform asked for: its config
/// (pulled already, in `blobs_dir`) says which it is.
fn check_platform(
    source: &Reference,
    manifest: &Value,
    blobs_dir: &BlobDir,
    platform: &Platform,
) -> Result<()> {
    let refs: Refs = serde_json::from_value(manifest.clone())
        .map_err(|e| Error::Invalid(format!("{source}: invalid manifest: {e}")))?;
    let config_desc = refs
        .config
        .ok_or_else(|| Error::Invalid(format!("{source}: the manifest has no config")))?;
    let config: Value = read_json(&blobs_dir.path(&config_desc.digest))?;
    let text = |k: &str| config[k].as_str().unwrap_or_default().to_owned();
    let have = Platform {
        architecture: text("architecture"),
        os: text("os"),
        variant: config["variant"].as_str().map(str::to_owned),
        os_version: None,
        os_features: None,
    };
    if !platform.accepts(Some(&have)) {
        return Err(Error::Invalid(format!(
            "{source} is an image for {have}, not {platform}"
        )));
    }
    Ok(())
}

/// The fetched manifests and indexes into `blobs_dir`, each verified
/// against its digest as it is named.
fn write_documents(
    staging: &Staging,
    blobs_dir: &BlobDir,
    documents: &[(Sha256Digest, Vec<u8>)],
) -> Result<()> {
    for (digest, bytes) in documents {
        let mut w = blobs_dir.writer()?;
        std::io::Write::write_all(&mut w, bytes).at(staging.path())?;
        w.complete_verified(digest, bytes.len() as u64, &format!("manifest {digest}"))?;
    }
    Ok(())
}

async fn pull_blob(
    remote: &Remote,
    source: &Reference,
    blobs_dir: &BlobDir,
    digest: &Sha256Digest,
    size: u64,
    progress: Arc<dyn Progress + Send>,
) -> Result<BlobReport> {
    progress.blob_start(&digest.to_string(), size);
    remote
        .retry(|| pull_blob_once(remote, source, blobs_dir, digest, size, &*progress))
        .await
        .map_err(|e| remote.explain_about(&format!("blob {digest} ({size} bytes)"), e))?;
    progress.blob_done(&digest.to_string(), BlobAction::Downloaded.as_str());
    Ok(BlobReport {
        digest: digest.clone(),
        size,
        action: BlobAction::Downloaded,
    })
}

async fn pull_blob_once(
    remote: &Remote,
    source: &Reference,
    blobs_dir: &BlobDir,
    digest: &Sha256Digest,
    size: u64,
    progress: &dyn Progress,
) -> std::result::Result<(), Failure> {
    let mut w = blobs_dir.writer()?;
    let root = blobs_dir.root().to_owned();
    let shown = digest.to_string();
    remote
        .get_blob(source, digest, size, &mut |chunk| {
            std::io::Write::write_all(&mut w, chunk).map_err(|e| Error::io(&root, e))?;
            progress.blob_advance(&shown, chunk.len() as u64);
            Ok(())
        })
        .await?;
    w.complete_verified(digest, size, &format!("blob {digest} from the registry"))
        .map_err(|e| match e {
            // Fetched again (a proxy or a cache may have garbled it).
            Error::DigestMismatch { .. } => Failure::Garbled(e),
            e => Failure::Local(e),
        })?;
    Ok(())
}
