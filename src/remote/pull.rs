//! `pull`: an image of a registry into a new image layout, every digest
//! and size verified while reading, the declared sizes checked against the
//! free disk space before anything is written, and the layout committed
//! only when complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::client::RegistryOperation;
use serde::Serialize;
use serde_json::Value;

use super::api::{fetch_graph, media_type_of};
use super::client::{Remote, RemoteOptions};
use super::download::pull_blobs;
use super::errors::Capped;
use super::mounts::remember;
use super::report::BlobReport;
use super::runtime::with_runtime;
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
#[non_exhaustive]
pub struct PullReport {
    /// The reference pulled, as written out.
    pub reference: String,
    /// The layout directory written.
    pub layout: PathBuf,
    /// The digest of the image (manifest or index) the layout names.
    pub digest: Sha256Digest,
    /// Its media type.
    pub media_type: MediaType,
    /// The tag the layout gives it, if any.
    pub tag: Option<String>,
    /// Each blob fetched, in digest order.
    pub blobs: Vec<BlobReport>,
    /// Bytes received for the blobs.
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

/// What to pull besides the reference, and how to write it. Built with
/// [`PullOptions::default`] (every platform, the reference's tag, a new
/// directory, no referrers), then the fields set that differ.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PullOptions {
    /// For an index, the platform whose one manifest to pull: the layout
    /// then holds just that image. For a single image, the platform it
    /// must be (its config is checked). `None`: every platform of an
    /// index, any of a single image.
    pub platform: Option<Platform>,
    /// The tag the layout gives the image; `None`: the reference's tag
    /// (none for a reference by digest alone).
    pub tag: Option<String>,
    /// Replace the layout directory when it exists (never one of the
    /// command's inputs, nor anything in the Nix store).
    pub force: bool,
    /// Also pull the image's referrers (of its manifest, or of its index
    /// and each manifest pulled): each artifact's manifest and blobs,
    /// listed as referrers, without a tag, in the layout nested at
    /// `referrers/` (docs/artifacts.md, "Where the referrers are listed"), as `nixoci
    /// sbom --attach` lists them.
    pub referrers: bool,
}

/// Pull `source` into a new image layout at `dir`, as `o` says, verifying
/// every digest and size while reading. The layout is written beside
/// `dir` and renamed into place when complete: a failed or interrupted
/// pull leaves nothing.
///
/// Safe to call from async code (it then runs on a thread of its own,
/// with a runtime of its own), though it blocks the calling thread until
/// done.
pub fn pull(
    source: &Reference,
    dir: &Path,
    o: &PullOptions,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<PullReport> {
    let name = o.tag.clone().or_else(|| source.tag.clone());
    if let Some(n) = &name {
        crate::oci::reference::validate_tag(n)?;
    }
    // Made before the runtime and dropped after it: the runtime's blocking
    // threads, which write the blobs, are done before a failed pull
    // removes the directory.
    let staging = Staging::new(dir, o.force, &[])?;
    let blobs_dir = staging.blobs();
    let fetched = with_runtime(|rt| fetch_image(rt, source, o, &blobs_dir, opts, progress))?;
    let Fetched {
        image,
        mut blobs,
        attached,
        referrers_api,
    } = fetched;
    // The disk work after the downloads, in plain sync code.
    if let (Some(p), false) = (&o.platform, image.was_index) {
        check_platform(source, &image.manifests[0], &blobs_dir, p)?;
    }
    write_documents(&staging, &blobs_dir, &image.documents)?;
    remember(
        opts.blob_cache.as_deref(),
        &source.registry,
        &source.repository,
        blobs.iter().map(|r| r.digest.clone()),
    );
    let mut root = image.root;
    // Listed in digest order, whatever order the parallel downloads ended in.
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    if let Some(n) = &name {
        root.annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), n.clone());
    }
    staging.write_layout(&index_document(
        std::slice::from_ref(&root),
        &BTreeMap::new(),
        None,
    )?)?;
    if !attached.is_empty() {
        // The referrers go in the layout nested at `referrers/`, after the
        // image: `index.json` keeps the image alone.
        let entries: Vec<Value> = std::iter::once(&root)
            .chain(attached.iter())
            .map(|d| serde_json::to_value(d).expect("a descriptor serialises"))
            .collect();
        crate::layout::nested::write(staging.path(), &entries)?;
    }
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

/// What [`fetch_image`] got: the documents (not yet written), what
/// happened to each blob (written), the referrers, and whether the
/// registry listed them through its referrers API.
struct Fetched {
    image: Documents,
    blobs: Vec<BlobReport>,
    attached: Vec<Descriptor>,
    referrers_api: bool,
}

/// The image's documents (and its referrers' with `o.referrers`),
/// fetched and checked; its blobs, fetched and verified into `blobs_dir`
/// (checked first against the free space). The network work runs on
/// `rt`, the blobs are written on its blocking threads
/// ([`super::download`]).
fn fetch_image(
    rt: &tokio::runtime::Runtime,
    source: &Reference,
    o: &PullOptions,
    blobs_dir: &BlobDir,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<Fetched> {
    let remote = rt.block_on(Remote::connect(source, opts, RegistryOperation::Pull))?;
    let mut image = rt.block_on(fetch_documents(&remote, source, o.platform.as_ref()))?;
    let (attached, referrers_api) = if o.referrers {
        rt.block_on(fetch_referrers(&remote, source, &mut image))?
    } else {
        (Vec::new(), false)
    };
    let wanted = wanted_blobs(source, &image.manifests)?;
    check_free_space(source, blobs_dir, &wanted)?;
    let blobs = rt.block_on(pull_blobs(
        &remote, source, blobs_dir, wanted, opts, progress,
    ))?;
    Ok(Fetched {
        image,
        blobs,
        attached,
        referrers_api,
    })
}

/// The referrers of every document of `image`: their manifests join its
/// documents (and manifests, so that their blobs are wanted). Returns
/// their descriptors, and whether the registry listed them through its
/// referrers API.
async fn fetch_referrers(
    remote: &Remote,
    source: &Reference,
    image: &mut Documents,
) -> Result<(Vec<Descriptor>, bool)> {
    let mut attached: Vec<Descriptor> = Vec::new();
    let mut api = false;
    let subjects: Vec<Sha256Digest> = image.documents.iter().map(|(d, _)| d.clone()).collect();
    for s in subjects {
        let (from, found) = super::referrers::of_subject(remote, source, &s).await?;
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
            let mut entry = r.clone();
            entry.platform = None;
            entry.annotations.remove(ANNOTATION_REF_NAME);
            if entry.artifact_type.is_none() {
                // As the referrers API gives it, whatever the listing held.
                entry.artifact_type = crate::referrers::artifact_type_of(&doc).map(str::to_owned);
            }
            image.documents.push((r.digest.clone(), bytes));
            image.manifests.push(doc);
            attached.push(entry);
        }
    }
    Ok((attached, api))
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
