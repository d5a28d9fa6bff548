//! The building blocks (`layer`, `config`, `manifest`, `layout`) and the
//! one-shot `build`, each a function from a spec to a finished output
//! directory.
//!
//! The building blocks are what the Nix functions chain: each writes its
//! blob(s) under `blobs/sha256/` plus a small JSON file describing them
//! (`layer.json`, `layers.json`, `config.json`, `manifest.json`: `info`)
//! that the next step reads at build time; `layers` writes the layers,
//! `options` holds how a step runs. Blobs a step only references (layers
//! under a manifest) stay where they are; their directories are listed in
//! `blobDirs`.

mod accounts;
mod info;
mod layers;
mod nixdb;
mod onto;
mod options;

pub use info::*;
pub use layers::{layers, write_layer};
pub use onto::{Onto, ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME};
pub use options::{Ctx, Options};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::documents::{config_document, index_document, manifest_document};
use crate::error::{Error, IoContext, Result};
use crate::layout::tags;
use crate::layout::{BlobDir, Staging};
use crate::oci::descriptor::{descriptor, Descriptor, ANNOTATION_REF_NAME};
use crate::oci::digest::Sha256Digest;
use crate::oci::json::read_json;
use crate::oci::MediaType;
use crate::spec::{self, ClosureSpec, ImageSpec, LayerRef, LayerSpec, LayoutSpec};

/// Every file and directory a layer spec reads, resolved against `base`.
fn layer_inputs(spec: &LayerSpec, base: &Path, inputs: &mut Vec<PathBuf>) {
    inputs.extend(
        spec.files
            .iter()
            .filter_map(|f| f.source.as_deref())
            .map(|s| spec::resolve(base, s)),
    );
    inputs.extend(spec.base.iter().map(|d| spec::resolve(base, d)));
    inputs.extend(spec.from_image.iter().map(|f| spec::resolve(base, &f.path)));
    match &spec.closure {
        None => {}
        Some(ClosureSpec::Paths(p)) => inputs.extend(p.iter().cloned()),
        Some(ClosureSpec::File { file, .. }) => inputs.push(spec::resolve(base, file)),
    }
}

/// Every file and directory an image spec reads: the spec, sources, layer
/// directories, the config directory and the directories holding its blobs.
fn image_inputs(spec: &ImageSpec, spec_path: &Path) -> Vec<PathBuf> {
    let base = spec::base_dir(spec_path);
    let mut inputs = vec![spec_path.to_owned()];
    for layer in &spec.layers {
        match layer {
            LayerRef::Dir(d) => inputs.push(spec::resolve(&base, d)),
            LayerRef::Inline(l) => layer_inputs(l, &base, &mut inputs),
        }
    }
    if let Some(l) = spec.rootfs_layer() {
        layer_inputs(&l, &base, &mut inputs);
    }
    if let Some(f) = &spec.from_image {
        inputs.push(spec::resolve(&base, &f.path));
    }
    if let Some(dir) = &spec.image_config {
        let dir = spec::resolve(&base, dir);
        // Unreadable: reported when it is read for the build.
        if let Ok(info) = read_json::<ConfigInfo>(&dir.join(CONFIG_JSON)) {
            inputs.extend(info.blob_dirs);
        }
        inputs.push(dir);
    }
    inputs
}

/// The first of `dirs` whose blob store holds `digest`.
fn find_blob<'d>(digest: &Sha256Digest, dirs: &'d [BlobDir], what: &str) -> Result<&'d BlobDir> {
    dirs.iter().find(|b| b.path(digest).exists()).ok_or_else(|| {
        Error::Invalid(format!(
            "{what}: blob {digest} is in none of its blob directories; was a layer directory removed?"
        ))
    })
}

/// The blob stores of a building-block directory: its own and its `blobDirs`.
fn blob_stores(dir: &Path, blob_dirs: &[PathBuf]) -> Vec<BlobDir> {
    std::iter::once(dir)
        .chain(blob_dirs.iter().map(PathBuf::as_path))
        .map(BlobDir::new)
        .collect()
}

/// Remember `dir` as holding blobs, once.
fn add_blob_dir(blob_dirs: &mut Vec<PathBuf>, dir: &Path) -> Result<()> {
    let abs = std::fs::canonicalize(dir).at(dir)?;
    if !blob_dirs.contains(&abs) {
        blob_dirs.push(abs);
    }
    Ok(())
}

