//! The store: output directories and their blobs.
//!
//! Every output is first written into a temporary sibling of its final path
//! and renamed into place only once complete ([`Staging`]), so a failed or
//! interrupted run never leaves a directory that looks finished. Blobs are
//! written through a [`BlobWriter`] that hashes while writing and is named
//! by its digest only at the end (and, when the digest is known beforehand,
//! only if it matches: [`BlobWriter::complete_verified`]). Blobs are read
//! back through a [`BlobReader`], which checks the digest and size of what
//! it gave out: every copy of a blob, into another layout, an archive or an
//! unpacked tree, goes through these two.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Content, Error, IoContext, Result};
use crate::oci::descriptor::{descriptor, Descriptor};
use crate::oci::digest::{HashReader, HashWriter, Sha256Digest};
use crate::oci::json::canonical_json;
use crate::oci::MediaType;

/// The content of `oci-layout`.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An output directory being written: a temporary sibling of `dest` until
/// [`Staging::commit`] (or `dest` itself, for [`Staging::in_place`]).
/// Dropping it without committing removes it.
pub struct Staging {
    place: Place,
    dest: PathBuf,
    force: bool,
    /// The topmost parent directory this run created, removed again if the
    /// output is never committed.
    created_parent: Option<PathBuf>,
    committed: bool,
}

/// Temporary outputs of this process not yet committed, for
/// [`remove_unfinished`].
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remove every output this process has started and not committed (and the
/// parents it created for them). For a signal handler that is about to exit:
/// an interrupted run leaves nothing behind.
pub fn remove_unfinished() {
    for p in unfinished().drain(..) {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir_all(p);
            }
            Ok(_) => {
                let _ = fs::remove_file(p);
            }
            Err(_) => {}
        }
    }
}

/// A temporary file or directory (not a [`Staging`] directory) that
/// [`remove_unfinished`] removes if the process is interrupted while this
/// guard lives.
pub struct UnfinishedFile(PathBuf);

impl UnfinishedFile {
    pub fn track(path: &Path) -> Self {
        unfinished().push(path.to_owned());
        UnfinishedFile(path.to_owned())
    }
}

impl Drop for UnfinishedFile {
    fn drop(&mut self) {
        unfinished().retain(|p| *p != self.0);
    }
}

/// A file output (an archive): written to a temporary sibling of its
/// final path and renamed into place (mode 0644) by [`OutputFile::commit`];
/// removed if dropped before, or if the process is interrupted. In place
/// (Nix builders, whose failed outputs Nix discards), the final path is
/// written directly and must not exist.
pub struct OutputFile {
    file: File,
    tmp: Option<tempfile::NamedTempFile>,
    dest: PathBuf,
    _unfinished: Option<UnfinishedFile>,
}

impl OutputFile {
    /// Start writing `dest`.
    pub fn new(dest: &Path, in_place: bool) -> Result<Self> {
        if in_place {
            return Ok(OutputFile {
                file: File::create_new(dest).at(dest)?,
                tmp: None,
                dest: dest.to_owned(),
                _unfinished: None,
            });
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a file name", dest.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.tmp-", name.to_string_lossy()))
            .tempfile_in(&parent)
            .at(&parent)?;
        Ok(OutputFile {
            file: tmp.as_file().try_clone().at(tmp.path())?,
            // The temporary file's own drop does not run when a signal
            // ends the process; the signal handler removes it.
            _unfinished: Some(UnfinishedFile::track(tmp.path())),
            tmp: Some(tmp),
            dest: dest.to_owned(),
        })
    }

    /// The file to write to.
    pub fn file(&self) -> Result<File> {
        self.file.try_clone().at(&self.dest)
    }

    /// Put the finished file at its final path.
    pub fn commit(self) -> Result<()> {
        if let Some(t) = self.tmp {
            t.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .at(t.path())?;
            t.persist(&self.dest)
                .map_err(|e| Error::io(&self.dest, e.error))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let path = self.path().to_owned();
        unfinished().retain(|p| *p != path && Some(p) != self.created_parent.as_ref());
        if !self.committed {
            if let Some(p) = &self.created_parent {
                let _ = fs::remove_dir_all(p);
            }
        }
    }
}

