//! An image built onto a base image (`fromImage`): the base's layers
//! first, byte for byte; the store paths it holds left out of the new
//! layers; every new layer checked against the base's file tree
//! ([`crate::base::tree`]); the base recorded in the manifest's
//! annotations.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::info::{BaseRef, LayerInfo};
use crate::base::tree::{layer_entries, BaseTree, Node};
use crate::base::BaseImage;
use crate::error::{Error, Result};
use crate::layer::tree::Tree;
use crate::layout::BlobDir;
use crate::oci::descriptor::Platform;
use crate::oci::MediaType;
use crate::spec::{BaseSymlinks, FromImage, ImageSpec};
use crate::untar::Limits;

/// `org.opencontainers.image.base.name`.
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// `org.opencontainers.image.base.digest`.
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// A base image, opened, with its file tree.
pub struct Onto {
    pub image: BaseImage,
    pub tree: BaseTree,
    pub symlinks: BaseSymlinks,
}

impl Onto {
    /// Open `from` for an image of `spec` (its platform picks the image out
    /// of an index).
    pub fn open(from: &FromImage, spec: &ImageSpec, base_dir: &Path) -> Result<Onto> {
        let platform = spec.architecture.as_ref().map(|a| Platform {
            architecture: a.clone(),
            os: spec.os.clone().unwrap_or_else(|| "linux".into()),
            variant: spec.variant.clone(),
            os_version: None,
            os_features: None,
        });
        Self::open_for(from, base_dir, platform.as_ref())
    }

    /// Open `from` for `platform` (else the one `from` names, else this
    /// machine's Linux).
    pub fn open_for(
        from: &FromImage,
        base_dir: &Path,
        platform: Option<&Platform>,
    ) -> Result<Onto> {
        let named = from
            .platform
            .as_deref()
            .map(str::parse::<Platform>)
            .transpose()?;
        let image = BaseImage::open(from, base_dir, platform.or(named.as_ref()))?;
        let tree = BaseTree::read(&image, &Limits::default())?;
        Ok(Onto {
            image,
            tree,
            symlinks: from.symlinks,
        })
    }

