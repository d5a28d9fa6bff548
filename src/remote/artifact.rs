//! `artifact push` and `artifact pull`: files and directories as an OCI
//! artifact, the way ORAS clients move them, so that each side reads what
//! the other writes.
//!
//! - A file is a layer holding its bytes, named by
//!   `org.opencontainers.image.title`.
//! - A directory is a tar+gzip layer titled with the directory's name,
//!   holding it under that name, annotated `io.deis.oras.content.unpack:
//!   "true"` and `io.deis.oras.content.digest` (the tar's sha256), as ORAS
//!   packs one; nixoci's tar is deterministic (sorted, owners 0, fixed
//!   times), so the same directory gives the same digest.
//! - Without a config, the OCI 1.1 empty descriptor, and `artifactType`
//!   set (the image spec requires it then).
//! - The manifest is canonical JSON: the same inputs, the same digest.
//!
//! A pull unpacks into a temporary directory beside the target with the
//! safe extractor ([`crate::unpack`]: names, links, sizes and counts
//! checked, digests verified), then moves each file or directory into
//! place; an existing one is an error unless `overwrite`, and that is
//! checked before anything moves. Only titled layers are an artifact's
//! files, and a packed directory writes only under its title
//! ([`crate::artifact::check_files`], before anything is written); what
//! is written becomes the user's ([`crate::artifact::make_own`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::client::{Remote, RemoteOptions};
use super::report::BlobReport;
use super::runtime::with_runtime;
use super::upload::{push_blobs, Blob};
use crate::artifact::{validate_name, ANNOTATION_TITLE};
use crate::error::{Error, IoContext, Result};
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::canonical_json;
use crate::oci::media_type::validate_media_type;
use crate::oci::reference::Reference;
use crate::oci::MediaType;
use crate::progress::Progress;

pub use crate::artifact::{ANNOTATION_CONTENT_DIGEST, ANNOTATION_UNPACK};
/// The artifact type when none is given and there is no config (as the
/// ORAS command line names it).
pub const DEFAULT_ARTIFACT_TYPE: &str = "application/vnd.unknown.artifact.v1";

/// One thing to push: a file (with its media type) or a directory.
#[derive(Clone, Debug)]
pub enum Input {
    File { path: PathBuf, media_type: String },
    Dir { path: PathBuf },
}

/// What to push besides the inputs. Built with [`PushOptions::default`]
/// (no config, no annotations, no subject, the default limits), then the
/// fields set that differ.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PushOptions {
    /// The manifest's `artifactType`; `None`: none with a config, else
    /// [`DEFAULT_ARTIFACT_TYPE`].
    pub artifact_type: Option<String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Annotations of files, by title (ORAS's annotations file).
    pub file_annotations: BTreeMap<String, BTreeMap<String, String>>,
    /// Annotations of the config (`$config`).
    pub config_annotations: BTreeMap<String, String>,
    /// A config file and its media type; `None`: the empty descriptor.
    pub config: Option<(PathBuf, String)>,
    /// The manifest this artifact refers to (same repository).
    pub subject: Option<Reference>,
    /// The most a file, and all of them, may hold
    /// ([`crate::untar::Limits::max_file_size`] and
    /// [`crate::untar::Limits::max_total_size`]).
    pub limits: crate::untar::Limits,
}

/// How to pull an artifact. Built with [`PullOptions::default`] (refuse
/// to replace a file, the default limits), then the fields set that
/// differ.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PullOptions {
    /// Replace files and directories of the target directory that the
    /// artifact has too; without it, one that exists is an error (checked
    /// before anything is written).
    pub overwrite: bool,
    /// The limits of the unpacking (sizes, entry counts).
    pub limits: crate::untar::Limits,
}

/// How to attach files to an image: [`AttachOptions::new`] with the
/// artifact's type, then the fields set that differ.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AttachOptions {
    /// The artifact's type (a media type, e.g. `application/spdx+json`).
    pub artifact_type: String,
    /// Annotations of the artifact's manifest.
    pub annotations: BTreeMap<String, String>,
    /// The most a file, and all of them, may hold.
    pub limits: crate::untar::Limits,
}

