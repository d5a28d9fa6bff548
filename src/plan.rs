//! Automatic layering: which store paths of a closure go into which layer.
//!
//! The input is the closure graph Nix writes for `exportReferencesGraph`
//! with structured attrs (a list of `{path, narSize, references}`); the
//! output is a plan (`plan.json` in the README): the layers, each with its store paths,
//! their total NAR size and why they are together. The plan is a pure
//! function of the graph *as a set*: the order of its entries and of their
//! references changes nothing, nor do thread counts or the machine.
//!
//! Two strategies (the README's "Automatic layering" explains both):
//!
//! - [`Strategy::Popularity`]: dockerTools' popularity contest, the same
//!   grouping on the same graph (tested against a direct transcription of
//!   its recurrence, and on hand-computed graphs);
//! - [`Strategy::Stable`] (the default): big paths in their own layers, the
//!   rest in buckets chosen by a hash of their package name, so that a
//!   path's layer does not depend on unrelated paths.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::oci::json::{check_duplicate_keys, read_limited, MAX_JSON};

/// The most layers a plan may have: overlay filesystems refuse images of
/// more than about 128 layers, and one is kept for the customisation layer.
pub const MAX_LAYERS: usize = 127;

/// The smallest tier for a path of its own under [`Strategy::Stable`]:
/// below it, a layer of its own saves too little on a re-push to be worth
/// a slot of the budget.
pub const MIN_TIER: u64 = 64 << 10;

/// The tiers are [`MIN_TIER`] times a power of the fourth root of two:
/// these are the fourth root's first four powers, in ten-thousandths, so
/// that every machine computes the same tiers (no floating point).
const TIER_STEPS: [u128; 4] = [10_000, 11_892, 14_142, 16_818];

/// The `k`-th tier: [`MIN_TIER`] · 2^(k/4), rounded down.
fn tier(k: u32) -> u128 {
    ((MIN_TIER as u128) << (k / 4)) * TIER_STEPS[(k % 4) as usize] / 10_000
}

/// The most buckets of small paths under [`Strategy::Stable`].
pub const MAX_BUCKETS: usize = 16;

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

impl Strategy {
    /// The name the command line and the plan give it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Popularity => "popularity",
            Strategy::Stable => "stable",
        }
    }
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

/// One entry of a closure graph as Nix writes it (other fields, such as
/// `narHash` and `closureSize`, are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct GraphEntry {
    pub path: String,
    #[serde(rename = "narSize")]
    pub nar_size: u64,
    pub references: Vec<String>,
}

/// A closure graph, checked: every path listed once, every reference to a
/// listed path, no cycle but a path referring to itself (which is dropped).
/// Paths are numbered in sorted order, so nothing below depends on the
/// order of the file.
#[derive(Clone, Debug)]
pub struct Graph {
    paths: Vec<String>,
    sizes: Vec<u64>,
    /// The references of each path, sorted, without duplicates or itself.
    children: Vec<Vec<usize>>,
    /// The paths that refer to each path, sorted.
    parents: Vec<Vec<usize>>,
    /// Every path, each after all the paths that refer to it.
    topo: Vec<usize>,
}

