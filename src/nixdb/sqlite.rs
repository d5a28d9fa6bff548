//! The SQLite file of a Nix database, `nix/var/nix/db/db.sqlite`: Nix
//! 2.8's schema, byte for byte as Nix's own `schema.sql` leaves it in
//! `sqlite_master` (dumped from a store `nix-store --init` made), and the
//! rows, written so that the same rows give the same bytes.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};

use super::StorePathInfo;
use crate::error::{Error, Result};

/// The tables, indexes and trigger of Nix 2.8's `schema.sql`, in its
/// order: SQLite keeps each statement's text (comments included) in
/// `sqlite_master`, and gives each table and index its root page in the
/// order they are made, so the same text in the same order gives the file
/// Nix itself would start from. Checked against a store Nix made in
/// `tests/nixdb.rs`.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer, -- null implies "false"
    sigs             text, -- space-separated
    ca               text -- if not null, an assertion that the path is content-addressed; see ValidPathInfo
);

CREATE TABLE Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);

CREATE INDEX IndexReferrer on Refs(referrer);
CREATE INDEX IndexReference on Refs(reference);

CREATE TRIGGER DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;

CREATE TABLE DerivationOutputs (
    drv  integer not null,
    id   text not null, -- symbolic output id, usually "out"
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);

CREATE INDEX IndexDerivationOutputs on DerivationOutputs(path);
"#;

/// The page size Nix 2.8's database has (SQLite's default, set here so
/// that a different default in a later SQLite does not change the bytes).
pub(super) const PAGE_SIZE: u32 = 4096;

/// Write the database of `paths` (sorted by path, checked) at `file`,
/// which must not exist. Ids are 1, 2, ... in path order; references are
/// inserted by (referrer id, reference id); one transaction, in
/// rollback-journal mode (`DELETE`: the journal is gone when
/// the transaction ends, and no `-wal` or `-shm` file is ever made).
pub(super) fn write(file: &Path, paths: &[StorePathInfo], registration_time: u64) -> Result<()> {
    let err = |e: rusqlite::Error| {
        Error::Invalid(format!(
            "{}: cannot write the Nix database: {e}",
            file.display()
        ))
    };
    let time = i64::try_from(registration_time).map_err(|_| {
        Error::Invalid(format!(
            "registration time {registration_time} is past SQLite's integers (at most {})",
            i64::MAX
        ))
    })?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut db = Connection::open_with_flags(file, flags).map_err(err)?;
    // Before the first table: the page size, encoding and vacuum mode are
    // fixed when the file gets its first page.
    db.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE};
         PRAGMA encoding = 'UTF-8';
         PRAGMA auto_vacuum = NONE;
         PRAGMA journal_mode = DELETE;
         PRAGMA foreign_keys = ON;"
    ))
    .map_err(err)?;
    let ids: std::collections::BTreeMap<&str, i64> = paths
        .iter()
        .zip(1..)
        .map(|(p, id)| (p.path.as_str(), id))
        .collect();
    let tx = db.transaction().map_err(err)?;
    tx.execute_batch(SCHEMA).map_err(err)?;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO ValidPaths (id, path, hash, registrationTime, deriver, narSize)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(err)?;
        for p in paths {
            let size = i64::try_from(p.nar_size).map_err(|_| {
                Error::Invalid(format!(
                    "{}: NAR size {} is past SQLite's integers",
                    p.path, p.nar_size
                ))
            })?;
            insert
                .execute(params![
                    ids[p.path.as_str()],
                    p.path,
                    p.db_hash(),
                    match p.registration_time {
                        Some(t) => i64::try_from(t).map_err(|_| {
                            Error::Invalid(format!(
                                "{}: registration time {t} is past SQLite's integers",
                                p.path
                            ))
                        })?,
                        None => time,
                    },
                    p.deriver,
                    size
                ])
                .map_err(err)?;
        }
        let mut refer = tx
            .prepare("INSERT INTO Refs (referrer, reference) VALUES (?1, ?2)")
            .map_err(err)?;
        for p in paths {
            let mut refs: Vec<i64> = p.references.iter().map(|r| ids[r.as_str()]).collect();
            refs.sort_unstable();
            for r in refs {
                refer
                    .execute(params![ids[p.path.as_str()], r])
                    .map_err(err)?;
            }
        }
    }
    // No VACUUM: the file is new and nothing is deleted, so it has no
    // free page or leftover bytes to drop, and VACUUM would rewrite
    // `sqlite_master` tables first, indexes and trigger after, no longer
    // in the order (and with root pages unlike those) Nix makes.
    tx.commit().map_err(err)?;
    db.close().map_err(|(_, e)| err(e))?;
    Ok(())
}

/// The store paths a Nix database at `file` holds (a base image's, to keep
/// them): path, NAR hash and size, references, deriver and registration
/// time, sorted by path. The columns the database written here leaves NULL (`ultimate`,
/// `sigs`, `ca`) are not read. Opened read-only and immutable, so that
/// neither the file nor its directory changes (no journal, no WAL).
pub(super) fn read(file: &Path) -> Result<Vec<StorePathInfo>> {
    let err = |e: rusqlite::Error| {
        Error::Invalid(format!(
            "{}: cannot read it as a Nix database: {e}",
            file.display()
        ))
    };
    let uri = format!(
        "file:{}?immutable=1",
        file.display()
            .to_string()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = Connection::open_with_flags(uri, flags).map_err(err)?;
    let mut rows = db
        .prepare(
            "SELECT id, path, hash, narSize, deriver, registrationTime FROM ValidPaths \
             ORDER BY path",
        )
        .map_err(err)?;
    let mut by_id = std::collections::BTreeMap::new();
    let mut paths = Vec::new();
    let found = rows
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })
        .map_err(err)?;
    for row in found {
        let (id, path, hash, size, deriver, time) = row.map_err(err)?;
        let nar_hash = hash
            .strip_prefix("sha256:")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: {path} has hash {hash:?}, not sha256: and 64 hex digits as Nix writes it",
                    file.display()
                ))
            })?;
        by_id.insert(id, paths.len());
        paths.push(StorePathInfo {
            path,
            nar_hash,
            nar_size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            references: Default::default(),
            deriver,
            registration_time: time.and_then(|t| u64::try_from(t).ok()),
        });
    }
    let mut refs = db
        .prepare("SELECT referrer, reference FROM Refs")
        .map_err(err)?;
    let pairs = refs
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .map_err(err)?;
    for pair in pairs {
        let (from, to) = pair.map_err(err)?;
        let (Some(&from), Some(&to)) = (by_id.get(&from), by_id.get(&to)) else {
            return Err(Error::Invalid(format!(
                "{}: a reference from id {from} to id {to} names a path the database does not hold",
                file.display()
            )));
        };
        let target = paths[to].path.clone();
        paths[from].references.insert(target);
    }
    Ok(paths)
}