/// Build an image's layers and config into `blobs`.
///
/// Layers given as directories are copied into `blobs` when `copy_layers`,
/// else recorded in `blob_dirs`. Each inline layer leaves out the store paths
/// the layers below it hold.
pub fn write_config(
    spec: &ImageSpec,
    spec_path: &Path,
    blobs: &BlobDir,
    copy_layers: bool,
    ctx: &Ctx,
) -> Result<ConfigInfo> {
    let rootfs = spec.rootfs_layer();
    if spec.layers.is_empty() && spec.from_image.is_none() && rootfs.is_none() {
        return Err(Error::spec(
            spec_path,
            "an image needs at least one layer (\"layers\" is empty)",
        ));
    }
    let base = spec::base_dir(spec_path);
    let mut layers = Vec::new();
    let mut blob_dirs = Vec::new();
    let mut below = BTreeSet::new();
    let onto = match &spec.from_image {
        None => None,
        Some(f) => Some(
            Onto::open(f, spec, &base)
                .map_err(|e| e.within(format!("{}: fromImage", spec_path.display())))?,
        ),
    };
    if let Some(o) = &onto {
        let (infos, stays) = o.layers(blobs, copy_layers)?;
        layers = infos;
        if let Some(dir) = stays {
            add_blob_dir(&mut blob_dirs, dir)?;
        }
        below.extend(o.store_paths());
    }
    let base_layers = layers.len();
    // Each new layer, and the blob store holding it, for the merge check.
    let mut new_layers: Vec<(String, BlobDir)> = Vec::new();
    // The root filesystem settings of the image make its last layer.
    let rootfs_ref = rootfs.map(|l| LayerRef::Inline(Box::new(l)));
    for (index, layer) in spec.layers.iter().chain(&rootfs_ref).enumerate() {
        let at = if index < spec.layers.len() {
            format!("{}: layers[{index}]", spec_path.display())
        } else {
            format!(
                "{}: the image's root filesystem layer (users, groups, directories, symlinks, files, perms, tmp, nixDatabase)",
                spec_path.display()
            )
        };
        let info = match layer {
            LayerRef::Inline(l) => {
                if l.from_image.is_some() {
                    return Err(Error::spec(
                        spec_path,
                        format!(
                            "layers[{index}]: \"fromImage\" goes on the image, not on its layers"
                        ),
                    ));
                }
                accounts::refuse_over_accounts(l, &layers[base_layers..], &new_layers, &at)?;
                let info =
                    write_layer(l, spec_path, blobs, &below, index, ctx, &at, onto.as_ref())?;
                new_layers.push((at, blobs.clone()));
                info
            }
            LayerRef::Dir(d) => {
                let dir = spec::resolve(&base, d);
                let infos = read_layer_dir(&dir).map_err(|e| e.within(at.clone()))?;
                for info in &infos {
                    if copy_layers {
                        blobs.import(&BlobDir::new(&dir), &info.digest, info.size)?;
                    }
                }
                if !copy_layers {
                    add_blob_dir(&mut blob_dirs, &dir)?;
                }
                let several = infos.len() > 1;
                for (k, info) in infos.into_iter().enumerate() {
                    below.extend(info.store_paths.iter().cloned());
                    layers.push(info);
                    // Named by its directory: with Nix, the layer's output.
                    let what = if several {
                        format!("{at} ({}, its layer {})", dir.display(), k + 1)
                    } else {
                        format!("{at} ({})", dir.display())
                    };
                    new_layers.push((what, BlobDir::new(&dir)));
                }
                continue;
            }
        };
        below.extend(info.store_paths.iter().cloned());
        layers.push(info);
    }
    if let Some(o) = &onto {
        for (info, (what, store)) in layers[base_layers..].iter().zip(&new_layers) {
            o.check(
                info,
                store,
                &format!("{what}, blob {}", info.digest.short()),
            )?;
        }
    }
    if let Some(user) = &spec.config.user {
        accounts::check_user(user, &layers[base_layers..], onto.as_ref())
            .map_err(|e| e.within(spec_path.display().to_string()))?;
    }
    let diff_ids: Vec<Sha256Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    // The spec is named; the base too when its config is to blame.
    let (config_doc, platform) = config_document(
        spec,
        &diff_ids,
        onto.as_ref()
            .map(|o| (&o.image.config, o.image.source.as_str())),
    )
    .map_err(|e| e.within(spec_path.display().to_string()))?;
    let config = blobs.write_json(&config_doc, MediaType::CONFIG)?;
    Ok(ConfigInfo {
        media_type: config.media_type,
        digest: config.digest,
        size: config.size,
        platform,
        layers,
        blob_dirs,
        base: onto.as_ref().map(Onto::base_ref),
    })
}

