//! Unit tests of the stable strategy (names, tiers, buckets, how a plan
//! moves when the closure changes) and of every plan's properties (order
//! changes no byte, every path once within the budget, the JSON form).

use super::*;

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
    // 5 buckets reserved, 15 slots: the 6 big paths at the lowest tier,
    // 64 KiB; the 9 slots they leave are buckets too: 14 buckets.
    assert_eq!(p.layers.len(), 6 + 14);
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
        .ends_with(" of 14 for paths under the 64.0 KiB tier (by name)"));
    // A budget of 8: K = 2, 6 slots; still the lowest tier.
    let p = plan(&g, Strategy::Stable, 8, &none()).unwrap();
    assert_eq!(p.layers.len(), 8);
    // A budget of 5: K = 1, 4 slots, one for the root (big0, 8 MiB): the
    // tier rises until at most 3 other paths reach it: 22.6 MiB, 64 KiB ·
    // 2^(34/4) (26, 32 and 38 MiB); the tier below, 19.0 MiB, holds 20
    // MiB too. Then the bucket, then the root on top.
    let p = plan(&g, Strategy::Stable, 5, &none()).unwrap();
    assert_eq!(p.layers.len(), 5);
    assert!(
        p.layers[3].why.contains("under the 22.6 MiB tier"),
        "{:?}",
        p.layers[3]
    );
    assert_eq!(p.layers[4].paths, ["/nix/store/0000b-big0-1.0"]);
    assert_eq!(
        p.layers[4].why,
        "own layer: a root of the closure (nothing refers to it), 8.0 MiB"
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

/// (2) An unrelated small path added changes at most one layer. It is a
/// new dependency of a path (here the root, whose own change is left out
/// to see that nothing else moves): alone, nothing referring to it, it
/// would be a root and get a layer of its own.
#[test]
fn stable_added_path_changes_at_most_one_layer() {
    let base = stable_fixture();
    let before = plan(&graph(&base), Strategy::Stable, B, &none()).unwrap();
    for name in ["libnew-0.1", "zstd-1.5.5", "a", "tzdata-2024a"] {
        let mut e = base.clone();
        let new = format!("/nix/store/7777-{name}");
        e[0].references.push(new.clone());
        e.push(entry(&new, 5000, &[]));
        let after = plan(&graph(&e), Strategy::Stable, B, &none()).unwrap();
        let (gone, new) = changed(&before, &after);
        assert!(gone <= 1 && new == 1, "{name}: {gone} {new}");
    }
}

/// (3) A big path removed frees a slot, which becomes a bucket: the
/// paths that move all go to that new bucket, none from one old bucket to
/// another, and no big layer changes but the removed one.
#[test]
fn stable_removed_big_path_only_feeds_a_new_bucket() {
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
    assert!(before.layers.iter().any(|l| l.paths == [gone]));
    let buckets_of = |p: &Plan| -> Vec<BTreeSet<String>> {
        p.layers
            .iter()
            .filter(|l| l.why.starts_with("bucket "))
            .map(|l| l.paths.iter().cloned().collect())
            .collect()
    };
    let (old, new) = (buckets_of(&before), buckets_of(&after));
    assert_eq!(before.layers.len() - old.len(), 6);
    assert_eq!(after.layers.len() - new.len(), 5);
    // 14 buckets before, 15 after; what is not in bucket 15 stayed in its
    // bucket, and bucket 15 holds only paths moved out of old ones.
    let last = after
        .layers
        .iter()
        .find(|l| l.why.starts_with("bucket 15 of 15 "))
        .expect("a 15th bucket");
    assert!(before.layers.iter().any(|l| l.why.contains(" of 14 ")));
    let moved: BTreeSet<String> = last.paths.iter().cloned().collect();
    for o in &old {
        let kept: BTreeSet<String> = o.difference(&moved).cloned().collect();
        assert!(
            kept.is_empty() || new.contains(&kept),
            "{o:?} split other than into the new bucket"
        );
    }
    // The big layers left are byte for byte the same.
    let (gone_layers, new_layers) = changed(&before, &after);
    assert!(gone_layers >= 2 && new_layers >= 1);
    assert!(after
        .layers
        .iter()
        .filter(|l| l.why.starts_with("own layer"))
        .all(|l| before.layers.iter().any(|b| b.paths == l.paths)));
}

/// Rendezvous buckets: one bucket more moves a path only into the new
/// bucket, about one path in `K + 1`.
#[test]
fn bucket_of_moves_only_into_a_new_bucket() {
    let names: Vec<String> = (0..2000)
        .map(|i| format!("/nix/store/{i:04}-lib{i}-1.0"))
        .collect();
    let (mut moved_all, mut expected_all) = (0, 0);
    for k in 1..=126 {
        let moved = names
            .iter()
            .filter(|n| {
                let (a, b) = (bucket_of(n, k), bucket_of(n, k + 1));
                assert!(
                    a < k && (b == a || b == k),
                    "{n}: {a} of {k}, {b} of {}",
                    k + 1
                );
                b != a
            })
            .count();
        moved_all += moved;
        expected_all += 2000 / (k + 1);
    }
    // 1/2 + 1/3 + … + 1/127 of the paths, within 10%.
    assert!(
        moved_all * 10 >= expected_all * 9 && moved_all * 10 <= expected_all * 11,
        "{moved_all} moved, about {expected_all} expected"
    );
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
/// graphs and budgets, with and without exclusions; the stable plan uses
/// every slot of the budget.
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
                let kept = e.iter().filter(|x| !exclude.contains(&x.path)).count();
                if strategy == Strategy::Stable {
                    // Every slot used: a layer each, or the whole budget.
                    assert_eq!(p.layers.len(), kept.min(budget), "{round} {budget}");
                }
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
         a root of the closure (nothing refers to it), 3 B; the budget of 100 holds every \
         path\"}],\"maxLayers\":100,\"strategy\":\
         \"stable\"}\n"
    );
}
