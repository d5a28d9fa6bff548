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
//! all of these names through [`crate::layout::Layout::names`], and `push`
//! sets them all. This module holds the naming rules alone; it reads
//! nothing.
//!
//! Layouts written by other tools, with one `index.json` descriptor per
//! tag, are read as before: each descriptor's `ref.name` names it.

use crate::oci::descriptor::{Descriptor, Platform, ANNOTATION_REF_NAME};

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

/// Whether the `index.json` descriptor `d` says each platform's manifest
/// is also named by platform tags.
pub fn has_platform_tags(d: &Descriptor) -> bool {
    d.annotations
        .get(ANNOTATION_PLATFORM_TAGS)
        .map(String::as_str)
        == Some("true")
        && d.media_type.is_index()
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