impl Graph {
    /// Check the entries and build the graph; the error says which path is
    /// at fault and how.
    pub fn from_entries(mut entries: Vec<GraphEntry>) -> std::result::Result<Self, String> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        for w in entries.windows(2) {
            if w[0].path == w[1].path {
                return Err(format!(
                    "{} is listed twice; each store path has one entry",
                    w[0].path
                ));
            }
        }
        let paths: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
        let index = |p: &str| paths.binary_search_by(|q| q.as_str().cmp(p)).ok();
        let mut children = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            if !e.path.starts_with('/') {
                return Err(format!("{:?} is not an absolute store path", e.path));
            }
            let mut refs = Vec::with_capacity(e.references.len());
            for r in &e.references {
                let j = index(r).ok_or_else(|| {
                    format!(
                        "{} refers to {r}, which the graph does not list: \
                         give the whole closure (exportReferencesGraph)",
                        e.path
                    )
                })?;
                if j != i {
                    refs.push(j);
                }
            }
            refs.sort_unstable();
            refs.dedup();
            children.push(refs);
        }
        let mut parents = vec![Vec::new(); paths.len()];
        for (i, refs) in children.iter().enumerate() {
            for &j in refs {
                parents[j].push(i);
            }
        }
        let topo = topological_order(&paths, &children, &parents)?;
        Ok(Graph {
            sizes: entries.iter().map(|e| e.nar_size).collect(),
            paths,
            children,
            parents,
            topo,
        })
    }

    /// Read a closure graph file: a JSON list of entries, or an object (a
    /// `.attrs.json`) with the list under `attr` (default `closure`, as for
    /// closure files, [`crate::nix::read_closure_file`]).
    pub fn read(file: &Path, attr: Option<&str>) -> Result<Self> {
        let bytes = read_limited(file, MAX_JSON)?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: file.to_owned(),
            source,
        })?;
        check_duplicate_keys(&bytes).map_err(|m| Error::spec(file, m))?;
        let list = match (&doc, attr) {
            (Value::Array(list), None) => list,
            (Value::Array(_), Some(a)) => {
                return Err(Error::spec(
                    file,
                    format!("--attr {a:?} given, but the file is a list, not an object"),
                ))
            }
            (Value::Object(o), _) => {
                let a = attr.unwrap_or("closure");
                o.get(a)
                    .ok_or_else(|| {
                        Error::spec(
                            file,
                            format!(
                                "no attribute {a:?}; give the exportReferencesGraph key \
                                 with --attr"
                            ),
                        )
                    })?
                    .as_array()
                    .ok_or_else(|| Error::spec(file, format!("attribute {a:?} is not a list")))?
            }
            _ => {
                return Err(Error::spec(
                    file,
                    "expected a list of {path, narSize, references} entries, or an object \
                     (.attrs.json) holding one",
                ))
            }
        };
        let entries = list
            .iter()
            .enumerate()
            .map(|(i, v)| {
                GraphEntry::deserialize(v).map_err(|e| {
                    let which = match v.get("path").and_then(Value::as_str) {
                        Some(p) => format!("entry {i} ({p})"),
                        None => format!("entry {i}"),
                    };
                    Error::spec(file, format!("{which}: {e}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Graph::from_entries(entries).map_err(|m| Error::spec(file, m))
    }

    /// The number of store paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether the graph has no store path.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// The paths in an order where each comes after every path that refers to
/// it (Kahn's algorithm, smallest index first); a cycle is an error naming
/// it.
fn topological_order(
    paths: &[String],
    children: &[Vec<usize>],
    parents: &[Vec<usize>],
) -> std::result::Result<Vec<usize>, String> {
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: std::collections::BinaryHeap<Reverse<usize>> = (0..paths.len())
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(paths.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &c in &children[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    if order.len() == paths.len() {
        return Ok(order);
    }
    // Every path left has a parent left: walk up until one repeats.
    let start = (0..paths.len())
        .find(|&i| waiting[i] > 0)
        .expect("a path is left");
    let mut seen = BTreeMap::new();
    let mut walk = Vec::new();
    let mut at = start;
    while !seen.contains_key(&at) {
        seen.insert(at, walk.len());
        walk.push(at);
        at = *parents[at]
            .iter()
            .find(|&&p| waiting[p] > 0)
            .expect("a path left has a parent left");
    }
    // `walk[seen[at]..]` goes up the references; name them the way down.
    let mut cycle: Vec<&str> = walk[seen[&at]..]
        .iter()
        .rev()
        .map(|&i| paths[i].as_str())
        .collect();
    // From its first path in sorted order, whatever the walk began with.
    let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
    cycle.rotate_left(first);
    cycle.push(cycle[0]);
    Err(format!(
        "the graph has a reference cycle: {}; a Nix closure has none (besides a path \
         referring to itself), so this is not a closure graph Nix wrote",
        cycle.join(" -> ")
    ))
}

/// Read a list of store paths to leave out: a JSON list of strings, or one
/// path per line (blank lines ignored).
pub fn read_exclude(file: &Path) -> Result<BTreeSet<String>> {
    let bytes = read_limited(file, MAX_JSON)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::spec(file, "not UTF-8 text: expected store paths"))?;
    let paths: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| {
            Error::spec(
                file,
                format!("expected a JSON list of store paths, or one per line: {e}"),
            )
        })?
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for p in &paths {
        if !p.starts_with('/') {
            return Err(Error::spec(
                file,
                format!("{p:?} is not an absolute store path"),
            ));
        }
    }
    Ok(paths.into_iter().collect())
}

/// A layering plan (what `nixoci plan` writes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub strategy: Strategy,
    #[serde(rename = "maxLayers")]
    pub max_layers: usize,
    pub layers: Vec<PlanLayer>,
}

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

fn layer(graph: &Graph, members: &[usize], why: String) -> PlanLayer {
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

// ---------------------------------------------------------------------------
// popularity

/// dockerTools' sort key for ties: the path with its first `-`-separated
/// part (`/nix/store/HASH`) moved to the end, `NAME-/nix/store/HASH`.
fn package_name(path: &str) -> String {
    match path.split_once('-') {
        Some((first, rest)) => format!("{rest}-{first}"),
        None => path.to_owned(),
    }
}

/// Every path with its popularity, most popular first, ties by
/// `package_name`: the order of dockerTools' popularity contest.
///
/// The contest expands each root (a path nothing refers to) into a tree and
/// scores bottom-up: `contest(x)` gives each child `c` 1, and each path `s`
/// scored `p` in `contest(c)` `p + 1`, summed over the children; the roots
/// are scored the same way, as the children of one virtual root. Unrolled,
/// the score of `s` is the number of routes from the virtual root to a path
/// `y` that reaches `s`, summed over those `y`: `Σ_{y ⊒ s} R(y)`, where `y`
/// ranges over `s` and the paths above it and `R(y)` counts the routes from
/// the roots down to `y`. `R` takes one pass in topological order; the sum
/// over the paths above each `s` is one pass over bit sets of the paths
/// below, in chunks so that memory stays bounded: `N·E/64` word operations
/// for `N` paths and `E` references.
///
/// Route counts grow exponentially with the depth of shared diamonds; they
/// are `u128` and saturate (at 3.4e38, which no real closure nears; past it
/// ties are broken by name where dockerTools' unbounded integers would
/// still tell the paths apart).
pub fn popularity_order(graph: &Graph) -> Vec<(usize, u128)> {
    // Bit sets of 16 MiB at most.
    let score = popularity_scores(graph, 1 << 21);
    let mut order: Vec<(usize, u128, String)> = (0..graph.len())
        .map(|i| (i, score[i], package_name(&graph.paths[i])))
        .collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.2.cmp(&b.2)));
    order.into_iter().map(|(i, s, _)| (i, s)).collect()
}

/// The score of each path, with bit sets of at most `max_words` 64-bit
/// words in all (more when one word per path is more).
fn popularity_scores(graph: &Graph, max_words: usize) -> Vec<u128> {
    let n = graph.len();
    let mut routes = vec![0u128; n];
    for &y in &graph.topo {
        routes[y] = if graph.parents[y].is_empty() {
            1
        } else {
            graph.parents[y]
                .iter()
                .fold(0u128, |s, &p| s.saturating_add(routes[p]))
        };
    }
    let mut score = vec![0u128; n];
    // Chunks of target paths: `words` 64-bit words for each of the n paths.
    let words = n.div_ceil(64).min(max_words / n.max(1)).max(1);
    let chunk = words * 64;
    let mut below = vec![0u64; n * words];
    for lo in (0..n).step_by(chunk) {
        let hi = (lo + chunk).min(n);
        below.iter_mut().for_each(|w| *w = 0);
        // Children before parents: the chunk's paths at or below each y.
        for &y in graph.topo.iter().rev() {
            let (head, tail) = below.split_at_mut(y * words);
            let (row, tail) = tail.split_at_mut(words);
            for &c in &graph.children[y] {
                let other: &[u64] = if c < y {
                    &head[c * words..(c + 1) * words]
                } else {
                    &tail[(c - y - 1) * words..(c - y) * words]
                };
                row.iter_mut().zip(other).for_each(|(a, b)| *a |= b);
            }
            if (lo..hi).contains(&y) {
                row[(y - lo) / 64] |= 1 << ((y - lo) % 64);
            }
            for (w, &bits) in row.iter().enumerate() {
                let mut bits = bits;
                while bits != 0 {
                    let s = lo + w * 64 + bits.trailing_zeros() as usize;
                    score[s] = score[s].saturating_add(routes[y]);
                    bits &= bits - 1;
                }
            }
        }
    }
    score
}

/// dockerTools' grouping: with at most `budget` paths, a layer each in
/// order; else the first `budget - 1` get a layer each and the rest share
/// the last.
fn group_by_popularity(graph: &Graph, order: &[(usize, u128)], budget: usize) -> Vec<PlanLayer> {
    let singles = if order.len() <= budget {
        order.len()
    } else {
        budget - 1
    };
    let mut layers: Vec<PlanLayer> = order[..singles]
        .iter()
        .enumerate()
        .map(|(rank, &(i, score))| {
            layer(
                graph,
                &[i],
                format!("popularity rank {} (score {score})", rank + 1),
            )
        })
        .collect();
    if singles < order.len() {
        let rest: Vec<usize> = order[singles..].iter().map(|&(i, _)| i).collect();
        layers.push(layer(
            graph,
            &rest,
            format!("the remainder after {singles} popular paths"),
        ));
    }
    layers
}

// ---------------------------------------------------------------------------
// stable

/// The number of buckets of small paths for a budget of `budget` layers
/// (at least 2): a quarter of the budget, 1 to [`MAX_BUCKETS`]. It depends
/// on the budget alone, so that no change to the graph moves a path from
/// one bucket to another.
pub fn bucket_count(budget: usize) -> usize {
    (budget / 4).clamp(1, MAX_BUCKETS)
}

/// The name a path keeps across updates: its name without the store hash
/// and from the first `-` followed by a digit on (the version and any
/// output suffix): `/nix/store/HASH-openssl-3.0.12-dev` gives `openssl`,
/// `/nix/store/HASH-python3.11-six-1.16.0` gives `python3.11-six`.
pub fn stable_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    let name = base.split_once('-').map_or(base, |(_, n)| n);
    let b = name.as_bytes();
    (0..b.len())
        .find(|&i| b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        .map_or(name, |i| &name[..i])
}

/// The bucket (0-based) of a path among `buckets`: the first 8 bytes of
/// the sha256 of its [`stable_name`], modulo the count.
pub fn bucket_of(path: &str, buckets: usize) -> usize {
    use sha2::{Digest as _, Sha256};
    let d = Sha256::digest(stable_name(path).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % buckets as u64) as usize
}

/// A size for people: `512 B`, `3.4 KiB`, `41.2 MiB`, `1.5 GiB`.
fn size_text(bytes: u64) -> String {
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

/// A tier as people read it: `1.0 MiB`, `76.1 KiB`.
fn tier_text(tier: u128) -> String {
    size_text(u64::try_from(tier).unwrap_or(u64::MAX))
}

/// The stable grouping of `paths` (see the README):
///
/// - all of them fit: a layer each;
/// - a budget of 1: one layer;
/// - else `K` = [`bucket_count`] buckets and `B − K` slots for big paths:
///   the tier `T` is the smallest of the tiers [`MIN_TIER`] · 2^(k/4)
///   such that at most `B − K` paths are of `T` bytes or more; those get a
///   layer each, the others go to the bucket [`bucket_of`] their name;
///   empty buckets are dropped.
///
/// Big layers come first, largest first (ties by path), then the buckets
/// in order.
fn group_stable(graph: &Graph, paths: &[usize], budget: usize) -> Vec<PlanLayer> {
    let by_size = |v: &mut Vec<usize>| {
        v.sort_by(|&a, &b| {
            graph.sizes[b]
                .cmp(&graph.sizes[a])
                .then_with(|| graph.paths[a].cmp(&graph.paths[b]))
        })
    };
    if paths.len() <= budget {
        let mut all = paths.to_vec();
        by_size(&mut all);
        return all
            .iter()
            .map(|&i| {
                layer(
                    graph,
                    &[i],
                    format!(
                        "own layer: {}; the budget of {budget} holds every path",
                        size_text(graph.sizes[i])
                    ),
                )
            })
            .collect();
    }
    if budget == 1 {
        return vec![layer(
            graph,
            paths,
            "every path: a budget of 1 layer".into(),
        )];
    }
    let buckets = bucket_count(budget);
    let slots = budget - buckets;
    let mut k = 0;
    // Ends: past the largest size no path is that big.
    while paths
        .iter()
        .filter(|&&i| graph.sizes[i] as u128 >= tier(k))
        .count()
        > slots
    {
        k += 1;
    }
    let tier = tier(k);
    let (mut big, small): (Vec<usize>, Vec<usize>) =
        paths.iter().partition(|&&i| graph.sizes[i] as u128 >= tier);
    by_size(&mut big);
    let mut layers: Vec<PlanLayer> = big
        .iter()
        .map(|&i| {
            layer(
                graph,
                &[i],
                format!(
                    "own layer: {}, at or over the {} tier",
                    size_text(graph.sizes[i]),
                    tier_text(tier)
                ),
            )
        })
        .collect();
    let mut filled = vec![Vec::new(); buckets];
    for &i in &small {
        filled[bucket_of(&graph.paths[i], buckets)].push(i);
    }
    for (b, members) in filled.iter().enumerate() {
        if !members.is_empty() {
            layers.push(layer(
                graph,
                members,
                format!(
                    "bucket {} of {buckets} for paths under the {} tier (by name)",
                    b + 1,
                    tier_text(tier)
                ),
            ));
        }
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64, refs: &[&str]) -> GraphEntry {
        GraphEntry {
            path: path.into(),
            nar_size: size,
            references: refs.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn graph(entries: &[GraphEntry]) -> Graph {
        Graph::from_entries(entries.to_vec()).unwrap()
    }

    /// The popularity order as (path, score).
    fn ranked(g: &Graph) -> Vec<(&str, u128)> {
        popularity_order(g)
            .into_iter()
            .map(|(i, s)| (g.paths[i].as_str(), s))
            .collect()
    }

    fn layer_paths(p: &Plan) -> Vec<Vec<String>> {
        p.layers.iter().map(|l| l.paths.clone()).collect()
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    // -- a small deterministic random source for the property tests

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                v.swap(i, self.below(i as u64 + 1) as usize);
            }
        }
    }

    const NAMES: &[&str] = &[
        "glibc-2.38-44",
        "openssl-3.0.12",
        "zlib-1.3",
        "bash-5.2-p15",
        "coreutils-9.3",
        "python3-3.11.6",
        "python3.11-six-1.16.0",
        "libffi-3.4.4",
        "ncurses-6.4",
        "app",
        "gcc-12.3.0-lib",
        "sqlite-3.43.1",
    ];

    /// A random DAG of `n` paths: each refers to a few later ones (and
    /// sometimes itself); sizes from bytes to hundreds of MiB.
    fn random_entries(rng: &mut Rng, n: usize) -> Vec<GraphEntry> {
        let paths: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "/nix/store/{:032x}-{}",
                    rng.next() as u128 * 7 + i as u128,
                    NAMES[rng.below(NAMES.len() as u64) as usize]
                )
            })
            .collect();
        (0..n)
            .map(|i| {
                let mut refs = Vec::new();
                if i + 1 < n {
                    for _ in 0..rng.below(4) {
                        refs.push(paths[i + 1 + rng.below((n - i - 1) as u64) as usize].clone());
                    }
                }
                if rng.below(5) == 0 {
                    refs.push(paths[i].clone());
                }
                GraphEntry {
                    path: paths[i].clone(),
                    nar_size: 1 << rng.below(29),
                    references: refs,
                }
            })
            .collect()
    }

    /// The popularity contest transcribed as the recurrence states it: a
    /// map per path, merged child by child (quadratic; for checking only).
    fn contest_by_recurrence(g: &Graph) -> BTreeMap<usize, u128> {
        fn contest(
            g: &Graph,
            x: usize,
            memo: &mut BTreeMap<usize, BTreeMap<usize, u128>>,
        ) -> BTreeMap<usize, u128> {
            if let Some(m) = memo.get(&x) {
                return m.clone();
            }
            let mut out = BTreeMap::new();
            for &c in &g.children[x] {
                *out.entry(c).or_insert(0) += 1;
                for (s, p) in contest(g, c, memo) {
                    *out.entry(s).or_insert(0) += p + 1;
                }
            }
            memo.insert(x, out.clone());
            out
        }
        let mut memo = BTreeMap::new();
        let mut total = BTreeMap::new();
        for r in (0..g.len()).filter(|&i| g.parents[i].is_empty()) {
            *total.entry(r).or_insert(0) += 1;
            for (s, p) in contest(g, r, &mut memo) {
                *total.entry(s).or_insert(0) += p + 1;
            }
        }
        total
    }

    // -- popularity on hand-computed graphs

    /// The worked example of nixpkgs' closure-graph.py: A→B→C→D→F, C→E→F,
    /// B→E, A→G. Scores, bottom-up: contest(F) = {}; contest(D) =
    /// contest(E) = {F:1}; contest(C) = {D:1, E:1, F:2+2=4}; contest(B) =
    /// {C:1, D:2, E:2+1=3, F:5+2=7}; contest(G) = {}; contest(A) = {B:1,
    /// C:2, D:3, E:4, F:8, G:1}; overall, A the only root: A 1, B 2, C 3,
    /// D 4, E 5, F 9, G 2. B and G tie at 2: "B-/nix/store/b" < "G-...".
    #[test]
    fn popularity_worked_example() {
        let g = graph(&[
            entry("/nix/store/a-A", 1, &["/nix/store/b-B", "/nix/store/g-G"]),
            entry("/nix/store/b-B", 1, &["/nix/store/c-C", "/nix/store/e-E"]),
            entry("/nix/store/c-C", 1, &["/nix/store/d-D", "/nix/store/e-E"]),
            entry("/nix/store/d-D", 1, &["/nix/store/f-F"]),
            entry("/nix/store/e-E", 1, &["/nix/store/f-F"]),
            entry("/nix/store/f-F", 1, &[]),
            entry("/nix/store/g-G", 1, &[]),
        ]);
        assert_eq!(
            ranked(&g),
            [
                ("/nix/store/f-F", 9),
                ("/nix/store/e-E", 5),
                ("/nix/store/d-D", 4),
                ("/nix/store/c-C", 3),
                ("/nix/store/b-B", 2),
                ("/nix/store/g-G", 2),
                ("/nix/store/a-A", 1),
            ]
        );
        // Budget 4 < 7 paths: F, E, D alone, the rest together.
        let p = plan(&g, Strategy::Popularity, 4, &none()).unwrap();
        assert_eq!(
            layer_paths(&p),
            [
                vec!["/nix/store/f-F"],
                vec!["/nix/store/e-E"],
                vec!["/nix/store/d-D"],
                vec![
                    "/nix/store/a-A",
                    "/nix/store/b-B",
                    "/nix/store/c-C",
                    "/nix/store/g-G"
                ],
            ]
        );
        assert_eq!(p.layers[3].why, "the remainder after 3 popular paths");
        assert_eq!(p.layers[0].why, "popularity rank 1 (score 9)");
        // Budget 7 = 7 paths: a layer each, in order.
        let p = plan(&g, Strategy::Popularity, 7, &none()).unwrap();
        assert_eq!(p.layers.len(), 7);
        assert_eq!(p.layers[6].paths, ["/nix/store/a-A"]);
    }

    /// A diamond: A→B, A→C, B→D, C→D. contest(D) = {}; contest(B) =
    /// contest(C) = {D:1}; contest(A) = {B:1, D:2, C:1, D:+2} = {B:1, C:1,
    /// D:4}; overall: A 1, B 2, C 2, D 5. B and C tie; their package names
    /// are "zlib-1-/nix/store/0000" and "attr-2-/nix/store/ffff": C first,
    /// though its hash sorts last.
    #[test]
    fn popularity_diamond_ties_by_name_not_hash() {
        let (a, b, c, d) = (
            "/nix/store/9999-app",
            "/nix/store/0000-zlib-1",
            "/nix/store/ffff-attr-2",
            "/nix/store/5555-glibc-2",
        );
        let g = graph(&[
            entry(a, 1, &[b, c]),
            entry(b, 1, &[d]),
            entry(c, 1, &[d]),
            entry(d, 1, &[]),
        ]);
        assert_eq!(ranked(&g), [(d, 5), (c, 2), (b, 2), (a, 1)]);
        let p = plan(&g, Strategy::Popularity, 2, &none()).unwrap();
        assert_eq!(
            layer_paths(&p),
            [vec![d], vec![b, c, a]].map(|mut v| {
                v.sort();
                v
            })
        );
    }

    /// Two roots share X→Y; Y refers to itself (ignored); Z stands alone.
    /// contest(Y) = {}; contest(X) = {Y:1}; contest(R1) = contest(R2) =
    /// {X:1, Y:2}; overall: R1 1, X 2, Y 3, then R2 1, X 2+2 = 4, Y 3+3 =
    /// 6; Z 1. Ties at 1 by name: "r1-", "r2-", "z-".
    #[test]
    fn popularity_two_roots_and_a_self_reference() {
        let (r1, r2, x, y, z) = (
            "/nix/store/1-r1",
            "/nix/store/2-r2",
            "/nix/store/3-x",
            "/nix/store/4-y",
            "/nix/store/0-z",
        );
        let g = graph(&[
            entry(r1, 1, &[x]),
            entry(r2, 1, &[x]),
            entry(x, 1, &[y]),
            entry(y, 1, &[y]),
            entry(z, 1, &[]),
        ]);
        assert_eq!(ranked(&g), [(y, 6), (x, 4), (r1, 1), (r2, 1), (z, 1)]);
        let p = plan(&g, Strategy::Popularity, 3, &none()).unwrap();
        assert_eq!(layer_paths(&p), [vec![y], vec![x], vec![z, r1, r2]]);
    }

    /// Against the recurrence itself, on random graphs.
    #[test]
    fn popularity_matches_the_recurrence() {
        let mut rng = Rng(7);
        for n in [0, 1, 2, 5, 20, 60, 150] {
            for _ in 0..5 {
                let g = graph(&random_entries(&mut rng, n));
                let want = contest_by_recurrence(&g);
                let got = popularity_order(&g);
                assert_eq!(got.len(), n);
                for &(i, s) in &got {
                    assert_eq!(want.get(&i).copied().unwrap_or(0), s, "{}", g.paths[i]);
                }
                // In chunks of 64 and of 128 paths, as for graphs of
                // more than about 12,000 paths.
                for max_words in [0, 2 * n] {
                    let chunked = popularity_scores(&g, max_words);
                    for &(i, s) in &got {
                        assert_eq!(chunked[i], s);
                    }
                }
                for w in got.windows(2) {
                    let (a, b) = (&w[0], &w[1]);
                    assert!(
                        a.1 > b.1
                            || (a.1 == b.1
                                && package_name(&g.paths[a.0]) < package_name(&g.paths[b.0]))
                    );
                }
            }
        }
    }

    /// 200 levels of two paths each referring to both of the next level:
    /// 2^200 routes reach the bottom, past u128; scores saturate, nothing
    /// overflows, and it is quick.
    #[test]
    fn popularity_saturates() {
        let name = |l: usize, s: char| format!("/nix/store/{l:03}{s}-p");
        let mut entries = Vec::new();
        for l in 0..200 {
            for s in ['a', 'b'] {
                let refs: Vec<String> = if l + 1 < 200 {
                    vec![name(l + 1, 'a'), name(l + 1, 'b')]
                } else {
                    vec![]
                };
                let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
                entries.push(entry(&name(l, s), 1, &refs));
            }
        }
        let g = graph(&entries);
        let order = ranked(&g);
        assert_eq!(order[0].1, u128::MAX);
        assert_eq!(order.last().unwrap().1, 1);
        assert_eq!(order.len(), 400);
    }

    /// Excluded paths are scored with the rest (the ranking is dockerTools'
    /// on the whole graph) and then left out.
    #[test]
    fn popularity_exclude() {
        let g = graph(&[
            entry("/nix/store/a-A", 1, &["/nix/store/b-B"]),
            entry("/nix/store/b-B", 1, &["/nix/store/c-C"]),
            entry("/nix/store/c-C", 1, &[]),
        ]);
        let ex = BTreeSet::from(["/nix/store/b-B".to_owned()]);
        let p = plan(&g, Strategy::Popularity, 5, &ex).unwrap();
        assert_eq!(
            layer_paths(&p),
            [vec!["/nix/store/c-C"], vec!["/nix/store/a-A"]]
        );
        assert_eq!(p.layers[1].why, "popularity rank 2 (score 1)");
    }

    // -- graph checks

    #[test]
    fn graph_errors_name_the_path() {
        let e =
            Graph::from_entries(vec![entry("/nix/store/a-x", 1, &["/nix/store/b-y"])]).unwrap_err();
        assert!(
            e.starts_with("/nix/store/a-x refers to /nix/store/b-y, which the graph does not list"),
            "{e}"
        );
        let e = Graph::from_entries(vec![
            entry("/nix/store/a-x", 1, &[]),
            entry("/nix/store/a-x", 2, &[]),
        ])
        .unwrap_err();
        assert!(e.starts_with("/nix/store/a-x is listed twice"), "{e}");
        let e = Graph::from_entries(vec![
            entry("/nix/store/a", 1, &["/nix/store/b"]),
            entry("/nix/store/b", 1, &["/nix/store/c"]),
            entry("/nix/store/c", 1, &["/nix/store/a"]),
            entry("/nix/store/d", 1, &["/nix/store/a"]),
        ])
        .unwrap_err();
        assert!(
            e.contains("cycle: /nix/store/a -> /nix/store/b -> /nix/store/c -> /nix/store/a"),
            "{e}"
        );
        let e = Graph::from_entries(vec![entry("nix/store/a", 1, &[])]).unwrap_err();
        assert!(e.contains("not an absolute store path"), "{e}");
    }

    #[test]
    fn budgets() {
        assert!(check_budget(0).unwrap_err().contains("at least 1"));
        assert!(check_budget(128).unwrap_err().contains("at most 127"));
        assert!(check_budget(1).is_ok() && check_budget(127).is_ok());
        let g = graph(&[entry("/nix/store/a-x", 1, &[])]);
        assert!(plan(&g, Strategy::Stable, 0, &none()).is_err());
    }

    // -- stable

    #[test]
    fn stable_names() {
        assert_eq!(stable_name("/nix/store/abc-openssl-3.0.12"), "openssl");
        assert_eq!(stable_name("/nix/store/abc-openssl-3.0.12-dev"), "openssl");
        assert_eq!(
            stable_name("/nix/store/abc-python3.11-six-1.16.0"),
            "python3.11-six"
        );
        assert_eq!(stable_name("/nix/store/abc-hello"), "hello");
        assert_eq!(stable_name("/nix/store/abc"), "abc");
        assert_eq!(stable_name("/nix/store/abc-x-"), "x-");
        // The same bucket whatever the hash and version.
        assert_eq!(
            bucket_of("/nix/store/111-zlib-1.2.13", 16),
            bucket_of("/nix/store/222-zlib-1.3", 16)
        );
    }

    /// A graph for the stability tests: 6 big paths (8 to 40 MiB) and 60
    /// small ones (under 1 MiB), in a chain of references.
    fn stable_fixture() -> Vec<GraphEntry> {
        let mut out = Vec::new();
        let mut names = Vec::new();
        for i in 0..6 {
            names.push((format!("/nix/store/{i:04}b-big{i}-1.0"), (8 + 6 * i) << 20));
        }
        for i in 0..60 {
            names.push((format!("/nix/store/{i:04}s-small{i}-2.{i}"), 1000 + 100 * i));
        }
        for (k, (p, size)) in names.iter().enumerate() {
            let refs: Vec<&str> = names
                .get(k + 1)
                .map(|(q, _)| vec![q.as_str()])
                .unwrap_or_default();
            out.push(entry(p, *size as u64, &refs));
        }
        out
    }

    /// How many layers of `a` are not in `b` and of `b` not in `a`.
    fn changed(a: &Plan, b: &Plan) -> (usize, usize) {
        let sa: BTreeSet<Vec<String>> = layer_paths(a).into_iter().collect();
        let sb: BTreeSet<Vec<String>> = layer_paths(b).into_iter().collect();
        (sa.difference(&sb).count(), sb.difference(&sa).count())
    }

    const B: usize = 20;

    /// The tiers are whole numbers every machine computes alike.
    #[test]
    fn tiers() {
        assert_eq!(tier(0), 64 << 10);
        assert_eq!(tier(1), 65_536 * 11_892 / 10_000);
        assert_eq!(tier(4), 128 << 10);
        assert_eq!(tier(32), 16 << 20);
        assert!((0..200).all(|k| tier(k) < tier(k + 1)));
    }

    #[test]
    fn stable_shape() {
        let g = graph(&stable_fixture());
        let p = plan(&g, Strategy::Stable, B, &none()).unwrap();
        // K = 5 buckets, 15 slots: the 6 big paths at the lowest tier,
        // 64 KiB.
        assert_eq!(p.layers.len(), 6 + 5);
        assert_eq!(p.layers[0].paths, ["/nix/store/0005b-big5-1.0"]);
        assert_eq!(
            p.layers[0].why,
            "own layer: 38.0 MiB, at or over the 64.0 KiB tier"
        );
        assert!(
            p.layers[6].why.starts_with("bucket "),
            "{}",
            p.layers[6].why
        );
        assert!(p.layers[6]
            .why
            .ends_with(" of 5 for paths under the 64.0 KiB tier (by name)"));
        // A budget of 8: K = 2, 6 slots; still the lowest tier.
        let p = plan(&g, Strategy::Stable, 8, &none()).unwrap();
        assert_eq!(p.layers.len(), 8);
        // A budget of 5: K = 1, 4 slots: the tier rises until at most 4
        // paths reach it: 16 MiB, 64 KiB · 2^(32/4) (20, 26, 32 and 38
        // MiB); the tier below, 13.5 MiB, holds 14 MiB too.
        let p = plan(&g, Strategy::Stable, 5, &none()).unwrap();
        assert_eq!(p.layers.len(), 5);
        assert!(
            p.layers[4].why.contains("under the 16.0 MiB tier"),
            "{:?}",
            p.layers[4]
        );
        // A budget of 1: one layer; enough for all: one each.
        let p = plan(&g, Strategy::Stable, 1, &none()).unwrap();
        assert_eq!(p.layers.len(), 1);
        assert_eq!(p.layers[0].paths.len(), 66);
        let mut ten = stable_fixture()[..10].to_vec();
        ten[9].references.clear();
        let small = graph(&ten);
        let p = plan(&small, Strategy::Stable, 10, &none()).unwrap();
        assert!(p.layers.iter().all(|l| l.paths.len() == 1));
    }

    /// (1) A path's new hash (same name, a new version, a new size within
    /// its tier) changes exactly one layer, big or small.
    #[test]
    fn stable_new_hash_changes_one_layer() {
        let base = stable_fixture();
        let before = plan(&graph(&base), Strategy::Stable, B, &none()).unwrap();
        for (old, new, size) in [
            (
                "/nix/store/0059s-small59-2.59",
                "/nix/store/9999s-small59-2.60",
                7000,
            ),
            (
                "/nix/store/0000b-big0-1.0",
                "/nix/store/9999b-big0-1.1",
                9 << 20,
            ),
        ] {
            let mut e = base.clone();
            for x in &mut e {
                if x.path == old {
                    x.path = new.into();
                    x.nar_size = size;
                }
                for r in &mut x.references {
                    if r == old {
                        *r = new.into();
                    }
                }
            }
            // In Nix its referrers would change too; here only the path, to
            // see that nothing else moves.
            let after = plan(&graph(&e), Strategy::Stable, B, &none()).unwrap();
            assert_eq!(changed(&before, &after), (1, 1), "{old}");
            assert_eq!(before.layers.len(), after.layers.len());
        }
    }

    /// (2) An unrelated small path added changes at most one layer.
    #[test]
    fn stable_added_path_changes_at_most_one_layer() {
        let base = stable_fixture();
        let before = plan(&graph(&base), Strategy::Stable, B, &none()).unwrap();
        for name in ["libnew-0.1", "zstd-1.5.5", "a", "tzdata-2024a"] {
            let mut e = base.clone();
            e.push(entry(&format!("/nix/store/7777-{name}"), 5000, &[]));
            let after = plan(&graph(&e), Strategy::Stable, B, &none()).unwrap();
            let (gone, new) = changed(&before, &after);
            assert!(gone <= 1 && new == 1, "{name}: {gone} {new}");
        }
    }

    /// (3) A big path removed changes only its layer.
    #[test]
    fn stable_removed_big_path_changes_only_its_layer() {
        let base = stable_fixture();
        let before = plan(&graph(&base), Strategy::Stable, B, &none()).unwrap();
        let gone = "/nix/store/0003b-big3-1.0";
        let e: Vec<GraphEntry> = base
            .iter()
            .filter(|x| x.path != gone)
            .map(|x| GraphEntry {
                references: x
                    .references
                    .iter()
                    .filter(|r| *r != gone)
                    .cloned()
                    .collect(),
                ..x.clone()
            })
            .collect();
        let after = plan(&graph(&e), Strategy::Stable, B, &none()).unwrap();
        assert_eq!(changed(&before, &after), (1, 0));
        assert!(before.layers.iter().any(|l| l.paths == [gone]));
    }

    /// (4) The order of entries and references changes no byte, for either
    /// strategy.
    #[test]
    fn shuffled_graph_same_bytes() {
        let mut rng = Rng(42);
        for n in [0, 3, 30, 120] {
            let base = random_entries(&mut rng, n);
            for strategy in [Strategy::Stable, Strategy::Popularity] {
                for budget in [1, 2, 7, 20, 100] {
                    let want = plan(&graph(&base), strategy, budget, &none())
                        .unwrap()
                        .to_bytes();
                    for _ in 0..3 {
                        let mut e = base.clone();
                        rng.shuffle(&mut e);
                        for x in &mut e {
                            rng.shuffle(&mut x.references);
                        }
                        let got = plan(&graph(&e), strategy, budget, &none()).unwrap();
                        assert_eq!(got.to_bytes(), want);
                    }
                }
            }
        }
    }

    /// (5) Every path in exactly one layer, within the budget, for many
    /// graphs and budgets, with and without exclusions.
    #[test]
    fn every_path_once_within_budget() {
        let mut rng = Rng(1);
        for round in 0..60 {
            let n = rng.below(201) as usize;
            let e = random_entries(&mut rng, n);
            let g = graph(&e);
            let exclude: BTreeSet<String> = if round % 3 == 0 {
                e.iter()
                    .filter(|_| rng.below(4) == 0)
                    .map(|x| x.path.clone())
                    .chain(["/nix/store/not-in-the-graph".to_owned()])
                    .collect()
            } else {
                BTreeSet::new()
            };
            for budget in 1..=20 {
                for strategy in [Strategy::Stable, Strategy::Popularity] {
                    let p = plan(&g, strategy, budget, &exclude).unwrap();
                    assert!(p.layers.len() <= budget);
                    let mut seen = BTreeSet::new();
                    for l in &p.layers {
                        assert!(!l.paths.is_empty());
                        for path in &l.paths {
                            assert!(seen.insert(path.clone()), "{path} twice");
                        }
                        let size: u64 = l
                            .paths
                            .iter()
                            .map(|q| e.iter().find(|x| &x.path == q).unwrap().nar_size)
                            .sum();
                        assert_eq!(l.nar_size, size);
                    }
                    let want: BTreeSet<String> = e
                        .iter()
                        .map(|x| x.path.clone())
                        .filter(|q| !exclude.contains(q))
                        .collect();
                    assert_eq!(seen, want);
                }
            }
        }
    }

    /// A closure of 5000 paths plans in well under a second (checked by the
    /// time the test suite takes); the result is complete.
    #[test]
    fn large_graph() {
        let mut rng = Rng(3);
        let g = graph(&random_entries(&mut rng, 5000));
        for strategy in [Strategy::Stable, Strategy::Popularity] {
            let p = plan(&g, strategy, 100, &none()).unwrap();
            assert_eq!(p.layers.iter().map(|l| l.paths.len()).sum::<usize>(), 5000);
        }
    }

    #[test]
    fn plan_json_form() {
        let g = graph(&[entry("/nix/store/a-x", 3, &[])]);
        let p = plan(&g, Strategy::Stable, 100, &none()).unwrap();
        assert_eq!(
            String::from_utf8(p.to_bytes()).unwrap(),
            "{\"layers\":[{\"narSize\":3,\"paths\":[\"/nix/store/a-x\"],\"why\":\"own layer: \
             3 B; the budget of 100 holds every path\"}],\"maxLayers\":100,\"strategy\":\
             \"stable\"}\n"
        );
    }
}
