//! Unit tests of the layer tree.

use super::perms::{PermRule, Perms};
use super::*;
use std::os::unix::fs::symlink;

fn tree() -> Tree {
    Tree::new(PathBuf::from("/nix/store"), BTreeSet::new())
}

fn dest(d: &str) -> Placement<'_> {
    Placement {
        destination: Some(d),
        ..Default::default()
    }
}

/// Issue 21: a whole store path put into a directory (`./motd` to
/// `/etc/`) goes in under its name without the hash part; a file
/// elsewhere, or inside a store path, keeps its name.
#[test]
fn store_path_into_a_directory_drops_its_hash_part() {
    let store = tempfile::tempdir().unwrap();
    let motd = store.path().join("0c2kvl9a1jfnv7krcvsj5gj3i95162zl-motd");
    fs::write(&motd, "hi\n").unwrap();
    let inner = store.path().join("1c2kvl9a1jfnv7krcvsj5gj3i95162zl-pkg");
    fs::create_dir(&inner).unwrap();
    fs::write(inner.join("2c2kvl9a1jfnv7krcvsj5gj3i95162zl-x"), "x").unwrap();
    let mut t = Tree::new(store.path().to_owned(), BTreeSet::new());
    t.add(&motd, &dest("/etc/"), Path::new("spec")).unwrap();
    t.add(
        &inner.join("2c2kvl9a1jfnv7krcvsj5gj3i95162zl-x"),
        &dest("/opt/"),
        Path::new("spec"),
    )
    .unwrap();
    assert!(t.entries.contains_key(b"etc/motd".as_slice()));
    assert!(t
        .entries
        .contains_key(b"opt/2c2kvl9a1jfnv7krcvsj5gj3i95162zl-x".as_slice()));
    assert_eq!(name_without_hash("0c2kvl9a1jfnv7krcvsj5gj3i95162zl-"), None);
    assert_eq!(name_without_hash("motd"), None);
    assert_eq!(
        name_without_hash("ec2kvl9a1jfnv7krcvsj5gj3i95162zl-x"),
        None
    );
}

#[test]
fn parents_are_created_and_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, "x").unwrap();
    let mut t = tree();
    t.add(&f, &dest("/a/b/c"), Path::new("spec")).unwrap();
    t.add(&f, &dest("/a-b"), Path::new("spec")).unwrap();
    let keys: Vec<_> = t
        .entries
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(keys, ["a", "a-b", "a/b", "a/b/c"]);
    assert_eq!(t.entries[&b"a"[..]].mode, 0o755);
    assert_eq!(t.entries[&b"a/b/c"[..]].mode, 0o444);
}

#[test]
fn file_into_directory_with_trailing_slash() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("conf.json");
    fs::write(&f, "{}").unwrap();
    let mut t = tree();
    t.add(&f, &dest("/etc/"), Path::new("spec")).unwrap();
    assert!(t.entries.contains_key(&b"etc/conf.json"[..]));
}

#[test]
fn identical_content_twice_is_fine_different_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    fs::write(&a, "same").unwrap();
    fs::write(&b, "same").unwrap();
    fs::write(&c, "diff").unwrap();
    let mut t = tree();
    t.add(&a, &dest("/x"), Path::new("spec")).unwrap();
    t.add(&b, &dest("/x"), Path::new("spec")).unwrap();
    let e = t
        .add(&c, &dest("/x"), Path::new("spec"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&a.display().to_string()) && e.contains(&c.display().to_string()),
        "{e}"
    );
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("l");
    symlink("usr/bin", &l).unwrap();
    let f = dir.path().join("f");
    fs::write(&f, "x").unwrap();
    let mut t = tree();
    t.add(&l, &dest("/bin"), Path::new("spec")).unwrap();
    let e = t
        .add(&f, &dest("/bin/sh"), Path::new("spec"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("which is a symlink"), "{e}");
}

#[test]
fn relative_source_without_destination_is_refused() {
    let mut t = tree();
    let e = t
        .add(Path::new("."), &Placement::default(), Path::new("spec"))
        .unwrap_err();
    assert!(e.to_string().contains("needs a destination"), "{e}");
}

