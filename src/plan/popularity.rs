//! [`Strategy::Popularity`](super::Strategy::Popularity): dockerTools'
//! popularity contest and its grouping.

use super::graph::Graph;
use super::group::{layer, PlanLayer};

/// dockerTools' sort key for ties: the path with its first `-`-separated
/// part (`/nix/store/HASH`) moved to the end, `NAME-/nix/store/HASH`.
pub(super) fn package_name(path: &str) -> String {
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
pub(super) fn popularity_scores(graph: &Graph, max_words: usize) -> Vec<u128> {
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
pub(super) fn group_by_popularity(
    graph: &Graph,
    order: &[(usize, u128)],
    budget: usize,
) -> Vec<PlanLayer> {
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
