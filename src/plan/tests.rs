//! Unit tests of the layering plan: the helpers and random graphs every
//! test uses, the popularity strategy on hand-computed graphs, the checks
//! of a graph and of a budget; the stable strategy and the properties of
//! every plan are in `tests/stable.rs`.

use std::collections::BTreeMap;

use super::popularity::{package_name, popularity_scores};
use super::stable::tier;
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
    let e = Graph::from_entries(vec![entry("/nix/store/a-x", 1, &["/nix/store/b-y"])]).unwrap_err();
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
    assert_eq!((check_budget(1), check_budget(127)), (Ok(()), Ok(())));
    let g = graph(&[entry("/nix/store/a-x", 1, &[])]);
    let e = plan(&g, Strategy::Stable, 0, &none())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a budget of 0 layers holds no store path"),
        "{e}"
    );
}

mod stable;
