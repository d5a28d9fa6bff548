//! Comparing the bytes of two file entries: on disk (streamed) or inline.

use super::*;

/// Whether two file entries hold the same bytes (streamed, never both in
/// memory; an inline file's bytes are in memory already).
pub(super) fn same_content(a: &Entry, b: &Entry) -> Result<bool> {
    match (&a.inline, &b.inline) {
        (Some(x), Some(y)) => return Ok(x == y),
        (Some(text), None) | (None, Some(text)) => {
            let on_disk = if a.inline.is_none() { a } else { b };
            let (f, m) = open_regular(&on_disk.origin)?;
            if m.len() != text.len() as u64 {
                return Ok(false);
            }
            let mut bytes = Vec::with_capacity(text.len());
            f.take(m.len() + 1)
                .read_to_end(&mut bytes)
                .at(&on_disk.origin)?;
            return Ok(*bytes == **text);
        }
        (None, None) => {}
    }
    let (a, b) = (a.origin.as_path(), b.origin.as_path());
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