enum Place {
    Temp(tempfile::TempDir),
    Final(InPlace),
}

/// A directory written in place: `Some` until committed, removed on drop.
struct InPlace(Option<PathBuf>);

impl Drop for InPlace {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

impl Staging {
    /// Start writing `dest` (with an empty `blobs/sha256`). It must not
    /// exist unless `force`, and replacing it must not touch any of
    /// `inputs` (see [`check_not_an_input`]).
    pub fn new(dest: &Path, force: bool, inputs: &[PathBuf]) -> Result<Self> {
        let staging = Self::empty(dest, force, inputs)?;
        fs::create_dir_all(staging.path().join("blobs/sha256")).at(staging.path())?;
        Ok(staging)
    }

    /// Start writing `dest`, an empty directory. It must not exist unless
    /// `force`, and replacing it must not touch any of `inputs`.
    pub fn empty(dest: &Path, force: bool, inputs: &[PathBuf]) -> Result<Self> {
        if dest.as_os_str().is_empty() {
            return Err(Error::Invalid("the output path is empty".into()));
        }
        if fs::symlink_metadata(dest).is_ok() {
            if !force {
                return Err(Error::OutputExists(dest.to_owned()));
            }
            check_not_an_input(dest, inputs)?;
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let created_parent = parent
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .last()
            .map(Path::to_owned);
        fs::create_dir_all(&parent).at(&parent)?;
        if let Some(p) = &created_parent {
            unfinished().push(p.clone());
        }
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a directory name", dest.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.tmp-", name.to_string_lossy()))
            .tempdir_in(&parent)
            .at(&parent)?;
        unfinished().push(tmp.path().to_owned());
        let staging = Staging {
            place: Place::Temp(tmp),
            dest: dest.to_owned(),
            force,
            created_parent,
            committed: false,
        };
        Ok(staging)
    }

    /// Write `dest` directly (it must not exist); removed again unless
    /// committed. For Nix builders, whose store directory is not writable
    /// and whose failed outputs Nix discards itself.
    pub fn in_place(dest: &Path) -> Result<Self> {
        if fs::symlink_metadata(dest).is_ok() {
            return Err(Error::OutputExists(dest.to_owned()));
        }
        fs::create_dir(dest).at(dest)?;
        let staging = Staging {
            place: Place::Final(InPlace(Some(dest.to_owned()))),
            dest: dest.to_owned(),
            force: false,
            created_parent: None,
            committed: false,
        };
        fs::create_dir_all(dest.join("blobs/sha256")).at(dest)?;
        Ok(staging)
    }

    /// Where the content is written until commit.
    pub fn path(&self) -> &Path {
        match &self.place {
            Place::Temp(t) => t.path(),
            Place::Final(_) => &self.dest,
        }
    }

    /// The blob store inside.
    pub fn blobs(&self) -> BlobDir {
        BlobDir::new(self.path())
    }

    /// Write a small file (JSON descriptor, `oci-layout`, `index.json`).
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path().join(name);
        fs::write(&p, bytes).at(&p)
    }

    /// Make the directory an image layout: `oci-layout`, and `index.json`
    /// holding `index` (canonically written).
    pub fn write_layout<T: Serialize>(&self, index: &T) -> Result<()> {
        self.write_file("oci-layout", OCI_LAYOUT)?;
        self.write_file("index.json", &canonical_json(index))
    }

    /// Move the finished directory to its final path.
    pub fn commit(mut self) -> Result<PathBuf> {
        let tmp = match std::mem::replace(&mut self.place, Place::Final(InPlace(None))) {
            Place::Final(mut in_place) => {
                in_place.0 = None;
                self.committed = true;
                return Ok(self.dest.clone());
            }
            Place::Temp(tmp) => tmp,
        };
        let tmp_path = tmp.path().to_owned();
        fs::set_permissions(&tmp_path, fs::Permissions::from_mode(0o755)).at(&tmp_path)?;
        let kept = tmp.keep();
        // From here on the rename decides; the parents stay either way.
        self.committed = true;
        let undo = |e: io::Error, path: &Path| {
            let _ = fs::remove_dir_all(&kept);
            Error::io(path, e)
        };
        if self.force && fs::symlink_metadata(&self.dest).is_ok() {
            // Swap: the old one is moved aside first, so `dest` is always
            // either the old complete output or the new one.
            let aside = tmp_path.with_extension("old");
            fs::rename(&self.dest, &aside).map_err(|e| undo(e, &self.dest))?;
            fs::rename(&kept, &self.dest).map_err(|e| undo(e, &self.dest))?;
            let meta = fs::symlink_metadata(&aside).at(&aside)?;
            if meta.is_dir() {
                fs::remove_dir_all(&aside).at(&aside)?;
            } else {
                fs::remove_file(&aside).at(&aside)?;
            }
        } else {
            fs::rename(&kept, &self.dest).map_err(|e| undo(e, &self.dest))?;
        }
        Ok(self.dest.clone())
    }
}

