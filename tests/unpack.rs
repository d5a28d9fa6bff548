//! `nixoci unpack` against umoci on the same images (whiteouts included),
//! a corpus of malicious and broken layers made here byte by byte, and
//! `nixoci archive` loaded by podman in both formats.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::trees::*;
use common::*;
use serde_json::json;

// ---- a raw tar writer: any name, any type, any declared size ----

#[derive(Clone)]
enum E {
    Dir(&'static str, u32),
    File(&'static str, &'static [u8], u32),
    Symlink(&'static str, &'static str),
    Hard(&'static str, &'static str),
    Char(&'static str),
    Block(&'static str),
    /// A regular file header declaring `size` bytes, with no data after it.
    Declared(&'static str, u64),
    /// A GNU long name record holding these raw bytes, then a file.
    LongName(&'static [u8]),
    /// Bytes as they are (headers and data made by the helpers below).
    Raw(Vec<u8>),
}

/// An octal header field, or GNU base-256 when the number does not fit.
fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    if s.len() < field.len() {
        field[..s.len()].copy_from_slice(s.as_bytes());
    } else {
        field.fill(0);
        let n = field.len();
        field[n - 8..].copy_from_slice(&v.to_be_bytes());
        field[0] = 0x80;
    }
}

fn header(name: &[u8], kind: u8, size: u64, mode: u32, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1);
    h[156] = kind;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % 512 != 0 {
        out.push(0);
    }
}

fn tar_bytes(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            E::Dir(n, m) => out.extend(header(n.as_bytes(), b'5', 0, *m, b"")),
            E::File(n, data, m) => {
                out.extend(header(n.as_bytes(), b'0', data.len() as u64, *m, b""));
                out.extend_from_slice(data);
                pad(&mut out);
            }
            E::Symlink(n, t) => out.extend(header(n.as_bytes(), b'2', 0, 0o777, t.as_bytes())),
            E::Hard(n, t) => out.extend(header(n.as_bytes(), b'1', 0, 0o644, t.as_bytes())),
            E::Char(n) => out.extend(header(n.as_bytes(), b'3', 0, 0o666, b"")),
            E::Block(n) => out.extend(header(n.as_bytes(), b'4', 0, 0o660, b"")),
            E::Declared(n, size) => out.extend(header(n.as_bytes(), b'0', *size, 0o644, b"")),
            E::LongName(raw) => {
                let mut data = raw.to_vec();
                data.push(0);
                out.extend(header(
                    b"././@LongLink",
                    b'L',
                    data.len() as u64,
                    0o644,
                    b"",
                ));
                out.extend_from_slice(&data);
                pad(&mut out);
                out.extend(header(b"placeholder", b'0', 1, 0o644, b""));
                out.push(b'x');
                pad(&mut out);
            }
            E::Raw(bytes) => {
                out.extend_from_slice(bytes);
                pad(&mut out);
            }
        }
    }
    out.extend([0u8; 1024]);
    out
}

// ---- PAX and GNU extensions, written as GNU tar, Go and buildah write them ----

fn checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A header followed by `data`, padded.
fn with_data(mut h: [u8; 512], data: &[u8]) -> Vec<u8> {
    checksum(&mut h);
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    pad(&mut out);
    out
}

/// A PAX extended header (`x`) with these records, for the next entry.
fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut n = body + 1;
        while format!("{n}").len() + body != n {
            n += 1;
        }
        data.extend(format!("{n} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    with_data(
        header(b"PaxHeaders.0/x", b'x', data.len() as u64, 0o644, b""),
        &data,
    )
}

/// A regular file whose header's size field says `declared` (0 when the
/// size is only in a PAX record), followed by `data`.
fn file_declaring(name: &str, declared: u64, data: &[u8]) -> Vec<u8> {
    with_data(header(name.as_bytes(), b'0', declared, 0o644, b""), data)
}

/// A header number in GNU base-256 even when it fits in octal.
fn base256(field: &mut [u8], v: u64) {
    field.fill(0);
    let n = field.len();
    field[n - 8..].copy_from_slice(&v.to_be_bytes());
    field[0] = 0x80;
}

/// An old GNU sparse file (`S`): `blocks` are (offset, data); up to 4 in
/// the header, more in extension blocks; the last, empty, block at
/// `real_size` marks the end as GNU tar writes it.
fn gnu_sparse(name: &str, real_size: u64, blocks: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut list: Vec<(u64, u64)> = blocks.iter().map(|(o, d)| (*o, d.len() as u64)).collect();
    list.push((real_size, 0));
    let stored: u64 = blocks.iter().map(|(_, d)| d.len() as u64).sum();
    let mut h = header(name.as_bytes(), b'S', stored, 0o644, b"");
    h[257..265].copy_from_slice(b"ustar  \0");
    let put = |slot: &mut [u8], (o, n): (u64, u64)| {
        base256(&mut slot[..12], o);
        base256(&mut slot[12..24], n);
    };
    for (i, b) in list.iter().take(4).enumerate() {
        put(&mut h[386 + 24 * i..386 + 24 * (i + 1)], *b);
    }
    base256(&mut h[483..495], real_size);
    let rest: Vec<&[(u64, u64)]> = list[list.len().min(4)..].chunks(21).collect();
    h[482] = u8::from(!rest.is_empty());
    checksum(&mut h);
    let mut out = h.to_vec();
    for (i, chunk) in rest.iter().enumerate() {
        let mut ext = [0u8; 512];
        for (j, b) in chunk.iter().enumerate() {
            put(&mut ext[24 * j..24 * (j + 1)], *b);
        }
        ext[504] = u8::from(i + 1 < rest.len());
        out.extend_from_slice(&ext);
    }
    for (_, d) in blocks {
        out.extend_from_slice(d);
        pad(&mut out);
    }
    out
}

/// A PAX sparse file as GNU tar `--posix` writes it, in format 0.0, 0.1 or
/// 1.0 (`version`): (offset, data) blocks.
fn pax_sparse(version: &str, name: &str, real_size: u64, blocks: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let map: Vec<String> = blocks
        .iter()
        .flat_map(|(o, d)| [o.to_string(), d.len().to_string()])
        .collect();
    let n = blocks.len().to_string();
    let size = real_size.to_string();
    let mut data = Vec::new();
    let mut records: Vec<(&str, Vec<u8>)> = Vec::new();
    match version {
        "1.0" => {
            records.push(("GNU.sparse.major", b"1".to_vec()));
            records.push(("GNU.sparse.minor", b"0".to_vec()));
            records.push(("GNU.sparse.name", name.as_bytes().to_vec()));
            records.push(("GNU.sparse.realsize", size.into_bytes()));
            data.extend(format!("{n}\n").as_bytes());
            for m in &map {
                data.extend(format!("{m}\n").as_bytes());
            }
            pad(&mut data);
        }
        "0.1" => {
            records.push(("GNU.sparse.major", b"0".to_vec()));
            records.push(("GNU.sparse.minor", b"1".to_vec()));
            records.push(("GNU.sparse.name", name.as_bytes().to_vec()));
            records.push(("GNU.sparse.size", size.into_bytes()));
            records.push(("GNU.sparse.numblocks", n.into_bytes()));
            records.push(("GNU.sparse.map", map.join(",").into_bytes()));
        }
        _ => {
            records.push(("GNU.sparse.size", size.into_bytes()));
            records.push(("GNU.sparse.numblocks", n.into_bytes()));
            for pair in map.chunks(2) {
                records.push(("GNU.sparse.offset", pair[0].clone().into_bytes()));
                records.push(("GNU.sparse.numbytes", pair[1].clone().into_bytes()));
            }
            records.push(("path", name.as_bytes().to_vec()));
        }
    }
    for (_, d) in blocks {
        data.extend_from_slice(d);
    }
    let recs: Vec<(&str, &[u8])> = records.iter().map(|(k, v)| (*k, &v[..])).collect();
    let mut out = pax(&recs);
    out.extend(file_declaring(
        &format!("GNUSparseFile.0/{}", name.rsplit('/').next().unwrap()),
        data.len() as u64,
        &data,
    ));
    out
}

fn assert_same_tree(a: &Path, b: &Path) {
    assert_same_snapshot(a, b);
    let sa = snapshot(a);
    // Owners too (both run as root here and keep the layer's).
    use std::os::unix::fs::MetadataExt;
    for rel in sa.keys() {
        let p =
            |root: &Path| root.join(std::ffi::OsStr::new(std::str::from_utf8(rel).unwrap_or("")));
        if let (Ok(ma), Ok(mb)) = (fs::symlink_metadata(p(a)), fs::symlink_metadata(p(b))) {
            assert_eq!(
                (ma.uid(), ma.gid()),
                (mb.uid(), mb.gid()),
                "owner of {}",
                String::from_utf8_lossy(rel)
            );
        }
    }
}

#[test]
fn unpack_matches_umoci_on_a_built_image() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("input");
    make_fixture(&input, FixtureOptions::default());
    file(t.path(), "owned", b"mine\n", 0o600);
    let spec = t.path().join("image.json");
    write_json(
        &spec,
        &json!({"layers": [
            {"files": [{"source": "input", "destination": "/"}]},
            {"files": [{"source": "owned", "destination": "/home/user/owned", "mode": "0640", "uid": 1000, "gid": 100}], "compression": "none"}
        ], "architecture": "amd64"}),
    );
    let layout = build(&spec, &t.path().join("layout"));
    let (mine, theirs) = unpack_both(&layout, t.path());
    assert_same_tree(&mine, &theirs);
    // And it is the input, normalised as layers are.
    let mut got = snapshot(&mine);
    for k in [&b"home"[..], b"home/user", b"home/user/owned"] {
        got.remove(k).unwrap();
    }
    assert_eq!(diff(&normalised(snapshot(&input)), &got), None);
}

