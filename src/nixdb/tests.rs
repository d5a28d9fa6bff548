use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::*;

const APP: &str = "/nix/store/8pw6ldf5phggkfj2wl7wypnvfiifij61-app";
const LIB: &str = "/nix/store/f3z89l4hhp7cg5icspyw7l1l64hilqv3-lib";
const BB: &str = "/nix/store/8hzbz17vcmw97w1wpqpadxhfkj7crcps-busybox";

fn info(path: &str, byte: u8, refs: &[&str]) -> StorePathInfo {
    StorePathInfo {
        path: path.to_owned(),
        nar_hash: [byte; 32],
        nar_size: 100 + byte as u64,
        references: refs.iter().map(|r| r.to_string()).collect(),
        deriver: None,
        registration_time: None,
    }
}

/// Three paths, given out of order: app refers to lib and busybox, lib to
/// itself.
fn closure() -> Vec<StorePathInfo> {
    vec![
        info(APP, 1, &[LIB, BB]),
        info(LIB, 2, &[LIB]),
        info(BB, 3, &[]),
    ]
}

fn files_below(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type();
            let kind = if t.is_dir() {
                "d"
            } else if t.is_symlink() {
                "l"
            } else {
                "f"
            };
            let mode = e.path().symlink_metadata().unwrap().permissions().mode() & 0o7777;
            format!("{kind} {mode:o} {rel}")
        })
        .collect()
}

#[test]
fn a_reference_outside_the_paths_is_refused_naming_both() {
    let t = tempfile::tempdir().unwrap();
    let mut paths = closure();
    paths.retain(|p| p.path != BB);
    let err = write_database(t.path(), &paths, 1, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "nix database: {APP} refers to {BB}, which is not among the store paths given; \
             give the whole closure of {APP}"
        )
    );
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_path_given_twice_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let mut paths = closure();
    paths.push(info(LIB, 9, &[]));
    let err = write_database(t.path(), &paths, 1, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("nix database: store path {LIB} is given twice; give each path once")
    );
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn what_is_not_a_store_path_is_refused() {
    let t = tempfile::tempdir().unwrap();
    for (path, why) in [
        (
            "/gnu/store/8pw6ldf5phggkfj2wl7wypnvfiifij61-app",
            "not in /nix/store",
        ),
        (
            "/nix/store/8pw6ldf5phggkfj2wl7wypnvfiifij61",
            "no 32-character hash and name",
        ),
        (
            "/nix/store/8pw6ldf5phggkfj2wl7wypnvfiifije1-app",
            "the hash is not Nix's base 32",
        ),
        (
            "/nix/store/8pw6ldf5phggkfj2wl7wypnvfiifij61-a/b",
            "the name has a character Nix refuses",
        ),
    ] {
        let err = write_database(t.path(), &[info(path, 1, &[])], 1, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "nix database: {path:?} is not a store path ({why}); a store path is \
                 /nix/store/HASH-NAME"
            )
        );
    }
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_database_already_there_is_kept() {
    let t = tempfile::tempdir().unwrap();
    write_database(t.path(), &closure(), 1, None).unwrap();
    let db = t.path().join("nix/var/nix/db/db.sqlite");
    let before = fs::read(&db).unwrap();
    let err = write_database(t.path(), &[info(BB, 7, &[])], 2, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: a Nix database is already there; nixoci writes a new one only",
            t.path().join("nix/var/nix/db").display()
        )
    );
    assert_eq!(fs::read(&db).unwrap(), before);
}

#[test]
fn rows_are_in_path_order_with_ids_in_that_order() {
    let t = tempfile::tempdir().unwrap();
    write_database(t.path(), &closure(), 1_700_000_000, None).unwrap();
    let db = rusqlite::Connection::open(t.path().join("nix/var/nix/db/db.sqlite")).unwrap();
    let rows: Vec<(i64, String, String, i64, Option<String>, i64)> = db
        .prepare(
            "SELECT id, path, hash, registrationTime, deriver, narSize FROM ValidPaths ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let hash = |b: u8| format!("sha256:{}", hex::encode([b; 32]));
    assert_eq!(
        rows,
        [
            (1, BB.to_owned(), hash(3), 1_700_000_000, None, 103),
            (2, APP.to_owned(), hash(1), 1_700_000_000, None, 101),
            (3, LIB.to_owned(), hash(2), 1_700_000_000, None, 102),
        ]
    );
    let refs: Vec<(i64, i64)> = db
        .prepare("SELECT referrer, reference FROM Refs ORDER BY rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(refs, [(2, 1), (2, 3), (3, 3)]);
    let seq: i64 = db
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'ValidPaths'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(seq, 3, "the next path Nix adds gets id 4");
}

#[test]
fn only_the_files_nix_needs_are_written() {
    let t = tempfile::tempdir().unwrap();
    write_database(t.path(), &closure(), 1, None).unwrap();
    assert_eq!(
        files_below(t.path()),
        [
            "d 755 nix",
            "d 755 nix/var",
            "d 755 nix/var/nix",
            "d 755 nix/var/nix/db",
            "f 644 nix/var/nix/db/db.sqlite",
            "f 644 nix/var/nix/db/schema",
            "d 755 nix/var/nix/gcroots",
            "l 777 nix/var/nix/gcroots/profiles",
            "d 755 nix/var/nix/profiles",
        ]
    );
    assert_eq!(
        fs::read(t.path().join("nix/var/nix/db/schema")).unwrap(),
        b"10"
    );
    assert_eq!(
        fs::read_link(t.path().join("nix/var/nix/gcroots/profiles")).unwrap(),
        Path::new("/nix/var/nix/profiles")
    );
}

/// The bytes of the database of [`closure`] at registration time 1, as
/// the SQLite Cargo.lock pins writes them. A change here (a new SQLite, a
/// change of schema or order) changes the layer digest of every image with
/// a Nix database: make it on purpose only.
const GOLDEN: &str = "48e88ccd973a091ab06059fd58f63d524198630f2fb5ce2c3b8f9927d8f46401";

#[test]
fn the_database_bytes_are_the_golden_ones_and_the_header_is_fixed() {
    let t = tempfile::tempdir().unwrap();
    write_database(t.path(), &closure(), 1, None).unwrap();
    let bytes = fs::read(t.path().join("nix/var/nix/db/db.sqlite")).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), GOLDEN);
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(&bytes[..16], b"SQLite format 3\0");
    assert_eq!(
        u16::from_be_bytes([bytes[16], bytes[17]]),
        4096,
        "page size"
    );
    assert_eq!((bytes[18], bytes[19]), (1, 1), "rollback journal, not WAL");
    // The change counter and the version-valid-for number: fixed by the
    // sequence of writes alone, and equal (the header is valid).
    assert_eq!(be32(24), be32(92));
    assert_eq!(be32(24), 1, "file change counter: one transaction");
    assert_eq!(be32(32), 0, "no free page");
    assert_eq!(be32(36), 0, "free page count");
    assert_eq!(be32(56), 1, "UTF-8");
    assert_eq!(
        be32(96),
        rusqlite::version_number() as u32,
        "the writer's version"
    );
    assert_eq!(
        bytes.len() as u32,
        be32(28) * 4096,
        "the size the header says"
    );
}

