//! Reading tar layers as Go's `archive/tar` (and so umoci, podman and
//! containerd) reads them, for `unpack` and `verify` alike: one entry's
//! metadata with the PAX and GNU extensions applied (`EntryMeta`), its
//! content with sparse maps and zero runs as holes, the bounds every
//! reader of a layer applies ([`Limits`], `Budget`), the one rule for
//! whiteouts ([`whiteout`]), and the entries every reader refuses
//! ([`shape`]).

mod header;
pub mod shape;
pub mod whiteout;

use header::*;
use std::fs::File;
use std::io::{self, Read, Seek, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::oci::digest::Sha256Digest;

/// A tar path as it lands in the tree: no leading `./` or `/`, no
/// trailing `/`.
pub(crate) fn normalise(mut path: &[u8]) -> Vec<u8> {
    loop {
        if let Some(rest) = path.strip_prefix(b"./") {
            path = rest;
        } else if let Some(rest) = path.strip_prefix(b"/") {
            path = rest;
        } else {
            break;
        }
    }
    while let Some(rest) = path.strip_suffix(b"/") {
        path = rest;
    }
    if path == b"." {
        path = b"";
    }
    path.to_vec()
}

/// A layer's uncompressed content, `found`, must be its `diff_id` when
/// one is given (`what` names the layer).
pub(crate) fn check_diff_id(
    found: Sha256Digest,
    diff_id: Option<&Sha256Digest>,
    what: &str,
) -> crate::error::Result<()> {
    match diff_id {
        Some(want) if found != *want => Err(crate::error::Error::DigestMismatch {
            context: format!("{what}: uncompressed content (diff_id)"),
            expected: crate::error::Content::Digest(want.clone()),
            found: crate::error::Content::Digest(found),
        }),
        _ => Ok(()),
    }
}

/// Bounds on reading layers: what one unpack may create, what `verify`
/// reads of each layer.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Limits {
    /// The most entries (files, directories, links); default 1 000 000.
    pub max_entries: u64,
    /// The largest single file, in bytes; default 16 GiB.
    pub max_file_size: u64,
    /// The most bytes of file content, and of uncompressed layer content
    /// (decompression stops there); default 64 GiB.
    pub max_total_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_file_size: 16 << 30,
            max_total_size: 64 << 30,
        }
    }
}

/// A reader of uncompressed layer content that fails once more than
/// `limit` bytes came through, counting in `used` (shared, so that the
/// caller can tell a limit from damage, and count across layers).
pub(crate) struct Budget<R> {
    pub inner: R,
    pub used: std::rc::Rc<std::cell::Cell<u64>>,
    pub limit: u64,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never ask for more than one byte past the limit.
        let room = self.limit.saturating_sub(self.used.get()).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.used.set(self.used.get() + n as u64);
        if self.used.get() > self.limit {
            return Err(io::Error::other("past --max-total-size"));
        }
        Ok(n)
    }
}

/// One tar entry's metadata, with the PAX (`x`) and GNU (`L`, `K`, `S`)
/// extensions applied the way Go's `archive/tar` applies them (umoci reads
/// layers with it), so that nixoci unpacks the same tree:
///
/// - size: a PAX `size` record overrides the header (files over 8 GiB are
///   written that way); the `tar` crate positions the stream by it too.
/// - path and link: a GNU long name (`L`) or link (`K`) first, then a
///   non-empty PAX `path`/`linkpath`, then the header (an empty PAX value
///   keeps the header's, as in Go); `GNU.sparse.name` of a PAX sparse file
///   wins over all.
/// - uid, gid, mtime: PAX records over the header (mtime to the
///   nanosecond); base-256 header numbers are read.
/// - a `\0`-typed entry whose name ends in `/` is a directory (old tar).
/// - sparse files: the PAX formats `GNU.sparse.*` 0.0, 0.1 and 1.0 (the
///   map in the records or ahead of the data) are written with holes;
///   other `GNU.sparse` versions are plain data, as Go reads them. Old GNU
///   sparse entries (`S`) are refused, as umoci refuses them.
/// - any run of 4 KiB of zeros is written as a hole: the content is the
///   same, and an 8 GiB sparse file takes no 8 GiB of disk.
///
/// Where Go would refuse the entry, or where the `tar` crate and Go could
/// read it differently, the entry is refused rather than guessed at:
/// malformed PAX records, a key given twice, numbers that do not parse,
/// a base-256 size or time wider than 63 bits, an invalid sparse map, or a
/// sparse file whose data does not match its map.
pub(crate) struct EntryMeta {
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub kind: tar::EntryType,
    /// The file's size as unpacked (a sparse file's logical size).
    pub size: u64,
    pub uid: u64,
    pub gid: u64,
    pub mtime: (i64, u32),
    /// A PAX-format sparse file's map, when it is one.
    pub sparse: Option<PaxSparse>,
}