#[test]
fn destinations() {
    assert_eq!(parse_destination("/").unwrap(), (String::new(), true));
    assert_eq!(parse_destination("/a/b").unwrap(), ("a/b".into(), false));
    assert_eq!(parse_destination("/a/b/").unwrap(), ("a/b".into(), true));
    let relative = "destinations must be absolute";
    let dots = "'..' is not allowed in a destination";
    for (bad, why) in [
        ("a/b", relative),
        ("", relative),
        ("/a//b", "it has an empty component (//)"),
        ("/a/../b", dots),
        ("/..", dots),
        ("/a/./b", "it has a '.' component"),
        ("/a\0b", "it contains a NUL byte"),
    ] {
        let e = parse_destination(bad).expect_err(bad).to_string();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

fn text_at(d: &str) -> Placement<'_> {
    dest(d)
}

/// Issue 24: an inline file is 0444 root unless told, needs a full
/// destination, and meets a file of the same bytes once, of other bytes
/// as a conflict naming both.
#[test]
fn inline_text_files() {
    let dir = tempfile::tempdir().unwrap();
    let same = dir.path().join("same");
    fs::write(&same, "a=1\n").unwrap();
    let mut t = tree();
    t.add_text("a=1\n", &text_at("/etc/app.conf"), "files[0]")
        .unwrap();
    let e = &t.entries[b"etc/app.conf".as_slice()];
    assert_eq!((e.mode, e.uid, e.gid), (0o444, 0, 0));
    assert_eq!(e.inline.as_deref(), Some(b"a=1\n".as_slice()));
    assert!(t.entries[b"etc".as_slice()].implicit);
    // The same bytes from a source and from another entry: once.
    t.add(&same, &dest("/etc/app.conf"), Path::new("spec"))
        .unwrap();
    t.add_text("a=1\n", &text_at("/etc/app.conf"), "files[2]")
        .unwrap();
    let e = t
        .add_text("a=2\n", &text_at("/etc/app.conf"), "files[3]")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("files[0] (inline text)") && e.contains("files[3] (inline text)"),
        "{e}"
    );
    assert!(e.contains("content"), "{e}");
    let owned = Placement {
        destination: Some("/etc/other"),
        mode: Some(0o600),
        uid: Some(1000),
        gid: Some(100),
        link: false,
    };
    t.add_text("", &owned, "files[4]").unwrap();
    let e = &t.entries[b"etc/other".as_slice()];
    assert_eq!((e.mode, e.uid, e.gid), (0o600, 1000, 100));
    for (bad, why) in [
        ("/etc/", "not ending in /"),
        ("/", "not ending in /"),
        ("etc/x", "must be absolute"),
        ("/etc/../x", "'..' is not allowed"),
    ] {
        let e = t
            .add_text("x", &text_at(bad), "files[9]")
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    let e = t
        .add_text("x", &Placement::default(), "files[9]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"text\" needs a \"destination\""), "{e}");
}

/// Issue 24: a declared directory keeps bits above 0777, wins over an
/// implicit parent and over a directory a source places (in either
/// order), and conflicts with another declared one that differs.
#[test]
fn declared_directories() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("tmp")).unwrap();
    fs::write(src.path().join("tmp/f"), "x").unwrap();
    let mut t = tree();
    t.add_text("x", &text_at("/var/lib/app/x"), "files[0]")
        .unwrap();
    t.add(src.path(), &dest("/"), Path::new("spec")).unwrap();
    assert_eq!(t.entries[b"tmp".as_slice()].mode, 0o555);
    t.add_directory("/tmp", Some(0o1777), None, None, "directories[0]")
        .unwrap();
    t.add_directory(
        "/var/lib/app",
        Some(0o750),
        Some(1000),
        Some(1000),
        "directories[1]",
    )
    .unwrap();
    t.add_directory("/srv", None, None, None, "directories[2]")
        .unwrap();
    // Placed by a source after the declaration: the declaration stays.
    t.add(src.path(), &dest("/"), Path::new("spec")).unwrap();
    let meta = |p: &[u8]| {
        let e = &t.entries[p];
        (e.kind.clone(), e.mode, e.uid, e.gid)
    };
    assert_eq!(meta(b"tmp"), (Kind::Dir, 0o1777, 0, 0));
    assert_eq!(meta(b"var/lib/app"), (Kind::Dir, 0o750, 1000, 1000));
    assert_eq!(meta(b"var/lib"), (Kind::Dir, 0o755, 0, 0));
    assert_eq!(meta(b"srv"), (Kind::Dir, 0o755, 0, 0));
    // The same declaration twice: fine; a different one: both named.
    t.add_directory("/tmp", Some(0o1777), None, None, "directories[3]")
        .unwrap();
    let e = t
        .add_directory("/tmp", Some(0o755), None, None, "directories[4]")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("directories[0]")
            && e.contains("directories[4]")
            && e.contains("modes or owners"),
        "{e}"
    );
    // A file where a directory is declared.
    let e = t
        .add_directory("/tmp/f", None, None, None, "directories[5]")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("directories[5]") && e.contains("kinds of file"),
        "{e}"
    );
    let e = t
        .add_directory("/", None, None, None, "directories[6]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not ending in /"), "{e}");
}

