//! Sources to a sorted tree of layer entries: what a layer holds, decided
//! before a byte is written, so the tar that follows depends on nothing else.
//!
//! The tree holds metadata only (file contents stay on disk until the tar
//! writer streams them), keyed by the byte string of the path without its
//! leading `/`, so iteration is in byte order whatever the directory read
//! order, locale or spec order. Everything that can make two builds differ is
//! normalised here: modes (Nix style: files 0444/0555, directories 0555,
//! symlinks 0777), owners (0:0) and which files are hard links.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file whose bytes are read from `Entry::origin` when the tar
    /// is written. `link_key` is (device, inode) for a file outside the store
    /// with more than one link: files sharing a key become tar hard links.
    File {
        size: u64,
        link_key: Option<(u64, u64)>,
    },
    Symlink(Vec<u8>),
}

/// One path of the layer.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Where it came from on disk (for files: where the bytes are read; for
    /// implicit parents: the source that needed them).
    pub origin: PathBuf,
    /// A parent directory nobody asked for: any explicit directory replaces it.
    pub implicit: bool,
    /// For a whiteout: the path it removes, as the spec gave it.
    pub removes: Option<String>,
    /// For an inline file (`text`): its bytes, written instead of reading
    /// `origin` (which then names the spec entry).
    pub inline: Option<Arc<[u8]>>,
    /// A directory of the `directories` list: its mode and owner win over
    /// any other directory placed at its path.
    pub declared: bool,
}

impl Entry {
    /// Where the entry came from, for messages.
    fn describe(&self) -> String {
        if let Some(r) = &self.removes {
            format!("the whiteout removing {r}")
        } else if self.implicit {
            format!("a parent directory made for {}", self.origin.display())
        } else {
            self.origin.display().to_string()
        }
    }
}

/// The resolved content of a layer.
#[derive(Debug, Default)]
pub struct Tree {
    pub entries: BTreeMap<Vec<u8>, Entry>,
    /// Store paths placed whole at their own path.
    pub store_paths: BTreeSet<PathBuf>,
    store_dir: PathBuf,
    /// Store paths to leave out (held by the base layers).
    exclude: BTreeSet<PathBuf>,
    /// Outputs being written or replaced: no source may contain one (a
    /// source inside one is refused before, by `Staging`).
    protect: Vec<PathBuf>,
    /// Paths removed by whiteouts.
    removed: Vec<Vec<u8>>,
}

/// How one source is placed.
#[derive(Clone, Debug, Default)]
pub struct Placement<'a> {
    pub destination: Option<&'a str>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Files and symlinks become symlinks to their source (in the store).
    pub link: bool,
}

/// Why a relative source without destination is refused.
pub const RELATIVE_WITHOUT_DESTINATION: &str = "a relative source needs a destination (it would otherwise land at a path that depends on where the spec lives)";

/// Implicit parent directories: 0755, root.
const PARENT_MODE: u32 = 0o755;

/// The name prefix of an OCI whiteout.
const WHITEOUT: &str = ".wh.";

/// The entry of a whiteout deleting `dest`: an empty file (read from
/// `/dev/null`), 0644, root.
fn whiteout_entry(dest: &str) -> Entry {
    Entry {
        kind: Kind::File {
            size: 0,
            link_key: None,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
        origin: PathBuf::from("/dev/null"),
        implicit: false,
        removes: Some(dest.to_owned()),
        inline: None,
        declared: false,
    }
}

/// Nix's base-32 alphabet, the characters of a store path's hash part.
pub(crate) const BASE32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Length of a store path's hash part.
pub(crate) const HASH_LEN: usize = 32;

/// The name of a store path without its hash part (`motd` for
/// `<hash>-motd`), or None when `name` does not start with one.
pub(crate) fn name_without_hash(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let hashed = bytes.len() > HASH_LEN + 1
        && bytes[..HASH_LEN].iter().all(|c| BASE32.contains(c))
        && bytes[HASH_LEN] == b'-';
    hashed.then(|| &name[HASH_LEN + 1..])
}

/// `parent/child` as layer-relative path bytes (`child` alone at the root).
pub(crate) fn join(parent: &[u8], child: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        child.to_vec()
    } else {
        let mut v = Vec::with_capacity(parent.len() + 1 + child.len());
        v.extend_from_slice(parent);
        v.push(b'/');
        v.extend_from_slice(child);
        v
    }
}

