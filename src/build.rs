//! The building blocks (`layer`, `config`, `manifest`, `layout`) and the
//! one-shot `build`, each a function from a spec to a finished output
//! directory.
//!
//! The building blocks are what the Nix functions chain: each writes its
//! blob(s) under `blobs/sha256/` plus a small JSON file describing them
//! (`layer.json`, `config.json`, `manifest.json`) that the next step reads at
//! build time. Blobs a step only references (layers under a manifest) stay
//! where they are; their directories are listed in `blobDirs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::documents::{config_document, index_document, manifest_document};
use crate::error::{Error, IoContext, Result};
use crate::layer::compress::Compression;
use crate::layer::tree::{Placement, Tree, RELATIVE_WITHOUT_DESTINATION};
use crate::layout::tags;
use crate::layout::{BlobDir, Staging};
use crate::oci::descriptor::{descriptor, Descriptor, Platform, ANNOTATION_REF_NAME};
use crate::oci::digest::{HashWriter, Sha256Digest};
use crate::oci::json::{canonical_json_with, read_json, Json};
use crate::oci::MediaType;
use crate::progress::{Progress, Silent};
use crate::spec::{self, ClosureSpec, ImageSpec, LayerRef, LayerSpec, LayersSpec, LayoutSpec};

/// File name of a layer directory's descriptor.
pub const LAYER_JSON: &str = "layer.json";
/// File name of a multi-layer directory's descriptor (`nixoci layers`).
pub const LAYERS_JSON: &str = "layers.json";
/// File name of a config directory's descriptor.
pub const CONFIG_JSON: &str = "config.json";
/// File name of a manifest directory's descriptor.
pub const MANIFEST_JSON: &str = "manifest.json";

/// A built layer: its descriptor, diff_id and the store paths it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LayerInfo {
    pub media_type: MediaType,
    pub digest: Sha256Digest,
    pub size: u64,
    pub diff_id: Sha256Digest,
    pub store_paths: BTreeSet<PathBuf>,
}

impl LayerInfo {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
            annotations: Default::default(),
        }
    }
}

/// Several layers built at once (`nixoci layers`): each layer, in order,
/// and the plan that grouped their store paths, as it was given.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LayersInfo {
    pub layers: Vec<LayerInfo>,
    pub plan: Json,
}

/// The layers a layer directory holds: one (`layer.json`, from `nixoci
/// layer`), or several in order (`layers.json`, from `nixoci layers`).
pub fn read_layer_dir(dir: &Path) -> Result<Vec<LayerInfo>> {
    let many = dir.join(LAYERS_JSON);
    if !dir.join(LAYER_JSON).exists() && many.exists() {
        let info: LayersInfo = read_json(&many)?;
        return Ok(info.layers);
    }
    Ok(vec![read_json(&dir.join(LAYER_JSON))?])
}

/// A built image config: its descriptor, platform, the layers it describes
/// and the directories holding their blobs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigInfo {
    pub media_type: MediaType,
    pub digest: Sha256Digest,
    pub size: u64,
    pub platform: Platform,
    pub layers: Vec<LayerInfo>,
    /// Directories (besides the config's own) whose `blobs/sha256` hold
    /// layer blobs.
    #[serde(default)]
    pub blob_dirs: Vec<PathBuf>,
}

/// A built image manifest: its descriptor with platform, the config and
/// layers it references, and the directories holding the layer blobs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManifestInfo {
    pub media_type: MediaType,
    pub digest: Sha256Digest,
    pub size: u64,
    pub platform: Platform,
    pub config: Descriptor,
    pub layers: Vec<LayerInfo>,
    /// Directories (besides the manifest's own) whose `blobs/sha256` hold
    /// layer blobs.
    #[serde(default)]
    pub blob_dirs: Vec<PathBuf>,
}

/// What a finished layout holds, for reports.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutReport {
    pub layout: PathBuf,
    pub tags: Vec<String>,
    /// The descriptor the tags point at (a manifest, or an index).
    pub descriptor: Descriptor,
    pub manifests: Vec<ManifestInfo>,
}

