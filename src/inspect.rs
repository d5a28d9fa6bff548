//! `nixoci inspect`: what a layout holds: tags, platforms, layers and sizes.
//! Its documents are read through the layout reader (bounded, each checked
//! against its digest); layer contents are not read (`verify` does that).

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::oci::descriptor::*;
use crate::oci::digest::Sha256Digest;
use crate::oci::json::parse_json;
use crate::oci::MediaType;

/// One tag (or untagged descriptor) of the layout.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tagged {
    /// The first tag (the `ref.name`).
    pub tag: Option<String>,
    /// Every tag naming this image (see [`crate::layout::tags`]).
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
    /// The platform tags naming this manifest (see [`crate::layout::tags`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// Describe the layout at `dir`: each `index.json` descriptor, then each
/// referrer listed in the layout nested at `referrers/` (untagged, as
/// when `index.json` listed them). Nested image indexes are followed as
/// every reader follows them (`oci::descriptor::MAX_INDEX_DEPTH`), a digest met again
/// under one tag is listed once, and the walk stops with an error past
/// `oci::descriptor::MAX_INDEX_NODES` descriptors.
pub fn inspect(dir: &Path) -> Result<Vec<Tagged>> {
    let layout = Layout::open(dir)?;
    let mut entries = layout.entries()?;
    // Then the referrers the layout nested at `referrers/` lists, as they
    // were listed when `index.json` held them.
    for r in layout.referrers()? {
        if !entries.iter().any(|e| e.digest == r.digest) {
            entries.push(r);
        }
    }
    let names = layout.names_of_entries(&entries)?;
    entries
        .iter()
        .map(|desc| describe(&layout, desc, crate::layout::tags::tags_of(desc), &names))
        .collect()
}

/// Describe the image `tag` names in the layout at `dir` (any name the
/// layout records: a tag, or a platform tag).
pub fn inspect_tag(dir: &Path, tag: &str) -> Result<Tagged> {
    let layout = Layout::open(dir)?;
    let desc = layout.select(Some(tag))?;
    let names = layout.names()?;
    let tags = names
        .iter()
        .filter(|n| n.descriptor.digest == desc.digest)
        .map(|n| n.name.clone())
        .collect();
    describe(&layout, &desc, tags, &names)
}

/// One `index.json` descriptor (or the one a tag names), with `tags`, its
/// images, and the platform tags `names` give them.
fn describe(
    layout: &Layout,
    desc: &Descriptor,
    tags: Vec<String>,
    names: &[crate::layout::tags::Named],
) -> Result<Tagged> {
    let mut images = Vec::new();
    for doc in layout.graph(desc)?.manifests() {
        let m = &doc.descriptor;
        let config_desc = doc.refs.config.clone().ok_or_else(|| Error::NoConfig {
            manifest: m.digest.clone(),
        })?;
        let config: Value = parse_json(
            &layout.blobs().path(&config_desc.digest),
            &layout.read_document(&config_desc)?,
        )?;
        let mut img = summary(
            m.platform.clone(),
            m.digest.clone(),
            config_desc.digest,
            &config,
            doc.refs.layers.clone(),
        );
        img.tags = names
            .iter()
            .filter(|n| n.descriptor.digest == img.manifest && !tags.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        images.push(img);
    }
    Ok(Tagged {
        tag: tags.first().cloned(),
        tags,
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        images,
    })
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
