//! The bound on a layer's extension headers, checked before they are read.
//!
//! The `tar` crate reads a whole PAX (`x`) or GNU long name or link (`L`,
//! `K`) entry into memory before it hands out the entry it describes, so a
//! layer of a few MiB of gzip could make any reader allocate gigabytes
//! before [`super::Limits`] saw an entry. [`HeaderGuard`] sits between the
//! uncompressed stream and the `tar` crate and follows the archive as the
//! crate does (`tar` 0.4's `next_entry`: a PAX `size` record moves the next
//! entry, `L`, `K` and `x` are consumed, old GNU sparse headers carry
//! extension blocks); each 512-byte header is looked at as soon as it has
//! come through, and an `x`, `g`, `L` or `K` entry declaring more than
//! [`MAX_EXTENSION_HEADER`] bytes is refused there, before its content is
//! read. Go's `archive/tar` (umoci, podman, containerd) refuses the same
//! headers (its `maxSpecialFileSize`).
//!
//! Every reader of a layer builds its archive with [`super::archive`], and
//! tells a refusal from damage with [`refusal`].

use std::io::{self, Read};

/// The most bytes a PAX (`x`, `g`) or GNU long name or link (`L`, `K`)
/// entry may declare, and the longest sparse map text read: 1 MiB, as in
/// Go's `archive/tar`.
pub const MAX_EXTENSION_HEADER: u64 = 1 << 20;

/// The most blocks (data regions) a sparse file's map may list, in any
/// format: 131,072. Each block is kept in memory until the file is
/// written, and a map in 1 MiB of text can hardly list more.
pub const MAX_SPARSE_BLOCKS: u64 = 1 << 17;

const BLOCK: u64 = 512;

/// An entry refused by its header alone, before the `tar` crate read it.
#[derive(Debug)]
pub(crate) struct Refused {
    /// The header's own name field.
    pub name: Vec<u8>,
    pub why: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "entry {:?} refused: {}",
            String::from_utf8_lossy(&self.name),
            self.why
        )
    }
}

impl std::error::Error for Refused {}

/// The refusal an error of the `tar` crate carries, when the guard refused
/// a header (rather than the stream being damaged).
pub(crate) fn refusal(e: &io::Error) -> Option<&Refused> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Refused>())
}

/// Where the guard is in the archive.
enum State {
    /// Collecting the next 512-byte header.
    Header,
    /// Passing content through up to this stream position.
    Skip(u64),
    /// Keeping a PAX header's records up to `end`, then skipping to
    /// `padded`: the next entry's size may be in them.
    Records { end: u64, padded: u64 },
    /// Old GNU sparse extension blocks, then the content up to the
    /// position given.
    SparseExt { content_end: u64, blocks: u64 },
    /// Past the end of the archive, or past a header the `tar` crate
    /// stops at: nothing more to check.
    Done,
}

/// A reader of a tar stream that refuses oversized extension headers before
/// the `tar` crate reads them (see the module doc).
pub(crate) struct HeaderGuard<R> {
    inner: R,
    /// Bytes passed through so far.
    pos: u64,
    state: State,
    /// The header or extension block being collected.
    block: Vec<u8>,
    /// A PAX header's records being kept.
    records: Vec<u8>,
    /// The records of the PAX header waiting for the entry it describes
    /// (`tar` applies its `size` to the next entry that is not an
    /// extension header).
    pending: Option<Vec<u8>>,
    /// The name of the old GNU sparse entry whose extension blocks are
    /// being read.
    sparse_name: Vec<u8>,
}

impl<R> HeaderGuard<R> {
    pub fn new(inner: R) -> Self {
        HeaderGuard {
            inner,
            pos: 0,
            state: State::Header,
            block: Vec::with_capacity(BLOCK as usize),
            records: Vec::new(),
            pending: None,
            sparse_name: Vec::new(),
        }
    }

    /// The stream, for reading what follows the archive.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follow `data`, the next bytes of the stream.
    fn observe(&mut self, mut data: &[u8]) -> Result<(), Refused> {
        while !data.is_empty() {
            let take = |until: u64, pos: u64, data: &[u8]| (until - pos).min(data.len() as u64);
            match self.state {
                State::Done => return Ok(()),
                State::Skip(until) => {
                    let n = take(until, self.pos, data);
                    self.pos += n;
                    data = &data[n as usize..];
                    if self.pos == until {
                        self.state = State::Header;
                    }
                }
                State::Records { end, padded } => {
                    let n = take(end, self.pos, data);
                    self.records.extend_from_slice(&data[..n as usize]);
                    self.pos += n;
                    data = &data[n as usize..];
                    if self.pos == end {
                        self.pending = Some(std::mem::take(&mut self.records));
                        self.state = State::Skip(padded);
                        if padded == end {
                            self.state = State::Header;
                        }
                    }
                }
                State::Header | State::SparseExt { .. } => {
                    let n = (BLOCK as usize - self.block.len()).min(data.len());
                    self.block.extend_from_slice(&data[..n]);
                    self.pos += n as u64;
                    data = &data[n..];
                    if self.block.len() == BLOCK as usize {
                        let block = std::mem::take(&mut self.block);
                        self.state = match self.state {
                            State::SparseExt {
                                content_end,
                                blocks,
                            } => self.sparse_ext(&block, content_end, blocks)?,
                            _ => self.header(&block)?,
                        };
                        self.block = block;
                        self.block.clear();
                    }
                }
            }
        }
        Ok(())
    }

