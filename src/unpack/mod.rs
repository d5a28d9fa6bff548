//! Safe extraction of an image's root filesystem (image-spec `layer.md`):
//! layers applied in order, OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`, by
//! the rule of [`crate::untar::whiteout`]), digests and diff_ids verified
//! while reading.
//!
//! Each entry is first applied to the tree's [`crate::untar::shape`], which
//! refuses it as every reader of layers does (`verify`, the base tree);
//! the checks on disk below hold besides.
//!
//! Nothing lands outside the target directory: paths with `..` or a leading
//! `/` are refused; no path is ever resolved through a symlink (every parent
//! directory is checked with `lstat` and must be a real directory), so a
//! symlink placed by an earlier entry cannot be written through, and the
//! modes and times set at the end reach each path through
//! [`crate::rootfs::Root::exact`], never through a link a later entry put
//! on the way; hard links must name an entry inside the tree. Device nodes are refused unless
//! asked for. Entry count, single file size and total size are bounded. The
//! tree is built in a temporary sibling and renamed into place only when
//! every layer applied and verified, so a refusal leaves nothing behind.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Content, Error, IoContext, Result};
use crate::layer::compress::Compression;
use crate::layout::{BlobReader, Layout, Staging};
use crate::oci::descriptor::*;
use crate::oci::digest::{HashReader, Sha256Digest};
use crate::untar::shape::Shape;
use crate::untar::whiteout::{OwnPaths, Whiteout};
pub use crate::untar::Limits;
use crate::untar::{Budget, EntryMeta};

mod make;

/// How to unpack.
#[derive(Clone, Debug, Default)]
pub struct UnpackOptions {
    pub limits: Limits,
    /// Create character and block devices (as root) instead of refusing them.
    pub allow_devices: bool,
    /// For an image index: which platform (default: linux and this
    /// machine's architecture).
    pub platform: Option<Platform>,
    /// Replace the target directory if it exists.
    pub force: bool,
}

/// What `unpack` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpackReport {
    pub dir: PathBuf,
    pub manifest: Sha256Digest,
    pub layers: usize,
    pub entries: u64,
    pub bytes: u64,
}

fn refused(layer: usize, entry: &[u8], why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "layer {layer}: entry {:?} refused: {why}",
        String::from_utf8_lossy(entry)
    ))
}

/// Give the owner write and search permission on every directory under
/// `root` (and `root`), so that it can be removed: an image's directories
/// may be read-only (a Nix store path's are), which stops even its owner
/// from deleting what they hold. Best effort.
pub fn make_removable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(root).into_iter().flatten() {
        if e.file_type().is_dir() {
            if let Ok(m) = e.metadata() {
                let mode = m.permissions().mode() | 0o700;
                let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode));
            }
        }
    }
}

/// Unpack the image `tag` of `layout` (or its only one) into `dir`.
pub fn unpack(
    layout: &Path,
    tag: Option<&str>,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    let reader = Layout::open(layout)?;
    let image = reader.resolve(tag, opts.platform.as_ref())?;
    let diff_ids = if !crate::artifact::is_artifact(&image) {
        image_diff_ids(&image)?
    } else if image
        .layers
        .iter()
        .any(|l| crate::artifact::title(l).is_some())
    {
        // ORAS's files, which have no diff_ids: written as `artifact pull`
        // writes them, checked before anything is.
        crate::artifact::check_files(&reader, &image, &opts.limits)?;
        vec![None; image.layers.len()]
    } else {
        image.diff_ids()?
    };

    let staging = Staging::empty(dir, opts.force, &[layout.to_owned()])?;
    let mut tree = Extract {
        root: staging.path().to_owned(),
        opts,
        entries: 0,
        bytes: 0,
        times: BTreeMap::new(),
        modes: BTreeMap::new(),
        own: OwnPaths::default(),
        shape: Shape::default(),
        known_dirs: Default::default(),
        // SAFETY: geteuid takes nothing, touches no memory and cannot fail.
        as_root: unsafe { libc::geteuid() } == 0,
        stream: Default::default(),
    };
    for (i, layer) in image.layers.iter().enumerate() {
        tree.layer(&reader, i, layer, diff_ids[i].as_ref())?;
    }
    tree.finish()?;
    let dir = staging.commit()?;
    Ok(UnpackReport {
        dir,
        manifest: image.manifest.digest,
        layers: image.layers.len(),
        entries: tree.entries,
        bytes: tree.bytes,
    })
}

