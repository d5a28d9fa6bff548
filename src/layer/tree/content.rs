//! Comparing the bytes of two files: on disk (streamed) or inline.

use std::io::{self, Read};
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::oci::json::open_regular;

/// A file's bytes: the file at a path, or bytes held inline.
pub(super) type Content<'a> = (&'a Path, Option<&'a [u8]>);

/// Whether two files hold the same bytes (streamed, never both in memory;
/// inline bytes are in memory already).
pub(super) fn same_content(a: Content, b: Content) -> Result<bool> {
    match (a, b) {
        ((_, Some(x)), (_, Some(y))) => return Ok(x == y),
        ((path, None), (_, Some(text))) | ((_, Some(text)), (path, None)) => {
            let (f, m) = open_regular(path)?;
            if m.len() != text.len() as u64 {
                return Ok(false);
            }
            let mut bytes = Vec::with_capacity(text.len());
            f.take(m.len() + 1).read_to_end(&mut bytes).at(path)?;
            return Ok(bytes == text);
        }
        _ => {}
    }
    let (a, b) = (a.0, b.0);
    let ((fa, ma), (fb, mb)) = (open_regular(a)?, open_regular(b)?);
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let mut fa = io::BufReader::with_capacity(1 << 16, fa);
    let mut fb = io::BufReader::with_capacity(1 << 16, fb);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let na = read_full(&mut fa, &mut ba).at(a)?;
        let nb = read_full(&mut fb, &mut bb).at(b)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Read until `buf` is full or the input ends; the number of bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