#[test]
fn unpack_matches_umoci_on_whiteouts_across_layers() {
    let t = tempfile::tempdir().unwrap();
    let layers = vec![
        tar_bytes(&[
            E::Dir("etc/", 0o755),
            E::File("etc/keep", b"keep\n", 0o644),
            E::File("etc/gone", b"gone\n", 0o644),
            E::Dir("var/", 0o755),
            E::Dir("var/cache/", 0o755),
            E::File("var/cache/old1", b"1", 0o644),
            E::File("var/cache/old2", b"2", 0o644),
            E::Dir("var/cache/sub/", 0o700),
            E::File("var/cache/sub/deep", b"d", 0o644),
            E::File("bin/tool", b"#!/bin/sh\n", 0o755),
            E::Hard("bin/tool-hard", "bin/tool"),
            E::Symlink("bin/t", "tool"),
            E::Dir("opt/", 0o755),
            E::File("opt/file-then-dir", b"f", 0o644),
        ]),
        tar_bytes(&[
            E::File("etc/.wh.gone", b"", 0o644),
            E::File("var/cache/new", b"new\n", 0o600),
            E::File("var/cache/.wh..wh..opq", b"", 0o644),
            E::Symlink("bin/tool-link", "/bin/tool"),
            E::File("bin/.wh.t", b"", 0o644),
            E::Dir("opt/file-then-dir/", 0o750),
            E::File("opt/file-then-dir/inside", b"i", 0o644),
        ]),
        tar_bytes(&[
            E::File("etc/keep", b"replaced\n", 0o444),
            E::File("etc/.wh.missing", b"", 0o644),
        ]),
    ];
    let layout = craft(&t.path().join("layout"), &layers, |_, _| {});
    let (mine, theirs) = unpack_both(&layout, t.path());
    assert_same_tree(&mine, &theirs);
    assert!(
        !mine.join("etc/gone").exists()
            && !mine.join("var/cache/old1").exists()
            && !mine.join("var/cache/sub").exists()
    );
    assert_eq!(fs::read(mine.join("var/cache/new")).unwrap(), b"new\n");
    assert_eq!(fs::read(mine.join("etc/keep")).unwrap(), b"replaced\n");
    assert!(mine.join("opt/file-then-dir/inside").exists());
}

/// Each broken or malicious image is refused with a message naming the
/// entry (or the layer), nothing is left where the tree would go, and
/// nothing changes outside it.
#[test]
fn malicious_and_broken_layers_are_refused() {
    let base = tempfile::tempdir().unwrap();
    // A sentinel outside every target: must never change.
    let outside = base.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), b"untouched").unwrap();
    let o = |s: &str| -> &'static str {
        Box::leak(s.replace("OUT", outside.to_str().unwrap()).into_boxed_str())
    };

    type Case = (
        &'static str,
        Vec<Vec<E>>,
        &'static [&'static str],
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (
            "dotdot",
            vec![vec![E::File("../escape", b"x", 0o644)]],
            &["\"../escape\"", "'..'"],
            &[],
        ),
        (
            "nested dotdot",
            vec![vec![E::File("a/../../escape", b"x", 0o644)]],
            &["a/../../escape", "'..'"],
            &[],
        ),
        (
            "absolute",
            vec![vec![E::File(o("OUT/abs"), b"x", 0o644)]],
            &["absolute"],
            &[],
        ),
        (
            "symlink then write through",
            vec![vec![
                E::Symlink("link", o("OUT")),
                E::File("link/victim", b"pwned", 0o644),
            ]],
            &["link/victim", "through the symlink \"link\""],
            &[],
        ),
        (
            "relative symlink out, then write",
            vec![vec![
                E::Dir("d/", 0o755),
                E::Symlink("d/up", "../.."),
                E::File("d/up/escape", b"x", 0o644),
            ]],
            &["d/up/escape", "symlink"],
            &[],
        ),
        (
            // The directory was checked (and remembered) as a parent
            // before it became a link.
            "directory written into, replaced by a symlink, then written through",
            vec![vec![
                E::Dir("a/", 0o755),
                E::File("a/x", b"x", 0o644),
                E::Symlink("a", o("OUT")),
                E::File("a/victim", b"pwned", 0o644),
            ]],
            &["a/victim", "through the symlink \"a\""],
            &[],
        ),
        (
            "directory of one layer, a symlink in its place in the next, then written through",
            vec![
                vec![E::Dir("a/", 0o755), E::File("a/x", b"x", 0o644)],
                vec![
                    E::Symlink("a", o("OUT")),
                    E::File("a/victim", b"pwned", 0o644),
                ],
            ],
            &["layer 1", "a/victim", "symlink"],
            &[],
        ),
        (
            "symlink in one layer, write in the next",
            vec![
                vec![E::Symlink("etc", o("OUT"))],
                vec![E::File("etc/victim", b"pwned", 0o644)],
            ],
            &["layer 1", "etc/victim", "symlink"],
            &[],
        ),
        (
            "hard link out",
            vec![vec![E::Hard("hl", "../outside/victim")]],
            &["\"hl\"", "outside the root"],
            &[],
        ),
        (
            "hard link absolute",
            vec![vec![E::Hard("hl", o("OUT/victim"))]],
            &["\"hl\"", "outside the root"],
            &[],
        ),
        (
            "hard link through a symlink",
            vec![vec![E::Symlink("s", o("OUT")), E::Hard("hl", "s/victim")]],
            &["\"hl\"", "symlink"],
            &[],
        ),
        (
            "deep symlink chain",
            vec![vec![
                E::Symlink("a", "b"),
                E::Symlink("b", "c"),
                E::Symlink("c", "d"),
                E::Symlink("d", o("OUT")),
                E::File("a/victim", b"pwned", 0o644),
            ]],
            &["a/victim", "symlink"],
            &[],
        ),
        (
            "char device",
            vec![vec![E::Char("dev/evil")]],
            &["dev/evil", "device nodes are refused"],
            &[],
        ),
        (
            "block device",
            vec![vec![E::Block("dev/sda")]],
            &["dev/sda", "--allow-devices"],
            &[],
        ),
        (
            "whiteout of ..",
            vec![vec![E::File("x/.wh...", b"", 0o644)]],
            &["x/.wh...", "whiteout"],
            &[],
        ),
        (
            "NUL in a name",
            vec![vec![E::LongName(b"evil\0name")]],
            &["NUL"],
            &[],
        ),
        (
            "huge declared size",
            vec![vec![E::Declared("big", 1 << 40)]],
            &["\"big\"", "--max-file-size"],
            &[],
        ),
        (
            "entry-count bomb",
            vec![(0..200).map(|_| E::Dir("d/", 0o755)).collect()],
            &["--max-entries"],
            &["--max-entries", "100"],
        ),
        (
            "total size",
            vec![vec![
                E::File("a", &[7u8; 3000], 0o644),
                E::File("b", &[7u8; 3000], 0o644),
            ]],
            &["\"b\"", "--max-total-size"],
            &["--max-total-size", "5000"],
        ),
        (
            "file where a directory is needed",
            vec![vec![E::File("f", b"x", 0o644), E::File("f/g", b"y", 0o644)]],
            &["f/g", "not a directory"],
            &[],
        ),
    ];
    assert!(cases.len() + 3 >= 15, "the corpus has at least 15 cases");
    for (i, (name, layers, needles, extra)) in cases.iter().enumerate() {
        let t = base.path().join(format!("case{i}"));
        let tars: Vec<Vec<u8>> = layers.iter().map(|l| tar_bytes(l)).collect();
        let layout = craft(&t.join("layout"), &tars, |_, _| {});
        check_refused(name, &layout, &t, needles, extra, &outside);
    }

    // Damage rather than malice: a wrong digest, a truncated gzip, a wrong diff_id.
    let good = vec![tar_bytes(&[E::File("f", &[1u8; 5000], 0o644)])];
    let t = base.path().join("wrong-digest");
    let layout = craft(&t.join("layout"), &good, |_, b| {
        let n = b.len() / 2;
        b[n] ^= 1;
    });
    check_refused("wrong digest", &layout, &t, &["layer 0"], &[], &outside);
    let t = base.path().join("truncated");
    let layout = craft(&t.join("layout"), &good, |_, b| b.truncate(b.len() / 2));
    check_refused(
        "truncated gzip",
        &layout,
        &t,
        &["layer 0", "damaged"],
        &[],
        &outside,
    );
    let t = base.path().join("diff-id");
    let layout = craft_with(&t.join("layout"), &good, |_, _| {}, true);
    check_refused("wrong diff_id", &layout, &t, &["diff_id"], &[], &outside);
}