    /// The store paths the base holds.
    pub fn store_paths(&self) -> BTreeSet<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let store = crate::nix::store_dir();
        let rel = store.as_os_str().as_bytes();
        self.tree.store_paths(rel.strip_prefix(b"/").unwrap_or(rel))
    }

    /// The base's layers, their blobs put into `blobs` (copied), or, for a
    /// layout on disk when `!copy`, left where they are: then the layout's
    /// directory is returned, to list with the blob directories.
    pub fn layers(&self, blobs: &BlobDir, copy: bool) -> Result<(Vec<LayerInfo>, Option<&Path>)> {
        let stays = match (&self.image.layout_dir, copy) {
            (Some(dir), false) => Some(dir.as_path()),
            _ => {
                for (d, _) in &self.image.layers {
                    blobs.import(&self.image.blobs, &d.digest, d.size)?;
                }
                None
            }
        };
        let store_paths = self.store_paths();
        let infos = self
            .image
            .layers
            .iter()
            .enumerate()
            .map(|(i, (d, diff_id))| LayerInfo {
                // The same bytes under the OCI name, for an OCI manifest
                // (a base from a Docker registry says docker's).
                media_type: if d.media_type == MediaType::DOCKER_LAYER_GZIP {
                    MediaType::LAYER_GZIP
                } else {
                    d.media_type.clone()
                },
                digest: d.digest.clone(),
                size: d.size,
                diff_id: diff_id.clone(),
                // Listed once, with the top layer: they leave the new
                // layers; which base layer holds which is not needed.
                store_paths: if i + 1 == self.image.layers.len() {
                    store_paths.clone()
                } else {
                    BTreeSet::new()
                },
                accounts: None,
            })
            .collect();
        Ok((infos, stays))
    }

    /// Check the new layer `info` (its blob in `store`; `what` names it)
    /// against the base's tree.
    pub fn check(&self, info: &LayerInfo, store: &BlobDir, what: &str) -> Result<()> {
        let desc = info.descriptor();
        let mut blob = store.open(&desc).map_err(|e| e.within(what.to_owned()))?;
        let entries = layer_entries(
            &mut blob,
            &desc,
            Some(&info.diff_id),
            &Limits::default(),
            what,
        )?;
        let entries: Vec<(Vec<u8>, Node)> = entries.iter().map(|e| (e.rel(), e.node())).collect();
        self.tree
            .check(entries.iter().map(|(p, n)| (p.as_slice(), n)), what)
    }

    /// Fit a new layer's `tree` onto the base: through the base's symbolic
    /// links when asked (`"symlinks": "follow"`), and with the parent
    /// directories nobody asked for taking the base's mode and owner where
    /// the base has them (so that `/tmp` stays 1777).
    pub fn place(&self, tree: &mut Tree) -> Result<()> {
        if self.symlinks == BaseSymlinks::Follow {
            // Where the layer's removals land: no entry may be placed
            // through a link the layer removes (`/sbin/x` through
            // `/sbin -> bin` when `/bin` is removed).
            let removed: Vec<Vec<u8>> = tree
                .removed()
                .iter()
                .filter_map(|r| self.tree.follow(r, false))
                .collect();
            tree.remap(|path, dir| {
                let (to, crossed) = self.tree.follow_through(path, dir).ok_or_else(|| {
                    format!(
                        "the {}'s symbolic links on the way loop (more than 40 followed)",
                        self.image.source
                    )
                })?;
                match crossed.iter().find(|l| removed.contains(l)) {
                    Some(link) => Err(format!(
                        "it is placed through the {}'s symbolic link /{}, which the layer removes (remove): do one or the other",
                        self.image.source,
                        String::from_utf8_lossy(link)
                    )),
                    None => Ok(to),
                }
            })?;
        }
        tree.adopt_parents(|p| self.tree.dir_meta(p));
        Ok(())
    }

    /// A path to remove (`remove`) must be in the base (through its
    /// symbolic links, when they are followed).
    pub fn check_removal(&self, dest: &str) -> Result<()> {
        let rel = dest
            .trim_start_matches('/')
            .trim_end_matches('/')
            .as_bytes();
        let at = if self.symlinks == BaseSymlinks::Follow {
            self.tree.follow(rel, false)
        } else {
            Some(rel.to_vec())
        };
        if at.is_some_and(|p| self.tree.get(&p).is_some()) {
            return Ok(());
        }
        let mut why = format!(
            "{dest}: the {} has nothing there to remove",
            self.image.source
        );
        // Not followed: a link of the base on the way may lead to it.
        let link = (self.symlinks != BaseSymlinks::Follow)
            .then(|| self.tree.link_on_the_way(rel))
            .flatten();
        if let Some((link, node)) = link {
            let through = self
                .tree
                .follow(rel, false)
                .filter(|p| self.tree.get(p).is_some());
            why.push_str(&format!(
                " (/{} is {} in it); remove the path it leads to{}, or follow the base's symbolic links (\"symlinks\": \"follow\" in fromImage; baseSymlinks = \"follow\" with Nix)",
                String::from_utf8_lossy(&link),
                node.noun(),
                through
                    .map(|p| format!(" (/{})", String::from_utf8_lossy(&p)))
                    .unwrap_or_default()
            ));
        }
        Err(Error::Invalid(why))
    }

    /// What the manifest records of the base.
    pub fn base_ref(&self) -> BaseRef {
        BaseRef {
            name: self.image.name.clone(),
            digest: self.image.manifest.as_ref().map(|m| m.digest.clone()),
        }
    }
}

/// An error for a spec that combines `fromImage` with what cannot go with it.
pub fn refuse_with_image_config(spec_path: &Path) -> Error {
    Error::spec(
        spec_path,
        "\"fromImage\" cannot be combined with \"imageConfig\": give it to the config step",
    )
}