impl AttachOptions {
    /// An artifact of `artifact_type`, without annotations, with the
    /// default limits.
    pub fn new(artifact_type: &str) -> Self {
        AttachOptions {
            artifact_type: artifact_type.to_owned(),
            annotations: BTreeMap::new(),
            limits: crate::untar::Limits::default(),
        }
    }
}

/// What a push did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactPushReport {
    pub reference: String,
    pub digest: Sha256Digest,
    pub artifact_type: Option<String>,
    pub layers: Vec<Descriptor>,
    pub blobs: Vec<BlobReport>,
    /// The manifest the artifact refers to (`--subject`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Sha256Digest>,
    /// With a subject: `api`, `fallback` or `unchanged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed: Option<&'static str>,
}

/// ORAS's annotations file, read: the manifest's, the config's, and each
/// file's (by name).
#[derive(Clone, Debug, Default)]
pub struct AnnotationsFile {
    pub manifest: BTreeMap<String, String>,
    pub config: BTreeMap<String, String>,
    pub files: BTreeMap<String, BTreeMap<String, String>>,
}

/// Parse ORAS's annotations file: `$manifest`, `$config`, and one object
/// per file title, each of string values.
pub fn read_annotations_file(path: &Path) -> Result<AnnotationsFile> {
    let bytes = crate::oci::json::read_limited(path, crate::oci::json::MAX_DOCUMENT)?;
    let mut files: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_slice(&bytes)
        .map_err(|e| {
            Error::Invalid(format!(
                "{}: not an annotations file (an object of objects of strings, with \"$manifest\", \"$config\" and file names): {e}",
                path.display()
            ))
        })?;
    let manifest = files.remove("$manifest").unwrap_or_default();
    let config = files.remove("$config").unwrap_or_default();
    Ok(AnnotationsFile {
        manifest,
        config,
        files,
    })
}

/// Refuse a symbolic link under `root` that leads out of it (absolute, or
/// climbing above it): the packed directory would point outside itself.
fn check_links(root: &Path) -> Result<()> {
    for e in walkdir::WalkDir::new(root) {
        let e = e.map_err(|e| Error::Invalid(format!("{}: {e}", root.display())))?;
        if !e.path_is_symlink() {
            continue;
        }
        let target = std::fs::read_link(e.path()).at(e.path())?;
        let rel = e.path().strip_prefix(root).unwrap_or(e.path());
        let mut depth = rel.components().count() as i64 - 1;
        let escapes = target.is_absolute()
            || target.components().any(|c| {
                match c {
                    std::path::Component::ParentDir => depth -= 1,
                    std::path::Component::Normal(_) => depth += 1,
                    _ => {}
                }
                depth < 0
            });
        if escapes {
            return Err(Error::Invalid(format!(
                "{}: a symbolic link to {} leads out of the directory; refused",
                e.path().display(),
                target.display()
            )));
        }
    }
    Ok(())
}

