//! Base images (`fromImage`): an image this one is built on. It is read
//! from an OCI image layout (an `ociPullImage` result, another nixoci
//! image, anything that writes a layout) or from an archive: a `docker
//! save` tarball as dockerTools builds it (gzipped or not), or an OCI
//! archive. Its layers go first, byte for byte; its config is inherited
//! (`documents::inherited`); its file tree ([`tree`]) is
//! what the new layers are checked against.

pub mod archive;
pub mod file;
mod links;
pub mod tree;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::layout::{BlobDir, Layout};
use crate::oci::descriptor::{Descriptor, Platform};
use crate::oci::digest::Sha256Digest;
use crate::spec::FromImage;

/// A base image, opened.
pub struct BaseImage {
    /// How messages name it: its path, and tag if one was asked for (empty
    /// when read for itself, [`BaseImage::open_image`]).
    pub source: String,
    /// Where its blobs are.
    pub blobs: BlobDir,
    /// The layout directory, when the base is one on disk (its blobs can be
    /// linked to where they are); `None` for an archive, whose blobs are
    /// in a temporary directory and must be copied.
    pub layout_dir: Option<PathBuf>,
    /// The manifest's descriptor (`None` for a docker archive, which has
    /// no manifest).
    pub manifest: Option<Descriptor>,
    /// The config document.
    pub config: Value,
    /// The layers, bottom first, with their diff_ids.
    pub layers: Vec<(Descriptor, Sha256Digest)>,
    /// What `org.opencontainers.image.base.name` records, if known.
    pub name: Option<String>,
    /// A temporary directory the archive was read into, removed on drop.
    _extracted: Option<crate::layout::Scratch>,
}

impl BaseImage {
    /// Open the base image `from` (relative to `base_dir`); from an index,
    /// the image for `platform` (this machine's Linux when `None`).
    pub fn open(from: &FromImage, base_dir: &Path, platform: Option<&Platform>) -> Result<Self> {
        let path = crate::spec::resolve(base_dir, &from.path);
        let source = match &from.tag {
            Some(t) => format!("base image {}:{t}", path.display()),
            None => format!("base image {}", path.display()),
        };
        let meta = std::fs::metadata(&path).map_err(|e| {
            Error::Invalid(format!(
                "{source}: cannot read it ({e}); fromImage takes an OCI image layout directory or an image archive"
            ))
        })?;
        let within = |e: Error| e.within(source.clone());
        let mut image = if meta.is_dir() {
            Self::from_layout(&path, from.tag.as_deref(), platform, None).map_err(within)?
        } else {
            archive::open(&path, from.tag.as_deref(), platform).map_err(within)?
        };
        image.source = source;
        if from.name.is_some() {
            image.name = from.name.clone();
        }
        Ok(image)
    }

    /// The image `tag` of the layout at `dir` read for itself, not as a
    /// base (`sbom` reads its tree so): its messages name its layers only,
    /// as the caller names the layout.
    pub fn open_image(dir: &Path, tag: Option<&str>, platform: Option<&Platform>) -> Result<Self> {
        let mut image = Self::from_layout(dir, tag, platform, None)?;
        image.source = String::new();
        Ok(image)
    }

    /// The image of the layout at `dir` (`tag`, or its only one; from an
    /// index, `platform`'s).
    pub(crate) fn from_layout(
        dir: &Path,
        tag: Option<&str>,
        platform: Option<&Platform>,
        extracted: Option<crate::layout::Scratch>,
    ) -> Result<Self> {
        let layout = Layout::open(dir)?;
        let host = Platform::host_linux();
        let image = layout.resolve(tag, Some(platform.unwrap_or(&host)))?;
        let config = image.config_value()?;
        let diff_ids = image.diff_ids()?;
        if diff_ids.len() != image.layers.len() {
            return Err(Error::Invalid(format!(
                "its config lists {} diff_ids for {} layers",
                diff_ids.len(),
                image.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (d, id) in image.layers.iter().zip(diff_ids) {
            let id = id.ok_or_else(|| {
                Error::Invalid(format!("its config gives layer {} no diff_id", d.digest))
            })?;
            layers.push((d.clone(), id));
        }
        Ok(BaseImage {
            source: dir.display().to_string(),
            blobs: layout.blobs().clone(),
            layout_dir: extracted.is_none().then(|| dir.to_owned()),
            manifest: Some(image.manifest.clone()),
            config,
            layers,
            name: None,
            _extracted: extracted,
        })
    }
}
