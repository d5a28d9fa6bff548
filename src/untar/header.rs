//! The parts of a tar entry's header Go's `archive/tar` reads beyond the
//! ustar fields: PAX records (numbers, times, names, owners, the sparse
//! formats), GNU long names, base-256 numbers, and which entry types carry
//! content. [`super::EntryMeta`] is read through these.

use std::collections::BTreeMap;
use std::io::Read;

use super::guard::{MAX_EXTENSION_HEADER, MAX_SPARSE_BLOCKS};

pub(super) fn pax_number(key: &str, v: &[u8]) -> std::result::Result<i64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            format!(
                "its PAX {key} record {:?} is not a number",
                String::from_utf8_lossy(v)
            )
        })
}

pub(super) fn pax_unsigned(key: &str, v: &[u8]) -> std::result::Result<u64, String> {
    let n = pax_number(key, v)?;
    u64::try_from(n).map_err(|_| format!("its PAX {key} record is negative"))
}

/// A PAX time, `SECONDS[.FRACTION]` (Go's `parsePAXTime`).
pub(super) fn pax_time(v: &[u8]) -> std::result::Result<(i64, u32), String> {
    let bad = || {
        format!(
            "its PAX mtime record {:?} is not a time",
            String::from_utf8_lossy(v)
        )
    };
    let s = std::str::from_utf8(v).map_err(|_| bad())?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (s.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let mut ns: u32 = 0;
    for (i, b) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .enumerate()
    {
        ns += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if negative && ns > 0 {
        // -1.5 is 1.5 s before the epoch: -2 s + 0.5 s; a time before
        // the oldest i64 second is refused.
        return Ok((secs.checked_sub(1).ok_or_else(bad)?, 1_000_000_000 - ns));
    }
    Ok((secs, ns))
}

/// A 12-byte header number in base-256 must fit 63 bits (as in Go); the
/// `tar` crate would read only its last 8 bytes.
pub(super) fn check_wide_number(field: &[u8], what: &str) -> std::result::Result<(), String> {
    if field[0] & 0x80 != 0
        && (field[0] != 0x80
            || field[1..field.len() - 8].iter().any(|b| *b != 0)
            || field[field.len() - 8] & 0x80 != 0)
    {
        return Err(format!(
            "its header {what} is a base-256 number that is negative or over 63 bits"
        ));
    }
    Ok(())
}

/// PAX records by key, each given once (the 0.0 sparse pairs joined into
/// one `GNU.sparse.map`).
pub(super) type Records = BTreeMap<String, Vec<u8>>;

/// The record `key` when it is given and not empty (an empty value keeps
/// the header's, as in Go).
pub(super) fn record<'r>(records: &'r Records, key: &str) -> Option<&'r Vec<u8>> {
    records.get(key).filter(|v| !v.is_empty())
}

/// The entry's PAX records, refused when malformed or when a key is given
/// twice.
pub(super) fn pax_records<R: Read>(
    entry: &mut tar::Entry<R>,
) -> std::result::Result<Records, String> {
    let mut records: Records = BTreeMap::new();
    let mut sparse_pairs: Vec<Vec<u8>> = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| e.to_string())? {
        for ext in exts {
            let ext = ext.map_err(|_| "its PAX header holds a malformed record".to_owned())?;
            let key = ext
                .key()
                .map_err(|_| "its PAX header has a key that is not UTF-8".to_owned())?;
            let value = ext.value_bytes();
            if key.is_empty() {
                return Err("its PAX header has a record with an empty key".into());
            }
            if key == "GNU.sparse.offset" || key == "GNU.sparse.numbytes" {
                // 0.0: pairs, in order (Go's parsePAX).
                let want = if sparse_pairs.len() % 2 == 0 {
                    "GNU.sparse.offset"
                } else {
                    "GNU.sparse.numbytes"
                };
                if key != want || value.contains(&b',') {
                    return Err(
                        "its PAX GNU.sparse.offset/numbytes records are out of order".into(),
                    );
                }
                sparse_pairs.push(value.to_vec());
                continue;
            }
            if records.insert(key.to_owned(), value.to_vec()).is_some() {
                return Err(format!(
                    "its PAX header gives {key:?} twice (readers disagree on which counts)"
                ));
            }
        }
    }
    if !sparse_pairs.is_empty() {
        if records.contains_key("GNU.sparse.map") {
            return Err("its PAX header gives a sparse map twice".into());
        }
        records.insert("GNU.sparse.map".into(), sparse_pairs.join(&b','));
    }
    Ok(records)
}