/// Push `inputs` as an artifact to `target` (its tag, else by digest).
pub fn push(
    target: &Reference,
    inputs: &[Input],
    o: &PushOptions,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<ArtifactPushReport> {
    if inputs.is_empty() {
        return Err(Error::Invalid(
            "artifact push needs at least one file or directory".into(),
        ));
    }
    if let Some(t) = &o.artifact_type {
        validate_media_type(t).map_err(Error::Invalid)?;
    }
    let tmp = crate::layout::Scratch::new("artifact")?;
    let mut blobs: Vec<Blob> = Vec::new();
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut total = 0u64;
    for (i, input) in inputs.iter().enumerate() {
        let (path, dir) = match input {
            Input::File { path, .. } => (path, false),
            Input::Dir { path } => (path, true),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Invalid(format!("{}: no file name", path.display())))?;
        validate_name(&name)?;
        if layers
            .iter()
            .any(|l| l.annotations.get(ANNOTATION_TITLE) == Some(&name))
        {
            return Err(Error::Invalid(format!(
                "two files are named {name:?}: an artifact's files need distinct names"
            )));
        }
        let mut annotations = o.file_annotations.get(&name).cloned().unwrap_or_default();
        annotations.insert(ANNOTATION_TITLE.to_owned(), name.clone());
        let (media_type, digest, size, file) = if dir {
            check_links(path)?;
            let spec: crate::spec::LayerSpec = serde_json::from_value(json!({
                "files": [{"source": std::fs::canonicalize(path).at(path)?, "destination": format!("/{name}/")}],
                "compression": "gzip",
            }))
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            let out = tmp.path().join(format!("dir-{i}"));
            let info = crate::build::layer(&spec, path, &out, &crate::build::Options::default())?;
            annotations.insert(ANNOTATION_UNPACK.to_owned(), "true".to_owned());
            annotations.insert(
                ANNOTATION_CONTENT_DIGEST.to_owned(),
                info.diff_id.to_string(),
            );
            let file = crate::layout::BlobDir::new(&out).path(&info.digest);
            (MediaType::LAYER_GZIP, info.digest, info.size, file)
        } else {
            let Input::File { media_type, .. } = input else {
                unreachable!()
            };
            validate_media_type(media_type).map_err(Error::Invalid)?;
            // Opened first, then checked through the open file: a FIFO
            // swapped in after a check by path would block the open.
            let f = match crate::oci::json::open_regular(path) {
                Ok((f, _)) => f,
                Err(_) if path.is_dir() => {
                    return Err(Error::Invalid(format!(
                    "{}: not a regular file (a directory is packed; give it without :MEDIATYPE)",
                    path.display()
                )))
                }
                Err(e) => return Err(e),
            };
            let (digest, size) = crate::oci::digest::digest_reader(f).at(path)?;
            (
                MediaType::from(media_type.clone()),
                digest,
                size,
                path.clone(),
            )
        };
        if size > o.limits.max_file_size {
            return Err(Error::Invalid(format!(
                "{}: {size} bytes, more than the {} a file may have",
                path.display(),
                o.limits.max_file_size
            )));
        }
        total = total.saturating_add(size);
        if total > o.limits.max_total_size {
            return Err(Error::Invalid(format!(
                "the inputs add up to more than the {} bytes an artifact may hold",
                o.limits.max_total_size
            )));
        }
        layers.push(Descriptor {
            media_type,
            digest: digest.clone(),
            size,
            platform: None,
            annotations,
            artifact_type: None,
        });
        blobs.push(Blob {
            digest,
            size,
            path: file,
        });
    }
    let config = match &o.config {
        Some((path, media_type)) => {
            validate_media_type(media_type).map_err(Error::Invalid)?;
            let (f, _) = crate::oci::json::open_regular(path)?;
            let (digest, size) = crate::oci::digest::digest_reader(f).at(path)?;
            let max = crate::oci::json::MAX_DOCUMENT;
            if size > max {
                return Err(Error::Invalid(format!(
                    "{}: a config of {size} bytes, more than the {} MiB ({max} bytes) nixoci pull reads; refused",
                    path.display(),
                    max >> 20
                )));
            }
            blobs.push(Blob {
                digest: digest.clone(),
                size,
                path: path.clone(),
            });
            let mut c = json!({"mediaType": media_type, "digest": digest, "size": size});
            if !o.config_annotations.is_empty() {
                c["annotations"] = json!(o.config_annotations);
            }
            c
        }
        None => {
            let empty = tmp.path().join("empty.json");
            std::fs::write(&empty, b"{}").at(&empty)?;
            blobs.push(Blob {
                digest: Sha256Digest::of(b"{}"),
                size: 2,
                path: empty,
            });
            json!({"mediaType": MediaType::EMPTY, "digest": Sha256Digest::of(b"{}"), "size": 2, "data": "e30="})
        }
    };
    let artifact_type = o
        .artifact_type
        .clone()
        .or_else(|| o.config.is_none().then(|| DEFAULT_ARTIFACT_TYPE.to_owned()));
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);
    with_runtime(|rt| {
        rt.block_on(async {
            let remote =
                Remote::connect(target, opts, super::client::RegistryOperation::Push).await?;
            let mut manifest = json!({
                "schemaVersion": 2,
                "mediaType": MediaType::MANIFEST,
                "config": config,
                "layers": layers,
            });
            if let Some(t) = &artifact_type {
                manifest["artifactType"] = json!(t);
            }
            if !o.annotations.is_empty() {
                manifest["annotations"] = json!(o.annotations);
            }
            let mut subject_digest = None;
            if let Some(s) = &o.subject {
                if s.registry != target.registry || s.repository != target.repository {
                    return Err(Error::Invalid(format!(
                        "--subject {s}: a subject must be in the artifact's repository {}/{}",
                        target.registry, target.repository
                    )));
                }
                let (bytes, digest) = remote.manifest_raw(s).await?;
                let doc: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Invalid(format!("{s}: the manifest is not JSON: {e}")))?;
                manifest["subject"] = json!({
                    "mediaType": super::api::media_type_of(&doc),
                    "digest": digest,
                    "size": bytes.len(),
                });
                subject_digest = Some(digest);
            }
            let sent = push_blobs(&remote, target, &blobs, opts, progress).await?;
            let bytes = canonical_json(&manifest);
            let digest = Sha256Digest::of(&bytes);
            let at = if target.tag.is_some() {
                target.clone()
            } else {
                target.with_digest(&digest)
            };
            if let Some(d) = &target.digest {
                if *d != digest {
                    return Err(Error::Invalid(format!(
                        "{target} names digest {d}, but the artifact's manifest is {digest}"
                    )));
                }
            }
            let (_, said_so) = remote
                .put_manifest_answer(&at, &bytes, &MediaType::MANIFEST)
                .await?;
            let keeps = match &subject_digest {
                Some(s) => super::referrers::keeps(&remote, target, s, said_so).await?,
                None => false,
            };
            let listed = match &subject_digest {
                None => None,
                Some(_) if keeps => Some("api"),
                Some(s) => {
                    let desc = Descriptor {
                        media_type: MediaType::MANIFEST,
                        digest: digest.clone(),
                        size: bytes.len() as u64,
                        platform: None,
                        annotations: o.annotations.clone(),
                        artifact_type: artifact_type.clone(),
                    };
                    let entry = crate::referrers::listing_entry(&desc, &bytes);
                    let how =
                        super::referrers::list_under_fallback(&remote, target, s, &[entry]).await?;
                    how.first().copied()
                }
            };
            Ok(ArtifactPushReport {
                reference: at.to_string(),
                digest,
                artifact_type,
                layers,
                blobs: sent,
                subject: subject_digest,
                listed,
            })
        })
    })
}

