//! A Nix database for the store paths of an image, whose bytes depend on
//! nothing but the paths: what `nixDatabase` (issue 24) puts in an image
//! so that `nix` works in the container, as dockerTools' `includeNixDB`
//! and nix2container's `initializeNixDatabase` do with `nix-store
//! --load-db`, but reproducible.
//!
//! # What Nix 2.8 has, and what is written here
//!
//! Read from a store the host's Nix 2.8 made (`nix-store --store
//! 'local?root=DIR' --init`), and from what Nix 2.8 does when it opens a
//! local store:
//!
//! - `nix/var/nix/db/db.sqlite`: the database, SQLite, page size 4096,
//!   UTF-8. Its tables, indexes and trigger are those of Nix's
//!   `schema.sql` ([`sqlite::SCHEMA`], the same text in the same order, so
//!   `sqlite_master` and the root pages are Nix's own). Written.
//! - `nix/var/nix/db/schema`: the schema version as decimal text with no
//!   newline, `10` for Nix 2.8 (its `nixSchemaVersion`). Written: without
//!   it Nix takes the store for a new one, runs its `create ... if not
//!   exists` statements (no-ops here) and writes the file itself, which
//!   works only where the `db` directory is writable; with it, the
//!   database says which Nix it is for (an older schema is upgraded, a
//!   newer one refused).
//! - `nix/var/nix/db/big-lock` (empty) and `reserved` (8 MiB kept to free
//!   when the disk is full): made by Nix each time it opens the store. Not
//!   written: 8 MiB of nothing in a layer.
//! - `nix/var/nix/temproots`, `gc.lock`, `profiles/per-user/USER`,
//!   `gcroots/per-user/USER` and `nix/store/.links`: made by Nix when it
//!   opens the store (so `/nix/var/nix` and `/nix/store` must be writable
//!   by the user Nix runs as: `nixUid`). Not written: USER is not known
//!   here, and the rest is Nix's run-time state.
//! - `nix/var/nix/gcroots` and `nix/var/nix/profiles`: written, as the
//!   issue asks, and so is `gcroots/profiles`, a link to
//!   `/nix/var/nix/profiles`: Nix makes that link only when it makes
//!   `gcroots` itself, and without it the profiles are not roots of the
//!   garbage collector.
//! - No `-wal`, `-shm` or `-journal` file: the database is written in
//!   rollback-journal mode (`journal_mode=DELETE`), whose journal is gone
//!   when the transaction ends. Nix switches the file to WAL the first time
//!   it opens it (that needs the `db` directory writable, as Nix does
//!   anyway for `big-lock`).
//!
//! Each path's row holds its path, `hash` as Nix writes it in the database
//! (`sha256:` and base 16, not the base 32 `nix path-info` prints),
//! `narSize`, the registration time given (or the path's own, for a row
//! kept from a base image's database), and a deriver when given; the
//! `ultimate`, `sigs` and `ca` columns are NULL, as `nix-store --load-db`
//! leaves them when fed `nix-store --dump-db` (dockerTools' way):
//! `nix-store --verify --check-contents` needs none of them. `Refs` holds
//! the references, a path's reference to itself included, as Nix records
//! it. `DerivationOutputs` stays empty (no `.drv` goes into an image).
//!
//! A base image's database is read by [`read_database`] (read-only and
//! immutable, refusing one whose write-ahead log still holds changes), so
//! that its paths can be written again beside the image's: the database
//! is always written whole, never changed in place.
//!
//! # Same paths, same bytes
//!
//! - The registration time is a parameter (`SOURCE_DATE_EPOCH`, or 1), not
//!   the clock.
//! - Rows go in sorted by path, with ids 1, 2, ... in that order, and
//!   references sorted by (referrer, reference).
//! - The page size, encoding and vacuum mode (`auto_vacuum = NONE`) are
//!   set before the first page; then one transaction writes the schema
//!   and the rows, and nothing else. No `VACUUM`: the file is new and
//!   nothing is ever deleted from it, so it has no free pages or leftover
//!   bytes to drop, and `VACUUM` would rewrite `sqlite_master` (tables
//!   first, indexes and the trigger after) out of the order, and with
//!   other root pages than, the ones Nix makes.
//! - The SQLite that writes it is the one `Cargo.lock` pins (rusqlite's
//!   bundled SQLite), never the machine's: the header holds the writer's
//!   version, and the layout of pages may change between versions.
//! - Modes are set explicitly (directories 0755, files 0644, as Nix makes
//!   them), so the umask does not matter; owners are the ones given, or
//!   left to whoever writes.
//!
//! `tests/nixdb.rs` checks it with the host's Nix 2.8 (`--verify
//! --check-contents`, `-q --references`, `path-info --json`), compares the
//! schema with the one Nix makes, and builds the database twice in two
//! processes with different umasks.

mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext as _, Result};

/// The store directory the database's paths are in: the one Nix in an
/// image uses, since the database is at `/nix/var/nix/db`.
pub const STORE_DIR: &str = "/nix/store";

/// The schema version Nix 2.8 writes in `nix/var/nix/db/schema`.
pub const SCHEMA_VERSION: &str = "10";

/// The mode of the directories written, as Nix makes them.
const DIR_MODE: u32 = 0o755;
/// The mode of the files written, as Nix makes them.
const FILE_MODE: u32 = 0o644;

/// What the database records of one store path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePathInfo {
    /// `/nix/store/HASH-NAME`.
    pub path: String,
    /// The sha256 of its NAR.
    pub nar_hash: [u8; 32],
    /// The size of its NAR in bytes.
    pub nar_size: u64,
    /// The store paths it refers to (itself included, when it does), each
    /// one of the paths given to the database.
    pub references: BTreeSet<String>,
    /// The derivation that built it, when known (NULL otherwise).
    pub deriver: Option<String>,
    /// When it was registered, when known (a base image's row, kept as
    /// it is); else the registration time the database is written with.
    pub registration_time: Option<u64>,
}

impl StorePathInfo {
    /// The NAR hash as Nix writes it in the database: `sha256:` and base 16.
    pub fn db_hash(&self) -> String {
        format!("sha256:{}", hex::encode(self.nar_hash))
    }
}

/// Hash the store paths `paths` (each `/nix/store/HASH-NAME`) found as
/// `store/HASH-NAME`, where `store` is the directory holding them on this
/// machine (`/nix/store`, or an unpacked image's): each one's NAR hash and
/// size, and as references the paths of `paths` whose hash part its NAR
/// holds. That is what Nix records when it builds a path, since Nix scans
/// the output for the hash parts of the build's inputs, which the closure
/// holds. Sorted by path.
pub fn scan(store: &Path, paths: &[String]) -> Result<Vec<StorePathInfo>> {
    scan_among(store, paths, paths)
}

/// [`scan`] `paths`, taking as references the paths of `among` (which
/// need not be on this machine: only their hash parts are looked for)
/// whose hash part their NARs hold: for paths registered beside others
/// whose rows come from elsewhere (a base image's database). `paths` are
/// looked for too, so that a self-reference is found.
pub fn scan_among(store: &Path, paths: &[String], among: &[String]) -> Result<Vec<StorePathInfo>> {
    let names: BTreeSet<&str> = paths.iter().map(|p| store_name(p)).collect::<Result<_>>()?;
    let candidates: BTreeSet<&str> = among
        .iter()
        .map(|p| store_name(p))
        .collect::<Result<BTreeSet<&str>>>()?
        .union(&names)
        .copied()
        .collect();
    let by_hash: BTreeMap<&[u8], &str> = candidates
        .iter()
        .map(|n| (&n.as_bytes()[..32], *n))
        .collect();
    let wanted: HashSet<[u8; 32]> = candidates
        .iter()
        .map(|n| <[u8; 32]>::try_from(&n.as_bytes()[..32]).expect("checked: 32 bytes"))
        .collect();
    let dir = crate::rootfs::Dir::open_host(store)?;
    names
        .iter()
        .map(|name| {
            let info = crate::nar::info(&dir, std::ffi::OsStr::new(name), &wanted)?;
            Ok(StorePathInfo {
                path: format!("{STORE_DIR}/{name}"),
                nar_hash: info.hash,
                nar_size: info.size,
                references: info
                    .references
                    .iter()
                    .filter_map(|h| by_hash.get(h.as_slice()))
                    .map(|n| format!("{STORE_DIR}/{n}"))
                    .collect(),
                deriver: None,
                registration_time: None,
            })
        })
        .collect()
}

