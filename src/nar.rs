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

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext, Result};

/// Write the NAR of `path` (not following a symbolic link at `path`
/// itself) to `out`.
pub fn dump(path: &Path, out: &mut impl Write) -> Result<()> {
    string(out, b"nix-archive-1").at(path)?;
    node(path, out)
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

fn node(path: &Path, out: &mut impl Write) -> Result<()> {
    let meta = fs::symlink_metadata(path).at(path)?;
    let ft = meta.file_type();
    strings(out, &[b"(", b"type"]).at(path)?;
    if ft.is_symlink() {
        let target = fs::read_link(path).at(path)?;
        strings(out, &[b"symlink", b"target", target.as_os_str().as_bytes()]).at(path)?;
    } else if ft.is_file() {
        string(out, b"regular").at(path)?;
        if meta.permissions().mode() & 0o111 != 0 {
            strings(out, &[b"executable", b""]).at(path)?;
        }
        string(out, b"contents").at(path)?;
        let len = meta.len();
        out.write_all(&len.to_le_bytes()).at(path)?;
        let mut f = fs::File::open(path).at(path)?;
        let copied = io::copy(&mut (&mut f).take(len), out).at(path)?;
        if copied != len {
            return Err(Error::Invalid(format!(
                "{}: changed while being read ({len} bytes expected, {copied} read)",
                path.display()
            )));
        }
        out.write_all(&[0u8; 8][..padding(len)]).at(path)?;
    } else if ft.is_dir() {
        string(out, b"directory").at(path)?;
        let mut names: Vec<_> = fs::read_dir(path)
            .at(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .at(path)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            strings(out, &[b"entry", b"(", b"name", name.as_bytes(), b"node"]).at(path)?;
            node(&path.join(&name), out)?;
            string(out, b")").at(path)?;
        }
    } else {
        return Err(Error::Invalid(format!(
            "{}: not a file, directory or symbolic link; a Nix archive holds only those",
            path.display()
        )));
    }
    string(out, b")").at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
