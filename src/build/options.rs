//! How a building block runs ([`Options`]) and the context its layers are
//! written in ([`Ctx`]).

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::layout::Staging;
use crate::progress::{Progress, Silent};

/// How an output is written. Start from `Default` and set fields: more
/// may come.
#[non_exhaustive]
pub struct Options<'a> {
    /// Replace an existing output directory.
    pub force: bool,
    /// Compression threads (0: `$NIX_BUILD_CORES` inside a Nix build, else
    /// the cores this process may use).
    pub threads: usize,
    /// Compression level for layers whose spec gives none.
    pub level: Option<u32>,
    /// Write into the output path directly, not through a temporary sibling
    /// (for Nix builders: Nix itself discards the output of a failed build,
    /// and the store directory is not writable).
    pub in_place: bool,
    /// Receives the progress of the layers being written (default: [`Silent`]).
    pub progress: &'a dyn Progress,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            force: false,
            threads: 0,
            level: None,
            in_place: false,
            progress: &Silent,
        }
    }
}

impl Options<'_> {
    /// Start the output, and the context the layers are built in. With
    /// `force`, no input (the spec, a source, a layer, config or manifest
    /// directory, the directories holding their blobs) may be the output
    /// that is about to be replaced, or lie inside it.
    pub(super) fn start(&self, out: &Path, inputs: &[PathBuf]) -> Result<(Staging, Ctx<'_>)> {
        let staging = if self.in_place {
            Staging::in_place(out)?
        } else {
            Staging::new(out, self.force, inputs)?
        };
        let mut protect = vec![std::fs::canonicalize(staging.path()).at(staging.path())?];
        if self.force {
            if let Ok(old) = std::fs::canonicalize(out) {
                protect.push(old);
            }
        }
        Ok((
            staging,
            Ctx {
                progress: self.progress,
                protect,
                threads: if self.threads == 0 {
                    crate::layer::compress::default_threads()?
                } else {
                    self.threads
                },
                level: self.level,
            },
        ))
    }
}

/// What building layers needs besides the spec.
pub struct Ctx<'a> {
    pub progress: &'a dyn Progress,
    /// Directories no source may contain or lie in (the output being
    /// written, the output being replaced).
    pub protect: Vec<PathBuf>,
    pub threads: usize,
    /// Level for layers whose spec gives none.
    pub level: Option<u32>,
}
