//! Automatic layering: which store paths of a closure go into which layer.
//!
//! The input is the closure graph Nix writes for `exportReferencesGraph`
//! with structured attrs (a list of `{path, narSize, references}`); the
//! output is a plan (`plan.json` in docs/layering.md): the layers, each
//! with its store paths, their total NAR size and why they are together. The plan is a pure
//! function of the graph *as a set*: the order of its entries and of their
//! references changes nothing, nor do thread counts or the machine. A plan
//! file handed to `nixoci layers` is read back by [`read_plan`], which
//! takes it only as [`plan`] would have made it.
//!
//! Two strategies (docs/layering.md explains both):
//!
//! - [`Strategy::Popularity`]: dockerTools' popularity contest, the same
//!   grouping on the same graph (tested against a direct transcription of
//!   its recurrence, and on hand-computed graphs);
//! - [`Strategy::Stable`] (the default): the roots (what an image names)
//!   and big paths in their own layers, the rest in buckets chosen by a
//!   hash of their package name, so that a path's layer does not depend on
//!   unrelated paths, every slot of the budget used.

mod graph;
mod group;
mod popularity;
mod stable;

#[cfg(test)]
use graph::GraphEntry;
pub use graph::{read_exclude, Graph};
pub use group::PlanLayer;
use popularity::group_by_popularity;
pub use popularity::popularity_order;
use stable::group_stable;
#[cfg(test)]
use stable::{bucket_of, stable_name};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nix::check_store_path;
use crate::oci::json::{parse_json, read_limited, Json, MAX_JSON};

/// The most layers a plan may have: overlay filesystems refuse images of
/// more than about 128 layers, and one is kept for the customisation layer.
pub const MAX_LAYERS: usize = 127;

/// How store paths are grouped into layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// dockerTools' popularity contest: the most popular paths get a layer
    /// each, the rest share the last one.
    Popularity,
    /// nixoci's default, built for stability under change.
    Stable,
}

impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "popularity" => Ok(Strategy::Popularity),
            "stable" => Ok(Strategy::Stable),
            _ => Err(format!(
                "unknown strategy {s:?}: expected popularity or stable"
            )),
        }
    }
}

/// `Err` with the reason when `n` is not a layer budget: at least 1, at
/// most [`MAX_LAYERS`].
pub fn check_budget(n: usize) -> std::result::Result<(), String> {
    if n == 0 {
        return Err("a budget of 0 layers holds no store path: give at least 1".into());
    }
    if n > MAX_LAYERS {
        return Err(format!(
            "{n} layers is more than {MAX_LAYERS}: overlay filesystems refuse images of \
             more layers; give at most {MAX_LAYERS}"
        ));
    }
    Ok(())
}

/// A layering plan (what `nixoci plan` writes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub strategy: Strategy,
    #[serde(rename = "maxLayers")]
    pub max_layers: usize,
    pub layers: Vec<PlanLayer>,
}

impl Plan {
    /// The plan as written: canonical JSON (compact, keys sorted) and a
    /// newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = crate::oci::json::canonical_json(self);
        out.push(b'\n');
        out
    }
}

/// Plan the layers of `graph`, less the paths in `exclude` (paths already
/// in other layers: they and only they are left out; what they refer to is
/// planned unless excluded too; excluded paths the graph does not list are
/// ignored), in at most `max_layers` layers.
pub fn plan(
    graph: &Graph,
    strategy: Strategy,
    max_layers: usize,
    exclude: &BTreeSet<String>,
) -> Result<Plan> {
    check_budget(max_layers).map_err(Error::Invalid)?;
    let kept = |i: &usize| !exclude.contains(&graph.paths[*i]);
    let layers = match strategy {
        Strategy::Popularity => {
            let order: Vec<(usize, u128)> = popularity_order(graph)
                .into_iter()
                .filter(|(i, _)| kept(i))
                .collect();
            group_by_popularity(graph, &order, max_layers)
        }
        Strategy::Stable => {
            let paths: Vec<usize> = (0..graph.len()).filter(kept).collect();
            group_stable(graph, &paths, max_layers)
        }
    };
    debug_assert!(layers.len() <= max_layers);
    Ok(Plan {
        strategy,
        max_layers,
        layers,
    })
}

// -- reading a plan file (`nixoci layers {"plan": FILE}`): a plan is
// taken only as `nixoci plan` would have made it, whoever wrote it. The
// rules, each refused with the file named once and the layer or path at
// fault: a known `strategy`; a `maxLayers` of 1 to MAX_LAYERS; at most
// `maxLayers` layers; no empty layer; every path a store path of the store
// in use, in one layer only. `narSize` and `why` are for people and may be
// left out; any other key is refused (a typo would otherwise be ignored).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    strategy: String,
    #[serde(rename = "maxLayers")]
    max_layers: usize,
    layers: Vec<LayerFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerFile {
    paths: Vec<String>,
    #[serde(rename = "narSize", default)]
    nar_size: u64,
    #[serde(default)]
    why: String,
}

/// Read the plan at `file` and check it as `nixoci plan` would have made
/// it (a known strategy, a budget of 1 to [`MAX_LAYERS`], at most that
/// many layers, none empty, every path a store path of the store in use,
/// in one layer only; unknown keys refused); also give its JSON as written
/// (what `layers.json` keeps).
pub fn read_plan(file: &Path) -> Result<(Plan, Json)> {
    let bytes = read_limited(file, MAX_JSON)?;
    let raw: PlanFile = parse_json(file, &bytes)?;
    let json: Json = parse_json(file, &bytes)?;
    let plan = check_plan(raw).map_err(|m| Error::spec(file, m))?;
    Ok((plan, json))
}

/// The rules above; the error says which broke.
fn check_plan(raw: PlanFile) -> std::result::Result<Plan, String> {
    let strategy: Strategy = raw.strategy.parse().map_err(|m| format!("strategy: {m}"))?;
    check_budget(raw.max_layers).map_err(|m| format!("maxLayers: {m}"))?;
    if raw.layers.len() > raw.max_layers {
        return Err(format!(
            "{} layers, more than its maxLayers ({}); `nixoci plan` never makes more: \
             plan again, or raise maxLayers (at most {})",
            raw.layers.len(),
            raw.max_layers,
            MAX_LAYERS
        ));
    }
    let store = crate::nix::store_dir();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (l, layer) in raw.layers.iter().enumerate() {
        if layer.paths.is_empty() {
            return Err(format!(
                "layers[{l}] is empty: every layer of a plan holds at least one store path; \
                 remove it"
            ));
        }
        for (i, p) in layer.paths.iter().enumerate() {
            check_store_path(p, &store).map_err(|m| format!("layers[{l}].paths[{i}]: {m}"))?;
            if let Some(first) = seen.insert(p, l) {
                let where_ = if first == l {
                    format!("twice in layers[{l}]")
                } else {
                    format!("in layers[{first}] and layers[{l}]")
                };
                return Err(format!(
                    "{p} is {where_}: a store path goes in one layer only"
                ));
            }
        }
    }
    Ok(Plan {
        strategy,
        max_layers: raw.max_layers,
        layers: raw
            .layers
            .into_iter()
            .map(|l| PlanLayer {
                paths: l.paths,
                nar_size: l.nar_size,
                why: l.why,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests;