/// How an output is written.
pub struct Options<'a> {
    /// Replace an existing output directory.
    pub force: bool,
    /// Compression threads (0: [`crate::layer::compress::default_threads`]).
    pub threads: usize,
    /// Compression level for layers whose spec gives none.
    pub level: Option<u32>,
    /// Write into the output path directly, not through a temporary sibling
    /// (for Nix builders: Nix itself discards the output of a failed build,
    /// and the store directory is not writable).
    pub in_place: bool,
    pub progress: &'a dyn Progress,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            force: false,
            threads: 0,
            level: None,
            in_place: false,
            progress: &Silent,
        }
    }
}

impl Options<'_> {
    /// Start the output, and the context the layers are built in. With
    /// `force`, no input (the spec, a source, a layer, config or manifest
    /// directory, the directories holding their blobs) may be the output
    /// that is about to be replaced, or lie inside it.
    fn start(&self, out: &Path, inputs: &[PathBuf]) -> Result<(Staging, Ctx<'_>)> {
        let staging = if self.in_place {
            Staging::in_place(out)?
        } else {
            Staging::new(out, self.force, inputs)?
        };
        let mut protect = vec![std::fs::canonicalize(staging.path()).at(staging.path())?];
        if self.force {
            if let Ok(old) = std::fs::canonicalize(out) {
                protect.push(old);
            }
        }
        Ok((
            staging,
            Ctx {
                progress: self.progress,
                protect,
                threads: if self.threads == 0 {
                    crate::layer::compress::default_threads()?
                } else {
                    self.threads
                },
                level: self.level,
            },
        ))
    }
}

/// Every file and directory a layer spec reads, resolved against `base`.
fn layer_inputs(spec: &LayerSpec, base: &Path, inputs: &mut Vec<PathBuf>) {
    inputs.extend(spec.files.iter().map(|f| spec::resolve(base, &f.source)));
    inputs.extend(spec.base.iter().map(|d| spec::resolve(base, d)));
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

/// What building layers needs besides the spec.
pub struct Ctx<'a> {
    pub progress: &'a dyn Progress,
    /// Directories no source may contain or lie in (the output being
    /// written, the output being replaced).
    pub protect: Vec<PathBuf>,
    pub threads: usize,
    /// Level for layers whose spec gives none.
    pub level: Option<u32>,
}

/// Build one layer into `blobs`. Store paths in `exclude` (besides those
/// held by the spec's `base` layers) are left out. `index` is the layer's
/// position in its image, for progress reports.
pub fn write_layer(
    spec: &LayerSpec,
    spec_path: &Path,
    blobs: &BlobDir,
    exclude: &BTreeSet<PathBuf>,
    index: usize,
    ctx: &Ctx,
    at: &str,
) -> Result<LayerInfo> {
    let base = spec::base_dir(spec_path);
    let mut exclude = exclude.clone();
    for dir in &spec.base {
        let dir = spec::resolve(&base, dir);
        for info in read_layer_dir(&dir)
            .map_err(|e| e.within(format!("{at}: base layer {}", dir.display())))?
        {
            exclude.extend(info.store_paths);
        }
    }
    let mut tree = Tree::new(crate::nix::store_dir(), exclude);
    tree.protect(&ctx.protect);
    let progress = ctx.progress;
    for (i, f) in spec.files.iter().enumerate() {
        let place = Placement {
            destination: f.destination.as_deref(),
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
            link: f.link,
        };
        // Decided on the source as the spec writes it: resolved, every
        // source is absolute when the spec's own name is.
        if f.destination.is_none() && f.source.is_relative() {
            return Err(Error::Destination {
                destination: f.source.display().to_string(),
                reason: RELATIVE_WITHOUT_DESTINATION.into(),
            }
            .within(format!("{at}: files[{i}]")));
        }
        tree.add(&spec::resolve(&base, &f.source), &place, spec_path)
            .map_err(|e| e.within(format!("{at}: files[{i}]")))?;
    }
    let closure = match &spec.closure {
        None => Vec::new(),
        Some(ClosureSpec::Paths(p)) => p.clone(),
        Some(ClosureSpec::File { file, attr }) => {
            let file = spec::resolve(&base, file);
            crate::nix::read_closure_file(&file, attr.as_deref())
                .map_err(|e| e.within(format!("{at}: closure file {}", file.display())))?
        }
    };
    for p in &closure {
        tree.add_store_path(p, spec_path)
            .map_err(|e| e.within(format!("{at}: closure")))?;
    }

    progress.layer_start(index, tree.content_bytes());
    let level = layer_level(spec.compression, spec.level, ctx.level, at)?;
    let info = write_blob(tree, spec.compression, level, ctx.threads, blobs, progress)?;
    progress.layer_done(&info.digest.to_string(), info.size);
    Ok(info)
}