/// What `attach` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachReport {
    pub reference: String,
    /// The manifest the artifact is attached to.
    pub subject: Sha256Digest,
    /// The artifact manifest.
    pub digest: Sha256Digest,
    pub artifact_type: String,
    /// `api`, `fallback` or `unchanged` (see
    /// [`super::referrers::ReferrerReport::listed`]).
    pub listed: &'static str,
    pub files: Vec<Descriptor>,
    pub blobs: Vec<BlobReport>,
}

/// A file to attach: its path, and its media type.
#[derive(Clone, Debug)]
pub struct AttachFile {
    pub path: PathBuf,
    pub media_type: MediaType,
}

/// Attach `files` to the image `target` names, as an artifact of the type
/// `o` gives: an artifact [`push`] of them, by digest into the image's
/// repository, with the image as its `subject` (listed as the registry
/// lists referrers: its own API, or the fallback tag). Names, media types
/// and sizes are checked before anything is sent.
pub fn attach(
    target: &Reference,
    files: &[AttachFile],
    o: &AttachOptions,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<AttachReport> {
    let artifact_type = o.artifact_type.as_str();
    if files.is_empty() {
        return Err(Error::Invalid("attach needs at least one file".into()));
    }
    let inputs: Vec<Input> = files
        .iter()
        .map(|f| Input::File {
            path: f.path.clone(),
            media_type: f.media_type.as_str().to_owned(),
        })
        .collect();
    let push_options = PushOptions {
        artifact_type: Some(artifact_type.to_owned()),
        annotations: o.annotations.clone(),
        subject: Some(target.clone()),
        limits: o.limits,
        ..Default::default()
    };
    let repository = Reference {
        tag: None,
        digest: None,
        ..target.clone()
    };
    let pushed = push(&repository, &inputs, &push_options, opts, progress)?;
    Ok(AttachReport {
        reference: target.to_string(),
        subject: pushed.subject.expect("a push with a subject names it"),
        digest: pushed.digest,
        artifact_type: artifact_type.to_owned(),
        listed: pushed.listed.expect("a push with a subject is listed"),
        files: pushed.layers,
        blobs: pushed.blobs,
    })
}

/// What a pull wrote.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactPullReport {
    pub reference: String,
    pub digest: Sha256Digest,
    pub dir: PathBuf,
    /// The files and directories written, by name.
    pub written: Vec<String>,
}