/// The name (`HASH-NAME`) of the store path `path`, or why it is not one:
/// `/nix/store/`, 32 characters of Nix's base 32, `-`, and a name of the
/// characters Nix allows (`A-Za-z0-9+-._?=`, not starting with `.`).
fn store_name(path: &str) -> Result<&str> {
    let bad = |why: &str| {
        Err(Error::Invalid(format!(
            "nix database: {path:?} is not a store path ({why}); a store path is \
             {STORE_DIR}/HASH-NAME"
        )))
    };
    let Some(name) = path
        .strip_prefix(STORE_DIR)
        .and_then(|n| n.strip_prefix('/'))
    else {
        return bad(&format!("not in {STORE_DIR}"));
    };
    let b = name.as_bytes();
    if b.len() < 34 || b[32] != b'-' {
        return bad("no 32-character hash and name");
    }
    let base32 = |c: &u8| b"0123456789abcdfghijklmnpqrsvwxyz".contains(c);
    if !b[..32].iter().all(base32) {
        return bad("the hash is not Nix's base 32");
    }
    let allowed = |c: &u8| c.is_ascii_alphanumeric() || b"+-._?=".contains(c);
    if b[33] == b'.' || !b[33..].iter().all(allowed) {
        return bad("the name has a character Nix refuses");
    }
    Ok(name)
}

/// `paths` sorted by path, or the first reason Nix would not take them:
/// not a store path, given twice, or a reference (or deriver) that is not
/// a store path, or a reference that is not among them.
fn checked(paths: &[StorePathInfo]) -> Result<Vec<StorePathInfo>> {
    let mut sorted: Vec<StorePathInfo> = paths.to_vec();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for pair in sorted.windows(2) {
        if pair[0].path == pair[1].path {
            return Err(Error::NixDbDuplicate {
                path: pair[0].path.clone(),
            });
        }
    }
    let known: BTreeSet<&str> = sorted.iter().map(|p| p.path.as_str()).collect();
    for p in &sorted {
        store_name(&p.path)?;
        if let Some(d) = &p.deriver {
            store_name(d)?;
        }
        for r in &p.references {
            store_name(r)?;
            if !known.contains(r.as_str()) {
                return Err(Error::NixDbReference {
                    path: p.path.clone(),
                    reference: r.clone(),
                });
            }
        }
    }
    Ok(sorted)
}

/// Write the Nix database of `paths` under `root`, as `root/nix/var/nix`
/// holds it in a store rooted at `root` (see the module docs for what is
/// written and why): `registration_time` (`SOURCE_DATE_EPOCH`, or 1) in
/// every row that has none of its own, `root/nix` and the directories below it given mode 0755 and the
/// files 0644 whatever the umask, and, when `owner` is given, `(uid, gid)`
/// as the owner of `root/nix` and of everything written (else the
/// writer's). Refuses, writing nothing, paths Nix would not take and a
/// database already there.
pub fn write_database(
    root: &Path,
    paths: &[StorePathInfo],
    registration_time: u64,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let sorted = checked(paths)?;
    let state = root.join("nix/var/nix");
    let db_dir = state.join("db");
    let file = db_dir.join("db.sqlite");
    if fs::symlink_metadata(&file).is_ok() || fs::symlink_metadata(db_dir.join("schema")).is_ok() {
        return Err(Error::Invalid(format!(
            "{}: a Nix database is already there; nixoci writes a new one only",
            db_dir.display()
        )));
    }
    let dirs = [
        root.join("nix"),
        root.join("nix/var"),
        state.clone(),
        db_dir.clone(),
        state.join("gcroots"),
        state.join("profiles"),
    ];
    for d in &dirs {
        fs::create_dir_all(d).at(d)?;
        fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE)).at(d)?;
    }
    // Under a name of its own until complete: a failure leaves no
    // database Nix would take for one.
    let partial = db_dir.join(".db.sqlite.partial");
    let journal = db_dir.join(".db.sqlite.partial-journal");
    // What an earlier write that was stopped left: SQLite would go on
    // from it (and roll back a journal), not start anew.
    for stale in [&partial, &journal] {
        match fs::remove_file(stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(stale, e)),
            _ => {}
        }
    }
    let written = sqlite::write(&partial, &sorted, registration_time).and_then(|()| {
        fs::set_permissions(&partial, fs::Permissions::from_mode(FILE_MODE)).at(&partial)
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(&journal);
        return Err(e);
    }
    fs::rename(&partial, &file).at(&file)?;
    let schema = db_dir.join("schema");
    fs::write(&schema, SCHEMA_VERSION).at(&schema)?;
    fs::set_permissions(&schema, fs::Permissions::from_mode(FILE_MODE)).at(&schema)?;
    let link = state.join("gcroots/profiles");
    if fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("/nix/var/nix/profiles", &link).at(&link)?;
    }
    if let Some((uid, gid)) = owner {
        for p in dirs.iter().chain([&file, &schema, &link]) {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid)).at(p)?;
        }
    }
    Ok(())
}

