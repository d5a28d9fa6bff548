use super::*;

/// Apply `entries` as layer `index`, each given by the node it makes.
fn apply(t: &mut BaseTree, entries: Vec<(Vec<u8>, Node, Meta)>, index: usize) {
    let entries = entries
        .into_iter()
        .map(|(path, node, meta)| {
            let (kind, link) = match node {
                Node::Dir => (tar::EntryType::Directory, None),
                Node::File => (tar::EntryType::Regular, None),
                Node::Symlink(to) => (tar::EntryType::Symlink, Some(to)),
                Node::Other => (tar::EntryType::Fifo, None),
            };
            LayerEntry {
                path,
                kind,
                link,
                meta,
            }
        })
        .collect();
    t.apply(entries, index, "test layer").unwrap();
}

fn tree(entries: &[(&str, Node)]) -> BaseTree {
    let mut t = BaseTree {
        source: "base image test".into(),
        layers: vec![
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .parse()
                .unwrap(),
        ],
        ..Default::default()
    };
    apply(
        &mut t,
        entries
            .iter()
            .map(|(p, n)| (p.as_bytes().to_vec(), n.clone(), (0o755, 0, 0)))
            .collect(),
        0,
    );
    t
}

fn usr_merged() -> BaseTree {
    tree(&[
        ("usr", Node::Dir),
        ("usr/bin", Node::Dir),
        ("usr/bin/sh", Node::File),
        ("bin", Node::Symlink(b"usr/bin".to_vec())),
        ("lib", Node::Symlink(b"/usr/lib".to_vec())),
        ("etc", Node::Dir),
        ("etc/os-release", Node::File),
        ("loop", Node::Symlink(b"loop".to_vec())),
    ])
}

/// A layer over the total-size limit is refused naming the limit, not
/// as a tar stream that ends early (it was cut at the limit before);
/// one of exactly the limit is read.
#[test]
fn a_layer_over_the_size_limit_names_the_limit() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(10_000);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, "f", &[7u8; 10_000][..])
        .unwrap();
    let layer = builder.into_inner().unwrap();
    let desc = Descriptor {
        media_type: crate::oci::MediaType::LAYER,
        digest: crate::oci::digest::digest_reader(&layer[..]).unwrap().0,
        size: layer.len() as u64,
        platform: None,
        annotations: Default::default(),
        artifact_type: None,
    };
    let read = |max: u64| {
        let limits = Limits {
            max_total_size: max,
            ..Default::default()
        };
        layer_entries(&layer[..], &desc, None, &limits, "layer 1")
    };
    let err = read(layer.len() as u64 - 1).unwrap_err().to_string();
    assert!(
        err.contains(&format!("more than {} bytes uncompressed", layer.len() - 1)),
        "{err}"
    );
    let entries = read(layer.len() as u64).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path, b"f");
}

#[test]
fn follows_links_in_the_path() {
    let t = usr_merged();
    assert_eq!(t.follow(b"bin/x", false).unwrap(), b"usr/bin/x");
    assert_eq!(t.follow(b"bin", true).unwrap(), b"usr/bin");
    assert_eq!(t.follow(b"bin", false).unwrap(), b"bin");
    assert_eq!(t.follow(b"lib/libc.so", false).unwrap(), b"usr/lib/libc.so");
    assert_eq!(t.follow(b"etc/x", false).unwrap(), b"etc/x");
    assert_eq!(t.follow(b"loop/x", false), None);
}

