//! Content descriptors and platforms (image-spec `descriptor.md`,
//! `image-index.md`), and the choice of a platform's manifest from an image
//! index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::oci::digest::Sha256Digest;
use crate::oci::media_type::MediaType;

/// The annotation that names a manifest in an image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor (image-spec `descriptor.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: MediaType,
    /// The digest of the content.
    pub digest: Sha256Digest,
    /// The size of the content in bytes.
    pub size: u64,
    /// The platform of the image it points to (in an image index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (`org.opencontainers.image.ref.name` names a tag in a layout).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The artifact type of the manifest it points to (OCI 1.1), as an
    /// index lists referrers.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
}

/// The platform of an image (image-spec `image-index.md`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, as Go names it (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v7` of `arm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Operating system version (`os.version`, Windows images).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Operating system features (`os.features`, Windows images).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Linux on this machine's architecture: the default choice from an
    /// image index.
    pub fn host_linux() -> Platform {
        Platform {
            architecture: host_architecture().to_owned(),
            os: "linux".into(),
            variant: None,
            os_version: None,
            os_features: None,
        }
    }

    /// Whether an image for `have` is what `self` asks for (a variant is
    /// compared only when asked for).
    pub fn accepts(&self, have: Option<&Platform>) -> bool {
        have.is_some_and(|h| {
            h.os == self.os
                && h.architecture == self.architecture
                && (self.variant.is_none() || self.variant == h.variant)
        })
    }
}

/// The descriptors a manifest or an image index holds (whichever applies).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Refs {
    /// An index's manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// A manifest's config.
    pub config: Option<Descriptor>,
    /// A manifest's layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// Image indexes nested deeper than this (`index.json` at depth 0, an
/// index it lists at depth 1, and so on) are refused by every reader: unpack, archive, pull, inspect and
/// verify.
pub(crate) const MAX_INDEX_DEPTH: usize = 8;

/// The most descriptors one walk of an image graph visits (after repeated
/// digests are skipped) before it stops with an error.
pub(crate) const MAX_INDEX_NODES: usize = 10_000;

/// What a [`PlatformSearch`] needs next.
#[derive(Debug)]
pub(crate) enum SearchStep {
    /// The manifest for the platform.
    Found(Descriptor),
    /// An image index to look into: hand its `manifests` to
    /// [`PlatformSearch::enter`] and ask again.
    Open(Descriptor),
}

/// The search for a platform's manifest in an image index, depth-first
/// through nested indexes (image-spec `image-index.md` allows an index to
/// list indexes), in the order listed, the first match winning; at most
/// [`MAX_INDEX_DEPTH`] deep and [`MAX_INDEX_NODES`] descriptors; an index
/// digest seen before is not opened again. The caller reads the indexes
/// (from a layout or a registry), so one rule serves every reader.
pub(crate) struct PlatformSearch {
    want: Platform,
    stack: Vec<std::vec::IntoIter<Descriptor>>,
    opened: std::collections::BTreeSet<Sha256Digest>,
    have: Vec<String>,
    unplatformed: usize,
    nodes: usize,
}

impl PlatformSearch {
    /// A search of an index holding `manifests` for `want` (default
    /// [`Platform::host_linux`]).
    pub fn new(manifests: Vec<Descriptor>, want: Option<&Platform>) -> Self {
        PlatformSearch {
            want: want.cloned().unwrap_or_else(Platform::host_linux),
            stack: vec![manifests.into_iter()],
            opened: Default::default(),
            have: Vec::new(),
            unplatformed: 0,
            nodes: 0,
        }
    }

    /// The next step, or an error listing the platforms the graph has.
    pub fn next_step(&mut self) -> Result<SearchStep> {
        while let Some(level) = self.stack.last_mut() {
            let Some(d) = level.next() else {
                self.stack.pop();
                continue;
            };
            self.nodes += 1;
            if self.nodes > MAX_INDEX_NODES {
                return Err(Error::TooManyDescriptors {
                    max: MAX_INDEX_NODES,
                });
            }
            if d.media_type.is_index() {
                if self.opened.insert(d.digest.clone()) {
                    // The index searched is at depth 1 (index.json's is 0).
                    if self.stack.len() + 1 > MAX_INDEX_DEPTH {
                        return Err(Error::NestedTooDeep {
                            index: d.digest,
                            max: MAX_INDEX_DEPTH,
                        });
                    }
                    return Ok(SearchStep::Open(d));
                }
                continue;
            }
            if self.want.accepts(d.platform.as_ref()) {
                return Ok(SearchStep::Found(d));
            }
            match &d.platform {
                Some(p) => {
                    let p = p.to_string();
                    if !self.have.contains(&p) {
                        self.have.push(p);
                    }
                }
                None => self.unplatformed += 1,
            }
        }
        let mut have = self.have.clone();
        if self.unplatformed > 0 {
            have.push(format!(
                "{} manifest(s) with no platform in their descriptor",
                self.unplatformed
            ));
        }
        Err(Error::NoPlatform {
            want: self.want.to_string(),
            have,
        })
    }

    /// The `manifests` of the index the last [`SearchStep::Open`] named.
    pub fn enter(&mut self, manifests: Vec<Descriptor>) {
        self.stack.push(manifests.into_iter());
    }
}

/// The manifest for `want` in an index holding `manifests`, opening nested
/// indexes with `open` (see [`PlatformSearch`]).
pub(crate) fn choose_platform(
    manifests: &[Descriptor],
    want: Option<&Platform>,
    mut open: impl FnMut(&Descriptor) -> Result<Vec<Descriptor>>,
) -> Result<Descriptor> {
    let mut search = PlatformSearch::new(manifests.to_vec(), want);
    loop {
        match search.next_step()? {
            SearchStep::Found(d) => return Ok(d),
            SearchStep::Open(index) => {
                let children = open(&index)?;
                search.enter(children);
            }
        }
    }
}

/// GOARCH name of the building machine's architecture.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// A descriptor with no platform or annotations.
pub(crate) fn descriptor(media_type: MediaType, digest: &Sha256Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type,
        digest: digest.clone(),
        size,
        platform: None,
        annotations: Default::default(),
        artifact_type: None,
    }
}

/// A platform as written on a command line: `os/arch[/variant]`.
impl std::str::FromStr for Platform {
    type Err = Error;

    fn from_str(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _]
                if !os.is_empty() && !arch.is_empty() && parts.get(2) != Some(&"") =>
            {
                Ok(Platform {
                    os: (*os).to_owned(),
                    architecture: (*arch).to_owned(),
                    variant: parts.get(2).map(|v| (*v).to_owned()),
                    os_version: None,
                    os_features: None,
                })
            }
            _ => Err(Error::Invalid(format!(
                "platform {text:?} is not OS/ARCH[/VARIANT], like linux/arm64"
            ))),
        }
    }
}

/// The OCI name of an architecture given by its Nix (uname) name, such as
/// `x86_64` for `amd64`; None for any other name. Images are refused with
/// such a name rather than mapped (a decision, docs/nix.md): a
/// config names what the user wrote, and an index with `x86_64` is one in
/// which podman and skopeo on amd64 find no image.
pub(crate) fn oci_architecture(name: &str) -> Option<&'static str> {
    Some(match name {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" | "armv8" => "arm64",
        "i686" | "i386" | "i586" | "x86" => "386",
        "armv7l" | "armv7" | "armv6l" | "armv6" | "armhf" => "arm",
        "powerpc64le" | "ppc64el" => "ppc64le",
        "powerpc64" => "ppc64",
        "mips64el" => "mips64le",
        _ => return None,
    })
}
