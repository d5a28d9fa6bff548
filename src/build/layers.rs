//! Writing layers: one from a layer spec, or several at once from a plan's
//! groups of store paths (`nixoci layers`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::info::{base_store_paths, info_json, LayerInfo, LayersInfo, LAYERS_JSON};
use super::onto::Onto;
use super::options::{Ctx, Options};
use crate::error::{Error, Result};
use crate::layer::compress::Compression;
use crate::layer::tree::perms::{PermRule, Perms};
use crate::layer::tree::{Placement, Tree, RELATIVE_WITHOUT_DESTINATION};
use crate::layout::BlobDir;
use crate::oci::digest::HashWriter;
use crate::oci::json::Json;
use crate::progress::Progress;
use crate::spec::{self, BudgetRule, ClosureSpec, LayerSpec, LayersSpec};

/// Build one layer into `blobs`. Store paths in `exclude` (besides those
/// held by the spec's `base` layers) are left out. `index` is the layer's
/// position in its image, for progress reports.
#[allow(clippy::too_many_arguments)]
pub fn write_layer(
    spec: &LayerSpec,
    spec_path: &Path,
    blobs: &BlobDir,
    exclude: &BTreeSet<PathBuf>,
    index: usize,
    ctx: &Ctx,
    at: &str,
    onto: Option<&Onto>,
) -> Result<LayerInfo> {
    let base = spec::base_dir(spec_path);
    let mut exclude = exclude.clone();
    exclude.extend(base_store_paths(&base, &spec.base).map_err(|e| e.within(at))?);
    if let Some(o) = onto {
        exclude.extend(o.store_paths());
    }
    let below = exclude.clone();
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
        let label = format!("{at}: {}", file_label(f, i));
        let source = match (&f.source, &f.text) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(format!(
                    "{label}: has both \"source\" and \"text\"; give one"
                )))
            }
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "{label}: needs a \"source\" (a path) or a \"text\" (the file's content)"
                )))
            }
            (None, Some(text)) => {
                tree.add_text(text, &place, &file_label(f, i))
                    .map_err(|e| e.within(label))?;
                continue;
            }
            (Some(source), None) => source,
        };
        // Decided on the source as the spec writes it: resolved, every
        // source is absolute when the spec's own name is.
        if f.destination.is_none() && source.is_relative() {
            return Err(Error::Destination {
                destination: source.display().to_string(),
                reason: RELATIVE_WITHOUT_DESTINATION.into(),
            }
            .within(label));
        }
        tree.add(&spec::resolve(&base, source), &place, spec_path)
            .map_err(|e| e.within(label))?;
    }
    for (i, d) in spec.directories.iter().enumerate() {
        let label = format!("directories[{i}]");
        tree.add_directory(&d.path, d.mode, d.uid, d.gid, &label)
            .map_err(|e| e.within(format!("{at}: {label}")))?;
    }
    for (i, l) in spec.symlinks.iter().enumerate() {
        let label = format!("symlinks[{i}]");
        let within = |e: Error| e.within(format!("{at}: {label}"));
        // A target in the store brings its store path, as a source
        // without destination does (its references come from `closure`).
        if let Some(store_path) = tree
            .add_symlink(&l.path, &l.target, &label)
            .map_err(within)?
        {
            if std::fs::symlink_metadata(&store_path).is_err() {
                return Err(within(Error::Invalid(format!(
                    "target {} is in store path {}, which is not on this machine: build it first (in Nix, write the target as \"${{pkg}}/bin/x\", so that the build depends on it)",
                    l.target,
                    store_path.display()
                ))));
            }
            tree.add(&store_path, &Placement::default(), spec_path)
                .map_err(within)?;
        }
    }
    let closure = match &spec.closure {
        None => Vec::new(),
        Some(ClosureSpec::Paths(p)) => p.clone(),
        Some(ClosureSpec::File { file, attr }) => {
            let file = spec::resolve(&base, file);
            let entries = crate::nix::read_closure_file(&file, attr.as_deref())
                .map_err(|e| e.within(format!("{at}: closure file {}", file.display())))?;
            // A store path whose files are only copied to destinations
            // brings its references, not itself (its files are there once).
            let left_out = crate::nix::copied_only(&entries, &copied_roots(spec, &base));
            entries
                .into_iter()
                .map(|e| e.path)
                .filter(|p| !left_out.contains(p))
                .collect()
        }
    };
    for p in &closure {
        tree.add_store_path(p, spec_path)
            .map_err(|e| e.within(format!("{at}: closure")))?;
    }
    super::accounts::place(spec, &mut tree, onto).map_err(|e| e.within(at.to_owned()))?;
    let accounts = super::accounts::record(&tree).map_err(|e| e.within(at.to_owned()))?;
    tree.apply_perms(&perm_rules(&spec.perms))
        .map_err(|e| e.within(at.to_owned()))?;

    for (i, r) in spec.remove.iter().enumerate() {
        tree.add_whiteout(r)
            .map_err(|e| e.within(format!("{at}: remove[{i}]")))?;
        if let Some(o) = onto {
            o.check_removal(r)
                .map_err(|e| e.within(format!("{at}: remove[{i}]")))?;
        }
    }
    super::nixdb::add_database(spec, spec_path, &mut tree, &below, onto)
        .map_err(|e| e.within(at.to_owned()))?;
    // Where the spec puts the paths (a layer that removes the base's link
    // `/bin` may place nothing through it, followed or not), then where
    // they finally are: through the base's links when followed.
    tree.check_removals().map_err(|e| e.within(at.to_owned()))?;
    if let Some(o) = onto {
        o.place(&mut tree).map_err(|e| e.within(at.to_owned()))?;
    }
    tree.check_removals().map_err(|e| e.within(at.to_owned()))?;
    progress.layer_start(index, tree.content_bytes());
    let level = layer_level(spec.compression, spec.level, ctx.level, at)?;
    let mut info = write_blob(tree, spec.compression, level, ctx.threads, blobs, progress)?;
    info.accounts = accounts;
    progress.layer_done(&info.digest.to_string(), info.size);
    Ok(info)
}

