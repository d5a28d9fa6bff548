//! Every reader of an image's layers refuses what `nixoci unpack` refuses,
//! in its words: `unpack` and `sbom` (which unpacks), `verify` (which must
//! never say ok for an image `unpack` refuses) and the base tree of
//! `fromImage` (so that `build` never makes one); and where they accept,
//! `unpack` makes umoci's tree. The layers are crafted here, entry by
//! entry, with links and whiteouts across layers; and `build` refuses a
//! layer that removes a base's link and places something through it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

/// A tar entry: a directory, an empty file, a symbolic link or a hard
/// link (name, target), any name (`./` too).
enum T {
    /// A file whose mode field is not an octal number.
    BadMode(&'static str),
    Dir(&'static str),
    File(&'static str),
    Sym(&'static str, &'static str),
    Hard(&'static str, &'static str),
}

fn tar_layer(entries: &[T]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (name, link, kind, mode) = match e {
            T::BadMode(n) | T::File(n) => (*n, "", tar::EntryType::Regular, 0o644),
            T::Dir(n) => (*n, "", tar::EntryType::Directory, 0o755),
            T::Sym(n, l) => (*n, *l, tar::EntryType::Symlink, 0o777),
            T::Hard(n, l) => (*n, *l, tar::EntryType::Link, 0o644),
        };
        let mut h = tar::Header::new_ustar();
        let u = h.as_ustar_mut().unwrap();
        u.name[..name.len()].copy_from_slice(name.as_bytes());
        u.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        if let T::BadMode(_) = e {
            h.as_old_mut().mode = *b"0000x44\0";
        }
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A layout at `dir` of gzip layers made of `layers`, tagged `latest`.
fn layout(dir: &Path, layers: &[&[T]]) -> PathBuf {
    let tars: Vec<Vec<u8>> = layers.iter().map(|entries| tar_layer(entries)).collect();
    craft(dir, &tars, |_, _| {})
}

/// What each reader says of the layout `name` under `t`: `Err` its
/// message when it refuses. `build` puts a file onto it (`fromImage`);
/// what it builds, if it builds, must unpack.
fn readers(t: &Path, name: &str) -> Vec<(&'static str, Result<(), String>)> {
    let layout = t.join(name);
    let outcome = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        match out.status.code() {
            Some(0) => Ok(()),
            Some(1) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
            c => panic!("{cmd:?}: exit {c:?}"),
        }
    };
    let unpack = |image: &Path, to: &str| {
        outcome(nixoci().arg("unpack").arg(image).arg(t.join(to)).arg("-q"))
    };
    fs::write(t.join("app"), b"app\n").unwrap();
    let spec = t.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({"fromImage": name, "architecture": "amd64",
                "layers": [{"files": [{"source": "app", "destination": "/app"}]}]}),
    );
    let built = t.join(format!("{name}-built"));
    let build = outcome(
        nixoci()
            .arg("build")
            .arg(&spec)
            .arg("-o")
            .arg(&built)
            .arg("-q"),
    );
    if build.is_ok() {
        if let Err(e) = unpack(&built, &format!("{name}-built-rootfs")) {
            panic!("{name}: build made an image unpack refuses: {e}");
        }
    }
    vec![
        ("unpack", unpack(&layout, &format!("{name}-rootfs"))),
        ("verify", outcome(nixoci().arg("verify").arg(&layout))),
        ("sbom", outcome(nixoci().arg("sbom").arg(&layout))),
        ("build", build),
    ]
}

/// umoci's unpack of the layout `name`: its root, or its message.
fn umoci(t: &Path, name: &str) -> Result<PathBuf, String> {
    require("umoci");
    let bundle = t.join(format!("{name}-umoci"));
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", t.join(name).display()))
        .arg(&bundle)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(bundle.join("rootfs"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A crafted image: its name, its layers, what every reader's message
/// holds, and whether umoci refuses it too.
type Case<'a> = (&'a str, Vec<&'a [T]>, Vec<&'a str>, bool);

/// Regression: `verify` said ok, and the base tree (so `build`) took,
/// layers `unpack` refuses: a whiteout or an entry written through a link
/// of a lower layer (umoci follows it; nixoci never writes through a
/// link), a hard link to what its layer whited out or under its own path
/// (umoci refuses both), a root entry that is a link (umoci refuses it;
/// `unpack` dropped it silently), and a mode field that is not a number.
/// Each reader now refuses each, naming the entry and why.
#[test]
fn every_reader_refuses_what_unpack_refuses() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    let linked: &[T] = &[T::Dir("r/"), T::File("r/f"), T::Sym("l", "r")];
    let cases: Vec<Case> = vec![
        (
            "opq_on_link",
            vec![linked, &[T::File("l/.wh..wh..opq")]],
            vec!["\"l/.wh..wh..opq\"", "written through the symlink \"l\""],
            false,
        ),
        (
            "wh_on_link",
            vec![linked, &[T::File("l/.wh.f")]],
            vec!["\"l/.wh.f\"", "written through the symlink \"l\""],
            false,
        ),
        (
            "file_on_link",
            vec![linked, &[T::File("l/g")]],
            vec!["\"l/g\"", "written through the symlink \"l\""],
            false,
        ),
        (
            "link_to_whited_out",
            vec![&[T::File("f")], &[T::File(".wh.f"), T::Hard("g", "f")]],
            vec!["\"g\"", "its hard link target \"f\" does not exist (yet)"],
            true,
        ),
        (
            "link_into_itself",
            vec![&[T::Dir("a/"), T::File("a/b")], &[T::Hard("a", "a/b")]],
            vec!["\"a\"", "its hard link target \"a/b\" is under the entry"],
            true,
        ),
        (
            "mode_not_a_number",
            vec![&[T::BadMode("m")]],
            vec!["\"m\"", "numeric field was not a number"],
            false,
        ),
        (
            "root_is_a_link",
            vec![&[T::Sym("./", "/etc"), T::File("x")]],
            vec![
                "\"./\"",
                "it is the image's root, which must be a directory, not a symbolic link",
            ],
            true,
        ),
    ];
    for (name, layers, needles, umoci_refuses) in cases {
        layout(&t.join(name), &layers);
        for (who, said) in readers(t, name) {
            let e = said.expect_err(&format!("{name}: {who} accepted it"));
            for n in &needles {
                assert!(e.contains(n), "{name}: {who}: {n} not in:\n{e}");
            }
        }
        if umoci_refuses {
            umoci(t, name).expect_err(&format!("{name}: umoci accepted it"));
        }
    }
}

/// Regression: a whiteout under what a lower layer made a file (`d/.wh.a`
/// over the file `d`) hides nothing, as umoci and the base tree have it,
/// where `unpack` and `sbom` refused it ("its parent d is not a
/// directory"). Every reader takes it, and `unpack` makes umoci's tree.
#[test]
fn a_whiteout_under_a_file_hides_nothing_in_every_reader() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    for (name, whiteout) in [
        ("wh_under_file", "d/.wh.a"),
        ("opq_on_file", "d/.wh..wh..opq"),
    ] {
        layout(
            &t.join(name),
            &[&[T::File("d"), T::File("e")], &[T::File(whiteout)]],
        );
        for (who, said) in readers(t, name) {
            said.unwrap_or_else(|e| panic!("{name}: {who} refused it: {e}"));
        }
        let theirs = umoci(t, name).unwrap_or_else(|e| panic!("{name}: umoci: {e}"));
        let mine = t.join(format!("{name}-rootfs"));
        if let Some(d) = diff(&snapshot(&mine), &snapshot(&theirs)) {
            panic!("{name}: nixoci unpack and umoci unpack differ: {d}");
        }
        assert!(mine.join("d").is_file() && mine.join("e").is_file());
    }
}

/// A usr-merged base (`/bin -> usr/bin`, `/sbin -> bin`, `/usr/bin/sh`) and the spec of
/// one layer `layer` onto it, following its links when `follow`.
fn onto_usr_merged(t: &Path, layer: serde_json::Value, follow: bool) -> PathBuf {
    if !t.join("merged").exists() {
        layout(
            &t.join("merged"),
            &[&[
                T::Dir("usr/"),
                T::Dir("usr/bin/"),
                T::File("usr/bin/sh"),
                T::Sym("bin", "usr/bin"),
                T::Sym("sbin", "bin"),
            ]],
        );
        fs::write(t.join("f"), b"f\n").unwrap();
    }
    let from = if follow {
        json!({"path": "merged", "symlinks": "follow"})
    } else {
        json!("merged")
    };
    let spec = t.join(format!("spec-{follow}.json"));
    write_json(
        &spec,
        &json!({"fromImage": from, "architecture": "amd64", "layers": [layer]}),
    );
    spec
}

/// Regression: with `"symlinks": "follow"`, a layer that removed the
/// base's link `/bin` and placed `/bin/sh` built: the image had no `/bin`,
/// and `/usr/bin/sh` was replaced through the link the layer removes.
/// It is refused as it is without follow, and so is a path placed
/// through a link to the link the layer removes (`/sbin -> bin`). And `remove ["/bin/sh"]`
/// without follow said only that the base has nothing there: it names the
/// link and says what to do.
#[test]
fn a_layer_never_places_through_a_link_it_removes() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    // What `build` of `spec` into `t/out` says when it fails.
    let build_fails = |spec: &Path, out: &str| {
        run_fail(nixoci().arg("build").arg(spec).arg("-o").arg(t.join(out)))
    };
    let layer = json!({"remove": ["/bin"], "files": [{"source": "f", "destination": "/bin/sh"}]});
    for follow in [false, true] {
        let spec = onto_usr_merged(t, layer.clone(), follow);
        let e = build_fails(&spec, &format!("img-{follow}"));
        assert!(
            e.contains("/bin is removed (remove) and also placed (")
                && e.contains("at /bin): do one or the other"),
            "follow {follow}: {e}"
        );
        assert!(!t.join(format!("img-{follow}")).exists());
    }
    // Nor through a link to the link it removes.
    let spec = onto_usr_merged(
        t,
        json!({"remove": ["/bin"], "files": [{"source": "f", "destination": "/sbin/x"}]}),
        true,
    );
    let e = build_fails(&spec, "img");
    assert!(
        e.contains("/sbin/x (")
            && e.contains("): it is placed through the base image ")
            && e.contains(
                "'s symbolic link /bin, which the layer removes (remove): do one or the other"
            ),
        "{e}"
    );
    assert!(!t.join("img").exists());
    let spec = onto_usr_merged(t, json!({"remove": ["/bin/sh"]}), false);
    let e = build_fails(&spec, "img");
    assert!(
        e.contains("/bin/sh: the base image")
            && e.contains("has nothing there to remove (/bin is a symbolic link to usr/bin in it); remove the path it leads to (/usr/bin/sh), or follow the base's symbolic links (\"symlinks\": \"follow\" in fromImage"),
        "{e}"
    );
    // Followed, the same removal takes /usr/bin/sh.
    let spec = onto_usr_merged(t, json!({"remove": ["/bin/sh"]}), true);
    run(nixoci()
        .arg("build")
        .arg(&spec)
        .arg("-o")
        .arg(t.join("img"))
        .arg("-q"));
}
