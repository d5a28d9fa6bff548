//! The closure graph a plan is made from, read and checked.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::nix::check_store_path;
use crate::oci::json::{check_duplicate_keys, read_limited, MAX_JSON};

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
    pub(super) paths: Vec<String>,
    pub(super) sizes: Vec<u64>,
    /// The references of each path, sorted, without duplicates or itself.
    pub(super) children: Vec<Vec<usize>>,
    /// The paths that refer to each path, sorted.
    pub(super) parents: Vec<Vec<usize>>,
    /// Every path, each after all the paths that refer to it.
    pub(super) topo: Vec<usize>,
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
        // References must be listed paths (from_entries), so checking the
        // listed paths checks them all.
        let store = crate::nix::store_dir();
        for (i, e) in entries.iter().enumerate() {
            check_store_path(&e.path, &store)
                .map_err(|m| Error::spec(file, format!("entry {i}: {m}")))?;
        }
        Graph::from_entries(entries).map_err(|m| Error::spec(file, m))
    }

    /// The number of store paths.
    pub fn len(&self) -> usize {
        self.paths.len()
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
/// path per line (blank lines ignored); each must be a store path of the
/// store in use ([`crate::nix::store_dir`]).
pub fn read_exclude(file: &Path) -> Result<BTreeSet<String>> {
    const SHAPE: &str = "expected a JSON list of store paths, or one store path per line";
    let bytes = read_limited(file, MAX_JSON)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::spec(file, format!("not UTF-8 text: {SHAPE}")))?;
    let store = crate::nix::store_dir();
    let first = text.trim_start().chars().next();
    if first == Some('[') {
        let paths: Vec<String> =
            serde_json::from_str(&text).map_err(|e| Error::spec(file, format!("{SHAPE}: {e}")))?;
        for (i, p) in paths.iter().enumerate() {
            check_store_path(p, &store).map_err(|m| Error::spec(file, format!("[{i}]: {m}")))?;
        }
        return Ok(paths.into_iter().collect());
    }
    // Other JSON is not a list of lines either: say so, not which line.
    if let Some(kind) = match first {
        Some('{') => Some("a JSON object"),
        Some('"') => Some("a JSON string"),
        _ => None,
    } {
        return Err(Error::spec(file, format!("{SHAPE}, not {kind}")));
    }
    let mut paths = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        check_store_path(line, &store)
            .map_err(|m| Error::spec(file, format!("line {}: {m} ({SHAPE})", n + 1)))?;
        paths.insert(line.to_owned());
    }
    Ok(paths)
}
