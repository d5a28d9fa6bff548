//! A layer's `nixDatabase` (with `nixUid`, `nixGid`): a Nix database
//! ([`crate::nixdb`]) that registers every store path of the image up to
//! and with this layer, put into the layer with `/nix` owned by the user
//! single-user Nix runs as.
//!
//! - The paths: those the layer places at their own path, those of the
//!   image's layers below it and of the layer's `base` layer directories
//!   (the set the layer leaves out because they are there already), and
//!   the base image's (`fromImage`); less those the layer removes.
//! - Each path's row: as the base image's own database has it, when it
//!   lists the path (the base knows best, and its paths need not be on this
//!   machine); else from this machine's store (NAR hash and size, and as
//!   references the image's paths whose hash part its NAR holds). A path
//!   neither lists is an error naming it and where it comes from. Rows of
//!   the base's database for paths the image no longer holds are dropped
//!   (Nix would take them as valid and missing); a kept row that refers to
//!   one is an error.
//! - The entries: `/nix`, `/nix/var`, `/nix/var/nix`, its `db` (with
//!   `db.sqlite` and `schema`), `gcroots` (with the link `profiles`) and
//!   `profiles`, and `/nix/store`, all owned by `nixUid:nixGid` (default
//!   `0:0`), directories 0755 and files 0644, whatever the base or the
//!   layer's other entries had (store paths' own files keep theirs). They
//!   are added after `perms`, which so cannot change them. Anything else
//!   the layer places at `/nix/var/nix/db` or below is refused; the base's
//!   `db.sqlite-wal`, `-shm` and `-journal` are removed (whiteouts), since
//!   SQLite would apply them to the new file.
//! - The registration time: `SOURCE_DATE_EPOCH` when set, else 1, as the
//!   layer's mtimes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::info::base_store_paths;
use super::onto::Onto;
use crate::base::tree::Node;
use crate::error::{Error, IoContext as _, Result};
use crate::layer::compress::Compression;
use crate::layer::tree::{Entry, Kind, Tree};
use crate::nixdb::{self, DatabaseTree, EntryKind, StorePathInfo};
use crate::spec::{self, LayerSpec};

/// The database's directory in the image (no leading `/`).
const DB_DIR: &[u8] = b"nix/var/nix/db";
/// The database file in the image.
const DB_FILE: &[u8] = b"nix/var/nix/db/db.sqlite";
/// Files beside a base's database that SQLite would read with a new one.
const SIDE_FILES: [&str; 3] = ["db.sqlite-wal", "db.sqlite-shm", "db.sqlite-journal"];
/// Directories the database shares with the rest of the image: another
/// entry may place them too, with the same mode and owner.
const SHARED_DIRS: [&[u8]; 4] = [b"nix", b"nix/store", b"nix/var", b"nix/var/nix"];
/// How messages and conflicts name the entries written here.
const ORIGIN: &str = "nixDatabase";