/// An image's diff_ids, one for each layer, as the docker archive and
/// `verify` require them: a config that lists fewer or more is refused.
fn image_diff_ids(image: &crate::layout::Image) -> Result<Vec<Option<Sha256Digest>>> {
    let listed = image.config_value()?["rootfs"]["diff_ids"]
        .as_array()
        .map_or(0, Vec::len);
    let diff_ids = image.diff_ids()?;
    if let Some(i) = diff_ids.iter().take(listed).position(Option::is_none) {
        return Err(Error::Invalid(format!(
            "config {}: rootfs.diff_ids[{i}] is not a string; the image is damaged (build or pull it again)",
            image.config.digest
        )));
    }
    if listed != image.layers.len() {
        return Err(Error::Invalid(format!(
            "config {} lists {listed} diff_ids (rootfs.diff_ids) for {} layers: an image's config gives one for each layer; the image is damaged (build or pull it again)",
            image.config.digest,
            image.layers.len()
        )));
    }
    Ok(diff_ids)
}

struct Extract<'a> {
    root: PathBuf,
    opts: &'a UnpackOptions,
    entries: u64,
    bytes: u64,
    /// Relative path -> mtime (seconds, nanoseconds), applied at the end
    /// (children first).
    times: BTreeMap<Vec<u8>, (i64, u32)>,
    /// Directory modes, applied at the end (so read-only directories can
    /// still be filled by later entries).
    modes: BTreeMap<Vec<u8>, u32>,
    /// Paths the current layer created, and their parents: what its
    /// whiteouts keep.
    own: OwnPaths,
    /// The tree's paths and what they are, which refuses an entry as
    /// every reader refuses it ([`crate::untar::shape`]), before anything
    /// is written for it.
    shape: Shape<()>,
    /// Directories of the tree checked to be real directories (not
    /// symlinks), so that the parents of the next entry need no check
    /// again. Only this run writes the tree (a private temporary
    /// directory), and anything it removes empties this set.
    known_dirs: std::cell::RefCell<std::collections::HashSet<PathBuf>>,
    as_root: bool,
    /// Uncompressed layer bytes read so far (bounded by --max-total-size).
    stream: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Extract<'_> {
    fn layer(
        &mut self,
        layout: &Layout,
        index: usize,
        desc: &Descriptor,
        diff_id: Option<&Sha256Digest>,
    ) -> Result<()> {
        self.own.clear();
        self.shape.layer();
        let mut compressed = layout
            .open_blob(desc)
            .map_err(|e| e.within(format!("layer {index}")))?;
        // An artifact's file (ORAS): named by its title, without a diff_id,
        // it is the file's bytes, whatever its media type says (ORAS gives
        // single files the media type of an uncompressed layer); unless it
        // is a packed directory: ORAS's mark (`io.deis.oras.content.unpack`,
        // the Go client's) or the tar+gzip media type (the python client's
        // only sign).
        let titled = desc
            .annotations
            .contains_key(crate::artifact::ANNOTATION_TITLE);
        let packed = desc
            .annotations
            .get("io.deis.oras.content.unpack")
            .is_some_and(|v| v == "true")
            || desc.media_type == crate::oci::MediaType::LAYER_GZIP;
        if titled && !packed && diff_id.is_none() {
            return self.artifact_file(index, desc, compressed);
        }
        let Some(compression) = Compression::from_layer_media_type(&desc.media_type) else {
            return self.artifact_file(index, desc, compressed);
        };
        let used = self.stream.clone();
        let limit = self.opts.limits.max_total_size;
        let damaged = |e: io::Error| {
            if let Some(r) = crate::untar::refusal(&e) {
                refused(index, &r.name, &r.why)
            } else if used.get() > limit {
                Error::Invalid(format!(
                    "layer {index} ({}): refused: its uncompressed content passes --max-total-size {limit} bytes (counting the layers before it); decompression stopped there",
                    desc.digest
                ))
            } else {
                Error::Invalid(format!("layer {index} ({}): damaged: {e}", desc.digest))
            }
        };
        {
            let mut tar_stream = HashReader::new(Budget {
                inner: compression.decoder(&mut compressed).map_err(damaged)?,
                used: used.clone(),
                limit,
            });
            {
                let mut archive = crate::untar::archive(&mut tar_stream);
                for entry in archive.entries().map_err(damaged)? {
                    let entry = entry.map_err(damaged)?;
                    self.entry(index, entry).map_err(|e| {
                        // A read of file content that hit the limit.
                        if used.get() > limit {
                            damaged(io::Error::other("limit"))
                        } else {
                            e
                        }
                    })?;
                }
            }
            io::copy(&mut tar_stream, &mut io::sink()).map_err(damaged)?;
            let (found, _) = tar_stream.finish();
            if let Some(want) = diff_id {
                if found != *want {
                    return Err(Error::DigestMismatch {
                        context: format!(
                            "layer {index} ({}): uncompressed content (diff_id)",
                            desc.digest
                        ),
                        expected: Content::Digest(want.clone()),
                        found: Content::Digest(found),
                    });
                }
            }
        }
        io::copy(&mut compressed, &mut io::sink()).map_err(damaged)?;
        compressed.finish(&format!("layer {index}: blob"))
    }

    /// An artifact layer (not a tar): a file named by its title annotation.
    fn artifact_file(
        &mut self,
        index: usize,
        desc: &Descriptor,
        mut reader: BlobReader,
    ) -> Result<()> {
        let name = desc.annotations.get(crate::artifact::ANNOTATION_TITLE).ok_or_else(|| {
            Error::Invalid(format!(
                "layer {index}: media type {:?} is not a layer nixoci can unpack (and it has no {} to name a file)",
                desc.media_type,
                crate::artifact::ANNOTATION_TITLE
            ))
        })?;
        crate::artifact::validate_name(name).map_err(|e| e.within(format!("layer {index}")))?;
        self.count(index, name.as_bytes(), desc.size)?;
        let target = self.root.join(name);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(Error::Invalid(format!(
                "layer {index}: artifact file {name:?} is given twice"
            )));
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .at(&target)?;
        io::copy(&mut reader, &mut out).at(&target)?;
        reader.finish(&format!("layer {index}: artifact {name:?}"))
    }

    fn count(&mut self, index: usize, path: &[u8], size: u64) -> Result<()> {
        let l = self.opts.limits;
        self.entries += 1;
        if self.entries > l.max_entries {
            return Err(refused(
                index,
                path,
                format!("more than {} entries (--max-entries)", l.max_entries),
            ));
        }
        if size > l.max_file_size {
            return Err(refused(
                index,
                path,
                format!(
                    "declares {size} bytes, more than --max-file-size {}",
                    l.max_file_size
                ),
            ));
        }
        self.bytes += size;
        if self.bytes > l.max_total_size {
            return Err(refused(
                index,
                path,
                format!(
                    "the image passes --max-total-size {} bytes",
                    l.max_total_size
                ),
            ));
        }
        Ok(())
    }

    /// The components of an entry path, refused if it could leave the tree.
    fn components(index: usize, raw: &[u8]) -> Result<Vec<&[u8]>> {
        crate::untar::shape::components(raw).map_err(|why| refused(index, raw, why))
    }

    /// Make sure every parent of `comps` is a real directory (creating
    /// missing ones when `create`); never go through a symlink. `None`: a
    /// parent is missing, or is not a directory, and `create` is off (a
    /// whiteout there hides nothing; a hard link target is not there).
    fn parents(
        &self,
        index: usize,
        raw: &[u8],
        comps: &[&[u8]],
        create: bool,
    ) -> Result<Option<PathBuf>> {
        let mut p = self.root.clone();
        for (i, c) in comps[..comps.len().saturating_sub(1)].iter().enumerate() {
            p.push(OsStr::from_bytes(c));
            if self.known_dirs.borrow().contains(&p) {
                continue;
            }
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(refused(
                        index,
                        raw,
                        format!(
                            "it would be written through the symlink {:?}",
                            String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                        ),
                    ))
                }
                Ok(m) if m.is_dir() => {
                    self.known_dirs.borrow_mut().insert(p.clone());
                }
                Ok(_) if !create => return Ok(None),
                Ok(_) => {
                    return Err(refused(
                        index,
                        raw,
                        format!(
                            "its parent {:?} is not a directory",
                            String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&p).at(&p)?;
                    self.known_dirs.borrow_mut().insert(p.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        Ok(Some(p))
    }

    /// Remove whatever is at `path` (not following a symlink).
    fn clear(&self, path: &Path) -> Result<()> {
        match fs::symlink_metadata(path) {
            Ok(m) => {
                self.known_dirs.borrow_mut().clear();
                if m.is_dir() {
                    fs::remove_dir_all(path).at(path)
                } else {
                    fs::remove_file(path).at(path)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// One tar entry: its path checked and counted, then a whiteout
    /// applied, or the entry created by its type (its mtime kept for the
    /// end).
    fn entry<R: Read>(&mut self, index: usize, mut entry: tar::Entry<R>) -> Result<()> {
        if matches!(entry.header().entry_type(), tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        let meta =
            EntryMeta::read(&mut entry).map_err(|why| refused(index, &entry.path_bytes(), why))?;
        let kind = meta.kind;
        let raw = meta.path.clone();
        let comps = Self::components(index, &raw)?;
        let size = meta.size;
        self.count(index, &raw, if kind.is_file() { size } else { 0 })?;
        self.shape
            .entry(&raw, kind, meta.link.as_deref(), (), &())
            .map_err(|why| refused(index, &raw, why))?;
        let Some(last) = comps.last().copied() else {
            return Ok(()); // the root itself ("./"), a directory
        };
        let rel = comps.join(&b'/');
        let whiteout = Whiteout::of(&rel).map_err(|why| refused(index, &raw, why))?;
        // A whiteout never creates the directories it names.
        let Some(dir_path) = self.parents(index, &raw, &comps, whiteout.is_none())? else {
            return Ok(());
        };
        let path = dir_path.join(OsStr::from_bytes(last));
        if let Some(w) = whiteout {
            let top = w.top();
            return self.hide(&w, &self.root.join(OsStr::from_bytes(top)), top);
        }

        let header = entry.header().clone();
        let mode = header.mode().map_err(|e| refused(index, &raw, e))? & 0o7777;
        match kind {
            tar::EntryType::Directory => self.make_dir(&path, &rel, mode, &meta)?,
            k if k.is_file() => self.make_file(index, &raw, &path, mode, &meta, &mut entry)?,
            tar::EntryType::Symlink => self.make_symlink(index, &raw, &path, &meta)?,
            tar::EntryType::Link => {
                self.make_hard_link(index, &raw, &path, &meta)?;
                self.own.put(&rel);
                return Ok(()); // metadata is the target's
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                self.make_device(index, &raw, &path, mode, &meta, &header)?
            }
            tar::EntryType::Fifo => self.make_fifo(&path, mode, &meta)?,
            other => {
                return Err(refused(
                    index,
                    &raw,
                    format!("unsupported entry type {other:?}"),
                ))
            }
        }
        self.own.put(&rel);
        self.times.insert(rel, meta.mtime);
        Ok(())
    }

    /// Apply the whiteout `w` from `path` (relative path `rel`) down:
    /// what it hides goes, whole; a directory it spares (its layer's own)
    /// is walked for what the layers below left inside.
    fn hide(&self, w: &Whiteout, path: &Path, rel: &[u8]) -> Result<()> {
        if w.hides(rel, &self.own) {
            return self.clear(path);
        }
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            for child in fs::read_dir(path).at(path)? {
                let child = child.at(path)?;
                let crel = crate::layer::tree::join(rel, child.file_name().as_bytes());
                self.hide(w, &child.path(), &crel)?;
            }
        }
        Ok(())
    }

    /// Directory modes, then mtimes, deepest first. Each is set on what
    /// is at its path now, reached without following a link
    /// ([`crate::rootfs::Root::exact`]): a later entry may have put a link
    /// where a directory was, and a mode or time set through it would land
    /// outside the tree.
    fn finish(&mut self) -> Result<()> {
        let tree = crate::rootfs::Root::open(&self.root, "the unpacked tree")?;
        for (rel, mode) in self.modes.iter().rev() {
            if let Some((dir, name)) = tree.exact(rel)? {
                if dir
                    .meta(&name)
                    .is_ok_and(|m| m.kind == crate::rootfs::Kind::Dir)
                {
                    dir.set_dir_mode(&name, *mode)?;
                }
            }
        }
        for (rel, mtime) in self.times.iter().rev() {
            // Best effort: the entry may have been whited out since.
            if let Ok(Some((dir, name))) = tree.exact(rel) {
                let _ = dir.set_times(&name, mtime.0, mtime.1);
            }
        }
        Ok(())
    }
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{}: a NUL in a path", p.display())))
}