fn check_refused(
    name: &str,
    layout: &Path,
    t: &Path,
    needles: &[&str],
    extra: &[&str],
    outside: &Path,
) {
    let parent = t.join("out");
    fs::create_dir_all(&parent).unwrap();
    let err = run_fail(
        nixoci()
            .arg("unpack")
            .arg(layout)
            .arg(parent.join("rootfs"))
            .args(extra),
    );
    for n in needles {
        assert!(err.contains(n), "{name}: {n:?} not in:\n{err}");
    }
    let left: Vec<_> = fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{name}: left behind {left:?}");
    let victims: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        victims,
        vec![std::ffi::OsString::from("victim")],
        "{name}: something was written outside"
    );
    assert_eq!(
        fs::read(outside.join("victim")).unwrap(),
        b"untouched",
        "{name}"
    );
}

#[test]
fn devices_are_created_when_allowed() {
    let t = tempfile::tempdir().unwrap();
    let layout = craft(
        &t.path().join("layout"),
        &[tar_bytes(&[E::Char("dev/null2")])],
        |_, _| {},
    );
    run(nixoci()
        .arg("unpack")
        .arg(&layout)
        .arg(t.path().join("root"))
        .arg("--allow-devices")
        .arg("-q"));
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(t.path().join("root/dev/null2"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn artifact_files_are_named_by_their_title() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| put_blob(&layout, bytes);
    let make = |title: &str| {
        let (fd, fs_) = put(b"artifact content\n");
        let (cd, cs) = put(b"{}");
        let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example.thing",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "text/plain", "digest": fd, "size": fs_, "annotations": {"org.opencontainers.image.title": title}}]});
        let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
        write_json(
            &layout.join("index.json"),
            &json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms}]}),
        );
        fs::write(
            layout.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
    };
    make("notes.txt");
    run(nixoci()
        .arg("unpack")
        .arg(&layout)
        .arg(t.path().join("files"))
        .arg("-q"));
    assert_eq!(
        fs::read(t.path().join("files/notes.txt")).unwrap(),
        b"artifact content\n"
    );
    for bad in ["../escape", "a/b", "", " x", ".."] {
        make(bad);
        let err = run_fail(
            nixoci()
                .arg("unpack")
                .arg(&layout)
                .arg(t.path().join("bad")),
        );
        assert!(err.contains("artifact file name"), "{bad:?}: {err}");
        assert!(!t.path().join("bad").exists() && !t.path().join("escape").exists());
    }
}

/// A layout of one artifact (the empty config, an `artifactType`): each
/// layer a blob with its media type and annotations.
fn artifact_layout(dir: &Path, layers: &[(Vec<u8>, &str, serde_json::Value)]) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| put_blob(dir, bytes);
    let descs: Vec<_> = layers
        .iter()
        .map(|(blob, media_type, annotations)| {
            let (d, n) = put(blob);
            json!({"mediaType": media_type, "digest": d, "size": n, "annotations": annotations})
        })
        .collect();
    let (cd, cs) = put(b"{}");
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.thing",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": cs},
        "layers": descs});
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    write_json(
        &dir.join("index.json"),
        &json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}),
    );
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_owned()
}

/// A packed directory (ORAS's tar+gzip, marked to unpack) titled `title`.
fn packed(title: &str, entries: &[E]) -> (Vec<u8>, &'static str, serde_json::Value) {
    (
        gzip(&tar_bytes(entries)),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        json!({"org.opencontainers.image.title": title, "io.deis.oras.content.unpack": "true"}),
    )
}

/// Regression: a packed directory titled `site` whose tar also held
/// `.envrc`, `Makefile` or `keep` wrote them beside `site`. A packed
/// directory writes only under its title (the title itself a directory),
/// with no whiteout, and its links (hard links, and symbolic ones resolved
/// through the tar's own links) stay inside it; anything else is refused,
/// naming the entry and the title, before anything is written.
#[test]
fn packed_directories_write_only_under_their_title() {
    let base = tempfile::tempdir().unwrap();
    let page = E::File("site/index.html", b"<p>hi</p>\n", 0o644);
    let site = E::Dir("site/", 0o755);
    let cases: Vec<(&str, Vec<E>, &str)> = vec![
        (
            "a dot file beside",
            vec![site.clone(), page.clone(), E::File(".envrc", b"x", 0o644)],
            ".envrc",
        ),
        (
            "a file beside",
            vec![site.clone(), page.clone(), E::File("Makefile", b"x", 0o644)],
            "Makefile",
        ),
        (
            "a directory beside",
            vec![site.clone(), E::Dir("keep/", 0o755)],
            "keep",
        ),
        (
            "a name behind ./",
            vec![site.clone(), E::File("./x", b"x", 0o644)],
            "./x",
        ),
        (
            "a name behind ..",
            vec![site.clone(), E::File("site/../x", b"x", 0o644)],
            "site/../x",
        ),
        (
            "an absolute name",
            vec![E::File("/site/x", b"x", 0o644)],
            "/site/x",
        ),
        (
            "the title a file",
            vec![E::File("site", b"x", 0o644)],
            "is a file",
        ),
        (
            "the title a link",
            vec![E::Symlink("site", "/etc")],
            "is a symbolic link",
        ),
        (
            "a link climbing out",
            vec![site.clone(), E::Symlink("site/up", "../x")],
            "site/up",
        ),
        (
            "a link to the parent",
            vec![site.clone(), E::Symlink("site/up", "..")],
            "site/up",
        ),
        (
            "an absolute link",
            vec![site.clone(), E::Symlink("site/abs", "/etc/passwd")],
            "site/abs",
        ),
        (
            "a link out through a link",
            vec![
                site.clone(),
                E::Symlink("site/here", "."),
                E::Symlink("site/out", "here/../x"),
            ],
            "site/out",
        ),
        (
            "a hard link to a link",
            vec![
                E::Dir("site/sub/", 0o755),
                page.clone(),
                E::Symlink("site/sub/l", "../index.html"),
                E::Hard("site/h", "site/sub/l"),
            ],
            "site/h",
        ),
        (
            "a hard link out",
            vec![site.clone(), E::Hard("site/h", "etc/passwd")],
            "etc/passwd",
        ),
        (
            "a whiteout",
            vec![
                site.clone(),
                page.clone(),
                E::File("site/.wh.index.html", b"", 0o644),
            ],
            "whiteout",
        ),
        (
            "a whiteout of the title",
            vec![E::File(".wh.site", b"", 0o644)],
            ".wh.site",
        ),
    ];
    for (i, (name, entries, needle)) in cases.into_iter().enumerate() {
        let t = base.path().join(format!("case-{i}"));
        let layout = artifact_layout(&t.join("layout"), &[packed("site", &entries)]);
        let out = t.join("out");
        let err = run_fail(nixoci().arg("unpack").arg(&layout).arg(&out));
        for n in [needle, "packed directory \"site\"", "refused"] {
            assert!(err.contains(n), "{name}: {n:?} not in:\n{err}");
        }
        assert!(!out.exists(), "{name}: {} was written", out.display());
    }

    // Into another packed directory: refused as outside its own title.
    let t = base.path().join("two");
    let layout = artifact_layout(
        &t.join("layout"),
        &[
            packed("site", &[site.clone(), page.clone()]),
            packed(
                "docs",
                &[E::Dir("docs/", 0o755), E::File("site/evil", b"x", 0o644)],
            ),
        ],
    );
    let err = run_fail(nixoci().arg("unpack").arg(&layout).arg(t.join("out")));
    assert!(
        err.contains("layer 1")
            && err.contains("\"site/evil\"")
            && err.contains("outside \"docs\""),
        "{err}"
    );

    // Titled and untitled layers mixed: the untitled one is named.
    let t = base.path().join("mixed");
    let rootfs = (
        gzip(&tar_bytes(&[E::File("etc/x", b"x", 0o644)])),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        json!({}),
    );
    let layout = artifact_layout(
        &t.join("layout"),
        &[packed("site", &[site.clone(), page.clone()]), rootfs],
    );
    let err = run_fail(nixoci().arg("unpack").arg(&layout).arg(t.join("out")));
    assert!(
        err.contains("layer 1 (sha256:") && err.contains("has no title"),
        "{err}"
    );

    // What stays inside is written: "./" names, links inside, a hard link.
    let t = base.path().join("good");
    let layout = artifact_layout(
        &t.join("layout"),
        &[packed(
            "site",
            &[
                E::Dir("./", 0o755),
                E::Dir("./site/", 0o755),
                E::File("./site/index.html", b"<p>hi</p>\n", 0o644),
                E::Dir("site/css/", 0o755),
                E::Symlink("site/home.html", "index.html"),
                E::Symlink("site/css/up", "../index.html"),
                E::Symlink("site/here", "."),
                E::Symlink("site/css/again", "../here/css/up"),
                E::Hard("site/copy.html", "site/index.html"),
            ],
        )],
    );
    let out = t.join("out");
    run(nixoci().arg("unpack").arg(&layout).arg(&out).arg("-q"));
    assert_eq!(
        fs::read(out.join("site/css/again")).unwrap(),
        b"<p>hi</p>\n"
    );
    assert_eq!(
        fs::read(out.join("site/copy.html")).unwrap(),
        b"<p>hi</p>\n"
    );
    let names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("site")]);
}