/// A spec's `perms`, as the tree takes them, named `perms[i]`.
fn perm_rules(perms: &[spec::PermSpec]) -> Vec<PermRule<'_>> {
    perms
        .iter()
        .enumerate()
        .map(|(i, r)| PermRule {
            path: &r.path,
            regex: &r.regex,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            label: format!("perms[{i}]"),
        })
        .collect()
}

/// How messages name the `i`th entry of a layer's files: its `label` (the
/// argument it came from, as the Nix functions write it), else `files[i]`.
fn file_label(f: &spec::FileSpec, i: usize) -> String {
    f.label.clone().unwrap_or_else(|| format!("files[{i}]"))
}

/// The store paths a layer spec only copies files from: the store path of
/// each source given a destination and not linked, less those also put at
/// their own path or linked.
fn copied_roots(spec: &LayerSpec, base: &Path) -> BTreeSet<PathBuf> {
    let store = crate::nix::store_dir();
    let root = |source: &Path| -> Option<PathBuf> {
        let rest = spec::resolve(base, source)
            .strip_prefix(&store)
            .ok()?
            .components()
            .next()?
            .as_os_str()
            .to_owned();
        Some(store.join(rest))
    };
    let (mut copied, mut kept) = (BTreeSet::new(), BTreeSet::new());
    for f in &spec.files {
        if let Some(r) = f.source.as_deref().and_then(root) {
            if f.destination.is_some() && !f.link {
                copied.insert(r);
            } else {
                kept.insert(r);
            }
        }
    }
    // A link's store path is placed whole; a relative target is relative
    // to the link, never a store path.
    for l in spec.symlinks.iter().map(|l| Path::new(&l.target)) {
        if l.is_absolute() {
            kept.extend(root(l));
        }
    }
    copied.retain(|r| !kept.contains(r));
    copied
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
        accounts: None,
    })
}

/// Build one layer for each group of store paths into `blobs`, at once:
/// every layer whose content is more than a `threads`-th of the whole is
/// compressed first, one at a time, with all threads; the others then
/// share the threads, one layer each, largest first. The bytes of each
/// layer do not depend on this (compression gives the same bytes at any
/// thread count); only the time does. Layers come back in the groups'
/// order. An error names the group as `layers[i]` of `plan` (where the
/// groups come from: a plan file, or the plan made from a graph). The
/// `perms` rules apply to every layer; one that matches in none of them
/// is an error, named after the spec.
#[allow(clippy::too_many_arguments)]
pub fn write_groups(
    groups: &[Vec<PathBuf>],
    perms: &[PermRule],
    compression: Compression,
    level: Option<u32>,
    blobs: &BlobDir,
    ctx: &Ctx,
    spec_path: &Path,
    plan: &str,
) -> Result<Vec<LayerInfo>> {
    let store = crate::nix::store_dir();
    let mut trees = Vec::with_capacity(groups.len());
    for (i, paths) in groups.iter().enumerate() {
        let mut tree = Tree::new(store.clone(), BTreeSet::new());
        tree.protect(&ctx.protect);
        for p in paths {
            tree.add_store_path(p, spec_path)
                .map_err(|e| e.within(format!("{plan}: layers[{i}]")))?;
        }
        trees.push(Some(tree));
    }
    let at = || spec_path.display().to_string();
    let mut rules = Perms::new(perms).map_err(|e| e.within(at()))?;
    for tree in trees.iter_mut().flatten() {
        rules.apply(tree).map_err(|e| e.within(at()))?;
    }
    rules
        .check_matched("any layer")
        .map_err(|e| e.within(at()))?;
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
    inputs.extend(
        spec.from_image
            .iter()
            .map(|f| spec::resolve(&base, &f.path)),
    );
    let (staging, ctx) = opts.start(out, &inputs)?;
    let (plan, groups, source) = layers_plan(spec, spec_path)?;
    let at = spec_path.display().to_string();
    let level = layer_level(spec.compression, spec.level, ctx.level, &at)?;
    let layers = write_groups(
        &groups,
        &perm_rules(&spec.perms),
        spec.compression,
        level,
        &staging.blobs(),
        &ctx,
        spec_path,
        &source,
    )?;
    let info = LayersInfo { layers, plan };
    staging.write_file(LAYERS_JSON, &info_json(&info))?;
    staging.commit()?;
    Ok(info)
}