/// The level a layer is compressed at: its spec's, else the command line's
/// (none for uncompressed layers), checked for the compression.
fn layer_level(
    compression: Compression,
    spec_level: Option<u32>,
    default: Option<u32>,
    at: &str,
) -> Result<Option<u32>> {
    let level = spec_level
        .or(default)
        .filter(|_| compression != Compression::None);
    compression.check_level(level).map_err(|m| {
        if spec_level.is_some() {
            Error::Invalid(format!("{at}: {m}"))
        } else {
            // From the command line: not the spec's mistake.
            Error::Invalid(format!("--level: {m} (the compression of {at})"))
        }
    })?;
    Ok(level)
}

/// Write `tree` as a layer blob into `blobs`: tar, compressed with
/// `threads` threads, hashed on the way.
fn write_blob(
    tree: Tree,
    compression: Compression,
    level: Option<u32>,
    threads: usize,
    blobs: &BlobDir,
    progress: &dyn Progress,
) -> Result<LayerInfo> {
    let mtime = crate::oci::time::default_mtime()?;
    let out_err = |e| Error::io("(layer blob)", e);
    let encoder = compression
        .encoder(blobs.writer()?, level, threads)
        .map_err(out_err)?;
    let tar_out = crate::layer::tar::write_tree(&tree, mtime, HashWriter::new(encoder), progress)?;
    let (encoder, diff_id, _tar_size) = tar_out.finish();
    let (digest, size) = encoder.finish().map_err(out_err)?.complete()?;
    Ok(LayerInfo {
        media_type: compression.layer_media_type(),
        digest,
        size,
        diff_id,
        store_paths: tree.store_paths,
    })
}