/// Put the Nix database the layer spec `spec` asks for (`nixDatabase`)
/// into `tree`: `below` holds the store paths of the layers under it (the
/// image's and its `base` directories'), `onto` the base image. Refuses
/// `nixUid`/`nixGid` without `nixDatabase`. Does nothing when not asked.
pub fn add_database(
    spec: &LayerSpec,
    spec_path: &Path,
    tree: &mut Tree,
    below: &BTreeSet<PathBuf>,
    onto: Option<&Onto>,
) -> Result<()> {
    if !spec.nix_database {
        if spec.nix_uid.is_some() || spec.nix_gid.is_some() {
            return Err(Error::Invalid(
                "\"nixUid\" and \"nixGid\" go with \"nixDatabase\" (they own /nix and its \
                 database): set \"nixDatabase\": true, or leave them out"
                    .into(),
            ));
        }
        return Ok(());
    }
    let store = crate::nix::store_dir();
    if store != Path::new(nixdb::STORE_DIR) {
        return Err(Error::Invalid(format!(
            "nixDatabase: the Nix store here is {}, but a database in an image is for {}: \
             build with the store at {}",
            store.display(),
            nixdb::STORE_DIR,
            nixdb::STORE_DIR
        )));
    }
    refuse_own_database(tree)?;
    let origins = origins(spec, spec_path, tree, below, onto)?;
    let base_rows = match onto {
        Some(o) => base_database(o)?,
        None => Vec::new(),
    };
    let rows = rows(&store, &origins, base_rows)?;
    let time = crate::oci::time::default_mtime()?;
    let owner = (spec.nix_uid.unwrap_or(0), spec.nix_gid.unwrap_or(0));
    let db = DatabaseTree::write(&rows, time, Some(owner)).map_err(|e| e.within(ORIGIN))?;
    if let Some(o) = onto {
        for name in SIDE_FILES {
            let rel = [DB_DIR, b"/", name.as_bytes()].concat();
            if o.tree.get(&rel).is_some() {
                tree.add_whiteout(&format!("/{}", String::from_utf8_lossy(&rel)))?;
            }
        }
    }
    for e in db.entries()? {
        // Small files, read now: the temporary directory goes with `db`.
        let (kind, inline) = match e.kind {
            EntryKind::Directory => (Kind::Dir, None),
            EntryKind::Symlink(t) => (Kind::Symlink(t.as_os_str().as_bytes().to_vec()), None),
            EntryKind::File(f) => {
                let bytes = fs::read(&f).at(&f)?;
                let size = bytes.len() as u64;
                (
                    Kind::File {
                        size,
                        link_key: None,
                    },
                    Some(Arc::from(bytes)),
                )
            }
        };
        put(
            tree,
            e.path.trim_start_matches('/').as_bytes().to_vec(),
            entry(kind, e.mode, owner, inline),
        )?;
    }
    put(
        tree,
        b"nix/store".to_vec(),
        entry(Kind::Dir, 0o755, owner, None),
    )
}

/// An entry written for the database.
fn entry(kind: Kind, mode: u32, (uid, gid): (u32, u32), inline: Option<Arc<[u8]>>) -> Entry {
    Entry {
        kind,
        mode,
        uid: uid.into(),
        gid: gid.into(),
        origin: PathBuf::from(ORIGIN),
        implicit: false,
        removes: None,
        inline,
        declared: true,
    }
}

/// How a message names the layer's entry `e`.
fn describe(e: &Entry) -> String {
    if let Some(r) = &e.removes {
        format!("the whiteout removing {r}")
    } else if e.implicit {
        format!("a parent directory made for {}", e.origin.display())
    } else {
        e.origin.display().to_string()
    }
}

/// The layer may place nothing at `/nix/var/nix/db` or below: the
/// database is written whole there.
fn refuse_own_database(tree: &Tree) -> Result<()> {
    let under = [DB_DIR, b"/"].concat();
    for (path, e) in &tree.entries {
        if (path == DB_DIR && !e.implicit) || path.starts_with(&under) {
            return Err(Error::Invalid(format!(
                "/{}: {} places it, and nixDatabase writes the Nix database at /{}: \
                 leave /{} out of the layer, or drop nixDatabase",
                String::from_utf8_lossy(path),
                describe(e),
                String::from_utf8_lossy(DB_DIR),
                String::from_utf8_lossy(DB_DIR),
            )));
        }
    }
    Ok(())
}

/// Put the database's entry `new` at `path`: over a parent nobody asked
/// for, or, for the directories the database shares with the image
/// (`/nix`, `/nix/store`, ...), beside the same directory; anything else
/// there is an error naming both.
fn put(tree: &mut Tree, path: Vec<u8>, new: Entry) -> Result<()> {
    if let Some(old) = tree.entries.get(&path) {
        let same = old.kind == new.kind
            && (old.mode, old.uid, old.gid) == (new.mode, new.uid, new.gid)
            && SHARED_DIRS.contains(&path.as_slice());
        let over_parent = old.implicit && old.kind == Kind::Dir && new.kind == Kind::Dir;
        if !same && !over_parent {
            return Err(Error::Invalid(format!(
                "/{}: {} places it, and nixDatabase makes it {} {:04o} owned by {}:{} \
                 (nixUid:nixGid): leave it to nixDatabase, or give it the same kind, mode \
                 and owner",
                String::from_utf8_lossy(&path),
                describe(old),
                match new.kind {
                    Kind::Dir => "a directory",
                    Kind::Symlink(_) => "a symbolic link",
                    Kind::File { .. } => "a file",
                },
                new.mode,
                new.uid,
                new.gid
            )));
        }
    }
    tree.entries.insert(path, new);
    Ok(())
}

