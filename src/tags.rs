//! The names a layout gives its image (image-spec `image-layout.md`,
//! `org.opencontainers.image.ref.name`), and how nixoci records more than
//! one.
//!
//! A layout nixoci writes has exactly one descriptor in `index.json`: the
//! image manifest, or the image index of a multi-platform image. That is
//! what `crane push DIR REF` and `podman load -i` require (crane stops with
//! "layout contains N entries" otherwise, podman with "more than one image
//! in oci"). The descriptor's `org.opencontainers.image.ref.name` is the
//! first tag, so `skopeo copy oci:DIR:TAG`, `podman pull oci:DIR:TAG` and
//! umoci find it by that name. Every tag is listed, in order and
//! comma-separated, in [`ANNOTATION_TAGS`] when there are several; with
//! platform tags, [`ANNOTATION_PLATFORM_TAGS`] says that each platform's
//! manifest is also named `TAG-OS-ARCH[-VARIANT]` (see [`platform_tag`]).
//! nixoci's own readers (`push`, `archive`, `unpack`, `inspect`) resolve
//! all of these names, and `push` sets them all.
//!
//! Layouts written by other tools, with one `index.json` descriptor per
//! tag, are read as before: each descriptor's `ref.name` names it.

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::layout::{read_blob_checked, BlobDir};
use crate::oci::descriptor::{Descriptor, Platform, Refs, ANNOTATION_REF_NAME};
use crate::oci::digest::Sha256Digest;
use crate::oci::json::read_json;

/// Every tag of the image, comma-separated, in the order given (written
/// only when there are several; the first is also the `ref.name`).
pub const ANNOTATION_TAGS: &str = "dev.nixoci.image.tags";

/// `"true"` when each platform's manifest of the index is also named
/// `TAG-OS-ARCH[-VARIANT]` for every tag.
pub const ANNOTATION_PLATFORM_TAGS: &str = "dev.nixoci.image.platform-tags";

/// The name of one platform's manifest under `tag`:
/// `TAG-OS-ARCH[-VARIANT]`, e.g. `latest-linux-arm64-v8`.
pub fn platform_tag(tag: &str, p: &Platform) -> String {
    let mut name = format!("{tag}-{}-{}", p.os, p.architecture);
    if let Some(v) = &p.variant {
        name = format!("{name}-{v}");
    }
    name
}

/// One name in a layout and the descriptor it names.
#[derive(Clone, Debug)]
pub struct Named {
    pub name: String,
    pub descriptor: Descriptor,
}

/// The tags an `index.json` descriptor carries: its tag list when it has
/// one (nixoci), else its `ref.name`.
pub fn tags_of(d: &Descriptor) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    if let Some(n) = d.annotations.get(ANNOTATION_REF_NAME) {
        tags.push(n.clone());
    }
    if let Some(list) = d.annotations.get(ANNOTATION_TAGS) {
        for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !tags.iter().any(|x| x == t) {
                tags.push(t.to_owned());
            }
        }
    }
    tags
}

fn check_layout(layout: &Path) -> Result<()> {
    if layout.join("oci-layout").is_file() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{}: not an OCI image layout (no oci-layout file)",
        layout.display()
    )))
}

/// The descriptors of `index.json`.
pub fn entries(layout: &Path) -> Result<Vec<Descriptor>> {
    check_layout(layout)?;
    let index: Refs = read_json(&layout.join("index.json"))?;
    Ok(index.manifests)
}

/// Every name `layout` gives, in order: each `index.json` descriptor's
/// tags, then, for an index with platform tags, each platform's names.
pub fn names(layout: &Path) -> Result<Vec<Named>> {
    names_of_entries(layout, &entries(layout)?)
}

/// [`names`], for `index.json` descriptors already read ([`entries`]).
pub fn names_of_entries(layout: &Path, entries: &[Descriptor]) -> Result<Vec<Named>> {
    let blobs = BlobDir::new(layout);
    let mut out: Vec<Named> = Vec::new();
    for d in entries.iter().cloned() {
        let tags = tags_of(&d);
        for t in &tags {
            out.push(Named {
                name: t.clone(),
                descriptor: d.clone(),
            });
        }
        if d.annotations
            .get(ANNOTATION_PLATFORM_TAGS)
            .map(String::as_str)
            == Some("true")
            && d.media_type.is_index()
        {
            if d.size > crate::verify::MAX_DOCUMENT {
                return Err(Error::Invalid(format!(
                    "{}: image index {} is {} bytes, more than the {} a document may have",
                    layout.display(),
                    d.digest,
                    d.size,
                    crate::verify::MAX_DOCUMENT
                )));
            }
            let bytes = read_blob_checked(&blobs, &d)?;
            let index: Refs = crate::oci::json::parse_json(layout, &bytes)?;
            for t in &tags {
                for m in &index.manifests {
                    if let Some(p) = &m.platform {
                        out.push(Named {
                            name: platform_tag(t, p),
                            descriptor: m.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The names `layout` gives the image `digest`, in order.
pub fn names_of(layout: &Path, digest: &Sha256Digest) -> Result<Vec<String>> {
    Ok(names(layout)?
        .into_iter()
        .filter(|n| n.descriptor.digest == *digest)
        .map(|n| n.name)
        .collect())
}

/// The descriptor `tag` names in the layout; without a tag, its only image.
pub fn select(layout: &Path, tag: Option<&str>) -> Result<Descriptor> {
    match tag {
        Some(t) => {
            let all = names(layout)?;
            all.iter()
                .find(|n| n.name == t)
                .map(|n| n.descriptor.clone())
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
                    Error::Invalid(format!(
                        "{}: no image is tagged {t:?} (tags: {})",
                        layout.display(),
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    ))
                })
        }
        None => {
            let entries = entries(layout)?;
            let digests: BTreeSet<&Sha256Digest> = entries.iter().map(|d| &d.digest).collect();
            match (digests.len(), entries.first()) {
                (1, Some(d)) => Ok(d.clone()),
                (0, _) => Err(Error::Invalid(format!(
                    "{}: the layout holds no image",
                    layout.display()
                ))),
                _ => {
                    let names: Vec<String> = entries.iter().flat_map(tags_of).collect();
                    Err(Error::Invalid(format!(
                        "{} holds several images ({}); say which: {}:TAG",
                        layout.display(),
                        names.join(", "),
                        layout.display()
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_tag_names() {
        let p: Platform =
            serde_json::from_str(r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#)
                .unwrap();
        assert_eq!(platform_tag("latest", &p), "latest-linux-arm64-v8");
    }

    #[test]
    fn tags_of_reads_ref_name_and_list() {
        let mut d: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1}"#,
        )
        .unwrap();
        assert!(tags_of(&d).is_empty());
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), "latest".into());
        d.annotations
            .insert(ANNOTATION_TAGS.into(), "latest,1.0,1".into());
        assert_eq!(tags_of(&d), ["latest", "1.0", "1"]);
    }
}
