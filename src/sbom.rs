//! The SBOM of an image's Nix closure, from the image itself: every store
//! path the image holds, with its name and version, its NAR hash and size
//! (Nix's `narHash`, `narSize`), the store paths it refers to (found in its
//! NAR as Nix's reference scanner finds them, so they equal `nix-store -q
//! --references`), and the layer that holds it; written as SPDX 2.3 or
//! CycloneDX 1.6 JSON.
//!
//! The image is unpacked (safely, within the unpack limits) into a
//! temporary directory, its `/nix/store` found there as a container would
//! find it (links resolved inside the image, never on this machine:
//! [`crate::rootfs`]) and each store path hashed there, read through
//! descriptors without following a link: a layer keeps
//! every byte, name, link and execute bit a NAR holds, so the hash is the
//! one Nix records. It needs nothing but the layout: images that nixoci,
//! dockerTools or nix2container made all have their store paths in
//! `/nix/store`.
//!
//! Deterministic: no wall clock (the time is the image's `created`), the
//! namespace and serial number come from the manifest digest, everything
//! is sorted.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::base::tree::BaseTree;
use crate::base::BaseImage;
use crate::error::{Error, Result};
use crate::oci::descriptor::Platform;
use crate::oci::digest::Sha256Digest;
use crate::unpack::{unpack, UnpackOptions};

/// One store path of the image.
#[derive(Clone, Debug)]
pub struct StorePath {
    /// `/nix/store/HASH-NAME`.
    pub path: String,
    /// The 32-character hash part.
    pub hash_part: String,
    /// The name and version as Nix's `parseDrvName` splits `NAME`: the
    /// version starts at the first `-` followed by a digit.
    pub name: String,
    pub version: String,
    pub nar_hash: [u8; 32],
    pub nar_size: u64,
    /// Other store paths of the image it refers to (by path).
    pub references: BTreeSet<String>,
    /// The layer holding it (the last one that writes its top directory).
    pub layer: Sha256Digest,
}

impl StorePath {
    /// The package URL, in the form syft writes for Nix store paths
    /// (`pkg:nix/NAME@VERSION?hash=HASHPART`; sbomnix writes the same
    /// without the qualifier): the hash part tells two builds of one
    /// version apart.
    pub fn purl(&self) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        if self.version.is_empty() {
            format!("pkg:nix/{}?hash={}", enc(&self.name), self.hash_part)
        } else {
            format!(
                "pkg:nix/{}@{}?hash={}",
                enc(&self.name),
                enc(&self.version),
                self.hash_part
            )
        }
    }

    /// `sha256:` and the NAR hash in Nix's base 32, as `nix path-info`
    /// prints it.
    pub fn nix_nar_hash(&self) -> String {
        format!("sha256:{}", crate::nar::nix_base32(&self.nar_hash))
    }
}

/// `(name, version)` of a store path's name (`HASH-` removed), split as
/// Nix's `parseDrvName` splits it.
pub fn name_version(name: &str) -> (String, String) {
    let b = name.as_bytes();
    match (0..b.len()).find(|&i| b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
        Some(i) => (name[..i].to_owned(), name[i + 1..].to_owned()),
        None => (name.to_owned(), String::new()),
    }
}

/// What the SBOM describes: the image and its store paths.
#[derive(Clone, Debug)]
pub struct Sbom {
    /// The image's manifest digest.
    pub manifest: Sha256Digest,
    /// The image's manifest descriptor (what an attached SBOM's subject
    /// names).
    pub subject: crate::oci::descriptor::Descriptor,
    /// A name for the image (its tag, or the manifest digest).
    pub name: String,
    /// The image's `created`, to the second in UTC.
    pub created: String,
    pub paths: Vec<StorePath>,
}