/// Issue 24: a declared symbolic link keeps its target byte for byte,
/// names the store path a store target points into, and conflicts, both
/// named, with another link or entry at its path.
#[test]
fn declared_symlinks() {
    let mut t = tree();
    let got = t
        .add_symlink(
            "/usr/bin/env",
            "/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162zl-coreutils/bin/env",
            "symlinks[0]",
        )
        .unwrap();
    assert_eq!(
        got,
        Some(PathBuf::from(
            "/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162zl-coreutils"
        ))
    );
    assert_eq!(
        t.add_symlink("/bin/sh", "../usr/bin/env", "symlinks[1]")
            .unwrap(),
        None
    );
    assert_eq!(
        t.add_symlink("/etc/x", "/etc/y", "symlinks[2]").unwrap(),
        None
    );
    assert_eq!(
        t.add_symlink("/etc/z", "/nix/store", "symlinks[3]")
            .unwrap(),
        None
    );
    let e = &t.entries[b"bin/sh".as_slice()];
    assert_eq!(
        (&e.kind, e.mode),
        (&Kind::Symlink(b"../usr/bin/env".to_vec()), 0o777)
    );
    // The same link twice: once; another target: both named.
    t.add_symlink("/bin/sh", "../usr/bin/env", "symlinks[4]")
        .unwrap();
    let e = t
        .add_symlink("/bin/sh", "busybox", "symlinks[5]")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("symlinks[1]") && e.contains("symlinks[5]") && e.contains("symlink targets"),
        "{e}"
    );
    // Nothing is placed through a declared link.
    let e = t
        .add_text("x", &dest("/bin/sh/x"), "files[0]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("symlinks[1]"), "{e}");
    for (path, target, why) in [
        ("/usr/bin/", "x", "not ending in /"),
        ("usr/bin/y", "x", "must be absolute"),
        ("/usr/bin/y", "", "empty or holds a NUL"),
        ("/usr/bin/y", "a\0b", "empty or holds a NUL"),
    ] {
        let e = t
            .add_symlink(path, target, "symlinks[9]")
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{path} -> {target:?}: {e}");
    }
}

fn rule<'a>(
    path: &'a str,
    regex: &'a str,
    mode: Option<u32>,
    uid: Option<u32>,
    i: usize,
) -> PermRule<'a> {
    PermRule {
        path,
        regex,
        mode,
        uid,
        gid: uid,
        label: format!("perms[{i}]"),
    }
}