/// Every store path of the image up to the layer, each with where it comes
/// from, for messages: the layer's own, its `base` directories', the base
/// image's (which layer), the image's layers below; less what the layer
/// removes.
fn origins(
    spec: &LayerSpec,
    spec_path: &Path,
    tree: &Tree,
    below: &BTreeSet<PathBuf>,
    onto: Option<&Onto>,
) -> Result<BTreeMap<PathBuf, String>> {
    let mut out: BTreeMap<PathBuf, String> = below
        .iter()
        .map(|p| (p.clone(), "a layer below this one in the image".to_owned()))
        .collect();
    let dir = spec::base_dir(spec_path);
    for d in &spec.base {
        for p in base_store_paths(&dir, std::slice::from_ref(d))? {
            out.insert(
                p,
                format!("base layer {}", spec::resolve(&dir, d).display()),
            );
        }
    }
    if let Some(o) = onto {
        for p in o.store_paths() {
            let rel = p.as_os_str().as_bytes().strip_prefix(b"/").unwrap_or(b"");
            let from = match o.tree.layer_of(rel) {
                Some(i) => format!(
                    "the {}'s layer {} ({})",
                    o.image.source,
                    i + 1,
                    o.image.layers[i].0.digest.short()
                ),
                None => format!("the {}", o.image.source),
            };
            out.insert(p, from);
        }
    }
    for p in &tree.store_paths {
        out.insert(p.clone(), "this layer".to_owned());
    }
    // What is not a store path's name (Nix's `.links`) is no store path.
    let store = Path::new(nixdb::STORE_DIR);
    out.retain(|p, _| crate::nix::check_store_path(&p.to_string_lossy(), store).is_ok());
    for r in tree.removed() {
        let under = [r.as_slice(), b"/"].concat();
        out.retain(|p, _| {
            let rel = p.as_os_str().as_bytes().strip_prefix(b"/").unwrap_or(b"");
            rel != r.as_slice() && !rel.starts_with(&under)
        });
    }
    Ok(out)
}

/// The database's rows for the paths of `origins`: the base's rows of
/// those it lists, the others scanned in `store`.
fn rows(
    store: &Path,
    origins: &BTreeMap<PathBuf, String>,
    base_rows: Vec<StorePathInfo>,
) -> Result<Vec<StorePathInfo>> {
    let all: Vec<String> = origins.keys().map(|p| p.display().to_string()).collect();
    let wanted: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    let kept: Vec<StorePathInfo> = base_rows
        .into_iter()
        .filter(|r| wanted.contains(r.path.as_str()))
        .collect();
    let listed: BTreeSet<&str> = kept.iter().map(|r| r.path.as_str()).collect();
    let to_scan: Vec<String> = all
        .iter()
        .filter(|p| !listed.contains(p.as_str()))
        .cloned()
        .collect();
    let missing: Vec<String> = to_scan
        .iter()
        .filter(|p| fs::symlink_metadata(p).is_err())
        .map(|p| format!("{p} (from {})", origins[Path::new(p)]))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "nixDatabase: {} store path{} of the image {} not on this machine, and no base \
             image's Nix database lists {}: {}; the database needs each path's NAR hash and \
             references: build or fetch {} here first (`nix-store --realise PATH`; in Nix, \
             make the closure an input of the build), or build on a base image whose Nix \
             database lists {}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            if missing.len() == 1 { "is" } else { "are" },
            if missing.len() == 1 { "it" } else { "them" },
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
            if missing.len() == 1 { "it" } else { "them" },
        )));
    }
    // Looked for as references too: the paths of this machine's store, so
    // that a path referring to one the image lacks is refused (by
    // `nixdb`, naming both) rather than registered without it.
    let mut among = all.clone();
    among.extend(machine_paths(store)?);
    let mut rows = nixdb::scan_among(store, &to_scan, &among).map_err(|e| e.within(ORIGIN))?;
    rows.extend(kept);
    Ok(rows)
}