/// Regression: `unpack` took an image whose config lists fewer diff_ids
/// than it has layers (an artifact's layers are the exception): refused,
/// as the docker archive and `verify` refuse it.
#[test]
fn an_image_config_needs_a_diff_id_for_every_layer() {
    let t = tempfile::tempdir().unwrap();
    let layers = vec![
        tar_bytes(&[E::File("a", b"a", 0o644)]),
        tar_bytes(&[E::File("b", b"b", 0o644)]),
    ];
    let (d0, d1) = (sha(&layers[0]), sha(&layers[1]));
    let config = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [d0, d1]}});
    // With both, it unpacks (beside the layout: never into it).
    let layout = craft_config(&t.path().join("both"), &layers, &config);
    run(nixoci()
        .arg("unpack")
        .arg(&layout)
        .arg(t.path().join("both-out"))
        .arg("-q"));
    let few = |n: usize| {
        (
            format!("lists {n} diff_ids (rootfs.diff_ids) for 2 layers"),
            format!("{n} diff_ids for 2 layers"),
        )
    };
    for (name, diff_ids, (unpack_says, verify_says)) in [
        ("one of two", json!([d0]), few(1)),
        ("none", json!([]), few(0)),
        ("three for two", json!([d0, d1, d0]), few(3)),
        (
            "a number for one",
            json!([d0, 5]),
            (
                "rootfs.diff_ids[1] is not a string".to_owned(),
                "not a valid OCI image config".to_owned(),
            ),
        ),
    ] {
        let dir = t.path().join(name);
        let mut c = config.clone();
        c["rootfs"]["diff_ids"] = diff_ids;
        // The same layout with this config, digests made right.
        let layout = craft_config(&dir, &layers, &c);
        let out = dir.join("out");
        let err = run_fail(nixoci().arg("unpack").arg(&layout).arg(&out));
        assert!(
            err.contains(&unpack_says) && err.contains("config sha256:"),
            "{name}: {err}"
        );
        assert!(!out.exists(), "{name}");
        let err = run_fail(nixoci().arg("verify").arg(&layout));
        assert!(err.contains(&verify_says), "{name}: {err}");
    }
}

/// [`craft`]'s layout of `layers` (gzip), with `config` as the config.
fn craft_config(dir: &Path, layers: &[Vec<u8>], config: &serde_json::Value) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| put_blob(dir, bytes);
    let descs: Vec<_> = layers
        .iter()
        .map(|tar| {
            let (d, n) = put(&gzip(tar));
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
        })
        .collect();
    let (cd, cs) = put(&serde_json::to_vec(config).unwrap());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs}, "layers": descs});
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    write_json(
        &dir.join("index.json"),
        &json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}),
    );
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_owned()
}

// ---- archives ----

fn busybox_layout(t: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "this test needs busybox-static: run `bash .ci/install-deps`"
    );
    let spec = t.join("image.json");
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": busybox, "destination": "/bin/busybox"}]}],
            "config": {"Entrypoint": ["/bin/busybox", "echo"], "Cmd": ["hello from an archive"]},
            "tags": ["latest", "v1"]
        }),
    );
    build(&spec, &t.join("bb"))
}

#[test]
fn archives_load_into_podman_in_both_formats() {
    let t = tempfile::tempdir().unwrap();
    let layout = busybox_layout(t.path());
    let podman = Podman::new();
    for (format, name) in [
        ("oci", "nixoci-test/oci:1"),
        ("docker", "nixoci-test/docker:1"),
    ] {
        let file = t.path().join(format!("{format}.tar"));
        run(nixoci()
            .arg("archive")
            .arg(format!("{}:v1", layout.display()))
            .arg("-o")
            .arg(&file)
            .args(["--format", format, "--tag", name, "-q"]));
        let loaded = run(podman.cmd().arg("load").arg("-i").arg(&file));
        assert!(
            String::from_utf8_lossy(&loaded.stdout).contains(name),
            "{format}: {}",
            String::from_utf8_lossy(&loaded.stdout)
        );
        let ran = run(podman
            .cmd()
            .args(["run", "--rm", "--network=none"])
            .arg(format!("localhost/{name}")));
        assert_eq!(
            String::from_utf8_lossy(&ran.stdout),
            "hello from an archive\n",
            "{format}"
        );
    }
}