    /// What follows the header `block`, as the `tar` crate reads it.
    fn header(&mut self, block: &[u8]) -> Result<State, Refused> {
        if block.iter().all(|b| *b == 0) {
            return Ok(State::Done); // the end of the archive
        }
        let header = tar::Header::from_byte_slice(block);
        let sum = block[..148]
            .iter()
            .chain(&block[156..])
            .fold(0u32, |a, b| a + u32::from(*b))
            + 8 * 32;
        if header.cksum().ok() != Some(sum) {
            return Ok(State::Done); // the tar crate stops here
        }
        let kind = header.entry_type();
        let pax = kind.is_pax_local_extensions();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || pax
            || kind.is_pax_global_extensions();
        let Ok(declared) = header.entry_size() else {
            return Ok(State::Done); // the tar crate stops here
        };
        if extension && declared > MAX_EXTENSION_HEADER {
            let what = match kind.as_byte() {
                b'x' => "PAX extended header",
                b'g' => "PAX global header",
                b'L' => "GNU long name",
                _ => "GNU long link name",
            };
            return Err(Refused {
                name: header.path_bytes().into_owned(),
                why: format!(
                    "its {what} (type '{}') declares {declared} bytes, more than the 1 MiB ({MAX_EXTENSION_HEADER} bytes) an extension header may hold; Go's archive/tar (umoci, podman) refuses it too",
                    kind.as_byte() as char
                ),
            });
        }
        let size = if extension {
            declared
        } else {
            self.pending
                .as_deref()
                .and_then(pax_size)
                .unwrap_or(declared)
        };
        let start = self.pos;
        let Some(padded) = size
            .checked_add(BLOCK - 1)
            .map(|s| s & !(BLOCK - 1))
            .and_then(|s| start.checked_add(s))
        else {
            return Ok(State::Done); // the tar crate stops here
        };
        let recognised = header.as_gnu().is_some() || header.as_ustar().is_some();
        // `tar` consumes these and reads on to the entry they describe.
        if recognised && pax {
            if self.pending.is_some() {
                return Ok(State::Done); // two PAX headers: the tar crate stops
            }
            self.records.clear();
            return Ok(State::Records {
                end: start + size,
                padded,
            });
        }
        if !(recognised && (kind.is_gnu_longname() || kind.is_gnu_longlink())) {
            // An entry handed out: the PAX records were its own.
            self.pending = None;
            if kind.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended()) {
                self.sparse_name = header.path_bytes().into_owned();
                return Ok(State::SparseExt {
                    content_end: padded,
                    blocks: 4,
                });
            }
        }
        Ok(if padded == start {
            State::Header
        } else {
            State::Skip(padded)
        })
    }

    /// An old GNU sparse extension block: 21 more blocks of the map, and
    /// whether another extension block follows.
    fn sparse_ext(
        &mut self,
        block: &[u8],
        content_end: u64,
        blocks: u64,
    ) -> Result<State, Refused> {
        let blocks = blocks + 21;
        if blocks > MAX_SPARSE_BLOCKS {
            return Err(Refused {
                name: std::mem::take(&mut self.sparse_name),
                why: format!(
                    "its old GNU sparse map goes on past {MAX_SPARSE_BLOCKS} blocks, the most a sparse map may list"
                ),
            });
        }
        // A sparse header's content starts after its extension blocks.
        let content_end = content_end + BLOCK;
        Ok(if block[504] == 1 {
            State::SparseExt {
                content_end,
                blocks,
            }
        } else if content_end == self.pos {
            State::Header
        } else {
            State::Skip(content_end)
        })
    }
}