/// Refuse to replace `dest` (an existing output about to be deleted and
/// written anew) when that would delete or change one of `inputs`: an input
/// that is `dest` or lies inside it, or an input directory that `dest` lies
/// inside. Paths are compared as named and once symlinks are resolved (the
/// path itself and what it points to), so a relative, absolute or linked
/// name of an input is the same input. Inputs that do not exist are left to the
/// code that reads them; `-` (standard input) is no file.
pub fn check_not_an_input(dest: &Path, inputs: &[PathBuf]) -> Result<()> {
    let Some(replaced) = real_path(dest) else {
        return Ok(());
    };
    for input in inputs {
        if input.as_os_str().is_empty() || input == Path::new("-") {
            continue;
        }
        // The input as named (without `..`, which only resolving can
        // interpret), the input itself, and what it points to.
        let named = std::path::absolute(input)
            .ok()
            .filter(|p| !p.components().any(|c| c == std::path::Component::ParentDir));
        let real = [named, real_path(input), fs::canonicalize(input).ok()];
        // The same directory under another name (a bind mount): compared
        // by device and inode, every ancestor of the input's real path.
        if let (Ok(out), Some(canon)) = (fs::symlink_metadata(&replaced), &real[2]) {
            if !out.file_type().is_symlink() {
                let same = |p: &Path, m: &fs::Metadata| {
                    fs::metadata(p).is_ok_and(|x| x.dev() == m.dev() && x.ino() == m.ino())
                };
                if canon.ancestors().any(|a| same(a, &out)) {
                    return Err(Error::InputInOutput {
                        input: input.clone(),
                        output: dest.to_owned(),
                    });
                }
                if let (Ok(inp), Ok(dest_real)) = (fs::metadata(canon), fs::canonicalize(&replaced))
                {
                    if inp.is_dir() && dest_real.ancestors().any(|a| same(a, &inp)) {
                        return Err(Error::OutputInInput {
                            input: input.clone(),
                            output: dest.to_owned(),
                        });
                    }
                }
            }
        }
        for r in real.iter().flatten() {
            if r.starts_with(&replaced) {
                return Err(Error::InputInOutput {
                    input: input.clone(),
                    output: dest.to_owned(),
                });
            }
            if fs::metadata(r).is_ok_and(|m| m.is_dir()) && replaced.starts_with(r) {
                return Err(Error::OutputInInput {
                    input: input.clone(),
                    output: dest.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// `path` with its parent's symlinks resolved, but not a symlink at `path`
/// itself (which is what replacing `path` deletes). `None` if the parent
/// does not exist.
fn real_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(fs::canonicalize(parent).ok()?.join(name))
}

/// The `blobs/sha256` directory of a layout or building-block output.
#[derive(Clone, Debug)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    /// The blob store of the directory `root` (its `blobs/sha256`).
    pub fn new(root: &Path) -> Self {
        BlobDir {
            root: root.to_owned(),
        }
    }

    /// The directory holding `blobs/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a blob; `digest` is already validated, so no traversal.
    pub fn path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// A writer for a new blob.
    pub fn writer(&self) -> Result<BlobWriter> {
        let dir = self.root.join("blobs/sha256");
        let file = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&dir)
            .at(&dir)?;
        Ok(BlobWriter {
            inner: HashWriter::new(BufWriter::with_capacity(1 << 20, file)),
            dir: self.clone(),
        })
    }

    /// Write a JSON document as a blob, canonically.
    pub fn write_json<T: Serialize>(&self, doc: &T, media_type: MediaType) -> Result<Descriptor> {
        let mut w = self.writer()?;
        w.write_all(&canonical_json(doc))
            .at(self.root.join("blobs/sha256"))?;
        let (digest, size) = w.complete()?;
        Ok(descriptor(media_type, &digest, size))
    }

    /// Copy blob `digest` from another blob store, checking its digest and
    /// size on the way.
    pub fn import(&self, from: &BlobDir, digest: &Sha256Digest, size: u64) -> Result<()> {
        let target = self.path(digest);
        if target.exists() {
            return Ok(());
        }
        let src = from.path(digest);
        let mut w = self.writer()?;
        io::copy(
            &mut io::Read::take(File::open(&src).at(&src)?, size + 1),
            &mut w,
        )
        .at(&src)?;
        w.complete_verified(digest, size, &format!("blob {}", src.display()))
    }

    /// Put blob `digest` of another blob store here as a symbolic link to
    /// it, once its digest and size are checked: for blobs in the Nix store,
    /// whose content never changes and which the link keeps alive (Nix
    /// records the link's target as a reference of the output). The link
    /// points at the blob's real path, never at another link.
    pub fn link(&self, from: &BlobDir, digest: &Sha256Digest, size: u64) -> Result<()> {
        let target = self.path(digest);
        if fs::symlink_metadata(&target).is_ok() {
            return Ok(());
        }
        let src = from.path(digest);
        let real = fs::canonicalize(&src).at(&src)?;
        let d = descriptor(MediaType::LAYER, digest, size);
        from.open(&d)?.finish(&format!("blob {}", src.display()))?;
        std::os::unix::fs::symlink(&real, &target).at(&target)
    }

    /// A reader of the blob `d` describes: a regular file, read through a
    /// [`BlobReader`] that checks its digest and size.
    pub fn open(&self, d: &Descriptor) -> Result<BlobReader> {
        let path = self.path(&d.digest);
        let file = File::open(&path).at(&path)?;
        let meta = file.metadata().at(&path)?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!(
                "{}: blob {} is not a regular file",
                path.display(),
                d.digest
            )));
        }
        Ok(BlobReader {
            inner: HashReader::new(io::BufReader::with_capacity(1 << 20, file)),
            expected: d.digest.clone(),
            size: d.size,
            left: d.size,
            path,
        })
    }
}

