//! The Nix archive (NAR) of a file tree and its hash: what Nix computes
//! for a fixed-output derivation with `outputHashMode = "recursive"`, so
//! that `nixoci prefetch` can print the `hash` an `ociPullImage` will
//! have.
//!
//! The format (from the Nix manual and thesis): every string is its length
//! as a little-endian 64-bit number, its bytes, and zeros to a multiple of
//! 8. An archive is `"nix-archive-1"` and a node; a node is `"("`,
//! `"type"`, then one of
//!
//! - `"regular"`, `"executable" ""` if any execute bit is set,
//!   `"contents"` and the bytes;
//! - `"symlink"`, `"target"` and the target;
//! - `"directory"`, and per entry, in byte order of the names, `"entry"
//!   "(" "name" NAME "node" NODE ")"`;
//!
//! and `")"`. Nothing else of a file (owner, times, other mode bits) is
//! in it.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::rootfs::{Dir, Kind};

/// Write the NAR of `path` (not following a symbolic link at `path`
/// itself, nor any below it) to `out`. `path` is a path of this machine
/// (what `nixoci prefetch` hashes); a path of an unpacked image is read
/// with `dump_at`.
pub fn dump(path: &Path, out: &mut impl Write) -> Result<()> {
    string(out, b"nix-archive-1").at(path)?;
    let meta = fs::symlink_metadata(path).at(path)?;
    if meta.is_dir() {
        strings(out, &[b"(", b"type"]).at(path)?;
        directory(&Dir::open_host(path)?, out)?;
        return string(out, b")").at(path);
    }
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        ),
        _ => (Path::new("."), path.as_os_str()),
    };
    node(&Dir::open_host(parent)?, name, out)
}

/// Write the NAR of the entry `name` of `dir` (an unpacked image's
/// directory, found through [`crate::rootfs`]) to `out`: every entry read
/// by name from its directory's descriptor, links hashed as links, never
/// followed.
pub fn dump_at(dir: &Dir, name: &OsStr, out: &mut impl Write) -> Result<()> {
    string(out, b"nix-archive-1").at(dir.shown())?;
    node(dir, name, out)
}

/// The sha256 of the NAR of `path`.
pub fn hash(path: &Path) -> Result<[u8; 32]> {
    let mut h = HashWriter(Sha256::new());
    dump(path, &mut h)?;
    Ok(h.0.finalize().into())
}

/// A sha256 as Nix writes it in SRI form: `sha256-` and its base64.
pub fn sri(hash: &[u8; 32]) -> String {
    use base64::Engine as _;
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// What [`info`] finds of a tree: the NAR's sha256 and size, and which
/// of the hash parts asked about it holds.
#[derive(Clone, Debug)]
pub struct NarInfo {
    pub hash: [u8; 32],
    pub size: u64,
    /// The store path hash parts (32 base-32 characters) found in the
    /// NAR: file contents, names and link targets, as Nix's reference
    /// scanner finds them.
    pub references: BTreeSet<[u8; 32]>,
}

/// The NAR hash and size of `path`, and which of `wanted` (store path hash
/// parts) occur in its NAR: what Nix records as the store path's
/// `narHash`, `narSize` and `references` (when `wanted` holds the hash
/// parts of every path that could be referred to).
pub fn info(dir: &Dir, name: &OsStr, wanted: &HashSet<[u8; 32]>) -> Result<NarInfo> {
    let mut sink = InfoWriter {
        hash: Sha256::new(),
        size: 0,
        tail: Vec::new(),
        wanted,
        found: BTreeSet::new(),
    };
    dump_at(dir, name, &mut sink)?;
    Ok(NarInfo {
        hash: sink.hash.finalize().into(),
        size: sink.size,
        references: sink.found,
    })
}

/// Nix's base-32 alphabet (no e, o, u, t).
const BASE32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

fn is_base32(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'd' | b'f'..=b'n' | b'p'..=b's' | b'v'..=b'z')
}

/// A hash in Nix's base-32 form (`nix path-info` prints a NAR hash as
/// `sha256:` and this): five bits a character, the last byte's high
/// bits first.
pub fn nix_base32(bytes: &[u8]) -> String {
    let len = (bytes.len() * 8).div_ceil(5);
    (0..len)
        .rev()
        .map(|n| {
            let (b, j) = ((n * 5) / 8, (n * 5) % 8);
            let low = bytes[b] >> j;
            let high = bytes.get(b + 1).map_or(0, |x| (*x as u16) << (8 - j)) as u8;
            BASE32[((low | high) & 0x1f) as usize] as char
        })
        .collect()
}

/// Hashes, counts and scans a NAR as it is written.
struct InfoWriter<'a> {
    hash: Sha256,
    size: u64,
    /// The end of the last buffer, when it ends in a run of base-32
    /// characters (at most 31 of them): a hash part may span two writes.
    tail: Vec<u8>,
    wanted: &'a HashSet<[u8; 32]>,
    found: BTreeSet<[u8; 32]>,
}

