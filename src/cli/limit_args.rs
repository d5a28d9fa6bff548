//! The bounds on reading layers (`LimitArgs`), as every command that reads
//! layers takes them: unpack and diff over the whole image, verify for each
//! layer, attach and artifact pull for what they read.

use clap::Args;

/// Bounds on reading layers (unpack: over the whole image; verify: for
/// each layer).
#[derive(Debug, Args)]
pub(super) struct LimitArgs {
    /// Most entries (files, directories, links).
    #[arg(long, default_value_t = 1_000_000)]
    max_entries: u64,
    /// Largest single file, in bytes (16 GiB).
    #[arg(long, default_value_t = 16 << 30)]
    max_file_size: u64,
    /// Most bytes of file content, and most bytes of uncompressed layer
    /// content (64 GiB); decompression stops there.
    #[arg(long, default_value_t = 64 << 30)]
    max_total_size: u64,
}

impl LimitArgs {
    pub(super) fn limits(&self) -> crate::unpack::Limits {
        crate::unpack::Limits {
            max_entries: self.max_entries,
            max_file_size: self.max_file_size,
            max_total_size: self.max_total_size,
        }
    }
}