/// A blob being read: it gives at most its descriptor's size (more is an
/// error), and [`BlobReader::finish`] says whether what it gave was the
/// blob the descriptor names.
pub struct BlobReader {
    inner: HashReader<io::BufReader<File>>,
    expected: Sha256Digest,
    size: u64,
    left: u64,
    path: PathBuf,
}

impl BlobReader {
    /// The blob's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read what is left (so a short read by the consumer is still
    /// checked), then check digest and size; `what` names the blob in the
    /// error.
    pub fn finish(mut self, what: &str) -> Result<()> {
        io::copy(&mut self, &mut io::sink())
            .map_err(|e| Error::Invalid(format!("{what} ({}): {e}", self.expected)))?;
        let (found, n) = self.inner.finish();
        if found != self.expected || n != self.size {
            return Err(Error::DigestMismatch {
                context: what.to_owned(),
                expected: Content::Blob(self.expected.clone(), self.size),
                found: Content::Blob(found, n),
            });
        }
        Ok(())
    }
}

impl io::Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more bytes than the descriptor's size",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A blob being written: hashed and counted as it goes, renamed to its
/// digest by [`BlobWriter::complete`], deleted if dropped before.
pub struct BlobWriter {
    inner: HashWriter<BufWriter<tempfile::NamedTempFile>>,
    dir: BlobDir,
}