impl Write for InfoWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.size += buf.len() as u64;
        let mut i = 0;
        while i < buf.len() {
            if !is_base32(buf[i]) {
                self.tail.clear();
                i += 1;
                continue;
            }
            let start = i;
            while i < buf.len() && is_base32(buf[i]) {
                i += 1;
            }
            let mut run = std::mem::take(&mut self.tail);
            if start != 0 {
                run.clear();
            }
            run.extend_from_slice(&buf[start..i]);
            for w in run.windows(32) {
                if let Ok(part) = <[u8; 32]>::try_from(w) {
                    if self.wanted.contains(&part) {
                        self.found.insert(part);
                    }
                }
            }
            if i == buf.len() {
                let keep = run.len().min(31);
                self.tail = run[run.len() - keep..].to_vec();
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

fn string(out: &mut impl Write, s: &[u8]) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s)?;
    out.write_all(&[0u8; 8][..padding(s.len() as u64)])
}

fn strings(out: &mut impl Write, all: &[&[u8]]) -> io::Result<()> {
    all.iter().try_for_each(|s| string(out, s))
}

/// The node of the entry `name` of `dir`.
fn node(dir: &Dir, name: &OsStr, out: &mut impl Write) -> Result<()> {
    let path = dir.shown().join(name);
    let path = path.as_path();
    let meta = dir.meta(name)?;
    strings(out, &[b"(", b"type"]).at(path)?;
    match meta.kind {
        Kind::Symlink => {
            let target = dir.read_link(name)?;
            strings(out, &[b"symlink", b"target", &target]).at(path)?;
        }
        Kind::File => {
            // Mode and size of what is read: the open file's.
            let (mut f, meta) = dir.open_file(name)?;
            string(out, b"regular").at(path)?;
            if meta.mode & 0o111 != 0 {
                strings(out, &[b"executable", b""]).at(path)?;
            }
            string(out, b"contents").at(path)?;
            let len = meta.size;
            out.write_all(&len.to_le_bytes()).at(path)?;
            let copied = io::copy(&mut (&mut f).take(len), out).at(path)?;
            if copied != len {
                return Err(Error::Invalid(format!(
                    "{}: changed while being read ({len} bytes expected, {copied} read)",
                    path.display()
                )));
            }
            out.write_all(&[0u8; 8][..padding(len)]).at(path)?;
        }
        Kind::Dir => directory(&dir.open_dir(name)?, out)?,
        Kind::Other => {
            return Err(Error::Invalid(format!(
                "{}: not a file, directory or symbolic link; a Nix archive holds only those",
                path.display()
            )))
        }
    }
    string(out, b")").at(path)
}

/// A directory node's body and end: its entries in byte order of names.
fn directory(dir: &Dir, out: &mut impl Write) -> Result<()> {
    let path = dir.shown();
    string(out, b"directory").at(path)?;
    for name in dir.names()? {
        strings(out, &[b"entry", b"(", b"name", name.as_bytes(), b"node"]).at(path)?;
        node(dir, &name, out)?;
        string(out, b")").at(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A single file's archive, byte for byte as the format gives it.
    #[test]
    fn one_file() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, b"hi").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let mut got = Vec::new();
        dump(&f, &mut got).unwrap();
        let mut want = Vec::new();
        for s in [
            &b"nix-archive-1"[..],
            b"(",
            b"type",
            b"regular",
            b"contents",
            b"hi",
            b")",
        ] {
            want.extend_from_slice(&(s.len() as u64).to_le_bytes());
            want.extend_from_slice(s);
            want.resize(want.len().div_ceil(8) * 8, 0);
        }
        assert_eq!(got, want);
        assert_eq!(
            sri(&[0; 32]),
            "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
    }

    /// Hash parts are found in contents, names and link targets, across
    /// write boundaries.
    #[test]
    fn references_are_found_as_nix_finds_them() {
        let t = tempfile::tempdir().unwrap();
        let a = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
        let b = "zyxwvsrqpnmlkjihgfdcba9876543210";
        let c = "00000000000000000000000000000000";
        let root = t.path().join("p");
        fs::create_dir(&root).unwrap();
        // A long file: the hash part straddles the copy's buffers.
        let mut big = vec![b'.'; 8192 - 10];
        big.extend_from_slice(format!("/nix/store/{a}-x").as_bytes());
        fs::write(root.join("big"), &big).unwrap();
        std::os::unix::fs::symlink(format!("/nix/store/{b}-y/bin"), root.join("link")).unwrap();
        fs::write(root.join(format!("x{c}")), b"name only").unwrap();
        let wanted: HashSet<[u8; 32]> = [a, b, c, "11111111111111111111111111111111"]
            .iter()
            .map(|s| <[u8; 32]>::try_from(s.as_bytes()).unwrap())
            .collect();
        let got = info(&Dir::open_host(t.path()).unwrap(), OsStr::new("p"), &wanted).unwrap();
        let names: Vec<String> = got
            .references
            .iter()
            .map(|r| String::from_utf8(r.to_vec()).unwrap())
            .collect();
        assert_eq!(names, [c, a, b]);
        assert_eq!(got.hash, hash(&root).unwrap());
        let mut nar = Vec::new();
        dump(&root, &mut nar).unwrap();
        assert_eq!(got.size, nar.len() as u64);
        // Nix's own rendering of a known hash: sha256 of "" in base 32.
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(
            nix_base32(&empty),
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
    }
}
