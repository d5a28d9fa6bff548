//! The specs of several layers at once (`nixoci layers`, from a plan or a
//! closure graph) and of a layout of built manifests (`nixoci layout`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::de::objects;
use super::layer::{FromImage, PermSpec};
use crate::layer::compress::Compression;

/// See [`LayersSpec::budget_includes_base`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BudgetRule {
    /// The layers of the base count towards `maxLayers`.
    Strict,
    /// As `Strict`, but at least one layer is left for the closure.
    AtLeastOne,
}

/// Several layers at once (`nixoci layers`): one for each group of store
/// paths of a plan, given (`plan`, written by `nixoci plan`) or made here
/// from a closure graph (`graph`, with `maxLayers`, `strategy`, `base`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayersSpec {
    /// The plan: a JSON file whose `layers` each list the store `paths` of
    /// one layer (the layers come out in its order).
    #[serde(default)]
    pub plan: Option<PathBuf>,
    /// Or the closure graph to plan (`exportReferencesGraph` with
    /// structured attrs): a file, and the attribute holding the list.
    #[serde(default)]
    pub graph: Option<GraphSpec>,
    /// With `graph`: the most layers (1 to 127, default 100).
    #[serde(default)]
    pub max_layers: Option<usize>,
    /// With `graph`: `stable` (default) or `popularity`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// With `graph`: built layer directories whose store paths are left out.
    #[serde(default)]
    pub base: Vec<PathBuf>,
    /// With `graph`: a base image whose store paths are left out too.
    #[serde(default)]
    pub from_image: Option<FromImage>,
    /// With `fromImage`: `maxLayers` counts the base image's layers too
    /// (how `ociImage` keeps its whole image within its budget); `strict`
    /// fails when they leave none for the closure, `atLeastOne` then puts
    /// the closure in one layer.
    #[serde(default)]
    pub budget_includes_base: Option<BudgetRule>,
    /// With `graph`: store paths the image only copies files from (to
    /// destinations elsewhere; `ociImage` passes them): left out, their
    /// references kept, unless they or another path of the graph refer to
    /// them (`nix::copied_only`).
    #[serde(default)]
    pub copied: Vec<PathBuf>,
    /// Rules setting mode and owner on entries of the layers, as a layer
    /// spec's `perms` do: each applies to every layer, and must match an
    /// entry in at least one of them.
    #[serde(default, deserialize_with = "objects")]
    pub perms: Vec<PermSpec>,
    /// How every layer's tar stream is compressed.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[serde(default)]
    pub level: Option<u32>,
}

/// A closure graph file, and the attribute of it holding the list (none: the
/// file is the list).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GraphSpec {
    /// The file Nix wrote (`exportReferencesGraph`, or `.attrs.json`).
    pub file: PathBuf,
    /// The attribute of the file that holds the list (none: the file is the list).
    #[serde(default)]
    pub attr: Option<String>,
}

/// A layout from built manifest directories, for `nixoci layout`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayoutSpec {
    /// Directories written by `nixoci manifest`. One: the tags name that
    /// manifest. Several (one per platform): the tags name an image index
    /// over them.
    pub manifests: Vec<PathBuf>,
    /// Default: `["latest"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Annotations of the image index (several manifests), or of
    /// `index.json` (one manifest).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Merged into `index.json` last (e.g. its `annotations`).
    #[serde(default)]
    pub extra_index: Option<crate::oci::json::JsonObject>,
    /// With several manifests, also name each one `TAG-OS-ARCH[-VARIANT]`
    /// in `index.json`, for tools that cannot choose a platform from an
    /// index (umoci 0.4).
    #[serde(default)]
    pub platform_tags: bool,
    /// SBOM formats (`spdx`, `cyclonedx`) to attach to each image of the
    /// layout, as referrers (`nixoci sbom --attach`).
    #[serde(default)]
    pub sbom: Vec<String>,
}