/// The store paths of the Nix database `root/nix/var/nix/db/db.sqlite`
/// (a base image's unpacked tree), to write them again with others: path,
/// NAR hash and size, references, deriver and registration time, sorted
/// by path. Nothing
/// under `root` changes (the file is opened read-only and immutable).
/// Their `ultimate`, `sigs` and `ca` are not kept, as [`write_database`]
/// writes none.
pub fn read_database(root: &Path) -> Result<Vec<StorePathInfo>> {
    let file = root.join("nix/var/nix/db/db.sqlite");
    fs::symlink_metadata(&file).at(&file)?;
    // Read as immutable, SQLite would not see what a write-ahead log
    // holds: refuse rather than miss paths.
    let wal = root.join("nix/var/nix/db/db.sqlite-wal");
    if fs::symlink_metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(Error::Invalid(format!(
            "{}: the Nix database has changes still in its write-ahead log; \
             let Nix close it (run any nix-store command on that store) and try again",
            wal.display()
        )));
    }
    sqlite::read(&file)
}

/// A Nix database written into a temporary directory of its own, to be
/// put into a layer: its [`entries`](DatabaseTree::entries) are what a
/// layer adds under `/`. Removed when dropped.
#[derive(Debug)]
pub struct DatabaseTree {
    dir: tempfile::TempDir,
    owner: (u32, u32),
}

/// What an entry of a [`DatabaseTree`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A file, whose bytes are at this path of this machine.
    File(PathBuf),
    /// A symbolic link to this target.
    Symlink(PathBuf),
}

/// One entry of a [`DatabaseTree`], as a layer holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its absolute path in the image (`/nix/var/nix/db/db.sqlite`).
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its permission bits.
    pub mode: u32,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
}

impl DatabaseTree {
    /// Write the database of `paths` (see [`write_database`]) into a new
    /// temporary directory; `owner` is recorded in the entries (default
    /// `0:0`), not given to the files, so that writing needs no privilege.
    pub fn write(
        paths: &[StorePathInfo],
        registration_time: u64,
        owner: Option<(u32, u32)>,
    ) -> Result<DatabaseTree> {
        let dir = tempfile::Builder::new()
            .prefix(".nixoci-nixdb-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        write_database(dir.path(), paths, registration_time, None)?;
        Ok(DatabaseTree {
            dir,
            owner: owner.unwrap_or((0, 0)),
        })
    }

    /// The directory it is written in (`nix/` is below it).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Every entry below `/nix` (`/nix` itself included), in path order,
    /// with the modes written and the owner given.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let (uid, gid) = self.owner;
        let mut out = Vec::new();
        let top = self.dir.path().join("nix");
        for e in walkdir::WalkDir::new(&top).sort_by_file_name() {
            let e = e.map_err(|e| {
                let path = e.path().unwrap_or(&top).to_owned();
                Error::io(path, e.into())
            })?;
            let rel = e
                .path()
                .strip_prefix(self.dir.path())
                .expect("below the root");
            let meta = e.path().symlink_metadata().at(e.path())?;
            let kind = if meta.is_dir() {
                EntryKind::Directory
            } else if meta.file_type().is_symlink() {
                EntryKind::Symlink(fs::read_link(e.path()).at(e.path())?)
            } else {
                EntryKind::File(e.path().to_owned())
            };
            out.push(Entry {
                path: format!("/{}", rel.display()),
                kind,
                mode: meta.permissions().mode() & 0o7777,
                uid,
                gid,
            });
        }
        Ok(out)
    }
}