#[test]
fn archives_are_byte_identical_across_runs() {
    let t = tempfile::tempdir().unwrap();
    let layout = busybox_layout(t.path());
    for format in ["oci", "docker"] {
        let a = t.path().join(format!("a-{format}.tar"));
        let b = t.path().join(format!("b-{format}.tar"));
        for f in [&a, &b] {
            run(nixoci()
                .arg("archive")
                .arg(format!("{}:latest", layout.display()))
                .arg("-o")
                .arg(f)
                .args(["--format", format, "-q"]));
        }
        assert_eq!(
            fs::read(&a).unwrap(),
            fs::read(&b).unwrap(),
            "{format} archives differ"
        );
    }
    // The OCI archive is a valid layout with one image.
    let x = t.path().join("x");
    fs::create_dir_all(&x).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(t.path().join("a-oci.tar"))
        .arg("-C")
        .arg(&x));
    run(nixoci().arg("verify").arg(&x));
    assert_eq!(
        read_json(&x.join("index.json"))["manifests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ---- PAX and GNU extensions: the same tree as umoci (Go's archive/tar) ----

/// Content with no run of zeros, so that holes are only where the map says.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed | 1).collect()
}

/// Regression: a size only in a PAX record (plain size field 0, as GNU
/// tar, Go, Docker and buildah write files over 8 GiB) gave an empty file.
/// Each PAX and GNU extension umoci honours is honoured the same way.
#[test]
fn pax_and_gnu_extensions_unpack_as_umoci_does() {
    let t = tempfile::tempdir().unwrap();
    let long_dir = "d".repeat(120);
    let long_path = format!("{long_dir}/pax-long-path");
    let long_target = format!("/{}/target", "t".repeat(150));
    let mut base256_file = header(b"base256", b'0', 0, 0o644, b"");
    base256(&mut base256_file[124..136], 5);
    base256(&mut base256_file[108..116], 4242);
    checksum(&mut base256_file);
    let mut old_dir = header(b"old-style-dir/", 0, 0, 0o750, b"");
    checksum(&mut old_dir);
    let sparse_blocks = vec![
        (0u64, pattern(700, 1)),
        (10_000, pattern(512, 2)),
        (50_000, pattern(4096 + 3, 3)),
        (70_000, pattern(100, 4)),
        (80_000, pattern(10, 5)),
        (90_000, pattern(1, 6)),
    ];
    let layer = tar_bytes(&[
        E::Raw(pax(&[("size", b"1024")])),
        E::Raw(file_declaring("pax-size", 0, &pattern(1024, 9))),
        E::Raw(pax(&[("path", long_path.as_bytes())])),
        E::Raw(file_declaring("ignored-name", 3, b"abc")),
        E::Raw(pax(&[("linkpath", long_target.as_bytes())])),
        E::Symlink("pax-long-link", "ignored"),
        E::Raw(pax(&[
            ("uid", b"70000"),
            ("gid", b"80000"),
            ("mtime", b"1234567890.5"),
        ])),
        E::File("pax-owner", b"owned", 0o600),
        E::Raw(pax(&[("path", b"")])),
        E::File("empty-pax-path-keeps-header", b"h", 0o644),
        E::Raw(base256_file.to_vec()),
        E::Raw(b"12345".to_vec()),
        E::Raw(old_dir.to_vec()),
        E::Raw(pax_sparse("0.0", "pax-sparse-0.0", 100_000, &sparse_blocks)),
        E::Raw(pax_sparse("0.1", "pax-sparse-0.1", 100_000, &sparse_blocks)),
        E::Raw(pax_sparse("1.0", "pax-sparse-1.0", 100_000, &sparse_blocks)),
        E::Raw(pax_sparse(
            "1.0",
            "pax-sparse-ends-in-data",
            90_001,
            &sparse_blocks,
        )),
    ]);
    let layout = craft(&t.path().join("layout"), &[layer], |_, _| {});
    run(nixoci().arg("verify").arg(&layout));
    let (mine, theirs) = unpack_both(&layout, t.path());
    assert_same_tree(&mine, &theirs);
    // And what they agree on is what was written.
    assert_eq!(fs::read(mine.join("pax-size")).unwrap(), pattern(1024, 9));
    assert_eq!(fs::read(mine.join(&long_path)).unwrap(), b"abc");
    assert_eq!(
        fs::read_link(mine.join("pax-long-link")).unwrap(),
        Path::new(&long_target)
    );
    assert_eq!(fs::read(mine.join("base256")).unwrap(), b"12345");
    assert!(mine.join("old-style-dir").is_dir());
    let mut want = vec![0u8; 100_000];
    for (o, d) in &sparse_blocks {
        want[*o as usize..*o as usize + d.len()].copy_from_slice(d);
    }
    for name in ["pax-sparse-0.0", "pax-sparse-0.1", "pax-sparse-1.0"] {
        assert_eq!(fs::read(mine.join(name)).unwrap(), want, "{name}");
    }

    assert_eq!(
        fs::read(mine.join("pax-sparse-ends-in-data")).unwrap(),
        &want[..90_001]
    );
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(mine.join("pax-owner")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mtime()), (70000, 80000, 1234567890));
    let theirs_m = fs::metadata(theirs.join("pax-owner")).unwrap();
    assert_eq!(
        (m.mtime(), m.mtime_nsec()),
        (theirs_m.mtime(), theirs_m.mtime_nsec())
    );
}

/// Entries that Go refuses, or that two tar readers could read two ways,
/// are refused with the reason, never unpacked as a guess.
#[test]
fn ambiguous_pax_and_sparse_entries_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), b"untouched").unwrap();
    let blocks = vec![(0u64, pattern(10, 1)), (5000, pattern(10, 2))];
    let mut bad_map = pax_sparse("0.1", "bad-map", 100, &blocks);
    // Fragments past the end of the file.
    let at = bad_map.windows(4).position(|w| w == b"=100").unwrap();
    bad_map[at + 1..at + 4].copy_from_slice(b"099");
    let mut wide = header(b"wide", b'0', 0, 0o644, b"");
    wide[124..136].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5]);
    // (name, entry bytes, words of the message, whether umoci refuses it too)
    let cases: Vec<(&str, Vec<u8>, &[&str], bool)> = vec![
        (
            "size not a number",
            [pax(&[("size", b"12x")]), file_declaring("f", 0, b"")].concat(),
            &["\"f\"", "size record"],
            true,
        ),
        (
            "path twice",
            [
                pax(&[("path", b"a"), ("path", b"b")]),
                file_declaring("f", 1, b"x"),
            ]
            .concat(),
            &["\"path\" twice"],
            false,
        ),
        (
            "old GNU sparse",
            gnu_sparse(
                "gnu-sparse",
                10_000,
                &[(0, pattern(512, 1)), (8192, pattern(10, 2))],
            ),
            &["gnu-sparse", "type 'S'"],
            true,
        ),
        (
            "sparse map past the end",
            bad_map,
            &["bad-map", "sparse map is invalid"],
            true,
        ),
        (
            "sparse data longer than its map",
            {
                let mut v = pax(&[
                    ("GNU.sparse.major", b"0"),
                    ("GNU.sparse.minor", b"1"),
                    ("GNU.sparse.size", b"100"),
                    ("GNU.sparse.numblocks", b"1"),
                    ("GNU.sparse.map", b"0,5"),
                ]);
                v.extend(file_declaring("extra", 10, b"0123456789"));
                v
            },
            &["extra", "more sparse data"],
            true,
        ),
        (
            // Go reads no content for a directory, whatever its size, so
            // umoci unpacks "hidden"; the tar crate would skip it.
            "directory declaring content",
            [
                header(b"d/", b'5', 1024, 0o755, b"").to_vec(),
                file_declaring("hidden", 1, b"x"),
            ]
            .concat(),
            &["declares 1024 bytes", "\"d/\""],
            false,
        ),
        (
            "symlink declaring content",
            [
                header(b"l", b'2', 1024, 0o777, b"target").to_vec(),
                file_declaring("hidden", 1, b"x"),
            ]
            .concat(),
            &["declares 1024 bytes", "\"l\""],
            false,
        ),
        (
            "base-256 size over 64 bits",
            {
                checksum(&mut wide);
                wide.to_vec()
            },
            &["wide", "base-256"],
            true,
        ),
    ];
    require("umoci");
    for (i, (name, bytes, needles, umoci_refuses)) in cases.into_iter().enumerate() {
        let dir = t.path().join(format!("case{i}"));
        let layout = craft(
            &dir.join("layout"),
            &[tar_bytes(&[E::Raw(bytes)])],
            |_, _| {},
        );
        check_refused(name, &layout, &dir, needles, &[], &outside);
        let out = nixoci().arg("verify").arg(&layout).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: verify passed");
        assert!(text.contains(needles[0]), "{name}: verify said:\n{text}");
        if umoci_refuses {
            let st = Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:latest", layout.display()))
                .arg(dir.join("bundle"))
                .output()
                .unwrap();
            assert!(!st.status.success(), "{name}: umoci unpacked it");
        }
    }
}

/// Regression: `.wh.foo` deleted a `foo` its own layer had put there. A
/// whiteout hides the layers below only, before or after the entries of
/// its layer; an opaque whiteout also spares what its layer put inside the
/// directories it created, and clears what lower layers left there.
#[test]
fn whiteouts_spare_their_own_layer_as_umoci_does() {
    let t = tempfile::tempdir().unwrap();
    let layers = vec![
        tar_bytes(&[
            E::File("before", b"lower\n", 0o644),
            E::File("after", b"lower\n", 0o644),
            E::Dir("dir/", 0o755),
            E::File("dir/lower", b"lower\n", 0o644),
            E::Dir("opq/", 0o755),
            E::Dir("opq/sub/", 0o755),
            E::File("opq/sub/lower", b"lower\n", 0o644),
            E::File("opq/lower", b"lower\n", 0o644),
        ]),
        tar_bytes(&[
            // foo, then .wh.foo: foo stays (the upper one).
            E::File("before", b"upper\n", 0o644),
            E::File(".wh.before", b"", 0o644),
            // .wh.foo, then foo: foo is the upper one.
            E::File(".wh.after", b"", 0o644),
            E::File("after", b"upper\n", 0o644),
            // A directory of this layer whited out: its lower children go.
            E::Dir("dir/", 0o755),
            E::File("dir/upper", b"upper\n", 0o644),
            E::File(".wh.dir", b"", 0o644),
            // Opaque after this layer's own entries, one level down too.
            E::Dir("opq/sub/", 0o755),
            E::File("opq/sub/upper", b"upper\n", 0o644),
            E::File("opq/.wh..wh..opq", b"", 0o644),
            // A whiteout of something only this layer has: kept.
            E::File("only-upper", b"upper\n", 0o644),
            E::File(".wh.only-upper", b"", 0o644),
        ]),
    ];
    let layout = craft(&t.path().join("layout"), &layers, |_, _| {});
    let (mine, theirs) = unpack_both(&layout, t.path());
    assert_same_tree(&mine, &theirs);
    assert_eq!(fs::read(mine.join("before")).unwrap(), b"upper\n");
    assert_eq!(fs::read(mine.join("after")).unwrap(), b"upper\n");
    assert_eq!(fs::read(mine.join("only-upper")).unwrap(), b"upper\n");
    assert!(mine.join("dir/upper").exists() && !mine.join("dir/lower").exists());
    assert!(mine.join("opq/sub/upper").exists());
    assert!(!mine.join("opq/sub/lower").exists() && !mine.join("opq/lower").exists());
}