/// Build one layer for each group of store paths into `blobs`, at once:
/// every layer whose content is more than a `threads`-th of the whole is
/// compressed first, one at a time, with all threads; the others then
/// share the threads, one layer each, largest first. The bytes of each
/// layer do not depend on this (compression gives the same bytes at any
/// thread count); only the time does. Layers come back in the groups'
/// order.
pub fn write_groups(
    groups: &[Vec<PathBuf>],
    compression: Compression,
    level: Option<u32>,
    blobs: &BlobDir,
    ctx: &Ctx,
    spec_path: &Path,
) -> Result<Vec<LayerInfo>> {
    let store = crate::nix::store_dir();
    let mut trees = Vec::with_capacity(groups.len());
    for (i, paths) in groups.iter().enumerate() {
        let mut tree = Tree::new(store.clone(), BTreeSet::new());
        tree.protect(&ctx.protect);
        for p in paths {
            tree.add_store_path(p, spec_path)
                .map_err(|e| e.within(format!("{}: layers[{i}]", spec_path.display())))?;
        }
        trees.push(Some(tree));
    }
    let total: u64 = trees.iter().flatten().map(Tree::content_bytes).sum();
    let threads = ctx.threads.max(1);
    ctx.progress.layer_start(0, total);
    let progress = Forward(ctx.progress);
    let mut order: Vec<usize> = (0..trees.len()).collect();
    let size = |i: usize, trees: &[Option<Tree>]| trees[i].as_ref().map_or(0, Tree::content_bytes);
    order.sort_by_key(|&i| (std::cmp::Reverse(size(i, &trees)), i));
    let (big, small): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&i| size(i, &trees).saturating_mul(threads as u64) > total);
    let mut out: Vec<Option<LayerInfo>> = vec![None; trees.len()];
    for i in big {
        let tree = trees[i].take().expect("each tree once");
        out[i] = Some(write_blob(
            tree,
            compression,
            level,
            threads,
            blobs,
            &progress,
        )?);
    }
    let queue = std::sync::Mutex::new(
        small
            .into_iter()
            .map(|i| (i, trees[i].take().expect("each tree once")))
            .collect::<std::collections::VecDeque<_>>(),
    );
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((i, tree)) = next else { break };
                let written = write_blob(tree, compression, level, 1, blobs, &progress);
                let failed = written.is_err();
                done.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, written));
                if failed {
                    // Stop the others early: the build fails anyway.
                    queue.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
            });
        }
    });
    for (i, written) in done.into_inner().unwrap_or_else(|e| e.into_inner()) {
        out[i] = Some(written?);
    }
    let infos: Vec<LayerInfo> = out.into_iter().flatten().collect();
    let size: u64 = infos.iter().map(|l| l.size).sum();
    ctx.progress
        .layer_done(&format!("{} layers", infos.len()), size);
    Ok(infos)
}

/// Progress of the layers of [`write_groups`]: their bytes add up on one
/// bar, started and finished once for all of them.
struct Forward<'a>(&'a dyn Progress);