/// Pull the artifact `source` names into the directory `dir` (made when
/// missing), as `o` says: each file under its title, each packed
/// directory unpacked.
pub fn pull(
    source: &Reference,
    dir: &Path,
    o: &PullOptions,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<ArtifactPullReport> {
    let (overwrite, limits) = (o.overwrite, &o.limits);
    crate::layout::check_may_change(dir)?;
    std::fs::create_dir_all(dir).at(dir)?;
    // Removed however this ends, read-only directories and all (a packed
    // directory may hold some); one a killed pull left is removed here.
    let work = crate::layout::Scratch::new_in(dir, "artifact")?;
    let layout = work.path().join("layout");
    let image_options = super::pull::PullOptions::default();
    let pulled = super::pull::pull(source, &layout, &image_options, opts, progress)?;
    // An ordinary image is no artifact: its root filesystem would land in
    // `dir`. (`unpack` checks the packed directories of an artifact.)
    let image = crate::layout::Layout::open(&layout)?.resolve(None, None)?;
    crate::artifact::check_titles(&image)?;
    let unpacked = work.path().join("files");
    let uopts = crate::unpack::UnpackOptions {
        limits: *limits,
        ..Default::default()
    };
    crate::unpack::unpack(&layout, None, &unpacked, &uopts)
        .map_err(|e| e.within(format!("the artifact {source}")))?;
    let mut names: Vec<String> = std::fs::read_dir(&unpacked)
        .at(&unpacked)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .at(&unpacked)?;
    names.sort();
    for n in &names {
        crate::artifact::make_own(&unpacked.join(n))?;
    }
    // Every conflict before anything moves.
    for n in &names {
        let target = dir.join(n);
        if std::fs::symlink_metadata(&target).is_ok() && !overwrite {
            return Err(Error::Invalid(format!(
                "{}: already exists; give --overwrite to replace it",
                target.display()
            )));
        }
    }
    crate::layout::durable::sync_before_rename(&unpacked, dir)?;
    for n in &names {
        let target = dir.join(n);
        if let Ok(m) = std::fs::symlink_metadata(&target) {
            if m.is_dir() {
                crate::unpack::make_removable(&target);
                std::fs::remove_dir_all(&target).at(&target)?;
            } else {
                std::fs::remove_file(&target).at(&target)?;
            }
        }
        std::fs::rename(unpacked.join(n), &target).at(&target)?;
        crate::layout::durable::sync_after_rename(&target)?;
    }
    Ok(ArtifactPullReport {
        reference: source.to_string(),
        digest: pulled.digest,
        dir: dir.to_owned(),
        written: names,
    })
}