impl BlobWriter {
    /// Finish a blob that must be `expected` of `size` bytes: it is named
    /// only if it is, and otherwise removed, with an error naming `what`
    /// (where the bytes came from).
    pub fn complete_verified(self, expected: &Sha256Digest, size: u64, what: &str) -> Result<()> {
        let (buf, found, n) = self.inner.finish();
        if found != *expected || n != size {
            return Err(Error::DigestMismatch {
                context: what.to_owned(),
                expected: Content::Blob(expected.clone(), size),
                found: Content::Blob(found, n),
            });
        }
        Self::persist(&self.dir, buf, &found)
    }

    /// Finish the blob; returns its digest and size.
    pub fn complete(self) -> Result<(Sha256Digest, u64)> {
        let (buf, digest, size) = self.inner.finish();
        Self::persist(&self.dir, buf, &digest)?;
        Ok((digest, size))
    }

    /// Name the written file `digest`.
    fn persist(
        dir: &BlobDir,
        buf: BufWriter<tempfile::NamedTempFile>,
        digest: &Sha256Digest,
    ) -> Result<()> {
        let file = buf
            .into_inner()
            .map_err(|e| Error::io(dir.root.join("blobs/sha256"), e.into_error()))?;
        let target = dir.path(digest);
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .at(file.path())?;
        file.persist(&target)
            .map_err(|e| Error::io(&target, e.error))?;
        Ok(())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_is_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        {
            let s = Staging::new(&dest, false, &[]).unwrap();
            s.write_file("x", b"1").unwrap();
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
        let s = Staging::new(&dest, false, &[]).unwrap();
        s.write_file("x", b"1").unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read(dest.join("x")).unwrap(), b"1");
        assert!(matches!(
            Staging::new(&dest, false, &[]),
            Err(Error::OutputExists(_))
        ));
        let s = Staging::new(&dest, true, &[]).unwrap();
        s.write_file("y", b"2").unwrap();
        s.commit().unwrap();
        assert!(!dest.join("x").exists() && dest.join("y").exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no leftovers after --force"
        );
    }

    #[test]
    fn blob_named_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        let blobs = BlobDir::new(dir.path());
        let d = blobs
            .write_json(&serde_json::json!({}), MediaType::EMPTY)
            .unwrap();
        assert_eq!(d.digest, Sha256Digest::of(b"{}"));
        assert_eq!(d.size, 2);
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            1
        );
    }

    /// A blob is named only once its digest and size are what was
    /// expected; otherwise nothing is left in the store.
    #[test]
    fn complete_verified_names_only_the_expected_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path());
        fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        let good = Sha256Digest::of(b"hello");
        let mut w = blobs.writer().unwrap();
        w.write_all(b"hellO").unwrap();
        let err = w.complete_verified(&good, 5, "test blob").unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        let mut w = blobs.writer().unwrap();
        w.write_all(b"hello").unwrap();
        w.complete_verified(&good, 5, "test blob").unwrap();
        assert_eq!(fs::read(blobs.path(&good)).unwrap(), b"hello");
    }

    /// A blob read through a BlobReader is checked whole, even when the
    /// consumer stopped early, and cannot give more than its size.
    #[test]
    fn blob_reader_checks_what_it_gave() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path());
        fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        let digest = Sha256Digest::of(b"0123456789");
        let d = descriptor(MediaType::LAYER, &digest, 10);
        fs::write(blobs.path(&digest), b"0123456789").unwrap();
        let mut r = blobs.open(&d).unwrap();
        let mut first = [0u8; 3];
        io::Read::read_exact(&mut r, &mut first).unwrap();
        r.finish("blob").unwrap();

        fs::write(blobs.path(&digest), b"0123456780").unwrap();
        let err = blobs.open(&d).unwrap().finish("blob").unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");

        fs::write(blobs.path(&digest), b"0123456789 and more").unwrap();
        let mut r = blobs.open(&d).unwrap();
        assert!(io::copy(&mut r, &mut io::sink()).is_err());
        let short = descriptor(MediaType::LAYER, &digest, 11);
        fs::write(blobs.path(&digest), b"0123456789").unwrap();
        let err = blobs.open(&short).unwrap().finish("blob").unwrap_err();
        assert!(err.to_string().contains("(10 bytes)"), "{err}");
    }
}