impl EntryMeta {
    /// Read the metadata of `entry`; `Err` says why it is refused.
    pub fn read<R: Read>(entry: &mut tar::Entry<R>) -> std::result::Result<EntryMeta, String> {
        let header = entry.header().clone();
        let raw = header.as_bytes();
        check_wide_number(&raw[124..136], "size")?;
        check_wide_number(&raw[136..148], "mtime")?;
        let records = pax_records(entry)?;

        // Size: the tar crate has positioned the stream by the PAX size
        // when it parses; one that does not parse is refused (Go refuses it,
        // the tar crate would fall back to the header).
        if let Some(v) = record(&records, "size") {
            let n = pax_unsigned("size", v)?;
            if n != entry.size() {
                return Err(format!(
                    "its PAX size record says {n} bytes but the archive is read as {}",
                    entry.size()
                ));
            }
        }
        let mut size = entry.size();
        let mut kind = entry_kind(header.entry_type())?;
        let (mut path, link) = names(entry, &header, &records);
        if raw[156] == 0 && path.ends_with(b"/") {
            kind = tar::EntryType::Directory;
        }
        check_no_content(kind, entry.size())?;
        let (uid, gid, mtime) = owner_and_mtime(&header, &records)?;
        // A mode that does not parse: refused by every reader, as unpack
        // refuses it (the base tree read it as 0, verify not at all).
        header.mode().map_err(|e| e.to_string())?;
        let sparse = pax_sparse(&records, kind, &mut path, &mut size)?;
        Ok(EntryMeta {
            path,
            link,
            kind,
            size,
            uid,
            gid,
            mtime,
            sparse,
        })
    }

    /// Read the entry's content and write it to `out` (or nowhere, to
    /// check it), zero runs and sparse holes as holes.
    pub fn copy_content<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        out: Option<&mut File>,
    ) -> std::result::Result<(), String> {
        self.read_content(
            entry,
            HoleWriter {
                out,
                file_pos: 0,
                hash: None,
            },
        )
        .map(|_| ())
    }

    /// Read the entry's content, as [`EntryMeta::copy_content`] checks it,
    /// and return the sha256 of the file it makes: a sparse file's holes
    /// count as the zeros they read as, so the digest is the same however
    /// the file was stored.
    pub fn content_digest<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
    ) -> std::result::Result<Sha256Digest, String> {
        let w = HoleWriter {
            out: None,
            file_pos: 0,
            hash: Some(ContentHash {
                hasher: Sha256::new(),
                pos: 0,
            }),
        };
        self.read_content(entry, w)?
            .ok_or_else(|| "its content was not hashed".to_owned())
    }

    /// Read the content into `w`; the digest when `w` hashes.
    fn read_content<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        mut w: HoleWriter<'_>,
    ) -> std::result::Result<Option<Sha256Digest>, String> {
        let damaged = |e: io::Error| format!("damaged: {e}");
        let map = match &self.sparse {
            None => {
                let n = w.copy(&mut *entry, 0, self.size).map_err(damaged)?;
                if n != self.size {
                    return Err(format!("it declares {} bytes but holds {n}", self.size));
                }
                return w.finish(self.size).map_err(damaged);
            }
            Some(PaxSparse::Records(map)) => map.clone(),
            Some(PaxSparse::InData) => read_sparse_map_1_0(&mut *entry)?,
        };
        let mut end = 0u64;
        for &(off, len) in &map {
            let stop = off
                .checked_add(len)
                .filter(|e| {
                    *e <= self.size && off >= end && off <= i64::MAX as u64 && *e <= i64::MAX as u64
                })
                .ok_or_else(|| {
                    format!(
                        "its GNU sparse map is invalid (block {off}+{len} of a {} byte file)",
                        self.size
                    )
                })?;
            let n = w.copy(&mut *entry, off, len).map_err(damaged)?;
            if n != len {
                return Err("its sparse data is shorter than its map says".into());
            }
            end = stop;
        }
        let mut extra = [0u8; 1];
        if entry.read(&mut extra).map_err(damaged)? != 0 {
            return Err("it holds more sparse data than its map says".into());
        }
        w.finish(self.size).map_err(damaged)
    }
}

/// Writes file content, seeking over 4 KiB runs of zeros so that they
/// become holes (the content read back is the same); and, for `diff`,
/// hashes the content the file reads as.
struct HoleWriter<'a> {
    out: Option<&'a mut File>,
    file_pos: u64,
    hash: Option<ContentHash>,
}

/// The sha256 of a file's content as it reads, holes included.
struct ContentHash {
    hasher: Sha256,
    /// How many bytes of the file have been hashed.
    pos: u64,
}

impl ContentHash {
    /// Hash `bytes`, found at offset `at`: what lies between is a hole.
    fn feed(&mut self, at: u64, bytes: &[u8]) {
        self.zeros_to(at);
        self.hasher.update(bytes);
        self.pos = at + bytes.len() as u64;
    }