/// The `size` record of PAX records, as the `tar` crate reads it (the
/// first one; none when a record before it is malformed or its value is
/// not a number).
fn pax_size(records: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(records) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse().ok();
    }
    None
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n]).map_err(io::Error::other)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header block of `kind` named `name` declaring `size` bytes.
    fn header(name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    fn pax_record(key: &str, value: &str) -> Vec<u8> {
        let rest = format!(" {key}={value}\n");
        let mut len = rest.len() + 1;
        while format!("{len}{rest}").len() != len {
            len += 1;
        }
        format!("{len}{rest}").into_bytes()
    }

    fn padded(mut data: Vec<u8>) -> Vec<u8> {
        data.resize(data.len().div_ceil(512) * 512, 0);
        data
    }

    /// The paths the tar crate reads through the guard, or the error.
    fn read(stream: &[u8], chunk: usize) -> Result<Vec<String>, String> {
        struct Chunks<'a>(&'a [u8], usize);
        impl Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut archive = tar::Archive::new(HeaderGuard::new(Chunks(stream, chunk)));
        let mut names = Vec::new();
        for e in archive.entries().map_err(|e| e.to_string())? {
            let mut e = e.map_err(|e| match refusal(&e) {
                Some(r) => r.to_string(),
                None => format!("damaged: {e}"),
            })?;
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            names.push(format!(
                "{}:{}",
                String::from_utf8_lossy(&e.path_bytes()),
                content.len()
            ));
        }
        Ok(names)
    }

    #[test]
    fn the_guard_follows_sizes_as_the_tar_crate_does() {
        use tar::EntryType as K;
        let mut s = Vec::new();
        // A PAX size moving the next entry (header size 0), a long name,
        // a global header, a PAX header whose size is not a number.
        let records = padded(pax_record("size", "700"));
        s.extend(header("PaxHeaders/a", K::XHeader, records.len() as u64));
        s.extend(records);
        s.extend(header("a", K::Regular, 0));
        s.extend(padded(vec![b'a'; 700]));
        let long = "l".repeat(300);
        s.extend(header("././@LongLink", K::GNULongName, 301));
        s.extend(padded(format!("{long}\0").into_bytes()));
        s.extend(header("short", K::Regular, 3));
        s.extend(padded(b"abc".to_vec()));
        s.extend(header("global", K::XGlobalHeader, 20));
        s.extend(padded(pax_record("size", "9999")));
        s.extend(header("b", K::Regular, 2));
        s.extend(padded(b"bb".to_vec()));
        s.extend(vec![0; 1024]);
        let want = vec![
            "a:700".to_owned(),
            format!("{long}:3"),
            "global:20".to_owned(),
            "b:2".to_owned(),
        ];
        for chunk in [1, 100, 512, 4096] {
            assert_eq!(read(&s, chunk).unwrap(), want, "chunk {chunk}");
        }
    }

    #[test]
    fn oversized_extension_headers_are_refused_before_they_are_read() {
        use tar::EntryType as K;
        for (kind, what) in [
            (K::XHeader, "PAX extended header (type 'x')"),
            (K::XGlobalHeader, "PAX global header (type 'g')"),
            (K::GNULongName, "GNU long name (type 'L')"),
            (K::GNULongLink, "GNU long link name (type 'K')"),
        ] {
            // No content follows: a read of it would fail as damaged.
            let s = header("big", kind, MAX_EXTENSION_HEADER + 1);
            assert_eq!(
                read(&s, 512).unwrap_err(),
                format!("entry \"big\" refused: its {what} declares 1048577 bytes, more than the 1 MiB (1048576 bytes) an extension header may hold; Go's archive/tar (umoci, podman) refuses it too")
            );
            // 1 MiB itself is read.
            let mut s = header("ok", kind, MAX_EXTENSION_HEADER);
            s.extend(vec![b'a'; MAX_EXTENSION_HEADER as usize]);
            let r = read(&s, 4096);
            assert!(
                r.as_ref().map_or_else(|e| !e.contains("refused"), |_| true),
                "{r:?}"
            );
        }
        // An old GNU sparse map that goes on and on: refused past the
        // cap, at its 6,242nd extension block (4 blocks, then 21 a block).
        let mut h = tar::Header::new_gnu();
        h.set_path("sparse").unwrap();
        h.set_entry_type(K::GNUSparse);
        h.set_size(0);
        h.as_gnu_mut().unwrap().isextended[0] = 1;
        h.set_cksum();
        let mut s = h.as_bytes().to_vec();
        let mut ext = [0u8; 512];
        ext[504] = 1;
        for _ in 0..6242 {
            s.extend_from_slice(&ext);
        }
        assert_eq!(
            read(&s, 4096).unwrap_err(),
            "entry \"sparse\" refused: its old GNU sparse map goes on past 131072 blocks, the most a sparse map may list"
        );
        s.truncate(512 * 6242);
        assert!(read(&s, 4096).unwrap_err().starts_with("damaged"));
        // Behind a PAX header that moves it, the big header is still found.
        let records = padded(pax_record("size", "1024"));
        let mut s = header("PaxHeaders/a", K::XHeader, records.len() as u64);
        s.extend(records);
        s.extend(header("a", K::Regular, 0));
        s.extend(vec![b'a'; 1024]);
        s.extend(header("next", K::GNULongName, 200 << 20));
        assert!(read(&s, 7).unwrap_err().contains("GNU long name"));
    }
}
