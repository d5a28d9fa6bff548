//! [`Strategy::Stable`](super::Strategy::Stable): big paths in layers of
//! their own, the rest in buckets by package name.

use super::graph::Graph;
use super::group::{layer, size_text, PlanLayer};

/// The smallest tier for a path of its own under [`Strategy::Stable`](super::Strategy::Stable):
/// below it, a layer of its own saves too little on a re-push to be worth
/// a slot of the budget.
pub const MIN_TIER: u64 = 64 << 10;

/// The tiers are [`MIN_TIER`] times a power of the fourth root of two:
/// these are the fourth root's first four powers, in ten-thousandths, so
/// that every machine computes the same tiers (no floating point).
const TIER_STEPS: [u128; 4] = [10_000, 11_892, 14_142, 16_818];

/// The `k`-th tier: [`MIN_TIER`] · 2^(k/4), rounded down.
pub(super) fn tier(k: u32) -> u128 {
    ((MIN_TIER as u128) << (k / 4)) * TIER_STEPS[(k % 4) as usize] / 10_000
}

/// The most buckets of small paths under [`Strategy::Stable`](super::Strategy::Stable).
pub const MAX_BUCKETS: usize = 16;

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

/// A tier as people read it: `1.0 MiB`, `76.1 KiB`.
pub(super) fn tier_text(tier: u128) -> String {
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
pub(super) fn group_stable(graph: &Graph, paths: &[usize], budget: usize) -> Vec<PlanLayer> {
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
