//! One layer of a plan, as both strategies make it.

use serde::Serialize;

use super::graph::Graph;

/// One layer of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanLayer {
    /// Its store paths, sorted.
    pub paths: Vec<String>,
    /// The sum of their NAR sizes.
    #[serde(rename = "narSize")]
    pub nar_size: u64,
    /// Why these paths are together.
    pub why: String,
}

pub(super) fn layer(graph: &Graph, members: &[usize], why: String) -> PlanLayer {
    let mut paths: Vec<String> = members.iter().map(|&i| graph.paths[i].clone()).collect();
    paths.sort();
    PlanLayer {
        nar_size: members
            .iter()
            .fold(0u64, |s, &i| s.saturating_add(graph.sizes[i])),
        paths,
        why,
    }
}

/// A size for people: `512 B`, `3.4 KiB`, `41.2 MiB`, `1.5 GiB`.
pub(super) fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
