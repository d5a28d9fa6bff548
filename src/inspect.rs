//! `nixoci inspect`: what a layout holds: tags, platforms, layers and sizes.
//! It trusts the layout (run `verify` to check it) but never panics on one.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::layout::BlobDir;
use crate::oci::descriptor::*;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::read_json;
use crate::oci::MediaType;

/// One tag (or untagged descriptor) of the layout.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tagged {
    /// The first tag (the `ref.name`).
    pub tag: Option<String>,
    /// Every tag naming this image (see [`crate::tags`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub media_type: MediaType,
    pub digest: Sha256Digest,
    pub images: Vec<ImageSummary>,
}

/// One platform's image.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    pub platform: Option<Platform>,
    pub manifest: Sha256Digest,
    pub config: Sha256Digest,
    pub created: Option<String>,
    pub entrypoint: Option<Value>,
    pub cmd: Option<Value>,
    pub layers: Vec<Descriptor>,
    /// Sum of the layer sizes (compressed, as stored).
    pub size: u64,
    /// The platform tags naming this manifest (see [`crate::tags`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

fn read_blob(blobs: &BlobDir, desc: &Descriptor) -> Result<Refs> {
    read_json(&blobs.path(&desc.digest))
}

/// Describe the layout at `dir`. Nested image indexes are followed as
/// every reader follows them (`image::MAX_INDEX_DEPTH`), a digest met again
/// under one tag is listed once, and the walk stops with an error past
/// `image::MAX_INDEX_NODES` descriptors.
pub fn inspect(dir: &Path) -> Result<Vec<Tagged>> {
    let blobs = BlobDir::new(dir);
    let entries = crate::tags::entries(dir)?;
    let names = crate::tags::names_of_entries(dir, &entries)?;
    let mut out = Vec::new();
    let mut nodes = 0;
    for desc in &entries {
        out.push(describe(
            &blobs,
            desc,
            crate::tags::tags_of(desc),
            &names,
            &mut nodes,
        )?);
    }
    Ok(out)
}

/// Describe the image `tag` names in the layout at `dir` (any name the
/// layout records: a tag, or a platform tag).
pub fn inspect_tag(dir: &Path, tag: &str) -> Result<Tagged> {
    let desc = crate::tags::select(dir, Some(tag))?;
    let names = crate::tags::names(dir)?;
    let tags = names
        .iter()
        .filter(|n| n.descriptor.digest == desc.digest)
        .map(|n| n.name.clone())
        .collect();
    describe(&BlobDir::new(dir), &desc, tags, &names, &mut 0)
}

/// One `index.json` descriptor (or the one a tag names), with `tags`, its
/// images, and the platform tags `names` give them.
fn describe(
    blobs: &BlobDir,
    desc: &Descriptor,
    tags: Vec<String>,
    names: &[crate::tags::Named],
    nodes: &mut usize,
) -> Result<Tagged> {
    let mut walk = Walk {
        blobs,
        seen: BTreeSet::new(),
        nodes,
        images: Vec::new(),
    };
    walk.summarise(desc, 0)?;
    let mut images = walk.images;
    for img in &mut images {
        img.tags = names
            .iter()
            .filter(|n| n.descriptor.digest == img.manifest && !tags.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
    }
    Ok(Tagged {
        tag: tags.first().cloned(),
        tags,
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        images,
    })
}

struct Walk<'a> {
    blobs: &'a BlobDir,
    /// Digests already met under this tag.
    seen: BTreeSet<Sha256Digest>,
    /// Descriptors visited in the whole layout.
    nodes: &'a mut usize,
    images: Vec<ImageSummary>,
}

impl Walk<'_> {
    /// `desc` is listed by an index at `depth` (index.json: 0).
    fn summarise(&mut self, desc: &Descriptor, depth: usize) -> Result<()> {
        if !self.seen.insert(desc.digest.clone()) {
            return Ok(());
        }
        *self.nodes += 1;
        if *self.nodes > MAX_INDEX_NODES {
            return Err(Error::Invalid(format!(
                "the layout's image indexes list more than {MAX_INDEX_NODES} distinct descriptors; inspect stops there"
            )));
        }
        let doc = read_blob(self.blobs, desc)?;
        if desc.media_type.is_index() {
            if depth + 1 > MAX_INDEX_DEPTH {
                return Err(Error::Invalid(format!(
                    "image index {} is nested more than {MAX_INDEX_DEPTH} deep; nixoci reads no deeper",
                    desc.digest
                )));
            }
            for m in &doc.manifests {
                self.summarise(m, depth + 1)?;
            }
            return Ok(());
        }
        let config_desc = doc
            .config
            .ok_or_else(|| Error::Invalid(format!("manifest {} has no config", desc.digest)))?;
        let config: Value = read_json(&self.blobs.path(&config_desc.digest))?;
        self.images.push(summary(
            desc.platform.clone(),
            desc.digest.clone(),
            config_desc.digest,
            &config,
            doc.layers,
        ));
        Ok(())
    }
}

/// One image's summary from its manifest's parts and its config document
/// (the platform falls back to the config's).
pub fn summary(
    platform: Option<Platform>,
    manifest: Sha256Digest,
    config_digest: Sha256Digest,
    config: &Value,
    layers: Vec<Descriptor>,
) -> ImageSummary {
    let platform = platform.or_else(|| {
        Some(Platform {
            architecture: config.get("architecture")?.as_str()?.to_owned(),
            os: config.get("os")?.as_str()?.to_owned(),
            variant: config
                .get("variant")
                .and_then(Value::as_str)
                .map(str::to_owned),
            os_version: None,
            os_features: None,
        })
    });
    ImageSummary {
        platform,
        manifest,
        config: config_digest,
        created: config
            .get("created")
            .and_then(Value::as_str)
            .map(str::to_owned),
        entrypoint: config.pointer("/config/Entrypoint").cloned(),
        cmd: config.pointer("/config/Cmd").cloned(),
        size: layers.iter().map(|l| l.size).sum(),
        layers,
        tags: Vec::new(),
    }
}

/// Sizes for people: `12.3 MB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::human_size(999), "999 B");
        assert_eq!(super::human_size(12_345_678), "12.3 MB");
    }
}
