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
    let seed = name_seed(stable_name(path));
    (0..buckets.max(1))
        .map(|j| (mix(seed, j), std::cmp::Reverse(j)))
        .max()
        .map_or(0, |(_, std::cmp::Reverse(j))| j)
}

/// A name's seed for [`mix`]: the first 8 bytes of its sha256.
fn name_seed(name: &str) -> u64 {
    use sha2::{Digest as _, Sha256};
    let d = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// The score bucket `j` gives a name of seed `seed` in [`bucket_of`]: the
/// seed mixed with `j` by the SplitMix64 finalizer.
fn mix(seed: u64, j: usize) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(j as u64 + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A tier as people read it: `1.0 MiB`, `76.1 KiB`.
pub(super) fn tier_text(tier: u128) -> String {
    size_text(u64::try_from(tier).unwrap_or(u64::MAX))
}

/// The stable grouping of `paths` (see docs/layering.md):
///
/// - all of them fit: a layer each;
/// - a budget of 1: one layer;
/// - else `R` = [`bucket_count`] buckets reserved and `B − R` slots for
///   roots and big paths:
///   - the roots (paths nothing in the graph refers to: what an image
///     names, which changes with every release) get a layer each when
///     they are at most `B − R`, leaving `S` slots; else they are planned
///     as the other paths, and `S = B − R`;
///   - the tier `T` is the smallest of the tiers [`MIN_TIER`] · 2^(k/4)
///     such that at most `S` of the other paths are of `T` bytes or more;
///     those `H` paths get a layer each;
///   - the others go to one of `K` buckets (the reserved ones and the
///     slots roots and big paths left free), the one [`bucket_of`] their
///     name; when buckets are left empty while others hold several paths,
///     each empty bucket in turn takes the path it scores highest by its
///     full name (see [`fill_empty`]), so that every slot is used.
///
/// Big layers come first, largest first (ties by path), then the buckets
/// in order, then the roots' layers, largest first: what changes most is
/// on top, so that a runtime, whose layers are named by the layers below
/// them, unpacks again only the layers above a change.
pub(super) fn group_stable(graph: &Graph, paths: &[usize], budget: usize) -> Vec<PlanLayer> {
    let by_size = |v: &mut Vec<usize>| {
        v.sort_by(|&a, &b| {
            graph.sizes[b]
                .cmp(&graph.sizes[a])
                .then_with(|| graph.paths[a].cmp(&graph.paths[b]))
        })
    };
    let is_root = |i: usize| graph.parents[i].is_empty();
    let root_layer = |i: usize, extra: &str| {
        layer(
            graph,
            &[i],
            format!(
                "own layer: a root of the closure (nothing refers to it), {}{extra}",
                size_text(graph.sizes[i])
            ),
        )
    };
    if paths.len() <= budget {
        let (mut roots, mut all): (Vec<usize>, Vec<usize>) =
            paths.iter().partition(|&&i| is_root(i));
        by_size(&mut all);
        by_size(&mut roots);
        let every = format!("; the budget of {budget} holds every path");
        return all
            .iter()
            .map(|&i| {
                layer(
                    graph,
                    &[i],
                    format!("own layer: {}{every}", size_text(graph.sizes[i])),
                )
            })
            .chain(roots.iter().map(|&i| root_layer(i, &every)))
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
    let (mut roots, rest): (Vec<usize>, Vec<usize>) = paths.iter().partition(|&&i| is_root(i));
    let rest = if roots.len() > slots {
        // The budget does not allow: the roots are planned as the others.
        roots.clear();
        paths.to_vec()
    } else {
        rest
    };
    let slots = slots - roots.len();
    let mut k = 0;
    // Ends: past the largest size no path is that big.
    while rest
        .iter()
        .filter(|&&i| graph.sizes[i] as u128 >= tier(k))
        .count()
        > slots
    {
        k += 1;
    }
    let tier = tier(k);
    let (mut big, small): (Vec<usize>, Vec<usize>) =
        rest.iter().partition(|&&i| graph.sizes[i] as u128 >= tier);
    by_size(&mut big);
    by_size(&mut roots);
    // Every slot is used: what roots and big paths leave is buckets, so
    // buckets are smaller; `bucket_of` keeps a change of their count from
    // moving paths between the others.
    let buckets = budget - roots.len() - big.len();
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
    let taken = fill_empty(graph, &mut filled);
    for (b, members) in filled.iter().enumerate() {
        if !members.is_empty() {
            let from = match taken.get(&b) {
                Some(from) => format!(
                    "; it was empty, so it took this path from bucket {}",
                    from + 1
                ),
                None => String::new(),
            };
            layers.push(layer(
                graph,
                members,
                format!(
                    "bucket {} of {buckets} for paths under the {} tier (by name{from})",
                    b + 1,
                    tier_text(tier)
                ),
            ));
        }
    }
    layers.extend(roots.iter().map(|&i| root_layer(i, "")));
    layers
}

/// The name a path is told apart by from others of its [`stable_name`]:
/// its name without the store hash (version and output suffix kept).
fn full_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.split_once('-').map_or(base, |(_, n)| n)
}

/// Fill the empty buckets of `filled` (paths by bucket) from the buckets
/// holding more than one path: each empty bucket, in order, takes the
/// path of those buckets that it scores highest by [`full_name`] (as
/// [`bucket_of`] scores a name; ties by path), until no bucket is empty or
/// none holds more than one. Returns, for each bucket that took a path,
/// the bucket it came from.
///
/// The choice depends on names and versions, never on sizes, and on
/// hashes only to break a tie between two paths of one name and version:
/// so a new build of a package (a new hash, the same name and version)
/// moves nothing. A new version is a new name here, and may move the one
/// path it scores for, as a path added or removed may.
fn fill_empty(
    graph: &Graph,
    filled: &mut [Vec<usize>],
) -> std::collections::BTreeMap<usize, usize> {
    let mut taken = std::collections::BTreeMap::new();
    let mut seeds = std::collections::BTreeMap::new();
    let mut seed = |i: usize| {
        *seeds
            .entry(i)
            .or_insert_with(|| name_seed(full_name(&graph.paths[i])))
    };
    for j in 0..filled.len() {
        if !filled[j].is_empty() {
            continue;
        }
        let best = filled
            .iter()
            .enumerate()
            .filter(|(_, m)| m.len() > 1)
            .flat_map(|(b, m)| m.iter().map(move |&i| (b, i)))
            .max_by(|&(_, a), &(_, b)| {
                mix(seed(a), j)
                    .cmp(&mix(seed(b), j))
                    .then_with(|| graph.paths[b].cmp(&graph.paths[a]))
            });
        let Some((b, i)) = best else { break };
        filled[b].retain(|&x| x != i);
        filled[j].push(i);
        taken.insert(j, b);
    }
    taken
}