/// Build an image's layers, config and manifest into `blobs`. With
/// `imageConfig`, the config and its layers come from a config directory.
pub fn write_image(
    spec: &ImageSpec,
    spec_path: &Path,
    blobs: &BlobDir,
    copy_layers: bool,
    ctx: &Ctx,
) -> Result<ManifestInfo> {
    let config = match &spec.image_config {
        None => write_config(spec, spec_path, blobs, copy_layers, ctx)?,
        Some(_) if spec.from_image.is_some() => {
            return Err(onto::refuse_with_image_config(spec_path))
        }
        Some(dir) => {
            if let Some(field) = spec.config_settings().first() {
                return Err(Error::spec(
                    spec_path,
                    format!("\"{field}\" cannot be combined with \"imageConfig\": set it on the config instead"),
                ));
            }
            let dir = spec::resolve(&spec::base_dir(spec_path), dir);
            let what = dir.join(CONFIG_JSON).display().to_string();
            let mut info: ConfigInfo = read_json(&dir.join(CONFIG_JSON))?;
            blobs.import(&BlobDir::new(&dir), &info.digest, info.size)?;
            let stores = blob_stores(&dir, &info.blob_dirs);
            let mut blob_dirs = Vec::new();
            for l in &info.layers {
                let digest = l.digest.clone();
                let store = find_blob(&digest, &stores, &what)?;
                if copy_layers {
                    blobs.import(store, &digest, l.size)?;
                } else {
                    add_blob_dir(&mut blob_dirs, store.root())?;
                }
            }
            info.blob_dirs = blob_dirs;
            info
        }
    };
    let config_desc = descriptor(config.media_type.clone(), &config.digest, config.size);
    let layer_descs: Vec<Descriptor> = config.layers.iter().map(LayerInfo::descriptor).collect();
    // The base, recorded unless the spec's own annotations say otherwise.
    let mut annotations = spec.annotations.clone();
    if let Some(b) = &config.base {
        if let Some(n) = &b.name {
            annotations
                .entry(ANNOTATION_BASE_NAME.to_owned())
                .or_insert_with(|| n.clone());
        }
        if let Some(d) = &b.digest {
            annotations
                .entry(ANNOTATION_BASE_DIGEST.to_owned())
                .or_insert_with(|| d.to_string());
        }
    }
    let manifest_doc = manifest_document(
        &config_desc,
        &layer_descs,
        &annotations,
        spec.extra_manifest.as_ref(),
    )?;
    let manifest = blobs.write_json(&manifest_doc, MediaType::MANIFEST)?;
    Ok(ManifestInfo {
        media_type: manifest.media_type,
        digest: manifest.digest,
        size: manifest.size,
        platform: config.platform,
        config: config_desc,
        layers: config.layers,
        blob_dirs: config.blob_dirs,
    })
}

