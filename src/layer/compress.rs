//! Layer compression: gzip, zstd or none, each producing the same bytes on
//! every machine. The compressors are vendored C (libdeflate for gzip, see
//! `pargz`; zstd), pinned by Cargo.lock, so their output cannot drift with
//! the host. Decompression uses zlib-rs (pure Rust) and zstd.

use std::io::{self, Read, Write};

use serde::{Deserialize, Deserializer, Serialize};

use crate::oci::MediaType;

/// How a layer's tar stream is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (the default).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// None: a plain tar.
    None,
}

/// A name from a spec, with a message of ours for anything else (`null`,
/// a number, an unknown name).
impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if s == "gzip" => Ok(Compression::Gzip),
            serde_json::Value::String(s) if s == "zstd" => Ok(Compression::Zstd),
            serde_json::Value::String(s) if s == "none" => Ok(Compression::None),
            other => Err(D::Error::custom(format!(
                "compression must be \"gzip\", \"zstd\" or \"none\", not {other} \
                 (leave it out for gzip)"
            ))),
        }
    }
}

/// zstd level used for layers (the zstd CLI default).
const ZSTD_LEVEL: u32 = 3;

/// The most compression threads: what `--threads` accepts.
pub const MAX_THREADS: usize = 1024;

/// Compression threads by default: `$NIX_BUILD_CORES` inside a Nix build
/// (when set and not 0), else the cores this process may use. A value
/// above [`MAX_THREADS`] is an error, as it is for `--threads`.
pub fn default_threads() -> crate::error::Result<usize> {
    let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
    let Ok(v) = std::env::var("NIX_BUILD_CORES") else {
        return Ok(cores());
    };
    match v.trim().parse::<usize>() {
        Ok(0) => Ok(cores()),
        Ok(n) if n <= MAX_THREADS => Ok(n),
        _ if v.trim().is_empty() => Ok(cores()),
        _ => Err(crate::error::Error::Invalid(format!(
            "NIX_BUILD_CORES={v:?} is not a thread count from 0 to {MAX_THREADS}: \
             set it lower (0 means all cores), or pass --threads"
        ))),
    }
}

/// gzip level used for layers (the gzip CLI default).
const GZIP_LEVEL: u32 = 6;

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn layer_media_type(self) -> MediaType {
        match self {
            Compression::Gzip => MediaType::LAYER_GZIP,
            Compression::Zstd => MediaType::LAYER_ZSTD,
            Compression::None => MediaType::LAYER,
        }
    }

    /// The compression a layer media type implies, if nixoci knows it.
    pub fn from_layer_media_type(media_type: &MediaType) -> Option<Self> {
        match media_type {
            m if *m == MediaType::LAYER_GZIP || *m == MediaType::DOCKER_LAYER_GZIP => {
                Some(Compression::Gzip)
            }
            m if *m == MediaType::LAYER_ZSTD => Some(Compression::Zstd),
            m if *m == MediaType::LAYER => Some(Compression::None),
            _ => None,
        }
    }

    /// Check a level for this compression: gzip 1-9, zstd 1-19, none takes
    /// none.
    pub fn check_level(self, level: Option<u32>) -> Result<(), String> {
        match (self, level) {
            (_, None) => Ok(()),
            (Compression::Gzip, Some(1..=9)) | (Compression::Zstd, Some(1..=19)) => Ok(()),
            (Compression::None, Some(l)) => {
                Err(format!("level {l} given for an uncompressed layer"))
            }
            (c, Some(l)) => Err(format!(
                "level {l} is out of range for {c} ({})",
                if c == Compression::Gzip {
                    "1-9"
                } else {
                    "1-19"
                }
            )),
        }
    }

    /// Wrap `out` in an encoder of this kind, at `level` (default: gzip 6,
    /// zstd 3), compressing on `threads` threads. The bytes depend on the
    /// level, never on the thread count.
    pub fn encoder<W: Write>(
        self,
        out: W,
        level: Option<u32>,
        threads: usize,
    ) -> io::Result<Encoder<W>> {
        self.check_level(level).map_err(io::Error::other)?;
        Ok(match self {
            Compression::Gzip => Encoder::Gzip(crate::layer::pargz::ParallelGzip::new(
                out,
                level.unwrap_or(GZIP_LEVEL),
                threads,
            )?),
            Compression::Zstd => {
                let mut enc =
                    zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_LEVEL) as i32)?;
                // Multi-threaded mode: its output is the same for any worker
                // count >= 1, unlike single-threaded mode (nbWorkers = 0).
                enc.multithread(threads.clamp(1, 256) as u32)?;
                enc.include_checksum(true)?;
                Encoder::Zstd(enc)
            }
            Compression::None => Encoder::None(out),
        })
    }

    /// A reader that decompresses `input` of this kind.
    pub fn decoder<'a, R: Read + 'a>(self, input: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
            Compression::None => Box::new(input),
        })
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        })
    }
}

/// A streaming compressor; `finish` flushes the trailer and returns the sink.
pub enum Encoder<W: Write> {
    Gzip(crate::layer::pargz::ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Compression) -> Vec<u8> {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = c.encoder(Vec::new(), None, 2).unwrap();
        enc.write_all(&data).unwrap();
        let out = enc.finish().unwrap();
        let mut back = Vec::new();
        c.decoder(&out[..]).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        out
    }

    #[test]
    fn each_compression_round_trips_and_is_stable() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            assert_eq!(
                roundtrip(c),
                roundtrip(c),
                "{c} output differs between runs"
            );
        }
    }

    #[test]
    fn gzip_header_carries_no_name_time_or_os() {
        let out = roundtrip(Compression::Gzip);
        // ID1 ID2 CM FLG MTIME(4) XFL OS
        assert_eq!(
            &out[..4],
            &[0x1f, 0x8b, 8, 0],
            "no FNAME/FCOMMENT/FEXTRA flags"
        );
        assert_eq!(&out[4..8], &[0, 0, 0, 0], "mtime is zero");
        assert_eq!(out[9], 255, "OS byte is 'unknown'");
    }
}
