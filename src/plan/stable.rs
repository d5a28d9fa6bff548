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

/// The most buckets reserved for small paths under
/// [`Strategy::Stable`](super::Strategy::Stable).
pub const MAX_BUCKETS: usize = 16;

/// The buckets reserved for small paths for a budget of `budget` layers
/// (at least 2): a quarter of the budget, 1 to [`MAX_BUCKETS`]. It sets
/// the slots big paths may take (`budget` minus it), so it depends on the
/// budget alone. The slots big paths leave free become buckets too (see
/// `group_stable`).
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

/// The bucket (0-based) of a path among `buckets`, by rendezvous hashing
/// of its [`stable_name`]: each bucket `j` scores the name (the first 8
/// bytes of its sha256, mixed with `j` by the SplitMix64 finalizer) and
/// the highest score wins (the lowest `j` on a tie). With one bucket more,
/// a path either stays where it was or moves to the new bucket (about one
/// path in `buckets + 1` does), never from one old bucket to another; with
/// one fewer, only the paths of the bucket that goes move.
pub fn bucket_of(path: &str, buckets: usize) -> usize {
    use sha2::{Digest as _, Sha256};
    let d = Sha256::digest(stable_name(path).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    let seed = u64::from_be_bytes(first);
    let score = |j: usize| {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(j as u64 + 1));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..buckets.max(1))
        .map(|j| (score(j), std::cmp::Reverse(j)))
        .max()
        .map_or(0, |(_, std::cmp::Reverse(j))| j)
}

/// A tier as people read it: `1.0 MiB`, `76.1 KiB`.
pub(super) fn tier_text(tier: u128) -> String {
    size_text(u64::try_from(tier).unwrap_or(u64::MAX))
}

/// The stable grouping of `paths` (see the README):
///
/// - all of them fit: a layer each;
/// - a budget of 1: one layer;
/// - else `R` = [`bucket_count`] buckets reserved and `B − R` slots for
///   big paths: the tier `T` is the smallest of the tiers [`MIN_TIER`] ·
///   2^(k/4) such that at most `B − R` paths are of `T` bytes or more;
///   those `H` paths get a layer each, and the others go to one of `B − H`
///   buckets (the reserved ones and the slots big paths left free), the
///   one [`bucket_of`] their name; empty buckets are dropped.
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
    let slots = budget - bucket_count(budget);
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
    // Every slot is used: what big paths leave is buckets, so buckets are
    // smaller; `bucket_of` keeps a change of their count from moving paths
    // between the others.
    let buckets = budget - big.len();
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