/// The SBOM of image `tag` of the layout at `dir` (for `platform`, from an
/// index).
pub fn collect(dir: &Path, tag: Option<&str>, platform: Option<&Platform>) -> Result<Sbom> {
    let image = BaseImage::open_image(dir, tag, platform)?;
    let subject = image
        .manifest
        .clone()
        .ok_or_else(|| Error::Invalid(format!("{}: no manifest", dir.display())))?;
    let manifest = subject.digest.clone();
    let tree = BaseTree::read(&image, &crate::untar::Limits::default())?;
    let created = image.config["created"]
        .as_str()
        .and_then(crate::oci::time::utc_seconds)
        .unwrap_or_else(|| crate::oci::time::format_epoch(0));

    // Removed however this ends, read-only directories and all.
    let tmp = crate::layout::Scratch::new("sbom")?;
    let root = tmp.path().join("rootfs");
    let opts = UnpackOptions {
        platform: platform.cloned(),
        ..Default::default()
    };
    unpack(dir, tag, &root, &opts)?;
    // The store as a container of the image sees it: links resolved
    // inside the image, never on this machine (`crate::rootfs`).
    let image_root = crate::rootfs::Root::open(&root, "the image")?;
    let store = image_root.open_dir(b"nix/store")?;
    let mut found: BTreeSet<String> = BTreeSet::new();
    if let Some((store_dir, _)) = &store {
        for name in store_dir.names()? {
            // Store path names are ASCII (Nix allows `[A-Za-z0-9+-._?=]`).
            let Some(name) = name.to_str() else { continue };
            let valid = name.len() > 33
                && name.as_bytes()[32] == b'-'
                && name.as_bytes()[..32]
                    .iter()
                    .all(|b| b"0123456789abcdfghijklmnpqrsvwxyz".contains(b));
            if valid {
                found.insert(name.to_owned());
            }
        }
    }
    let wanted: HashSet<[u8; 32]> = found
        .iter()
        .map(|n| <[u8; 32]>::try_from(&n.as_bytes()[..32]).expect("32 bytes"))
        .collect();
    let by_hash: BTreeMap<&[u8], &String> =
        found.iter().map(|n| (&n.as_bytes()[..32], n)).collect();
    let mut paths = Vec::new();
    for name in &found {
        let (store_dir, store_at) = store.as_ref().expect("names come from the store");
        // A store path that is a link is hashed as the link (its NAR is
        // a symlink node), never followed.
        let info = crate::nar::info(store_dir, std::ffi::OsStr::new(name), &wanted)?;
        let (pname, version) = name_version(&name[33..]);
        // The layer that holds it where it really is in the image (under
        // the directory `/nix/store` leads to).
        let mut at = store_at.clone();
        if !at.is_empty() {
            at.push(b'/'); // (empty: `/nix/store` leads to the root)
        }
        at.extend_from_slice(name.as_bytes());
        let layer_index = tree.layer_of(&at).unwrap_or_default();
        paths.push(StorePath {
            path: format!("/nix/store/{name}"),
            hash_part: name[..32].to_owned(),
            name: pname,
            version,
            nar_hash: info.hash,
            nar_size: info.size,
            references: info
                .references
                .iter()
                .filter(|r| r.as_slice() != &name.as_bytes()[..32])
                .filter_map(|r| by_hash.get(r.as_slice()))
                .map(|n| format!("/nix/store/{n}"))
                .collect(),
            layer: image.layers[layer_index].0.digest.clone(),
        });
    }
    // Named by the tag asked for, else by the image's one tag in the
    // layout; by its manifest digest when it has none or several.
    let name = match tag {
        Some(t) => t.to_owned(),
        None => {
            let layout = crate::layout::Layout::open(dir)?;
            let mut tags = layout.names_of(&layout.select(None)?.digest)?;
            tags.dedup();
            match tags.as_slice() {
                [one] => one.clone(),
                _ => manifest.to_string(),
            }
        }
    };
    Ok(Sbom {
        name,
        subject: crate::oci::descriptor::Descriptor {
            platform: None,
            annotations: BTreeMap::new(),
            artifact_type: None,
            ..subject
        },
        manifest,
        created,
        paths,
    })
}

/// The formats of an SBOM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Spdx,
    CycloneDx,
}

impl Format {
    /// The document of `sbom` in this format.
    pub fn document(self, sbom: &Sbom) -> Value {
        match self {
            Format::Spdx => spdx(sbom),
            Format::CycloneDx => cyclonedx(sbom),
        }
    }

    /// Its media type, which is also the artifact type of an attached one.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Spdx => "application/spdx+json",
            Format::CycloneDx => "application/vnd.cyclonedx+json",
        }
    }

    /// The file name of an attached one.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Spdx => "sbom.spdx.json",
            Format::CycloneDx => "sbom.cdx.json",
        }
    }
}

/// The document's bytes: canonical JSON and a newline.
pub fn bytes(doc: &Value) -> Vec<u8> {
    let mut b = crate::oci::json::canonical_json(doc);
    b.push(b'\n');
    b
}

/// Attach `sbom` to its image in the layout at `dir`, one referrer per
/// format ([`crate::referrers::attach`]), dated as the image is. Returns
/// their descriptors.
pub fn attach(
    dir: &Path,
    sbom: &Sbom,
    formats: &[Format],
) -> Result<Vec<crate::oci::descriptor::Descriptor>> {
    formats
        .iter()
        .map(|f| {
            let file = crate::referrers::ArtifactFile {
                name: f.file_name().to_owned(),
                media_type: crate::oci::MediaType::from(f.media_type().to_owned()),
                bytes: bytes(&f.document(sbom)),
            };
            crate::referrers::attach(
                dir,
                &sbom.subject,
                f.media_type(),
                &[file],
                &[(
                    "org.opencontainers.image.created".to_owned(),
                    sbom.created.clone(),
                )]
                .into(),
            )
        })
        .collect()
}