#[test]
fn the_merge_rules() {
    let t = usr_merged();
    let check = |p: &str, n: Node| t.check([(p.as_bytes(), &n)], "layer 2");
    // A directory over the /bin link, a file through it, a file over a
    // directory, a directory over a file: refused, naming the layer.
    let e = check("bin", Node::Dir).unwrap_err().to_string();
    assert!(e.contains("/bin: a directory, where its layer 1 (sha256:000000000000) has a symbolic link to usr/bin"), "{e}");
    assert!(
        e.starts_with("layer 2 does not merge safely onto the base image test:"),
        "{e}"
    );
    let e = check("bin/hello", Node::File).unwrap_err().to_string();
    assert!(
        e.contains("/bin/hello: under /bin, which is a symbolic link to usr/bin in its layer 1"),
        "{e}"
    );
    // A file, a special file or another link over the link to a
    // directory: refused; a link to the same directory passes.
    // A link to itself, however spelt, resolves through the old link
    // in the base, but is a loop in the image: refused too.
    for n in [
        Node::File,
        Node::Other,
        Node::Symlink(b"/opt".to_vec()),
        Node::Symlink(b"/bin".to_vec()),
        Node::Symlink(b"./bin".to_vec()),
        Node::Symlink(b"../bin".to_vec()),
        Node::Symlink(b"bin/.".to_vec()),
    ] {
        let e = check("bin", n.clone()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("/bin: {}, where its layer 1 (sha256:000000000000) has a symbolic link to usr/bin, a directory: it would replace the link, and what the link leads to would be gone from /bin", n.noun())),
            "{e}"
        );
    }
    for same in [&b"/usr/bin"[..], b"usr/bin/", b"./usr/bin"] {
        check("bin", Node::Symlink(same.to_vec())).unwrap();
    }
    // lib -> /usr/lib leads nowhere in this base: nothing is hidden.
    check("lib", Node::File).unwrap();
    for (path, node, why) in [
        ("etc", Node::File, "/etc: a file, where"),
        (
            "etc/os-release",
            Node::Dir,
            "/etc/os-release: a directory, where",
        ),
        (
            "etc/os-release/x",
            Node::File,
            "/etc/os-release/x: under /etc/os-release",
        ),
    ] {
        let e = check(path, node).unwrap_err().to_string();
        assert!(e.contains(why), "{path}: {e}");
    }
    // Allowed: new paths, a file over a file, a directory over a
    // directory, a link over a link, a file over a link.
    for (p, n) in [
        ("usr/bin/hello", Node::File),
        ("usr/bin/sh", Node::File),
        ("usr", Node::Dir),
        ("bin", Node::Symlink(b"usr/bin".to_vec())),
        ("etc/os-release", Node::Symlink(b"x".to_vec())),
        ("opt/app", Node::File),
    ] {
        check(p, n.clone()).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

#[test]
fn whiteouts() {
    let mut t = usr_merged();
    apply(
        &mut t,
        vec![
            (b"etc/.wh.os-release".to_vec(), Node::File, (0, 0, 0)),
            (b"usr/bin/.wh..wh..opq".to_vec(), Node::File, (0, 0, 0)),
            (b".wh.bin".to_vec(), Node::File, (0, 0, 0)),
        ],
        1,
    );
    assert_eq!(t.get(b"etc/os-release"), None);
    assert_eq!(t.get(b"usr/bin/sh"), None);
    assert_eq!(t.get(b"usr/bin"), Some(&Node::Dir));
    assert_eq!(t.get(b"bin"), None);
    // A file over a directory removes what was under it.
    apply(&mut t, vec![(b"usr".to_vec(), Node::File, (0, 0, 0))], 2);
    assert_eq!(t.get(b"usr/bin"), None);
    // Whiteouts hide the layers below, never their own layer's
    // entries, before or after them; parents nobody named are
    // directories of the layer that needed them.
    let mut t = usr_merged();
    let entry = |p: &str, n: Node| (p.as_bytes().to_vec(), n, (0o644, 0, 0));
    apply(
        &mut t,
        vec![
            entry("usr/bin/own", Node::File),
            entry("usr/lib/x/y", Node::File),
            entry("usr/.wh..wh..opq", Node::File),
            entry(".wh.etc", Node::File),
            entry("etc/new", Node::File),
        ],
        1,
    );
    assert_eq!(t.get(b"usr/bin/own"), Some(&Node::File));
    assert_eq!(t.get(b"usr/bin/sh"), None);
    assert_eq!(t.get(b"usr/bin"), Some(&Node::Dir));
    assert_eq!(t.get(b"usr/lib/x"), Some(&Node::Dir));
    assert_eq!(t.layer_of(b"usr/lib/x"), Some(1));
    assert_eq!(t.get(b"etc/os-release"), None);
    assert_eq!(t.get(b"etc/new"), Some(&Node::File));
    let s = tree(&[
        ("nix/store/abc-x", Node::Dir),
        ("nix/store/abc-x/bin", Node::Dir),
        ("nix/store/def-y", Node::File),
    ]);
    let paths: Vec<PathBuf> = s.store_paths(b"nix/store").into_iter().collect();
    assert_eq!(
        paths,
        [
            PathBuf::from("/nix/store/abc-x"),
            PathBuf::from("/nix/store/def-y")
        ]
    );
}
