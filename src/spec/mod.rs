//! The JSON input model: what a layer, an image and a layout are made of.
//!
//! Every struct refuses unknown fields, so a typo is an error, not a silently
//! ignored setting. Relative paths in a spec are relative to the directory of
//! the spec file, so a spec means the same thing from any working directory.
//!
//! Part of the library's API: a program reads a spec with [`load`], or
//! makes one from JSON (`serde_json::from_value`) or from `Default` and
//! its fields (the structs are `#[non_exhaustive]`: fields may be added).

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod de;
mod image;
mod layer;
mod layout;

pub use crate::accounts::{Group, User};
use crate::error::{IoContext, Result};
pub use crate::layer::compress::Compression;
use crate::oci::json::parse_json;
use crate::oci::reference::validate_tag;
pub use image::{ContainerConfig, ImageSpec, LayerRef};
pub use layer::{
    BaseSymlinks, ClosureSpec, DirectorySpec, FileSpec, FromImage, LayerSpec, PermSpec, SymlinkSpec,
};
pub use layout::{BudgetRule, GraphSpec, LayersSpec, LayoutSpec};

/// Read and parse a JSON spec file (`-`: standard input).
pub fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).at("(standard input)")?;
        b
    } else {
        crate::oci::json::read_regular(path)?
    };
    parse_json(path, &bytes)
}

/// The directory relative paths in the spec at `spec_path` are resolved
/// against (the working directory for a spec read from standard input).
pub(crate) fn base_dir(spec_path: &Path) -> PathBuf {
    if spec_path == Path::new("-") {
        return PathBuf::from(".");
    }
    match spec_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `path` if absolute, else `base/path`; `path` as written when `base` is
/// `.` (a spec in the working directory), so that messages name it as
/// the user wrote it, not as `./path`.
pub(crate) fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() || base == Path::new(".") {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// The tags to write: the given ones (validated, duplicates dropped, order
/// kept) or `latest`.
pub(crate) fn tags_or_default(tags: &[String]) -> Result<Vec<String>> {
    if tags.is_empty() {
        return Ok(vec!["latest".to_owned()]);
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        validate_tag(t)?;
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