/// The entry's type as Go reads it: old GNU sparse files refused, a
/// contiguous file a regular one.
pub(super) fn entry_kind(kind: tar::EntryType) -> std::result::Result<tar::EntryType, String> {
    if kind == tar::EntryType::GNUSparse {
        // Go reads these, but umoci (and the Go-based runtimes: podman,
        // containerd) refuse the type: a layer holding one is not
        // portable.
        return Err("it is an old GNU sparse file (type 'S'), which umoci and container runtimes refuse; write the layer with PAX sparse files (GNU tar --posix) or without --sparse".into());
    }
    if kind == tar::EntryType::Continuous {
        // A contiguous file is a regular file to every reader.
        return Ok(tar::EntryType::Regular);
    }
    Ok(kind)
}

/// Path and link target: a GNU long name or link first, then a non-empty
/// PAX `path`/`linkpath`, then the header.
pub(super) fn names<R: Read>(
    entry: &tar::Entry<R>,
    header: &tar::Header,
    records: &Records,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut path = entry.path_bytes().into_owned();
    if path.is_empty() {
        path = match record(records, "path") {
            Some(p) => p.clone(),
            None => header.path_bytes().into_owned(),
        };
    }
    let mut link = entry.link_name_bytes().map(|l| l.into_owned());
    if link.as_ref().is_none_or(|l| l.is_empty()) {
        link = record(records, "linkpath")
            .cloned()
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
    }
    (path, link)
}

/// Go's archive/tar reads no content for these types, whatever size they
/// declare, and takes the next block as the next header; the tar crate
/// skips the declared bytes. Entries hidden in between would be seen by
/// umoci and podman but not here: refused.
pub(super) fn check_no_content(kind: tar::EntryType, size: u64) -> std::result::Result<(), String> {
    if matches!(
        kind,
        tar::EntryType::Directory
            | tar::EntryType::Symlink
            | tar::EntryType::Link
            | tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo
    ) && size > 0
    {
        return Err(format!(
            "a {kind:?} entry that declares {size} bytes of content: Go's archive/tar (umoci, podman) reads none and takes them as further entries, other readers skip them"
        ));
    }
    Ok(())
}

/// The largest owner id an entry may carry: 4294967294. Linux ids are 32
/// bits, and 4294967295 is `(uid_t)-1`, which `chown` reads as "leave it
/// unchanged"; a larger one would wrap when unpacked as root (4294967296
/// would become root's 0).
pub(super) const MAX_OWNER_ID: u64 = u32::MAX as u64 - 1;

/// `id` (the entry's `what`, "uid" or "gid"), refused over
/// [`MAX_OWNER_ID`].
fn owner_id(what: &str, id: u64) -> std::result::Result<u64, String> {
    if id > MAX_OWNER_ID {
        return Err(format!(
            "its {what} {id} is over {MAX_OWNER_ID}, the largest owner id Linux has ({} means \"unchanged\" to chown, and larger ids would wrap to other owners)",
            u32::MAX
        ));
    }
    Ok(id)
}

/// uid, gid and mtime: PAX records over the header; owner ids within
/// [`MAX_OWNER_ID`].
pub(super) fn owner_and_mtime(
    header: &tar::Header,
    records: &Records,
) -> std::result::Result<(u64, u64, (i64, u32)), String> {
    let uid = match record(records, "uid") {
        Some(v) => pax_unsigned("uid", v)?,
        None => header.uid().map_err(|e| e.to_string())?,
    };
    let gid = match record(records, "gid") {
        Some(v) => pax_unsigned("gid", v)?,
        None => header.gid().map_err(|e| e.to_string())?,
    };
    let mtime = match record(records, "mtime") {
        Some(v) => pax_time(v)?,
        None => (header.mtime().map_err(|e| e.to_string())? as i64, 0),
    };
    Ok((owner_id("uid", uid)?, owner_id("gid", gid)?, mtime))
}

/// The PAX sparse formats (Go's readGNUSparsePAXHeaders): which one the
/// records give, if any; `GNU.sparse.name` and the logical size replace
/// `path` and `size`.
pub(super) fn pax_sparse(
    records: &Records,
    kind: tar::EntryType,
    path: &mut Vec<u8>,
    size: &mut u64,
) -> std::result::Result<Option<PaxSparse>, String> {
    let major = records.get("GNU.sparse.major").map(Vec::as_slice);
    let minor = records.get("GNU.sparse.minor").map(Vec::as_slice);
    let version = match (major, minor) {
        (Some(b"0"), Some(b"0" | b"1")) => Some(false),
        (Some(b"1"), Some(b"0")) => Some(true),
        (Some(_), _) | (_, Some(_)) => None, // unknown: plain data, as in Go
        (None, None) if record(records, "GNU.sparse.map").is_some() => Some(false),
        (None, None) => None,
    };
    Ok(match version {
        None => None,
        Some(_) if !kind.is_file() => {
            return Err("it carries a GNU sparse map but is not a regular file".into())
        }
        Some(in_data) => {
            if let Some(name) = record(records, "GNU.sparse.name") {
                *path = name.clone();
            }
            if let Some(v) = record(records, "GNU.sparse.size")
                .or_else(|| record(records, "GNU.sparse.realsize"))
            {
                *size = pax_unsigned("GNU.sparse.size", v)?;
            }
            if in_data {
                Some(PaxSparse::InData)
            } else {
                Some(sparse_map_records(records)?)
            }
        }
    })
}