/// Regression: only `unpack` refused a whiteout that names no entry
/// (`.wh.`, `.wh..`, `.wh...`); `verify` passed it, `diff` listed it and
/// the base tree of `fromImage` applied it (`.wh.` hid its own directory).
/// Every reader now refuses it, naming the entry, by the same rule, and
/// `sbom` does not call the image it reads a base image.
#[test]
fn a_whiteout_naming_nothing_is_refused_by_every_reader() {
    let t = tempfile::tempdir().unwrap();
    let other = craft(
        &t.path().join("other"),
        &[tar_bytes(&[E::File("x", b"x", 0o644)])],
        |_, _| {},
    );
    file(t.path(), "app", b"app\n", 0o644);
    for (i, bad) in ["etc/.wh.", ".wh..", "etc/.wh..."].into_iter().enumerate() {
        let layout = craft(
            &t.path().join(format!("bad{i}")),
            &[tar_bytes(&[
                E::Dir("etc/", 0o755),
                E::File("etc/keep", b"k", 0o644),
                E::File(bad, b"", 0o644),
            ])],
            |_, _| {},
        );
        let needles = [
            format!("{bad:?}"),
            "a whiteout must name an entry of its directory".into(),
        ];
        let check = |who: &str, text: &str| {
            for n in &needles {
                assert!(
                    text.contains(n.as_str()),
                    "{who} of {bad}: {n} not in:\n{text}"
                );
            }
        };
        check(
            "unpack",
            &run_fail(
                nixoci()
                    .arg("unpack")
                    .arg(&layout)
                    .arg(t.path().join(format!("rootfs{i}"))),
            ),
        );
        let out = nixoci().arg("verify").arg(&layout).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "verify of {bad}");
        check("verify", &String::from_utf8_lossy(&out.stderr));
        check(
            "diff",
            &run_fail(nixoci().arg("diff").arg(&other).arg(&layout)),
        );
        // sbom reads the image itself, not a base: none is blamed.
        let sbom = run_fail(nixoci().arg("sbom").arg(&layout));
        check("sbom", &sbom);
        assert!(!sbom.contains("base image"), "{sbom}");
        let spec = t.path().join(format!("spec{i}.json"));
        write_json(
            &spec,
            &json!({"fromImage": format!("bad{i}"), "architecture": "amd64",
                    "layers": [{"files": [{"source": "app", "destination": "/app"}]}]}),
        );
        check(
            "build",
            &run_fail(
                nixoci()
                    .arg("build")
                    .arg(&spec)
                    .arg("-o")
                    .arg(t.path().join(format!("img{i}"))),
            ),
        );
    }
    // Nor on a layer whose diff_id is wrong (it was called one then too).
    let wrong = craft_with(
        &t.path().join("wrong"),
        &[tar_bytes(&[E::File("x", b"x", 0o644)])],
        |_, _| {},
        true,
    );
    let sbom = run_fail(nixoci().arg("sbom").arg(&wrong));
    assert!(
        sbom.contains("layer 1 (sha256:")
            && sbom.contains("diff_id")
            && !sbom.contains("base image"),
        "{sbom}"
    );
}

/// What the base tree of `fromImage` (and of `sbom`) makes of a layout:
/// every path and whether it is a directory, a file or a link (to what).
fn base_tree(layout: &Path) -> std::collections::BTreeMap<Vec<u8>, String> {
    use nixoci::test_support::Node as B;
    let tree = nixoci::test_support::base_tree(layout, "latest").unwrap();
    tree.into_iter()
        .map(|(p, n)| {
            let kind = match n {
                B::Dir => "dir".to_owned(),
                B::File | B::Other => "file".to_owned(),
                B::Symlink(t) => format!("link {}", String::from_utf8_lossy(&t)),
            };
            (p, kind)
        })
        .collect()
}