/// Write `oci-layout` and `index.json` naming `manifests` with `tags`: one
/// manifest directly (the layout's `annotations` then go on `index.json`),
/// several through an image index blob carrying them (and, with
/// `platformTags`, each manifest also named `TAG-OS-ARCH[-VARIANT]`).
/// `index.json` always holds exactly one descriptor (see [`crate::layout::tags`]).
/// `extraIndex` is merged into `index.json`.
fn write_index(
    staging: &Staging,
    manifests: &[ManifestInfo],
    tags: &[String],
    layout: &LayoutSpec,
) -> Result<Descriptor> {
    let with_platform = |m: &ManifestInfo| -> Result<Descriptor> {
        Ok(Descriptor {
            platform: Some(m.platform.clone()),
            ..descriptor(m.media_type.clone(), &m.digest, m.size)
        })
    };
    let target = match manifests {
        [] => {
            return Err(Error::Invalid(
                "a layout needs at least one manifest".into(),
            ))
        }
        [one] => with_platform(one)?,
        many => {
            let mut seen = BTreeSet::new();
            for m in many {
                if !seen.insert(&m.platform) {
                    return Err(Error::Invalid(format!(
                        "two manifests are for the same platform {}; an index needs one manifest per platform",
                        m.platform
                    )));
                }
            }
            let descs: Vec<Descriptor> = many.iter().map(with_platform).collect::<Result<_>>()?;
            let doc = index_document(&descs, &layout.annotations, None)?;
            staging.blobs().write_json(&doc, MediaType::INDEX)?
        }
    };
    // One index.json descriptor, whatever the number of tags and
    // platforms (crane push and podman load take nothing else): the first
    // tag is its ref.name, the others are recorded beside it (src/tags.rs).
    let no_annotations = BTreeMap::new();
    let mut entry = target.clone();
    let first = tags
        .first()
        .ok_or_else(|| Error::Invalid("a layout needs at least one tag".into()))?;
    entry
        .annotations
        .insert(ANNOTATION_REF_NAME.to_owned(), first.clone());
    if tags.len() > 1 {
        entry
            .annotations
            .insert(tags::ANNOTATION_TAGS.to_owned(), tags.join(","));
    }
    if layout.platform_tags && manifests.len() > 1 {
        for t in tags {
            for m in manifests {
                let name = tags::platform_tag(t, &m.platform);
                crate::oci::reference::validate_tag(&name)?;
                if tags.contains(&name) {
                    return Err(Error::Invalid(format!(
                        "the tag {name:?} is also the platform tag of {t:?} for {}; rename one, or leave platformTags off",
                        m.platform
                    )));
                }
            }
        }
        entry
            .annotations
            .insert(tags::ANNOTATION_PLATFORM_TAGS.to_owned(), "true".to_owned());
    }
    let tagged = vec![entry];
    staging.write_layout(&index_document(
        &tagged,
        // No index blob for one manifest: its annotations go here.
        if manifests.len() == 1 {
            &layout.annotations
        } else {
            &no_annotations
        },
        layout.extra_index.as_ref(),
    )?)?;
    Ok(target)
}

/// `nixoci layer`: one layer directory.
pub fn layer(spec: &LayerSpec, spec_path: &Path, out: &Path, opts: &Options) -> Result<LayerInfo> {
    let mut inputs = vec![spec_path.to_owned()];
    layer_inputs(spec, &spec::base_dir(spec_path), &mut inputs);
    let (staging, ctx) = opts.start(out, &inputs)?;
    let at = spec_path.display().to_string();
    let onto = match &spec.from_image {
        None => None,
        Some(f) => Some(
            Onto::open_for(f, &spec::base_dir(spec_path), None)
                .map_err(|e| e.within(format!("{at}: fromImage")))?,
        ),
    };
    let info = write_layer(
        spec,
        spec_path,
        &staging.blobs(),
        &BTreeSet::new(),
        0,
        &ctx,
        &at,
        onto.as_ref(),
    )?;
    staging.write_file(LAYER_JSON, &info_json(&info))?;
    staging.commit()?;
    Ok(info)
}

fn refuse_tags(spec: &ImageSpec, spec_path: &Path) -> Result<()> {
    if spec.tags.is_empty() {
        Ok(())
    } else {
        Err(Error::spec(
            spec_path,
            "\"tags\" name a manifest in a layout: give them to `nixoci layout`",
        ))
    }
}

/// `nixoci config`: an image config (and any inline layers) in one
/// directory; layer directories are referenced, not copied.
pub fn config(
    spec: &ImageSpec,
    spec_path: &Path,
    out: &Path,
    opts: &Options,
) -> Result<ConfigInfo> {
    refuse_tags(spec, spec_path)?;
    if spec.image_config.is_some() || spec.extra_manifest.is_some() || !spec.annotations.is_empty()
    {
        return Err(Error::spec(
            spec_path,
            "\"imageConfig\", \"extraManifest\" and \"annotations\" belong to the manifest, not the config",
        ));
    }
    let (staging, ctx) = opts.start(out, &image_inputs(spec, spec_path))?;
    let info = write_config(spec, spec_path, &staging.blobs(), false, &ctx)?;
    staging.write_file(CONFIG_JSON, &info_json(&info))?;
    staging.commit()?;
    Ok(info)
}

