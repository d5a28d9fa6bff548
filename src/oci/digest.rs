//! sha256 digests, computed while bytes stream past, so that a layer is hashed
//! (uncompressed for its diff_id, compressed for its digest) in the same pass
//! that writes it.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// A sha256 digest in its OCI string form, `sha256:<64 hex>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The 64 lowercase hex characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The short form people read in listings: `sha256:` and the first 12
    /// hex characters.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex()[..12])
    }

    /// Digest of a byte string.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    /// Parse `sha256:<64 lowercase hex>`; any other algorithm or form is refused.
    pub fn parse(s: &str) -> Option<Self> {
        let hex_part = s.strip_prefix("sha256:")?;
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).ok()?;
        Some(Sha256Digest(out))
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl std::str::FromStr for Sha256Digest {
    type Err = String;

    /// [`Sha256Digest::parse`], with a message saying what is wrong.
    fn from_str(s: &str) -> Result<Self, String> {
        Sha256Digest::parse(s).ok_or_else(|| {
            format!("digest {s:?} is not of the form sha256:<64 lowercase hex digits>")
        })
    }
}

/// Written as `sha256:<hex>`.
impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read from `sha256:<64 lowercase hex>`, and nothing else: a document
/// whose digest is malformed does not parse (with the digest named).
impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes and counts every byte on its way to `inner`.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    /// Hash and count what is written through to `inner`.
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the digest and the number of bytes written.
    pub fn finish(self) -> (W, Sha256Digest, u64) {
        (
            self.inner,
            Sha256Digest(self.hasher.finalize().into()),
            self.count,
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts every byte read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    /// Hash and count what is read from `inner`.
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and number of bytes read so far.
    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest(self.hasher.finalize().into()), self.count)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Digest and size of everything `reader` yields.
pub(crate) fn digest_reader(reader: impl Read) -> io::Result<(Sha256Digest, u64)> {
    let mut hr = HashReader::new(reader);
    io::copy(&mut hr, &mut io::sink())?;
    Ok(hr.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_of_empty_json_object() {
        // The OCI "empty descriptor" digest, from the image spec.
        assert_eq!(
            Sha256Digest::of(b"{}").to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn writer_and_reader_agree() {
        let data = vec![7u8; 100_000];
        let mut w = HashWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, d, n) = w.finish();
        assert_eq!(out, data);
        assert_eq!(n, 100_000);
        assert_eq!(digest_reader(&data[..]).unwrap(), (d.clone(), 100_000));
        assert_eq!(d, Sha256Digest::of(&data));
    }

    #[test]
    fn parse_rejects_bad_forms() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(Sha256Digest::parse(&good).is_some());
        assert!(Sha256Digest::parse(&good.to_uppercase()).is_none());
        assert!(Sha256Digest::parse(&format!("sha512:{}", "a".repeat(64))).is_none());
        assert!(Sha256Digest::parse(&format!("sha256:{}", "a".repeat(63))).is_none());
        assert!(Sha256Digest::parse(&format!("sha256:{}", "g".repeat(64))).is_none());
    }
}