/// Regression: the base tree's reader let an opaque whiteout hide what its
/// own layer had put before it (and parents it made, and hard links),
/// where `nixoci unpack` and umoci keep them. One rule now serves every
/// reader: here umoci, `nixoci unpack` and the base tree see the same tree
/// of crafted layers (opaque whiteouts after and before their layer's
/// entries, whiteouts of lower and of their own layer's entries, a
/// directory whited out and made again, in its layer and the next), and
/// `sbom` names the layer that holds a store path its layer's opaque
/// whiteout spares.
#[test]
fn every_reader_applies_whiteouts_as_umoci_does() {
    let t = tempfile::tempdir().unwrap();
    let lower_path = "nix/store/00000000000000000000000000000000-lower-1.0";
    let upper_path = "nix/store/11111111111111111111111111111111-upper-2.0";
    let layers = vec![
        tar_bytes(&[
            E::Dir("a/", 0o755),
            E::File("a/lower", b"l", 0o644),
            E::Dir("a/sub/", 0o755),
            E::File("a/sub/lower", b"l", 0o644),
            E::Dir("b/", 0o755),
            E::File("b/lower", b"l", 0o644),
            E::Dir("c/", 0o755),
            E::File("c/lower", b"l", 0o644),
            E::File("d/lower", b"l", 0o644),
            E::Dir("e/", 0o755),
            E::Dir("e/x/", 0o755),
            E::File("e/x/lower", b"l", 0o644),
            E::File("g", b"l", 0o644),
            E::Dir("h/", 0o755),
            E::File("h/lower", b"l", 0o644),
            E::File(
                "nix/store/00000000000000000000000000000000-lower-1.0/f",
                b"l",
                0o444,
            ),
        ]),
        tar_bytes(&[
            // An opaque whiteout after its layer's entries, one of them in
            // a lower directory it does not name.
            E::File("a/own", b"u", 0o644),
            E::File("a/sub/own", b"u", 0o644),
            E::File("a/.wh..wh..opq", b"", 0o644),
            // An opaque whiteout before its layer's entries.
            E::File("b/.wh..wh..opq", b"", 0o644),
            E::File("b/own", b"u", 0o644),
            // Whiteouts of a lower entry, and of entries of their own
            // layer: a file, and a hard link to it.
            E::File("c/.wh.lower", b"", 0o644),
            E::File("c/own", b"u", 0o644),
            E::Hard("c/own-link", "c/own"),
            E::File("c/.wh.own", b"", 0o644),
            E::File("c/.wh.own-link", b"", 0o644),
            // Parents made for an entry, then an opaque whiteout above.
            E::File("d/new/deep", b"u", 0o644),
            E::File("d/.wh..wh..opq", b"", 0o644),
            // A directory whited out, then made again in the same layer.
            E::File(".wh.e", b"", 0o644),
            E::Dir("e/", 0o700),
            E::File("e/y", b"u", 0o644),
            // A file whited out and made a directory.
            E::File(".wh.g", b"", 0o644),
            E::Dir("g/", 0o755),
            E::File("g/z", b"u", 0o644),
            // A directory whited out after its layer put something in it.
            E::File("h/own", b"u", 0o644),
            E::File(".wh.h", b"", 0o644),
            // A store path, then an opaque whiteout of the store.
            E::File(
                "nix/store/11111111111111111111111111111111-upper-2.0/f",
                b"u",
                0o444,
            ),
            E::File("nix/store/.wh..wh..opq", b"", 0o644),
        ]),
        tar_bytes(&[
            // A directory of the layer below whited out and made again.
            E::File(".wh.b", b"", 0o644),
            E::File("b/again", b"2", 0o644),
            E::File("a/.wh.own", b"", 0o644),
        ]),
    ];
    let layout = craft(&t.path().join("layout"), &layers, |_, _| {});
    let (mine, theirs) = unpack_both(&layout, t.path());
    assert_same_tree(&mine, &theirs);
    let umoci: std::collections::BTreeMap<Vec<u8>, String> = snapshot(&theirs)
        .into_iter()
        .map(|(p, n)| {
            let kind = match n {
                Node::Dir { .. } => "dir".to_owned(),
                Node::File { .. } => "file".to_owned(),
                Node::Symlink { target } => format!("link {}", String::from_utf8_lossy(&target)),
            };
            (p, kind)
        })
        .collect();
    let base = base_tree(&layout);
    let show = |m: &std::collections::BTreeMap<Vec<u8>, String>| {
        m.iter()
            .map(|(p, k)| format!("{} {k}", String::from_utf8_lossy(p)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(show(&base), show(&umoci), "the base tree, then umoci's");
    // What the rule keeps and hides, spelled out.
    for kept in [
        "a/sub/own",
        "b/again",
        "c/own",
        "c/own-link",
        "d/new/deep",
        "e/y",
        "g/z",
        "h/own",
        upper_path,
    ] {
        assert!(mine.join(kept).exists(), "{kept} was hidden");
    }
    for gone in [
        "a/lower",
        "a/own",
        "a/sub/lower",
        "b/lower",
        "b/own",
        "c/lower",
        "d/lower",
        "e/x",
        "h/lower",
        lower_path,
    ] {
        assert!(!mine.join(gone).exists(), "{gone} is left");
    }
    // The SBOM lists the store path in the layer that holds it.
    let out = run(nixoci()
        .arg("sbom")
        .arg(format!("{}:latest", layout.display()))
        .args(["--format", "cyclonedx"]));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layer_1 = read_json(&blob_path(&layout, &manifest_digest(&layout)))["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let components = doc["components"].as_array().unwrap();
    assert_eq!(components.len(), 1, "{doc:#}");
    let layer = components[0]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "nixoci:layer")
        .unwrap()["value"]
        .clone();
    assert_eq!(layer, layer_1.as_str(), "{doc:#}");
}

/// An 8 GiB sparse file (PAX 1.0, as GNU tar --posix writes it) unpacks
/// to its content, as holes: nixoci writes only its data blocks.
/// (umoci reads the same format the same way, as
/// `pax_and_gnu_extensions_unpack_as_umoci_does` checks on a small file,
/// but writes the holes out as zeros: 8 GiB and half a minute here, so it
/// is not run on this one.)
#[test]
fn an_8_gib_sparse_file_unpacks_as_holes() {
    let t = tempfile::tempdir().unwrap();
    let size: u64 = (8 << 30) + 3 * 4096;
    let blocks = vec![
        (0u64, pattern(4096, 1)),
        (4 << 30, pattern(4096, 2)),
        (size - 4096, pattern(4096, 3)),
    ];
    let layer = tar_bytes(&[E::Raw(pax_sparse("1.0", "big", size, &blocks))]);
    let layout = craft(&t.path().join("layout"), &[layer], |_, _| {});
    run(nixoci().arg("verify").arg(&layout));
    // The limits count the file's full size in verify as in unpack.
    for cmd in ["verify", "unpack"] {
        let err = run_fail(
            nixoci()
                .arg(cmd)
                .args(["--max-total-size", "1073741824"])
                .arg(&layout)
                .args(if cmd == "unpack" {
                    vec![t.path().join("limited")]
                } else {
                    vec![]
                }),
        );
        assert!(err.contains("--max-total-size"), "{cmd}: {err}");
    }
    // No clock: writing the holes out would show in the blocks allocated,
    // checked below, whatever the machine's speed.
    let mine = nixoci_unpack(&layout, &t.path().join("mine"));
    use std::os::unix::fs::{FileExt, MetadataExt};
    let f = fs::File::open(mine.join("big")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), size);
    for (off, data) in &blocks {
        let mut got = vec![0u8; data.len()];
        f.read_exact_at(&mut got, *off).unwrap();
        assert_eq!(&got, data, "at {off}");
    }
    // Holes: three 4 KiB blocks on disk (and a little metadata), not 8 GiB.
    let m = fs::metadata(mine.join("big")).unwrap();
    assert!(
        m.blocks() * 512 < 1 << 20,
        "{} bytes allocated",
        m.blocks() * 512
    );
    // Where the data is, and only there (so the rest reads as zeros).
    let f = fs::File::open(mine.join("big")).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut at = 0i64;
    let mut regions = Vec::new();
    loop {
        // SAFETY: lseek takes integers only; `fd` is `f`'s, open here.
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        regions.push((data as u64, (hole - data) as u64));
        at = hole;
    }
    let want: Vec<(u64, u64)> = blocks.iter().map(|(o, d)| (*o, d.len() as u64)).collect();
    assert_eq!(regions, want);
}

/// A layout whose one layer blob is `gz` as it is (not made from a tar here).
fn craft_blob(dir: &Path, gz: &[u8]) -> PathBuf {
    layout_of_blob(dir, gz, &format!("sha256:{}", "0".repeat(64)))
}

/// Regression: verify of a gzip bomb ran for as long as it took to inflate
/// it. A few MB of gzip (a small tar, then 4 GiB of zeros) stops at
/// --max-total-size, in verify and unpack alike, naming the limit and the
/// layer.
#[test]
fn a_gzip_bomb_stops_at_the_size_limit() {
    let t = tempfile::tempdir().unwrap();
    let mut gz = gzip(&tar_bytes(&[E::File("f", b"x", 0o644)]));
    let zeros = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&chunk).unwrap();
        }
        e.finish().unwrap()
    };
    for _ in 0..64 {
        gz.extend_from_slice(&zeros); // one more gzip member: 64 MiB of zeros
    }
    assert!(gz.len() < 8 << 20, "{} bytes of gzip", gz.len());
    let layout = craft_blob(&t.path().join("layout"), &gz);
    // The work done, not the time taken: stopping at the limit, each
    // command reads a small part of the blob's 4 MiB of gzip (inflating
    // all of it reads all of it).
    for cmd in ["verify", "unpack"] {
        let mut c = nixoci();
        c.arg(cmd)
            .arg(&layout)
            .args(["--max-total-size", "10000000"]);
        if cmd == "unpack" {
            c.arg(t.path().join("root"));
        }
        let (out, usage) = common::usage::measured(&mut c);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{cmd}");
        assert!(
            err.contains("layer 0") && err.contains("--max-total-size 10000000"),
            "{cmd}: {err}"
        );
        // verify reads the blob once for its digest, then as a tar.
        let bound = if cmd == "verify" { gz.len() as u64 } else { 0 } + (2 << 20);
        assert!(
            usage.read < bound,
            "{cmd} read {} bytes of a {} byte blob: it inflated past the limit",
            usage.read,
            gz.len()
        );
    }

    // The defaults are the documented ones, in --help and the guide.
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/local.md")).unwrap();
    for cmd in ["unpack", "verify"] {
        let help = String::from_utf8(run(nixoci().arg(cmd).arg("--help")).stdout).unwrap();
        for (flag, default, words) in [
            ("--max-entries", "1000000", "1,000,000"),
            ("--max-file-size", "17179869184", "16 GiB"),
            ("--max-total-size", "68719476736", "64 GiB"),
        ] {
            let at = help
                .find(flag)
                .unwrap_or_else(|| panic!("{cmd} --help: no {flag}"));
            assert!(
                help[at..].contains(&format!("[default: {default}]")),
                "{cmd} {flag}"
            );
            assert!(
                readme.contains(&format!("`{flag}` ({words})")),
                "docs/local.md: {flag} ({words})"
            );
        }
    }
    assert!(
        readme.contains("**verify** reads each layer within"),
        "docs/local.md: verify's limits"
    );
}

// ---- image indexes inside image indexes ----

/// Put a JSON document in the layout's blobs; its descriptor.
fn put_doc(layout: &Path, media_type: &str, doc: &serde_json::Value) -> serde_json::Value {
    let bytes = serde_json::to_vec(doc).unwrap();
    let d = sha(&bytes);
    fs::write(layout.join("blobs/sha256").join(&d[7..]), &bytes).unwrap();
    json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A layout whose `latest` is an index listing an arm64 image and an index
/// that lists the amd64 image (which holds `amd64-file`).
fn nested_layout(dir: &Path) -> (PathBuf, serde_json::Value) {
    let layout = craft(
        dir,
        &[tar_bytes(&[E::File("amd64-file", b"amd64\n", 0o644)])],
        |_, _| {},
    );
    let index = read_json(&layout.join("index.json"));
    let mut amd64 = index["manifests"][0].clone();
    amd64.as_object_mut().unwrap().remove("annotations");
    amd64["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let manifest = read_json(&blob_path(&layout, amd64["digest"].as_str().unwrap()));
    let config = read_json(&blob_path(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let mut arm_config = config.clone();
    arm_config["architecture"] = json!("arm64");
    let mut arm_manifest = manifest.clone();
    arm_manifest["config"] = put_doc(
        &layout,
        "application/vnd.oci.image.config.v1+json",
        &arm_config,
    );
    let mut arm64 = put_doc(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &arm_manifest,
    );
    arm64["platform"] = json!({"architecture": "arm64", "os": "linux"});
    let inner = put_doc(
        &layout,
        INDEX,
        &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [amd64]}),
    );
    let outer = put_doc(
        &layout,
        INDEX,
        &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [arm64, inner]}),
    );
    let mut top = outer.clone();
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    write_json(
        &layout.join("index.json"),
        &json!({"schemaVersion": 2, "manifests": [top]}),
    );
    (layout, outer)
}