/// `nixoci manifest`: config and manifest (and any inline layers) in one
/// directory; layer directories are referenced, not copied.
pub fn manifest(
    spec: &ImageSpec,
    spec_path: &Path,
    out: &Path,
    opts: &Options,
) -> Result<ManifestInfo> {
    refuse_tags(spec, spec_path)?;
    let (staging, ctx) = opts.start(out, &image_inputs(spec, spec_path))?;
    let info = write_image(spec, spec_path, &staging.blobs(), false, &ctx)?;
    staging.write_file(MANIFEST_JSON, &info_json(&info))?;
    staging.commit()?;
    Ok(info)
}

/// `nixoci layout`: an image layout from manifest directories.
pub fn layout(
    spec: &LayoutSpec,
    spec_path: &Path,
    out: &Path,
    opts: &Options,
) -> Result<LayoutReport> {
    let base = spec::base_dir(spec_path);
    let tags = spec::tags_or_default(&spec.tags)?;
    let mut inputs = vec![spec_path.to_owned()];
    for dir in &spec.manifests {
        let dir = spec::resolve(&base, dir);
        // Unreadable: reported when it is read below.
        if let Ok(info) = read_json::<ManifestInfo>(&dir.join(MANIFEST_JSON)) {
            inputs.extend(info.blob_dirs);
        }
        inputs.push(dir);
    }
    let (staging, _) = opts.start(out, &inputs)?;
    let blobs = staging.blobs();
    let mut manifests = Vec::new();
    for dir in &spec.manifests {
        let dir = spec::resolve(&base, dir);
        let info: ManifestInfo = read_json(&dir.join(MANIFEST_JSON))?;
        let what = dir.join(MANIFEST_JSON).display().to_string();
        let own = BlobDir::new(&dir);
        blobs.import(&own, &info.digest, info.size)?;
        blobs.import(&own, &info.config.digest, info.config.size)?;
        let stores = blob_stores(&dir, &info.blob_dirs);
        for l in &info.layers {
            // Copied, in a Nix build too: `crane push` refuses a layout
            // blob that is a symbolic link (go-containerregistry 0.22).
            let store = find_blob(&l.digest, &stores, &what)?;
            blobs.import(store, &l.digest, l.size)?;
        }
        manifests.push(info);
    }
    let descriptor = write_index(&staging, &manifests, &tags, spec)?;
    let formats = spec
        .sbom
        .iter()
        .map(|f| match f.as_str() {
            "spdx" => Ok(crate::sbom::Format::Spdx),
            "cyclonedx" => Ok(crate::sbom::Format::CycloneDx),
            other => Err(Error::spec(
                spec_path,
                format!("sbom: {other:?} is not spdx or cyclonedx"),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    if !formats.is_empty() {
        for m in &manifests {
            let sbom = crate::sbom::collect(staging.path(), Some(&tags[0]), Some(&m.platform))
                .map_err(|e| e.within(format!("the SBOM of {}", m.platform)))?;
            crate::sbom::attach(staging.path(), &sbom, &formats)?;
        }
    }
    let layout = staging.commit()?;
    Ok(LayoutReport {
        layout,
        tags,
        descriptor,
        manifests,
    })
}

/// `nixoci build`: a whole image layout from one image spec.
pub fn build(
    spec: &ImageSpec,
    spec_path: &Path,
    out: &Path,
    opts: &Options,
) -> Result<LayoutReport> {
    let tags = spec::tags_or_default(&spec.tags)?;
    let (staging, ctx) = opts.start(out, &image_inputs(spec, spec_path))?;
    let info = write_image(spec, spec_path, &staging.blobs(), true, &ctx)?;
    let manifests = vec![info];
    let descriptor = write_index(&staging, &manifests, &tags, &LayoutSpec::default())?;
    let layout = staging.commit()?;
    Ok(LayoutReport {
        layout,
        tags,
        descriptor,
        manifests,
    })
}
