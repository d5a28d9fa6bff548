//! Hostile layer tars meet bounds before they cost anything: an extension
//! header over 1 MiB is refused at its header by every reader (the `tar`
//! crate would read it whole into memory first), owner ids that would wrap
//! are refused, and a PAX time that overflows is refused, not a crash.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::usage::measured;
use common::{layout_of_blob, nixoci, run, run_fail};
use sha2::Digest;

/// A 512-byte ustar header: `name`, type `kind`, `size` bytes, mode 0644.
fn header(name: &str, kind: u8, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// One PAX record, `LEN KEY=VALUE\n`.
fn record(key: &str, value: &str) -> String {
    let rest = format!(" {key}={value}\n");
    let mut len = rest.len() + 1;
    while format!("{len}{rest}").len() != len {
        len += 1;
    }
    format!("{len}{rest}")
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A PAX header of `records`, then a file `f` holding `x`, then the end.
fn pax_then_file(records: &[(&str, &str)]) -> Vec<u8> {
    let body: String = records.iter().map(|(k, v)| record(k, v)).collect();
    let mut t = header("PaxHeaders/f", b'x', body.len() as u64);
    t.extend_from_slice(body.as_bytes());
    pad(&mut t);
    t.extend(header("f", b'0', 1));
    t.push(b'x');
    pad(&mut t);
    t.extend(vec![0; 1024]);
    t
}

/// A layout of one gzip layer, written as `parts` (the tar, piece by
/// piece: a part `Err(n)` is `n` bytes of `a`, compressed as they are
/// made), tagged `latest`. The layer is never whole in memory.
fn layout_of(dir: &Path, parts: &[Result<Vec<u8>, usize>]) -> PathBuf {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut diff_id = sha2::Sha256::new();
    let chunk = vec![b'a'; 1 << 20];
    for part in parts {
        match part {
            Ok(bytes) => {
                gz.write_all(bytes).unwrap();
                diff_id.update(bytes);
            }
            Err(mut n) => {
                while n > 0 {
                    let c = &chunk[..n.min(chunk.len())];
                    gz.write_all(c).unwrap();
                    diff_id.update(c);
                    n -= c.len();
                }
            }
        }
    }
    let gz = gz.finish().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(diff_id.finalize()));
    layout_of_blob(dir, &gz, &diff_id)
}

/// Regression (issue: a tiny layer can use gigabytes of memory): a gzip
/// layer of well under 1 MB holding one 150 MiB PAX `comment` record, or
/// a 150 MiB GNU long name, was read whole into memory by the `tar`
/// crate before any limit saw it (verify passed at 325 MB peak, unpack
/// used 324 MB). Every reader now refuses the header before reading it:
/// the message names the limit, and the peak memory of each run stays
/// under 64 MB.
#[test]
fn a_huge_extension_header_is_refused_before_it_is_read() {
    let t = tempfile::tempdir().unwrap();
    let big: usize = 150 << 20;
    let other = common::craft(
        &t.path().join("other"),
        &[{
            let mut t = header("g", b'0', 1);
            t.push(b'g');
            pad(&mut t);
            t.extend(vec![0; 1024]);
            t
        }],
        |_, _| {},
    );
    // A PAX header: `LEN comment=` then 150 MiB then `\n`.
    let prefix = " comment=";
    let mut len = prefix.len() + big + 1;
    len += len.to_string().len();
    assert_eq!(len, format!("{len}").len() + prefix.len() + big + 1);
    let mut pax = header("PaxHeaders/f", b'x', len as u64);
    pax.extend(format!("{len}{prefix}").into_bytes());
    let mut tail = b"\n".to_vec();
    let mut tail_len = pax.len() - 512 + big + 1;
    tail.resize(tail.len() + tail_len.next_multiple_of(512) - tail_len, 0);
    tail.extend(header("f", b'0', 0));
    tail.extend(vec![0; 1024]);
    let pax_layout = layout_of(
        &t.path().join("pax"),
        &[Ok(pax.clone()), Err(big), Ok(tail)],
    );
    // A GNU long name: 150 MiB of `a` and a NUL.
    let long = header("././@LongLink", b'L', big as u64 + 1);
    let mut tail = vec![0u8];
    tail_len = big + 1;
    tail.resize(tail.len() + tail_len.next_multiple_of(512) - tail_len, 0);
    tail.extend(header("ignored", b'0', 0));
    tail.extend(vec![0; 1024]);
    let long_layout = layout_of(&t.path().join("long"), &[Ok(long), Err(big), Ok(tail)]);

    for (layout, entry, what) in [
        (
            &pax_layout,
            "PaxHeaders/f",
            "PAX extended header (type 'x')",
        ),
        (&long_layout, "@LongLink", "GNU long name (type 'L')"),
    ] {
        let blob_size: u64 = fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .max()
            .unwrap();
        assert!(blob_size < 1 << 20, "{blob_size} bytes of gzip");
        let declared = if what.contains("PAX") { len } else { big + 1 };
        let want = format!(
            "entry {entry:?} refused: its {what} declares {declared} bytes, more than the 1 MiB (1048576 bytes) an extension header may hold"
        );
        let root = t.path().join("root");
        let side = format!("{}:latest", layout.display());
        let commands: Vec<(&str, Vec<String>)> = vec![
            ("verify", vec![layout.display().to_string()]),
            (
                "unpack",
                vec![layout.display().to_string(), root.display().to_string()],
            ),
            ("diff", vec![other.display().to_string(), side.clone()]),
            ("sbom", vec![layout.display().to_string()]),
        ];
        for (cmd, args) in commands {
            let (out, usage) = measured(nixoci().arg(cmd).args(&args));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{cmd}: succeeded");
            assert!(err.contains(&want), "{cmd}: {err}\nwanted: {want}");
            assert!(
                usage.max_rss < 64 << 20,
                "{cmd} {what}: {} MB at peak",
                usage.max_rss >> 20
            );
            assert!(!root.exists(), "{cmd}: left {}", root.display());
        }
    }
}

/// A layer whose only file `f` has the PAX records given.
fn layout_with(dir: &Path, records: &[(&str, &str)]) -> PathBuf {
    common::craft(dir, &[pax_then_file(records)], |_, _| {})
}

/// Regression: a PAX uid or gid over 32 bits wrapped when unpacked as
/// root (uid 4294967296 came out owned by root), and 4294967295, chown's
/// "no change", left the file root's; verify reported the value as it
/// was. Both are refused by unpack, verify, diff and sbom; 4294967294,
/// the largest id, is unpacked as it is.
#[test]
fn owner_ids_that_would_wrap_are_refused() {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test runs as root");
    let t = tempfile::tempdir().unwrap();
    for key in ["uid", "gid"] {
        for id in ["4294967296", "4294967295"] {
            let layout = layout_with(&t.path().join(format!("{key}-{id}")), &[(key, id)]);
            let want = format!("entry \"f\" refused: its {key} {id} is over 4294967294, the largest owner id Linux has");
            let root = t.path().join("root");
            let err = run_fail(nixoci().arg("unpack").arg(&layout).arg(&root));
            assert!(err.contains(&want), "unpack {key}={id}: {err}");
            assert!(!root.exists());
            // verify, diff (which reported the value) and the base tree
            // (sbom, fromImage) read ids as unpack does.
            let other = t.path().join("other");
            if !other.exists() {
                layout_with(&other, &[("comment", "x")]);
            }
            let side = format!("{}:latest", layout.display());
            for args in [
                vec!["verify".to_owned(), layout.display().to_string()],
                vec!["diff".to_owned(), other.display().to_string(), side],
                vec!["sbom".to_owned(), layout.display().to_string()],
            ] {
                let out = nixoci().args(&args).output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{args:?} passed");
                assert!(err.contains(&want), "{args:?}: {err}");
            }
        }
        let layout = layout_with(&t.path().join(format!("{key}-max")), &[(key, "4294967294")]);
        run(nixoci().arg("verify").arg(&layout));
        let root = t.path().join(format!("root-{key}"));
        run(nixoci().arg("unpack").arg(&layout).arg(&root));
        let m = fs::metadata(root.join("f")).unwrap();
        assert_eq!(
            if key == "uid" { m.uid() } else { m.gid() },
            4294967294,
            "{key}"
        );
    }
}

/// Regression: a PAX mtime one second and a half before the oldest i64
/// second overflowed (a panic, exit 101, in a debug build; a wrapped time
/// otherwise). It is refused as a time that does not parse.
#[test]
fn a_pax_time_that_overflows_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let layout = layout_with(
        &t.path().join("layout"),
        &[("mtime", "-9223372036854775808.5")],
    );
    let want = "entry \"f\" refused: its PAX mtime record \"-9223372036854775808.5\" is not a time";
    for cmd in ["verify", "unpack"] {
        let out = nixoci()
            .arg(cmd)
            .arg(&layout)
            .args(if cmd == "unpack" {
                vec![t.path().join("root")]
            } else {
                vec![]
            })
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(err.contains(want), "{cmd}: {err}");
    }
}

/// Every reader of a tar opens it through `untar::archive` (which checks
/// each header before the `tar` crate reads what it announces): no source
/// file outside `src/untar/` builds a `tar::Archive` of its own, so a new
/// reader cannot skip the bound.
#[test]
fn no_reader_opens_a_tar_without_the_header_guard() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for e in walkdir::WalkDir::new(&src) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(&src).unwrap();
        if e.file_type().is_file() && !rel.starts_with("untar") {
            let text = fs::read_to_string(e.path()).unwrap();
            if text.contains("Archive::new") || text.contains("Archive<") {
                found.push(rel.display().to_string());
            }
        }
    }
    assert!(
        found.is_empty(),
        "a tar read without untar::archive in {found:?}"
    );
}