/// `/path` for messages (lossy for non-UTF-8 names).
pub fn display(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

impl Tree {
    /// An empty tree; store paths in `exclude` are left out when added at
    /// their own path.
    pub fn new(store_dir: PathBuf, exclude: BTreeSet<PathBuf>) -> Self {
        Tree {
            store_dir,
            exclude,
            ..Default::default()
        }
    }

    /// Refuse sources that contain one of `outputs` (canonical paths of
    /// directories being written or replaced): the layer would hold its own
    /// partial output.
    pub fn protect(&mut self, outputs: &[PathBuf]) {
        self.protect = outputs.to_vec();
    }

    /// Add a store path of a closure at its own path: it must be a whole
    /// store path (`STORE/hash-name`), not a file inside one or a path
    /// elsewhere.
    pub fn add_store_path(&mut self, path: &Path, spec: &Path) -> Result<()> {
        if path.parent() != Some(self.store_dir.as_path()) {
            return Err(Error::spec(
                spec,
                format!(
                    "closure entry {} is not a store path (a direct child of {}); put other paths in \"files\"",
                    path.display(),
                    self.store_dir.display()
                ),
            ));
        }
        self.add(path, &Placement::default(), spec)
    }

    /// Bytes of file content the tar will read (hard links counted once).
    pub fn content_bytes(&self) -> u64 {
        let mut seen = BTreeSet::new();
        self.entries
            .values()
            .map(|e| match e.kind {
                Kind::File { size, link_key } if link_key.is_none_or(|k| seen.insert(k)) => size,
                _ => 0,
            })
            .sum()
    }

    /// Add one source as `place` says. `spec` names the file that asked for
    /// it, for the error when the source is missing.
    pub fn add(&mut self, source: &Path, place: &Placement, spec: &Path) -> Result<()> {
        let meta = Self::source_metadata(source, spec)?;
        let is_dir = meta.is_dir();
        self.check_not_output(source, &meta)?;
        if place.link && !source.starts_with(&self.store_dir) {
            return Err(Error::Destination {
                destination: place.destination.unwrap_or_default().to_owned(),
                reason: format!(
                    "\"link\" puts links into the Nix store, but {} is not in {}",
                    source.display(),
                    self.store_dir.display()
                ),
            });
        }
        let dest: Vec<u8> = match place.destination {
            None => match self.own_path_destination(source)? {
                Some(dest) => dest,
                None => return Ok(()), // held by the base layers
            },
            Some(d) => self.given_destination(source, d, is_dir)?,
        };
        if !is_dir {
            return self.add_leaf(source, &meta, place, dest);
        }
        self.add_dir(source, place, dest)
    }

    /// The source's own metadata (a symlink is not followed).
    fn source_metadata(source: &Path, spec: &Path) -> Result<fs::Metadata> {
        if source.as_os_str().is_empty() {
            return Err(Error::spec(spec, "a source is empty"));
        }
        match fs::symlink_metadata(source) {
            Ok(m) => Ok(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingSource {
                source_path: source.to_owned(),
            }),
            Err(e) => Err(Error::io(source, e)),
        }
    }

    /// Refuse a directory source that contains an output being written.
    fn check_not_output(&self, source: &Path, meta: &fs::Metadata) -> Result<()> {
        let is_dir = meta.is_dir();
        // Where the source really is (a symlink source is the link itself).
        let real = match (
            meta.file_type().is_symlink(),
            source.parent(),
            source.file_name(),
        ) {
            (true, Some(parent), Some(name)) => {
                fs::canonicalize(if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                })
                .map(|p| p.join(name))
            }
            _ => fs::canonicalize(source),
        };
        if let Ok(real) = real {
            for out in &self.protect {
                if is_dir && out.starts_with(&real) {
                    return Err(Error::Invalid(format!(
                        "the output directory is inside source {}: write the output elsewhere",
                        source.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// A source without destination lands at its own (absolute, UTF-8)
    /// path. A store path there is recorded as placed whole, or left out
    /// (`None`) when the base layers hold it.
    fn own_path_destination(&mut self, source: &Path) -> Result<Option<Vec<u8>>> {
        let text = source.to_str().ok_or_else(|| Error::Destination {
            destination: source.to_string_lossy().into_owned(),
            reason: "a source without destination must be an absolute UTF-8 path".into(),
        })?;
        if !source.is_absolute() {
            return Err(Error::Destination {
                destination: text.to_owned(),
                reason: RELATIVE_WITHOUT_DESTINATION.into(),
            });
        }
        let (rel, _) = parse_destination(text.trim_end_matches('/'))?;
        if source.parent() == Some(self.store_dir.as_path()) {
            if self.exclude.contains(source) {
                return Ok(None);
            }
            self.store_paths.insert(source.to_owned());
        }
        Ok(Some(rel.into_bytes()))
    }

    /// The layer path for a source given the destination `d`: a
    /// destination ending in `/` holds a file source under its own name.
    fn given_destination(&self, source: &Path, d: &str, is_dir: bool) -> Result<Vec<u8>> {
        let (rel, into_dir) = parse_destination(d)?;
        if into_dir && !is_dir {
            let name = source.file_name().ok_or_else(|| Error::Destination {
                destination: d.to_owned(),
                reason: format!(
                    "source {} has no file name to put inside it",
                    source.display()
                ),
            })?;
            // A whole store path (a Nix path literal `./motd`, a
            // `writeText` output) goes in under its name without the hash
            // part: `/etc/motd`, not `/etc/<hash>-motd`.
            let stripped = (source.parent() == Some(self.store_dir.as_path()))
                .then(|| name.to_str().and_then(name_without_hash))
                .flatten();
            let name = stripped.map_or(name.as_bytes(), str::as_bytes);
            Ok(join(rel.as_bytes(), name))
        } else {
            Ok(rel.into_bytes())
        }
    }

    /// A source that is not a directory (a file or a symlink): one entry
    /// at `dest`, which cannot be the root.
    fn add_leaf(
        &mut self,
        source: &Path,
        meta: &fs::Metadata,
        place: &Placement,
        dest: Vec<u8>,
    ) -> Result<()> {
        let entry = self.entry_for(source, meta, place)?;
        if dest.is_empty() {
            return Err(Error::Destination {
                destination: "/".into(),
                reason: format!(
                    "{} is not a directory and cannot be the root",
                    source.display()
                ),
            });
        }
        self.insert(dest, entry)
    }

    /// A directory source: it and everything under it (symlinks not
    /// followed), walked in name order, at `dest`.
    fn add_dir(&mut self, source: &Path, place: &Placement, dest: Vec<u8>) -> Result<()> {
        let walk = walkdir::WalkDir::new(source)
            .follow_links(false)
            .sort_by(|a, b| a.file_name().cmp(b.file_name()));
        for item in walk {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(source).to_owned();
                match e.into_io_error() {
                    Some(io) => Error::io(path, io),
                    None => Error::Invalid(format!("{}: filesystem loop", path.display())),
                }
            })?;
            let rel = item
                .path()
                .strip_prefix(source)
                .expect("walkdir yields paths under its root");
            if rel.as_os_str().is_empty() && dest.is_empty() {
                continue; // the layer root itself is not an entry
            }
            let meta = item.metadata().map_err(|e| {
                Error::io(
                    item.path(),
                    e.into_io_error()
                        .unwrap_or_else(|| io::Error::other("metadata")),
                )
            })?;
            let entry = self.entry_for(item.path(), &meta, place)?;
            let path = if rel.as_os_str().is_empty() {
                dest.clone()
            } else {
                join(&dest, rel.as_os_str().as_bytes())
            };
            self.insert(path, entry)?;
        }
        Ok(())
    }

    fn entry_for(&self, path: &Path, meta: &fs::Metadata, place: &Placement) -> Result<Entry> {
        let ft = meta.file_type();
        let (kind, mode) = if place.link && !ft.is_dir() {
            // A link to the file in the store (which the image holds).
            (Kind::Symlink(path.as_os_str().as_bytes().to_vec()), 0o777)
        } else if ft.is_dir() {
            // An override keeps directories traversable where readable.
            let mode = place.mode.map_or(0o555, |m| m | ((m & 0o444) >> 2));
            (Kind::Dir, mode)
        } else if ft.is_file() {
            let in_store = path.starts_with(&self.store_dir);
            // The Nix store has no hard links of its own (a NAR cannot hold
            // one); links there come from store optimisation, which differs
            // from machine to machine, so they are not carried over.
            let link_key = (!in_store && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
            let exec = meta.mode() & 0o111 != 0;
            let mode = place.mode.unwrap_or(if exec { 0o555 } else { 0o444 });
            (
                Kind::File {
                    size: meta.len(),
                    link_key,
                },
                mode,
            )
        } else if ft.is_symlink() {
            let target = fs::read_link(path).at(path)?;
            (Kind::Symlink(target.into_os_string().into_vec()), 0o777)
        } else {
            let kind = if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_block_device() {
                "block device"
            } else if ft.is_char_device() {
                "character device"
            } else {
                "unknown"
            };
            return Err(Error::UnsupportedFileType {
                path: path.to_owned(),
                kind,
            });
        };
        Ok(Entry {
            kind,
            mode,
            uid: place.uid.unwrap_or(0).into(),
            gid: place.gid.unwrap_or(0).into(),
            origin: path.to_owned(),
            implicit: false,
            removes: None,
            inline: None,
            declared: false,
        })
    }

    /// Give each parent directory nobody asked for the mode and owner
    /// `existing` reports for its path (what the image below has there),
    /// so that the layer does not change them (`/tmp` stays 1777).
    pub fn adopt_parents(&mut self, existing: impl Fn(&[u8]) -> Option<(u32, u64, u64)>) {
        for (path, e) in self.entries.iter_mut() {
            if e.implicit {
                if let Some((mode, uid, gid)) = existing(path) {
                    (e.mode, e.uid, e.gid) = (mode, uid, gid);
                }
            }
        }
    }
}

/// `OsStr` of a path's bytes (Unix paths are bytes).
pub fn os(path: &[u8]) -> &OsStr {
    OsStr::from_bytes(path)
}

/// A destination path in an image, checked: absolute, normalised, no `..`,
/// no empty or `.` component, no NUL. Returns the components joined by `/`
/// without the leading slash (empty for `/`) and whether it ended in `/`.
pub fn parse_destination(dest: &str) -> Result<(String, bool)> {
    let bad = |reason: &str| Error::Destination {
        destination: dest.to_owned(),
        reason: reason.to_owned(),
    };
    if dest.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    let rest = dest
        .strip_prefix('/')
        .ok_or_else(|| bad("destinations must be absolute (start with /)"))?;
    if rest.is_empty() {
        return Ok((String::new(), true));
    }
    let trailing = rest.ends_with('/');
    let body = rest.strip_suffix('/').unwrap_or(rest);
    for comp in body.split('/') {
        match comp {
            "" => return Err(bad("it has an empty component (//)")),
            c if c.len() > 255 => {
                return Err(bad(
                    "a component is longer than 255 bytes, the limit of Linux file systems",
                ))
            }
            "." => return Err(bad("it has a '.' component; write the normalised path")),
            ".." => return Err(bad("'..' is not allowed in a destination")),
            _ => {}
        }
    }
    Ok((body.to_owned(), trailing))
}

mod content;
mod declared;
mod insert;
pub mod perms;
mod removals;

pub use content::read_full;
use content::same_content;
#[cfg(test)]
mod tests;
