//! Reading a plan file (`nixoci layers {"plan": FILE}`): a plan is taken
//! only as `nixoci plan` would have made it, whoever wrote it.
//!
//! The rules, each refused with the file named once and the layer or path
//! at fault: a known `strategy`; a `maxLayers` of 1 to
//! [`MAX_LAYERS`](super::MAX_LAYERS); at most `maxLayers` layers; no
//! empty layer; every path a store path of the store in use
//! ([`crate::nix::store_dir`]), in one layer only. `narSize` and `why` are
//! for people and may be left out; any other key is refused (a typo would
//! otherwise be ignored).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{check_budget, Plan, PlanLayer, Strategy};
use crate::error::{Error, Result};
use crate::nix::check_store_path;
use crate::oci::json::{parse_json, read_limited, Json, MAX_JSON};

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

/// Read and check the plan at `file`; also give its JSON as written (what
/// `layers.json` keeps).
pub fn read_plan(file: &Path) -> Result<(Plan, Json)> {
    let bytes = read_limited(file, MAX_JSON)?;
    let raw: PlanFile = parse_json(file, &bytes)?;
    let json: Json = parse_json(file, &bytes)?;
    let plan = check_plan(raw).map_err(|m| Error::spec(file, m))?;
    Ok((plan, json))
}

/// The rules of the module's documentation; the error says which broke.
fn check_plan(raw: PlanFile) -> std::result::Result<Plan, String> {
    let strategy: Strategy = raw.strategy.parse().map_err(|m| format!("strategy: {m}"))?;
    check_budget(raw.max_layers).map_err(|m| format!("maxLayers: {m}"))?;
    if raw.layers.len() > raw.max_layers {
        return Err(format!(
            "{} layers, more than its maxLayers ({}); `nixoci plan` never makes more: \
             plan again, or raise maxLayers (at most {})",
            raw.layers.len(),
            raw.max_layers,
            super::MAX_LAYERS
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