/// Regression: with an index inside an index, unpack said "no image for
/// linux/amd64 (it has: )". Every reader searches nested indexes the same
/// way, and the error lists what is there.
#[test]
fn nested_indexes_are_searched_for_a_platform() {
    let t = tempfile::tempdir().unwrap();
    let (layout, _) = nested_layout(&t.path().join("layout"));
    run(nixoci().arg("verify").arg(&layout));
    let root = t.path().join("root");
    run(nixoci()
        .arg("unpack")
        .arg(&layout)
        .arg(&root)
        .args(["--platform", "linux/amd64", "-q"]));
    assert_eq!(fs::read(root.join("amd64-file")).unwrap(), b"amd64\n");
    let err = run_fail(
        nixoci()
            .arg("unpack")
            .arg(&layout)
            .arg(t.path().join("none"))
            .args(["--platform", "linux/s390x"]),
    );
    assert!(
        err.contains("no image for linux/s390x (it has: linux/arm64, linux/amd64)"),
        "{err}"
    );
    let archive = t.path().join("docker.tar");
    run(nixoci()
        .arg("archive")
        .arg(&layout)
        .arg("-o")
        .arg(&archive)
        .args(["--format", "docker", "--platform", "linux/amd64", "-q"]));
    let json = run(nixoci().arg("inspect").arg(&layout).arg("--json")).stdout;
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let platforms: Vec<&str> = v[0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["arm64", "amd64"]);
}

/// Nesting is bounded the same way everywhere: 10 indexes deep is refused
/// by unpack, inspect and verify; a wide graph of repeated digests (fan-out
/// 30, depth 4: 810,000 paths) is walked once per digest.
#[test]
fn nested_indexes_are_bounded_in_depth_and_size() {
    let t = tempfile::tempdir().unwrap();
    let (layout, outer) = nested_layout(&t.path().join("deep"));
    let mut desc = outer;
    for _ in 0..9 {
        desc = put_doc(
            &layout,
            INDEX,
            &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [desc]}),
        );
    }
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    write_json(
        &layout.join("index.json"),
        &json!({"schemaVersion": 2, "manifests": [desc]}),
    );
    let err = run_fail(
        nixoci()
            .arg("unpack")
            .arg(&layout)
            .arg(t.path().join("root"))
            .args(["--platform", "linux/amd64"]),
    );
    assert!(err.contains("nested more than 8 deep"), "{err}");
    let err = run_fail(nixoci().arg("inspect").arg(&layout));
    assert!(err.contains("nested more than 8 deep"), "{err}");
    let out = nixoci().arg("verify").arg(&layout).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nested more than 8 deep"));

    let (layout, outer) = nested_layout(&t.path().join("wide"));
    let mut desc = outer;
    for _ in 0..4 {
        let many: Vec<serde_json::Value> = (0..30).map(|_| desc.clone()).collect();
        desc = put_doc(
            &layout,
            INDEX,
            &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": many}),
        );
    }
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    write_json(
        &layout.join("index.json"),
        &json!({"schemaVersion": 2, "manifests": [desc]}),
    );
    let text = String::from_utf8(run(nixoci().arg("inspect").arg(&layout)).stdout).unwrap();
    assert!(text.lines().count() < 50, "{} lines", text.lines().count());
    let root = t.path().join("root");
    for args in [
        vec!["inspect".as_ref(), layout.as_os_str()],
        vec!["verify".as_ref(), layout.as_os_str()],
        vec![
            "unpack".as_ref(),
            layout.as_os_str(),
            root.as_os_str(),
            "--platform".as_ref(),
            "linux/amd64".as_ref(),
            "-q".as_ref(),
        ],
    ] {
        let (out, usage) = common::usage::measured(nixoci().args(&args));
        assert!(out.status.success(), "{args:?}: {out:?}");
        // The work, not the time: each index is read once (under 0.5 MB
        // in all); a walk that opens them again on every path to them
        // (30^4 paths) reads hundreds of MB.
        assert!(usage.read < 4 << 20, "{args:?} read {} bytes", usage.read);
    }
}

/// `pull --platform` searches nested indexes as unpack does; `pull` of the
/// whole image and remote `inspect` follow them too.
#[test]
fn pull_finds_a_platform_in_a_nested_index() {
    let reg = common::registry::Registry::start(Default::default());
    let t = tempfile::tempdir().unwrap();
    let (layout, _) = nested_layout(&t.path().join("layout"));
    let reference = reg.reference("nested/app:latest");
    let env = |c: &mut Command| {
        c.env("HOME", t.path())
            .env("XDG_CACHE_HOME", t.path().join("cache"))
            .env("DOCKER_CONFIG", t.path().join("docker"))
            .env("REGISTRY_AUTH_FILE", t.path().join("auth.json"));
    };
    let mut push = nixoci();
    env(&mut push);
    run(push
        .arg("push")
        .arg(format!("{}:latest", layout.display()))
        .arg(&reference)
        .arg("-q"));
    let pulled = t.path().join("pulled");
    let mut pull = nixoci();
    env(&mut pull);
    run(pull
        .args(["pull", "--platform", "linux/amd64", "-q"])
        .arg(&reference)
        .arg(&pulled));
    run(nixoci().arg("verify").arg(&pulled));
    let root = t.path().join("root");
    run(nixoci().arg("unpack").arg(&pulled).arg(&root).arg("-q"));
    assert_eq!(fs::read(root.join("amd64-file")).unwrap(), b"amd64\n");
    let mut none = nixoci();
    env(&mut none);
    let err = run_fail(
        none.args(["pull", "--platform", "linux/s390x"])
            .arg(&reference)
            .arg(t.path().join("none")),
    );
    assert!(err.contains("(it has: linux/arm64, linux/amd64)"), "{err}");
    // Without --platform, the whole graph, nested index included.
    let whole = t.path().join("whole");
    let mut pull = nixoci();
    env(&mut pull);
    run(pull.args(["pull", "-q"]).arg(&reference).arg(&whole));
    run(nixoci().arg("verify").arg(&whole));
    assert_eq!(blobs(&whole), blobs(&layout));
    // Remote inspect follows the nesting too: both platforms' images.
    let mut inspect = nixoci();
    env(&mut inspect);
    let out = run(inspect.args(["inspect", "--json"]).arg(&reference));
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let platforms: Vec<String> = inspected[0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["platform"]["os"].as_str().unwrap(),
                i["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/arm64", "linux/amd64"], "{inspected}");
}

/// Modes and times are set at the end of an unpack, by path: a directory
/// a later layer replaced with a link must not have them set through the
/// link, on a directory outside the tree (issue 21, 1.1: nothing outside
/// the tree is touched).
#[test]
fn modes_and_times_never_land_through_a_later_link() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(outside.join("victim")).unwrap();
    fs::set_permissions(outside.join("victim"), fs::Permissions::from_mode(0o755)).unwrap();
    let before = fs::metadata(outside.join("victim")).unwrap();
    let target = outside.to_str().unwrap().as_bytes().to_vec();
    let layers = vec![
        tar_bytes(&[E::Dir("a/", 0o755), E::Dir("a/victim/", 0o700)]),
        tar_bytes(&[E::Raw(header(b"a", b'2', 0, 0o777, &target).to_vec())]),
    ];
    let layout = craft(&t.path().join("layout"), &layers, |_, _| {});
    run(nixoci()
        .arg("unpack")
        .arg(&layout)
        .arg(t.path().join("mine"))
        .arg("-q"));
    let after = fs::metadata(outside.join("victim")).unwrap();
    assert_eq!(
        after.permissions().mode() & 0o7777,
        0o755,
        "mode set outside the tree"
    );
    assert_eq!(after.mtime(), before.mtime(), "time set outside the tree");
    assert_eq!(
        fs::read_link(t.path().join("mine/a")).unwrap(),
        outside,
        "the link itself is kept"
    );
}
