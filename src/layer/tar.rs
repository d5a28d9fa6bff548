//! A deterministic tar stream over a [`Tree`]: entries in byte order of
//! their path, GNU headers with a fixed mtime, numeric owners and empty
//! user/group names, GNU long-name records for names over 100 bytes, and
//! names written byte for byte (non-UTF-8 included).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use tar::{EntryType, Header};

use crate::error::{Error, IoContext, Result};
use crate::layer::tree::{os, Kind, Tree};
use crate::progress::Progress;

/// Write `tree` as a tar stream into `out` (including the end-of-archive
/// blocks) and return `out`.
pub fn write_tree<W: Write>(tree: &Tree, mtime: u64, out: W, progress: &dyn Progress) -> Result<W> {
    let mut builder = tar::Builder::new(out);
    // (device, inode) -> the first path written with it and its metadata.
    type First<'t> = (&'t [u8], (u32, u64, u64));
    let mut linked: HashMap<(u64, u64), First> = HashMap::new();
    let sink_err = |e: io::Error| Error::io("(layer output)", e);

    for (path, entry) in &tree.entries {
        let mut header = Header::new_gnu();
        header.set_mtime(mtime);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mode(entry.mode);
        header.set_size(0);
        match &entry.kind {
            Kind::Dir => {
                header.set_entry_type(EntryType::Directory);
                let mut name = path.clone();
                name.push(b'/');
                builder
                    .append_data(&mut header, os(&name), io::empty())
                    .map_err(sink_err)?;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(EntryType::Symlink);
                append_link(&mut builder, &mut header, path, target).map_err(sink_err)?;
            }
            Kind::File { size, link_key } => {
                let meta = (entry.mode, entry.uid, entry.gid);
                if let Some(key) = link_key {
                    match linked.get(key) {
                        Some((first, first_meta)) if *first_meta == meta => {
                            header.set_entry_type(EntryType::Link);
                            append_link(&mut builder, &mut header, path, first)
                                .map_err(sink_err)?;
                            continue;
                        }
                        Some(_) => {} // different metadata: a separate file
                        None => {
                            linked.insert(*key, (path.as_slice(), meta));
                        }
                    }
                }
                header.set_entry_type(EntryType::Regular);
                header.set_size(*size);
                if let Some(bytes) = &entry.inline {
                    builder
                        .append_data(&mut header, os(path), &bytes[..])
                        .map_err(sink_err)?;
                    progress.advance(bytes.len() as u64);
                    continue;
                }
                // A whiteout's nothing is read from `/dev/null`; every
                // other file is a regular file of the tree, opened without
                // waiting on whatever may have replaced it since the walk.
                let file = if entry.removes.is_some() {
                    File::open(&entry.origin).at(&entry.origin)?
                } else {
                    crate::oci::json::open_regular(&entry.origin)?.0
                };
                let mut reader = ExactReader {
                    inner: file,
                    remaining: *size,
                    progress,
                };
                builder
                    .append_data(&mut header, os(path), &mut reader)
                    .map_err(|e| {
                        let inner = e.get_ref();
                        if inner.is_some_and(|i| i.is::<SizeChanged>()) {
                            Error::Invalid(format!(
                                "{}: file changed size while the layer was written; build again from a stable tree",
                                entry.origin.display()
                            ))
                        } else if inner.is_some_and(|i| i.is::<ReadFailed>()) {
                            Error::io(&entry.origin, e)
                        } else {
                            // Not the source's fault: the output (disk full, ...).
                            sink_err(e)
                        }
                    })?;
                // Growth past the recorded size is a change too.
                if reader.inner.read(&mut [0u8; 1]).at(&entry.origin)? != 0 {
                    return Err(Error::Invalid(format!(
                        "{}: file grew while the layer was written; build again from a stable tree",
                        entry.origin.display()
                    )));
                }
            }
        }
    }
    builder.into_inner().map_err(sink_err)
}

/// Symlinks and hard links: the link name is written byte for byte (the tar
/// crate's `set_link_name` would normalise it), with a GNU long-link record
/// when it does not fit the header.
fn append_link<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut Header,
    path: &[u8],
    target: &[u8],
) -> io::Result<()> {
    if header.set_link_name_literal(target).is_ok() {
        builder.append_data(header, os(path), io::empty())
    } else {
        builder.append_link(header, os(path), Path::new(os(target)))
    }
}

#[derive(Debug)]
struct SizeChanged;
impl std::fmt::Display for SizeChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("file size changed while reading")
    }
}
impl std::error::Error for SizeChanged {}

/// A read of a source file failed (as opposed to a write of the output).
#[derive(Debug)]
struct ReadFailed(io::Error);
impl std::fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for ReadFailed {}

/// Yields exactly `remaining` bytes of `inner`, or fails: a file that
/// shrinks while it is read must not produce a corrupt archive.
struct ExactReader<'p> {
    inner: File,
    remaining: u64,
    progress: &'p dyn Progress,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(self.remaining.try_into().unwrap_or(usize::MAX));
        let n = self
            .inner
            .read(&mut buf[..max])
            .map_err(|e| io::Error::new(e.kind(), ReadFailed(e)))?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, SizeChanged));
        }
        self.remaining -= n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