impl Progress for Forward<'_> {
    fn advance(&self, n: u64) {
        self.0.advance(n)
    }
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
    if spec.layers.is_empty() {
        return Err(Error::spec(
            spec_path,
            "an image needs at least one layer (\"layers\" is empty)",
        ));
    }
    let base = spec::base_dir(spec_path);
    let mut layers = Vec::new();
    let mut blob_dirs = Vec::new();
    let mut below = BTreeSet::new();
    for (index, layer) in spec.layers.iter().enumerate() {
        let info = match layer {
            LayerRef::Inline(l) => {
                let at = format!("{}: layers[{index}]", spec_path.display());
                write_layer(l, spec_path, blobs, &below, index, ctx, &at)?
            }
            LayerRef::Dir(d) => {
                let dir = spec::resolve(&base, d);
                let infos = read_layer_dir(&dir)
                    .map_err(|e| e.within(format!("{}: layers[{index}]", spec_path.display())))?;
                for info in &infos {
                    if copy_layers {
                        blobs.import(&BlobDir::new(&dir), &info.digest, info.size)?;
                    }
                }
                if !copy_layers {
                    add_blob_dir(&mut blob_dirs, &dir)?;
                }
                for info in infos {
                    below.extend(info.store_paths.iter().cloned());
                    layers.push(info);
                }
                continue;
            }
        };
        below.extend(info.store_paths.iter().cloned());
        layers.push(info);
    }
    let diff_ids: Vec<Sha256Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let (config_doc, platform) = config_document(spec, &diff_ids)?;
    let config = blobs.write_json(&config_doc, MediaType::CONFIG)?;
    Ok(ConfigInfo {
        media_type: config.media_type,
        digest: config.digest,
        size: config.size,
        platform,
        layers,
        blob_dirs,
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
    let manifest_doc = manifest_document(
        &config_desc,
        &layer_descs,
        &spec.annotations,
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

/// The bytes of a building block's `layer.json`, `layers.json`,
/// `config.json` or `manifest.json`: canonical JSON, except that each store
/// path of a `storePaths` list (and of a plan's `paths`) is written so that
/// Nix's reference scanner does not find it ([`crate::nix::write_unscanned_path`]). An output then does not
/// reference the store paths its layers pack, only the directories it
/// reads blobs from (`blobDirs`, written as they are).
fn info_json<T: Serialize>(info: &T) -> Vec<u8> {
    canonical_json_with(
        info,
        &["storePaths", "paths"],
        &crate::nix::write_unscanned_path,
    )
}

/// `nixoci layer`: one layer directory.
pub fn layer(spec: &LayerSpec, spec_path: &Path, out: &Path, opts: &Options) -> Result<LayerInfo> {
    let mut inputs = vec![spec_path.to_owned()];
    layer_inputs(spec, &spec::base_dir(spec_path), &mut inputs);
    let (staging, ctx) = opts.start(out, &inputs)?;
    let at = spec_path.display().to_string();
    let info = write_layer(
        spec,
        spec_path,
        &staging.blobs(),
        &BTreeSet::new(),
        0,
        &ctx,
        &at,
    )?;
    staging.write_file(LAYER_JSON, &info_json(&info))?;
    staging.commit()?;
    Ok(info)
}

/// `nixoci layers`: a layer for each group of store paths the plan lists,
/// built at once into one directory, described by `layers.json` (the
/// layers in order, and the plan as given).
pub fn layers(
    spec: &LayersSpec,
    spec_path: &Path,
    out: &Path,
    opts: &Options,
) -> Result<LayersInfo> {
    let base = spec::base_dir(spec_path);
    let mut inputs = vec![spec_path.to_owned()];
    inputs.extend(spec.plan.iter().map(|p| spec::resolve(&base, p)));
    inputs.extend(spec.graph.iter().map(|g| spec::resolve(&base, &g.file)));
    inputs.extend(spec.base.iter().map(|d| spec::resolve(&base, d)));
    let (staging, ctx) = opts.start(out, &inputs)?;
    let plan = layers_plan(spec, spec_path)?;
    #[derive(Deserialize)]
    struct Plan {
        layers: Vec<Group>,
    }
    #[derive(Deserialize)]
    struct Group {
        paths: Vec<PathBuf>,
    }
    let groups: Plan = serde_json::from_value(plan.to_value())
        .map_err(|e| Error::spec(spec_path, format!("the plan: {e}")))?;
    let groups: Vec<Vec<PathBuf>> = groups.layers.into_iter().map(|g| g.paths).collect();
    let at = spec_path.display().to_string();
    let level = layer_level(spec.compression, spec.level, ctx.level, &at)?;
    let layers = write_groups(
        &groups,
        spec.compression,
        level,
        &staging.blobs(),
        &ctx,
        spec_path,
    )?;
    let info = LayersInfo { layers, plan };
    staging.write_file(LAYERS_JSON, &info_json(&info))?;
    staging.commit()?;
    Ok(info)
}

/// The plan of a `layers` spec: the file it names, or one made from its
/// graph, less the store paths of its base layers.
fn layers_plan(spec: &LayersSpec, spec_path: &Path) -> Result<Json> {
    let base = spec::base_dir(spec_path);
    match (&spec.plan, &spec.graph) {
        (Some(plan), None) => {
            if spec.max_layers.is_some() || spec.strategy.is_some() || !spec.base.is_empty() {
                return Err(Error::spec(
                    spec_path,
                    "\"maxLayers\", \"strategy\" and \"base\" go with \"graph\": a \"plan\" is used as it is",
                ));
            }
            read_json(&spec::resolve(&base, plan))
        }
        (None, Some(g)) => {
            let graph = crate::plan::Graph::read(&spec::resolve(&base, &g.file), g.attr.as_deref())?;
            let strategy: crate::plan::Strategy = spec
                .strategy
                .as_deref()
                .unwrap_or("stable")
                .parse()
                .map_err(|m| Error::spec(spec_path, format!("strategy: {m}")))?;
            let max = spec.max_layers.unwrap_or(100);
            crate::plan::check_budget(max)
                .map_err(|m| Error::spec(spec_path, format!("maxLayers: {m}")))?;
            let mut exclude = BTreeSet::new();
            for dir in &spec.base {
                let dir = spec::resolve(&base, dir);
                for info in read_layer_dir(&dir)
                    .map_err(|e| e.within(format!("base layer {}", dir.display())))?
                {
                    exclude.extend(info.store_paths.iter().map(|p| p.display().to_string()));
                }
            }
            let plan = crate::plan::plan(&graph, strategy, max, &exclude)?;
            Ok(Json::from_value(
                &serde_json::to_value(&plan).expect("a plan serialises"),
            ))
        }
        _ => Err(Error::spec(
            spec_path,
            "give either \"plan\" (a file from `nixoci plan`) or \"graph\" (a closure graph to plan)",
        )),
    }
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
            let store = find_blob(&l.digest, &stores, &what)?;
            if opts.in_place && in_nix_store(&store.path(&l.digest)) {
                blobs.link(store, &l.digest, l.size)?;
            } else {
                blobs.import(store, &l.digest, l.size)?;
            }
        }
        manifests.push(info);
    }
    let descriptor = write_index(&staging, &manifests, &tags, spec)?;
    let layout = staging.commit()?;
    Ok(LayoutReport {
        layout,
        tags,
        descriptor,
        manifests,
    })
}

/// Whether `path` (a blob) is in the Nix store. A layout that a Nix builder
/// writes links such layer blobs instead of copying them: the image then
/// takes its size in the store once, not twice, and the links are
/// references Nix keeps (`nix copy` carries the layer outputs along).
/// Outside a Nix build nothing is linked: a link into the store from an
/// ordinary directory would break when the store is garbage-collected.
fn in_nix_store(path: &Path) -> bool {
    let store = crate::nix::store_dir();
    std::fs::canonicalize(path).is_ok_and(|p| p.starts_with(&store))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::json::canonical_json;

    /// The info files hide the hashes of `storePaths` only: they read back
    /// as the plain canonical JSON does, the store paths' hashes are not in
    /// their bytes, `blobDirs` (which must stay references) is written as
    /// it is, and undoing the escapes gives the canonical JSON byte for byte.
    #[test]
    fn info_json_hides_only_the_store_paths() {
        let app = "/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162zl-app";
        let dep = "/nix/store/yhkq1r9p9bl3hrww5wi8g4w6qqyf5j1m-dep";
        let layer_dir = "/nix/store/2kvl9a1jfnv7krcvsj5gj3i95162zlfg-oci-layer";
        let digest: Sha256Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let layer = LayerInfo {
            media_type: MediaType::LAYER_GZIP,
            digest: digest.clone(),
            size: 12,
            diff_id: digest.clone(),
            store_paths: [app, dep].into_iter().map(PathBuf::from).collect(),
        };
        let config = ConfigInfo {
            media_type: MediaType::CONFIG,
            digest,
            size: 34,
            platform: "linux/amd64".parse().unwrap(),
            layers: vec![layer.clone(), layer.clone()],
            blob_dirs: vec![PathBuf::from(layer_dir)],
        };
        let check = |bytes: Vec<u8>, plain: Vec<u8>, count: usize| {
            let text = String::from_utf8(bytes).unwrap();
            let read: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                read,
                serde_json::from_slice::<serde_json::Value>(&plain).unwrap()
            );
            for p in [app, dep] {
                let hash = &p["/nix/store/".len()..][..32];
                assert!(!text.contains(hash), "{hash} in {text}");
            }
            assert_eq!(text.matches(layer_dir).count(), count, "{text}");
            let undone = text
                .replace("\\u006c-app", "l-app")
                .replace("\\u006d-dep", "m-dep");
            assert_eq!(undone.as_bytes(), plain, "{text}");
        };
        check(info_json(&layer), canonical_json(&layer), 0);
        check(info_json(&config), canonical_json(&config), 1);
        // A layers directory records the plan's `paths` too.
        let plan = serde_json::json!({"layers": [{"paths": [app, dep], "why": "test"}]});
        let layers = LayersInfo {
            layers: vec![layer],
            plan: Json::from_value(&plan),
        };
        check(info_json(&layers), canonical_json(&layers), 0);
    }
}