/// Issue 24: `perms` rules match anchored full paths under their `path`,
/// set what they give (a link keeps 0777), agree or fail naming both, and
/// fail when they match nothing.
#[test]
fn perms_rules() {
    let store = tempfile::tempdir().unwrap();
    let app = store.path().join("0c2kvl9a1jfnv7krcvsj5gj3i95162zl-app");
    fs::create_dir_all(app.join("var/log")).unwrap();
    fs::create_dir_all(app.join("bin")).unwrap();
    fs::write(app.join("var/log/x"), "x").unwrap();
    fs::write(app.join("bin/var"), "not under a var directory").unwrap();
    symlink("log", app.join("var/l")).unwrap();
    let mut t = Tree::new(store.path().to_owned(), BTreeSet::new());
    t.add(&app, &Placement::default(), Path::new("spec"))
        .unwrap();
    t.add_text("v", &text_at("/etc/var"), "files[0]").unwrap();
    let root = app.to_str().unwrap();
    let re = ".*/var(/.*)?";
    let mut t2 = Tree::new(store.path().to_owned(), BTreeSet::new());
    t2.add(&app, &Placement::default(), Path::new("spec"))
        .unwrap();
    // A rule to the same values twice, and one for the group only: fine.
    t.apply_perms(&[
        rule(root, re, Some(0o775), Some(1000), 0),
        rule(root, ".*/var/log", Some(0o775), None, 1),
    ])
    .unwrap();
    let rel = |p: &str| app.join(p).to_str().unwrap().as_bytes()[1..].to_vec();
    let meta = |p: Vec<u8>| {
        let e = &t.entries[&p];
        (e.mode, e.uid, e.gid)
    };
    assert_eq!(meta(rel("var")), (0o775, 1000, 1000));
    assert_eq!(meta(rel("var/log")), (0o775, 1000, 1000));
    assert_eq!(meta(rel("var/log/x")), (0o775, 1000, 1000));
    assert_eq!(meta(rel("var/l")), (0o777, 1000, 1000));
    // The regex is over the full path: a file named var matches too.
    assert_eq!(meta(rel("bin/var")), (0o775, 1000, 1000));
    assert_eq!(meta(rel("bin")), (0o555, 0, 0));
    // Outside the rule's path: untouched.
    assert_eq!(meta(b"etc/var".to_vec()), (0o444, 0, 0));

    let e = t2
        .apply_perms(&[
            rule(root, re, Some(0o775), None, 0),
            rule(root, ".*/log", Some(0o700), None, 1),
        ])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("perms[0] and perms[1] set different modes (775 and 700)")
            && e.contains("/var/log"),
        "{e}"
    );
    // Anchored at the end: ".*/log" is the directory, not what is in it.
    let mut t3 = Tree::new(store.path().to_owned(), BTreeSet::new());
    t3.add(&app, &Placement::default(), Path::new("spec"))
        .unwrap();
    t3.apply_perms(&[rule(root, ".*/log", Some(0o700), None, 0)])
        .unwrap();
    assert_eq!(t3.entries[&rel("var/log")].mode, 0o700);
    assert_eq!(t3.entries[&rel("var/log/x")].mode, 0o444);
    // Anchored at the start: "var" is no full path.
    let e = t2
        .apply_perms(&[rule(root, "var", Some(0o775), None, 3)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("perms[3]: regex \"var\" matches no entry"),
        "{e}"
    );
    let e = t2
        .apply_perms(&[rule("/nowhere", ".*", Some(0o775), None, 4)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("perms[4]") && e.contains("matches no entry"),
        "{e}"
    );
    let e = t2
        .apply_perms(&[rule(root, "(", Some(0o775), None, 5)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("perms[5]: regex \"(\" is not valid"), "{e}");
    let e = t2
        .apply_perms(&[rule(root, ".*", None, None, 6)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("perms[6] sets nothing"), "{e}");
}

/// Rules over several trees (`nixoci layers`): a rule need match in one
/// of them only; one matching in none is named; a conflict in one tree
/// leaves that tree as it was.
#[test]
fn perms_over_several_trees() {
    let store = tempfile::tempdir().unwrap();
    let app = store.path().join("0c2kvl9a1jfnv7krcvsj5gj3i95162zl-app");
    let dep = store.path().join("1c2kvl9a1jfnv7krcvsj5gj3i95162zl-dep");
    fs::create_dir_all(app.join("var")).unwrap();
    fs::create_dir_all(dep.join("lib")).unwrap();
    let tree = |p: &Path| {
        let mut t = Tree::new(store.path().to_owned(), BTreeSet::new());
        t.add(p, &Placement::default(), Path::new("spec")).unwrap();
        t
    };
    let (mut a, mut d) = (tree(&app), tree(&dep));
    let rules = [
        rule(app.to_str().unwrap(), ".*/var", Some(0o775), None, 0),
        rule(dep.to_str().unwrap(), ".*/lib", None, Some(7), 1),
    ];
    let mut perms = Perms::new(&rules).unwrap();
    perms.apply(&mut a).unwrap();
    assert!(perms.check_matched("any layer").is_err());
    perms.apply(&mut d).unwrap();
    perms.check_matched("any layer").unwrap();
    let rel = |p: &Path, s: &str| p.join(s).to_str().unwrap().as_bytes()[1..].to_vec();
    assert_eq!(a.entries[&rel(&app, "var")].mode, 0o775);
    assert_eq!(d.entries[&rel(&dep, "lib")].uid, 7);

    let mut perms = Perms::new(&[rule("/", ".*/nothing", Some(0o700), None, 2)]).unwrap();
    perms.apply(&mut a).unwrap();
    perms.apply(&mut d).unwrap();
    let e = perms.check_matched("any layer").unwrap_err().to_string();
    assert!(
        e.contains("perms[2]: regex \".*/nothing\" matches no entry of any layer at or under /"),
        "{e}"
    );

    let mut perms = Perms::new(&[
        rule("/", ".*/var", Some(0o700), None, 0),
        rule("/", ".*/v.r", Some(0o750), None, 1),
    ])
    .unwrap();
    let e = perms.apply(&mut a).unwrap_err().to_string();
    assert!(
        e.contains("perms[0] and perms[1] set different modes (700 and 750)"),
        "{e}"
    );
    assert_eq!(a.entries[&rel(&app, "var")].mode, 0o775, "left as it was");
}