/// The plan of a `layers` spec: the file it names (checked as `nixoci
/// plan` would have made it), or one made from its graph, less the store
/// paths of its base layers. Gives the plan as `layers.json` keeps it, its
/// groups of store paths, and where it comes from for messages.
fn layers_plan(spec: &LayersSpec, spec_path: &Path) -> Result<(Json, Vec<Vec<PathBuf>>, String)> {
    let base = spec::base_dir(spec_path);
    match (&spec.plan, &spec.graph) {
        (Some(plan), None) => {
            if spec.max_layers.is_some()
                || spec.strategy.is_some()
                || !spec.base.is_empty()
                || spec.from_image.is_some()
                || !spec.copied.is_empty()
            {
                return Err(Error::spec(
                    spec_path,
                    "\"maxLayers\", \"strategy\", \"base\", \"fromImage\" and \"copied\" go with \"graph\": a \"plan\" is used as it is",
                ));
            }
            let file = spec::resolve(&base, plan);
            let (plan, json) = crate::plan::read_plan(&file)?;
            Ok((json, groups_of(&plan), file.display().to_string()))
        }
        (None, Some(g)) => {
            let graph = crate::plan::Graph::read(&spec::resolve(&base, &g.file), g.attr.as_deref())?;
            let strategy: crate::plan::Strategy = spec
                .strategy
                .as_deref()
                .unwrap_or("stable")
                .parse()
                .map_err(|m| Error::spec(spec_path, format!("strategy: {m}")))?;
            let mut max = spec.max_layers.unwrap_or(100);
            crate::plan::check_budget(max)
                .map_err(|m| Error::spec(spec_path, format!("maxLayers: {m}")))?;
            let mut exclude_paths = base_store_paths(&base, &spec.base)?;
            if let Some(f) = &spec.from_image {
                let onto = Onto::open_for(f, &base, None)
                    .map_err(|e| e.within(format!("{}: fromImage", spec_path.display())))?;
                exclude_paths.extend(onto.store_paths());
                let n = onto.image.layers.len();
                match spec.budget_includes_base {
                    None => {}
                    Some(_) if n < max => max -= n,
                    Some(BudgetRule::AtLeastOne) => max = 1,
                    Some(BudgetRule::Strict) => {
                        return Err(Error::spec(
                            spec_path,
                            format!(
                                "maxLayers: the image's budget leaves {max} layers for its closure, but its {} has {n} layers: raise maxLayers by at least {}",
                                onto.image.source,
                                n + 1 - max
                            ),
                        ))
                    }
                }
            } else if spec.budget_includes_base.is_some() {
                return Err(Error::spec(spec_path, "\"budgetIncludesBase\" goes with \"fromImage\""));
            }
            if !spec.copied.is_empty() {
                let file = spec::resolve(&base, &g.file);
                let entries = crate::nix::read_closure_file(&file, g.attr.as_deref())?;
                let copied = spec.copied.iter().cloned().collect();
                exclude_paths.extend(crate::nix::copied_only(&entries, &copied));
            }
            let exclude: BTreeSet<String> = exclude_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let plan = crate::plan::plan(&graph, strategy, max, &exclude)?;
            Ok((
                Json::from_value(&serde_json::to_value(&plan).expect("a plan serialises")),
                groups_of(&plan),
                format!("{}: the plan of {}", spec_path.display(), g.file.display()),
            ))
        }
        _ => Err(Error::spec(
            spec_path,
            "give either \"plan\" (a file from `nixoci plan`) or \"graph\" (a closure graph to plan)",
        )),
    }
}

/// The groups of store paths of a plan, in its order.
fn groups_of(plan: &crate::plan::Plan) -> Vec<Vec<PathBuf>> {
    plan.layers
        .iter()
        .map(|l| l.paths.iter().map(PathBuf::from).collect())
        .collect()
}