/// The store paths of this machine's `store` (in a Nix build, those of its
/// inputs), `.drv` files left out: nothing in an image refers to one.
fn machine_paths(store: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in fs::read_dir(store).at(store)? {
        let name = e.at(store)?.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = format!("{}/{name}", store.display());
        if !name.ends_with(".drv") && crate::nix::check_store_path(&path, store).is_ok() {
            out.push(path);
        }
    }
    Ok(out)
}

/// The rows of the base image's Nix database, when it has one.
fn base_database(o: &Onto) -> Result<Vec<StorePathInfo>> {
    let Some(node) = o.tree.get(DB_FILE) else {
        return Ok(Vec::new());
    };
    let layer = o.tree.layer_of(DB_FILE).unwrap_or(0);
    let what = format!(
        "the {}'s Nix database (/{}, its layer {})",
        o.image.source,
        String::from_utf8_lossy(DB_FILE),
        layer + 1
    );
    if *node != Node::File {
        return Err(Error::Invalid(format!(
            "{what}: it is {}, not a file; nixDatabase reads a base's database to keep its \
             rows",
            node.noun()
        )));
    }
    let dir = tempfile::Builder::new()
        .prefix(".nixoci-basedb-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let db_dir = dir.path().join("nix/var/nix/db");
    fs::create_dir_all(&db_dir).at(&db_dir)?;
    extract(o, DB_FILE, &db_dir.join("db.sqlite")).map_err(|e| e.within(what.clone()))?;
    let wal = [DB_DIR, b"/db.sqlite-wal"].concat();
    if o.tree.get(&wal) == Some(&Node::File) {
        extract(o, &wal, &db_dir.join("db.sqlite-wal")).map_err(|e| e.within(what.clone()))?;
    }
    nixdb::read_database(dir.path()).map_err(|e| e.within(what))
}

/// Copy the file `rel` of the base image (as the layer that last put it
/// there holds it; a hard link's target read in its stead) to `out`.
fn extract(o: &Onto, rel: &[u8], out: &Path) -> Result<()> {
    let layer = o.tree.layer_of(rel).unwrap_or(0);
    let (desc, _) = &o.image.layers[layer];
    let mut wanted = rel.to_vec();
    // A hard link names a file of the same layer, read on a second pass.
    for _ in 0..2 {
        let compression =
            Compression::from_layer_media_type(&desc.media_type).ok_or_else(|| {
                Error::Invalid(format!(
                    "media type {:?} is not a tar layer",
                    desc.media_type
                ))
            })?;
        let unreadable = |e: String| {
            Error::Invalid(format!(
                "layer {} ({}): {e}",
                layer + 1,
                desc.digest.short()
            ))
        };
        let blob = o.image.blobs.open(desc)?;
        let stream = compression
            .decoder(blob)
            .map_err(|e| unreadable(e.to_string()))?;
        let mut archive = crate::untar::archive(stream);
        let mut link = None;
        let mut found = false;
        for entry in archive.entries().map_err(|e| unreadable(e.to_string()))? {
            let mut entry = entry.map_err(|e| unreadable(e.to_string()))?;
            let meta = crate::untar::EntryMeta::read(&mut entry).map_err(unreadable)?;
            if crate::untar::normalise(&meta.path) != wanted {
                continue;
            }
            found = true;
            if meta.kind == tar::EntryType::Link {
                link = meta.link.as_deref().map(crate::untar::normalise);
                continue;
            }
            link = None;
            let mut file = fs::File::create(out).at(out)?;
            meta.copy_content(&mut entry, Some(&mut file))
                .map_err(unreadable)?;
        }
        match link {
            Some(target) if found => wanted = target,
            _ if found => return Ok(()),
            _ => break,
        }
    }
    Err(Error::Invalid(format!(
        "layer {} ({}) does not hold /{} as a file",
        layer + 1,
        desc.digest.short(),
        String::from_utf8_lossy(rel)
    )))
}
