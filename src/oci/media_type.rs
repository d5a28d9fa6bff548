//! Media types (image-spec `media-types.md`) and what kind of content each
//! names. A [`MediaType`] is any string a descriptor may carry; the ones
//! nixoci knows are constants, and the predicates say what a type is
//! (an index, a manifest, a config, a layer) whichever of the OCI or Docker
//! spellings it uses.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A media type, as written in a descriptor or a `Content-Type` header.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaType(Cow<'static, str>);

impl MediaType {
    /// An uncompressed layer.
    pub const LAYER: MediaType = MediaType::from_static("application/vnd.oci.image.layer.v1.tar");
    /// A gzip-compressed layer.
    pub const LAYER_GZIP: MediaType =
        MediaType::from_static("application/vnd.oci.image.layer.v1.tar+gzip");
    /// A zstd-compressed layer.
    pub const LAYER_ZSTD: MediaType =
        MediaType::from_static("application/vnd.oci.image.layer.v1.tar+zstd");
    /// An image config.
    pub const CONFIG: MediaType =
        MediaType::from_static("application/vnd.oci.image.config.v1+json");
    /// An image manifest.
    pub const MANIFEST: MediaType =
        MediaType::from_static("application/vnd.oci.image.manifest.v1+json");
    /// An image index.
    pub const INDEX: MediaType = MediaType::from_static("application/vnd.oci.image.index.v1+json");
    /// The empty descriptor's content, `{}` (image-spec `manifest.md`).
    pub const EMPTY: MediaType = MediaType::from_static("application/vnd.oci.empty.v1+json");
    /// Docker's gzip layer: read (verify, inspect, unpack), never written.
    pub const DOCKER_LAYER_GZIP: MediaType =
        MediaType::from_static("application/vnd.docker.image.rootfs.diff.tar.gzip");
    /// Docker's image manifest (schema 2).
    pub const DOCKER_MANIFEST: MediaType =
        MediaType::from_static("application/vnd.docker.distribution.manifest.v2+json");
    /// Docker's manifest list: an index.
    pub const DOCKER_MANIFEST_LIST: MediaType =
        MediaType::from_static("application/vnd.docker.distribution.manifest.list.v2+json");
    /// Docker's image config.
    pub const DOCKER_CONFIG: MediaType =
        MediaType::from_static("application/vnd.docker.container.image.v1+json");

    /// A media type known when compiling.
    pub const fn from_static(s: &'static str) -> Self {
        MediaType(Cow::Borrowed(s))
    }

    /// The media type as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An image index (OCI index or Docker manifest list).
    pub fn is_index(&self) -> bool {
        *self == Self::INDEX || *self == Self::DOCKER_MANIFEST_LIST
    }

    /// An image manifest (OCI or Docker schema 2).
    pub fn is_manifest(&self) -> bool {
        *self == Self::MANIFEST || *self == Self::DOCKER_MANIFEST
    }

    /// An image config (OCI or Docker).
    pub fn is_config(&self) -> bool {
        *self == Self::CONFIG || *self == Self::DOCKER_CONFIG
    }

    /// A layer nixoci can read: a tar, plain or compressed.
    pub fn is_layer(&self) -> bool {
        [
            Self::LAYER,
            Self::LAYER_GZIP,
            Self::LAYER_ZSTD,
            Self::DOCKER_LAYER_GZIP,
        ]
        .contains(self)
    }
}

/// A media type as RFC 6838 (section 4.2) allows one to be named:
/// `type/subtype`, each 1 to 127 of letters, digits and `!#$&-^_.+`,
/// starting with a letter or digit; no parameters. Checked before one is
/// sent or written.
pub(crate) fn validate_media_type(s: &str) -> std::result::Result<(), String> {
    let name = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part.as_bytes()[0].is_ascii_alphanumeric()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match s.split_once('/') {
        Some((t, sub)) if name(t) && name(sub) => Ok(()),
        _ => Err(format!(
            "media type {s:?} is not type/subtype as RFC 6838 names them (letters, digits and !#$&-^_.+, each part 1 to 127 long, starting with a letter or digit)"
        )),
    }
}

impl From<String> for MediaType {
    fn from(s: String) -> Self {
        MediaType(Cow::Owned(s))
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        MediaType(Cow::Owned(s.to_owned()))
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Shown as the string it is (`"text/plain"`), so messages quote it.
impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6838_names() {
        for ok in [
            "application/spdx+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "text/plain",
            "a/b",
        ] {
            validate_media_type(ok).unwrap();
        }
        for bad in [
            "",
            "text",
            "text/",
            "/plain",
            "text/plain; charset=utf-8",
            "te xt/plain",
            "text/pl\nain",
            "-a/b",
            "a/b/c",
        ] {
            let e = validate_media_type(bad).expect_err(bad);
            assert!(
                e.starts_with(&format!("media type {bad:?} is not type/subtype")),
                "{e}"
            );
        }
    }

    #[test]
    fn kinds_and_serde() {
        assert!(MediaType::DOCKER_MANIFEST_LIST.is_index());
        assert!(!MediaType::MANIFEST.is_index());
        assert!(MediaType::from("application/vnd.oci.image.manifest.v1+json").is_manifest());
        assert!(MediaType::DOCKER_LAYER_GZIP.is_layer());
        assert!(!MediaType::CONFIG.is_layer());
        let t: MediaType = serde_json::from_str(r#""text/plain""#).unwrap();
        assert_eq!(t, *"text/plain");
        assert_eq!(
            serde_json::to_string(&MediaType::INDEX).unwrap(),
            r#""application/vnd.oci.image.index.v1+json""#
        );
    }
}