/// The map of a 0.0 or 0.1 sparse file, from its records: `numblocks`
/// pairs of numbers.
pub(super) fn sparse_map_records(records: &Records) -> std::result::Result<PaxSparse, String> {
    let n = pax_unsigned(
        "GNU.sparse.numblocks",
        records.get("GNU.sparse.numblocks").map_or(&b""[..], |v| v),
    )?;
    let map = record(records, "GNU.sparse.map").map_or(&b""[..], |v| v);
    let nums: Vec<&[u8]> = if map.is_empty() {
        Vec::new()
    } else {
        map.split(|b| *b == b',').collect()
    };
    check_sparse_blocks(n)?;
    if nums.len() as u64 != n.saturating_mul(2) {
        return Err(format!(
            "its GNU sparse map has {} numbers for {n} blocks",
            nums.len()
        ));
    }
    let mut pairs = Vec::new();
    for p in nums.chunks(2) {
        pairs.push((
            pax_unsigned("GNU.sparse.map", p[0])?,
            pax_unsigned("GNU.sparse.map", p[1])?,
        ));
    }
    Ok(PaxSparse::Records(pairs))
}

/// A sparse map of `n` blocks is refused over [`MAX_SPARSE_BLOCKS`],
/// before any of it is read.
fn check_sparse_blocks(n: u64) -> std::result::Result<(), String> {
    if n > MAX_SPARSE_BLOCKS {
        return Err(format!(
            "its GNU sparse map lists {n} blocks, more than the {MAX_SPARSE_BLOCKS} a sparse map may list"
        ));
    }
    Ok(())
}

/// The map ahead of a PAX 1.0 sparse file's data: decimal numbers, one a
/// line, the count first, read in whole 512-byte blocks (Go's
/// `readGNUSparseMap1x0`: a block is read only when the next number is not
/// complete yet). The count is at most [`MAX_SPARSE_BLOCKS`], the text at
/// most [`MAX_EXTENSION_HEADER`] bytes (as Go bounds it), and only the
/// number being read is kept of it.
pub(super) fn read_sparse_map_1_0<R: Read>(
    r: &mut R,
) -> std::result::Result<Vec<(u64, u64)>, String> {
    struct Text<'r, R> {
        r: &'r mut R,
        /// What is read and not parsed yet: at most one number and a block.
        buf: Vec<u8>,
        read: u64,
    }
    impl<R: Read> Text<'_, R> {
        fn next(&mut self) -> std::result::Result<u64, String> {
            let mut searched = 0;
            loop {
                if let Some(nl) = self.buf[searched..].iter().position(|b| *b == b'\n') {
                    let end = searched + nl;
                    let n = pax_unsigned("GNU sparse map", &self.buf[..end]);
                    self.buf.drain(..=end);
                    return n;
                }
                searched = self.buf.len();
                if self.read >= MAX_EXTENSION_HEADER {
                    return Err(format!(
                        "its GNU sparse map is longer than {MAX_EXTENSION_HEADER} bytes (1 MiB), the most a sparse map may take"
                    ));
                }
                let mut block = [0u8; 512];
                self.r
                    .read_exact(&mut block)
                    .map_err(|_| "its GNU sparse map ends early".to_owned())?;
                self.read += 512;
                self.buf.extend_from_slice(&block);
            }
        }
    }
    let mut text = Text {
        r,
        buf: Vec::new(),
        read: 0,
    };
    let n = text.next()?;
    check_sparse_blocks(n)?;
    let mut map = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        let off = text.next()?;
        let len = text.next()?;
        map.push((off, len));
    }
    Ok(map)
}

/// How a PAX-format sparse file's data is laid out.
pub(crate) enum PaxSparse {
    /// 0.0 and 0.1: the map `(offset, length)` is in the PAX records.
    Records(Vec<(u64, u64)>),
    /// 1.0: the map is at the start of the data.
    InData,
}