/// A UUID (version-5 layout) from `what` and the manifest digest: the same
/// image always gets the same one.
fn uuid(what: &str, digest: &Sha256Digest) -> String {
    let h = Sha256::digest(format!("nixoci {what} {digest}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// `SPDXRef-…` of a store path.
fn spdx_id(p: &StorePath) -> String {
    let clean: String = p
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-nix-{}-{clean}", p.hash_part)
}

/// The store paths no other one refers to.
fn roots(sbom: &Sbom) -> Vec<&StorePath> {
    let referred: BTreeSet<&String> = sbom.paths.iter().flat_map(|p| &p.references).collect();
    sbom.paths
        .iter()
        .filter(|p| !referred.contains(&p.path))
        .collect()
}

/// The SBOM as an SPDX 2.3 JSON document.
pub fn spdx(sbom: &Sbom) -> Value {
    let image_id = "SPDXRef-image";
    let mut packages = vec![json!({
        "SPDXID": image_id,
        "name": sbom.name,
        "versionInfo": sbom.manifest.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": sbom.manifest.hex()}],
        "comment": "The OCI image; its checksum is the manifest's sha256.",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let id_of: BTreeMap<&String, String> =
        sbom.paths.iter().map(|p| (&p.path, spdx_id(p))).collect();
    for p in &sbom.paths {
        let mut pkg = json!({
            "SPDXID": id_of[&p.path],
            "name": p.name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": hex::encode(p.nar_hash)}],
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p.purl()}],
            "comment": format!(
                "Nix store path {}; checksum: the sha256 of its NAR (narHash {}), {} bytes; in layer {}",
                p.path, p.nix_nar_hash(), p.nar_size, p.layer
            ),
        });
        if !p.version.is_empty() {
            pkg["versionInfo"] = json!(p.version);
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id_of[&p.path],
        }));
        for r in &p.references {
            relationships.push(json!({
                "spdxElementId": id_of[&p.path],
                "relationshipType": "DEPENDS_ON",
                "relatedSpdxElement": id_of[r],
            }));
        }
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} (Nix closure)", sbom.name),
        "documentNamespace": format!("urn:uuid:{}", uuid("spdx", &sbom.manifest)),
        "creationInfo": {
            "created": sbom.created,
            "creators": [format!("Tool: nixoci-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// The SBOM as a CycloneDX 1.6 JSON document. Store path properties use
/// the `nix:` names of the nixpkgs manual's CycloneDX taxonomy.
pub fn cyclonedx(sbom: &Sbom) -> Value {
    let image_ref = format!("image:{}", sbom.manifest);
    let components: Vec<Value> = sbom
        .paths
        .iter()
        .map(|p| {
            let mut c = json!({
                "type": "library",
                "bom-ref": p.path,
                "name": p.name,
                "purl": p.purl(),
                "hashes": [{"alg": "SHA-256", "content": hex::encode(p.nar_hash)}],
                "properties": [
                    {"name": "nix:store_path", "value": p.path},
                    {"name": "nix:narinfo:nar_hash", "value": p.nix_nar_hash()},
                    {"name": "nix:narinfo:nar_size", "value": p.nar_size.to_string()},
                    {"name": "nixoci:layer", "value": p.layer.to_string()},
                ],
            });
            if !p.version.is_empty() {
                c["version"] = json!(p.version);
            }
            c
        })
        .collect();
    let mut dependencies = vec![json!({
        "ref": image_ref,
        "dependsOn": roots(sbom).iter().map(|p| &p.path).collect::<Vec<_>>(),
    })];
    dependencies.extend(
        sbom.paths
            .iter()
            .map(|p| json!({"ref": p.path, "dependsOn": p.references})),
    );
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid("cyclonedx", &sbom.manifest)),
        "version": 1,
        "metadata": {
            "timestamp": sbom.created,
            "tools": {"components": [{"type": "application", "name": "nixoci", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": sbom.name,
                "version": sbom.manifest.to_string(),
                "hashes": [{"alg": "SHA-256", "content": sbom.manifest.hex()}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_and_purls() {
        assert_eq!(
            name_version("openssl-3.0.12-dev"),
            ("openssl".into(), "3.0.12-dev".into())
        );
        assert_eq!(
            name_version("python3.11-six-1.16.0"),
            ("python3.11-six".into(), "1.16.0".into())
        );
        assert_eq!(name_version("hello"), ("hello".into(), String::new()));
        let p = StorePath {
            path: "/nix/store/0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r-gtk+3-3.24".into(),
            hash_part: "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r".into(),
            name: "gtk+3".into(),
            version: "3.24".into(),
            nar_hash: [0; 32],
            nar_size: 8,
            references: BTreeSet::new(),
            layer: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .parse()
                .unwrap(),
        };
        assert_eq!(
            p.purl(),
            "pkg:nix/gtk%2B3@3.24?hash=0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r"
        );
        assert_eq!(
            spdx_id(&p),
            "SPDXRef-nix-0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r-gtk-3"
        );
        let d: Sha256Digest =
            "sha256:1111111111111111111111111111111111111111111111111111111111111111"
                .parse()
                .unwrap();
        let u = uuid("spdx", &d);
        assert_eq!(u, uuid("spdx", &d));
        assert_ne!(u, uuid("cyclonedx", &d));
        assert_eq!(&u[14..15], "5");
    }
}