#[test]
fn the_tree_lists_its_entries_with_the_owner_given() {
    let tree = DatabaseTree::write(&closure(), 1, Some((1000, 100))).unwrap();
    let entries = tree.entries().unwrap();
    let listed: Vec<(&str, u32, u32, u32)> = entries
        .iter()
        .map(|e| (e.path.as_str(), e.mode, e.uid, e.gid))
        .collect();
    assert_eq!(
        listed,
        [
            ("/nix", 0o755, 1000, 100),
            ("/nix/var", 0o755, 1000, 100),
            ("/nix/var/nix", 0o755, 1000, 100),
            ("/nix/var/nix/db", 0o755, 1000, 100),
            ("/nix/var/nix/db/db.sqlite", 0o644, 1000, 100),
            ("/nix/var/nix/db/schema", 0o644, 1000, 100),
            ("/nix/var/nix/gcroots", 0o755, 1000, 100),
            ("/nix/var/nix/gcroots/profiles", 0o777, 1000, 100),
            ("/nix/var/nix/profiles", 0o755, 1000, 100),
        ]
    );
    assert_eq!(
        entries[7].kind,
        EntryKind::Symlink("/nix/var/nix/profiles".into())
    );
    assert_eq!(
        entries[4].kind,
        EntryKind::File(tree.root().join("nix/var/nix/db/db.sqlite"))
    );
    let other = tempfile::tempdir().unwrap();
    write_database(other.path(), &closure(), 1, None).unwrap();
    assert_eq!(
        fs::read(tree.root().join("nix/var/nix/db/db.sqlite")).unwrap(),
        fs::read(other.path().join("nix/var/nix/db/db.sqlite")).unwrap()
    );
    let names: BTreeSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    assert_eq!(names.len(), entries.len());
}

#[test]
fn the_owner_given_owns_nix_and_everything_written() {
    use std::os::unix::fs::MetadataExt as _;
    let t = tempfile::tempdir().unwrap();
    write_database(t.path(), &closure(), 1, Some((1000, 100))).unwrap();
    let owners: Vec<(String, u32, u32)> = walkdir::WalkDir::new(t.path().join("nix"))
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let rel = e
                .path()
                .strip_prefix(t.path())
                .unwrap()
                .display()
                .to_string();
            (rel, m.uid(), m.gid())
        })
        .collect();
    assert_eq!(owners.len(), 9, "{owners:?}");
    for (path, uid, gid) in owners {
        assert_eq!((uid, gid), (1000, 100), "{path}");
    }
}

#[test]
fn a_database_read_back_gives_the_paths_written() {
    // Characters a SQLite URI gives a meaning to, in the directory's name.
    let t = tempfile::Builder::new()
        .prefix("a b?c#d%e&f=")
        .tempdir()
        .unwrap();
    let mut paths = closure();
    paths[2].deriver = Some("/nix/store/9rxyxbw3bvjyay50ajmmm3r7mkmzif28-app.drv".into());
    // A row's own registration time (kept from a base) is written as it is.
    paths[1].registration_time = Some(1_700_000_000);
    write_database(t.path(), &paths, 1, None).unwrap();
    let before = files_below(t.path());
    let mut sorted = paths.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for p in &mut sorted {
        p.registration_time = p.registration_time.or(Some(1));
    }
    assert_eq!(read_database(t.path()).unwrap(), sorted);
    assert_eq!(files_below(t.path()), before, "reading wrote nothing");
}

#[test]
fn a_database_with_a_write_ahead_log_is_refused() {
    let t = tempfile::tempdir().unwrap();
    write_database(t.path(), &closure(), 1, None).unwrap();
    let wal = t.path().join("nix/var/nix/db/db.sqlite-wal");
    fs::write(&wal, b"x").unwrap();
    assert_eq!(
        read_database(t.path()).unwrap_err().to_string(),
        format!(
            "{}: the Nix database has changes still in its write-ahead log; let Nix close it \
             (run any nix-store command on that store) and try again",
            wal.display()
        )
    );
}
