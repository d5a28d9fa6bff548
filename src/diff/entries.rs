//! The entries of one layer, read for comparison: every path with what a
//! change to it would show (type, content digest, size, mode, owner, link,
//! mtime), through the reader `unpack` and `verify` use, never extracted.
//! A whiteout is compared as the entry it is; one that names nothing is
//! refused, as every reader refuses it ([`crate::untar::whiteout`]).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::layer::compress::Compression;
use crate::layout::Layout;
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::{HashReader, Sha256Digest};
use crate::untar::whiteout::Whiteout;
use crate::untar::{check_diff_id, normalise, Budget, EntryMeta, Limits};
use serde::Serialize;

fn kind_name(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => "file".into(),
        tar::EntryType::Directory => "directory".into(),
        tar::EntryType::Symlink => "symlink".into(),
        tar::EntryType::Link => "hardlink".into(),
        tar::EntryType::Char => "char".into(),
        tar::EntryType::Block => "block".into(),
        tar::EntryType::Fifo => "fifo".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Every entry of layer `index` (`desc`) of `layout`, by normalised path
/// (a later entry for a path replaces an earlier one, as it does on
/// unpack), read within `limits`; the blob's digest and size, and its
/// diff_id when the config gives one, are checked.
pub(super) fn read_entries(
    layout: &Layout,
    index: usize,
    desc: &Descriptor,
    diff_id: Option<&Sha256Digest>,
    limits: &Limits,
) -> Result<BTreeMap<Vec<u8>, FileMeta>> {
    let what = format!(
        "{}: layer {index} ({})",
        layout.dir().display(),
        desc.digest
    );
    let mut blob = layout.open_blob(desc).map_err(|e| e.within(what.clone()))?;
    let compression = Compression::from_layer_media_type(&desc.media_type).ok_or_else(|| {
        Error::Invalid(format!(
            "{what}: media type {:?} is not a tar layer",
            desc.media_type
        ))
    })?;
    let used: Rc<Cell<u64>> = Default::default();
    let limit = limits.max_total_size;
    let damaged = |e: io::Error| {
        if let Some(r) = crate::untar::refusal(&e) {
            Error::Invalid(format!("{what}: {r}"))
        } else if used.get() > limit {
            Error::Invalid(format!(
                "{what}: its uncompressed content passes --max-total-size {limit} bytes; decompression stopped there"
            ))
        } else {
            Error::Invalid(format!(
                "{what}: damaged: not a readable {compression} tar stream: {e}"
            ))
        }
    };
    let refused = |path: &[u8], why: String| {
        Error::Invalid(format!(
            "{what}: entry {:?} refused: {why}",
            String::from_utf8_lossy(path)
        ))
    };
    let mut files = BTreeMap::new();
    let mut stream = HashReader::new(Budget {
        inner: compression.decoder(&mut blob).map_err(damaged)?,
        used: used.clone(),
        limit,
    });
    {
        let mut archive = crate::untar::archive(&mut stream);
        let mut entries = 0u64;
        let mut declared = 0u64;
        for entry in archive.entries().map_err(damaged)? {
            let mut entry = entry.map_err(damaged)?;
            if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
                continue;
            }
            entries += 1;
            if entries > limits.max_entries {
                return Err(Error::Invalid(format!(
                    "{what}: more than --max-entries {} entries; stopped there",
                    limits.max_entries
                )));
            }
            let raw = entry.path_bytes().into_owned();
            let meta = EntryMeta::read(&mut entry).map_err(|w| refused(&raw, w))?;
            Whiteout::of(&meta.path).map_err(|w| refused(&meta.path, w.to_owned()))?;
            let mode = entry
                .header()
                .mode()
                .map_err(|e| refused(&meta.path, e.to_string()))?;
            let digest = if meta.kind.is_file() {
                if meta.size > limits.max_file_size {
                    return Err(refused(
                        &meta.path,
                        format!(
                            "it declares {} bytes, more than --max-file-size {}",
                            meta.size, limits.max_file_size
                        ),
                    ));
                }
                declared = declared.saturating_add(meta.size);
                if declared > limit {
                    return Err(refused(
                        &meta.path,
                        format!(
                            "the layer's files declare more than --max-total-size {limit} bytes"
                        ),
                    ));
                }
                Some(meta.content_digest(&mut entry).map_err(|w| {
                    if used.get() > limit {
                        damaged(io::Error::other(w))
                    } else {
                        refused(&meta.path, w)
                    }
                })?)
            } else {
                None
            };
            let (secs, nanos) = meta.mtime;
            files.insert(
                normalise(&meta.path),
                FileMeta {
                    kind: kind_name(meta.kind),
                    size: if meta.kind.is_file() { meta.size } else { 0 },
                    mode: format!("{:04o}", mode & 0o7777),
                    uid: meta.uid,
                    gid: meta.gid,
                    link: meta
                        .link
                        .as_ref()
                        .filter(|_| {
                            matches!(meta.kind, tar::EntryType::Symlink | tar::EntryType::Link)
                        })
                        .map(|l| String::from_utf8_lossy(l).into_owned()),
                    digest,
                    mtime: if nanos == 0 {
                        secs.to_string()
                    } else {
                        format!("{secs}.{nanos:09}")
                            .trim_end_matches('0')
                            .to_owned()
                    },
                },
            );
        }
    }
    io::copy(&mut stream, &mut io::sink()).map_err(damaged)?;
    check_diff_id(stream.finish().0, diff_id, &what)?;
    io::copy(&mut blob, &mut io::sink()).map_err(damaged)?;
    blob.finish(&what)?;
    Ok(files)
}

/// A tar entry as the comparison sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMeta {
    /// `file`, `directory`, `symlink`, `hardlink`, `char`, `block`, `fifo`.
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    /// Permission bits, octal (`0755`).
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    /// A symlink's target, a hard link's source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// sha256 of a regular file's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Sha256Digest>,
    /// Seconds since the epoch, with a fraction when there is one.
    pub mtime: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_as_they_land() {
        assert_eq!(normalise(b"./a/b/"), b"a/b");
        assert_eq!(normalise(b"/a"), b"a");
        assert_eq!(normalise(b"./"), b"");
        assert_eq!(normalise(b"."), b"");
        assert_eq!(normalise(b"a/b"), b"a/b");
    }
}
