//! The blob store: the `blobs/sha256` directory of a layout or output.
//! Blobs are written through a [`BlobWriter`] that hashes while writing
//! and is named by its digest only at the end (and, when the digest is
//! known beforehand, only if it matches: [`BlobWriter::complete_verified`]).
//! Blobs are read back through a [`BlobReader`], which checks the digest
//! and size of what it gave out: every copy of a blob, into another layout,
//! an archive or an unpacked tree, goes through these two.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Content, Error, IoContext, Result};
use crate::layout::durable;
use crate::layout::temporaries::{remove_stale_temporaries, temporary_prefix, UnfinishedFile};
use crate::oci::descriptor::{descriptor, Descriptor};
use crate::oci::digest::{HashReader, HashWriter, Sha256Digest};
use crate::oci::json::{canonical_json, open_regular};
use crate::oci::MediaType;

/// The buffer of a [`BlobWriter`]: writes this big or bigger go straight
/// to the file (a compressor's output), smaller ones (a tar stream's
/// headers, a download's chunks) are gathered. 1 MiB held a MiB per blob a
/// pull writes at once, for no speed.
const WRITE_BUFFER: usize = 256 << 10;

/// The name blob temporaries are named from (see [`temporary_prefix`]).
const INCOMING: &str = "incoming";

/// The `blobs/sha256` directory of a layout or building-block output.
#[derive(Clone, Debug)]
pub struct BlobDir {
    root: PathBuf,
    /// The output this blob store is staged for ([`crate::layout::Staging`]),
    /// whose commit syncs the directory once for all its blobs.
    staged_for: Option<PathBuf>,
}

impl BlobDir {
    /// The blob store of the directory `root` (its `blobs/sha256`).
    pub fn new(root: &Path) -> Self {
        BlobDir {
            root: root.to_owned(),
            staged_for: None,
        }
    }

    /// The blob store of `root`, a staged output that is renamed to
    /// `output` once complete.
    pub(super) fn staged(root: &Path, output: &Path) -> Self {
        BlobDir {
            root: root.to_owned(),
            staged_for: Some(output.to_owned()),
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
    /// Its temporary file is named as outputs' temporaries are
    /// (`.incoming.tmp-PID-HOST-…`, see [`BlobDir::remove_stale`]) and
    /// removed if the process is interrupted.
    pub fn writer(&self) -> Result<BlobWriter> {
        let dir = self.root.join("blobs/sha256");
        let file = tempfile::Builder::new()
            .prefix(&temporary_prefix(OsStr::new(INCOMING)))
            .tempfile_in(&dir)
            .at(&dir)?;
        // Written back as it comes when the blob is to be synced.
        let sync = durable::wanted(self.staged_for.as_deref().unwrap_or(&dir))?;
        Ok(BlobWriter {
            _tracked: UnfinishedFile::track(file.path()),
            inner: HashWriter::new(BufWriter::with_capacity(
                WRITE_BUFFER,
                durable::Writeback::new(file, sync),
            )),
            dir: self.clone(),
        })
    }

    /// Remove the blob temporaries that runs killed before they could
    /// clean up left here: before writing into a blob store that is not
    /// new (a layout changed in place).
    pub fn remove_stale(&self) {
        remove_stale_temporaries(&self.root.join("blobs/sha256"), OsStr::new(INCOMING));
    }

    /// Write a JSON document as a blob, canonically. A document larger
    /// than [`crate::oci::json::MAX_DOCUMENT`] is refused, nothing written:
    /// no reader (`pull`, `verify`, the layout reader) would take it back.
    pub fn write_json<T: Serialize>(&self, doc: &T, media_type: MediaType) -> Result<Descriptor> {
        let bytes = canonical_json(doc);
        let max = crate::oci::json::MAX_DOCUMENT;
        if bytes.len() as u64 > max {
            let what = if media_type == MediaType::CONFIG {
                "image config"
            } else if media_type.is_index() {
                "image index"
            } else {
                "manifest"
            };
            return Err(Error::Invalid(format!(
                "the {what} would be {} bytes, more than the {} MiB ({max} bytes) a document may have: nixoci pull and verify (and many registries) refuse a bigger one; make it smaller (Env, Labels, history, annotations)",
                bytes.len(),
                max >> 20
            )));
        }
        let mut w = self.writer()?;
        w.write_all(&bytes).at(self.root.join("blobs/sha256"))?;
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
        let (file, _) = open_regular(&src)?;
        io::copy(&mut io::Read::take(file, size + 1), &mut w).at(&src)?;
        w.complete_verified(digest, size, &format!("blob {}", src.display()))
    }

    /// A reader of the blob `d` describes: a regular file, read through a
    /// [`BlobReader`] that checks its digest and size.
    pub fn open(&self, d: &Descriptor) -> Result<BlobReader> {
        let path = self.path(&d.digest);
        let (file, _) = open_regular(&path)?;
        Ok(BlobReader {
            inner: HashReader::new(io::BufReader::with_capacity(1 << 20, file)),
            expected: d.digest.clone(),
            size: d.size,
            left: d.size,
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
}

impl BlobReader {
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

/// A blob being written: hashed and counted as it goes, synced and renamed
/// to its digest by [`BlobWriter::complete`] ([`durable`]), deleted if
/// dropped before.
pub struct BlobWriter {
    inner: HashWriter<BufWriter<durable::Writeback<tempfile::NamedTempFile>>>,
    dir: BlobDir,
    _tracked: UnfinishedFile,
}

impl BlobWriter {
    /// Finish a blob that must be `expected` of `size` bytes: it is named
    /// only if it is, and otherwise removed, with an error naming `what`
    /// (where the bytes came from).
    pub fn complete_verified(self, expected: &Sha256Digest, size: u64, what: &str) -> Result<()> {
        let _tracked = self._tracked;
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
        let _tracked = self._tracked;
        let (buf, digest, size) = self.inner.finish();
        Self::persist(&self.dir, buf, &digest)?;
        Ok((digest, size))
    }

    /// Name the written file `digest`.
    fn persist(
        dir: &BlobDir,
        buf: BufWriter<durable::Writeback<tempfile::NamedTempFile>>,
        digest: &Sha256Digest,
    ) -> Result<()> {
        let file = buf
            .into_inner()
            .map_err(|e| Error::io(dir.root.join("blobs/sha256"), e.into_error()))?
            .into_inner();
        let target = dir.path(digest);
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .at(file.path())?;
        match &dir.staged_for {
            Some(output) => durable::persist_staged(file, &target, output),
            None => durable::persist(file, &target, true),
        }
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
        let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert_eq!(e.to_string(), "more bytes than the descriptor's size");
        let short = descriptor(MediaType::LAYER, &digest, 11);
        fs::write(blobs.path(&digest), b"0123456789").unwrap();
        let err = blobs.open(&short).unwrap().finish("blob").unwrap_err();
        assert!(err.to_string().contains("(10 bytes)"), "{err}");
    }
}
