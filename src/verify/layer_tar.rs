//! The walk of one layer's tar stream for `verify`: its diff_id, with
//! unpack's entry rules and limits applied on the way.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use crate::layer::compress::Compression;
use crate::oci::digest::{HashReader, Sha256Digest};
use crate::untar::shape::Shape;
use crate::untar::{Budget, EntryMeta, Limits};

/// sha256 of the uncompressed stream, reading it as a tar archive on the way
/// with unpack's entry rules (so a stream that is not a tar, or that unpack
/// would refuse, is reported), bounded by the descriptor's size and by
/// `limits`, which apply to the layer; its entries applied to `shape`, the
/// tree of the layers below, when it is known. `Err` is the problem, in
/// words.
pub(super) fn tar_diff_id(
    path: &Path,
    compression: Compression,
    size: u64,
    limits: &Limits,
    mut shape: Option<&mut Shape<()>>,
) -> Result<Sha256Digest, String> {
    if let Some(s) = shape.as_deref_mut() {
        s.layer();
    }
    let file =
        BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| e.to_string())?).take(size);
    let used: Rc<Cell<u64>> = Default::default();
    let limit = limits.max_total_size;
    let why = |e: io::Error| {
        if let Some(r) = crate::untar::refusal(&e) {
            r.to_string()
        } else if used.get() > limit {
            format!(
                "its uncompressed content passes --max-total-size {limit} bytes; decompression stopped there"
            )
        } else {
            format!("not a readable {compression} tar stream: {e}")
        }
    };
    let mut hr = HashReader::new(Budget {
        inner: compression.decoder(file).map_err(why)?,
        used: used.clone(),
        limit,
    });
    {
        let mut archive = crate::untar::archive(&mut hr);
        let mut entries = 0u64;
        // What the files declare, as unpack counts it (a sparse file's
        // full size), besides the stream's own bytes.
        let mut declared = 0u64;
        for entry in archive.entries().map_err(why)? {
            let mut entry = entry.map_err(why)?;
            if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
                continue;
            }
            let name = |e: &tar::Entry<_>| String::from_utf8_lossy(&e.path_bytes()).into_owned();
            entries += 1;
            if entries > limits.max_entries {
                return Err(format!(
                    "more than --max-entries {} entries; stopped there",
                    limits.max_entries
                ));
            }
            let meta = EntryMeta::read(&mut entry)
                .map_err(|w| format!("entry {:?} refused: {w}", name(&entry)))?;
            let refused = |w: &dyn std::fmt::Display| {
                format!(
                    "entry {:?} refused: {w}",
                    String::from_utf8_lossy(&meta.path)
                )
            };
            crate::untar::whiteout::Whiteout::of(&meta.path).map_err(|w| refused(&w))?;
            if let Some(s) = shape.as_deref_mut() {
                s.entry(&meta.path, meta.kind, meta.link.as_deref(), (), &())
                    .map_err(|w| refused(&w))?;
            }
            if meta.kind.is_file() && meta.size > limits.max_file_size {
                return Err(format!(
                    "entry {:?} declares {} bytes, more than --max-file-size {}",
                    String::from_utf8_lossy(&meta.path),
                    meta.size,
                    limits.max_file_size
                ));
            }
            if meta.kind.is_file() {
                declared = declared.saturating_add(meta.size);
                if declared > limit {
                    return Err(format!(
                        "its files declare more than --max-total-size {limit} bytes (at entry {:?}); stopped there",
                        String::from_utf8_lossy(&meta.path)
                    ));
                }
                meta.copy_content(&mut entry, None).map_err(|w| {
                    if used.get() > limit {
                        why(io::Error::other(w))
                    } else {
                        format!(
                            "entry {:?} refused: {w}",
                            String::from_utf8_lossy(&meta.path)
                        )
                    }
                })?;
            }
        }
    }
    io::copy(&mut hr, &mut io::sink()).map_err(why)?;
    Ok(hr.finish().0)
}