    /// Hash zeros up to offset `end`.
    fn zeros_to(&mut self, end: u64) {
        while self.pos < end {
            let n = (end - self.pos).min(ZEROS.len() as u64);
            self.hasher.update(&ZEROS[..n as usize]);
            self.pos += n;
        }
    }
}

static ZEROS: [u8; 4096] = [0; 4096];

impl HoleWriter<'_> {
    /// Copy up to `len` bytes from `r` to offset `at`; returns the count.
    fn copy(&mut self, r: &mut impl Read, mut at: u64, len: u64) -> io::Result<u64> {
        let mut buf = vec![0u8; 256 << 10];
        let mut done = 0;
        let mut r = r.take(len);
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(done),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            done += n as u64;
            if let Some(h) = self.hash.as_mut() {
                h.feed(at, &buf[..n]);
            }
            if let Some(out) = self.out.as_deref_mut() {
                for chunk in buf[..n].chunks(ZEROS.len()) {
                    if chunk != &ZEROS[..chunk.len()] {
                        if self.file_pos != at {
                            out.seek(io::SeekFrom::Start(at))?;
                        }
                        out.write_all(chunk)?;
                        self.file_pos = at + chunk.len() as u64;
                    }
                    at += chunk.len() as u64;
                }
            } else {
                at += n as u64;
            }
        }
    }

    /// The file's length is `size` (what was not written is a hole); the
    /// digest of its content when it was hashed.
    fn finish(self, size: u64) -> io::Result<Option<Sha256Digest>> {
        // Only a file that ends in a hole needs its length set.
        if let Some(out) = self.out.filter(|_| self.file_pos != size) {
            out.set_len(size)?;
        }
        Ok(self.hash.map(|mut h| {
            h.zeros_to(size);
            Sha256Digest(h.hasher.finalize().into())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_as_go_reads_them() {
        assert_eq!(pax_time(b"1234567890"), Ok((1234567890, 0)));
        assert_eq!(pax_time(b"1234567890.5"), Ok((1234567890, 500_000_000)));
        assert_eq!(pax_time(b"1.0000000019"), Ok((1, 1)));
        assert_eq!(pax_time(b"-1.5"), Ok((-2, 500_000_000)));
        assert!(pax_time(b"1.").is_err());
        assert!(pax_time(b"1.x").is_err());
        assert!(pax_time(b"").is_err());
    }

    /// A PAX extended header of `records`, then a regular file entry
    /// holding `data`.
    fn pax_then_file(records: &[(&str, &str)], name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = format!(" {k}={v}\n");
            let mut len = rest.len() + 1;
            while format!("{len}{rest}").len() != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len}{rest}").as_bytes());
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path("PaxHeaders/f").unwrap();
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, &body[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_cksum();
        b.append(&h, data).unwrap();
        b.into_inner().unwrap()
    }

    fn digest_of_only_entry(tar_bytes: &[u8]) -> (u64, Sha256Digest) {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        let meta = EntryMeta::read(&mut entry).unwrap();
        let digest = meta.content_digest(&mut entry).unwrap();
        assert!(entries.next().is_none());
        (meta.size, digest)
    }

    #[test]
    fn a_sparse_file_hashes_as_the_file_it_makes() {
        // 5 bytes at 0, 5 at 10,000, in a 12,000 byte file (PAX 0.1).
        let sparse = pax_then_file(
            &[
                ("GNU.sparse.major", "0"),
                ("GNU.sparse.minor", "1"),
                ("GNU.sparse.name", "f"),
                ("GNU.sparse.size", "12000"),
                ("GNU.sparse.numblocks", "2"),
                ("GNU.sparse.map", "0,5,10000,5"),
            ],
            "GNUSparseFile.0/f",
            b"aaaaabbbbb",
        );
        let mut whole = vec![0u8; 12000];
        whole[..5].copy_from_slice(b"aaaaa");
        whole[10000..10005].copy_from_slice(b"bbbbb");
        assert_eq!(
            digest_of_only_entry(&sparse),
            (12000, Sha256Digest::of(&whole))
        );
        let plain = pax_then_file(&[("uid", "0")], "f", &whole);
        assert_eq!(
            digest_of_only_entry(&plain),
            (12000, Sha256Digest::of(&whole))
        );
    }

    #[test]
    fn wide_base256_numbers_are_refused() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 5;
        assert!(check_wide_number(&f, "size").is_ok());
        f[3] = 1;
        assert!(check_wide_number(&f, "size").is_err());
        let mut neg = [0xffu8; 12];
        neg[11] = 0xfe;
        assert!(check_wide_number(&neg, "size").is_err());
        assert!(check_wide_number(b"00000000012\0", "size").is_ok());
    }
}
